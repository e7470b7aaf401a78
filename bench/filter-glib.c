/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* filter-glib: the benchmark filter on milter-glib.
 *
 *   filter-glib -s unix:PATH [--eom-only] [--n-workers N]
 *
 * Handlers for every event, a small per-connection state counting headers
 * and body bytes, one header added at end-of-message, continue
 * everywhere. --eom-only connects only an end-of-message handler, so the
 * MTA is asked to leave out every other event.
 * Not part of the library; built by bench/run.
 */
#include <milter/milter.h>

typedef struct {
  guint64 messages;
  guint64 headers;
  guint64 body_bytes;
  gboolean in_message;
} State;

static gboolean eom_only;
static guint64 total_messages;

static MilterStatus
on_connect (MilterClientContext *context,
            const gchar         *host_name,
            GSocketAddress      *address,
            State               *state)
{
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_helo (MilterClientContext *context,
         const gchar         *fqdn,
         State               *state)
{
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_envelope_from (MilterClientContext *context,
                  const gchar         *from,
                  State               *state)
{
  state->headers = 0;
  state->body_bytes = 0;
  state->in_message = TRUE;
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_envelope_recipient (MilterClientContext *context,
                       const gchar         *recipient,
                       State               *state)
{
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_data (MilterClientContext *context,
         State               *state)
{
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_header (MilterClientContext *context,
           const gchar         *name,
           const gchar         *value,
           State               *state)
{
  state->headers++;
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_end_of_header (MilterClientContext *context,
                  State               *state)
{
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_body (MilterClientContext *context,
         const gchar         *chunk,
         guint64              size,
         State               *state)
{
  state->body_bytes += size;
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   const gchar         *chunk,
                   guint64              size,
                   State               *state)
{
  g_autoptr(GError) error = NULL;

  if (state)
    {
      state->messages++;
      state->in_message = FALSE;
    }
  total_messages++;
  if (!milter_client_context_add_header (context, "X-Bench", "milter-glib", &error))
    g_warning ("add_header: %s", error->message);
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_abort (MilterClientContext     *context,
          MilterClientContextState last_state,
          State                   *state)
{
  state->in_message = FALSE;
  return MILTER_STATUS_CONTINUE;
}

static void
on_finished (MilterClientContext *context,
             State               *state)
{
  state->in_message = FALSE;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  State *state;

  if (eom_only)
    {
      g_signal_connect (context, "end-of-message", G_CALLBACK (on_end_of_message), NULL);
      return;
    }
  state = g_new0 (State, 1);
  milter_client_context_set_private_data (context, state, g_free);
  g_signal_connect (context, "connect", G_CALLBACK (on_connect), state);
  g_signal_connect (context, "helo", G_CALLBACK (on_helo), state);
  g_signal_connect (context, "envelope-from", G_CALLBACK (on_envelope_from), state);
  g_signal_connect (context, "envelope-recipient", G_CALLBACK (on_envelope_recipient), state);
  g_signal_connect (context, "data", G_CALLBACK (on_data), state);
  g_signal_connect (context, "header", G_CALLBACK (on_header), state);
  g_signal_connect (context, "end-of-header", G_CALLBACK (on_end_of_header), state);
  g_signal_connect (context, "body", G_CALLBACK (on_body), state);
  g_signal_connect (context, "end-of-message", G_CALLBACK (on_end_of_message), state);
  g_signal_connect (context, "abort", G_CALLBACK (on_abort), state);
  g_signal_connect (context, "finished", G_CALLBACK (on_finished), state);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GOptionContext) options = g_option_context_new ("- benchmark filter");
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "eom-only", 0, 0, G_OPTION_ARG_NONE, &eom_only, "Only an end-of-message handler", NULL },
    G_OPTION_ENTRY_NULL
  };

  g_option_context_add_main_entries (options, entries, NULL);
  g_option_context_add_group (options, milter_client_get_option_group (client));
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("filter-glib: %s\n", error->message);
      return 2;
    }
  g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established), NULL);
  if (!milter_client_run (client, &error))
    {
      g_printerr ("filter-glib: %s\n", error->message);
      return 1;
    }
  return 0;
}
