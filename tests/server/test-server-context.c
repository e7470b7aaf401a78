/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>

#include "server-test-util.h"

/* The context plays the MTA; the test plays the milter on the other end
 * of a socket pair and checks every packet the context sends. */

typedef struct
{
  MilterServerContext *context;
  TestPeer *peer;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->peer = test_peer_new_pair (&f->context);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_object (&f->context);
  test_peer_free (f->peer);
  /* Let cancelled I/O finish, so nothing is left for valgrind. */
  while (g_main_context_pending (NULL))
    g_main_context_iteration (NULL, FALSE);
}

static void
assert_message_contains (const GError *error,
                         const gchar  *part)
{
  if (part != NULL && strstr (error->message, part) == NULL)
    g_error ("“%s” does not contain “%s”", error->message, part);
}

/* Waits for a command call and checks its verdict. */
static void
assert_status (TestResult   *result,
               MilterStatus  status)
{
  test_result_wait (result);
  g_assert_no_error (result->error);
  g_assert_cmpint (result->status, ==, status);
  test_result_clear (result);
}

static void
assert_ok (TestResult *result)
{
  test_result_wait (result);
  g_assert_no_error (result->error);
  g_assert_true (result->ok);
  test_result_clear (result);
}

static GSocketAddress *
inet_address (const gchar *text,
              guint16      port)
{
  g_autoptr(GInetAddress) address = g_inet_address_new_from_string (text);

  return g_inet_socket_address_new (address, port);
}

static GBytes *
pattern_bytes (gsize size)
{
  guint8 *data = g_malloc (size);

  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) ('a' + i % 23);
  return g_bytes_new_take (data, size);
}

/* Runs the main context until the context has closed. */
static void
wait_closed (MilterServerContext *context)
{
  gint64 deadline = g_get_monotonic_time () + TEST_PEER_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND;

  while (!milter_server_context_is_closed (context) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, FALSE) || (g_usleep (1000), TRUE);
  g_assert_true (milter_server_context_is_closed (context));
}

/* ---- a whole session ---------------------------------------------------- */

