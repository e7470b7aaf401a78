/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <milter/milter.h>
#include "milter/client/milter-client-context-private.h"

/* A whole MilterClientContext session: bytes in, replies out. The first
 * bytes choose what each event's handler returns (PROGRESS included, then
 * answered on a later main-loop iteration) and how the stream is split;
 * the rest is what the MTA sends. At end-of-message the handler also asks
 * for every kind of modification. */

int LLVMFuzzerTestOneInput (const guint8 *data,
                            size_t        size);

/* negotiate, connect, helo, envelope-from, envelope-recipient, data,
 * unknown, header, end-of-header, body-bytes, end-of-message-bytes, abort */
#define N_EVENTS 12

static const MilterStatus statuses[] = {
  MILTER_STATUS_DEFAULT, MILTER_STATUS_CONTINUE, MILTER_STATUS_REJECT,
  MILTER_STATUS_TEMPORARY_FAILURE, MILTER_STATUS_ACCEPT, MILTER_STATUS_DISCARD,
  MILTER_STATUS_SKIP, MILTER_STATUS_NO_REPLY, MILTER_STATUS_PROGRESS, MILTER_STATUS_ALL_OPTIONS,
};

typedef struct
{
  MilterStatus status[N_EVENTS];
  guint8 seed;
} Plan;

static Plan plan;

#define EVENT_ABORT 11

static gboolean
reply_later (gpointer user_data)
{
  MilterClientContext *context = user_data;

  /* After the session ended this does nothing, by contract. */
  milter_client_context_reply (context, (plan.seed & 1) ? MILTER_STATUS_REJECT : MILTER_STATUS_CONTINUE);
  g_object_unref (context);
  return G_SOURCE_REMOVE;
}

static MilterStatus
decide (MilterClientContext *context,
        guint                event)
{
  MilterStatus status = plan.status[event];

  /* PROGRESS from abort is ignored by contract (abort has no reply), so
   * a reply given for it would be a programming error. */
  if (status == MILTER_STATUS_PROGRESS && event != EVENT_ABORT)
    {
      g_idle_add (reply_later, g_object_ref (context));
      if (plan.seed & 2)
        milter_client_context_progress (context, NULL);
    }
  return status;
}

static void
modify (MilterClientContext *context)
{
  static const gchar *lines[] = { "first", "second", NULL };

  milter_client_context_add_header (context, "X-Fuzz", "1", NULL);
  milter_client_context_insert_header (context, 0, "X-Top", "v\n\tfolded", NULL);
  milter_client_context_change_header (context, "Subject", 1, "changed", NULL);
  milter_client_context_delete_header (context, "Received", 2, NULL);
  milter_client_context_change_from (context, "<new@example.org>", "RET=HDRS", NULL);
  milter_client_context_add_recipient (context, "<added@example.org>", NULL, NULL);
  milter_client_context_add_recipient (context, "<param@example.org>", "NOTIFY=NEVER", NULL);
  milter_client_context_delete_recipient (context, "<gone@example.org>", NULL);
  milter_client_context_replace_body (context, "new body\r\n", 10, NULL);
  milter_client_context_quarantine (context, "fuzz", NULL);
  milter_client_context_set_multiline_reply (context, 550, "5.7.1", lines, NULL);
  milter_client_context_progress (context, NULL);
}

#define HANDLER(name, index, ...) \
  static MilterStatus name (MilterClientContext *context, __VA_ARGS__, gpointer user_data) \
  { return decide (context, index); }

static MilterStatus
on_negotiate (MilterClientContext *context, MilterOption *option, MilterMacrosRequests *requests,
              gpointer user_data)
{
  const gchar *symbols[] = { "i", "{auth_authen}", NULL };

  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_ENVELOPE_FROM, symbols);
  if (plan.seed & 4)
    milter_option_remove_step (option, MILTER_STEP_NO_REPLY_MASK & ~MILTER_STEP_NO_REPLY_HEADER);
  return decide (context, 0);
}

HANDLER (on_connect, 1, const gchar *host, GSocketAddress *address)
HANDLER (on_helo, 2, const gchar *fqdn)
HANDLER (on_envelope_from, 3, const gchar *from)
HANDLER (on_envelope_recipient, 4, const gchar *to)
HANDLER (on_unknown, 6, const gchar *command)
HANDLER (on_header, 7, const gchar *name, const gchar *value)
HANDLER (on_body, 9, GBytes *chunk)
HANDLER (on_abort, EVENT_ABORT, MilterClientContextState state)

static MilterStatus
on_data (MilterClientContext *context, gpointer user_data)
{
  return decide (context, 5);
}

static MilterStatus
on_end_of_header (MilterClientContext *context, gpointer user_data)
{
  return decide (context, 8);
}

static MilterStatus
on_end_of_message (MilterClientContext *context, GBytes *chunk, gpointer user_data)
{
  g_hash_table_unref (milter_client_context_get_command_macros (context, MILTER_COMMAND_END_OF_MESSAGE));
  milter_client_context_get_macros (context);
  milter_client_context_get_macro (context, "i");
  modify (context);
  return decide (context, 10);
}

static void
drain (MilterClientContext *context)
{
  g_bytes_unref (milter_client_context_take_output (context));
  for (guint i = 0; i < 64 && g_main_context_iteration (NULL, FALSE); i++)
    g_bytes_unref (milter_client_context_take_output (context));
}

int
LLVMFuzzerTestOneInput (const guint8 *data,
                        size_t        size)
{
  MilterClientContext *context;
  gsize piece;

  if (size < N_EVENTS + 2)
    return 0;
  for (guint i = 0; i < N_EVENTS; i++)
    plan.status[i] = statuses[data[i] % G_N_ELEMENTS (statuses)];
  plan.seed = data[N_EVENTS];
  piece = (gsize) data[N_EVENTS + 1] * 4 + 1;
  data += N_EVENTS + 2;
  size -= N_EVENTS + 2;

  context = milter_client_context_new (NULL);
  milter_client_context_set_max_packet_length (context, 256 * 1024);
  milter_client_context_set_max_headers (context, 64);
  milter_client_context_set_max_message_result_size (context, 16 * 1024);
  milter_client_context_set_max_recipients (context, 64);
  milter_client_context_set_use_bytes (context, (plan.seed & 8) != 0);
  g_signal_connect (context, "negotiate", G_CALLBACK (on_negotiate), NULL);
  g_signal_connect (context, "connect", G_CALLBACK (on_connect), NULL);
  g_signal_connect (context, "helo", G_CALLBACK (on_helo), NULL);
  g_signal_connect (context, "envelope-from", G_CALLBACK (on_envelope_from), NULL);
  g_signal_connect (context, "envelope-recipient", G_CALLBACK (on_envelope_recipient), NULL);
  g_signal_connect (context, "data", G_CALLBACK (on_data), NULL);
  g_signal_connect (context, "unknown", G_CALLBACK (on_unknown), NULL);
  g_signal_connect (context, "header", G_CALLBACK (on_header), NULL);
  g_signal_connect (context, "end-of-header", G_CALLBACK (on_end_of_header), NULL);
  g_signal_connect (context, "body-bytes", G_CALLBACK (on_body), NULL);
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), NULL);
  g_signal_connect (context, "abort", G_CALLBACK (on_abort), NULL);

  while (size > 0)
    {
      gsize n = MIN (piece, size);

      if (!milter_client_context_feed (context, (const gchar *) data, n, NULL))
        break;
      data += n;
      size -= n;
      drain (context);
    }
  drain (context);
  g_object_unref (context);
  /* Late replies scheduled for the gone context run now, harmlessly. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  return 0;
}
