/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "mta-harness.h"
#include "test-util.h"
#include "milter/client/milter-client-context-private.h"
#include "milter/core/milter-encoder-private.h"

/* The filter side played against an in-process MTA over a socket pair:
 * every test checks the exact replies the context writes. */

typedef struct _Fixture Fixture;
typedef void (*Action) (Fixture *f);

struct _Fixture
{
  MilterClientContext *context;
  MtaHarness *mta;
  GString *events;             /* "connect helo …" as handlers saw them */
  GHashTable *statuses;        /* event name → MilterStatus */
  GHashTable *actions;         /* event name → Action, run in the handler */
  guint n_finished;
  guint n_abort;
  guint n_errors;
  GError *error;
  GPtrArray *results;          /* of MilterMessageResult */
  guint private_frees;
};

typedef struct
{
  Fixture *f;
  const gchar *name;
} Hook;

static MilterStatus
hook_status (Hook        *hook,
             const gchar *detail)
{
  Fixture *f = hook->f;
  Action action = g_hash_table_lookup (f->actions, hook->name);

  g_string_append_printf (f->events, "%s%s%s%s", f->events->len > 0 ? " " : "", hook->name,
                          detail != NULL ? ":" : "", detail != NULL ? detail : "");
  if (action != NULL)
    action (f);
  return GPOINTER_TO_INT (g_hash_table_lookup (f->statuses, hook->name));
}

static MilterStatus
on_void (MilterClientContext *context,
         Hook                *hook)
{
  return hook_status (hook, NULL);
}

static MilterStatus
on_string (MilterClientContext *context,
           const gchar         *value,
           Hook                *hook)
{
  return hook_status (hook, value);
}

static MilterStatus
on_header (MilterClientContext *context,
           const gchar         *name,
           const gchar         *value,
           Hook                *hook)
{
  g_autofree gchar *detail = g_strdup_printf ("%s=%s", name, value);

  return hook_status (hook, detail);
}

static MilterStatus
on_connect (MilterClientContext *context,
            const gchar         *host,
            GSocketAddress      *address,
            Hook                *hook)
{
  g_autofree gchar *spec = address != NULL ? milter_connection_spec_format (address, NULL) : NULL;
  g_autofree gchar *detail = g_strdup_printf ("%s=%s", host, spec != NULL ? spec : "none");

  return hook_status (hook, detail);
}

static MilterStatus
on_chunk (MilterClientContext *context,
          const gchar         *chunk,
          guint64              size,
          Hook                *hook)
{
  g_autofree gchar *hex = chunk != NULL ? test_util_hex (chunk, size) : g_strdup ("null");

  /* The string form is NUL-terminated in place. */
  if (chunk != NULL)
    g_assert_cmpint (chunk[size], ==, '\0');
  return hook_status (hook, hex);
}

static MilterStatus
on_bytes (MilterClientContext *context,
          GBytes              *chunk,
          Hook                *hook)
{
  g_autofree gchar *hex = chunk != NULL ? test_util_bytes_to_hex (chunk) : g_strdup ("null");

  return hook_status (hook, hex);
}

static MilterStatus
on_negotiate (MilterClientContext  *context,
              MilterOption         *option,
              MilterMacrosRequests *requests,
              Hook                 *hook)
{
  return hook_status (hook, NULL);
}

static MilterStatus
on_abort (MilterClientContext     *context,
          MilterClientContextState state,
          Hook                    *hook)
{
  hook->f->n_abort++;
  return hook_status (hook, NULL);
}

static void
on_finished (MilterClientContext *context,
             Fixture             *f)
{
  f->n_finished++;
  g_string_append_printf (f->events, "%sfinished", f->events->len > 0 ? " " : "");
}

static void
on_error (MilterClientContext *context,
          GError              *error,
          Fixture             *f)
{
  f->n_errors++;
  g_test_message ("error signal: %s", error->message);
  g_clear_error (&f->error);
  f->error = g_error_copy (error);
}

static void
on_message_processed (MilterClientContext *context,
                      MilterMessageResult *result,
                      Fixture             *f)
{
  g_ptr_array_add (f->results, g_object_ref (result));
}

static void
hook (Fixture     *f,
      const gchar *signal)
{
  Hook *data = g_new (Hook, 1);
  GCallback callback;

  data->f = f;
  data->name = signal;
  if (g_str_equal (signal, "negotiate"))
    callback = G_CALLBACK (on_negotiate);
  else if (g_str_equal (signal, "connect"))
    callback = G_CALLBACK (on_connect);
  else if (g_str_equal (signal, "header"))
    callback = G_CALLBACK (on_header);
  else if (g_str_equal (signal, "body") || g_str_equal (signal, "end-of-message"))
    callback = G_CALLBACK (on_chunk);
  else if (g_str_has_suffix (signal, "-bytes"))
    callback = G_CALLBACK (on_bytes);
  else if (g_str_equal (signal, "abort"))
    callback = G_CALLBACK (on_abort);
  else if (g_str_equal (signal, "helo") || g_str_equal (signal, "envelope-from") ||
           g_str_equal (signal, "envelope-recipient") || g_str_equal (signal, "unknown"))
    callback = G_CALLBACK (on_string);
  else
    callback = G_CALLBACK (on_void);
  g_signal_connect_data (f->context, signal, callback, data, (GClosureNotify) G_CALLBACK (g_free), 0);
}

static const gchar *all_events[] = {
  "connect", "helo", "envelope-from", "envelope-recipient", "data", "unknown", "header",
  "end-of-header", "body-bytes", "end-of-message-bytes", "abort",
};

static void
hook_all (Fixture *f)
{
  for (guint i = 0; i < G_N_ELEMENTS (all_events); i++)
    hook (f, all_events[i]);
}

static void
set_status (Fixture      *f,
            const gchar  *event,
            MilterStatus  status)
{
  g_hash_table_insert (f->statuses, (gpointer) event, GINT_TO_POINTER (status));
}

static void
set_action (Fixture     *f,
            const gchar *event,
            Action       action)
{
  g_hash_table_insert (f->actions, (gpointer) event, action);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GIOStream) filter_end = NULL;
  g_autoptr(GError) error = NULL;

  f->mta = mta_harness_new_pair (&filter_end);
  f->context = milter_client_context_new (NULL);
  f->events = g_string_new (NULL);
  f->statuses = g_hash_table_new (g_str_hash, g_str_equal);
  f->actions = g_hash_table_new (g_str_hash, g_str_equal);
  f->results = g_ptr_array_new_with_free_func (g_object_unref);
  g_signal_connect (f->context, "finished", G_CALLBACK (on_finished), f);
  g_signal_connect (f->context, "error", G_CALLBACK (on_error), f);
  g_signal_connect (f->context, "message-processed", G_CALLBACK (on_message_processed), f);
  g_assert_true (milter_client_context_start (f->context, filter_end, &error));
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_object (&f->context);
  mta_harness_free (f->mta);
  g_string_free (f->events, TRUE);
  g_hash_table_unref (f->statuses);
  g_hash_table_unref (f->actions);
  g_ptr_array_unref (f->results);
  g_clear_error (&f->error);
  /* Nothing may be left scheduled. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static void
wait_finished (Fixture *f)
{
  gboolean done = FALSE;
  gint64 until = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

  while (f->n_finished == 0 && g_get_monotonic_time () < until)
    g_main_context_iteration (NULL, FALSE), g_usleep (200);
  done = f->n_finished > 0;
  g_assert_true (done);
  /* And exactly once. */
  test_util_run_for (20);
  g_assert_cmpuint (f->n_finished, ==, 1);
}

#define POSTFIX_ACTIONS 0x1ff
#define POSTFIX_STEPS 0x1fffff

/* Negotiates like Postfix with the given handlers connected and checks the
 * reply. */
static void
negotiate (Fixture *f)
{
  g_autofree gchar *reply = NULL;

  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS);
  reply = mta_harness_read (f->mta);
  g_assert_true (g_str_has_prefix (reply, "O 6 0x1ff "));
}

static void
connect_and_helo (Fixture *f)
{
  mta_harness_connect (f->mta, "client.example", "inet:4321@192.0.2.1");
  mta_harness_expect (f->mta, "c");
  mta_harness_helo (f->mta, "client.example");
  mta_harness_expect (f->mta, "c");
}

/* ---- negotiation --------------------------------------------------------- */

static guint32
reply_steps (Fixture *f)
{
  g_autofree gchar *reply = mta_harness_read (f->mta);
  guint version, action, step;

  g_assert_cmpint (sscanf (reply, "O %u 0x%x 0x%x", &version, &action, &step), ==, 3);
  g_assert_cmpuint (version, ==, 6);
  g_assert_cmpuint (action, ==, POSTFIX_ACTIONS);
  return step;
}

static void
test_negotiate_all_handlers (Fixture *f, gconstpointer data)
{
  hook_all (f);
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS);
  /* Nothing left out; skip understood. */
  g_assert_cmpuint (reply_steps (f), ==, MILTER_STEP_SKIP);
}

/* libmilter's rule: every event without a handler is left out (and
 * answered by nobody). */
static void
test_negotiate_only_end_of_message (Fixture *f, gconstpointer data)
{
  guint32 expected = MILTER_STEP_NO_CONNECT | MILTER_STEP_NO_HELO | MILTER_STEP_NO_ENVELOPE_FROM |
                     MILTER_STEP_NO_ENVELOPE_RECIPIENT | MILTER_STEP_NO_BODY |
                     MILTER_STEP_NO_HEADERS | MILTER_STEP_NO_END_OF_HEADER |
                     MILTER_STEP_NO_UNKNOWN | MILTER_STEP_NO_DATA | MILTER_STEP_NO_REPLY_MASK |
                     MILTER_STEP_SKIP;

  g_signal_handlers_disconnect_by_func (f->context, on_message_processed, f);
  hook (f, "end-of-message");
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS);
  g_assert_cmpuint (reply_steps (f), ==, expected);

  /* The MTA then sends only end-of-message (and macros). */
  mta_harness_macro (f->mta, 'C', "j", "mx.example");
  mta_harness_macro (f->mta, 'E', "i", "QUEUEID");
  mta_harness_end_of_message (f->mta);
  mta_harness_expect (f->mta, "c");
  g_assert_cmpstr (f->events->str, ==, "end-of-message:null");
  g_assert_cmpstr (milter_client_context_get_macro (f->context, "j"), ==, "mx.example");
  g_assert_cmpuint (f->results->len, ==, 0);  /* no message-processed handler */
}

/* A message-processed handler keeps what the result needs. */
static void
test_negotiate_message_processed_keeps_steps (Fixture *f, gconstpointer data)
{
  guint32 step;

  hook (f, "end-of-message");
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS);
  step = reply_steps (f);
  g_assert_false (step & MILTER_STEP_NO_ENVELOPE_FROM);
  g_assert_false (step & MILTER_STEP_NO_ENVELOPE_RECIPIENT);
  g_assert_false (step & MILTER_STEP_NO_HEADERS);
  g_assert_false (step & MILTER_STEP_NO_BODY);
  g_assert_true (step & MILTER_STEP_NO_CONNECT);
  /* …and they are answered, since the MTA waits for replies. */
  g_assert_false (step & MILTER_STEP_NO_REPLY_HEADER);
}

/* Never a bit the MTA did not offer; the version follows the offer. */
static void
test_negotiate_old_mta (Fixture *f, gconstpointer data)
{
  g_signal_handlers_disconnect_by_func (f->context, on_message_processed, f);
  hook (f, "header");
  hook (f, "end-of-message");
  mta_harness_negotiate (f->mta, 2, 0x3f, 0x7f);
  mta_harness_expect (f->mta, "O 2 0x3f 0x5f");  /* 0x7f without NO_HEADERS */

  /* Version 2 has no DATA: RCPT is followed by headers. */
  mta_harness_connect (f->mta, "h", NULL);
  mta_harness_header (f->mta, "Subject", "x");
  mta_harness_expect (f->mta, "c");
}

/* Zero fields mean what protocol version 1 offered. */
static void
test_negotiate_zero_fields (Fixture *f, gconstpointer data)
{
  hook_all (f);
  mta_harness_negotiate (f->mta, 2, 0, 0);
  mta_harness_expect (f->mta, "O 2 0xf 0x0");
}

static void
test_negotiate_data_size (Fixture *f, gconstpointer data)
{
  hook_all (f);
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS,
                         POSTFIX_STEPS | MILTER_STEP_MAX_DATA_SIZE_256K | MILTER_STEP_MAX_DATA_SIZE_1M);
  mta_harness_expect (f->mta, "O 6 0x1ff 0x20000400");
}

static void
test_negotiate_data_size_limited (Fixture *f, gconstpointer data)
{
  hook_all (f);
  milter_client_context_set_max_packet_length (f->context, 300 * 1024);
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS,
                         POSTFIX_STEPS | MILTER_STEP_MAX_DATA_SIZE_256K | MILTER_STEP_MAX_DATA_SIZE_1M);
  mta_harness_expect (f->mta, "O 6 0x1ff 0x10000400");
}

static void
edit_option (Fixture *f)
{
  MilterOption *option = g_object_get_data (G_OBJECT (f->context), "test-option");
  MilterMacrosRequests *requests = g_object_get_data (G_OBJECT (f->context), "test-requests");
  const gchar *eom[] = { "i", "msg_id", NULL };
  const gchar *none[] = { NULL };

  milter_option_set_action (option, MILTER_ACTION_ADD_HEADERS | MILTER_ACTION_CHANGE_BODY);
  milter_option_set_step (option, MILTER_STEP_NO_CONNECT | MILTER_STEP_NO_REPLY_HEADER);
  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_END_OF_MESSAGE, eom);
  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_END_OF_HEADER, none);
}

static MilterStatus
on_negotiate_keep (MilterClientContext  *context,
                   MilterOption         *option,
                   MilterMacrosRequests *requests,
                   Fixture              *f)
{
  g_object_set_data (G_OBJECT (context), "test-option", option);
  g_object_set_data (G_OBJECT (context), "test-requests", requests);
  return MILTER_STATUS_DEFAULT;  /* let the next handler decide */
}

