/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: run */
/* testing-gtest: GTest cases for a filter, run in one process. The
 * filter's MilterClient serves one end of a socket pair and a
 * MilterServerContext plays the MTA on the other: no socket file. */
#include <milter/milter.h>
#include <sys/socket.h>

/* ---- The filter under test (normally in a file of its own) ------------ */

static MilterStatus
on_helo (MilterClientContext *context,
         const gchar         *fqdn,
         gpointer             user_data)
{
  if (!g_str_has_suffix (fqdn, ".invalid"))
    return MILTER_STATUS_CONTINUE;
  milter_client_context_set_reply (context, 550, "5.7.1", "HELO refused", NULL);
  return MILTER_STATUS_REJECT;
}

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  milter_client_context_add_header (context, "X-Checked", "yes", NULL);
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

static void
setup_filter (MilterClient *client)
{
  g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established), NULL);
}

/* ---- The tests ---------------------------------------------------------- */

typedef struct
{
  MilterClient *client;
  MilterServerContext *mta;
  GAsyncResult *result;     /* of the MTA's last command */
} Fixture;

static void
on_done (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Fixture *fixture = user_data;

  fixture->result = g_object_ref (result);
}

/* Runs the main loop, and with it the filter, until the MTA's command has
 * completed; the result stays the fixture's. */
static GAsyncResult *
wait_for (Fixture *fixture)
{
  g_clear_object (&fixture->result);
  while (fixture->result == NULL)
    g_main_context_iteration (NULL, TRUE);
  return fixture->result;
}

static GIOStream *
stream_for (int fd)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = g_socket_new_from_fd (fd, &error);

  g_assert_no_error (error);
  return G_IO_STREAM (g_socket_connection_factory_create_connection (socket));
}

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
{
  g_autoptr(GIOStream) filter_end = NULL;
  g_autoptr(GIOStream) mta_end = NULL;
  g_autoptr(GError) error = NULL;
  int fds[2];

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), ==, 0);
  filter_end = stream_for (fds[0]);
  mta_end = stream_for (fds[1]);

  fixture->client = milter_client_new ();
  setup_filter (fixture->client);
  /* As if an MTA had connected to a listening socket. */
  g_assert_nonnull (milter_client_handle_stream (fixture->client, filter_end, &error));
  g_assert_no_error (error);

  fixture->mta = milter_server_context_new ();
  milter_server_context_set_stream (fixture->mta, mta_end);
  milter_server_context_negotiate_async (fixture->mta, NULL, NULL, on_done, fixture);
  g_assert_true (milter_server_context_negotiate_finish (fixture->mta, wait_for (fixture), &error));
  g_assert_no_error (error);
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  data)
{
  /* The MTA hangs up; the filter's session ends. */
  milter_server_context_close (fixture->mta);
  while (milter_client_get_n_processing_sessions (fixture->client) > 0)
    g_main_context_iteration (NULL, TRUE);
  g_clear_object (&fixture->result);
  g_object_unref (fixture->mta);
  g_object_unref (fixture->client);
}

typedef MilterStatus (*FinishFunc) (MilterServerContext *context,
                                   GAsyncResult        *result,
                                   GError             **error);

/* Waits for the command the MTA just started and checks the verdict. */
static void
assert_verdict (Fixture      *fixture,
                FinishFunc    finish,
                MilterStatus  expected)
{
  g_autoptr(GError) error = NULL;
  MilterStatus status = finish (fixture->mta, wait_for (fixture), &error);

  g_assert_no_error (error);
  g_assert_cmpint (status, ==, expected);
}

static void
test_invalid_helo (Fixture       *fixture,
                   gconstpointer  data)
{
  MilterServerContext *mta = fixture->mta;

  milter_server_context_connect_async (mta, "client.example", NULL, NULL, on_done, fixture);
  assert_verdict (fixture, milter_server_context_connect_finish, MILTER_STATUS_CONTINUE);
  milter_server_context_helo_async (mta, "host.invalid", NULL, on_done, fixture);
  assert_verdict (fixture, milter_server_context_helo_finish, MILTER_STATUS_REJECT);
  g_assert_cmpstr (milter_server_context_get_reply_text (mta), ==, "550 5.7.1 HELO refused");
}

static void
test_header_added (Fixture       *fixture,
                   gconstpointer  data)
{
  MilterServerContext *mta = fixture->mta;
  g_autoptr(GBytes) body = g_bytes_new_static ("Hi Bob.\r\n", 9);
  g_autofree gchar *modification = NULL;
  GPtrArray *modifications;

  milter_server_context_connect_async (mta, "client.example", NULL, NULL, on_done, fixture);
  assert_verdict (fixture, milter_server_context_connect_finish, MILTER_STATUS_CONTINUE);
  milter_server_context_helo_async (mta, "client.example", NULL, on_done, fixture);
  assert_verdict (fixture, milter_server_context_helo_finish, MILTER_STATUS_CONTINUE);
  milter_server_context_envelope_from_async (mta, "<alice@example.com>", NULL, NULL,
                                             on_done, fixture);
  assert_verdict (fixture, milter_server_context_envelope_from_finish, MILTER_STATUS_CONTINUE);
  milter_server_context_envelope_recipient_async (mta, "<bob@example.org>", NULL, NULL,
                                                  on_done, fixture);
  assert_verdict (fixture, milter_server_context_envelope_recipient_finish,
                  MILTER_STATUS_CONTINUE);
  milter_server_context_data_async (mta, NULL, on_done, fixture);
  assert_verdict (fixture, milter_server_context_data_finish, MILTER_STATUS_CONTINUE);
  milter_server_context_header_async (mta, "Subject", "hello", NULL, on_done, fixture);
  assert_verdict (fixture, milter_server_context_header_finish, MILTER_STATUS_CONTINUE);
  milter_server_context_end_of_header_async (mta, NULL, on_done, fixture);
  assert_verdict (fixture, milter_server_context_end_of_header_finish, MILTER_STATUS_CONTINUE);
  milter_server_context_body_async (mta, body, NULL, on_done, fixture);
  assert_verdict (fixture, milter_server_context_body_finish, MILTER_STATUS_CONTINUE);
  milter_server_context_end_of_message_async (mta, NULL, on_done, fixture);
  assert_verdict (fixture, milter_server_context_end_of_message_finish, MILTER_STATUS_CONTINUE);

  modifications = milter_server_context_get_modifications (mta);
  g_assert_cmpuint (modifications->len, ==, 1);
  modification = milter_modification_to_string (g_ptr_array_index (modifications, 0));
  g_assert_cmpstr (modification, ==, "add-header: X-Checked: yes");
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/filter/invalid-helo", Fixture, NULL, fixture_set_up, test_invalid_helo,
              fixture_tear_down);
  g_test_add ("/filter/header-added", Fixture, NULL, fixture_set_up, test_header_added,
              fixture_tear_down);
  return g_test_run ();
}
