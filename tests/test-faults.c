/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "mta-harness.h"
#include "test-util.h"
#include "milter/client/milter-client-context-private.h"
#include "milter/core/milter-encoder-private.h"

/* Fault injection over real sockets: the MTA goes away at every point of a
 * session. Whatever happens, `abort` (for an open message) and `finished`
 * come exactly once, the private data is freed exactly once, and a reply
 * given after the MTA left does nothing. */

typedef struct
{
  gchar command;
  gboolean replied;   /* the MTA waits for a reply */
  gboolean in_message;
} Step;

/* A session with two messages; RSET-style abort between them. */
static const Step session[] = {
  { 'O', TRUE, FALSE }, { 'C', TRUE, FALSE }, { 'H', TRUE, FALSE },
  { 'M', TRUE, TRUE }, { 'R', TRUE, TRUE }, { 'T', TRUE, TRUE }, { 'L', TRUE, TRUE },
  { 'N', TRUE, TRUE }, { 'B', TRUE, TRUE }, { 'E', TRUE, FALSE }, { 'A', FALSE, FALSE },
  { 'M', TRUE, TRUE }, { 'R', TRUE, TRUE }, { 'T', TRUE, TRUE }, { 'L', TRUE, TRUE },
  { 'N', TRUE, TRUE }, { 'B', TRUE, TRUE }, { 'A', FALSE, FALSE }, { 'Q', FALSE, FALSE },
};

static void
encode_step (GByteArray *out,
             gchar       command)
{
  g_autoptr(MilterOption) offer = milter_option_new_postfix ();

  switch (command)
    {
    case 'O': milter_encoder_encode_negotiate (out, offer); break;
    case 'C': milter_encoder_encode_connect_raw (out, "client.example", '4', 25, "192.0.2.1"); break;
    case 'H': milter_encoder_encode_string (out, 'H', "client.example"); break;
    case 'M': milter_encoder_encode_envelope (out, 'M', "<a@example.org>", NULL); break;
    case 'R': milter_encoder_encode_envelope (out, 'R', "<b@example.org>", NULL); break;
    case 'L': milter_encoder_encode_header (out, 'L', "Subject", "fault injection"); break;
    case 'B': milter_encoder_encode_data (out, 'B', "body\r\n", 6); break;
    default: milter_encoder_encode_empty (out, command); break;
    }
}

typedef struct
{
  guint finished;
  guint aborts;
  guint frees;
  MilterClientContext *pending;  /* a context whose reply is deferred */
} Counts;

static void
count_free (gpointer data)
{
  ((Counts *) data)->frees++;
}