static void
ask_for_big_packets (Fixture *f)
{
  MilterOption *option = g_object_get_data (G_OBJECT (f->context), "test-option");

  milter_option_set_step (option, MILTER_STEP_MAX_DATA_SIZE_1M | MILTER_STEP_MAX_DATA_SIZE_256K);
}

/* CONTINUE with a data size the packet limit cannot take: the largest one
 * it can take is asked for instead. */
static void
test_negotiate_continue_data_size_limited (Fixture *f, gconstpointer data)
{
  g_signal_connect (f->context, "negotiate", G_CALLBACK (on_negotiate_keep), f);
  hook (f, "negotiate");
  set_action (f, "negotiate", ask_for_big_packets);
  set_status (f, "negotiate", MILTER_STATUS_CONTINUE);
  milter_client_context_set_max_packet_length (f->context, 300 * 1024);
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS,
                         POSTFIX_STEPS | MILTER_STEP_MAX_DATA_SIZE_256K | MILTER_STEP_MAX_DATA_SIZE_1M);
  mta_harness_expect (f->mta, "O 6 0x1ff 0x10000000");
}

static void
test_negotiate_continue (Fixture *f, gconstpointer data)
{
  g_signal_connect (f->context, "negotiate", G_CALLBACK (on_negotiate_keep), f);
  hook (f, "negotiate");
  set_action (f, "negotiate", edit_option);
  set_status (f, "negotiate", MILTER_STATUS_CONTINUE);
  hook (f, "header");
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS);
  /* Exactly as edited; macro lists by wire stage number (EOM 5, EOH 6). */
  mta_harness_expect (f->mta, "O 6 0x3 0x81 5:\"i {msg_id}\" 6:\"\"");
  g_assert_cmpuint (milter_option_get_step (milter_client_context_get_option (f->context)), ==, 0x81);

  /* The no-reply header gets no reply, whatever the handler says. */
  set_status (f, "header", MILTER_STATUS_REJECT);
  mta_harness_helo (f->mta, "h");
  mta_harness_expect (f->mta, "c");
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_rcpt (f->mta, "<b@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_header (f->mta, "Subject", "hi");
  mta_harness_expect_silence (f->mta, 50);
  mta_harness_end_of_header (f->mta);
  mta_harness_expect (f->mta, "c");
}

/* CONTINUE with the offer as it came: bits protocol 6 does not define
 * (SMFI_INTERNAL's reserved 0x40000000, SMFIP_TEST 0x80000000) are not
 * echoed, as libmilter strips them; an offered data size is. */
static void
test_negotiate_continue_strips_internal_bits (Fixture *f, gconstpointer data)
{
  g_signal_connect (f->context, "negotiate", G_CALLBACK (on_negotiate_keep), f);
  hook (f, "negotiate");
  set_status (f, "negotiate", MILTER_STATUS_CONTINUE);
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS,
                         POSTFIX_STEPS | MILTER_STEP_MAX_DATA_SIZE_1M | 0xc0000000u);
  mta_harness_expect (f->mta, "O 6 0x1ff 0x201fffff");
}

static void
offer_too_much (Fixture *f)
{
  MilterOption *option = g_object_get_data (G_OBJECT (f->context), "test-option");

  milter_option_set_action (option, MILTER_ACTION_ADD_HEADERS);
  milter_option_set_step (option, MILTER_STEP_NO_CONNECT);
}

static void
test_negotiate_continue_beyond_offer (Fixture *f, gconstpointer data)
{
  g_signal_connect (f->context, "negotiate", G_CALLBACK (on_negotiate_keep), f);
  hook (f, "negotiate");
  set_action (f, "negotiate", offer_too_much);
  set_status (f, "negotiate", MILTER_STATUS_CONTINUE);
  /* The MTA offers only change-body and nothing to leave out. */
  mta_harness_negotiate (f->mta, 6, MILTER_ACTION_CHANGE_BODY, MILTER_STEP_SKIP);
  mta_harness_expect_closed (f->mta);
  wait_finished (f);
  g_assert_error (f->error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_NEGOTIATION);
}

static void
ask_unoffered_no_reply (Fixture *f)
{
  MilterOption *option = g_object_get_data (G_OBJECT (f->context), "test-option");

  milter_option_set_step (option, MILTER_STEP_NO_REPLY_HELO | MILTER_STEP_NO_DATA);
}

/* Like libmilter: no-reply bits the MTA lacks are dropped (the filter's
 * NO_REPLY then becomes continue), and so is "no data" for old MTAs. */
static void
test_negotiate_continue_drops_unoffered (Fixture *f, gconstpointer data)
{
  g_signal_connect (f->context, "negotiate", G_CALLBACK (on_negotiate_keep), f);
  hook (f, "negotiate");
  set_action (f, "negotiate", ask_unoffered_no_reply);
  set_status (f, "negotiate", MILTER_STATUS_CONTINUE);
  hook (f, "helo");
  set_status (f, "helo", MILTER_STATUS_NO_REPLY);
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, 0x7f);
  mta_harness_expect (f->mta, "O 6 0x1ff 0x0");
  mta_harness_connect (f->mta, "h", NULL);
  mta_harness_expect (f->mta, "c");
  mta_harness_helo (f->mta, "h");
  mta_harness_expect (f->mta, "c");
}

static void
test_negotiate_reject (Fixture *f, gconstpointer data)
{
  hook (f, "negotiate");
  set_status (f, "negotiate", MILTER_STATUS_REJECT);
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS);
  mta_harness_expect_closed (f->mta);
  wait_finished (f);
  g_assert_null (f->error);
}

static gboolean
reply_later (gpointer user_data)
{
  Fixture *f = user_data;
  MilterStatus status = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (f->context), "later"));

  g_assert_true (milter_client_context_is_reply_pending (f->context));
  milter_client_context_reply (f->context, status);
  g_assert_false (milter_client_context_is_reply_pending (f->context));
  return G_SOURCE_REMOVE;
}

static void
defer (Fixture      *f,
       MilterStatus  later)
{
  g_object_set_data (G_OBJECT (f->context), "later", GINT_TO_POINTER (later));
  g_timeout_add (30, reply_later, f);
}

static void
defer_continue (Fixture *f)
{
  defer (f, MILTER_STATUS_CONTINUE);
}

static void
test_negotiate_progress (Fixture *f, gconstpointer data)
{
  hook_all (f);
  hook (f, "negotiate");
  set_status (f, "negotiate", MILTER_STATUS_PROGRESS);
  set_action (f, "negotiate", defer_continue);
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS);
  /* A deferred negotiation replies later, with the offer unedited. */
  mta_harness_expect (f->mta, "O 6 0x1ff 0x1fffff");
}

/* ---- replies per event and status ---------------------------------------- */

typedef struct
{
  MilterStatus status;
  const gchar *reply;
} StatusReply;

/* Drives a session up to @event, whose handler returns @status. */
static void
drive_to (Fixture     *f,
          const gchar *event)
{
  static const gchar body[] = "line\r\n";

  negotiate (f);
  if (g_str_equal (event, "connect"))
    {
      mta_harness_connect (f->mta, "h", "inet:25@192.0.2.1");
      return;
    }
  mta_harness_connect (f->mta, "h", "inet:25@192.0.2.1");
  mta_harness_expect (f->mta, "c");
  if (g_str_equal (event, "helo"))
    {
      mta_harness_helo (f->mta, "h");
      return;
    }
  if (g_str_equal (event, "unknown"))
    {
      mta_harness_unknown (f->mta, "XFOO");
      return;
    }
  mta_harness_helo (f->mta, "h");
  mta_harness_expect (f->mta, "c");
  mta_harness_mail (f->mta, "<a@x>");
  if (g_str_equal (event, "envelope-from"))
    return;
  mta_harness_expect (f->mta, "c");
  mta_harness_rcpt (f->mta, "<b@x>");
  if (g_str_equal (event, "envelope-recipient"))
    return;
  mta_harness_expect (f->mta, "c");
  mta_harness_data (f->mta);
  if (g_str_equal (event, "data"))
    return;
  mta_harness_expect (f->mta, "c");
  mta_harness_header (f->mta, "Subject", "s");
  if (g_str_equal (event, "header"))
    return;
  mta_harness_expect (f->mta, "c");
  mta_harness_end_of_header (f->mta);
  if (g_str_equal (event, "end-of-header"))
    return;
  mta_harness_expect (f->mta, "c");
  mta_harness_body (f->mta, body, sizeof body - 1);
  if (g_str_equal (event, "body-bytes"))
    return;
  mta_harness_expect (f->mta, "c");
  mta_harness_end_of_message (f->mta);
}

static const gchar *reply_events[] = {
  "connect", "helo", "envelope-from", "envelope-recipient", "data", "unknown", "header",
  "end-of-header", "body-bytes", "end-of-message-bytes",
};

static void
check_status_reply (const gchar  *event,
                    MilterStatus  status,
                    const gchar  *reply_code,
                    const gchar  *expected)
{
  Fixture f = { 0 };

  fixture_setup (&f, NULL);
  hook_all (&f);
  set_status (&f, event, status);
  if (reply_code != NULL)
    g_assert_true (milter_client_context_set_reply (f.context, reply_code[0] == '5' ? 554 : 451,
                                                    reply_code[0] == '5' ? "5.7.1" : "4.7.1",
                                                    "custom", NULL));
  drive_to (&f, event);
  mta_harness_expect (f.mta, expected);
  fixture_teardown (&f, NULL);
}

/* Every event × every status: the exact reply. */
static void
test_status_replies (void)
{
  static const struct
  {
    MilterStatus status;
    const gchar *reply_code;
    const gchar *expected;
    const gchar *expected_at_body;
  } cases[] = {
    { MILTER_STATUS_DEFAULT, NULL, "c", "c" },
    { MILTER_STATUS_NOT_CHANGE, NULL, "c", "c" },
    { MILTER_STATUS_CONTINUE, NULL, "c", "c" },
    { MILTER_STATUS_ACCEPT, NULL, "a", "a" },
    { MILTER_STATUS_REJECT, NULL, "r", "r" },
    { MILTER_STATUS_TEMPORARY_FAILURE, NULL, "t", "t" },
    { MILTER_STATUS_DISCARD, NULL, "d", "d" },
    { MILTER_STATUS_NO_REPLY, NULL, "c", "c" },       /* NR not negotiated */
    { MILTER_STATUS_SKIP, NULL, "c", "s" },           /* only a body chunk skips */
    { MILTER_STATUS_REJECT, "5", "y 554 5.7.1 custom", "y 554 5.7.1 custom" },
    { MILTER_STATUS_TEMPORARY_FAILURE, "4", "y 451 4.7.1 custom", "y 451 4.7.1 custom" },
    /* A reply code of the other class is not used. */
    { MILTER_STATUS_REJECT, "4", "r", "r" },
    { MILTER_STATUS_TEMPORARY_FAILURE, "5", "t", "t" },
  };

  for (guint e = 0; e < G_N_ELEMENTS (reply_events); e++)
    for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
      {
        const gchar *event = reply_events[e];
        const gchar *expected = g_str_equal (event, "body-bytes") ? cases[c].expected_at_body :
                                cases[c].expected;

        g_test_message ("%s → status %d (reply code %s): %s", event, cases[c].status,
                        cases[c].reply_code != NULL ? cases[c].reply_code : "none", expected);
        check_status_reply (event, cases[c].status, cases[c].reply_code, expected);
      }
}

/* No handler with an opinion: the fallback status replies. */
static void
test_fallback_status (Fixture *f, gconstpointer data)
{
  hook_all (f);
  g_assert_cmpint (milter_client_context_get_fallback_status (f->context), ==, MILTER_STATUS_CONTINUE);
  milter_client_context_set_fallback_status (f->context, MILTER_STATUS_TEMPORARY_FAILURE);
  set_status (f, "helo", MILTER_STATUS_DEFAULT);
  set_status (f, "connect", MILTER_STATUS_CONTINUE);
  negotiate (f);  /* negotiation is not affected */
  mta_harness_connect (f->mta, "h", NULL);
  mta_harness_expect (f->mta, "c");
  mta_harness_helo (f->mta, "h");
  mta_harness_expect (f->mta, "t");
  g_test_expect_message ("Milter", G_LOG_LEVEL_CRITICAL, "*is_verdict*");
  milter_client_context_set_fallback_status (f->context, MILTER_STATUS_PROGRESS);
  g_test_assert_expected_messages ();
}

/* A status that is no reply at all is a handler's bug: it gets the
 * fallback, so a filter set to fail safe does, instead of letting mail
 * through. */
static void
test_nonsense_status_gets_fallback (Fixture *f, gconstpointer data)
{
  static const MilterStatus nonsense[] = { 99, 12345, MILTER_STATUS_ABORT };

  hook_all (f);
  milter_client_context_set_fallback_status (f->context, MILTER_STATUS_TEMPORARY_FAILURE);
  set_status (f, "connect", MILTER_STATUS_CONTINUE);
  negotiate (f);
  mta_harness_connect (f->mta, "h", NULL);
  mta_harness_expect (f->mta, "c");
  for (guint i = 0; i < G_N_ELEMENTS (nonsense); i++)
    {
      set_status (f, "helo", nonsense[i]);
      g_test_expect_message ("Milter", G_LOG_LEVEL_MESSAGE,
                             "helo: status * makes no sense as a reply; answering with the fallback status");
      mta_harness_helo (f->mta, "h");
      mta_harness_expect (f->mta, "t");
      g_test_assert_expected_messages ();
      g_assert_cmpint (milter_client_context_get_status (f->context), ==,
                       MILTER_STATUS_TEMPORARY_FAILURE);
    }
}

/* The fallback answers handlers without an opinion, not events without
 * handlers: message-processed makes the MTA send MAIL, RCPT, headers and
 * the body, which nobody handles here. */
