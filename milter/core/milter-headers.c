/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-headers.h"

#include <string.h>

/**
 * SECTION:milter-headers
 * @title: MilterHeaders
 * @short_description: An ordered list of message headers
 * @include: milter/milter.h
 *
 * #MilterHeaders keeps a message's headers in order, with the index
 * rules of the milter protocol's header modifications, so the effect of
 * a milter's requests can be applied as an MTA applies them:
 *
 * - milter_headers_insert() counts positions from 0 at the top; a position
 *   past the end appends (SMFIR_INSHEADER).
 * - milter_headers_change() and milter_headers_remove() address the n-th
 *   header of a name, counted from 1 and case-insensitively; 0 counts as 1
 *   (SMFIR_CHGHEADER). Changing a header that does not exist adds it;
 *   changing to %NULL or "" removes it.
 *
 * Values are stored as the MTA passes them to a milter: without the
 * space after the colon, with folded lines joined by "\n".
 *
 * |[<!-- language="C" -->
 * g_autoptr(MilterHeaders) headers = milter_headers_new ();
 *
 * milter_headers_add (headers, "Received", "from a");
 * milter_headers_add (headers, "Subject", "hello");
 * milter_headers_add (headers, "Received", "from b");
 * // What SMFIR_CHGHEADER "Received"[2] = "from c" does:
 * milter_headers_change (headers, "Received", 2, "from c");
 * g_assert_cmpstr (milter_headers_lookup (headers, "received", 2), ==, "from c");
 * ]|
 */

/* One allocation per header: the struct, then name and value. */
typedef struct
{
  const gchar *name;
  const gchar *value;
} MilterHeader;

struct _MilterHeaders
{
  grefcount ref_count;
  GPtrArray *list;  /* of MilterHeader */
};

G_DEFINE_BOXED_TYPE (MilterHeaders, milter_headers, milter_headers_ref, milter_headers_unref)

static MilterHeader *
header_new (const gchar *name,
            const gchar *value)
{
  gsize name_size = strlen (name) + 1;
  gsize value_size = strlen (value) + 1;
  MilterHeader *header = g_malloc (sizeof (MilterHeader) + name_size + value_size);
  gchar *text = (gchar *) (header + 1);

  header->name = memcpy (text, name, name_size);
  header->value = memcpy (text + name_size, value, value_size);
  return header;
}

static void
header_free (gpointer data)
{
  g_free (data);
}

/**
 * milter_headers_new:
 *
 * Creates an empty header list.
 *
 * Returns: (transfer full): a new #MilterHeaders
 *
 * Since: 1.0
 */
MilterHeaders *
milter_headers_new (void)
{
  MilterHeaders *headers = g_new (MilterHeaders, 1);

  g_ref_count_init (&headers->ref_count);
  headers->list = g_ptr_array_new_with_free_func (header_free);
  return headers;
}

/**
 * milter_headers_ref:
 * @headers: a #MilterHeaders
 *
 * Takes a reference.
 *
 * Returns: (transfer full): @headers
 *
 * Since: 1.0
 */
MilterHeaders *
milter_headers_ref (MilterHeaders *headers)
{
  g_return_val_if_fail (headers != NULL, NULL);

  g_ref_count_inc (&headers->ref_count);
  return headers;
}

/**
 * milter_headers_unref:
 * @headers: (nullable) (transfer full): a #MilterHeaders
 *
 * Drops a reference; the list is freed with the last one.
 *
 * Since: 1.0
 */
void
milter_headers_unref (MilterHeaders *headers)
{
  if (headers == NULL || !g_ref_count_dec (&headers->ref_count))
    return;
  g_ptr_array_unref (headers->list);
  g_free (headers);
}

/**
 * milter_headers_copy:
 * @headers: a #MilterHeaders
 *
 * Copies @headers into a new, independent list.
 *
 * Returns: (transfer full): the copy
 *
 * Since: 1.0
 */
MilterHeaders *
milter_headers_copy (const MilterHeaders *headers)
{
  MilterHeaders *copy;

  g_return_val_if_fail (headers != NULL, NULL);

  copy = milter_headers_new ();
  for (guint i = 0; i < headers->list->len; i++)
    {
      MilterHeader *header = g_ptr_array_index (headers->list, i);

      g_ptr_array_add (copy->list, header_new (header->name, header->value));
    }
  return copy;
}