static void
test_session (Fixture       *f,
              gconstpointer  data)
{
  MilterServerContext *context = f->context;
  TestPeer *peer = f->peer;
  TestResult r = { 0 };
  g_autoptr(GSocketAddress) client = inet_address ("192.0.2.1", 4321);
  g_autoptr(GBytes) body = g_bytes_new_static ("Hello\r\n", 7);
  g_autoptr(GByteArray) expected = g_byte_array_new ();
  g_autoptr(MilterOption) postfix = milter_option_new_postfix ();
  g_autoptr(GBytes) offer_bytes = NULL;
  const gchar *mail_parameters[] = { "SIZE=1234", "BODY=8BITMIME", NULL };
  const gchar *connect_names[] = { "j", NULL }, *connect_values[] = { "mta.example", NULL };
  const gchar *rcpt_names[] = { "i", "{rcpt_addr}", NULL };
  const gchar *rcpt_values[] = { "QID", "rcpt@example.org", NULL };

  milter_server_context_set_default_macros (context, FALSE);
  milter_server_context_set_macro (context, MILTER_COMMAND_CONNECT, "j", "mta.example");
  milter_server_context_set_macro (context, MILTER_COMMAND_ENVELOPE_RECIPIENT, "i", "QID");
  milter_server_context_set_macro (context, MILTER_COMMAND_ENVELOPE_RECIPIENT, "rcpt_addr",
                                   "rcpt@example.org");

  test_negotiate (context, peer, NULL, 6, MILTER_ACTION_ALL, MILTER_STEP_NONE);
  /* Postfix's offer, byte for byte (captured by purepythonmilter). */
  offer_bytes = test_util_bytes_from_hex ("0000000d 4f 00000006 000001ff 001fffff");
  g_assert_cmpmem (peer->received->data, 17, g_bytes_get_data (offer_bytes, NULL), 17);

  milter_server_context_connect_async (context, "client.example", client, NULL,
                                       test_result_callback, &r);
  test_peer_expect (peer, "D for=C j=mta.example");
  test_peer_expect (peer, "C client.example family=4 port=4321 address=192.0.2.1");
  test_peer_reply (peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  milter_server_context_helo_async (context, "helo.example", NULL, test_result_callback, &r);
  test_peer_expect (peer, "D for=H");
  test_peer_expect (peer, "H helo.example");
  test_peer_reply (peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  milter_server_context_envelope_from_async (context, "<sender@example.com>", mail_parameters,
                                             NULL, test_result_callback, &r);
  test_peer_expect (peer, "D for=M");
  test_peer_expect (peer, "M <sender@example.com> SIZE=1234 BODY=8BITMIME");
  test_peer_reply (peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  milter_server_context_envelope_recipient_async (context, "<rcpt@example.org>", NULL, NULL,
                                                  test_result_callback, &r);
  test_peer_expect (peer, "D for=R i=QID {rcpt_addr}=rcpt@example.org");
  test_peer_expect (peer, "R <rcpt@example.org>");
  test_peer_reply (peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  milter_server_context_data_async (context, NULL, test_result_callback, &r);
  test_peer_expect (peer, "D for=T");
  test_peer_expect (peer, "T");
  test_peer_reply (peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  milter_server_context_header_async (context, "Subject", "Hi\n there", NULL,
                                      test_result_callback, &r);
  test_peer_expect (peer, "D for=L");
  test_peer_expect (peer, "L Subject=Hi\n there");
  test_peer_reply (peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  milter_server_context_end_of_header_async (context, NULL, test_result_callback, &r);
  test_peer_expect (peer, "D for=N");
  test_peer_expect (peer, "N");
  test_peer_reply (peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  milter_server_context_body_async (context, body, NULL, test_result_callback, &r);
  test_peer_expect (peer, "D for=B");
  test_peer_expect (peer, "B 7 bytes");
  test_peer_reply (peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  milter_server_context_unknown_async (context, "HELP", NULL, test_result_callback, &r);
  test_peer_expect (peer, "D for=U");
  test_peer_expect (peer, "U HELP");
  test_peer_reply (peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  milter_server_context_end_of_message_async (context, NULL, test_result_callback, &r);
  test_peer_expect (peer, "D for=E");
  test_peer_expect (peer, "E");
  test_peer_reply (peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);
  g_assert_cmpuint (milter_server_context_get_modifications (context)->len, ==, 0);
  g_assert_null (milter_server_context_get_reply_text (context));

  milter_server_context_quit_async (context, NULL, test_result_callback, &r);
  test_peer_expect (peer, "Q");
  assert_ok (&r);
  test_peer_expect_eof (peer);
  g_assert_true (milter_server_context_is_closed (context));

  /* The whole stream, compared with the encoder's rendering of it. */
  milter_encoder_encode_negotiate (expected, postfix);
  milter_encoder_encode_define_macro (expected, 'C', connect_names, connect_values);
  milter_encoder_encode_connect (expected, "client.example", client);
  milter_encoder_encode_define_macro (expected, 'H', NULL, NULL);
  milter_encoder_encode_string (expected, 'H', "helo.example");
  milter_encoder_encode_define_macro (expected, 'M', NULL, NULL);
  milter_encoder_encode_envelope (expected, 'M', "<sender@example.com>", mail_parameters);
  milter_encoder_encode_define_macro (expected, 'R', rcpt_names, rcpt_values);
  milter_encoder_encode_envelope (expected, 'R', "<rcpt@example.org>", NULL);
  milter_encoder_encode_define_macro (expected, 'T', NULL, NULL);
  milter_encoder_encode_empty (expected, 'T');
  milter_encoder_encode_define_macro (expected, 'L', NULL, NULL);
  milter_encoder_encode_header (expected, 'L', "Subject", "Hi\n there");
  milter_encoder_encode_define_macro (expected, 'N', NULL, NULL);
  milter_encoder_encode_empty (expected, 'N');
  milter_encoder_encode_define_macro (expected, 'B', NULL, NULL);
  milter_encoder_encode_data (expected, 'B', "Hello\r\n", 7);
  milter_encoder_encode_define_macro (expected, 'U', NULL, NULL);
  milter_encoder_encode_string (expected, 'U', "HELP");
  milter_encoder_encode_define_macro (expected, 'E', NULL, NULL);
  milter_encoder_encode_empty (expected, 'E');
  milter_encoder_encode_empty (expected, 'Q');
  g_assert_cmpmem (peer->received->data, peer->received->len, expected->data, expected->len);
}

static void
test_connect_families (Fixture       *f,
                       gconstpointer  data)
{
  TestResult r = { 0 };
  g_autoptr(GSocketAddress) v6 = inet_address ("2001:db8::25", 25);
  g_autoptr(GSocketAddress) unix_address = g_unix_socket_address_new ("/run/smtp.sock");

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, 0, 0);

  milter_server_context_connect_async (f->context, "[unknown]", NULL, NULL,
                                       test_result_callback, &r);
  test_peer_expect (f->peer, "D for=C");
  test_peer_expect (f->peer, "C [unknown] family=U");
  test_peer_reply (f->peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  milter_server_context_quit_new_connection_async (f->context, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "K");
  assert_ok (&r);

  milter_server_context_connect_async (f->context, "v6.example", v6, NULL,
                                       test_result_callback, &r);
  test_peer_expect (f->peer, "D for=C");
  test_peer_expect (f->peer, "C v6.example family=6 port=25 address=2001:db8::25");
  test_peer_reply (f->peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  milter_server_context_quit_new_connection_async (f->context, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "K");
  assert_ok (&r);

  milter_server_context_connect_async (f->context, "localhost", unix_address, NULL,
                                       test_result_callback, &r);
  test_peer_expect (f->peer, "D for=C");
  test_peer_expect (f->peer, "C localhost family=L port=0 address=/run/smtp.sock");
  test_peer_reply (f->peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  /* Abort keeps the connection for the next message. */
  milter_server_context_envelope_from_async (f->context, "<>", NULL, NULL,
                                             test_result_callback, &r);
  test_peer_expect (f->peer, "D for=M");
  test_peer_expect (f->peer, "M <>");
  test_peer_reply (f->peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);
  milter_server_context_abort_async (f->context, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "A");
  assert_ok (&r);
  milter_server_context_envelope_from_async (f->context, "<a@example.com>", NULL, NULL,
                                             test_result_callback, &r);
  test_peer_expect (f->peer, "D for=M");
  test_peer_expect (f->peer, "M <a@example.com>");
  test_peer_reply (f->peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect_nothing (f->peer, 20);
}

/* ---- macros ------------------------------------------------------------- */

#define CONNECT_TEXT "C client.example family=4 port=4321 address=192.0.2.1"

static void
run_step_expecting (Fixture     *f,
                    TestResult  *r,
                    const gchar *macros,
                    const gchar *command)
{
  test_peer_expect (f->peer, macros);
  if (command != NULL)
    test_peer_expect (f->peer, command);
  test_peer_reply (f->peer, 'c');
  assert_status (r, MILTER_STATUS_CONTINUE);
}

static void
test_default_macros (Fixture       *f,
                     gconstpointer  data)
{
  MilterServerContext *context = f->context;
  TestResult r = { 0 };
  g_autoptr(GSocketAddress) client = inet_address ("192.0.2.1", 4321);
  g_autoptr(GBytes) body = g_bytes_new_static ("x", 1);
  const gchar *host = g_get_host_name ();
  g_autofree gchar *connect_macros =
    g_strdup_printf ("D for=C j=%s {daemon_name}=%s v=milter-glib %s _=client.example [192.0.2.1]",
                     host, host, PACKAGE_VERSION);
  g_autofree gchar *rcpt_macros = NULL;
  g_autofree gchar *queue_id = NULL;
  g_autofree gchar *i_macro = NULL;
  g_autofree gchar *expected = NULL;

  test_negotiate (context, f->peer, NULL, 6, 0, 0);
  g_assert_true (milter_server_context_get_default_macros (context));

  milter_server_context_connect_async (context, "client.example", client, NULL,
                                       test_result_callback, &r);
  run_step_expecting (f, &r, connect_macros, CONNECT_TEXT);
  milter_server_context_helo_async (context, "helo.example", NULL, test_result_callback, &r);
  run_step_expecting (f, &r, "D for=H", "H helo.example");
  milter_server_context_envelope_from_async (context, "<sender@example.com>", NULL, NULL,
                                             test_result_callback, &r);
  run_step_expecting (f, &r,
                      "D for=M {mail_addr}=sender@example.com {mail_host}=example.com "
                      "{mail_mailer}=smtp", "M <sender@example.com>");

  /* The queue ID appears with the first recipient, as with Postfix. */
  milter_server_context_envelope_recipient_async (context, "<rcpt@example.org>", NULL, NULL,
                                                  test_result_callback, &r);
  rcpt_macros = test_peer_read_text (f->peer);
  g_assert_true (g_str_has_prefix (rcpt_macros, "D for=R i="));
  queue_id = g_strndup (rcpt_macros + strlen ("D for=R i="), 10);
  expected = g_strdup_printf ("D for=R i=%s {rcpt_addr}=rcpt@example.org "
                              "{rcpt_host}=example.org {rcpt_mailer}=smtp", queue_id);
  g_assert_cmpstr (rcpt_macros, ==, expected);
  run_step_expecting (f, &r, "R <rcpt@example.org>", NULL);

  milter_server_context_envelope_recipient_async (context, "<local>", NULL, NULL,
                                                  test_result_callback, &r);
  g_free (expected);
  expected = g_strdup_printf ("D for=R i=%s {rcpt_addr}=local {rcpt_mailer}=local", queue_id);
  run_step_expecting (f, &r, expected, "R <local>");

  i_macro = g_strdup_printf ("i=%s", queue_id);
#define STAGE_MACROS(letter) \
  (g_free (expected), expected = g_strdup_printf ("D for=%c %s", letter, i_macro))
  milter_server_context_data_async (context, NULL, test_result_callback, &r);
  run_step_expecting (f, &r, STAGE_MACROS ('T'), "T");
  milter_server_context_header_async (context, "From", "a", NULL, test_result_callback, &r);
  run_step_expecting (f, &r, STAGE_MACROS ('L'), "L From=a");
  milter_server_context_end_of_header_async (context, NULL, test_result_callback, &r);
  run_step_expecting (f, &r, STAGE_MACROS ('N'), "N");
  milter_server_context_body_async (context, body, NULL, test_result_callback, &r);
  run_step_expecting (f, &r, STAGE_MACROS ('B'), "B 1 bytes");
  milter_server_context_unknown_async (context, "VRFY x", NULL, test_result_callback, &r);
  run_step_expecting (f, &r, "D for=U", "U VRFY x");
  milter_server_context_end_of_message_async (context, NULL, test_result_callback, &r);
  run_step_expecting (f, &r, STAGE_MACROS ('E'), "E");
#undef STAGE_MACROS

  /* The null sender has an empty address and no host. */
  milter_server_context_envelope_from_async (context, "<>", NULL, NULL,
                                             test_result_callback, &r);
  run_step_expecting (f, &r, "D for=M {mail_addr}=", "M <>");

  /* Overrides: replace, suppress, add; clearing restores the defaults. */
  milter_server_context_set_macro (context, MILTER_COMMAND_CONNECT, "j", "override");
  milter_server_context_set_macro (context, MILTER_COMMAND_CONNECT, "{daemon_name}", NULL);
  milter_server_context_set_macro (context, MILTER_COMMAND_CONNECT, "client_addr", "10.0.0.1");
  milter_server_context_set_macro (context, MILTER_COMMAND_CONNECT, "j", "override2");
  milter_server_context_set_macro (context, MILTER_COMMAND_HELO, "{tls_version}", "TLSv1.3");
  milter_server_context_connect_async (context, "client.example", client, NULL,
                                       test_result_callback, &r);
  g_free (expected);
  expected = g_strdup_printf ("D for=C j=override2 v=milter-glib %s _=client.example [192.0.2.1] "
                              "{client_addr}=10.0.0.1", PACKAGE_VERSION);
  run_step_expecting (f, &r, expected, CONNECT_TEXT);
  milter_server_context_helo_async (context, "h", NULL, test_result_callback, &r);
  run_step_expecting (f, &r, "D for=H {tls_version}=TLSv1.3", "H h");

  milter_server_context_clear_macros (context, MILTER_COMMAND_CONNECT);
  milter_server_context_connect_async (context, "client.example", client, NULL,
                                       test_result_callback, &r);
  run_step_expecting (f, &r, connect_macros, CONNECT_TEXT);

  /* Without defaults, only what was set is sent. */
  milter_server_context_set_default_macros (context, FALSE);
  milter_server_context_helo_async (context, "h", NULL, test_result_callback, &r);
  run_step_expecting (f, &r, "D for=H {tls_version}=TLSv1.3", "H h");
}

static void
test_requested_macros (Fixture       *f,
                       gconstpointer  data)
{
  MilterServerContext *context = f->context;
  TestResult r = { 0 };
  g_autoptr(GSocketAddress) client = inet_address ("192.0.2.1", 4321);
  g_autoptr(MilterMacrosRequests) requests = milter_macros_requests_new ();
  const gchar *connect_list[] = { "{client_addr}", "client_port", "j", "{unknown}", NULL };
  const gchar *empty_list[] = { NULL };
  const gchar *eom_list[] = { "{mail_addr}", "i", NULL };
  MilterMacrosRequests *negotiated;
  g_autofree gchar *expected = NULL;

  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_CONNECT, connect_list);
  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_ENVELOPE_FROM, empty_list);
  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_END_OF_MESSAGE, eom_list);

  milter_server_context_negotiate_async (context, NULL, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "O version=6 action=0x1ff step=0x1fffff");
  test_peer_reply_negotiate (f->peer, 6, MILTER_ACTION_ALL, 0, requests);
  assert_ok (&r);
  negotiated = milter_server_context_get_macros_requests (context);
  g_assert_nonnull (negotiated);
  g_assert_true (milter_macros_requests_equal (negotiated, requests));

  /* The requested list replaces the default one; unknown macros are left
   * out, and an empty list falls back to the default (as in Postfix). */
  milter_server_context_connect_async (context, "client.example", client, NULL,
                                       test_result_callback, &r);
  expected = g_strdup_printf ("D for=C {client_addr}=192.0.2.1 {client_port}=4321 j=%s",
                              g_get_host_name ());
  run_step_expecting (f, &r, expected, CONNECT_TEXT);
  milter_server_context_envelope_from_async (context, "<a@b.example>", NULL, NULL,
                                             test_result_callback, &r);
  run_step_expecting (f, &r, "D for=M {mail_addr}=a@b.example {mail_host}=b.example "
                      "{mail_mailer}=smtp", "M <a@b.example>");
  milter_server_context_end_of_message_async (context, NULL, test_result_callback, &r);
  /* No recipient yet, so no queue ID. */
  run_step_expecting (f, &r, "D for=E {mail_addr}=a@b.example", "E");
}

/* ---- negotiated steps --------------------------------------------------- */

static void
test_no_steps (Fixture       *f,
               gconstpointer  data)
{
  MilterServerContext *context = f->context;
  TestResult r = { 0 };
  g_autoptr(GBytes) body = pattern_bytes (70000);
  MilterStepFlags no_steps = MILTER_STEP_NO_CONNECT | MILTER_STEP_NO_HELO |
                             MILTER_STEP_NO_ENVELOPE_FROM | MILTER_STEP_NO_ENVELOPE_RECIPIENT |
                             MILTER_STEP_NO_DATA | MILTER_STEP_NO_HEADERS |
                             MILTER_STEP_NO_END_OF_HEADER | MILTER_STEP_NO_BODY |
                             MILTER_STEP_NO_UNKNOWN;

  milter_server_context_set_default_macros (context, FALSE);
  test_negotiate (context, f->peer, NULL, 6, MILTER_ACTION_ALL, no_steps);
  g_assert_cmpuint (milter_option_get_step (milter_server_context_get_option (context)), ==,
                    no_steps);

  /* Each disabled step sends only its macros and completes at once. */
  milter_server_context_connect_async (context, "h", NULL, NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=C");
  milter_server_context_helo_async (context, "h", NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=H");
  milter_server_context_envelope_from_async (context, "<a@b>", NULL, NULL,
                                             test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=M");
  milter_server_context_envelope_recipient_async (context, "<c@d>", NULL, NULL,
                                                  test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=R");
  milter_server_context_data_async (context, NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=T");
  milter_server_context_header_async (context, "A", "b", NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=L");
  milter_server_context_end_of_header_async (context, NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=N");
  milter_server_context_body_async (context, body, NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=B");
  test_peer_expect (f->peer, "D for=B");
  milter_server_context_unknown_async (context, "X", NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=U");
  test_peer_expect_nothing (f->peer, 20);

  milter_server_context_end_of_message_async (context, NULL, test_result_callback, &r);
  run_step_expecting (f, &r, "D for=E", "E");
}

static void
test_no_reply_steps (Fixture       *f,
                     gconstpointer  data)
{
  MilterServerContext *context = f->context;
  TestResult r = { 0 };
  g_autoptr(GBytes) body = pattern_bytes (150000);
  MilterStepFlags no_reply = MILTER_STEP_NO_REPLY_MASK;

  milter_server_context_set_default_macros (context, FALSE);
  test_negotiate (context, f->peer, NULL, 6, MILTER_ACTION_ALL, no_reply);

  /* Each step is sent and completes without waiting for a reply. */
  milter_server_context_connect_async (context, "h", NULL, NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=C");
  test_peer_expect (f->peer, "C h family=U");
  milter_server_context_helo_async (context, "h", NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=H");
  test_peer_expect (f->peer, "H h");
  milter_server_context_envelope_from_async (context, "<a@b>", NULL, NULL,
                                             test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=M");
  test_peer_expect (f->peer, "M <a@b>");
  milter_server_context_envelope_recipient_async (context, "<c@d>", NULL, NULL,
                                                  test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=R");
  test_peer_expect (f->peer, "R <c@d>");
  milter_server_context_data_async (context, NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=T");
  test_peer_expect (f->peer, "T");
  milter_server_context_header_async (context, "A", "b", NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=L");
  test_peer_expect (f->peer, "L A=b");
  milter_server_context_end_of_header_async (context, NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=N");
  test_peer_expect (f->peer, "N");
  milter_server_context_body_async (context, body, NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=B");
  test_peer_expect (f->peer, "B 65535 bytes");
  test_peer_expect (f->peer, "D for=B");
  test_peer_expect (f->peer, "B 65535 bytes");
  test_peer_expect (f->peer, "D for=B");
  test_peer_expect (f->peer, "B 18930 bytes");
  milter_server_context_unknown_async (context, "X", NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect (f->peer, "D for=U");
  test_peer_expect (f->peer, "U X");

  /* End-of-message always has a reply. */
  milter_server_context_end_of_message_async (context, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "D for=E");
  test_peer_expect (f->peer, "E");
  test_util_run_for (50);
  g_assert_false (r.done);
  test_peer_reply (f->peer, 'a');
  assert_status (&r, MILTER_STATUS_ACCEPT);
}

static void
test_body_chunks (Fixture       *f,
                  gconstpointer  data)
{
  TestResult r = { 0 };
  g_autoptr(GBytes) body = pattern_bytes (150000);
  g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
  const MilterPacket *packet;

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);

  /* One call, three packets, one reply each. */
  milter_server_context_body_async (f->context, body, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "D for=B");
  packet = test_peer_read (f->peer);
  g_assert_cmpint (packet->command, ==, 'B');
  g_assert_cmpmem (packet->data, packet->size, g_bytes_get_data (body, NULL), 65535);
  test_peer_expect_nothing (f->peer, 20);
  test_peer_reply (f->peer, 'c');
  test_peer_expect (f->peer, "D for=B");
  packet = test_peer_read (f->peer);
  g_assert_cmpmem (packet->data, packet->size,
                   (const guint8 *) g_bytes_get_data (body, NULL) + 65535, 65535);
  test_peer_reply (f->peer, 'c');
  test_peer_expect (f->peer, "D for=B");
  packet = test_peer_read (f->peer);
  g_assert_cmpmem (packet->data, packet->size,
                   (const guint8 *) g_bytes_get_data (body, NULL) + 131070, 18930);
  g_assert_false (r.done);
  test_peer_reply (f->peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  /* A verdict other than continue stops the rest. */
  milter_server_context_body_async (f->context, body, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "D for=B");
  test_peer_expect (f->peer, "B 65535 bytes");
  test_peer_reply (f->peer, 'r');
  assert_status (&r, MILTER_STATUS_REJECT);
  test_peer_expect_nothing (f->peer, 20);

  /* An empty chunk sends nothing. */
  milter_server_context_body_async (f->context, empty, NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_CONTINUE);
  test_peer_expect_nothing (f->peer, 20);
}

static void
test_skip (Fixture       *f,
           gconstpointer  data)
{
  TestResult r = { 0 };
  g_autoptr(GBytes) body = pattern_bytes (100000);

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, MILTER_STEP_SKIP);

  milter_server_context_body_async (f->context, body, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "D for=B");
  test_peer_expect (f->peer, "B 65535 bytes");
  test_peer_reply (f->peer, 's');
  assert_status (&r, MILTER_STATUS_SKIP);
  test_peer_expect_nothing (f->peer, 20);

  /* The rest of the message's body is not sent. */
  milter_server_context_body_async (f->context, body, NULL, test_result_callback, &r);
  assert_status (&r, MILTER_STATUS_SKIP);
  test_peer_expect_nothing (f->peer, 20);

  milter_server_context_end_of_message_async (f->context, NULL, test_result_callback, &r);
  run_step_expecting (f, &r, "D for=E", "E");

  /* The next message gets its body again. */
  milter_server_context_envelope_from_async (f->context, "<a@b>", NULL, NULL,
                                             test_result_callback, &r);
  run_step_expecting (f, &r, "D for=M", "M <a@b>");
  milter_server_context_body_async (f->context, body, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "D for=B");
  test_peer_expect (f->peer, "B 65535 bytes");
  test_peer_reply (f->peer, 'd');
  assert_status (&r, MILTER_STATUS_DISCARD);
}

static void
test_versions (Fixture       *f,
               gconstpointer  data)
{
  guint32 version = GPOINTER_TO_UINT (data);
  TestResult r = { 0 };
  g_autoptr(MilterOption) offer = milter_option_new (version, 0x3F,
                                                     version == 2 ? 0x7F :
                                                     version == 3 ? 0x17F : 0x37F);

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, offer, version, 0x3F, 0);
  g_assert_cmpuint (milter_option_get_version (milter_server_context_get_option (f->context)),
                    ==, version);

  /* DATA needs version 4, unknown commands version 3. */
  milter_server_context_data_async (f->context, NULL, test_result_callback, &r);
  if (version >= 4)
    run_step_expecting (f, &r, "D for=T", "T");
  else
    {
      assert_status (&r, MILTER_STATUS_CONTINUE);
      test_peer_expect (f->peer, "D for=T");
    }
  milter_server_context_unknown_async (f->context, "X", NULL, test_result_callback, &r);
  if (version >= 3)
    run_step_expecting (f, &r, "D for=U", "U X");
  else
    {
      assert_status (&r, MILTER_STATUS_CONTINUE);
      test_peer_expect (f->peer, "D for=U");
    }
  test_peer_expect_nothing (f->peer, 20);
}

static void
test_leading_space (Fixture       *f,
                    gconstpointer  data)
{
  TestResult r = { 0 };
  GPtrArray *modifications;

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL,
                  MILTER_STEP_HEADER_LEADING_SPACE);

  /* The milter gets the value as it was after the colon. */
  milter_server_context_header_async (f->context, "Subject", "hi", NULL,
                                      test_result_callback, &r);
  run_step_expecting (f, &r, "D for=L", "L Subject= hi");

  /* and its values carry their own space. */
  milter_server_context_end_of_message_async (f->context, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "D for=E");
  test_peer_expect (f->peer, "E");
  milter_encoder_encode_header (f->peer->out, 'h', "X-A", " v");
  milter_encoder_encode_header (f->peer->out, 'h', "X-B", "w");
  test_peer_reply (f->peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);
  modifications = milter_server_context_get_modifications (f->context);
  g_assert_cmpuint (modifications->len, ==, 2);
  g_assert_cmpstr (milter_modification_get_value (g_ptr_array_index (modifications, 0)), ==, "v");
  g_assert_cmpstr (milter_modification_get_value (g_ptr_array_index (modifications, 1)), ==, "w");
  g_assert_cmpuint (milter_server_context_get_n_modifications (f->context), ==, 2);
  g_assert_true (milter_server_context_get_modification (f->context, 1) == g_ptr_array_index (modifications, 1));
  g_assert_null (milter_server_context_get_modification (f->context, 2));
}

/* ---- verdicts and progress ---------------------------------------------- */

static void
test_verdicts (Fixture       *f,
               gconstpointer  data)
{
  static const struct
  {
    gchar letter;
    const gchar *text;
    MilterStatus status;
  } cases[] = {
    { 'c', NULL, MILTER_STATUS_CONTINUE },
    { 'a', NULL, MILTER_STATUS_ACCEPT },
    { 'r', NULL, MILTER_STATUS_REJECT },
    { 't', NULL, MILTER_STATUS_TEMPORARY_FAILURE },
    { 'd', NULL, MILTER_STATUS_DISCARD },
    { 'y', "550 5.7.1 Go away", MILTER_STATUS_REJECT },
    { 'y', "451 4.7.1 Try again later", MILTER_STATUS_TEMPORARY_FAILURE },
    { 'y', "550-5.7.1 first line\r\n550 5.7.1 second line", MILTER_STATUS_REJECT },
  };

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      TestResult r = { 0 };
      g_autofree gchar *reply_text = NULL;

      milter_server_context_helo_async (f->context, "h", NULL, test_result_callback, &r);
      test_peer_expect (f->peer, "D for=H");
      test_peer_expect (f->peer, "H h");
      if (cases[i].text != NULL)
        test_peer_reply_string (f->peer, cases[i].letter, cases[i].text);
      else
        test_peer_reply (f->peer, cases[i].letter);
      assert_status (&r, cases[i].status);
      g_assert_cmpstr (milter_server_context_get_reply_text (f->context), ==, cases[i].text);
      g_object_get (f->context, "reply-text", &reply_text, NULL);
      g_assert_cmpstr (reply_text, ==, cases[i].text);
    }
}

static guint n_progress;

static void
on_progress (MilterServerContext *context,
             gpointer             user_data)
{
  n_progress++;
}

static void
test_progress (Fixture       *f,
               gconstpointer  data)
{
  TestResult r = { 0 };

  n_progress = 0;
  g_signal_connect (f->context, "progress", G_CALLBACK (on_progress), NULL);
  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);

  /* Progress restarts the read timer: 5 × 100 ms is longer than 300 ms. */
  milter_server_context_set_read_timeout (f->context, 0.3);
  milter_server_context_helo_async (f->context, "h", NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "D for=H");
  test_peer_expect (f->peer, "H h");
  for (guint i = 0; i < 5; i++)
    {
      test_peer_reply (f->peer, 'p');
      test_util_run_for (100);
    }
  g_assert_false (r.done);
  g_assert_cmpuint (n_progress, ==, 5);
  test_peer_reply (f->peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  /* End-of-message has its own, longer timeout. */
  milter_server_context_set_read_timeout (f->context, 0.1);
  milter_server_context_set_end_of_message_timeout (f->context, 5);
  milter_server_context_end_of_message_async (f->context, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "D for=E");
  test_peer_expect (f->peer, "E");
  test_util_run_for (300);
  test_peer_reply (f->peer, 'p');
  g_assert_false (r.done);
  test_peer_reply (f->peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);
  g_assert_cmpuint (n_progress, ==, 6);
}

/* ---- modifications ------------------------------------------------------ */

static void
on_modification_signal (GString     *log,
                        const gchar *format,
                        ...) G_GNUC_PRINTF (2, 3);

static void
on_modification_signal (GString     *log,
                        const gchar *format,
                        ...)
{
  va_list args;

  va_start (args, format);
  g_string_append_vprintf (log, format, args);
  va_end (args);
  g_string_append_c (log, '\n');
}

static void
on_add_header (MilterServerContext *context, const gchar *name, const gchar *value,
               GString *log)
{
  on_modification_signal (log, "add-header %s=%s", name, value);
}

static void
on_insert_header (MilterServerContext *context, guint index, const gchar *name,
                  const gchar *value, GString *log)
{
  on_modification_signal (log, "insert-header %u %s=%s", index, name, value);
}

static void
on_change_header (MilterServerContext *context, const gchar *name, guint index,
                  const gchar *value, GString *log)
{
  on_modification_signal (log, "change-header %s %u %s", name, index, value);
}

static void
on_delete_header (MilterServerContext *context, const gchar *name, guint index, GString *log)
{
  on_modification_signal (log, "delete-header %s %u", name, index);
}

static void
on_change_from (MilterServerContext *context, const gchar *address, const gchar *parameters,
                GString *log)
{
  on_modification_signal (log, "change-from %s %s", address, parameters ? parameters : "-");
}

static void
on_add_recipient (MilterServerContext *context, const gchar *address, const gchar *parameters,
                  GString *log)
{
  on_modification_signal (log, "add-recipient %s %s", address, parameters ? parameters : "-");
}

static void
on_delete_recipient (MilterServerContext *context, const gchar *address, GString *log)
{
  on_modification_signal (log, "delete-recipient %s", address);
}

static void
on_replace_body (MilterServerContext *context, GBytes *chunk, GString *log)
{
  on_modification_signal (log, "replace-body %" G_GSIZE_FORMAT, g_bytes_get_size (chunk));
}

static void
on_quarantine (MilterServerContext *context, const gchar *reason, GString *log)
{
  on_modification_signal (log, "quarantine %s", reason);
}

static void
on_progress_log (MilterServerContext *context, GString *log)
{
  on_modification_signal (log, "progress");
}

static void
connect_modification_signals (MilterServerContext *context,
                              GString             *log)
{
  g_signal_connect (context, "add-header", G_CALLBACK (on_add_header), log);
  g_signal_connect (context, "insert-header", G_CALLBACK (on_insert_header), log);
  g_signal_connect (context, "change-header", G_CALLBACK (on_change_header), log);
  g_signal_connect (context, "delete-header", G_CALLBACK (on_delete_header), log);
  g_signal_connect (context, "change-from", G_CALLBACK (on_change_from), log);
  g_signal_connect (context, "add-recipient", G_CALLBACK (on_add_recipient), log);
  g_signal_connect (context, "delete-recipient", G_CALLBACK (on_delete_recipient), log);
  g_signal_connect (context, "replace-body", G_CALLBACK (on_replace_body), log);
  g_signal_connect (context, "quarantine", G_CALLBACK (on_quarantine), log);
  g_signal_connect (context, "progress", G_CALLBACK (on_progress_log), log);
}

static void
test_modifications (Fixture       *f,
                    gconstpointer  data)
{
  MilterServerContext *context = f->context;
  GByteArray *out = f->peer->out;
  TestResult r = { 0 };
  g_autoptr(GString) log = g_string_new (NULL);
  g_autoptr(GBytes) new_body = pattern_bytes (150000);
  g_autoptr(GBytes) text = NULL;
  g_autoptr(MilterMessage) message = NULL;
  g_autoptr(GError) error = NULL;
  GPtrArray *modifications;
  GString *listed = g_string_new (NULL);

  connect_modification_signals (context, log);
  milter_server_context_set_default_macros (context, FALSE);
  test_negotiate (context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);

  milter_server_context_end_of_message_async (context, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "D for=E");
  test_peer_expect (f->peer, "E");
  milter_encoder_encode_header (out, 'h', "X-Added", "added");
  milter_encoder_encode_indexed_header (out, 'i', 0, "X-Top", "top");
  milter_encoder_encode_indexed_header (out, 'm', 2, "Subject", "");
  milter_encoder_encode_indexed_header (out, 'm', 1, "X-Change", "changed");
  milter_encoder_encode_string (out, '+', "<added@example.org>");
  milter_encoder_encode_address_with_parameters (out, '2', "<added2@example.org>", "NOTIFY=NEVER");
  milter_encoder_encode_string (out, '-', "<rcpt2@example.org>");
  milter_encoder_encode_address_with_parameters (out, 'e', "<new@example.com>", "RET=HDRS");
  milter_encoder_encode_replace_body (out, g_bytes_get_data (new_body, NULL),
                                      g_bytes_get_size (new_body));
  milter_encoder_encode_string (out, 'q', "held for review");
  milter_encoder_encode_empty (out, 'p');
  test_peer_flush (f->peer);
  test_util_run_for (20);
  g_assert_false (r.done);
  test_peer_reply (f->peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);

  g_assert_cmpstr (log->str, ==,
                   "add-header X-Added=added\n"
                   "insert-header 0 X-Top=top\n"
                   "delete-header Subject 2\n"
                   "change-header X-Change 1 changed\n"
                   "add-recipient <added@example.org> -\n"
                   "add-recipient <added2@example.org> NOTIFY=NEVER\n"
                   "delete-recipient <rcpt2@example.org>\n"
                   "change-from <new@example.com> RET=HDRS\n"
                   "replace-body 65535\n"
                   "replace-body 65535\n"
                   "replace-body 18930\n"
                   "quarantine held for review\n"
                   "progress\n");

  modifications = milter_server_context_get_modifications (context);
  for (guint i = 0; i < modifications->len; i++)
    {
      g_autofree gchar *line = milter_modification_to_string (g_ptr_array_index (modifications, i));

      g_string_append_printf (listed, "%s\n", line);
    }
  g_assert_cmpstr (listed->str, ==,
                   "add-header: X-Added: added\n"
                   "insert-header[0]: X-Top: top\n"
                   "delete-header: Subject[2]\n"
                   "change-header: X-Change[1]: changed\n"
                   "add-recipient: <added@example.org>\n"
                   "add-recipient: <added2@example.org> NOTIFY=NEVER\n"
                   "delete-recipient: <rcpt2@example.org>\n"
                   "change-from: <new@example.com> RET=HDRS\n"
                   "replace-body: 150000 bytes\n"
                   "quarantine: held for review\n");
  g_string_free (listed, TRUE);
  g_assert_true (g_bytes_equal (milter_modification_get_body (g_ptr_array_index (modifications, 8)),
                                new_body));

  /* Applied as an MTA would. */
  {
    static const gchar original[] = "Subject: one\r\nX-Change: old\r\nSubject: two\r\n"
                                    "X-Change: second\r\n\r\nbody\r\n";

    text = g_bytes_new_static (original, sizeof original - 1);
  }
  message = milter_message_new_from_data (text, &error);
  g_assert_no_error (error);
  milter_message_set_from (message, "<sender@example.com>", NULL);
  milter_message_add_recipient (message, "<rcpt1@example.org>", NULL);
  milter_message_add_recipient (message, "<rcpt2@example.org>", NULL);
  g_assert_true (milter_message_apply_modifications (message, modifications, &error));
  g_assert_no_error (error);
  {
    MilterHeaders *headers = milter_message_get_headers (message);
    g_autofree gchar *rendered = milter_headers_to_string (headers);

    g_assert_cmpstr (rendered, ==,
                     "X-Top: top\r\nSubject: one\r\nX-Change: changed\r\nX-Change: second\r\n"
                     "X-Added: added\r\n");
  }
  g_assert_cmpstr (milter_message_get_from (message), ==, "<new@example.com>");
  g_assert_cmpstrv (milter_message_get_from_parameters (message),
                    ((const gchar *[]) { "RET=HDRS", NULL }));
  g_assert_cmpstrv (milter_message_get_recipients (message),
                    ((const gchar *[]) { "<rcpt1@example.org>", "<added@example.org>",
                                         "<added2@example.org>", NULL }));
  g_assert_cmpstrv (milter_message_get_recipient_parameters (message, 2),
                    ((const gchar *[]) { "NOTIFY=NEVER", NULL }));
  g_assert_true (g_bytes_equal (milter_message_get_body (message), new_body));
  g_assert_cmpstr (milter_message_get_quarantine_reason (message), ==, "held for review");

  /* The next end-of-message starts a new list. */
  milter_server_context_end_of_message_async (context, NULL, test_result_callback, &r);
  run_step_expecting (f, &r, "D for=E", "E");
  g_assert_cmpuint (milter_server_context_get_modifications (context)->len, ==, 0);
}

static void
test_replace_body_split (Fixture       *f,
                         gconstpointer  data)
{
  TestResult r = { 0 };
  GPtrArray *modifications;
  GBytes *body;

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);

  /* The 'b' packets of one end-of-message are concatenated, even with
   * other requests between them; the body takes the first one's place. */
  milter_server_context_end_of_message_async (f->context, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "D for=E");
  test_peer_expect (f->peer, "E");
  milter_encoder_encode_header (f->peer->out, 'h', "X-1", "1");
  milter_encoder_encode_replace_body (f->peer->out, "part one, ", 10);
  milter_encoder_encode_header (f->peer->out, 'h', "X-2", "2");
  milter_encoder_encode_replace_body (f->peer->out, "part two", 8);
  test_peer_reply (f->peer, 'a');
  assert_status (&r, MILTER_STATUS_ACCEPT);

  modifications = milter_server_context_get_modifications (f->context);
  g_assert_cmpuint (modifications->len, ==, 3);
  g_assert_cmpint (milter_modification_get_modification_type (g_ptr_array_index (modifications, 1)),
                   ==, MILTER_MODIFICATION_TYPE_REPLACE_BODY);
  body = milter_modification_get_body (g_ptr_array_index (modifications, 1));
  g_assert_cmpmem (g_bytes_get_data (body, NULL), g_bytes_get_size (body),
                   "part one, part two", 18);
  g_assert_cmpstr (milter_modification_get_name (g_ptr_array_index (modifications, 2)), ==, "X-2");

  /* An empty replacement empties the body. */
  milter_server_context_end_of_message_async (f->context, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "D for=E");
  test_peer_expect (f->peer, "E");
  milter_encoder_encode_replace_body (f->peer->out, NULL, 0);
  test_peer_reply (f->peer, 'c');
  assert_status (&r, MILTER_STATUS_CONTINUE);
  modifications = milter_server_context_get_modifications (f->context);
  g_assert_cmpuint (modifications->len, ==, 1);
  body = milter_modification_get_body (g_ptr_array_index (modifications, 0));
  g_assert_cmpuint (g_bytes_get_size (body), ==, 0);
}

/* ---- errors ------------------------------------------------------------- */

/* The call failed with the expected error, the context is closed, and
 * every later call fails with the same error. */
static void
assert_fails (Fixture     *f,
              TestResult  *r,
              GQuark       domain,
              gint         code,
              const gchar *message_part,
              gboolean     expect_eof)
{
  TestResult later = { 0 };

  test_result_wait (r);
  g_assert_error (r->error, domain, code);
  assert_message_contains (r->error, message_part);
  g_assert_true (g_utf8_validate (r->error->message, -1, NULL));
  g_assert_true (milter_server_context_is_closed (f->context));
  if (expect_eof)
    test_peer_expect_eof (f->peer);

  milter_server_context_helo_async (f->context, "again", NULL, test_result_callback, &later);
  test_result_wait (&later);
  g_assert_error (later.error, domain, code);
  test_result_clear (&later);
  milter_server_context_negotiate_async (f->context, NULL, NULL, test_result_callback, &later);
  test_result_wait (&later);
  g_assert_error (later.error, domain, code);
  test_result_clear (&later);
  /* Quitting a closed context is fine. */
  milter_server_context_quit_async (f->context, NULL, test_result_callback, &later);
  assert_ok (&later);
  test_result_clear (r);
}

typedef struct
{
  const gchar *name;
  gchar command;          /* what the context sends: 'O', 'H' or 'E' */
  MilterActionFlags action;
  const gchar *reply_hex; /* what the milter answers */
  GQuark domain;
  gint code;
  const gchar *message_part;
} ErrorCase;

static void
start_command (Fixture    *f,
               gchar       command,
               TestResult *r)
{
  switch (command)
    {
    case 'O':
      milter_server_context_negotiate_async (f->context, NULL, NULL, test_result_callback, r);
      test_peer_expect (f->peer, "O version=6 action=0x1ff step=0x1fffff");
      break;
    case 'H':
      milter_server_context_helo_async (f->context, "h", NULL, test_result_callback, r);
      test_peer_expect (f->peer, "D for=H");
      test_peer_expect (f->peer, "H h");
      break;
    case 'E':
      milter_server_context_end_of_message_async (f->context, NULL, test_result_callback, r);
      test_peer_expect (f->peer, "D for=E");
      test_peer_expect (f->peer, "E");
      break;
    default:
      g_assert_not_reached ();
    }
}

static void
test_error_case (Fixture       *f,
                 gconstpointer  data)
{
  const ErrorCase *error_case = data;
  TestResult r = { 0 };
  g_autoptr(GBytes) reply = test_util_bytes_from_hex (error_case->reply_hex);

  milter_server_context_set_default_macros (f->context, FALSE);
  if (error_case->command != 'O')
    test_negotiate (f->context, f->peer, NULL, 6, error_case->action, 0);
  start_command (f, error_case->command, &r);
  g_byte_array_append (f->peer->out, g_bytes_get_data (reply, NULL),
                       (guint) g_bytes_get_size (reply));
  test_peer_flush (f->peer);
  assert_fails (f, &r, error_case->domain, error_case->code, error_case->message_part, TRUE);
}

#define SERVER_ERROR MILTER_SERVER_CONTEXT_ERROR
#define DECODER_ERROR MILTER_DECODER_ERROR

/* The quarks are not constants, so the table sets them at run time. */
static ErrorCase error_cases[] = {
  /* Negotiation */
  { "/server-context/error/negotiate/version-1", 'O', 0,
    "0000000d 4f 00000001 00000000 00000000", 0, MILTER_DECODER_ERROR_INVALID_VERSION,
    "protocol version 1 is below 2" },
  { "/server-context/error/negotiate/version-above-offer", 'O', 0,
    "0000000d 4f 00000007 00000000 00000000", 0, MILTER_SERVER_CONTEXT_ERROR_INVALID_NEGOTIATION,
    "requested protocol version 7, above the offered version 6" },
  { "/server-context/error/negotiate/short", 'O', 0,
    "00000009 4f 00000006 000001ff", 0, MILTER_DECODER_ERROR_SHORT_PAYLOAD, "at least 12" },
  { "/server-context/error/negotiate/bogus-macro-stage", 'O', 0,
    "00000013 4f 00000006 00000000 00000000 00000009 6a00", 0,
    MILTER_DECODER_ERROR_INVALID_MACRO_STAGE, "unknown stage 9" },
  { "/server-context/error/negotiate/not-an-option", 'O', 0,
    "00000001 63", 0, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
    "replied continue (c) to negotiation" },
  { "/server-context/error/negotiate/progress", 'O', 0,
    "00000001 70", 0, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
    "replied progress (p) to negotiation" },
  /* Replies */
  { "/server-context/error/modification-outside-end-of-message", 'H', MILTER_ACTION_ALL,
    "00000005 68 4100 6200", 0, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
    "add-header (h) in reply to helo (H); modifications are only allowed at end-of-message" },
  { "/server-context/error/quarantine-outside-end-of-message", 'H', MILTER_ACTION_ALL,
    "00000003 71 7800", 0, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
    "modifications are only allowed" },
  { "/server-context/error/skip-not-for-body", 'H', MILTER_ACTION_ALL,
    "00000001 73", 0, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
    "skip is only valid in reply to a body chunk" },
  { "/server-context/error/skip-at-end-of-message", 'E', MILTER_ACTION_ALL,
    "00000001 73", 0, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
    "replied skip (s) to end-of-message (E)" },
  { "/server-context/error/reply-code-not-4xx-5xx", 'H', MILTER_ACTION_ALL,
    "0000000e 79 32353020 322e302e 30204f4b 00", 0,
    MILTER_SERVER_CONTEXT_ERROR_INVALID_REPLY_CODE, "Invalid reply code from the milter" },
  { "/server-context/error/reply-code-bare-lf", 'H', MILTER_ACTION_ALL,
    "0000000d 79 35353020 610a3535 30206200", 0,
    MILTER_SERVER_CONTEXT_ERROR_INVALID_REPLY_CODE, "bare LF" },
  { "/server-context/error/empty-reply-code", 'H', MILTER_ACTION_ALL,
    "00000002 79 00", 0, MILTER_DECODER_ERROR_MISSING_VALUE, "empty reply text" },
  { "/server-context/error/unknown-letter", 'H', MILTER_ACTION_ALL,
    "00000001 5a", 0, MILTER_DECODER_ERROR_UNKNOWN_COMMAND, "Unknown reply 0x5a (Z)" },
  { "/server-context/error/data-in-empty-reply", 'H', MILTER_ACTION_ALL,
    "00000002 63 00", 0, MILTER_DECODER_ERROR_EXTRA_DATA, "1 data bytes where none are allowed" },
  { "/server-context/error/zero-length", 'H', MILTER_ACTION_ALL,
    "00000000", 0, MILTER_DECODER_ERROR_ZERO_LENGTH, "length 0" },
  { "/server-context/error/oversize", 'E', MILTER_ACTION_ALL,
    "00200000 62", 0, MILTER_DECODER_ERROR_TOO_LONG, "exceeds the limit of 1048576" },
  { "/server-context/error/shutdown", 'H', MILTER_ACTION_ALL,
    "00000001 34", 0, MILTER_SERVER_CONTEXT_ERROR_SHUTDOWN, "replied shutdown (4) to helo (H)" },
  { "/server-context/error/reply-code-421", 'H', MILTER_ACTION_ALL,
    "0000000f 79 34323120 342e372e 30206279 6500", 0, MILTER_SERVER_CONTEXT_ERROR_SHUTDOWN,
    "replied 421 to helo (H): the SMTP session ends" },
  { "/server-context/error/connection-failure", 'H', MILTER_ACTION_ALL,
    "00000001 66", 0, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
    "replied connection-failure (f) to helo (H)" },
  { "/server-context/error/option-after-negotiation", 'H', MILTER_ACTION_ALL,
    "0000000d 4f 00000006 00000000 00000000", 0, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
    "replied negotiate reply (O) to helo (H)" },
  { "/server-context/error/action-not-negotiated", 'E', MILTER_ACTION_ADD_HEADERS,
    "00000003 71 7800", 0, MILTER_SERVER_CONTEXT_ERROR_ACTION_NOT_NEGOTIATED,
    "sent quarantine (q) without negotiating the quarantine action" },
  { "/server-context/error/body-not-negotiated", 'E', MILTER_ACTION_ADD_HEADERS,
    "00000002 62 78", 0, MILTER_SERVER_CONTEXT_ERROR_ACTION_NOT_NEGOTIATED,
    "change-body action" },
  { "/server-context/error/add-recipient-with-parameters-not-negotiated", 'E',
    MILTER_ACTION_ADD_RECIPIENT, "00000003 32 6100", 0,
    MILTER_SERVER_CONTEXT_ERROR_ACTION_NOT_NEGOTIATED, "add-recipient-with-parameters action" },
  { "/server-context/error/change-from-two-parameter-strings", 'E', MILTER_ACTION_ALL,
    "00000007 65 6100 6200 6300", 0, MILTER_DECODER_ERROR_EXTRA_DATA, "at most 1 allowed" },
};

static void
fix_error_domains (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (error_cases); i++)
    {
      const gchar *name = error_cases[i].name;
      gboolean decoder = strstr (name, "version-1") || strstr (name, "/short") ||
                         strstr (name, "bogus-macro-stage") || strstr (name, "empty-reply-code") ||
                         strstr (name, "unknown-letter") || strstr (name, "data-in-empty") ||
                         strstr (name, "zero-length") || strstr (name, "oversize") ||
                         strstr (name, "two-parameter-strings");

      error_cases[i].domain = decoder ? DECODER_ERROR : SERVER_ERROR;
    }
}

static void
test_error_negotiate_extra_bits (Fixture       *f,
                                 gconstpointer  data)
{
  gboolean step = GPOINTER_TO_INT (data);
  TestResult r = { 0 };
  g_autoptr(MilterOption) offer = milter_option_new (6, 0x3F, MILTER_STEP_ALL & ~MILTER_STEP_SKIP);

  milter_server_context_negotiate_async (f->context, offer, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "O version=6 action=0x3f step=0x1ffbff");
  if (step)
    test_peer_reply_negotiate (f->peer, 6, 0x3F, MILTER_STEP_SKIP | MILTER_STEP_NO_HELO, NULL);
  else
    test_peer_reply_negotiate (f->peer, 6, 0x7F, 0, NULL);
  assert_fails (f, &r, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_INVALID_NEGOTIATION,
                step ? "requested steps that were not offered: skip" :
                       "requested actions that were not offered: change-from", TRUE);
  g_assert_null (milter_server_context_get_option (f->context));
}

static void
test_negotiate_drops_old_bits (Fixture       *f,
                               gconstpointer  data)
{
  TestResult r = { 0 };
  g_autoptr(MilterOption) offer = milter_option_new (2, 0x3F, 0x7F);
  MilterOption *option;

  /* A milter asking an old MTA not to send DATA or unknown commands, which
   * it would not send anyway: accepted, the bits dropped (as libmilter). */
  milter_server_context_negotiate_async (f->context, offer, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "O version=2 action=0x3f step=0x7f");
  test_peer_reply_negotiate (f->peer, 2, 0x3F, 0x37F, NULL);
  assert_ok (&r);
  option = milter_server_context_get_option (f->context);
  g_assert_cmpuint (milter_option_get_version (option), ==, 2);
  g_assert_cmpuint (milter_option_get_action (option), ==, 0x3F);
  g_assert_cmpuint (milter_option_get_step (option), ==, 0x7F);
  g_assert_null (milter_server_context_get_macros_requests (f->context));
  {
    g_autoptr(MilterOption) property = NULL;

    g_object_get (f->context, "option", &property, NULL);
    g_assert_true (milter_option_equal (property, option));
  }
}

static void
test_error_peer_closed (Fixture       *f,
                        gconstpointer  data)
{
  gboolean partial = GPOINTER_TO_INT (data);
  TestResult r = { 0 };

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);
  start_command (f, 'H', &r);
  if (partial)
    {
      milter_encoder_encode_string (f->peer->out, 'y', "550 5.7.1 cut");
      g_byte_array_set_size (f->peer->out, 9);
      test_peer_flush (f->peer);
    }
  test_peer_close (f->peer);
  assert_fails (f, &r, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_PEER_CLOSED,
                partial ? "The milter closed the connection in the middle of a packet instead "
                          "of replying to helo (H)" :
                          "The milter closed the connection instead of replying to helo (H)",
                FALSE);
}

static void
test_error_idle (Fixture       *f,
                 gconstpointer  data)
{
  const gchar *which = data;
  TestResult r = { 0 };

  milter_server_context_set_default_macros (f->context, FALSE);
  if (g_str_equal (which, "no-reply-step"))
    {
      /* A milter that negotiated not to reply to HELO, but does. */
      test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL,
                      MILTER_STEP_NO_REPLY_HELO);
      milter_server_context_helo_async (f->context, "h", NULL, test_result_callback, &r);
      assert_status (&r, MILTER_STATUS_CONTINUE);
      test_peer_expect (f->peer, "D for=H");
      test_peer_expect (f->peer, "H h");
      test_peer_reply (f->peer, 'c');
    }
  else if (g_str_equal (which, "unsolicited"))
    {
      test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);
      test_peer_reply (f->peer, 'a');
    }
  else
    {
      test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);
      test_peer_close (f->peer);
    }
  /* Noticed at once, reported by the next call. */
  wait_closed (f->context);
  milter_server_context_data_async (f->context, NULL, test_result_callback, &r);
  if (g_str_equal (which, "eof"))
    assert_fails (f, &r, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_PEER_CLOSED,
                  "The milter closed the connection", FALSE);
  else
    assert_fails (f, &r, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
                  g_str_equal (which, "unsolicited") ?
                  "The milter sent accept (a) while no reply was expected" :
                  "The milter sent continue (c) while no reply was expected", TRUE);
}

static void
test_error_read_timeout (Fixture       *f,
                         gconstpointer  data)
{
  gboolean end_of_message = GPOINTER_TO_INT (data);
  TestResult r = { 0 };
  gint64 start;

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);
  milter_server_context_set_read_timeout (f->context, end_of_message ? 10 : 0.2);
  milter_server_context_set_end_of_message_timeout (f->context, end_of_message ? 0.2 : 10);
  start = g_get_monotonic_time ();
  start_command (f, end_of_message ? 'E' : 'H', &r);
  assert_fails (f, &r, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_TIMEOUT,
                end_of_message ?
                "Timed out after 0.2 s waiting for the milter's reply to end-of-message (E)" :
                "Timed out after 0.2 s waiting for the milter's reply to helo (H)", TRUE);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 190 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 4 * G_TIME_SPAN_SECOND);
}

static void
test_error_write_timeout (Fixture       *f,
                          gconstpointer  data)
{
  TestResult r = { 0 };
  g_autoptr(GBytes) body = pattern_bytes (4 * 1024 * 1024);

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, MILTER_STEP_NO_REPLY_BODY);
  milter_server_context_set_write_timeout (f->context, 0.2);
  /* The milter does not read: the socket buffers fill up. */
  milter_server_context_body_async (f->context, body, NULL, test_result_callback, &r);
  assert_fails (f, &r, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_TIMEOUT,
                "Timed out after 0.2 s writing to the milter", FALSE);
}

static void
test_error_limit (Fixture       *f,
                  gconstpointer  data)
{
  TestResult r = { 0 };
  g_autoptr(GBytes) body = pattern_bytes (3000);

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);
  milter_server_context_set_max_modifications_size (f->context, 4000);
  g_assert_cmpuint (milter_server_context_get_max_modifications_size (f->context), ==, 4000);
  start_command (f, 'E', &r);
  milter_encoder_encode_replace_body (f->peer->out, g_bytes_get_data (body, NULL), 3000);
  milter_encoder_encode_replace_body (f->peer->out, g_bytes_get_data (body, NULL), 3000);
  test_peer_flush (f->peer);
  assert_fails (f, &r, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_LIMIT_EXCEEDED,
                "exceed the limit of 4000 bytes", TRUE);
}

static void
test_error_max_packet_length (Fixture       *f,
                              gconstpointer  data)
{
  TestResult r = { 0 };
  g_autoptr(GBytes) body = pattern_bytes (70000);

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);
  milter_server_context_set_max_packet_length (f->context, 65536);
  g_assert_cmpuint (milter_server_context_get_max_packet_length (f->context), ==, 65536);
  start_command (f, 'E', &r);
  milter_encoder_encode_data (f->peer->out, 'b', g_bytes_get_data (body, NULL), 70000);
  test_peer_flush (f->peer);
  assert_fails (f, &r, DECODER_ERROR, MILTER_DECODER_ERROR_TOO_LONG,
                "Packet of 70001 bytes exceeds the limit of 65536", FALSE);
}

/* ---- state -------------------------------------------------------------- */

static void
test_state_errors (Fixture       *f,
                   gconstpointer  data)
{
  TestResult r = { 0 }, second = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(MilterServerContext) unconnected = milter_server_context_new ();

  /* Nothing before negotiation; the context stays usable. */
  milter_server_context_helo_async (f->context, "h", NULL, test_result_callback, &r);
  test_result_wait (&r);
  g_assert_error (r.error, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE);
  assert_message_contains (r.error, "Negotiate with the milter first");
  test_result_clear (&r);
  milter_server_context_abort_async (f->context, NULL, test_result_callback, &r);
  test_result_wait (&r);
  g_assert_error (r.error, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE);
  test_result_clear (&r);
  g_assert_false (milter_server_context_is_closed (f->context));
  test_peer_expect_nothing (f->peer, 20);

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);

  /* Negotiation happens once. */
  milter_server_context_negotiate_async (f->context, NULL, NULL, test_result_callback, &r);
  test_result_wait (&r);
  g_assert_error (r.error, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE);
  assert_message_contains (r.error, "already negotiated");
  test_result_clear (&r);

  /* One call at a time. */
  milter_server_context_helo_async (f->context, "h", NULL, test_result_callback, &r);
  milter_server_context_data_async (f->context, NULL, test_result_callback, &second);
  test_result_wait (&second);
  g_assert_error (second.error, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE);
  assert_message_contains (second.error, "Another call (helo (H)) is in progress");
  test_result_clear (&second);
  run_step_expecting (f, &r, "D for=H", "H h");

  /* A connected context cannot connect again. */
  g_assert_true (milter_server_context_set_connection_spec (f->context, "unix:/nonexistent",
                                                            &error));
  g_assert_no_error (error);
  milter_server_context_establish_connection_async (f->context, NULL, test_result_callback, &r);
  test_result_wait (&r);
  g_assert_error (r.error, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE);
  assert_message_contains (r.error, "already connected");
  test_result_clear (&r);

  /* Nor without a spec; an invalid spec is refused at once. */
  milter_server_context_establish_connection_async (unconnected, NULL, test_result_callback, &r);
  test_result_wait (&r);
  g_assert_error (r.error, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE);
  assert_message_contains (r.error, "No connection spec");
  test_result_clear (&r);
  g_assert_false (milter_server_context_set_connection_spec (unconnected, "tcp:25", &error));
  g_assert_error (error, MILTER_CONNECTION_SPEC_ERROR,
                  MILTER_CONNECTION_SPEC_ERROR_UNKNOWN_SCHEME);
  g_assert_null (milter_server_context_get_connection_spec (unconnected));
  milter_server_context_negotiate_async (unconnected, NULL, NULL, test_result_callback, &r);
  test_result_wait (&r);
  g_assert_error (r.error, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE);
  assert_message_contains (r.error, "Not connected");
  test_result_clear (&r);
  /* Quitting what never connected is fine. */
  milter_server_context_quit_async (unconnected, NULL, test_result_callback, &r);
  assert_ok (&r);
}

static void
test_quit (Fixture       *f,
           gconstpointer  data)
{
  TestResult r = { 0 };

  milter_server_context_quit_async (f->context, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "Q");
  assert_ok (&r);
  test_peer_expect_eof (f->peer);
  g_assert_true (milter_server_context_is_closed (f->context));

  milter_server_context_negotiate_async (f->context, NULL, NULL, test_result_callback, &r);
  test_result_wait (&r);
  g_assert_error (r.error, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_CLOSED);
  test_result_clear (&r);
  milter_server_context_quit_async (f->context, NULL, test_result_callback, &r);
  assert_ok (&r);
}

static void
test_quit_peer_closes (Fixture       *f,
                       gconstpointer  data)
{
  TestResult r = { 0 };

  /* A milter that closes as soon as it reads the quit, as libmilter does:
   * its EOF may arrive before the write completes. */
  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);
  milter_server_context_quit_async (f->context, NULL, test_result_callback, &r);
  test_peer_expect (f->peer, "Q");
  test_peer_close (f->peer);
  assert_ok (&r);
  g_assert_true (milter_server_context_is_closed (f->context));
}

static void
test_close (Fixture       *f,
            gconstpointer  data)
{
  TestResult r = { 0 };

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);
  start_command (f, 'H', &r);
  milter_server_context_close (f->context);
  test_result_wait (&r);
  g_assert_error (r.error, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_CLOSED);
  assert_message_contains (r.error, "closed during helo (H)");
  test_result_clear (&r);
  test_peer_expect_eof (f->peer);
  milter_server_context_close (f->context);

  milter_server_context_helo_async (f->context, "h", NULL, test_result_callback, &r);
  test_result_wait (&r);
  g_assert_error (r.error, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_CLOSED);
  assert_message_contains (r.error, "The connection to the milter is closed");
  test_result_clear (&r);
}

static void
test_cancel (Fixture       *f,
             gconstpointer  data)
{
  TestResult r = { 0 };
  g_autoptr(GCancellable) cancelled = g_cancellable_new ();
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();

  milter_server_context_set_default_macros (f->context, FALSE);
  test_negotiate (f->context, f->peer, NULL, 6, MILTER_ACTION_ALL, 0);

  /* Cancelled before it starts: nothing is sent, the context stays open. */
  g_cancellable_cancel (cancelled);
  milter_server_context_helo_async (f->context, "h", cancelled, test_result_callback, &r);
  test_result_wait (&r);
  g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  test_result_clear (&r);
  g_assert_false (milter_server_context_is_closed (f->context));
  test_peer_expect_nothing (f->peer, 20);

  /* Cancelled while waiting for the reply: the context closes. */
  milter_server_context_helo_async (f->context, "h", cancellable, test_result_callback, &r);
  test_peer_expect (f->peer, "D for=H");
  test_peer_expect (f->peer, "H h");
  g_cancellable_cancel (cancellable);
  test_result_wait (&r);
  g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  test_result_clear (&r);
  g_assert_true (milter_server_context_is_closed (f->context));
  test_peer_expect_eof (f->peer);
}

static void
test_properties (Fixture       *f,
                 gconstpointer  data)
{
  gdouble connect_timeout, read_timeout, write_timeout, end_of_message_timeout;
  guint max_packet_length;
  guint64 max_modifications_size;
  gboolean default_macros;
  g_autofree gchar *spec = NULL;
  g_autoptr(MilterOption) option = NULL;

  g_object_get (f->context,
                "connect-timeout", &connect_timeout,
                "read-timeout", &read_timeout,
                "write-timeout", &write_timeout,
                "end-of-message-timeout", &end_of_message_timeout,
                "max-packet-length", &max_packet_length,
                "max-modifications-size", &max_modifications_size,
                "default-macros", &default_macros,
                "connection-spec", &spec,
                "option", &option,
                NULL);
  /* Postfix's defaults. */
  g_assert_cmpfloat (connect_timeout, ==, 30);
  g_assert_cmpfloat (read_timeout, ==, 30);
  g_assert_cmpfloat (write_timeout, ==, 30);
  g_assert_cmpfloat (end_of_message_timeout, ==, 300);
  g_assert_cmpuint (max_packet_length, ==, 1024 * 1024);
  g_assert_cmpuint (max_modifications_size, ==, 64 * 1024 * 1024);
  g_assert_true (default_macros);
  g_assert_null (spec);
  g_assert_null (option);

  g_object_set (f->context,
                "connect-timeout", 1.5,
                "read-timeout", 2.5,
                "write-timeout", 3.5,
                "end-of-message-timeout", 4.5,
                "max-packet-length", 70000,
                "max-modifications-size", (guint64) 100,
                "default-macros", FALSE,
                NULL);
  g_assert_cmpfloat (milter_server_context_get_connect_timeout (f->context), ==, 1.5);
  g_assert_cmpfloat (milter_server_context_get_read_timeout (f->context), ==, 2.5);
  g_assert_cmpfloat (milter_server_context_get_write_timeout (f->context), ==, 3.5);
  g_assert_cmpfloat (milter_server_context_get_end_of_message_timeout (f->context), ==, 4.5);
  g_assert_cmpuint (milter_server_context_get_max_packet_length (f->context), ==, 70000);
  g_assert_cmpuint (milter_server_context_get_max_modifications_size (f->context), ==, 100);
  g_assert_false (milter_server_context_get_default_macros (f->context));
}

/* ---- connecting --------------------------------------------------------- */

static void
on_accepted (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  GSocketConnection **connection = user_data;
  g_autoptr(GError) error = NULL;

  *connection = g_socket_listener_accept_finish (G_SOCKET_LISTENER (source), result, NULL, &error);
  g_assert_no_error (error);
}

static gboolean
connection_ready (GSocketConnection **connection)
{
  return *connection != NULL;
}

static void
test_establish_unix (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *directory = g_dir_make_tmp ("milter-server-XXXXXX", &error);
  g_autofree gchar *path = g_build_filename (directory, "milter.sock", NULL);
  g_autofree gchar *spec = g_strconcat ("unix:", path, NULL);
  g_autoptr(GSocketListener) listener = g_socket_listener_new ();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr(MilterServerContext) context = milter_server_context_new ();
  g_autoptr(GSocketConnection) accepted = NULL;
  g_autofree gchar *property_spec = NULL;
  TestPeer *peer;
  TestResult r = { 0 };

  g_assert_no_error (error);
  g_socket_listener_add_address (listener, address, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT,
                                 NULL, NULL, &error);
  g_assert_no_error (error);
  g_socket_listener_accept_async (listener, NULL, on_accepted, &accepted);

  g_assert_true (milter_server_context_set_connection_spec (context, spec, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (milter_server_context_get_connection_spec (context), ==, spec);
  g_object_get (context, "connection-spec", &property_spec, NULL);
  g_assert_cmpstr (property_spec, ==, spec);
  milter_server_context_establish_connection_async (context, NULL, test_result_callback, &r);
  assert_ok (&r);
  {
    gint64 deadline = g_get_monotonic_time () + TEST_PEER_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND;

    while (!connection_ready (&accepted) && g_get_monotonic_time () < deadline)
      g_main_context_iteration (NULL, FALSE) || (g_usleep (1000), TRUE);
    g_assert_nonnull (accepted);
  }
  peer = test_peer_new (accepted);
  test_negotiate (context, peer, NULL, 6, MILTER_ACTION_ALL, 0);
  milter_server_context_quit_async (context, NULL, test_result_callback, &r);
  test_peer_expect (peer, "Q");
  assert_ok (&r);
  test_peer_expect_eof (peer);
  test_peer_free (peer);

  g_socket_listener_close (listener);
  g_unlink (path);
  g_rmdir (directory);
}

static void
test_establish_failures (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketListener) listener = g_socket_listener_new ();
  g_autoptr(GSocketAddress) any = inet_address ("127.0.0.1", 0);
  g_autoptr(GSocketAddress) effective = NULL;
  g_autofree gchar *refused_spec = NULL;
  struct
  {
    const gchar *spec;
    const gchar *message_part;
  } cases[] = {
    { "unix:/nonexistent/milter-glib-test.sock",
      "Cannot connect to the milter at unix:/nonexistent/milter-glib-test.sock: " },
    { NULL, "Cannot connect to the milter at inet:" },
  };

  /* A port nobody listens on: bind one, then close it. */
  g_socket_listener_add_address (listener, any, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                                 NULL, &effective, &error);
  g_assert_no_error (error);
  refused_spec =
    g_strdup_printf ("inet:%u@127.0.0.1",
                     g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (effective)));
  g_socket_listener_close (listener);
  cases[1].spec = refused_spec;

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(MilterServerContext) context = milter_server_context_new ();
      TestResult r = { 0 };

      g_assert_true (milter_server_context_set_connection_spec (context, cases[i].spec, &error));
      g_assert_no_error (error);
      milter_server_context_establish_connection_async (context, NULL, test_result_callback, &r);
      test_result_wait (&r);
      g_assert_false (r.ok);
      g_assert_nonnull (r.error);
      g_assert_true (r.error->domain == G_IO_ERROR);
      assert_message_contains (r.error, cases[i].message_part);
      g_assert_true (milter_server_context_is_closed (context));
      test_result_clear (&r);

      /* Later calls fail the same way. */
      milter_server_context_negotiate_async (context, NULL, NULL, test_result_callback, &r);
      test_result_wait (&r);
      g_assert_true (r.error->domain == G_IO_ERROR);
      test_result_clear (&r);
    }
}

static void
test_establish_timeout (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) listening = NULL;
  g_autoptr(GSocketAddress) any = inet_address ("127.0.0.1", 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) filler = NULL;
  g_autoptr(MilterServerContext) context = milter_server_context_new ();
  g_autofree gchar *spec = NULL;
  TestResult r = { 0 };

  /* A listener whose accept queue is full and never drained: Linux drops
   * further connection requests, so connecting hangs. */
  listening = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                            &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (listening, any, TRUE, &error));
  g_socket_set_listen_backlog (listening, 0);
  g_assert_true (g_socket_listen (listening, &error));
  bound = g_socket_get_local_address (listening, &error);
  g_assert_no_error (error);
  g_socket_client_set_timeout (client, 2);
  filler = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (bound), NULL, &error);
  g_assert_no_error (error);

  spec = g_strdup_printf ("inet:%u@127.0.0.1",
                          g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
  g_assert_true (milter_server_context_set_connection_spec (context, spec, &error));
  milter_server_context_set_connect_timeout (context, 0.3);
  milter_server_context_establish_connection_async (context, NULL, test_result_callback, &r);
  test_result_wait (&r);
  if (r.error == NULL)
    {
      g_test_skip ("this system completed the connection to a full accept queue");
      test_result_clear (&r);
      return;
    }
  g_assert_error (r.error, SERVER_ERROR, MILTER_SERVER_CONTEXT_ERROR_TIMEOUT);
  assert_message_contains (r.error, "Timed out after 0.3 s connecting to the milter at inet:");
  g_assert_true (milter_server_context_is_closed (context));
  test_result_clear (&r);
  test_util_run_for (50);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func, data) \
  g_test_add (path, Fixture, data, fixture_setup, func, fixture_teardown)

  ADD ("/server-context/session", test_session, NULL);
  ADD ("/server-context/connect-families-abort-quit-new-connection", test_connect_families, NULL);
  ADD ("/server-context/macros/default", test_default_macros, NULL);
  ADD ("/server-context/macros/requested", test_requested_macros, NULL);
  ADD ("/server-context/steps/no-event", test_no_steps, NULL);
  ADD ("/server-context/steps/no-reply", test_no_reply_steps, NULL);
  ADD ("/server-context/steps/version-2", test_versions, GUINT_TO_POINTER (2));
  ADD ("/server-context/steps/version-3", test_versions, GUINT_TO_POINTER (3));
  ADD ("/server-context/steps/version-4", test_versions, GUINT_TO_POINTER (4));
  ADD ("/server-context/steps/leading-space", test_leading_space, NULL);
  ADD ("/server-context/body/chunks", test_body_chunks, NULL);
  ADD ("/server-context/body/skip", test_skip, NULL);
  ADD ("/server-context/verdicts", test_verdicts, NULL);
  ADD ("/server-context/progress", test_progress, NULL);
  ADD ("/server-context/modifications/all", test_modifications, NULL);
  ADD ("/server-context/modifications/replace-body", test_replace_body_split, NULL);
  ADD ("/server-context/negotiate/drops-old-bits", test_negotiate_drops_old_bits, NULL);
  ADD ("/server-context/error/negotiate/extra-action", test_error_negotiate_extra_bits,
       GINT_TO_POINTER (FALSE));
  ADD ("/server-context/error/negotiate/extra-step", test_error_negotiate_extra_bits,
       GINT_TO_POINTER (TRUE));
  fix_error_domains ();
  for (gsize i = 0; i < G_N_ELEMENTS (error_cases); i++)
    ADD (error_cases[i].name, test_error_case, &error_cases[i]);
  ADD ("/server-context/error/peer-closed", test_error_peer_closed, GINT_TO_POINTER (FALSE));
  ADD ("/server-context/error/peer-closed-mid-packet", test_error_peer_closed,
       GINT_TO_POINTER (TRUE));
  ADD ("/server-context/error/idle/unsolicited", test_error_idle, "unsolicited");
  ADD ("/server-context/error/idle/reply-to-no-reply-step", test_error_idle, "no-reply-step");
  ADD ("/server-context/error/idle/eof", test_error_idle, "eof");
  ADD ("/server-context/error/read-timeout", test_error_read_timeout, GINT_TO_POINTER (FALSE));
  ADD ("/server-context/error/end-of-message-timeout", test_error_read_timeout,
       GINT_TO_POINTER (TRUE));
  ADD ("/server-context/error/write-timeout", test_error_write_timeout, NULL);
  ADD ("/server-context/error/modifications-limit", test_error_limit, NULL);
  ADD ("/server-context/error/max-packet-length", test_error_max_packet_length, NULL);
  ADD ("/server-context/state-errors", test_state_errors, NULL);
  ADD ("/server-context/quit", test_quit, NULL);
  ADD ("/server-context/quit-peer-closes", test_quit_peer_closes, NULL);
  ADD ("/server-context/close", test_close, NULL);
  ADD ("/server-context/cancel", test_cancel, NULL);
  ADD ("/server-context/properties", test_properties, NULL);
#undef ADD
  g_test_add_func ("/server-context/establish/unix", test_establish_unix);
  g_test_add_func ("/server-context/establish/failures", test_establish_failures);
  g_test_add_func ("/server-context/establish/timeout", test_establish_timeout);

  return g_test_run ();
}