static void
test_fallback_only_with_handlers (Fixture *f, gconstpointer data)
{
  static const gchar body[] = "x";

  hook (f, "helo");
  set_status (f, "helo", MILTER_STATUS_DEFAULT);
  milter_client_context_set_fallback_status (f->context, MILTER_STATUS_TEMPORARY_FAILURE);
  negotiate (f);
  /* No connect handler: connect was negotiated away. */
  mta_harness_helo (f->mta, "h");
  mta_harness_expect (f->mta, "t");
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_rcpt (f->mta, "<b@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_header (f->mta, "Subject", "s");
  mta_harness_expect (f->mta, "c");
  mta_harness_body (f->mta, body, 1);
  mta_harness_expect (f->mta, "c");
  mta_harness_end_of_message (f->mta);
  mta_harness_expect (f->mta, "c");
  g_assert_cmpuint (f->results->len, ==, 1);
  g_assert_cmpint (milter_message_result_get_status (g_ptr_array_index (f->results, 0)), ==,
                   MILTER_STATUS_ACCEPT);
}

/* SKIP is sent only if the MTA offered it. */
static void
test_skip_not_offered (Fixture *f, gconstpointer data)
{
  static const gchar body[] = "x";

  hook_all (f);
  set_status (f, "body-bytes", MILTER_STATUS_SKIP);
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS & ~MILTER_STEP_SKIP);
  mta_harness_expect (f->mta, "O 6 0x1ff 0x0");
  mta_harness_connect (f->mta, "h", NULL);
  mta_harness_expect (f->mta, "c");
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_rcpt (f->mta, "<b@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_body (f->mta, body, 1);
  mta_harness_expect (f->mta, "c");
}

/* ---- PROGRESS ------------------------------------------------------------ */

static void
defer_reject (Fixture *f)
{
  defer (f, MILTER_STATUS_REJECT);
}

/* At every event: no reply and no further command handled until the
 * response, which goes out from the main loop. */
static void
test_progress_every_event (void)
{
  for (guint e = 0; e < G_N_ELEMENTS (reply_events); e++)
    {
      const gchar *event = reply_events[e];
      Fixture f = { 0 };
      gsize events_before;

      g_test_message ("PROGRESS at %s", event);
      fixture_setup (&f, NULL);
      hook_all (&f);
      set_status (&f, event, MILTER_STATUS_PROGRESS);
      set_action (&f, event, defer_reject);
      drive_to (&f, event);
      events_before = f.events->len;
      /* A command sent now waits behind the deferred reply. */
      if (g_str_equal (event, "unknown"))
        mta_harness_helo (f.mta, "NOOP");
      else
        mta_harness_unknown (f.mta, "NOOP");
      g_assert_cmpuint (f.events->len, ==, events_before);
      mta_harness_expect (f.mta, "r");
      mta_harness_expect (f.mta, "c");
      g_assert_true (g_str_has_suffix (f.events->str, ":NOOP"));
      fixture_teardown (&f, NULL);
    }
}

static gboolean
emit_response_later (gpointer user_data)
{
  Fixture *f = user_data;

  g_signal_emit_by_name (f->context, "helo-response", MILTER_STATUS_TEMPORARY_FAILURE);
  return G_SOURCE_REMOVE;
}

static void
defer_by_signal (Fixture *f)
{
  g_timeout_add (20, emit_response_later, f);
}

/* The -response signal itself works as the reply. */
static void
test_progress_response_signal (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_status (f, "helo", MILTER_STATUS_PROGRESS);
  set_action (f, "helo", defer_by_signal);
  drive_to (f, "helo");
  mta_harness_expect (f->mta, "t");
}

static gboolean
send_keepalives (gpointer user_data)
{
  Fixture *f = user_data;
  guint *count = g_object_get_data (G_OBJECT (f->context), "count");

  g_assert_true (milter_client_context_progress (f->context, NULL));
  if (++*count < 3)
    return G_SOURCE_CONTINUE;
  milter_client_context_reply (f->context, MILTER_STATUS_ACCEPT);
  return G_SOURCE_REMOVE;
}

static guint keepalive_count;

static void
defer_with_keepalives (Fixture *f)
{
  keepalive_count = 0;
  g_object_set_data (G_OBJECT (f->context), "count", &keepalive_count);
  g_timeout_add (10, send_keepalives, f);
}

static void
test_progress_keepalives (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_status (f, "end-of-message-bytes", MILTER_STATUS_PROGRESS);
  set_action (f, "end-of-message-bytes", defer_with_keepalives);
  drive_to (f, "end-of-message-bytes");
  mta_harness_expect (f->mta, "p");
  mta_harness_expect (f->mta, "p");
  mta_harness_expect (f->mta, "p");
  mta_harness_expect (f->mta, "a");
  g_assert_cmpuint (f->results->len, ==, 1);
  g_assert_cmpint (milter_message_result_get_status (g_ptr_array_index (f->results, 0)), ==,
                   MILTER_STATUS_ACCEPT);
}

static void
test_progress_misuse (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  /* Nothing pending: a programming error. */
  g_test_expect_message ("Milter", G_LOG_LEVEL_CRITICAL, "*reply_pending*");
  milter_client_context_reply (f->context, MILTER_STATUS_CONTINUE);
  g_test_assert_expected_messages ();
  g_test_expect_message ("Milter", G_LOG_LEVEL_CRITICAL, "*helo-response*no helo reply is pending*");
  g_signal_emit_by_name (f->context, "helo-response", MILTER_STATUS_CONTINUE);
  g_test_assert_expected_messages ();
  /* No reply awaited: no keep-alive. */
  g_assert_false (milter_client_context_progress (f->context, &error));
  g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_STATE);
}

/* A keep-alive only while end-of-message is handled, as libmilter:
 * Sendmail takes one at no other event. */
static void
test_progress_only_at_end_of_message (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  hook_all (f);
  set_status (f, "helo", MILTER_STATUS_PROGRESS);
  drive_to (f, "helo");
  test_util_run_for (30);
  g_assert_true (milter_client_context_is_reply_pending (f->context));
  g_assert_false (milter_client_context_progress (f->context, &error));
  g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_STATE);
  milter_client_context_reply (f->context, MILTER_STATUS_CONTINUE);
  /* The reply alone, with no 'p' before it. */
  mta_harness_expect (f->mta, "c");
}

static void
test_progress_after_disconnect (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_status (f, "helo", MILTER_STATUS_PROGRESS);
  drive_to (f, "helo");
  test_util_run_for (30);
  g_assert_true (milter_client_context_is_reply_pending (f->context));
  mta_harness_close (f->mta);
  wait_finished (f);
  /* The MTA is gone: a late reply is a silent no-op. */
  milter_client_context_reply (f->context, MILTER_STATUS_REJECT);
  g_signal_emit_by_name (f->context, "helo-response", MILTER_STATUS_REJECT);
  test_util_run_for (20);
  g_assert_cmpuint (f->n_finished, ==, 1);
}

/* Abort has no reply: PROGRESS from its handler must not stop the session. */
static void
test_progress_at_abort (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_status (f, "abort", MILTER_STATUS_PROGRESS);
  drive_to (f, "data");
  mta_harness_expect (f->mta, "c");
  g_test_expect_message ("Milter", G_LOG_LEVEL_MESSAGE, "abort: progress*ignored");
  mta_harness_simple (f->mta, 'A');
  mta_harness_mail (f->mta, "<next@x>");
  mta_harness_expect (f->mta, "c");
  g_test_assert_expected_messages ();
  g_assert_false (milter_client_context_is_reply_pending (f->context));
  g_assert_cmpuint (f->n_abort, ==, 1);
}

/* ---- handlers that run a main loop ---------------------------------------- */

static gboolean
set_flag (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

static guint nested_iterations;

/* A handler that waits in a main loop of its own (a synchronous helper)
 * while the MTA has sent more: the context must neither process it nor
 * make that loop spin. */
static void
run_nested_loop (Fixture *f)
{
  gboolean done = FALSE;

  mta_harness_macro (f->mta, 'M', "{mail_addr}", "a@x");
  g_timeout_add (100, set_flag, &done);
  nested_iterations = 0;
  while (!done)
    {
      g_main_context_iteration (NULL, TRUE);
      nested_iterations++;
    }
  g_assert_cmpstr (milter_client_context_get_macro (f->context, "mail_addr"), ==, NULL);
}

static void
test_nested_main_loop (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_action (f, "helo", run_nested_loop);
  drive_to (f, "helo");
  mta_harness_expect (f->mta, "c");
  g_test_message ("nested loop iterations in 100 ms: %u", nested_iterations);
  /* A spinning source would turn the loop thousands of times. */
  g_assert_cmpuint (nested_iterations, <, 20);
  /* The pipelined macros were processed after the handler returned. */
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  g_assert_cmpstr (milter_client_context_get_macro (f->context, "mail_addr"), ==, "a@x");
}

/* ---- no-reply steps ------------------------------------------------------- */

static void
ask_all_no_reply (Fixture *f)
{
  MilterOption *option = g_object_get_data (G_OBJECT (f->context), "test-option");

  milter_option_set_step (option, MILTER_STEP_NO_REPLY_MASK);
}

static void
test_no_reply_steps (Fixture *f, gconstpointer data)
{
  static const gchar body[] = "b";
  MilterMessageResult *result;

  g_signal_connect (f->context, "negotiate", G_CALLBACK (on_negotiate_keep), f);
  hook (f, "negotiate");
  set_action (f, "negotiate", ask_all_no_reply);
  set_status (f, "negotiate", MILTER_STATUS_CONTINUE);
  hook_all (f);
  set_status (f, "envelope-recipient", MILTER_STATUS_REJECT);  /* logged, not sent */
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS);
  mta_harness_expect (f->mta, "O 6 0x1ff 0xff080");

  mta_harness_connect (f->mta, "h", NULL);
  mta_harness_helo (f->mta, "h");
  mta_harness_unknown (f->mta, "XFOO");
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_rcpt (f->mta, "<b@x>");
  mta_harness_data (f->mta);
  mta_harness_header (f->mta, "A", "b");
  mta_harness_end_of_header (f->mta);
  mta_harness_body (f->mta, body, 1);
  mta_harness_expect_silence (f->mta, 50);
  mta_harness_end_of_message (f->mta);
  mta_harness_expect (f->mta, "c");
  g_assert_cmpstr (f->events->str, ==,
                   "negotiate connect:h=none helo:h unknown:XFOO envelope-from:<a@x> envelope-recipient:<b@x> "
                   "data header:A=b end-of-header body-bytes:62 end-of-message-bytes:null");
  /* The MTA never heard the rejection, so the recipient got the message:
   * the record says so. */
  g_assert_cmpuint (f->results->len, ==, 1);
  result = g_ptr_array_index (f->results, 0);
  g_assert_cmpstr (milter_message_result_get_recipients (result)[0], ==, "<b@x>");
  g_assert_null (milter_message_result_get_rejected_recipients (result)[0]);
  g_assert_cmpint (milter_message_result_get_status (result), ==, MILTER_STATUS_ACCEPT);
}

/* ---- tolerance ------------------------------------------------------------ */

