/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <milter/milter.h>

/* MilterServerContext reading what a milter answers: the input is the
 * milter's side of a whole session (negotiation reply, replies, progress,
 * modifications), read while the context plays a full session. */

int LLVMFuzzerTestOneInput (const guint8 *data,
                            size_t        size);

typedef struct
{
  MilterServerContext *context;
  guint step;
  gboolean done;
} Session;

static void next_step (Session *session);

typedef MilterStatus (*StatusFinish) (MilterServerContext *, GAsyncResult *, GError **);

/* The finish function of each step that returns a verdict (1 to 10). */
static const StatusFinish status_finishers[] = {
  NULL,
  milter_server_context_connect_finish,
  milter_server_context_helo_finish,
  milter_server_context_envelope_from_finish,
  milter_server_context_envelope_recipient_finish,
  milter_server_context_data_finish,
  milter_server_context_header_finish,
  milter_server_context_end_of_header_finish,
  milter_server_context_body_finish,
  milter_server_context_end_of_message_finish,
  milter_server_context_unknown_finish,
};

static void
on_step_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Session *session = user_data;
  g_autoptr(GError) error = NULL;

  if (session->step == 0)
    milter_server_context_negotiate_finish (session->context, result, &error);
  else if (session->step < G_N_ELEMENTS (status_finishers))
    status_finishers[session->step] (session->context, result, &error);
  else
    milter_server_context_quit_finish (session->context, result, &error);
  if (error != NULL || milter_server_context_is_closed (session->context))
    {
      session->done = TRUE;
      return;
    }
  session->step++;
  next_step (session);
}

static void
next_step (Session *session)
{
  MilterServerContext *c = session->context;
  const gchar *none[] = { NULL };
  g_autoptr(GBytes) chunk = g_bytes_new_static ("body\r\n", 6);

  switch (session->step)
    {
    case 0: milter_server_context_negotiate_async (c, NULL, NULL, on_step_done, session); break;
    case 1: milter_server_context_connect_async (c, "client.example", NULL, NULL, on_step_done, session); break;
    case 2: milter_server_context_helo_async (c, "client.example", NULL, on_step_done, session); break;
    case 3: milter_server_context_envelope_from_async (c, "<a@example.org>", none, NULL, on_step_done, session); break;
    case 4: milter_server_context_envelope_recipient_async (c, "<b@example.org>", none, NULL, on_step_done, session); break;
    case 5: milter_server_context_data_async (c, NULL, on_step_done, session); break;
    case 6: milter_server_context_header_async (c, "Subject", "fuzz", NULL, on_step_done, session); break;
    case 7: milter_server_context_end_of_header_async (c, NULL, on_step_done, session); break;
    case 8: milter_server_context_body_async (c, chunk, NULL, on_step_done, session); break;
    case 9: milter_server_context_end_of_message_async (c, NULL, on_step_done, session); break;
    case 10: milter_server_context_unknown_async (c, "XFOO", NULL, on_step_done, session); break;
    case 11: milter_server_context_quit_async (c, NULL, on_step_done, session); break;
    default: session->done = TRUE; break;
    }
}

int
LLVMFuzzerTestOneInput (const guint8 *data,
                        size_t        size)
{
  g_autoptr(GInputStream) input = g_memory_input_stream_new_from_data (g_memdup2 (data, size), (gssize) size, g_free);
  g_autoptr(GOutputStream) output = g_memory_output_stream_new_resizable ();
  g_autoptr(GIOStream) stream = g_simple_io_stream_new (input, output);
  Session session = { milter_server_context_new (), 0, FALSE };
  g_autoptr(MilterMessage) message = milter_message_new ();
  guint guard = 0;

  milter_server_context_set_stream (session.context, stream);
  next_step (&session);
  while (!session.done && guard++ < 100000)
    g_main_context_iteration (NULL, TRUE);
  {
    GPtrArray *modifications = milter_server_context_get_modifications (session.context);

    if (modifications != NULL)
      milter_message_apply_modifications (message, modifications, NULL);
  }
  milter_server_context_close (session.context);
  g_object_unref (session.context);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  return 0;
}
