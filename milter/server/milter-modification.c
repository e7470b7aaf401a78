/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-modification.h"

#include <string.h>

/**
 * SECTION:milter-modification
 * @title: MilterModification
 * @short_description: One change a milter requested at end-of-message
 * @include: milter/milter.h
 *
 * While it handles end-of-message, a milter may ask the MTA to change the
 * message: add, insert, change or delete headers, change the envelope
 * sender, add or delete recipients, replace the body, or quarantine the
 * message. #MilterServerContext reports each request as a signal when it
 * arrives and, once the final reply is in, as a list of
 * #MilterModification records (milter_server_context_get_modifications())
 * that milter_message_apply_modifications() applies to a #MilterMessage
 * the way an MTA would.
 *
 * Which fields are set depends on the #MilterModificationType:
 *
 * - %MILTER_MODIFICATION_TYPE_ADD_HEADER: name and value;
 * - %MILTER_MODIFICATION_TYPE_INSERT_HEADER: index (from 0 at the top),
 *   name and value;
 * - %MILTER_MODIFICATION_TYPE_CHANGE_HEADER: name, index (the n-th header
 *   of that name, from 1) and the new value;
 * - %MILTER_MODIFICATION_TYPE_DELETE_HEADER: name and index;
 * - %MILTER_MODIFICATION_TYPE_CHANGE_FROM and
 *   %MILTER_MODIFICATION_TYPE_ADD_RECIPIENT: address and, optionally, the
 *   ESMTP parameters as one space-separated string;
 * - %MILTER_MODIFICATION_TYPE_DELETE_RECIPIENT: address;
 * - %MILTER_MODIFICATION_TYPE_REPLACE_BODY: body;
 * - %MILTER_MODIFICATION_TYPE_QUARANTINE: reason.
 *
 * Header values are in the form milters use: without the space after the
 * colon, folded lines joined by "\n".
 *
 * |[<!-- language="C" -->
 * GPtrArray *modifications = milter_server_context_get_modifications (context);
 *
 * for (guint i = 0; i < modifications->len; i++)
 *   {
 *     g_autofree gchar *text =
 *       milter_modification_to_string (g_ptr_array_index (modifications, i));
 *     g_print ("%s\n", text);   // e.g. "add-header: X-Spam: no"
 *   }
 * ]|
 */

struct _MilterModification
{
  grefcount ref_count;
  MilterModificationType type;
  guint index;
  gchar *name;        /* header name */
  gchar *value;       /* header value */
  gchar *address;     /* sender or recipient */
  gchar *parameters;  /* ESMTP parameters, or NULL */
  GBytes *body;
  gchar *reason;
};

G_DEFINE_BOXED_TYPE (MilterModification, milter_modification,
                     milter_modification_ref, milter_modification_unref)

static MilterModification *
modification_new (MilterModificationType type)
{
  MilterModification *modification = g_new0 (MilterModification, 1);

  g_ref_count_init (&modification->ref_count);
  modification->type = type;
  return modification;
}

/**
 * milter_modification_new_add_header:
 * @name: (type filename): the header name
 * @value: (type filename): the header value
 *
 * Creates a request to append a header.
 *
 * Returns: (transfer full): a new #MilterModification
 *
 * Since: 1.0
 */
MilterModification *
milter_modification_new_add_header (const gchar *name,
                                    const gchar *value)
{
  MilterModification *modification;

  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (value != NULL, NULL);

  modification = modification_new (MILTER_MODIFICATION_TYPE_ADD_HEADER);
  modification->name = g_strdup (name);
  modification->value = g_strdup (value);
  return modification;
}

/**
 * milter_modification_new_insert_header:
 * @index: the position, from 0 at the top; past the end appends
 * @name: (type filename): the header name
 * @value: (type filename): the header value
 *
 * Creates a request to insert a header before the one at @index.
 *
 * Returns: (transfer full): a new #MilterModification
 *
 * Since: 1.0
 */
MilterModification *
milter_modification_new_insert_header (guint        index,
                                       const gchar *name,
                                       const gchar *value)
{
  MilterModification *modification;

  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (value != NULL, NULL);

  modification = modification_new (MILTER_MODIFICATION_TYPE_INSERT_HEADER);
  modification->index = index;
  modification->name = g_strdup (name);
  modification->value = g_strdup (value);
  return modification;
}

/**
 * milter_modification_new_change_header:
 * @name: (type filename): the header name
 * @index: which header of that name, from 1 (0 counts as 1)
 * @value: (type filename): the new value; an empty value deletes the header
 *
 * Creates a request to change the @index-th header called @name. An
 * empty @value makes a %MILTER_MODIFICATION_TYPE_DELETE_HEADER request,
 * as on the wire.
 *
 * Returns: (transfer full): a new #MilterModification
 *
 * Since: 1.0
 */
