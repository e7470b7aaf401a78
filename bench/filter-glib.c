/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* filter-glib: the benchmark filter on milter-glib.
 *
 *   filter-glib -s unix:PATH [--eom-only] [--signals] [--n-workers N]
 *
 * Handlers for every event, a small per-connection state counting headers
 * and body bytes, one header added at end-of-message, continue
 * everywhere. --eom-only handles only end-of-message, so the MTA is asked
 * to leave out every other event.
 *
 * The handlers are the class methods of a MilterClientContext subclass
 * (MilterClient:context-type); with --signals they are signal handlers
 * connected to each connection's context instead.
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
static gboolean use_signals;
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
  /* Tied to the context object, not to its private data: the private data
   * goes at `finished` (after a reset, K, the session goes on). */
  state = g_new0 (State, 1);
  g_object_set_data_full (G_OBJECT (context), "bench-state", state, g_free);
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

/* ---- the same filter as a MilterClientContext subclass ---------------- */

G_DECLARE_FINAL_TYPE (BenchContext, bench_context, BENCH, CONTEXT, MilterClientContext)

struct _BenchContext
{
  MilterClientContext parent_instance;
  State state;
};

G_DEFINE_FINAL_TYPE (BenchContext, bench_context, MILTER_TYPE_CLIENT_CONTEXT)

#define BENCH_TYPE_CONTEXT (bench_context_get_type ())

#define STATE(context) (&BENCH_CONTEXT (context)->state)

static MilterStatus
bench_connect (MilterClientContext *context, const gchar *host_name, GSocketAddress *address)
{
  return on_connect (context, host_name, address, STATE (context));
}

static MilterStatus
bench_helo (MilterClientContext *context, const gchar *fqdn)
{
  return on_helo (context, fqdn, STATE (context));
}

static MilterStatus
bench_envelope_from (MilterClientContext *context, const gchar *from)
{
  return on_envelope_from (context, from, STATE (context));
}

static MilterStatus
bench_envelope_recipient (MilterClientContext *context, const gchar *recipient)
{
  return on_envelope_recipient (context, recipient, STATE (context));
}

static MilterStatus
bench_data (MilterClientContext *context)
{
  return on_data (context, STATE (context));
}

static MilterStatus
bench_header (MilterClientContext *context, const gchar *name, const gchar *value)
{
  return on_header (context, name, value, STATE (context));
}

static MilterStatus
bench_end_of_header (MilterClientContext *context)
{
  return on_end_of_header (context, STATE (context));
}

static MilterStatus
bench_body (MilterClientContext *context, const gchar *chunk, guint64 size)
{
  return on_body (context, chunk, size, STATE (context));
}

static MilterStatus
bench_end_of_message (MilterClientContext *context, const gchar *chunk, guint64 size)
{
  return on_end_of_message (context, chunk, size, STATE (context));
}

static MilterStatus
bench_abort (MilterClientContext *context, MilterClientContextState last_state)
{
  return on_abort (context, last_state, STATE (context));
}

static void
bench_finished (MilterClientContext *context)
{
  on_finished (context, STATE (context));
}

static void
bench_context_class_init (BenchContextClass *klass)
{
  MilterClientContextClass *context_class = MILTER_CLIENT_CONTEXT_CLASS (klass);

  context_class->end_of_message = bench_end_of_message;
  if (eom_only)
    return;
  context_class->connect = bench_connect;
  context_class->helo = bench_helo;
  context_class->envelope_from = bench_envelope_from;
  context_class->envelope_recipient = bench_envelope_recipient;
  context_class->data = bench_data;
  context_class->header = bench_header;
  context_class->end_of_header = bench_end_of_header;
  context_class->body = bench_body;
  context_class->abort = bench_abort;
  context_class->finished = bench_finished;
}

static void
bench_context_init (BenchContext *self)
{
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
    { "signals", 0, 0, G_OPTION_ARG_NONE, &use_signals, "Signal handlers instead of a subclass", NULL },
    G_OPTION_ENTRY_NULL
  };

  g_option_context_add_main_entries (options, entries, NULL);
  g_option_context_add_group (options, milter_client_get_option_group (client));
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("filter-glib: %s\n", error->message);
      return 2;
    }
  if (use_signals)
    g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established), NULL);
  else
    g_object_set (client, "context-type", BENCH_TYPE_CONTEXT, NULL);
  if (!milter_client_run (client, &error))
    {
      g_printerr ("filter-glib: %s\n", error->message);
      return 1;
    }
  return 0;
}
