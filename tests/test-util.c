/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "test-util.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

GBytes *
test_util_bytes_from_hex (const gchar *hex)
{
  GByteArray *array = g_byte_array_new ();
  gint high = -1;

  for (const gchar *p = hex; *p != '\0'; p++)
    {
      gint digit = g_ascii_xdigit_value (*p);

      if (digit < 0)
        {
          g_assert_true (g_ascii_isspace (*p));
          continue;
        }
      if (high < 0)
        {
          high = digit;
        }
      else
        {
          guint8 byte = (guint8) (high << 4 | digit);

          g_byte_array_append (array, &byte, 1);
          high = -1;
        }
    }
  g_assert_cmpint (high, ==, -1);
  return g_byte_array_free_to_bytes (array);
}

gchar *
test_util_hex (gconstpointer data,
               gsize         size)
{
  GString *string = g_string_sized_new (size * 2 + 1);
  const guint8 *bytes = data;

  for (gsize i = 0; i < size; i++)
    g_string_append_printf (string, "%02x", bytes[i]);
  return g_string_free (string, FALSE);
}

gchar *
test_util_bytes_to_hex (GBytes *bytes)
{
  gsize size;
  gconstpointer data = g_bytes_get_data (bytes, &size);

  return test_util_hex (data, size);
}

static gboolean
on_timeout (gpointer user_data)
{
  gboolean *timed_out = user_data;

  *timed_out = TRUE;
  return G_SOURCE_REMOVE;
}

void
test_util_wait_for_flag (gboolean    *flag,
                         guint        timeout_ms,
                         const gchar *what)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add (timeout_ms, on_timeout, &timed_out);

  while (!*flag && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  if (!*flag)
    g_error ("timed out after %u ms waiting for %s", timeout_ms, what);
}

void
test_util_run_for (guint ms)
{
  gboolean done = FALSE;

  g_timeout_add (ms, on_timeout, &done);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
}

void
test_util_die_with_parent (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}