MilterModification *
milter_modification_new_change_header (const gchar *name,
                                       guint        index,
                                       const gchar *value)
{
  MilterModification *modification;

  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (value != NULL, NULL);

  if (*value == '\0')
    return milter_modification_new_delete_header (name, index);
  modification = modification_new (MILTER_MODIFICATION_TYPE_CHANGE_HEADER);
  modification->index = index;
  modification->name = g_strdup (name);
  modification->value = g_strdup (value);
  return modification;
}

/**
 * milter_modification_new_delete_header:
 * @name: (type filename): the header name
 * @index: which header of that name, from 1 (0 counts as 1)
 *
 * Creates a request to delete the @index-th header called @name.
 *
 * Returns: (transfer full): a new #MilterModification
 *
 * Since: 1.0
 */
MilterModification *
milter_modification_new_delete_header (const gchar *name,
                                       guint        index)
{
  MilterModification *modification;

  g_return_val_if_fail (name != NULL, NULL);

  modification = modification_new (MILTER_MODIFICATION_TYPE_DELETE_HEADER);
  modification->index = index;
  modification->name = g_strdup (name);
  modification->value = g_strdup ("");
  return modification;
}

/**
 * milter_modification_new_change_from:
 * @address: (type filename): the new envelope sender, e.g. `<user@example.com>`
 * @parameters: (nullable) (type filename): ESMTP parameters, space-separated
 *
 * Creates a request to change the envelope sender.
 *
 * Returns: (transfer full): a new #MilterModification
 *
 * Since: 1.0
 */
MilterModification *
milter_modification_new_change_from (const gchar *address,
                                     const gchar *parameters)
{
  MilterModification *modification;

  g_return_val_if_fail (address != NULL, NULL);

  modification = modification_new (MILTER_MODIFICATION_TYPE_CHANGE_FROM);
  modification->address = g_strdup (address);
  modification->parameters = g_strdup (parameters);
  return modification;
}

/**
 * milter_modification_new_add_recipient:
 * @address: (type filename): the recipient, e.g. `<user@example.com>`
 * @parameters: (nullable) (type filename): ESMTP parameters, space-separated
 *
 * Creates a request to add a recipient.
 *
 * Returns: (transfer full): a new #MilterModification
 *
 * Since: 1.0
 */
MilterModification *
milter_modification_new_add_recipient (const gchar *address,
                                       const gchar *parameters)
{
  MilterModification *modification;

  g_return_val_if_fail (address != NULL, NULL);

  modification = modification_new (MILTER_MODIFICATION_TYPE_ADD_RECIPIENT);
  modification->address = g_strdup (address);
  modification->parameters = g_strdup (parameters);
  return modification;
}

/**
 * milter_modification_new_delete_recipient:
 * @address: (type filename): the recipient in the form the MTA sent it, e.g.
 *   `<user@example.com>`
 *
 * Creates a request to delete a recipient.
 *
 * Returns: (transfer full): a new #MilterModification
 *
 * Since: 1.0
 */
MilterModification *
milter_modification_new_delete_recipient (const gchar *address)
{
  MilterModification *modification;

  g_return_val_if_fail (address != NULL, NULL);

  modification = modification_new (MILTER_MODIFICATION_TYPE_DELETE_RECIPIENT);
  modification->address = g_strdup (address);
  return modification;
}

/**
 * milter_modification_new_replace_body:
 * @body: the new body, with CRLF line endings
 *
 * Creates a request to replace the body.
 *
 * Returns: (transfer full): a new #MilterModification
 *
 * Since: 1.0
 */
MilterModification *
milter_modification_new_replace_body (GBytes *body)
{
  MilterModification *modification;

  g_return_val_if_fail (body != NULL, NULL);

  modification = modification_new (MILTER_MODIFICATION_TYPE_REPLACE_BODY);
  modification->body = g_bytes_ref (body);
  return modification;
}

/**
 * milter_modification_new_quarantine:
 * @reason: (type filename): why the message is quarantined
 *
 * Creates a request to quarantine the message.
 *
 * Returns: (transfer full): a new #MilterModification
 *
 * Since: 1.0
 */
MilterModification *
milter_modification_new_quarantine (const gchar *reason)
{
  MilterModification *modification;

  g_return_val_if_fail (reason != NULL, NULL);

  modification = modification_new (MILTER_MODIFICATION_TYPE_QUARANTINE);
  modification->reason = g_strdup (reason);
  return modification;
}

/**
 * milter_modification_ref:
 * @modification: a #MilterModification
 *
 * Takes a reference.
 *
 * Returns: (transfer full): @modification
 *
 * Since: 1.0
 */
