/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: filter => result["status"] == "pass" and headers == [("X-Filtered", "yes")] */
/* guide-check: filter --header "Subject: hello" --body "Hi!" => result["exit"] == 0 and ("X-Filtered", "yes") in headers */
/* guide-check: refuses --usr=nobody => first-filter: Unknown argument --usr=nobody */
/* first-filter: adds "X-Filtered: yes" to every message. */
#include <milter/milter.h>

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  g_autoptr(GError) error = NULL;

  /* Modifications are only allowed at end-of-message. */
  if (!milter_client_context_add_header (context, "X-Filtered", "yes", &error))
    g_warning ("Cannot add the header: %s", error->message);
  return MILTER_STATUS_CONTINUE;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  /* One context per MTA connection: connect its handlers here. */
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), NULL);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_auto(GStrv) args = g_strdupv (argv);
  g_autoptr(GError) error = NULL;

  g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established), NULL);
  /* -s SPEC, --timeout, --user, --daemon…: see first-filter --help. What it
   * leaves is no option of the client: a typo such as --usr=nobody. */
  if (milter_client_parse_command_line (client, &args, &error) && args[1] != NULL)
    g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION,
                 "Unknown argument %s", args[1]);
  if (error != NULL || !milter_client_run (client, &error))
    {
      g_printerr ("first-filter: %s\n", error->message);
      return 1;
    }
  return 0;
}
