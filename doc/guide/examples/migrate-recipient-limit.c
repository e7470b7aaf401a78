/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: filter -r '<a@example.org>' -r '<b@example.org>' => result["status"] == "pass" and headers == [("X-Recipients", "2")] */
/* guide-check: filter -r '<a@example.org>' -r '<b@example.org>' -r '<c@example.org>' -r '<d@example.org>' => [r["address"] for r in result["rejected-recipients"]] == ["<d@example.org>"] and result["rejected-recipients"][0]["reply"] == "452 4.5.3 Too many recipients" and headers == [("X-Recipients", "3")] */
/* migrate-recipient-limit: a classic libmilter filter, ported. It accepts
 * at most MAX_RECIPIENTS recipients per message (the others get "452 4.5.3
 * Too many recipients") and records how many it accepted in a header. */
#include <milter/milter.h>

#define MAX_RECIPIENTS 3

/* Was the libmilter private data (smfi_setpriv): here one per message. */
typedef struct
{
  guint recipients;
} Message;

/* xxfi_envfrom: a new message. */
static MilterStatus
on_envelope_from (MilterClientContext *context,
                  const gchar         *from,
                  gpointer             user_data)
{
  /* Replaces and frees the last message's: no xxfi_close needed for that. */
  milter_client_context_set_private_data (context, g_new0 (Message, 1), g_free);
  return MILTER_STATUS_CONTINUE;
}

/* xxfi_envrcpt */
static MilterStatus
on_envelope_recipient (MilterClientContext *context,
                       const gchar         *recipient,
                       gpointer             user_data)
{
  Message *message = milter_client_context_get_private_data (context);

  if (message->recipients >= MAX_RECIPIENTS)
    {
      /* smfi_setreply + SMFIS_TEMPFAIL: only this recipient is refused. */
      milter_client_context_set_reply (context, 452, "4.5.3", "Too many recipients", NULL);
      return MILTER_STATUS_TEMPORARY_FAILURE;
    }
  message->recipients++;
  return MILTER_STATUS_CONTINUE;
}

/* xxfi_eom */
static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  Message *message = milter_client_context_get_private_data (context);
  g_autofree gchar *count = g_strdup_printf ("%u", message->recipients);

  /* smfi_addheader */
  milter_client_context_add_header (context, "X-Recipients", count, NULL);
  return MILTER_STATUS_CONTINUE;
}

/* Was smfi_register's struct smfiDesc: the handlers of each connection. */
static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  g_signal_connect (context, "envelope-from", G_CALLBACK (on_envelope_from), NULL);
  g_signal_connect (context, "envelope-recipient", G_CALLBACK (on_envelope_recipient), NULL);
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
  /* smfi_setconn, smfi_settimeout…: -s SPEC, --timeout… on the command
   * line; smfi_main: milter_client_run(). */
  if (milter_client_parse_command_line (client, &args, &error) && args[1] != NULL)
    g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION,
                 "Unknown argument %s", args[1]);
  if (error != NULL || !milter_client_run (client, &error))
    {
      g_printerr ("migrate-recipient-limit: %s\n", error->message);
      return 1;
    }
  return 0;
}