MilterModification *
milter_modification_ref (MilterModification *modification)
{
  g_return_val_if_fail (modification != NULL, NULL);

  g_ref_count_inc (&modification->ref_count);
  return modification;
}

/**
 * milter_modification_unref:
 * @modification: (nullable) (transfer full): a #MilterModification
 *
 * Drops a reference; the record is freed with the last one.
 *
 * Since: 1.0
 */
void
milter_modification_unref (MilterModification *modification)
{
  if (modification == NULL || !g_ref_count_dec (&modification->ref_count))
    return;
  g_free (modification->name);
  g_free (modification->value);
  g_free (modification->address);
  g_free (modification->parameters);
  g_clear_pointer (&modification->body, g_bytes_unref);
  g_free (modification->reason);
  g_free (modification);
}

/**
 * milter_modification_get_modification_type:
 * @modification: a #MilterModification
 *
 * Gets the kind of change.
 *
 * Returns: the kind of change
 *
 * Since: 1.0
 */
MilterModificationType
milter_modification_get_modification_type (const MilterModification *modification)
{
  g_return_val_if_fail (modification != NULL, MILTER_MODIFICATION_TYPE_ADD_HEADER);

  return modification->type;
}

/**
 * milter_modification_get_name:
 * @modification: a #MilterModification
 *
 * Gets the header name of a header modification.
 *
 * Returns: (type filename) (nullable): the header name, or %NULL for other kinds
 *
 * Since: 1.0
 */
const gchar *
milter_modification_get_name (const MilterModification *modification)
{
  g_return_val_if_fail (modification != NULL, NULL);

  return modification->name;
}

/**
 * milter_modification_get_value:
 * @modification: a #MilterModification
 *
 * Gets the header value of a header modification (empty for a deletion).
 *
 * Returns: (type filename) (nullable): the header value, or %NULL for other kinds
 *
 * Since: 1.0
 */
const gchar *
milter_modification_get_value (const MilterModification *modification)
{
  g_return_val_if_fail (modification != NULL, NULL);

  return modification->value;
}

/**
 * milter_modification_get_index:
 * @modification: a #MilterModification
 *
 * Gets the index of an insert, change or delete header request: a
 * position from 0 for an insertion, the n-th header of the name from 1
 * for a change or deletion.
 *
 * Returns: the index, or 0 for other kinds
 *
 * Since: 1.0
 */
guint
milter_modification_get_index (const MilterModification *modification)
{
  g_return_val_if_fail (modification != NULL, 0);

  return modification->index;
}

/**
 * milter_modification_get_address:
 * @modification: a #MilterModification
 *
 * Gets the address of a sender or recipient modification, as the milter
 * sent it.
 *
 * Returns: (type filename) (nullable): the address, or %NULL for other kinds
 *
 * Since: 1.0
 */
const gchar *
milter_modification_get_address (const MilterModification *modification)
{
  g_return_val_if_fail (modification != NULL, NULL);

  return modification->address;
}

/**
 * milter_modification_get_parameters:
 * @modification: a #MilterModification
 *
 * Gets the ESMTP parameters of a change-from or add-recipient request.
 *
 * Returns: (type filename) (nullable): the parameters, space-separated, or %NULL if there
 *   are none
 *
 * Since: 1.0
 */
const gchar *
milter_modification_get_parameters (const MilterModification *modification)
{
  g_return_val_if_fail (modification != NULL, NULL);

  return modification->parameters;
}

/**
 * milter_modification_get_body:
 * @modification: a #MilterModification
 *
 * Gets the new body of a replace-body request.
 *
 * Returns: (transfer none) (nullable): the new body, or %NULL for other
 *   kinds
 *
 * Since: 1.0
 */
GBytes *
milter_modification_get_body (const MilterModification *modification)
{
  g_return_val_if_fail (modification != NULL, NULL);

  return modification->body;
}

/**
 * milter_modification_get_reason:
 * @modification: a #MilterModification
 *
 * Gets the reason of a quarantine request.
 *
 * Returns: (type filename) (nullable): the reason, or %NULL for other kinds
 *
 * Since: 1.0
 */
const gchar *
milter_modification_get_reason (const MilterModification *modification)
{
  g_return_val_if_fail (modification != NULL, NULL);

  return modification->reason;
}

/**
 * milter_modification_equal:
 * @modification: a #MilterModification
 * @other: another #MilterModification
 *
 * Compares two modifications field by field.
 *
 * Returns: %TRUE if both request the same change
 *
 * Since: 1.0
 */
