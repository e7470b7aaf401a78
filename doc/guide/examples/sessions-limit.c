/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: filter -r a@example.org -r b@example.org -r c@example.org -r d@example.org => result["status"] == "pass" and [(r["address"], r["status"]) for r in result["rejected-recipients"]] == [("<d@example.org>", "temporary-failure")] and "4.5.3" in result["rejected-recipients"][0]["reply"] and headers == [("X-Message-Number", "1")] */
/* guide-check: filter --n-messages 5 --messages-per-connection 5 => result["statuses"]["pass"] == 3 and result["statuses"]["temporary-failure"] == 2 */
/* guide-check: filter --n-messages 6 --messages-per-connection 3 => result["statuses"]["pass"] == 6 */
/* guide-check: filter --n-messages 3 --messages-per-connection 3 -r a@example.org -r b@example.org -r c@example.org => result["statuses"]["pass"] == 3 */
/* sessions-limit: at most MAX_RECIPIENTS recipients per message and
 * MAX_MESSAGES messages per SMTP connection; each message gets
 * "X-Message-Number: N", its number on the connection. */
#include <milter/milter.h>

#define MAX_MESSAGES 3
#define MAX_RECIPIENTS 3

/* One SMTP connection, from connect to finished. */
typedef struct
{
  gchar *host;         /* the SMTP client, for the log */
  guint n_messages;    /* messages begun (MAIL FROM) */
  guint n_recipients;  /* accepted recipients of the current message */
} Connection;

static void
connection_free (gpointer data)
{
  Connection *connection = data;

  g_free (connection->host);
  g_free (connection);
}

static MilterStatus
on_connect (MilterClientContext *context,
            const gchar         *host_name,
            GSocketAddress      *address,
            gpointer             user_data)
{
  Connection *connection = g_new0 (Connection, 1);

  connection->host = g_strdup (host_name);
  /* The context frees it right after "finished". */
  milter_client_context_set_private_data (context, connection, connection_free);
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_envelope_from (MilterClientContext *context,
                  const gchar         *from,
                  gpointer             user_data)
{
  Connection *connection = milter_client_context_get_private_data (context);

  /* A message begins: its own state starts afresh. */
  connection->n_recipients = 0;
  if (++connection->n_messages > MAX_MESSAGES)
    {
      milter_client_context_set_reply (context, 451, "4.7.1", "Too many messages, try again later",
                                       NULL);
      return MILTER_STATUS_TEMPORARY_FAILURE;
    }
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_envelope_recipient (MilterClientContext *context,
                       const gchar         *recipient,
                       gpointer             user_data)
{
  Connection *connection = milter_client_context_get_private_data (context);

  if (connection->n_recipients == MAX_RECIPIENTS)
    {
      /* Refuses this recipient only; the message goes on. */
      milter_client_context_set_reply (context, 452, "4.5.3", "Too many recipients", NULL);
      return MILTER_STATUS_TEMPORARY_FAILURE;
    }
  connection->n_recipients++;
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  Connection *connection = milter_client_context_get_private_data (context);
  g_autofree gchar *number = g_strdup_printf ("%u", connection->n_messages);
  g_autoptr(GError) error = NULL;

  if (!milter_client_context_add_header (context, "X-Message-Number", number, &error))
    g_warning ("Cannot add the header: %s", error->message);
  return MILTER_STATUS_CONTINUE;
}

static void
on_finished (MilterClientContext *context,
             gpointer             user_data)
{
  Connection *connection = milter_client_context_get_private_data (context);

  /* NULL if the MTA went away before connect. */
  if (connection != NULL)
    g_info ("%s: %u messages", connection->host, connection->n_messages);
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  g_signal_connect (context, "connect", G_CALLBACK (on_connect), NULL);
  g_signal_connect (context, "envelope-from", G_CALLBACK (on_envelope_from), NULL);
  g_signal_connect (context, "envelope-recipient", G_CALLBACK (on_envelope_recipient), NULL);
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), NULL);
  g_signal_connect (context, "finished", G_CALLBACK (on_finished), NULL);
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
      g_printerr ("sessions-limit: %s\n", error->message);
      return 1;
    }
  return 0;
}