static void
test_tolerated_sequences (Fixture *f, gconstpointer data)
{
  hook_all (f);
  /* A 'D' before anything, and one with no pairs. */
  mta_harness_macro (f->mta, 'C', "j", "early");
  mta_harness_macro (f->mta, 'L', NULL, NULL);
  negotiate (f);
  connect_and_helo (f);
  /* HELO again (after STARTTLS). */
  mta_harness_helo (f->mta, "again.example");
  mta_harness_expect (f->mta, "c");
  /* 'A' with no message open, and twice. */
  mta_harness_simple (f->mta, 'A');
  mta_harness_simple (f->mta, 'A');
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_simple (f->mta, 'A');
  mta_harness_simple (f->mta, 'A');
  mta_harness_mail (f->mta, "<c@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_rcpt (f->mta, "<d@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_end_of_message (f->mta);
  mta_harness_expect (f->mta, "c");
  /* 'A' after end-of-message, as Postfix sends. */
  mta_harness_simple (f->mta, 'A');
  mta_harness_simple (f->mta, 'Q');
  wait_finished (f);
  g_assert_null (f->error);
  g_assert_cmpuint (f->n_abort, ==, 1);
  g_assert_cmpstr (milter_client_context_get_macro (f->context, "j"), ==, "early");
}

/* Sendmail sends no abort after an early verdict: the next MAIL ends the
 * old message. */
static void
test_mail_without_abort (Fixture *f, gconstpointer data)
{
  hook_all (f);
  negotiate (f);
  connect_and_helo (f);
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_macro (f->mta, 'M', "{mail_addr}", "second@x");
  mta_harness_mail (f->mta, "<second@x>");
  mta_harness_expect (f->mta, "c");
  /* The open message was aborted, and the new MAIL's macros survived. */
  g_assert_cmpuint (f->n_abort, ==, 1);
  g_assert_cmpstr (milter_client_context_get_macro (f->context, "mail_addr"), ==, "second@x");
  g_assert_cmpuint (f->results->len, ==, 1);
  g_assert_cmpint (milter_message_result_get_status (g_ptr_array_index (f->results, 0)), ==,
                   MILTER_STATUS_ABORT);
}

/* Data sent with end-of-message is the last body chunk: it reaches the
 * end-of-message handler (protocol.md §2). */
static void
test_end_of_message_with_data (Fixture *f, gconstpointer data)
{
  hook_all (f);
  drive_to (f, "envelope-recipient");
  mta_harness_expect (f->mta, "c");
  mta_harness_send_hex (f->mta, "00000004 45 616263");
  mta_harness_expect (f->mta, "c");
  g_test_message ("%s", f->events->str);
  g_assert_true (g_str_has_suffix (f->events->str, "envelope-recipient:<b@x> end-of-message-bytes:616263"));
}

/* Sessions idle for libmilter's 7210 seconds by default, from a client
 * too. */
static void
test_default_timeout (Fixture *f, gconstpointer data)
{
  g_autoptr(MilterClientContext) context = g_object_new (MILTER_TYPE_CLIENT_CONTEXT, NULL);
  g_autoptr(MilterClient) client = milter_client_new ();
  guint timeout = 0;

  g_assert_cmpuint (milter_client_context_get_timeout (context), ==, 7210);
  g_object_get (client, "timeout", &timeout, NULL);
  g_assert_cmpuint (timeout, ==, 7210);
}

/* Three messages on one connection; per-message state starts clean. */
static void
remember_in_shelf (Fixture *f)
{
  g_assert_null (milter_client_context_get_mail_transaction_shelf_value (f->context, "seen"));
  milter_client_context_set_mail_transaction_shelf_value (f->context, "seen", "yes");
}

static void
test_three_messages (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_action (f, "envelope-from", remember_in_shelf);
  negotiate (f);
  mta_harness_macro (f->mta, 'C', "j", "mx");
  connect_and_helo (f);
  for (guint i = 0; i < 3; i++)
    {
      g_autofree gchar *from = g_strdup_printf ("<sender%u@x>", i);

      mta_harness_macro (f->mta, 'M', i == 0 ? "i" : NULL, "QID0");
      mta_harness_mail (f->mta, from);
      mta_harness_expect (f->mta, "c");
      g_assert_cmpstr (milter_client_context_get_macro (f->context, "i"), ==, i == 0 ? "QID0" : NULL);
      g_assert_cmpstr (milter_client_context_get_mail_transaction_shelf_value (f->context, "seen"), ==, "yes");
      mta_harness_rcpt (f->mta, "<r@x>");
      mta_harness_expect (f->mta, "c");
      mta_harness_header (f->mta, "Subject", "s");
      mta_harness_expect (f->mta, "c");
      mta_harness_end_of_header (f->mta);
      mta_harness_expect (f->mta, "c");
      mta_harness_end_of_message (f->mta);
      mta_harness_expect (f->mta, "c");
      /* Message data is gone after the message, before any 'A' (Sendmail
       * sends none); connection data stays. */
      g_assert_null (milter_client_context_get_macro (f->context, "i"));
      g_assert_null (milter_client_context_get_mail_transaction_shelf_value (f->context, "seen"));
      g_assert_cmpstr (milter_client_context_get_macro (f->context, "j"), ==, "mx");
      if (i == 1)
        mta_harness_simple (f->mta, 'A');  /* as Postfix sends */
    }
  g_assert_cmpuint (f->results->len, ==, 3);
  for (guint i = 0; i < 3; i++)
    {
      MilterMessageResult *result = g_ptr_array_index (f->results, i);
      g_autofree gchar *from = g_strdup_printf ("<sender%u@x>", i);

      g_assert_cmpstr (milter_message_result_get_from (result), ==, from);
      g_assert_cmpint (milter_message_result_get_status (result), ==, MILTER_STATUS_ACCEPT);
      g_assert_cmpuint (milter_headers_get_length (milter_message_result_get_headers (result)), ==, 1);
    }
  g_assert_cmpuint (f->n_abort, ==, 0);
}

static void
set_private (Fixture *f)
{
  milter_client_context_set_private_data (f->context, f, (GDestroyNotify) G_CALLBACK (NULL));
}

static void
count_free (gpointer data)
{
  ((Fixture *) data)->private_frees++;
}

static void
set_counted_private (Fixture *f)
{
  milter_client_context_set_private_data (f->context, f, count_free);
}

/* 'K': the connection's data goes, the negotiation stays, a new connect
 * follows. */
static void
test_quit_new_connection (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_action (f, "connect", set_counted_private);
  negotiate (f);
  mta_harness_macro (f->mta, 'C', "j", "first");
  connect_and_helo (f);
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_simple (f->mta, 'K');
  mta_harness_expect_silence (f->mta, 30);
  /* The open message was aborted, the connection finished… */
  g_assert_cmpuint (f->n_abort, ==, 1);
  g_assert_cmpuint (f->n_finished, ==, 1);
  g_assert_cmpuint (f->private_frees, ==, 1);
  g_assert_null (milter_client_context_get_macro (f->context, "j"));
  /* …and a second connection runs on the same socket, with no new
   * negotiation. */
  mta_harness_connect (f->mta, "second.example", NULL);
  mta_harness_expect (f->mta, "c");
  mta_harness_helo (f->mta, "second.example");
  mta_harness_expect (f->mta, "c");
  mta_harness_simple (f->mta, 'Q');
  test_util_run_for (30);
  g_assert_cmpuint (f->n_finished, ==, 2);
  g_assert_cmpuint (f->private_frees, ==, 2);
  g_assert_true (strstr (f->events->str, "finished connect:second.example=none") != NULL);
}

/* ---- errors --------------------------------------------------------------- */

static void
expect_protocol_error (Fixture     *f,
                       const gchar *hex,
                       GQuark       domain,
                       gint         code,
                       guint        aborts)
{
  mta_harness_send_hex (f->mta, hex);
  mta_harness_expect_closed (f->mta);
  wait_finished (f);
  g_assert_cmpuint (f->n_errors, ==, 1);
  g_assert_error (f->error, domain, code);
  g_assert_cmpuint (f->n_abort, ==, aborts);
}

static void
test_error_malformed (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_action (f, "connect", set_counted_private);
  negotiate (f);
  connect_and_helo (f);
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  /* A header without its value. */
  expect_protocol_error (f, "00000006 4c 46726f6d00", MILTER_DECODER_ERROR,
                         MILTER_DECODER_ERROR_MISSING_VALUE, 1);
  g_assert_cmpuint (f->private_frees, ==, 1);
}

static void
test_error_order (Fixture *f, gconstpointer data)
{
  hook_all (f);
  negotiate (f);
  connect_and_helo (f);
  /* A header before any MAIL. */
  expect_protocol_error (f, "00000005 4c 4100 6200", MILTER_CLIENT_CONTEXT_ERROR,
                         MILTER_CLIENT_CONTEXT_ERROR_UNEXPECTED_COMMAND, 0);
}

/* An unknown command changes nothing in the order of the others: it
 * cannot stand in for the MAIL a body needs. */
static void
test_error_order_through_unknown (Fixture *f, gconstpointer data)
{
  hook_all (f);
  negotiate (f);
  mta_harness_connect (f->mta, "h", NULL);
  mta_harness_expect (f->mta, "c");
  mta_harness_unknown (f->mta, "XYZZY");
  mta_harness_expect (f->mta, "c");
  /* A body chunk right after it. */
  expect_protocol_error (f, "00000005 42 626f6479", MILTER_CLIENT_CONTEXT_ERROR,
                         MILTER_CLIENT_CONTEXT_ERROR_UNEXPECTED_COMMAND, 0);
  g_assert_true (g_str_has_suffix (f->error->message, "after connect"));
}

/* The same when the filter negotiated unknown commands away: the steps
 * the MTA leaves out are folded into the order, but an unknown command
 * brings nothing with it. */
static void
test_error_order_with_unknown_negotiated_away (Fixture *f, gconstpointer data)
{
  hook (f, "connect");
  hook (f, "body-bytes");
  negotiate (f);
  mta_harness_connect (f->mta, "h", NULL);
  mta_harness_expect (f->mta, "c");
  expect_protocol_error (f, "00000005 42 626f6479", MILTER_CLIENT_CONTEXT_ERROR,
                         MILTER_CLIENT_CONTEXT_ERROR_UNEXPECTED_COMMAND, 0);
}

/* In place, between the commands of a transaction, it keeps the order. */
static void
test_unknown_in_place (Fixture *f, gconstpointer data)
{
  hook_all (f);
  negotiate (f);
  connect_and_helo (f);
  mta_harness_unknown (f->mta, "X1");
  mta_harness_expect (f->mta, "c");
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_unknown (f->mta, "X2");
  mta_harness_expect (f->mta, "c");
  mta_harness_rcpt (f->mta, "<b@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_unknown (f->mta, "X3");
  mta_harness_expect (f->mta, "c");
  mta_harness_unknown (f->mta, "X4");
  mta_harness_expect (f->mta, "c");
  mta_harness_rcpt (f->mta, "<c@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_data (f->mta);
  mta_harness_expect (f->mta, "c");
  mta_harness_end_of_header (f->mta);
  mta_harness_expect (f->mta, "c");
  mta_harness_end_of_message (f->mta);
  mta_harness_expect (f->mta, "c");
  g_assert_cmpuint (f->n_errors, ==, 0);
  g_assert_true (g_str_has_suffix (f->events->str,
                                   "unknown:X1 envelope-from:<a@x> unknown:X2 envelope-recipient:<b@x> "
                                   "unknown:X3 unknown:X4 envelope-recipient:<c@x> data end-of-header "
                                   "end-of-message-bytes:null"));
}

static void
test_error_second_negotiation (Fixture *f, gconstpointer data)
{
  hook_all (f);
  negotiate (f);
  expect_protocol_error (f, "0000000d 4f 00000006 000001ff 001fffff", MILTER_CLIENT_CONTEXT_ERROR,
                         MILTER_CLIENT_CONTEXT_ERROR_UNEXPECTED_COMMAND, 0);
}

/* 'K' keeps the negotiated options: a new negotiation after it is out of
 * order too (protocol.md §5.4). */
static void
test_error_negotiation_after_quit_new_connection (Fixture *f, gconstpointer data)
{
  hook_all (f);
  negotiate (f);
  connect_and_helo (f);
  mta_harness_simple (f->mta, 'K');
  mta_harness_send_hex (f->mta, "0000000d 4f 00000006 000001ff 001fffff");
  mta_harness_expect_closed (f->mta);
  test_util_run_for (30);
  g_assert_cmpuint (f->n_errors, ==, 1);
  g_assert_error (f->error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_UNEXPECTED_COMMAND);
  g_assert_cmpuint (f->n_finished, ==, 2);
}

static void
test_error_oversize (Fixture *f, gconstpointer data)
{
  hook_all (f);
  milter_client_context_set_max_packet_length (f->context, 1000);
  negotiate (f);
  connect_and_helo (f);
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  expect_protocol_error (f, "7fffffff 42", MILTER_DECODER_ERROR, MILTER_DECODER_ERROR_TOO_LONG, 1);
}

static void
test_error_unknown_command (Fixture *f, gconstpointer data)
{
  expect_protocol_error (f, "00000001 5a", MILTER_DECODER_ERROR, MILTER_DECODER_ERROR_UNKNOWN_COMMAND, 0);
}

/* An error nobody handles is logged: the operator sees why the MTA saw
 * the session fail. */
static void
test_error_logged_when_unhandled (Fixture *f, gconstpointer data)
{
  g_signal_handlers_disconnect_by_func (f->context, on_error, f);
  negotiate (f);
  g_test_expect_message ("Milter", G_LOG_LEVEL_MESSAGE, "The session ended: Unknown command*");
  mta_harness_send_hex (f->mta, "00000001 5a");
  mta_harness_expect_closed (f->mta);
  wait_finished (f);
  g_test_assert_expected_messages ();
}

static void
test_eof_mid_message (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_action (f, "connect", set_counted_private);
  negotiate (f);
  connect_and_helo (f);
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_close (f->mta);
  wait_finished (f);
  g_assert_cmpuint (f->n_abort, ==, 1);
  g_assert_cmpuint (f->n_errors, ==, 0);
  g_assert_cmpuint (f->private_frees, ==, 1);
  g_assert_cmpuint (f->results->len, ==, 1);
}

/* The last reference dropped mid-message closes the connection without
 * events: no handler may run from a dispose, which a binding's garbage
 * collector can start. The private data is still freed. */
static void
test_unref_mid_message (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_action (f, "connect", set_counted_private);
  negotiate (f);
  connect_and_helo (f);
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  g_clear_object (&f->context);
  mta_harness_expect_closed (f->mta);
  g_assert_cmpuint (f->n_abort, ==, 0);
  g_assert_cmpuint (f->n_finished, ==, 0);
  g_assert_cmpuint (f->private_frees, ==, 1);
}

static void
test_eof_mid_packet (Fixture *f, gconstpointer data)
{
  hook_all (f);
  negotiate (f);
  mta_harness_send_hex (f->mta, "00000010 43 6d");
  mta_harness_close (f->mta);
  wait_finished (f);
  g_assert_error (f->error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_IO);
}

/* Closed before connect: finished with no private data ever set. */
static void
test_eof_before_connect (Fixture *f, gconstpointer data)
{
  hook_all (f);
  negotiate (f);
  mta_harness_close (f->mta);
  wait_finished (f);
  g_assert_null (milter_client_context_get_private_data (f->context));
  g_assert_cmpuint (f->n_abort, ==, 0);
  g_assert_cmpstr (f->events->str, ==, "finished");
}

static void
test_quit (Fixture *f, gconstpointer data)
{
  hook_all (f);
  negotiate (f);
  connect_and_helo (f);
  mta_harness_simple (f->mta, 'Q');
  mta_harness_expect_closed (f->mta);
  wait_finished (f);
  g_assert_cmpint (milter_client_context_get_state (f->context), ==, MILTER_CLIENT_CONTEXT_STATE_FINISHED);
  g_assert_true (milter_client_context_is_finished (f->context));
}

static void
on_timeout_signal (MilterClientContext *context,
                   Fixture             *f)
{
  g_string_append (f->events, " timeout");
}

static void
test_timeout (Fixture *f, gconstpointer data)
{
  hook_all (f);
  g_signal_connect (f->context, "timeout", G_CALLBACK (on_timeout_signal), f);
  milter_client_context_set_timeout (f->context, 1);
  negotiate (f);
  connect_and_helo (f);
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_expect_closed (f->mta);
  /* timeout, abort, finished — in that order. */
  g_assert_cmpuint (f->n_abort, ==, 1);
  g_assert_true (g_str_has_suffix (f->events->str, "envelope-from:<a@x> timeout abort finished"));
  g_assert_cmpuint (f->n_finished, ==, 1);
}

/* Time a handler spends on a deferred reply is not the MTA's silence. */
static void
test_timeout_not_during_progress (Fixture *f, gconstpointer data)
{
  hook_all (f);
  milter_client_context_set_timeout (f->context, 1);
  set_status (f, "helo", MILTER_STATUS_PROGRESS);
  drive_to (f, "helo");
  test_util_run_for (1600);
  g_assert_cmpuint (f->n_finished, ==, 0);
  milter_client_context_reply (f->context, MILTER_STATUS_CONTINUE);
  mta_harness_expect (f->mta, "c");
}

/* ---- limits -------------------------------------------------------------- */

/* The filter closed the connection over a limit: error code, and abort
 * emitted n_abort times in all. */
static void
expect_ended_by_limit (Fixture                 *f,
                       MilterClientContextError code,
                       guint                    n_abort)
{
  mta_harness_expect_closed (f->mta);
  wait_finished (f);
  g_assert_error (f->error, MILTER_CLIENT_CONTEXT_ERROR, (gint) code);
  g_assert_cmpuint (f->n_abort, ==, n_abort);
}

static void
test_limit_headers (Fixture *f, gconstpointer data)
{
  hook_all (f);
  milter_client_context_set_max_headers (f->context, 3);
  drive_to (f, "header");
  mta_harness_expect (f->mta, "c");
  for (guint i = 0; i < 2; i++)
    {
      mta_harness_header (f->mta, "X-More", "x");
      mta_harness_expect (f->mta, "c");
    }
  /* The fourth header is one too many. */
  mta_harness_header (f->mta, "X-More", "x");
  expect_ended_by_limit (f, MILTER_CLIENT_CONTEXT_ERROR_TOO_MANY_HEADERS, 1);
}

/* The bytes of a message's headers (name, value, a NUL after each) and
 * recipients (address and NUL) share one budget. */
static void
test_limit_message_result_size (Fixture *f, gconstpointer data)
{
  hook_all (f);
  milter_client_context_set_max_message_result_size (f->context, 36);
  drive_to (f, "header");  /* "<b@x>": 6 bytes, "Subject", "s": 10 */
  mta_harness_expect (f->mta, "c");
  mta_harness_header (f->mta, "X-More", "0123456789");  /* 34 */
  mta_harness_expect (f->mta, "c");
  mta_harness_header (f->mta, "X-More", "x");  /* 43 */
  expect_ended_by_limit (f, MILTER_CLIENT_CONTEXT_ERROR_MESSAGE_RESULT_TOO_LARGE, 1);
}

/* Each message may have max-recipients; a new message starts counting
 * again. */
static void
test_limit_recipients (Fixture *f, gconstpointer data)
{
  hook_all (f);
  milter_client_context_set_max_recipients (f->context, 2);
  drive_to (f, "envelope-recipient");
  mta_harness_expect (f->mta, "c");
  mta_harness_rcpt (f->mta, "<c@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_simple (f->mta, 'A');
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  for (guint i = 0; i < 2; i++)
    {
      mta_harness_rcpt (f->mta, "<d@x>");
      mta_harness_expect (f->mta, "c");
    }
  /* The third recipient of this message is one too many. */
  mta_harness_rcpt (f->mta, "<e@x>");
  expect_ended_by_limit (f, MILTER_CLIENT_CONTEXT_ERROR_TOO_MANY_RECIPIENTS, 2);
}

static void
test_limit_macros (Fixture *f, gconstpointer data)
{
  const gchar *names[] = { "a", "b", "c", NULL };
  const gchar *values[] = { "1", "2", "3", NULL };
  g_autoptr(GByteArray) packet = g_byte_array_new ();

  hook_all (f);
  milter_client_context_set_max_macros (f->context, 2);
  negotiate (f);
  milter_encoder_encode_define_macro (packet, 'C', names, values);
  mta_harness_send (f->mta, packet);
  mta_harness_expect_closed (f->mta);
  wait_finished (f);
  g_assert_error (f->error, MILTER_DECODER_ERROR, MILTER_DECODER_ERROR_TOO_MANY_MACROS);
}

/* A peer that sends one byte a second still runs into the timeout: only
 * whole commands count as activity. */
static void
test_limit_slow_peer (Fixture *f, gconstpointer data)
{
  static const guint8 helo[] = { 0, 0, 0, 12, 'H', 's', 'l', 'o', 'w', '.', 'e', 'x', 'a', 'm', 0 };
  gint64 started;
  guint sent = 0;

  hook_all (f);
  milter_client_context_set_timeout (f->context, 2);
  negotiate (f);
  started = g_get_monotonic_time ();
  while (f->n_finished == 0 && sent < sizeof helo)
    {
      g_autoptr(GByteArray) one = g_byte_array_new ();

      g_byte_array_append (one, helo + sent++, 1);
      mta_harness_send (f->mta, one);
      test_util_run_for (500);
    }
  wait_finished (f);
  g_assert_cmpuint (sent, <, sizeof helo);  /* cut off before the end */
  g_assert_cmpint (g_get_monotonic_time () - started, <, 4 * G_USEC_PER_SEC);
  g_assert_false (strstr (f->events->str, "helo") != NULL);
}

/* A peer that sends and sends but never reads: the context stops reading
 * once replies pile up, so its queue stays bounded, and the timeout ends
 * the session. */
static void
count_timeout (MilterClientContext *context,
               guint               *timeouts)
{
  (*timeouts)++;
}

static void
test_limit_peer_not_reading (Fixture *f, gconstpointer data)
{
  g_autoptr(GByteArray) batch = g_byte_array_new ();
  g_autoptr(GByteArray) rest = g_byte_array_new ();
  gsize max_output = 0;
  guint timeouts = 0;
  gint64 until = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  hook_all (f);
  g_signal_connect (f->context, "timeout", G_CALLBACK (count_timeout), &timeouts);
  milter_client_context_set_timeout (f->context, 1);
  negotiate (f);
  connect_and_helo (f);
  for (guint i = 0; i < 4096; i++)
    milter_encoder_encode_string (batch, 'U', "NOOP");
  /* Keep writing whole packets for as long as the filter reads. */
  while (f->n_finished == 0 && g_get_monotonic_time () < until)
    {
      gssize n;

      if (rest->len == 0)
        g_byte_array_append (rest, batch->data, batch->len);
      n = mta_harness_try_send (f->mta, rest);
      if (n < 0)
        break;  /* the connection is gone */
      g_byte_array_remove_range (rest, 0, (guint) n);
      g_main_context_iteration (NULL, FALSE);
      max_output = MAX (max_output, milter_client_context_get_output_size (f->context));
    }
  wait_finished (f);
  g_test_message ("largest write queue: %" G_GSIZE_FORMAT " bytes", max_output);
  g_assert_cmpuint (max_output, <, 1024 * 1024);
  /* Ended by the timeout, not by a broken stream. */
  g_assert_cmpuint (timeouts, ==, 1);
  g_assert_null (f->error);
}

/* ---- content ----------------------------------------------------------- */

static void
test_body_with_nul (Fixture *f, gconstpointer data)
{
  static const guint8 body[] = { 'a', 0, 'b', '\r', '\n', 0, 0 };

  hook_all (f);
  hook (f, "body");
  negotiate (f);
  connect_and_helo (f);
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_rcpt (f->mta, "<b@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_body (f->mta, body, sizeof body);
  mta_harness_expect (f->mta, "c");
  /* Both forms, NUL bytes intact, string form first. */
  g_assert_true (g_str_has_suffix (f->events->str, "body:6100620d0a0000 body-bytes:6100620d0a0000"));
  g_assert_cmpuint (milter_message_result_get_body_size (milter_client_context_get_message_result (f->context)),
                    ==, sizeof body);
}

static void
test_use_bytes (Fixture *f, gconstpointer data)
{
  hook_all (f);
  hook (f, "body");
  milter_client_context_set_use_bytes (f->context, TRUE);
  negotiate (f);
  connect_and_helo (f);
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_rcpt (f->mta, "<b@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_body (f->mta, "xy", 2);
  mta_harness_expect (f->mta, "c");
  g_assert_true (g_str_has_suffix (f->events->str, "envelope-recipient:<b@x> body-bytes:7879"));
}

/* A decision in the string form is final: the bytes form is not asked. */
static void
test_body_first_decisive_wins (Fixture *f, gconstpointer data)
{
  hook_all (f);
  hook (f, "body");
  set_status (f, "body", MILTER_STATUS_SKIP);
  set_status (f, "body-bytes", MILTER_STATUS_REJECT);
  negotiate (f);
  connect_and_helo (f);
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_rcpt (f->mta, "<b@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_body (f->mta, "z", 1);
  mta_harness_expect (f->mta, "s");
  g_assert_true (g_str_has_suffix (f->events->str, "body:7a"));
}

static MilterStatus
no_opinion (MilterClientContext *context, const gchar *fqdn, gpointer data)
{
  return MILTER_STATUS_NOT_CHANGE;
}

static MilterStatus
reject_helo (MilterClientContext *context, const gchar *fqdn, gpointer data)
{
  return MILTER_STATUS_REJECT;
}

static MilterStatus
never_reached (MilterClientContext *context, const gchar *fqdn, gpointer data)
{
  g_assert_not_reached ();
}

/* The first handler with an opinion decides. */
static void
test_accumulator (Fixture *f, gconstpointer data)
{
  g_signal_connect (f->context, "helo", G_CALLBACK (no_opinion), NULL);
  g_signal_connect (f->context, "helo", G_CALLBACK (reject_helo), NULL);
  g_signal_connect (f->context, "helo", G_CALLBACK (never_reached), NULL);
  negotiate (f);
  mta_harness_helo (f->mta, "h");
  mta_harness_expect (f->mta, "r");
  g_assert_cmpint (milter_client_context_get_status (f->context), ==, MILTER_STATUS_REJECT);
}

static void
test_connect_addresses (Fixture *f, gconstpointer data)
{
  hook_all (f);
  negotiate (f);
  mta_harness_connect (f->mta, "v4", "inet:25@192.0.2.1");
  mta_harness_expect (f->mta, "c");
  mta_harness_simple (f->mta, 'K');
  mta_harness_send_hex (f->mta, "00000018 43 6d7800 36 0019 495076363a323030313a6462383a3a3100");
  mta_harness_expect (f->mta, "c");
  mta_harness_simple (f->mta, 'K');
  mta_harness_connect (f->mta, "local", "unix:/run/s");
  mta_harness_expect (f->mta, "c");
  mta_harness_simple (f->mta, 'K');
  mta_harness_connect (f->mta, "unknown", NULL);
  mta_harness_expect (f->mta, "c");
  mta_harness_simple (f->mta, 'K');
  /* Postfix for a client XCLIENT gave as [UNAVAILABLE]: family 4 with
   * "unknown". The session goes on, without an address. */
  mta_harness_send_hex (f->mta, "00000014 43 756e6b6e6f776e00 34 0000 756e6b6e6f776e00");
  mta_harness_expect (f->mta, "c");
  mta_harness_helo (f->mta, "h");
  mta_harness_expect (f->mta, "c");
  g_assert_cmpstr (f->events->str, ==,
                   "connect:v4=inet:25@192.0.2.1 finished connect:mx=inet6:25@2001:db8::1 finished "
                   "connect:local=unix:/run/s finished connect:unknown=none finished "
                   "connect:unknown=none helo:h");
}

/* ---- macros -------------------------------------------------------------- */

static void
test_macros (Fixture *f, gconstpointer data)
{
  GHashTable *macros;
  g_auto(GStrv) names = NULL;

  hook_all (f);
  negotiate (f);
  mta_harness_macro (f->mta, 'C', "{daemon_name}", "mx");
  connect_and_helo (f);
  mta_harness_macro (f->mta, 'M', "{mail_addr}", "");
  mta_harness_mail (f->mta, "<>");
  mta_harness_expect (f->mta, "c");
  mta_harness_macro (f->mta, 'R', "{rcpt_addr}", "one@x");
  mta_harness_rcpt (f->mta, "<one@x>");
  mta_harness_expect (f->mta, "c");
  g_assert_cmpstr (milter_client_context_get_macro (f->context, "rcpt_addr"), ==, "one@x");
  /* A second RCPT replaces the RCPT macros. */
  mta_harness_macro (f->mta, 'R', "{rcpt_addr}", "two@x");
  mta_harness_rcpt (f->mta, "<two@x>");
  mta_harness_expect (f->mta, "c");

  g_assert_cmpstr (milter_client_context_get_macro (f->context, "{daemon_name}"), ==, "mx");
  g_assert_cmpstr (milter_client_context_get_macro (f->context, "daemon_name"), ==, "mx");
  g_assert_cmpstr (milter_client_context_get_macro (f->context, "mail_addr"), ==, "");
  g_assert_cmpstr (milter_client_context_get_macro (f->context, "{rcpt_addr}"), ==, "two@x");
  g_assert_null (milter_client_context_get_macro (f->context, "nope"));
  macros = milter_client_context_get_macros (f->context);
  g_assert_cmpuint (g_hash_table_size (macros), ==, 3);
  g_assert_cmpstr (g_hash_table_lookup (macros, "{rcpt_addr}"), ==, "two@x");
  names = milter_client_context_get_macro_names (f->context);
  g_assert_cmpstrv (names, ((const gchar *[]) { "{daemon_name}", "{mail_addr}", "{rcpt_addr}", NULL }));
  {
    g_autoptr(GHashTable) rcpt = milter_client_context_get_command_macros (f->context,
                                                                           MILTER_COMMAND_ENVELOPE_RECIPIENT);
    g_autoptr(GHashTable) none = milter_client_context_get_command_macros (f->context, MILTER_COMMAND_DATA);

    g_assert_cmpuint (g_hash_table_size (rcpt), ==, 1);
    g_assert_cmpstr (g_hash_table_lookup (rcpt, "{rcpt_addr}"), ==, "two@x");
    g_assert_cmpuint (g_hash_table_size (none), ==, 0);
  }

  /* A new HELO clears the later stages. */
  mta_harness_simple (f->mta, 'A');
  mta_harness_helo (f->mta, "again");
  mta_harness_expect (f->mta, "c");
  g_assert_null (milter_client_context_get_macro (f->context, "rcpt_addr"));
  g_assert_cmpstr (milter_client_context_get_macro (f->context, "daemon_name"), ==, "mx");

  /* A name without a value (an odd count of strings): the value is empty,
   * as other implementations read it. */
  mta_harness_send_hex (f->mta, "0000000c 44 4d 6100 3100 7b6f64647d00");
  mta_harness_mail (f->mta, "<x@x>");
  mta_harness_expect (f->mta, "c");
  g_assert_cmpstr (milter_client_context_get_macro (f->context, "a"), ==, "1");
  g_assert_cmpstr (milter_client_context_get_macro (f->context, "odd"), ==, "");
  g_assert_cmpstr (g_hash_table_lookup (milter_client_context_get_macros (f->context), "{odd}"), ==, "");
}

static void
on_define_macro (MilterClientContext *context,
                 MilterCommand        command,
                 GString             *seen)
{
  g_string_append_c (seen, (gchar) command);
}

static void
test_define_macro_signal (Fixture *f, gconstpointer data)
{
  g_autoptr(GString) seen = g_string_new (NULL);

  g_signal_connect (f->context, "define-macro", G_CALLBACK (on_define_macro), seen);
  mta_harness_macro (f->mta, 'C', "j", "x");
  mta_harness_macro (f->mta, 'H', NULL, NULL);
  test_util_run_for (20);
  g_assert_cmpstr (seen->str, ==, "CH");
}

/* ---- modifications ------------------------------------------------------- */

static void
modify_everything (Fixture *f)
{
  MilterClientContext *c = f->context;
  g_autoptr(GBytes) body = g_bytes_new_static ("new body\r\n", 10);
  const gchar *lines[] = { "first", "second", NULL };
  GError *error = NULL;

  g_assert_true (milter_client_context_add_header (c, "X-Added", "yes\n\tfolded", &error));
  g_assert_true (milter_client_context_insert_header (c, 0, "X-Top", "1", &error));
  g_assert_true (milter_client_context_change_header (c, "Subject", 1, "changed", &error));
  g_assert_true (milter_client_context_delete_header (c, "Received", 2, &error));
  g_assert_true (milter_client_context_change_from (c, "<new@x>", "RET=HDRS", &error));
  g_assert_true (milter_client_context_add_recipient (c, "<added@x>", NULL, &error));
  g_assert_true (milter_client_context_add_recipient (c, "<param@x>", "NOTIFY=NEVER", &error));
  g_assert_true (milter_client_context_delete_recipient (c, "<b@x>", &error));
  g_assert_true (milter_client_context_replace_body_bytes (c, body, &error));
  g_assert_true (milter_client_context_quarantine (c, "held", &error));
  g_assert_true (milter_client_context_progress (c, &error));
  g_assert_true (milter_client_context_set_multiline_reply (c, 550, "5.7.1", lines, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (milter_client_context_get_quarantine_reason (c), ==, "held");
}

static void
test_modifications (Fixture *f, gconstpointer data)
{
  g_autofree gchar *formatted = NULL;

  hook_all (f);
  set_action (f, "end-of-message-bytes", modify_everything);
  set_status (f, "end-of-message-bytes", MILTER_STATUS_REJECT);
  drive_to (f, "end-of-message-bytes");
  mta_harness_expect (f->mta, "h X-Added: yes\n\tfolded");
  mta_harness_expect (f->mta, "i 0 X-Top: 1");
  mta_harness_expect (f->mta, "m 1 Subject: changed");
  mta_harness_expect (f->mta, "m 2 Received: ");
  mta_harness_expect (f->mta, "e <new@x> [RET=HDRS]");
  mta_harness_expect (f->mta, "+ <added@x>");
  mta_harness_expect (f->mta, "2 <param@x> [NOTIFY=NEVER]");
  mta_harness_expect (f->mta, "- <b@x>");
  mta_harness_expect (f->mta, "q held");
  mta_harness_expect (f->mta, "p");
  /* The body goes last, in one run, right before the final reply. */
  mta_harness_expect (f->mta, "b 10 6e657720626f64790d0a");
  mta_harness_expect (f->mta, "y 550-5.7.1 first\r\n550 5.7.1 second");
  formatted = milter_client_context_format_reply (f->context);
  g_assert_null (formatted);  /* sent, so cleared */
}

static void
replace_big_body (Fixture *f)
{
  gsize size = 65535 * 2 + 1;
  g_autofree gchar *body = g_malloc (size);

  memset (body, 'x', size);
  g_assert_true (milter_client_context_replace_body (f->context, body, 65535, NULL));
  g_assert_true (milter_client_context_add_header (f->context, "X-Between", "1", NULL));
  g_assert_true (milter_client_context_replace_body (f->context, body + 65535, size - 65535, NULL));
}

static void
test_replace_body_chunks (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_action (f, "end-of-message-bytes", replace_big_body);
  drive_to (f, "end-of-message-bytes");
  mta_harness_expect (f->mta, "h X-Between: 1");
  mta_harness_expect (f->mta, "b 65535");
  mta_harness_expect (f->mta, "b 65535");
  mta_harness_expect (f->mta, "b 1 78");
  mta_harness_expect (f->mta, "c");
}

/* Every modification, and progress, is refused with INVALID_STATE. */
static void
modify_outside_end_of_message (Fixture *f)
{
  MilterClientContext *c = f->context;
  g_autoptr(GBytes) body = g_bytes_new_static ("x", 1);
  GError *error = NULL;

#define REFUSED(call)                                                                           \
  G_STMT_START {                                                                              \
    g_assert_false (call);                                                                    \
    g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_STATE); \
    g_clear_error (&error);                                                                   \
  } G_STMT_END

  REFUSED (milter_client_context_add_header (c, "X-A", "b", &error));
  REFUSED (milter_client_context_insert_header (c, 0, "X-A", "b", &error));
  REFUSED (milter_client_context_change_header (c, "X-A", 1, "b", &error));
  REFUSED (milter_client_context_delete_header (c, "X-A", 1, &error));
  REFUSED (milter_client_context_change_from (c, "<a@x>", NULL, &error));
  REFUSED (milter_client_context_add_recipient (c, "<a@x>", NULL, &error));
  REFUSED (milter_client_context_delete_recipient (c, "<a@x>", &error));
  REFUSED (milter_client_context_replace_body (c, "x", 1, &error));
  REFUSED (milter_client_context_replace_body_bytes (c, body, &error));
  REFUSED (milter_client_context_quarantine (c, "x", &error));
  REFUSED (milter_client_context_progress (c, &error));
#undef REFUSED
}

static void
test_modify_outside_end_of_message (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_action (f, "header", modify_outside_end_of_message);
  drive_to (f, "header");
  mta_harness_expect (f->mta, "c");
  modify_outside_end_of_message (f);
}

static void
modify_invalid (Fixture *f)
{
  MilterClientContext *c = f->context;
  GError *error = NULL;
  static const struct { const gchar *name; const gchar *value; } bad_headers[] = {
    { "", "v" }, { "Bad Name", "v" }, { "Colon:", "v" }, { "X-A", "a\r\nInjected: 1" },
    { "X-A", "a\nInjected: 1" }, { "X-A", "trailing\n" }, { "X-\x01", "v" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad_headers); i++)
    {
      g_assert_false (milter_client_context_add_header (c, bad_headers[i].name, bad_headers[i].value, &error));
      g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE);
      g_clear_error (&error);
    }
  {
    /* Header lines must stay under 2048 characters, "X-A: " included;
     * a continuation line counts on its own. */
    g_autofree gchar *first = g_strnfill (2043, 'v');
    g_autofree gchar *fill = g_strnfill (2047, 'v');
    g_autofree gchar *continued = g_strconcat ("short\n\t", fill, NULL);

    g_assert_false (milter_client_context_add_header (c, "X-A", first, &error));
    g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE);
    g_clear_error (&error);
    g_assert_false (milter_client_context_change_header (c, "X-A", 1, continued, &error));
    g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE);
    g_clear_error (&error);
  }
  g_assert_false (milter_client_context_change_from (c, "<a@x>\r\nRCPT TO:<evil@x>", NULL, &error));
  g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE);
  g_clear_error (&error);
  g_assert_false (milter_client_context_add_recipient (c, "", NULL, &error));
  g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE);
  g_clear_error (&error);
  g_assert_false (milter_client_context_quarantine (c, "", &error));
  g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE);
  g_clear_error (&error);
  g_assert_false (milter_client_context_set_reply (c, 250, NULL, "ok", &error));
  g_assert_error (error, MILTER_REPLY_CODE_ERROR, MILTER_REPLY_CODE_ERROR_INVALID_CODE);
  g_clear_error (&error);
  g_assert_false (milter_client_context_set_reply (c, 550, NULL, "a\r\nb", &error));
  g_assert_error (error, MILTER_REPLY_CODE_ERROR, MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER);
  g_clear_error (&error);
}

/* The longest lines allowed: 2047 characters each, a fold between. */
static void
modify_longest_lines (Fixture *f)
{
  g_autofree gchar *first = g_strnfill (2042, 'a');
  g_autofree gchar *second = g_strnfill (2046, 'b');
  g_autofree gchar *value = g_strconcat (first, "\n\t", second, NULL);
  GError *error = NULL;

  g_assert_true (milter_client_context_add_header (f->context, "X-A", value, &error));
  g_assert_no_error (error);
}

static void
test_modify_longest_lines (Fixture *f, gconstpointer data)
{
  g_autofree gchar *first = g_strnfill (2042, 'a');
  g_autofree gchar *second = g_strnfill (2046, 'b');
  g_autofree gchar *expected = g_strconcat ("h X-A: ", first, "\n\t", second, NULL);

  hook_all (f);
  set_action (f, "end-of-message-bytes", modify_longest_lines);
  drive_to (f, "end-of-message-bytes");
  mta_harness_expect (f->mta, expected);
  mta_harness_expect (f->mta, "c");
}

static void
test_modify_invalid_values (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_action (f, "end-of-message-bytes", modify_invalid);
  drive_to (f, "end-of-message-bytes");
  /* Nothing of it went out. */
  mta_harness_expect (f->mta, "c");
}

static void
modify_not_negotiated (Fixture *f)
{
  GError *error = NULL;

  g_assert_true (milter_client_context_add_header (f->context, "X-A", "b", &error));
  g_assert_false (milter_client_context_replace_body (f->context, "x", 1, &error));
  g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_ACTION);
  g_clear_error (&error);
  g_assert_false (milter_client_context_add_recipient (f->context, "<a@x>", "NOTIFY=NEVER", &error));
  g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_ACTION);
  g_clear_error (&error);
}