gboolean
milter_modification_equal (const MilterModification *modification,
                           const MilterModification *other)
{
  g_return_val_if_fail (modification != NULL, FALSE);
  g_return_val_if_fail (other != NULL, FALSE);

  return modification->type == other->type &&
         modification->index == other->index &&
         g_strcmp0 (modification->name, other->name) == 0 &&
         g_strcmp0 (modification->value, other->value) == 0 &&
         g_strcmp0 (modification->address, other->address) == 0 &&
         g_strcmp0 (modification->parameters, other->parameters) == 0 &&
         g_strcmp0 (modification->reason, other->reason) == 0 &&
         (modification->body == other->body ||
          (modification->body != NULL && other->body != NULL &&
           g_bytes_equal (modification->body, other->body)));
}

/* Appends @text as one printable line of UTF-8: control characters and
 * bytes that are not UTF-8 become \xNN (a Latin-1 é shows as \xe9), a
 * backslash \\, so the original bytes can be read back. */
static void
append_escaped (GString     *string,
                const gchar *text)
{
  const gchar *p = text;

  while (*p != '\0')
    {
      guchar c = (guchar) *p;
      gunichar ch = g_utf8_get_char_validated (p, -1);

      if (c >= 0x80 && ch != (gunichar) -1 && ch != (gunichar) -2)
        {
          const gchar *next = g_utf8_next_char (p);

          g_string_append_len (string, p, next - p);
          p = next;
          continue;
        }
      switch (c)
        {
        case '\n': g_string_append (string, "\\n"); break;
        case '\r': g_string_append (string, "\\r"); break;
        case '\t': g_string_append (string, "\\t"); break;
        case '\\': g_string_append (string, "\\\\"); break;
        default:
          if (c < 0x20 || c >= 0x7f)
            g_string_append_printf (string, "\\x%02x", c);
          else
            g_string_append_c (string, (gchar) c);
        }
      p++;
    }
}

/**
 * milter_modification_to_string:
 * @modification: a #MilterModification
 *
 * Describes @modification in one line of UTF-8 for logs and tools, e.g.
 * `add-header: X-Spam: no`, `insert-header[0]: X-First: 1`,
 * `change-header: Subject[1]: New`, `delete-header: Subject[2]`,
 * `change-from: <a@example.com> RET=HDRS`, `add-recipient: <b@example.com>`,
 * `delete-recipient: <c@example.com>`, `replace-body: 1234 bytes` or
 * `quarantine: suspicious`. Control characters are escaped (a folded
 * value shows `\n`), and so are bytes that are not UTF-8 (`\xe9`), so
 * nothing of the value is lost.
 *
 * Returns: (transfer full): a readable description
 *
 * Since: 1.0
 */
gchar *
milter_modification_to_string (const MilterModification *modification)
{
  GString *string;

  g_return_val_if_fail (modification != NULL, NULL);

  string = g_string_new (NULL);
  switch (modification->type)
    {
    case MILTER_MODIFICATION_TYPE_ADD_HEADER:
      g_string_append (string, "add-header: ");
      append_escaped (string, modification->name);
      g_string_append (string, ": ");
      append_escaped (string, modification->value);
      break;
    case MILTER_MODIFICATION_TYPE_INSERT_HEADER:
      g_string_append_printf (string, "insert-header[%u]: ", modification->index);
      append_escaped (string, modification->name);
      g_string_append (string, ": ");
      append_escaped (string, modification->value);
      break;
    case MILTER_MODIFICATION_TYPE_CHANGE_HEADER:
      g_string_append (string, "change-header: ");
      append_escaped (string, modification->name);
      g_string_append_printf (string, "[%u]: ", modification->index);
      append_escaped (string, modification->value);
      break;
    case MILTER_MODIFICATION_TYPE_DELETE_HEADER:
      g_string_append (string, "delete-header: ");
      append_escaped (string, modification->name);
      g_string_append_printf (string, "[%u]", modification->index);
      break;
    case MILTER_MODIFICATION_TYPE_CHANGE_FROM:
    case MILTER_MODIFICATION_TYPE_ADD_RECIPIENT:
      g_string_append (string, modification->type == MILTER_MODIFICATION_TYPE_CHANGE_FROM ?
                       "change-from: " : "add-recipient: ");
      append_escaped (string, modification->address);
      if (modification->parameters != NULL)
        {
          g_string_append_c (string, ' ');
          append_escaped (string, modification->parameters);
        }
      break;
    case MILTER_MODIFICATION_TYPE_DELETE_RECIPIENT:
      g_string_append (string, "delete-recipient: ");
      append_escaped (string, modification->address);
      break;
    case MILTER_MODIFICATION_TYPE_REPLACE_BODY:
      g_string_append_printf (string, "replace-body: %" G_GSIZE_FORMAT " bytes",
                              g_bytes_get_size (modification->body));
      break;
    case MILTER_MODIFICATION_TYPE_QUARANTINE:
      g_string_append (string, "quarantine: ");
      append_escaped (string, modification->reason);
      break;
    default:
      g_assert_not_reached ();
    }
  return g_string_free (string, FALSE);
}
