/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "server-test-util.h"

#include <string.h>
#include <sys/socket.h>

TestPeer *
test_peer_new (GSocketConnection *connection)
{
  TestPeer *peer = g_new0 (TestPeer, 1);

  peer->connection = g_object_ref (connection);
  peer->socket = g_object_ref (g_socket_connection_get_socket (connection));
  peer->decoder = milter_decoder_new (MILTER_DECODER_COMMANDS);
  milter_decoder_set_max_packet_length (peer->decoder, 64 * 1024 * 1024);
  peer->out = g_byte_array_new ();
  peer->received = g_byte_array_new ();
  return peer;
}

TestPeer *
test_peer_new_pair (MilterServerContext **context)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) mta_socket = NULL;
  g_autoptr(GSocket) milter_socket = NULL;
  g_autoptr(GSocketConnection) mta_connection = NULL;
  g_autoptr(GSocketConnection) milter_connection = NULL;
  int fds[2];

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), ==, 0);
  mta_socket = g_socket_new_from_fd (fds[0], &error);
  g_assert_no_error (error);
  milter_socket = g_socket_new_from_fd (fds[1], &error);
  g_assert_no_error (error);
  mta_connection = g_socket_connection_factory_create_connection (mta_socket);
  milter_connection = g_socket_connection_factory_create_connection (milter_socket);

  *context = milter_server_context_new ();
  milter_server_context_set_stream (*context, G_IO_STREAM (mta_connection));
  return test_peer_new (milter_connection);
}

void
test_peer_free (TestPeer *peer)
{
  if (peer == NULL)
    return;
  g_io_stream_close (G_IO_STREAM (peer->connection), NULL, NULL);
  g_object_unref (peer->connection);
  g_object_unref (peer->socket);
  milter_decoder_free (peer->decoder);
  g_byte_array_unref (peer->out);
  g_byte_array_unref (peer->received);
  g_free (peer);
}

static gboolean
on_socket_ready (GSocket      *socket,
                 GIOCondition  condition,
                 gpointer      user_data)
{
  gboolean *ready = user_data;

  *ready = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the main context until @socket is ready for @condition. */
static void
wait_socket (GSocket      *socket,
             GIOCondition  condition,
             gint64        deadline,
             const gchar  *what)
{
  gboolean ready = FALSE;
  GSource *source = g_socket_create_source (socket, condition | G_IO_HUP | G_IO_ERR, NULL);
  gint64 remaining = (deadline - g_get_monotonic_time ()) / 1000;

  g_source_set_callback (source, (GSourceFunc) (void (*) (void)) on_socket_ready, &ready, NULL);
  g_source_attach (source, NULL);
  test_util_wait_for_flag (&ready, (guint) MAX (remaining, 1), what);
  g_source_destroy (source);
  g_source_unref (source);
}

/* Receives what is available without blocking: the byte count, 0 at EOF,
 * -1 if nothing is there yet. */
static gssize
receive_some (TestPeer *peer)
{
  g_autoptr(GError) error = NULL;
  guint8 buffer[65536];
  gssize n;

  n = g_socket_receive_with_blocking (peer->socket, (gchar *) buffer, sizeof buffer, FALSE,
                                      NULL, &error);
  if (n < 0)
    {
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
      return -1;
    }
  milter_decoder_feed (peer->decoder, buffer, (gsize) n);
  g_byte_array_append (peer->received, buffer, (guint) n);
  return n;
}

const MilterPacket *
test_peer_read (TestPeer *peer)
{
  gint64 deadline = g_get_monotonic_time () + TEST_PEER_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      const MilterPacket *packet = milter_decoder_next (peer->decoder, &error);
      gssize n;

      g_assert_no_error (error);
      if (packet != NULL)
        return packet;
      n = receive_some (peer);
      if (n == 0)
        g_error ("The context closed the connection while a packet was expected");
      if (n < 0)
        wait_socket (peer->socket, G_IO_IN, deadline, "a packet from the context");
    }
}