/**
 * milter_headers_get_length:
 * @headers: a #MilterHeaders
 *
 * Gets the number of headers.
 *
 * Returns: the number of headers
 *
 * Since: 1.0
 */
guint
milter_headers_get_length (const MilterHeaders *headers)
{
  g_return_val_if_fail (headers != NULL, 0);

  return headers->list->len;
}

static MilterHeader *
header_at (const MilterHeaders *headers,
           guint                index)
{
  return index < headers->list->len ? g_ptr_array_index (headers->list, index) : NULL;
}

/**
 * milter_headers_get_name:
 * @headers: a #MilterHeaders
 * @index: a position, from 0
 *
 * Gets the name of the header at @index, or %NULL past the end.
 *
 * Returns: (type filename) (nullable): the name of the header at @index, or %NULL past the end
 *
 * Since: 1.0
 */
const gchar *
milter_headers_get_name (const MilterHeaders *headers,
                         guint                index)
{
  MilterHeader *header;

  g_return_val_if_fail (headers != NULL, NULL);

  header = header_at (headers, index);
  return header != NULL ? header->name : NULL;
}

/**
 * milter_headers_get_value:
 * @headers: a #MilterHeaders
 * @index: a position, from 0
 *
 * Gets the value of the header at @index, or %NULL past the end.
 *
 * Returns: (type filename) (nullable): the value of the header at @index, or %NULL past the end
 *
 * Since: 1.0
 */
const gchar *
milter_headers_get_value (const MilterHeaders *headers,
                          guint                index)
{
  MilterHeader *header;

  g_return_val_if_fail (headers != NULL, NULL);

  header = header_at (headers, index);
  return header != NULL ? header->value : NULL;
}

/* The position of the nth (from 1; 0 counts as 1) header called @name, or -1. */
static gint
find_nth (const MilterHeaders *headers,
          const gchar         *name,
          guint                nth)
{
  guint seen = 0;

  if (nth == 0)
    nth = 1;
  for (guint i = 0; i < headers->list->len; i++)
    {
      MilterHeader *header = g_ptr_array_index (headers->list, i);

      if (g_ascii_strcasecmp (header->name, name) == 0 && ++seen == nth)
        return (gint) i;
    }
  return -1;
}

/**
 * milter_headers_lookup:
 * @headers: a #MilterHeaders
 * @name: (type filename): a header name (case-insensitive)
 * @nth: which header of that name, from 1 (0 counts as 1)
 *
 * Gets the value of the @nth header called @name, or %NULL.
 *
 * Returns: (type filename) (nullable): the value of the @nth header called @name, or %NULL
 *
 * Since: 1.0
 */
const gchar *
milter_headers_lookup (const MilterHeaders *headers,
                       const gchar         *name,
                       guint                nth)
{
  gint index;

  g_return_val_if_fail (headers != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);

  index = find_nth (headers, name, nth);
  return index >= 0 ? milter_headers_get_value (headers, (guint) index) : NULL;
}

/**
 * milter_headers_count:
 * @headers: a #MilterHeaders
 * @name: (type filename): a header name (case-insensitive)
 *
 * Counts the headers called @name.
 *
 * Returns: how many headers are called @name
 *
 * Since: 1.0
 */
guint
milter_headers_count (const MilterHeaders *headers,
                      const gchar         *name)
{
  guint count = 0;

  g_return_val_if_fail (headers != NULL, 0);
  g_return_val_if_fail (name != NULL, 0);

  for (guint i = 0; i < headers->list->len; i++)
    {
      MilterHeader *header = g_ptr_array_index (headers->list, i);

      if (g_ascii_strcasecmp (header->name, name) == 0)
        count++;
    }
  return count;
}

/**
 * milter_headers_add:
 * @headers: a #MilterHeaders
 * @name: (type filename): the header name
 * @value: (type filename): the header value
 *
 * Appends a header.
 *
 * Since: 1.0
 */
