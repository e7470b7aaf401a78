/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: filter --helo-fqdn localhost => headers in ([("X-HELO-Resolved", "localhost=127.0.0.1")], [("X-HELO-Resolved", "localhost=::1")]) */
/* guide-check: filter --helo-fqdn no-such-host.invalid => result["status"] == "pass" and headers == [("X-HELO-Resolved", "no-such-host.invalid=unresolved")] */
/* guide-check: filter --helo-fqdn localhost --n-messages 100 --concurrency 16 => result["statuses"]["pass"] == 100 and result["errors"] == 0 */
/* resolve-helo: an asynchronous milter. At HELO it looks the name up in
 * DNS with GResolver; meanwhile the reply is deferred (PROGRESS) and the
 * main loop serves the other connections. At end-of-message it records
 * the result in a header.
 *
 *   resolve-helo -s inet:10025@127.0.0.1
 */
#include <milter/milter.h>

/* What the connection learnt about its HELO name. */
typedef struct
{
  gchar *helo;
  gchar *result;
} Connection;

static void
connection_free (gpointer data)
{
  Connection *connection = data;

  g_free (connection->helo);
  g_free (connection->result);
  g_free (connection);
}

static void
on_resolved (GObject      *resolver,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(MilterClientContext) context = user_data;
  g_autoptr(GError) error = NULL;
  GList *addresses = g_resolver_lookup_by_name_finish (G_RESOLVER (resolver), result, &error);
  Connection *connection = milter_client_context_get_private_data (context);

  /* The MTA may have gone meanwhile: then the connection's data is gone
   * too and the reply below does nothing. */
  if (connection != NULL)
    {
      if (addresses != NULL)
        connection->result = g_inet_address_to_string (addresses->data);
      else
        connection->result = g_strdup ("unresolved");
    }
  g_resolver_free_addresses (addresses);
  /* Answer the deferred HELO now. */
  milter_client_context_reply (context, MILTER_STATUS_CONTINUE);
}

static MilterStatus
on_helo (MilterClientContext *context,
         const gchar         *fqdn,
         gpointer             user_data)
{
  Connection *connection = g_new0 (Connection, 1);

  connection->helo = g_strdup (fqdn);
  milter_client_context_set_private_data (context, connection, connection_free);
  g_resolver_lookup_by_name_async (g_resolver_get_default (), fqdn, NULL, on_resolved,
                                   g_object_ref (context));
  /* Not known yet: the context reads nothing more from this MTA until
   * milter_client_context_reply() is called. */
  return MILTER_STATUS_PROGRESS;
}

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  Connection *connection = milter_client_context_get_private_data (context);
  g_autofree gchar *value = NULL;
  g_autoptr(GError) error = NULL;

  if (connection == NULL)
    return MILTER_STATUS_CONTINUE;  /* no HELO was given */
  value = g_strdup_printf ("%s=%s", connection->helo, connection->result);
  if (!milter_client_context_add_header (context, "X-HELO-Resolved", value, &error))
    g_warning ("%s", error->message);
  return MILTER_STATUS_CONTINUE;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  g_signal_connect (context, "helo", G_CALLBACK (on_helo), NULL);
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), NULL);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GOptionContext) options = g_option_context_new ("- record whether the HELO name resolves");
  g_autoptr(GError) error = NULL;

  g_option_context_add_group (options, milter_client_get_option_group (client));
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("resolve-helo: %s\n", error->message);
      return 2;
    }
  g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established), NULL);
  if (!milter_client_run (client, &error))
    {
      g_printerr ("resolve-helo: %s\n", error->message);
      return 1;
    }
  return 0;
}