gchar *
test_peer_read_text (TestPeer *peer)
{
  const MilterPacket *packet = test_peer_read (peer);
  GString *text = g_string_new (NULL);

  g_string_append_c (text, packet->command);
  switch (packet->command)
    {
    case 'O':
      g_string_append_printf (text, " version=%u action=0x%x step=0x%x",
                              packet->negotiate.version, packet->negotiate.action,
                              packet->negotiate.step);
      break;
    case 'D':
      {
        const gchar *cursor = packet->macro.pairs;
        const gchar *end = cursor + packet->macro.pairs_size;
        const gchar *name;

        g_string_append_printf (text, " for=%c", packet->macro.command);
        while ((name = milter_packet_next_string (&cursor, end)) != NULL)
          g_string_append_printf (text, " %s=%s", name, milter_packet_next_string (&cursor, end));
        break;
      }
    case 'C':
      g_string_append_printf (text, " %s family=%c", packet->connect.host, packet->connect.family);
      if (packet->connect.address_text != NULL)
        g_string_append_printf (text, " port=%u address=%s", packet->connect.port,
                                packet->connect.address_text);
      break;
    case 'H':
    case 'U':
      g_string_append_printf (text, " %s", packet->string);
      break;
    case 'M':
    case 'R':
      {
        const gchar *cursor = packet->envelope.args;
        const gchar *end = cursor + packet->envelope.args_size;
        const gchar *arg;

        g_string_append_printf (text, " %s", packet->envelope.address);
        while ((arg = milter_packet_next_string (&cursor, end)) != NULL)
          g_string_append_printf (text, " %s", arg);
        break;
      }
    case 'L':
      g_string_append_printf (text, " %s=%s", packet->header.name, packet->header.value);
      break;
    case 'B':
      g_string_append_printf (text, " %" G_GSIZE_FORMAT " bytes", packet->size);
      break;
    default:
      break;
    }
  return g_string_free (text, FALSE);
}

void
test_peer_expect (TestPeer    *peer,
                  const gchar *expected)
{
  g_autofree gchar *text = test_peer_read_text (peer);

  g_assert_cmpstr (text, ==, expected);
}

void
test_peer_expect_nothing (TestPeer *peer,
                          guint     ms)
{
  g_autoptr(GError) error = NULL;
  const MilterPacket *packet;

  test_util_run_for (ms);
  while (receive_some (peer) > 0)
    ;
  packet = milter_decoder_next (peer->decoder, &error);
  g_assert_no_error (error);
  g_assert_null (packet);
  g_assert_cmpuint (milter_decoder_get_pending_size (peer->decoder), ==, 0);
}

void
test_peer_expect_eof (TestPeer *peer)
{
  gint64 deadline = g_get_monotonic_time () + TEST_PEER_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND;

  for (;;)
    {
      gssize n = receive_some (peer);

      if (n == 0)
        break;
      if (n < 0)
        wait_socket (peer->socket, G_IO_IN, deadline, "the context to close the connection");
    }
  g_assert_null (milter_decoder_next (peer->decoder, NULL));
  g_assert_cmpuint (milter_decoder_get_pending_size (peer->decoder), ==, 0);
}

void
test_peer_flush (TestPeer *peer)
{
  gint64 deadline = g_get_monotonic_time () + TEST_PEER_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND;
  gsize offset = 0;

  while (offset < peer->out->len)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_socket_send_with_blocking (peer->socket,
                                              (const gchar *) peer->out->data + offset,
                                              peer->out->len - offset, FALSE, NULL, &error);

      if (n < 0)
        {
          /* The context may close the connection on an error before it
           * read everything; the test checks that error. */
          if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE) ||
              g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
            break;
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
          wait_socket (peer->socket, G_IO_OUT, deadline, "room to send replies");
          continue;
        }
      offset += (gsize) n;
    }
  g_byte_array_set_size (peer->out, 0);
}

void
test_peer_reply (TestPeer *peer,
                 gchar     letter)
{
  milter_encoder_encode_empty (peer->out, letter);
  test_peer_flush (peer);
}

void
test_peer_reply_string (TestPeer    *peer,
                        gchar        letter,
                        const gchar *string)
{
  milter_encoder_encode_string (peer->out, letter, string);
  test_peer_flush (peer);
}