static void
test_modify_not_negotiated (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_action (f, "end-of-message-bytes", modify_not_negotiated);
  mta_harness_negotiate (f->mta, 6, MILTER_ACTION_ADD_HEADERS | MILTER_ACTION_ADD_RECIPIENT,
                         POSTFIX_STEPS);
  mta_harness_expect (f->mta, "O 6 0x5 0x400");
  mta_harness_connect (f->mta, "h", NULL);
  mta_harness_expect (f->mta, "c");
  mta_harness_mail (f->mta, "<a@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_rcpt (f->mta, "<b@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_end_of_message (f->mta);
  mta_harness_expect (f->mta, "h X-A: b");
  mta_harness_expect (f->mta, "c");
}

static gboolean
modify_later (gpointer user_data)
{
  Fixture *f = user_data;

  g_assert_true (milter_client_context_add_header (f->context, "X-Later", "1", NULL));
  g_assert_true (milter_client_context_change_header (f->context, "Subject", 1, "s2", NULL));
  milter_client_context_reply (f->context, MILTER_STATUS_CONTINUE);
  return G_SOURCE_REMOVE;
}

static void
defer_modifications (Fixture *f)
{
  g_timeout_add (20, modify_later, f);
}

/* Modifications while the end-of-message reply is deferred, buffered up
 * to packet-buffer-size and always before the final reply. */
static void
test_modify_while_deferred (Fixture *f, gconstpointer data)
{
  hook_all (f);
  milter_client_context_set_packet_buffer_size (f->context, 4096);
  set_status (f, "end-of-message-bytes", MILTER_STATUS_PROGRESS);
  set_action (f, "end-of-message-bytes", defer_modifications);
  drive_to (f, "end-of-message-bytes");
  mta_harness_expect (f->mta, "h X-Later: 1");
  mta_harness_expect (f->mta, "m 1 Subject: s2");
  mta_harness_expect (f->mta, "c");
}

/* ---- state and storage ---------------------------------------------------- */

static void
test_states (Fixture *f, gconstpointer data)
{
  g_assert_cmpint (milter_client_context_get_state (f->context), ==, MILTER_CLIENT_CONTEXT_STATE_START);
  hook_all (f);
  set_status (f, "helo", MILTER_STATUS_PROGRESS);
  drive_to (f, "helo");
  test_util_run_for (20);
  g_assert_cmpint (milter_client_context_get_state (f->context), ==, MILTER_CLIENT_CONTEXT_STATE_HELO);
  g_assert_cmpint (milter_client_context_get_last_state (f->context), ==, MILTER_CLIENT_CONTEXT_STATE_HELO);
  milter_client_context_reply (f->context, MILTER_STATUS_CONTINUE);
  mta_harness_expect (f->mta, "c");
  g_assert_cmpint (milter_client_context_get_state (f->context), ==,
                   MILTER_CLIENT_CONTEXT_STATE_HELO_REPLIED);
  g_assert_cmpuint (milter_client_context_get_n_processing_sessions (f->context), ==, 1);
}

static void
collect_shelf (const gchar *key,
               const gchar *value,
               gpointer     user_data)
{
  g_string_append_printf (user_data, "%s=%s;", key, value);
}

static void
test_shelf (Fixture *f, gconstpointer data)
{
  g_autoptr(GString) seen = g_string_new (NULL);
  MilterClientContext *c = f->context;

  milter_client_context_set_mail_transaction_shelf_value (c, "k", "v");
  g_assert_cmpstr (milter_client_context_get_mail_transaction_shelf_value (c, "k"), ==, "v");
  milter_client_context_mail_transaction_shelf_foreach (c, collect_shelf, seen);
  g_assert_cmpstr (seen->str, ==, "k=v;");
  g_assert_cmpuint (g_hash_table_size (milter_client_context_get_mail_transaction_shelf (c)), ==, 1);
  milter_client_context_set_mail_transaction_shelf_value (c, "k", NULL);
  g_assert_null (milter_client_context_get_mail_transaction_shelf_value (c, "k"));
  milter_client_context_set_mail_transaction_shelf_value (c, "k2", "v");
  milter_client_context_clear_mail_transaction_shelf (c);
  g_assert_cmpuint (g_hash_table_size (milter_client_context_get_mail_transaction_shelf (c)), ==, 0);
}

static void
test_private_data (Fixture *f, gconstpointer data)
{
  milter_client_context_set_private_data (f->context, f, count_free);
  milter_client_context_set_private_data (f->context, f, count_free);  /* same: kept */
  g_assert_cmpuint (f->private_frees, ==, 0);
  milter_client_context_set_private_data (f->context, NULL, NULL);
  g_assert_cmpuint (f->private_frees, ==, 1);
  set_private (f);
  milter_client_context_set_private_data (f->context, f, count_free);
  g_clear_object (&f->context);
  g_assert_cmpuint (f->private_frees, ==, 2);
  f->context = milter_client_context_new (NULL);
}

static void
record_queue_id (MilterClientContext *context,
                 MilterMessageResult *result,
                 gchar              **queue_id)
{
  g_free (*queue_id);
  *queue_id = g_strdup (milter_client_context_get_macro (context, "i"));
}

static void
test_message_result (Fixture *f, gconstpointer data)
{
  MilterMessageResult *result;
  g_autofree gchar *queue_id = NULL;

  hook_all (f);
  g_signal_connect (f->context, "message-processed", G_CALLBACK (record_queue_id), &queue_id);
  set_status (f, "envelope-recipient", MILTER_STATUS_REJECT);
  negotiate (f);
  connect_and_helo (f);
  mta_harness_macro (f->mta, 'M', "i", "4Qx9Yz");
  mta_harness_mail (f->mta, "<s@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_rcpt (f->mta, "<bad@x>");
  mta_harness_expect (f->mta, "r");
  set_status (f, "envelope-recipient", MILTER_STATUS_CONTINUE);
  mta_harness_rcpt (f->mta, "<good@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_header (f->mta, "Subject", "s");
  mta_harness_expect (f->mta, "c");
  mta_harness_end_of_header (f->mta);
  mta_harness_expect (f->mta, "c");
  mta_harness_body (f->mta, "12345", 5);
  mta_harness_expect (f->mta, "c");
  mta_harness_end_of_message (f->mta);
  mta_harness_expect (f->mta, "c");
  g_assert_cmpuint (f->results->len, ==, 1);
  result = g_ptr_array_index (f->results, 0);
  g_assert_cmpstr (milter_message_result_get_from (result), ==, "<s@x>");
  g_assert_cmpstr (milter_message_result_get_recipients (result)[0], ==, "<good@x>");
  g_assert_null (milter_message_result_get_recipients (result)[1]);
  g_assert_cmpstr (milter_message_result_get_rejected_recipients (result)[0], ==, "<bad@x>");
  g_assert_cmpuint (milter_message_result_get_body_size (result), ==, 5);
  g_assert_cmpstr (milter_headers_lookup (milter_message_result_get_headers (result), "Subject", 1), ==, "s");
  g_assert_cmpint (milter_message_result_get_status (result), ==, MILTER_STATUS_ACCEPT);
  g_assert_cmpint (milter_message_result_get_end_time (result), >=,
                   milter_message_result_get_start_time (result));
  /* message-processed still sees the message's macros; then they go. */
  g_assert_cmpstr (queue_id, ==, "4Qx9Yz");
  g_assert_null (milter_client_context_get_macro (f->context, "i"));
}

/* A verdict on the message ends it: no abort afterwards. */
static void
test_decided_message_not_aborted (Fixture *f, gconstpointer data)
{
  hook_all (f);
  set_status (f, "header", MILTER_STATUS_DISCARD);
  drive_to (f, "header");
  mta_harness_expect (f->mta, "d");
  mta_harness_simple (f->mta, 'A');
  mta_harness_mail (f->mta, "<next@x>");
  mta_harness_expect (f->mta, "c");
  mta_harness_close (f->mta);
  wait_finished (f);
  /* Only the second, open message was aborted. */
  g_assert_cmpuint (f->n_abort, ==, 1);
  g_assert_cmpuint (f->results->len, ==, 2);
  g_assert_cmpint (milter_message_result_get_status (g_ptr_array_index (f->results, 0)), ==,
                   MILTER_STATUS_DISCARD);
}

/* ---- feeding -------------------------------------------------------------- */

static GByteArray *
build_session (void)
{
  GByteArray *s = g_byte_array_new ();
  g_autoptr(MilterOption) offer = milter_option_new_postfix ();
  const gchar *names[] = { "j", NULL };
  const gchar *values[] = { "mx", NULL };

  milter_encoder_encode_negotiate (s, offer);
  milter_encoder_encode_define_macro (s, 'C', names, values);
  milter_encoder_encode_connect_raw (s, "h", '4', 25, "192.0.2.1");
  milter_encoder_encode_string (s, 'H', "h");
  for (guint i = 0; i < 3; i++)
    {
      milter_encoder_encode_envelope (s, 'M', "<a@x>", NULL);
      milter_encoder_encode_envelope (s, 'R', "<b@x>", NULL);
      milter_encoder_encode_empty (s, 'T');
      milter_encoder_encode_header (s, 'L', "Subject", "s");
      milter_encoder_encode_empty (s, 'N');
      milter_encoder_encode_data (s, 'B', "body\r\n", 6);
      milter_encoder_encode_data (s, 'E', NULL, 0);
      milter_encoder_encode_empty (s, 'A');
    }
  milter_encoder_encode_empty (s, 'Q');
  return s;
}

static void
add_header_at_end (Fixture *f)
{
  g_assert_true (milter_client_context_add_header (f->context, "X-Fed", "1", NULL));
}

static gchar *
feed_in_pieces (GByteArray *session,
                GRand      *rand)
{
  Fixture f = { 0 };
  g_autoptr(GString) output = g_string_new (NULL);
  gsize offset = 0;

  f.context = milter_client_context_new (NULL);
  f.events = g_string_new (NULL);
  f.statuses = g_hash_table_new (g_str_hash, g_str_equal);
  f.actions = g_hash_table_new (g_str_hash, g_str_equal);
  f.results = g_ptr_array_new_with_free_func (g_object_unref);
  g_signal_connect (f.context, "finished", G_CALLBACK (on_finished), &f);
  hook_all (&f);
  set_action (&f, "end-of-message-bytes", add_header_at_end);
  while (offset < session->len)
    {
      gsize piece = rand != NULL ? (gsize) g_rand_int_range (rand, 1, 40) : session->len;
      g_autoptr(GBytes) out = NULL;
      g_autoptr(GError) error = NULL;

      piece = MIN (piece, session->len - offset);
      g_assert_true (milter_client_context_feed (f.context, (const gchar *) session->data + offset,
                                                 piece, &error));
      g_assert_no_error (error);
      offset += piece;
      out = milter_client_context_take_output (f.context);
      g_string_append_len (output, g_bytes_get_data (out, NULL), (gssize) g_bytes_get_size (out));
    }
  test_util_run_for (10);
  g_assert_cmpuint (f.n_finished, ==, 1);
  g_string_append_printf (output, "|%s", f.events->str);
  g_object_unref (f.context);
  g_string_free (f.events, TRUE);
  g_hash_table_unref (f.statuses);
  g_hash_table_unref (f.actions);
  g_ptr_array_unref (f.results);
  return test_util_hex (output->str, output->len);
}

/* A whole session fed in random pieces gives the same replies and events
 * as fed at once. */
static void
test_feed_random_splits (void)
{
  g_autoptr(GByteArray) session = build_session ();
  g_autoptr(GRand) rand = g_rand_new_with_seed (1121);
  g_autofree gchar *whole = feed_in_pieces (session, NULL);

  for (guint i = 0; i < 30; i++)
    {
      g_autofree gchar *split = feed_in_pieces (session, rand);

      g_assert_cmpstr (split, ==, whole);
    }
}

static void
test_feed_error (void)
{
  g_autoptr(MilterClientContext) context = milter_client_context_new (NULL);
  g_autoptr(GError) error = NULL;

  g_assert_false (milter_client_context_feed (context, "\0\0\0\0", 4, &error));
  g_assert_error (error, MILTER_DECODER_ERROR, MILTER_DECODER_ERROR_ZERO_LENGTH);
  test_util_run_for (10);
  g_assert_true (milter_client_context_is_finished (context));
}

static void
test_start_not_pollable (void)
{
  g_autoptr(MilterClientContext) context = milter_client_context_new (NULL);
  g_autoptr(GInputStream) memory = g_memory_input_stream_new ();
  g_autoptr(GInputStream) buffered = g_buffered_input_stream_new (memory);
  g_autoptr(GOutputStream) output = g_memory_output_stream_new_resizable ();
  g_autoptr(GIOStream) unpollable = g_simple_io_stream_new (buffered, output);
  g_autoptr(GError) error = NULL;

  /* A buffered input stream cannot be polled. */
  g_assert_false (milter_client_context_start (context, unpollable, &error));
  g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_NOT_SUPPORTED);
}

/* ---- a subclass handling events in class methods ------------------------- */

#define TEST_TYPE_CONTEXT (test_context_get_type ())
G_DECLARE_FINAL_TYPE (TestContext, test_context, TEST, CONTEXT, MilterClientContext)

struct _TestContext
{
  MilterClientContext parent_instance;
  GString *events;
  MilterStatus helo_status;
  MilterStatus helo_response_status;  /* what helo_response changes the verdict to */
};

G_DEFINE_FINAL_TYPE (TestContext, test_context, MILTER_TYPE_CLIENT_CONTEXT)

static void
test_context_record (MilterClientContext *context,
                     const gchar         *event)
{
  GString *events = TEST_CONTEXT (context)->events;

  g_string_append_printf (events, "%s%s", events->len > 0 ? " " : "", event);
}

static void
reply_tempfail_later (gpointer context)
{
  milter_client_context_reply (context, MILTER_STATUS_TEMPORARY_FAILURE);
}

static MilterStatus
test_context_helo (MilterClientContext *context,
                   const gchar         *fqdn)
{
  g_autofree gchar *event = g_strdup_printf ("helo:%s", fqdn);

  test_context_record (context, event);
  if (TEST_CONTEXT (context)->helo_status == MILTER_STATUS_PROGRESS)
    g_idle_add_once (reply_tempfail_later, context);
  return TEST_CONTEXT (context)->helo_status;
}

static void
test_context_helo_response (MilterClientContext *context,
                            MilterStatus         status)
{
  MilterStatus changed = TEST_CONTEXT (context)->helo_response_status;
  g_autoptr(GEnumClass) enum_class = g_type_class_ref (MILTER_TYPE_STATUS);
  g_autofree gchar *event = g_strdup_printf ("helo-response:%s",
                                             g_enum_get_value (enum_class, status)->value_nick);

  test_context_record (context, event);
  MILTER_CLIENT_CONTEXT_CLASS (test_context_parent_class)->helo_response (
    context, changed != MILTER_STATUS_DEFAULT ? changed : status);
}

static MilterStatus
test_context_header (MilterClientContext *context,
                     const gchar         *name,
                     const gchar         *value)
{
  g_autofree gchar *event = g_strdup_printf ("header:%s=%s", name, value);

  test_context_record (context, event);
  return MILTER_STATUS_DEFAULT;
}

static MilterStatus
test_context_body_bytes (MilterClientContext *context,
                         GBytes              *chunk)
{
  g_autofree gchar *event = g_strdup_printf ("body-bytes:%" G_GSIZE_FORMAT,
                                             g_bytes_get_size (chunk));

  test_context_record (context, event);
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
test_context_end_of_message (MilterClientContext *context,
                             const gchar         *chunk,
                             guint64              size)
{
  g_autoptr(GError) error = NULL;

  test_context_record (context, "end-of-message");
  g_assert_true (milter_client_context_add_header (context, "X-Class", "yes", &error));
  g_assert_no_error (error);
  return MILTER_STATUS_CONTINUE;
}

static void
test_context_finalize (GObject *object)
{
  g_string_free (TEST_CONTEXT (object)->events, TRUE);
  G_OBJECT_CLASS (test_context_parent_class)->finalize (object);
}

static void
test_context_class_init (TestContextClass *klass)
{
  MilterClientContextClass *context_class = MILTER_CLIENT_CONTEXT_CLASS (klass);

  G_OBJECT_CLASS (klass)->finalize = test_context_finalize;
  context_class->helo = test_context_helo;
  context_class->helo_response = test_context_helo_response;
  context_class->header = test_context_header;
  context_class->body_bytes = test_context_body_bytes;
  context_class->end_of_message = test_context_end_of_message;
}

static void
test_context_init (TestContext *self)
{
  self->events = g_string_new (NULL);
  self->helo_status = MILTER_STATUS_CONTINUE;
  self->helo_response_status = MILTER_STATUS_DEFAULT;
}

typedef struct
{
  TestContext *context;
  MtaHarness *mta;
} SubclassFixture;

static void
subclass_setup (SubclassFixture *f,
                gconstpointer    data)
{
  g_autoptr(GIOStream) filter_end = NULL;
  g_autoptr(GError) error = NULL;

  f->mta = mta_harness_new_pair (&filter_end);
  f->context = g_object_new (TEST_TYPE_CONTEXT, NULL);
  g_assert_true (milter_client_context_start (MILTER_CLIENT_CONTEXT (f->context), filter_end, &error));
  g_assert_no_error (error);
}

static void
subclass_teardown (SubclassFixture *f,
                   gconstpointer    data)
{
  g_object_unref (f->context);
  mta_harness_free (f->mta);
}

/* Class methods count as handlers: only their events are negotiated. */
static void
test_subclass_negotiation (SubclassFixture *f, gconstpointer data)
{
  guint32 expected = MILTER_STEP_NO_CONNECT | MILTER_STEP_NO_ENVELOPE_FROM |
                     MILTER_STEP_NO_ENVELOPE_RECIPIENT | MILTER_STEP_NO_END_OF_HEADER |
                     MILTER_STEP_NO_UNKNOWN | MILTER_STEP_NO_DATA | MILTER_STEP_SKIP |
                     (MILTER_STEP_NO_REPLY_MASK & ~(MILTER_STEP_NO_REPLY_HELO |
                                                    MILTER_STEP_NO_REPLY_HEADER |
                                                    MILTER_STEP_NO_REPLY_BODY));
  g_autofree gchar *reply = NULL;
  guint version, action, step;

  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS);
  reply = mta_harness_read (f->mta);
  g_assert_cmpint (sscanf (reply, "O %u 0x%x 0x%x", &version, &action, &step), ==, 3);
  g_assert_cmpuint (step, ==, expected);
}

/* The methods get the events' arguments; their statuses are the replies. */
static void
test_subclass_session (SubclassFixture *f, gconstpointer data)
{
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS);
  g_free (mta_harness_read (f->mta));
  mta_harness_helo (f->mta, "client.example");
  mta_harness_expect (f->mta, "c");
  mta_harness_header (f->mta, "Subject", "hi");
  mta_harness_expect (f->mta, "c");  /* no opinion: the fallback status */
  mta_harness_body (f->mta, "a\0b", 3);
  mta_harness_expect (f->mta, "c");
  mta_harness_end_of_message (f->mta);
  mta_harness_expect (f->mta, "h X-Class: yes");
  mta_harness_expect (f->mta, "c");
  g_assert_cmpstr (f->context->events->str, ==,
                   "helo:client.example helo-response:continue "
                   "header:Subject=hi body-bytes:3 end-of-message");

  /* A status from a method is a reply like any other. */
  f->context->helo_status = MILTER_STATUS_TEMPORARY_FAILURE;
  mta_harness_helo (f->mta, "again.example");
  mta_harness_expect (f->mta, "t");
}

static MilterStatus
reject_in_handler (MilterClientContext *context, const gchar *fqdn, gpointer data)
{
  return MILTER_STATUS_REJECT;
}

static MilterStatus
no_opinion_in_handler (MilterClientContext *context, const gchar *fqdn, gpointer data)
{
  (*(guint *) data)++;
  return MILTER_STATUS_DEFAULT;
}

/* Connected handlers run before the method (run-last): a decisive status
 * from one ends the emission, no opinion leaves it to the method. */
static void
test_subclass_handlers_first (SubclassFixture *f, gconstpointer data)
{
  guint calls = 0;
  gulong id;

  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS);
  g_free (mta_harness_read (f->mta));

  id = g_signal_connect (f->context, "helo", G_CALLBACK (no_opinion_in_handler), &calls);
  f->context->helo_status = MILTER_STATUS_TEMPORARY_FAILURE;
  mta_harness_helo (f->mta, "one.example");
  mta_harness_expect (f->mta, "t");
  g_assert_cmpuint (calls, ==, 1);
  g_assert_cmpstr (f->context->events->str, ==,
                   "helo:one.example helo-response:temporary-failure");
  g_signal_handler_disconnect (f->context, id);

  g_signal_connect (f->context, "helo", G_CALLBACK (reject_in_handler), NULL);
  mta_harness_helo (f->mta, "two.example");
  mta_harness_expect (f->mta, "r");
  g_assert_cmpstr (f->context->events->str, ==,
                   "helo:one.example helo-response:temporary-failure helo-response:reject");
}

