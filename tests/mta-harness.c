/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mta-harness.h"
#include "test-util.h"
#include "milter/core/milter-decoder-private.h"
#include "milter/core/milter-encoder-private.h"

#include <string.h>
#include <sys/socket.h>

#define WAIT_MS 5000

struct _MtaHarness
{
  GSocket *socket;
  MilterDecoder *decoder;
  GByteArray *out;
  gboolean eof;
};

MtaHarness *
mta_harness_new (GSocket *socket)
{
  MtaHarness *mta = g_new0 (MtaHarness, 1);

  mta->socket = g_object_ref (socket);
  g_socket_set_blocking (socket, FALSE);
  mta->decoder = milter_decoder_new (MILTER_DECODER_REPLIES);
  milter_decoder_set_max_packet_length (mta->decoder, 64 * 1024 * 1024);
  mta->out = g_byte_array_new ();
  return mta;
}

MtaHarness *
mta_harness_new_pair (GIOStream **filter_end)
{
  int fds[2];
  g_autoptr(GSocket) ours = NULL;
  g_autoptr(GSocket) theirs = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), ==, 0);
  ours = g_socket_new_from_fd (fds[0], &error);
  g_assert_no_error (error);
  theirs = g_socket_new_from_fd (fds[1], &error);
  g_assert_no_error (error);
  *filter_end = G_IO_STREAM (g_socket_connection_factory_create_connection (theirs));
  return mta_harness_new (ours);
}

void
mta_harness_free (MtaHarness *mta)
{
  if (mta == NULL)
    return;
  g_socket_close (mta->socket, NULL);
  g_object_unref (mta->socket);
  milter_decoder_free (mta->decoder);
  g_byte_array_unref (mta->out);
  g_free (mta);
}

static gboolean
on_deadline (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

void
mta_harness_send (MtaHarness *mta,
                  GByteArray *packets)
{
  gsize offset = 0;
  gboolean late = FALSE;
  guint id = g_timeout_add (WAIT_MS, on_deadline, &late);

  while (offset < packets->len && !late)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_socket_send (mta->socket, (const gchar *) packets->data + offset,
                                packets->len - offset, NULL, &error);

      if (n < 0)
        {
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            g_error ("MTA side: send failed: %s", error->message);
          /* Let the filter read. */
          g_main_context_iteration (NULL, TRUE);
          continue;
        }
      offset += (gsize) n;
    }
  if (late)
    g_error ("MTA side: timed out sending %u bytes", packets->len);
  g_source_remove (id);
  g_byte_array_set_size (packets, 0);
}

gssize
mta_harness_try_send (MtaHarness *mta,
                      GByteArray *packets)
{
  g_autoptr(GError) error = NULL;
  gssize n = g_socket_send (mta->socket, (const gchar *) packets->data, packets->len, NULL, &error);

  if (n >= 0)
    return n;
  return g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK) ? 0 : -1;
}

void
mta_harness_send_hex (MtaHarness  *mta,
                      const gchar *hex)
{
  g_autoptr(GBytes) bytes = test_util_bytes_from_hex (hex);

  g_byte_array_append (mta->out, g_bytes_get_data (bytes, NULL), (guint) g_bytes_get_size (bytes));
  mta_harness_send (mta, mta->out);
}

void
mta_harness_negotiate (MtaHarness *mta,
                       guint32     version,
                       guint32     action,
                       guint32     step)
{
  g_autoptr(MilterOption) option = milter_option_new (version, action, step);

  milter_encoder_encode_negotiate (mta->out, option);
  mta_harness_send (mta, mta->out);
}

void
mta_harness_macro (MtaHarness  *mta,
                   gchar        command,
                   const gchar *name,
                   const gchar *value)
{
  const gchar *names[] = { name, NULL };
  const gchar *values[] = { value, NULL };

  milter_encoder_encode_define_macro (mta->out, command, name != NULL ? names : NULL, values);
  mta_harness_send (mta, mta->out);
}

void
mta_harness_connect (MtaHarness  *mta,
                     const gchar *host,
                     const gchar *address)
{
  g_autoptr(GSocketAddress) socket_address = NULL;

  if (address != NULL)
    {
      socket_address = milter_connection_spec_parse (address, NULL);
      g_assert_nonnull (socket_address);
    }
  milter_encoder_encode_connect (mta->out, host, socket_address);
  mta_harness_send (mta, mta->out);
}

void
mta_harness_helo (MtaHarness  *mta,
                  const gchar *fqdn)
{
  milter_encoder_encode_string (mta->out, 'H', fqdn);
  mta_harness_send (mta, mta->out);
}

void
mta_harness_mail (MtaHarness  *mta,
                  const gchar *from)
{
  milter_encoder_encode_envelope (mta->out, 'M', from, NULL);
  mta_harness_send (mta, mta->out);
}

void
mta_harness_rcpt (MtaHarness  *mta,
                  const gchar *to)
{
  milter_encoder_encode_envelope (mta->out, 'R', to, NULL);
  mta_harness_send (mta, mta->out);
}

void
mta_harness_data (MtaHarness *mta)
{
  mta_harness_simple (mta, 'T');
}

void
mta_harness_header (MtaHarness  *mta,
                    const gchar *name,
                    const gchar *value)
{
  milter_encoder_encode_header (mta->out, 'L', name, value);
  mta_harness_send (mta, mta->out);
}

void
mta_harness_end_of_header (MtaHarness *mta)
{
  mta_harness_simple (mta, 'N');
}

