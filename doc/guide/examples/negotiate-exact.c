/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: filter -h "Subject:  two  spaces" --output-message => result["negotiated"]["action"] == 0x1 and result["negotiated"]["step"] == 0x1003df and result["message"]["data"] == "Subject:  two  spaces\r\nX-Original-Subject:  two  spaces\r\n\r\n" */
/* guide-check: filter --negotiate-version 4 => result["status"] == "error" and result["stage"] == "negotiate" */
/* negotiate-exact: copies the Subject, byte for byte, into
 * X-Original-Subject. It asks the MTA for exactly what it needs: header
 * values with their leading space, no reply to each header, no other
 * event, and the one action it uses. */
#include <milter/milter.h>

static MilterStatus
on_negotiate (MilterClientContext  *context,
              MilterOption         *option,
              MilterMacrosRequests *requests,
              gpointer              user_data)
{
  MilterStepFlags offered = milter_option_get_step (option);
  MilterStepFlags wanted = MILTER_STEP_HEADER_LEADING_SPACE | MILTER_STEP_NO_REPLY_HEADER |
                           MILTER_STEP_NO_CONNECT | MILTER_STEP_NO_HELO |
                           MILTER_STEP_NO_ENVELOPE_FROM | MILTER_STEP_NO_ENVELOPE_RECIPIENT |
                           MILTER_STEP_NO_DATA | MILTER_STEP_NO_END_OF_HEADER |
                           MILTER_STEP_NO_BODY | MILTER_STEP_NO_UNKNOWN;

  if (!(offered & MILTER_STEP_HEADER_LEADING_SPACE) ||
      !(milter_option_get_action (option) & MILTER_ACTION_ADD_HEADERS))
    {
      /* The MTA then does what it is set to do when a filter fails. */
      g_message ("The MTA cannot send header values unchanged or add headers");
      return MILTER_STATUS_REJECT;
    }
  /* The option holds the MTA's offer: replace it with the request, and
   * only with bits the MTA offered. */
  milter_option_set_action (option, MILTER_ACTION_ADD_HEADERS);
  milter_option_set_step (option, wanted & offered);
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_header (MilterClientContext *context,
           const gchar         *name,
           const gchar         *value,
           gpointer             user_data)
{
  /* The value starts with the space after the colon, if there was one. */
  if (g_ascii_strcasecmp (name, "Subject") == 0 &&
      milter_client_context_get_mail_transaction_shelf_value (context, "subject") == NULL)
    milter_client_context_set_mail_transaction_shelf_value (context, "subject", value);
  /* The MTA waits for no reply to a header. */
  return MILTER_STATUS_NO_REPLY;
}

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  const gchar *subject = milter_client_context_get_mail_transaction_shelf_value (context, "subject");
  g_autoptr(GError) error = NULL;

  /* With the leading space negotiated, the MTA adds no space after the
   * colon of added headers either: the copy is exact. */
  if (subject != NULL &&
      !milter_client_context_add_header (context, "X-Original-Subject", subject, &error))
    g_warning ("Cannot add the header: %s", error->message);
  return MILTER_STATUS_CONTINUE;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  g_signal_connect (context, "negotiate", G_CALLBACK (on_negotiate), NULL);
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

  g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established), NULL);
  if (milter_client_parse_command_line (client, &args, &error) && args[1] != NULL)
    g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION,
                 "Unknown argument %s", args[1]);
  if (error != NULL || !milter_client_run (client, &error))
    {
      g_printerr ("negotiate-exact: %s\n", error->message);
      return 1;
    }
  return 0;
}
