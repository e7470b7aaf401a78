/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* add-header: the smallest useful milter. It adds one header to every
 * message. Run it, then point the MTA at it:
 *
 *   add-header -s unix:/run/add-header.sock --unix-socket-group postfix
 *   # Postfix main.cf:  smtpd_milters = unix:/run/add-header.sock
 */
#include <milter/milter.h>

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  g_autoptr(GError) error = NULL;

  /* Modifications are only allowed here, at end-of-message. */
  if (!milter_client_context_add_header (context, "X-Milter-Glib", "add-header example", &error))
    g_warning ("Cannot add the header: %s", error->message);
  return MILTER_STATUS_CONTINUE;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  /* Only end-of-message has a handler, so the MTA is asked to leave
   * out every other event: no round trips for headers, body chunks… */
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), NULL);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GOptionContext) options = g_option_context_new ("- add a header to every message");
  g_autoptr(GError) error = NULL;

  g_option_context_add_group (options, milter_client_get_option_group (client));
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("add-header: %s\n", error->message);
      return 2;
    }
  g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established), NULL);
  if (!milter_client_run (client, &error))
    {
      g_printerr ("add-header: %s\n", error->message);
      return 1;
    }
  return 0;
}
