/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: filter --envelope-from-macro "{auth_authen}:alice" -f "<alice@example.com>" => headers == [("X-Authenticated-User", "alice from 192.0.2.1")] and result["negotiated"]["macros"] == '2:"{auth_authen} {client_addr}"' and (result["negotiated"]["step"] & 0x4) == 0 and (result["negotiated"]["step"] & 0x8) != 0 */
/* guide-check: filter -f "<eve@Example.COM>" => result["status"] == "reject" and result["stage"] == "envelope-from" and result["reply"] == "550 5.7.1 Log in to send as a local user" */
/* guide-check: filter -f "<bob@example.org>" => result["status"] == "pass" and headers == [] */
/* negotiate-auth: asks the MTA for the SMTP AUTH user name and the client's
 * address with MAIL FROM. Senders in the local domain must have logged in;
 * mail from users who did is stamped with their name and address. */
#include <milter/milter.h>

#define LOCAL_DOMAIN "@example.com>"

static MilterStatus
on_negotiate (MilterClientContext  *context,
              MilterOption         *option,
              MilterMacrosRequests *requests,
              gpointer              user_data)
{
  const gchar *mail[] = { "{auth_authen}", "{client_addr}", NULL };

  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_ENVELOPE_FROM, mail);
  /* Every offered action; the events without a handler left out. */
  return MILTER_STATUS_ALL_OPTIONS;
}

static MilterStatus
on_envelope_from (MilterClientContext *context,
                  const gchar         *from,
                  gpointer             user_data)
{
  const gchar *user = milter_client_context_get_macro (context, "{auth_authen}");
  g_autofree gchar *sender = g_ascii_strdown (from, -1);
  g_autoptr(GError) error = NULL;

  if ((user == NULL || *user == '\0') && g_str_has_suffix (sender, LOCAL_DOMAIN))
    {
      if (!milter_client_context_set_reply (context, 550, "5.7.1",
                                            "Log in to send as a local user", &error))
        g_warning ("%s", error->message);
      return MILTER_STATUS_REJECT;
    }
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  /* The macros of MAIL FROM are kept until the message ends. */
  const gchar *user = milter_client_context_get_macro (context, "{auth_authen}");
  const gchar *address = milter_client_context_get_macro (context, "{client_addr}");
  g_autoptr(GError) error = NULL;
  g_autofree gchar *stamp = NULL;

  if (user == NULL || *user == '\0')
    return MILTER_STATUS_CONTINUE;
  stamp = g_strdup_printf ("%s from %s", user, address != NULL ? address : "an unknown address");
  if (!milter_client_context_add_header (context, "X-Authenticated-User", stamp, &error))
    g_warning ("Cannot add the header: %s", error->message);
  return MILTER_STATUS_CONTINUE;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  g_signal_connect (context, "negotiate", G_CALLBACK (on_negotiate), NULL);
  g_signal_connect (context, "envelope-from", G_CALLBACK (on_envelope_from), NULL);
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
      g_printerr ("negotiate-auth: %s\n", error->message);
      return 1;
    }
  return 0;
}