static MilterStatus
on_connect (MilterClientContext *context,
            const gchar         *host,
            GSocketAddress      *address,
            Counts              *counts)
{
  milter_client_context_set_private_data (context, counts, count_free);
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_abort (MilterClientContext     *context,
          MilterClientContextState state,
          Counts                  *counts)
{
  counts->aborts++;
  return MILTER_STATUS_CONTINUE;
}

static void
on_finished (MilterClientContext *context,
             Counts              *counts)
{
  counts->finished++;
}

static MilterStatus
defer (MilterClientContext *context,
       Counts              *counts)
{
  counts->pending = context;
  return MILTER_STATUS_PROGRESS;
}

static MilterStatus
defer_with_bytes (MilterClientContext *context,
                  GBytes              *chunk,
                  Counts              *counts)
{
  return defer (context, counts);
}

static MilterStatus
defer_with_string (MilterClientContext *context,
                   const gchar         *value,
                   Counts              *counts)
{
  return defer (context, counts);
}

static MilterStatus
continue_with_string (MilterClientContext *context,
                      const gchar         *value,
                      Counts              *counts)
{
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
continue_plain (MilterClientContext *context,
                Counts              *counts)
{
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
continue_with_bytes (MilterClientContext *context,
                     GBytes              *chunk,
                     Counts              *counts)
{
  return MILTER_STATUS_CONTINUE;
}

/* Counters, and a handler for every event so the MTA is asked to send
 * them all and waits for each reply. */
static void
connect_counting_handlers (MilterClientContext *context,
                           Counts              *counts)
{
  g_signal_connect (context, "connect", G_CALLBACK (on_connect), counts);
  g_signal_connect (context, "abort", G_CALLBACK (on_abort), counts);
  g_signal_connect (context, "finished", G_CALLBACK (on_finished), counts);
  g_signal_connect (context, "helo", G_CALLBACK (continue_with_string), counts);
  g_signal_connect (context, "envelope-from", G_CALLBACK (continue_with_string), counts);
  g_signal_connect (context, "envelope-recipient", G_CALLBACK (continue_with_string), counts);
  g_signal_connect (context, "data", G_CALLBACK (continue_plain), counts);
  g_signal_connect (context, "header", G_CALLBACK (continue_with_string), counts);
  g_signal_connect (context, "end-of-header", G_CALLBACK (continue_plain), counts);
  g_signal_connect (context, "body-bytes", G_CALLBACK (continue_with_bytes), counts);
}

typedef enum
{
  CLOSE_AFTER,         /* after command k (and its reply) */
  CLOSE_MID_PACKET,    /* halfway through command k + 1 */
  CLOSE_WHILE_PENDING, /* command k's reply is deferred when the MTA goes */
} Fault;

static void
wait_for (guint   *value,
          guint    expected)
{
  gint64 until = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

  while (*value < expected && g_get_monotonic_time () < until)
    g_main_context_iteration (NULL, FALSE), g_usleep (100);
}

/* Plays the first @k commands, then goes away as @fault says. */
static void
run_fault (guint k,
           Fault fault)
{
  g_autoptr(GIOStream) filter_end = NULL;
  MtaHarness *mta = mta_harness_new_pair (&filter_end);
  MilterClientContext *context = milter_client_context_new (NULL);
  g_autoptr(GByteArray) out = g_byte_array_new ();
  Counts counts = { 0 };
  gboolean in_message = FALSE;
  guint expected_aborts = 0;
  gboolean deferring = fault == CLOSE_WHILE_PENDING && session[k].replied;

  connect_counting_handlers (context, &counts);
  g_assert_true (milter_client_context_start (context, filter_end, NULL));

  for (guint i = 0; i <= k && i < G_N_ELEMENTS (session); i++)
    {
      gboolean last = i == k;

      if (last && deferring)
        {
          /* The reply to this command is deferred; the MTA then leaves. */
          switch (session[i].command)
            {
            case 'H':
              g_signal_handlers_disconnect_by_func (context, continue_with_string, &counts);
              g_signal_connect (context, "helo", G_CALLBACK (defer_with_string), &counts);
              break;
            default:
              g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (defer_with_bytes), &counts);
              break;
            }
        }
      encode_step (out, session[i].command);
      mta_harness_send (mta, out);
      if (session[i].command == 'M')
        in_message = TRUE;
      if (session[i].command == 'A' && in_message)
        expected_aborts++;  /* the MTA's own abort */
      /* A message whose end-of-message reply is still deferred when the
       * MTA leaves is open, and gets aborted. */
      if ((session[i].command == 'E' && !(last && deferring)) || session[i].command == 'A')
        in_message = FALSE;
      if (session[i].replied && !(last && deferring))
        g_free (mta_harness_read (mta));
    }

  if (fault == CLOSE_MID_PACKET && k + 1 < G_N_ELEMENTS (session))
    {
      encode_step (out, session[k + 1].command);
      g_byte_array_set_size (out, out->len / 2 + 1);
      mta_harness_send (mta, out);
    }
  test_util_run_for (5);
  mta_harness_close (mta);

  wait_for (&counts.finished, 1);
  test_util_run_for (10);
  g_test_message ("fault %d after %u ('%c'): finished %u, aborts %u, frees %u", fault, k,
                  session[k].command, counts.finished, counts.aborts, counts.frees);
  g_assert_cmpuint (counts.finished, ==, 1);
  /* A message open when the MTA left is aborted exactly once. */
  if (in_message)
    expected_aborts++;
  g_assert_cmpuint (counts.aborts, ==, expected_aborts);
  /* Private data, set at connect, is freed exactly once. */
  g_assert_cmpuint (counts.frees, ==, (k >= 1 ? 1u : 0u));

  /* A reply given now, after the MTA left, does nothing. */
  if (counts.pending != NULL)
    {
      milter_client_context_reply (counts.pending, MILTER_STATUS_REJECT);
      test_util_run_for (5);
      g_assert_cmpuint (counts.finished, ==, 1);
    }
  g_object_unref (context);
  g_assert_cmpuint (counts.frees, ==, (k >= 1 ? 1u : 0u));
  mta_harness_free (mta);
}

static void
test_disconnect_after_every_command (void)
{
  for (guint k = 0; k < G_N_ELEMENTS (session); k++)
    run_fault (k, CLOSE_AFTER);
}

static void
test_disconnect_mid_packet (void)
{
  for (guint k = 0; k + 1 < G_N_ELEMENTS (session); k++)
    run_fault (k, CLOSE_MID_PACKET);
}

static void
test_disconnect_while_reply_pending (void)
{
  static const gchar deferrable[] = "HE";

  for (guint k = 0; k < G_N_ELEMENTS (session); k++)
    if (strchr (deferrable, session[k].command) != NULL)
      run_fault (k, CLOSE_WHILE_PENDING);
}

static MilterStatus
replace_with_big_body (MilterClientContext *context,
                       GBytes              *chunk,
                       Counts              *counts)
{
  gsize size = 8 * 1024 * 1024;
  g_autofree gchar *body = g_malloc (size);

  memset (body, 'x', size);
  g_assert_true (milter_client_context_replace_body (context, body, size, NULL));
  return MILTER_STATUS_CONTINUE;
}

static void
on_error (MilterClientContext *context,
          GError              *error,
          GError             **where)
{
  g_clear_error (where);
  *where = g_error_copy (error);
}

/* The MTA closes while an 8 MiB replacement body is being written: the
 * write fails, and the session ends cleanly. */
static void
test_write_error (void)
{
  g_autoptr(GIOStream) filter_end = NULL;
  MtaHarness *mta = mta_harness_new_pair (&filter_end);
  MilterClientContext *context = milter_client_context_new (NULL);
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  Counts counts = { 0 };

  connect_counting_handlers (context, &counts);
  g_signal_connect (context, "error", G_CALLBACK (on_error), &error);
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (replace_with_big_body), &counts);
  g_assert_true (milter_client_context_start (context, filter_end, NULL));

  /* O C H M R T L N B, then end-of-message. */
  for (guint i = 0; i < 9; i++)
    {
      encode_step (out, session[i].command);
      mta_harness_send (mta, out);
      g_free (mta_harness_read (mta));
    }
  encode_step (out, 'E');
  mta_harness_send (mta, out);
  /* Let the filter start writing, then leave without reading. */
  test_util_run_for (50);
  mta_harness_close (mta);
  wait_for (&counts.finished, 1);
  g_assert_cmpuint (counts.finished, ==, 1);
  g_assert_cmpuint (counts.frees, ==, 1);
  g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_IO);
  g_object_unref (context);
  mta_harness_free (mta);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/faults/disconnect-after-every-command", test_disconnect_after_every_command);
  g_test_add_func ("/faults/disconnect-mid-packet", test_disconnect_mid_packet);
  g_test_add_func ("/faults/disconnect-while-reply-pending", test_disconnect_while_reply_pending);
  g_test_add_func ("/faults/write-error", test_write_error);

  return g_test_run ();
}