static void
record_response_handler (MilterClientContext *context, MilterStatus status, gpointer data)
{
  test_context_record (context, "handler");
}

/* A -response method sees every verdict of its step, immediate or
 * deferred, and may change it before chaining up, which replies. */
static void
test_subclass_response_method (SubclassFixture *f, gconstpointer data)
{
  mta_harness_negotiate (f->mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS);
  g_free (mta_harness_read (f->mta));

  f->context->helo_response_status = MILTER_STATUS_REJECT;
  mta_harness_helo (f->mta, "changed.example");
  mta_harness_expect (f->mta, "r");
  g_assert_cmpstr (f->context->events->str, ==, "helo:changed.example helo-response:continue");

  /* Deferred: milter_client_context_reply() goes through the method too. */
  g_string_truncate (f->context->events, 0);
  f->context->helo_response_status = MILTER_STATUS_DEFAULT;
  f->context->helo_status = MILTER_STATUS_PROGRESS;
  mta_harness_helo (f->mta, "later.example");
  mta_harness_expect (f->mta, "t");
  g_assert_cmpstr (f->context->events->str, ==,
                   "helo:later.example helo-response:temporary-failure");

  /* A connected -response handler runs first (run-last), then the method. */
  g_string_truncate (f->context->events, 0);
  f->context->helo_status = MILTER_STATUS_CONTINUE;
  g_signal_connect (f->context, "helo-response", G_CALLBACK (record_response_handler), NULL);
  mta_harness_helo (f->mta, "both.example");
  mta_harness_expect (f->mta, "c");
  g_assert_cmpstr (f->context->events->str, ==,
                   "helo:both.example handler helo-response:continue");
}