void
test_peer_reply_negotiate (TestPeer                   *peer,
                           guint32                     version,
                           guint32                     action,
                           guint32                     step,
                           const MilterMacrosRequests *requests)
{
  g_autoptr(MilterOption) option = milter_option_new (version, action, step);

  milter_encoder_encode_negotiate_reply (peer->out, option, requests);
  test_peer_flush (peer);
}

void
test_peer_close (TestPeer *peer)
{
  g_autoptr(GError) error = NULL;

  g_socket_shutdown (peer->socket, TRUE, TRUE, &error);
  g_assert_no_error (error);
}

void
test_result_clear (TestResult *result)
{
  g_clear_error (&result->error);
  memset (result, 0, sizeof *result);
}

typedef MilterStatus (*StatusFinish) (MilterServerContext *, GAsyncResult *, GError **);
typedef gboolean (*BooleanFinish) (MilterServerContext *, GAsyncResult *, GError **);

void
test_result_callback (GObject      *source,
                      GAsyncResult *async_result,
                      gpointer      user_data)
{
  static const struct
  {
    gpointer tag;
    StatusFinish status_finish;
    BooleanFinish boolean_finish;
  } calls[] = {
    { milter_server_context_establish_connection_async, NULL,
      milter_server_context_establish_connection_finish },
    { milter_server_context_negotiate_async, NULL, milter_server_context_negotiate_finish },
    { milter_server_context_connect_async, milter_server_context_connect_finish, NULL },
    { milter_server_context_helo_async, milter_server_context_helo_finish, NULL },
    { milter_server_context_envelope_from_async, milter_server_context_envelope_from_finish, NULL },
    { milter_server_context_envelope_recipient_async,
      milter_server_context_envelope_recipient_finish, NULL },
    { milter_server_context_data_async, milter_server_context_data_finish, NULL },
    { milter_server_context_header_async, milter_server_context_header_finish, NULL },
    { milter_server_context_end_of_header_async, milter_server_context_end_of_header_finish, NULL },
    { milter_server_context_body_async, milter_server_context_body_finish, NULL },
    { milter_server_context_end_of_message_async,
      milter_server_context_end_of_message_finish, NULL },
    { milter_server_context_unknown_async, milter_server_context_unknown_finish, NULL },
    { milter_server_context_abort_async, NULL, milter_server_context_abort_finish },
    { milter_server_context_quit_async, NULL, milter_server_context_quit_finish },
    { milter_server_context_quit_new_connection_async, NULL,
      milter_server_context_quit_new_connection_finish },
  };
  MilterServerContext *context = MILTER_SERVER_CONTEXT (source);
  TestResult *result = user_data;
  gpointer tag = g_task_get_source_tag (G_TASK (async_result));

  g_assert_false (result->done);
  for (gsize i = 0; i < G_N_ELEMENTS (calls); i++)
    {
      if (calls[i].tag != tag)
        continue;
      if (calls[i].status_finish != NULL)
        result->status = calls[i].status_finish (context, async_result, &result->error);
      else
        result->ok = calls[i].boolean_finish (context, async_result, &result->error);
      result->done = TRUE;
      return;
    }
  g_assert_not_reached ();
}

void
test_result_wait (TestResult *result)
{
  test_util_wait_for_flag (&result->done, TEST_PEER_TIMEOUT_MS,
                           "a call of the context to complete");
}

void
test_negotiate (MilterServerContext *context,
                TestPeer            *peer,
                MilterOption        *offer,
                guint32              version,
                guint32              action,
                guint32              step)
{
  g_autoptr(MilterOption) expected = offer != NULL ? milter_option_copy (offer) :
                                                     milter_option_new_postfix ();
  g_autofree gchar *expected_text =
    g_strdup_printf ("O version=%u action=0x%x step=0x%x", milter_option_get_version (expected),
                     milter_option_get_action (expected), milter_option_get_step (expected));
  TestResult result = { 0 };

  milter_server_context_negotiate_async (context, offer, NULL, test_result_callback, &result);
  test_peer_expect (peer, expected_text);
  test_peer_reply_negotiate (peer, version, action, step, NULL);
  test_result_wait (&result);
  g_assert_no_error (result.error);
  g_assert_true (result.ok);
}