void
milter_headers_add (MilterHeaders *headers,
                    const gchar   *name,
                    const gchar   *value)
{
  g_return_if_fail (headers != NULL);
  g_return_if_fail (name != NULL);
  g_return_if_fail (value != NULL);

  g_ptr_array_add (headers->list, header_new (name, value));
}

/**
 * milter_headers_insert:
 * @headers: a #MilterHeaders
 * @index: the position, from 0 at the top; past the end appends
 * @name: (type filename): the header name
 * @value: (type filename): the header value
 *
 * Inserts a header before the one at @index.
 *
 * Since: 1.0
 */
void
milter_headers_insert (MilterHeaders *headers,
                       guint          index,
                       const gchar   *name,
                       const gchar   *value)
{
  g_return_if_fail (headers != NULL);
  g_return_if_fail (name != NULL);
  g_return_if_fail (value != NULL);

  if (index >= headers->list->len)
    g_ptr_array_add (headers->list, header_new (name, value));
  else
    g_ptr_array_insert (headers->list, (gint) index, header_new (name, value));
}

/**
 * milter_headers_change:
 * @headers: a #MilterHeaders
 * @name: (type filename): the header name (case-insensitive)
 * @nth: which header of that name, from 1 (0 counts as 1)
 * @value: (type filename) (nullable): the new value; %NULL or "" removes the header
 *
 * Changes the @nth header called @name. If there is no such header, a
 * non-empty @value is appended as a new header, as MTAs do.
 *
 * Since: 1.0
 */
void
milter_headers_change (MilterHeaders *headers,
                       const gchar   *name,
                       guint          nth,
                       const gchar   *value)
{
  gint index;

  g_return_if_fail (headers != NULL);
  g_return_if_fail (name != NULL);

  if (value == NULL || *value == '\0')
    {
      milter_headers_remove (headers, name, nth);
      return;
    }

  index = find_nth (headers, name, nth);
  if (index < 0)
    {
      milter_headers_add (headers, name, value);
      return;
    }
  {
    MilterHeader *header = g_ptr_array_index (headers->list, index);

    headers->list->pdata[index] = header_new (header->name, value);
    header_free (header);
  }
}

/**
 * milter_headers_remove:
 * @headers: a #MilterHeaders
 * @name: (type filename): the header name (case-insensitive)
 * @nth: which header of that name, from 1 (0 counts as 1)
 *
 * Removes the @nth header called @name. Later headers move up, as with
 * Postfix.
 *
 * Returns: %TRUE if a header was removed
 *
 * Since: 1.0
 */
gboolean
milter_headers_remove (MilterHeaders *headers,
                       const gchar   *name,
                       guint          nth)
{
  gint index;

  g_return_val_if_fail (headers != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);

  index = find_nth (headers, name, nth);
  if (index < 0)
    return FALSE;
  g_ptr_array_remove_index (headers->list, (guint) index);
  return TRUE;
}

/**
 * milter_headers_clear:
 * @headers: a #MilterHeaders
 *
 * Removes every header.
 *
 * Since: 1.0
 */
void
milter_headers_clear (MilterHeaders *headers)
{
  g_return_if_fail (headers != NULL);

  g_ptr_array_set_size (headers->list, 0);
}

/**
 * milter_headers_to_string:
 * @headers: a #MilterHeaders
 *
 * Formats the headers as the top of a message: `Name: value` lines ending
 * in CRLF, with a space after the colon and folded lines ("\n" in a value)
 * written as CRLF. No blank line is added.
 *
 * Returns: (transfer full) (type filename): the header block
 *
 * Since: 1.0
 */
gchar *
milter_headers_to_string (const MilterHeaders *headers)
{
  GString *string;

  g_return_val_if_fail (headers != NULL, NULL);

  string = g_string_new (NULL);
  for (guint i = 0; i < headers->list->len; i++)
    {
      MilterHeader *header = g_ptr_array_index (headers->list, i);

      g_string_append (string, header->name);
      g_string_append (string, ": ");
      for (const gchar *p = header->value; *p != '\0'; p++)
        {
          if (*p == '\n')
            g_string_append_c (string, '\r');
          if (*p != '\r')
            g_string_append_c (string, *p);
        }
      g_string_append (string, "\r\n");
    }
  return g_string_free (string, FALSE);
}