/* ---- a subclass that sets -response methods to NULL ---------------------- */

#define TEST_TYPE_NULL_RESPONSE_CONTEXT (test_null_response_context_get_type ())
G_DECLARE_FINAL_TYPE (TestNullResponseContext, test_null_response_context,
                      TEST, NULL_RESPONSE_CONTEXT, MilterClientContext)

struct _TestNullResponseContext
{
  MilterClientContext parent_instance;
};

G_DEFINE_FINAL_TYPE (TestNullResponseContext, test_null_response_context,
                     MILTER_TYPE_CLIENT_CONTEXT)

static MilterStatus
test_null_response_context_helo (MilterClientContext *context,
                                 const gchar         *fqdn)
{
  return MILTER_STATUS_REJECT;
}

static void
test_null_response_context_class_init (TestNullResponseContextClass *klass)
{
  MilterClientContextClass *context_class = MILTER_CLIENT_CONTEXT_CLASS (klass);

  context_class->helo = test_null_response_context_helo;
  context_class->negotiate_response = NULL;
  context_class->helo_response = NULL;
}

static void
test_null_response_context_init (TestNullResponseContext *self)
{
}

static void
count_response_handler (MilterClientContext *context, MilterStatus status, gpointer data)
{
  (*(guint *) data)++;
}

