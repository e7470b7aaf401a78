/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: filter --header "Subject: Buy now" => headers == [("X-Subject-Flag", "advertising")] and result["negotiated"]["step"] & 0x10 and result["negotiated"]["step"] & 0x2 */
/* guide-check: filter --header "Subject: Minutes of the meeting" => headers == [] and result["status"] == "pass" */
/* performance-subject-tag: flags messages whose Subject looks like
 * advertising. Only two events have handlers, so the MTA sends neither
 * the body nor HELO, MAIL, RCPT or DATA: two round trips per message plus
 * one per header. */
#include <milter/milter.h>

/* The verdict on the Subject sits on the mail-transaction shelf, which the
 * context empties when a message ends or is aborted: no state to reset. */
static MilterStatus
on_header (MilterClientContext *context,
           const gchar         *name,
           const gchar         *value,
           gpointer             user_data)
{
  if (g_ascii_strcasecmp (name, "Subject") == 0)
    {
      gboolean advertising = g_str_has_prefix (value, "Buy ") || strstr (value, "% off") != NULL;

      milter_client_context_set_mail_transaction_shelf_value (context, "advertising",
                                                              advertising ? "yes" : "no");
    }
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  const gchar *advertising =
    milter_client_context_get_mail_transaction_shelf_value (context, "advertising");

  if (g_strcmp0 (advertising, "yes") == 0)
    milter_client_context_add_header (context, "X-Subject-Flag", "advertising", NULL);
  return MILTER_STATUS_CONTINUE;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  g_signal_connect (context, "header", G_CALLBACK (on_header), NULL);
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), NULL);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_auto(GStrv) args = g_strdupv (argv);
  g_autoptr(GError) error = NULL;

  /* Only the GBytes forms of body and end-of-message are emitted: no
   * string copy of the last chunk for an end-of-message handler. */
  g_object_set (client, "use-bytes", TRUE, NULL);
  g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established), NULL);
  if (milter_client_parse_command_line (client, &args, &error) && args[1] != NULL)
    g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION,
                 "Unknown argument %s", args[1]);
  if (error != NULL || !milter_client_run (client, &error))
    {
      g_printerr ("performance-subject-tag: %s\n", error->message);
      return 1;
    }
  return 0;
}