void
mta_harness_body (MtaHarness *mta,
                  const void *data,
                  gsize       size)
{
  milter_encoder_encode_data (mta->out, 'B', data, size);
  mta_harness_send (mta, mta->out);
}

void
mta_harness_end_of_message (MtaHarness *mta)
{
  mta_harness_simple (mta, 'E');
}

void
mta_harness_unknown (MtaHarness  *mta,
                     const gchar *command)
{
  milter_encoder_encode_string (mta->out, 'U', command);
  mta_harness_send (mta, mta->out);
}

void
mta_harness_simple (MtaHarness *mta,
                    gchar       command)
{
  milter_encoder_encode_empty (mta->out, command);
  mta_harness_send (mta, mta->out);
}

gchar *
mta_harness_describe_reply (const void *data)
{
  const MilterPacket *packet = data;
  GString *text = g_string_new (NULL);

  g_string_append_c (text, packet->command);
  switch (packet->command)
    {
    case 'O':
      {
        g_autoptr(MilterMacrosRequests) requests = milter_packet_get_macros_requests (packet);

        g_string_append_printf (text, " %u 0x%x 0x%x", packet->negotiate.version,
                                packet->negotiate.action, packet->negotiate.step);
        if (requests != NULL)
          {
            g_autofree gchar *lists = milter_macros_requests_to_string (requests);
            g_string_append_printf (text, " %s", lists);
          }
        break;
      }
    case 'y': case 'q': case '+': case '-':
      g_string_append_printf (text, " %s", packet->string);
      break;
    case 'h':
      g_string_append_printf (text, " %s: %s", packet->header.name, packet->header.value);
      break;
    case 'i': case 'm':
      g_string_append_printf (text, " %u %s: %s", packet->header.index, packet->header.name,
                              packet->header.value);
      break;
    case 'e': case '2':
      g_string_append_printf (text, " %s", packet->envelope.address);
      if (packet->envelope.n_args > 0)
        g_string_append_printf (text, " [%s]", packet->envelope.args);
      break;
    case 'b':
      {
        g_string_append_printf (text, " %" G_GSIZE_FORMAT, packet->size);
        if (packet->size <= 64)
          {
            g_autofree gchar *hex = test_util_hex (packet->data, packet->size);
            g_string_append_printf (text, " %s", hex);
          }
        break;
      }
    default:
      break;
    }
  return g_string_free (text, FALSE);
}

/* Reads what is available; returns FALSE at EOF. */
static gboolean
receive (MtaHarness *mta)
{
  gsize room;
  guint8 *area = milter_decoder_get_write_area (mta->decoder, &room);
  g_autoptr(GError) error = NULL;
  gssize n = g_socket_receive (mta->socket, (gchar *) area, room, NULL, &error);

  if (n > 0)
    milter_decoder_commit (mta->decoder, (gsize) n);
  else if (n == 0)
    mta->eof = TRUE;
  else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED) ||
           g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE))
    mta->eof = TRUE;
  else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    g_error ("MTA side: receive failed: %s", error->message);
  return n != 0;
}

gchar *
mta_harness_read (MtaHarness *mta)
{
  gboolean late = FALSE;
  guint id = g_timeout_add (WAIT_MS, on_deadline, &late);
  gchar *description = NULL;

  while (description == NULL)
    {
      g_autoptr(GError) error = NULL;
      const MilterPacket *packet = milter_decoder_next (mta->decoder, &error);

      g_assert_no_error (error);
      if (packet != NULL)
        {
          description = mta_harness_describe_reply (packet);
          break;
        }
      if (late)
        g_error ("MTA side: no reply within %d ms", WAIT_MS);
      if (mta->eof)
        g_error ("MTA side: the filter closed the connection instead of replying");
      receive (mta);
      if (milter_decoder_get_pending_size (mta->decoder) == 0 || !mta->eof)
        g_main_context_iteration (NULL, FALSE);
      if (!late && milter_decoder_get_pending_size (mta->decoder) < 5)
        g_usleep (200);
    }
  g_source_remove (id);
  return description;
}

void
mta_harness_expect (MtaHarness  *mta,
                    const gchar *expected)
{
  g_autofree gchar *reply = mta_harness_read (mta);

  g_assert_cmpstr (reply, ==, expected);
}

void
mta_harness_expect_silence (MtaHarness *mta,
                            guint       ms)
{
  gint64 until = g_get_monotonic_time () + ms * 1000;

  while (g_get_monotonic_time () < until)
    {
      g_main_context_iteration (NULL, FALSE);
      receive (mta);
      g_usleep (1000);
    }
  if (milter_decoder_get_pending_size (mta->decoder) > 0)
    {
      g_autofree gchar *reply = mta_harness_read (mta);
      g_error ("MTA side: expected no reply, got “%s”", reply);
    }
}

void
mta_harness_expect_closed (MtaHarness *mta)
{
  gint64 until = g_get_monotonic_time () + WAIT_MS * 1000;

  while (!mta->eof && g_get_monotonic_time () < until)
    {
      g_main_context_iteration (NULL, FALSE);
      receive (mta);
      if (milter_decoder_get_pending_size (mta->decoder) > 0)
        {
          g_autofree gchar *reply = mta_harness_read (mta);
          g_error ("MTA side: expected the connection to close, got “%s”", reply);
        }
      g_usleep (500);
    }
  if (!mta->eof)
    g_error ("MTA side: the filter did not close the connection");
}

void
mta_harness_close (MtaHarness *mta)
{
  g_socket_close (mta->socket, NULL);
}

void
mta_harness_shutdown_write (MtaHarness *mta)
{
  g_socket_shutdown (mta->socket, FALSE, TRUE, NULL);
}