/* A -response method set to NULL stands for the base class's: every
 * step still replies, with or without a -response handler connected. */
static void
test_subclass_null_response_method (void)
{
  g_autoptr(GIOStream) filter_end = NULL;
  g_autoptr(MilterClientContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *reply = NULL;
  MtaHarness *mta = mta_harness_new_pair (&filter_end);
  guint calls = 0;

  context = g_object_new (TEST_TYPE_NULL_RESPONSE_CONTEXT, NULL);
  g_assert_true (milter_client_context_start (context, filter_end, &error));
  g_assert_no_error (error);

  mta_harness_negotiate (mta, 6, POSTFIX_ACTIONS, POSTFIX_STEPS);
  reply = mta_harness_read (mta);
  g_assert_true (g_str_has_prefix (reply, "O 6 "));
  mta_harness_helo (mta, "direct.example");
  mta_harness_expect (mta, "r");

  g_signal_connect (context, "helo-response", G_CALLBACK (count_response_handler), &calls);
  mta_harness_helo (mta, "emitted.example");
  mta_harness_expect (mta, "r");
  g_assert_cmpuint (calls, ==, 1);
  mta_harness_free (mta);
}

#define ADD_SUBCLASS(path, func) \
  g_test_add ("/client-context/subclass/" path, SubclassFixture, NULL, subclass_setup, func, \
              subclass_teardown)

#define ADD(path, func) \
  g_test_add ("/client-context/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  ADD ("negotiate/all-handlers", test_negotiate_all_handlers);
  ADD ("negotiate/only-end-of-message", test_negotiate_only_end_of_message);
  ADD ("negotiate/message-processed-keeps-steps", test_negotiate_message_processed_keeps_steps);
  ADD ("negotiate/old-mta", test_negotiate_old_mta);
  ADD ("negotiate/zero-fields", test_negotiate_zero_fields);
  ADD ("negotiate/data-size", test_negotiate_data_size);
  ADD ("negotiate/data-size-limited", test_negotiate_data_size_limited);
  ADD ("negotiate/continue", test_negotiate_continue);
  ADD ("negotiate/continue-data-size-limited", test_negotiate_continue_data_size_limited);
  ADD ("negotiate/continue-beyond-offer", test_negotiate_continue_beyond_offer);
  ADD ("negotiate/continue-drops-unoffered", test_negotiate_continue_drops_unoffered);
  ADD ("negotiate/continue-strips-internal-bits", test_negotiate_continue_strips_internal_bits);
  ADD ("negotiate/reject", test_negotiate_reject);
  ADD ("negotiate/progress", test_negotiate_progress);
  g_test_add_func ("/client-context/replies/every-event-and-status", test_status_replies);
  ADD ("replies/skip-not-offered", test_skip_not_offered);
  ADD ("replies/accumulator", test_accumulator);
  ADD ("replies/fallback-status", test_fallback_status);
  ADD ("replies/fallback-only-with-handlers", test_fallback_only_with_handlers);
  ADD ("replies/nonsense-status-gets-fallback", test_nonsense_status_gets_fallback);
  g_test_add_func ("/client-context/progress/every-event", test_progress_every_event);
  ADD ("progress/response-signal", test_progress_response_signal);
  ADD ("progress/keepalives", test_progress_keepalives);
  ADD ("progress/misuse", test_progress_misuse);
  ADD ("progress/only-at-end-of-message", test_progress_only_at_end_of_message);
  ADD ("progress/after-disconnect", test_progress_after_disconnect);
  ADD ("events/nested-main-loop", test_nested_main_loop);
  ADD ("progress/at-abort", test_progress_at_abort);
  ADD ("no-reply-steps", test_no_reply_steps);
  ADD ("tolerated/sequences", test_tolerated_sequences);
  ADD ("tolerated/mail-without-abort", test_mail_without_abort);
  ADD ("messages/three", test_three_messages);
  ADD ("messages/default-timeout", test_default_timeout);
  ADD ("messages/end-of-message-with-data", test_end_of_message_with_data);
  ADD ("messages/result", test_message_result);
  ADD ("messages/decided-not-aborted", test_decided_message_not_aborted);
  ADD ("quit-new-connection", test_quit_new_connection);
  ADD ("errors/malformed", test_error_malformed);
  ADD ("errors/order", test_error_order);
  ADD ("errors/order-through-unknown", test_error_order_through_unknown);
  ADD ("errors/order-with-unknown-negotiated-away", test_error_order_with_unknown_negotiated_away);
  ADD ("events/unknown-in-place", test_unknown_in_place);
  ADD ("errors/second-negotiation", test_error_second_negotiation);
  ADD ("errors/negotiation-after-quit-new-connection", test_error_negotiation_after_quit_new_connection);
  ADD ("errors/oversize", test_error_oversize);
  ADD ("errors/unknown-command", test_error_unknown_command);
  ADD ("errors/logged-when-unhandled", test_error_logged_when_unhandled);
  ADD ("end/eof-mid-message", test_eof_mid_message);
  ADD ("end/eof-mid-packet", test_eof_mid_packet);
  ADD ("end/unref-mid-message", test_unref_mid_message);
  ADD ("end/eof-before-connect", test_eof_before_connect);
  ADD ("end/quit", test_quit);
  ADD ("end/timeout", test_timeout);
  ADD ("end/timeout-not-during-progress", test_timeout_not_during_progress);
  ADD ("limits/headers", test_limit_headers);
  ADD ("limits/message-result-size", test_limit_message_result_size);
  ADD ("limits/recipients", test_limit_recipients);
  ADD ("limits/macros", test_limit_macros);
  ADD ("limits/slow-peer", test_limit_slow_peer);
  ADD ("limits/peer-not-reading", test_limit_peer_not_reading);
  ADD ("content/body-with-nul", test_body_with_nul);
  ADD ("content/use-bytes", test_use_bytes);
  ADD ("content/body-first-decisive-wins", test_body_first_decisive_wins);
  ADD ("content/connect-addresses", test_connect_addresses);
  ADD ("macros/scopes", test_macros);
  ADD ("macros/define-macro-signal", test_define_macro_signal);
  ADD ("modify/everything", test_modifications);
  ADD ("modify/replace-body-chunks", test_replace_body_chunks);
  ADD ("modify/outside-end-of-message", test_modify_outside_end_of_message);
  ADD ("modify/invalid-values", test_modify_invalid_values);
  ADD ("modify/longest-lines", test_modify_longest_lines);
  ADD ("modify/not-negotiated", test_modify_not_negotiated);
  ADD ("modify/while-deferred", test_modify_while_deferred);
  ADD ("state/states", test_states);
  ADD ("state/shelf", test_shelf);
  ADD ("state/private-data", test_private_data);
  g_test_add_func ("/client-context/feed/random-splits", test_feed_random_splits);
  ADD_SUBCLASS ("negotiation", test_subclass_negotiation);
  ADD_SUBCLASS ("session", test_subclass_session);
  ADD_SUBCLASS ("handlers-first", test_subclass_handlers_first);
  ADD_SUBCLASS ("response-method", test_subclass_response_method);
  g_test_add_func ("/client-context/subclass/null-response-method",
                   test_subclass_null_response_method);
  g_test_add_func ("/client-context/feed/error", test_feed_error);
  g_test_add_func ("/client-context/start/not-pollable", test_start_not_pollable);

  return g_test_run ();
}
