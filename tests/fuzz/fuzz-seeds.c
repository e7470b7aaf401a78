/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>

#include "milter/core/milter-encoder-private.h"

/* Writes a seed corpus of valid sessions for the fuzz targets into the
 * directory given as argument: what Postfix sends to a filter, and what a
 * filter answers, each prefixed with the fuzzers' control byte. */

static void
write_seed (const gchar *dir,
            const gchar *name,
            guint8       control,
            GByteArray  *stream)
{
  g_autofree gchar *path = g_build_filename (dir, name, NULL);
  g_autoptr(GByteArray) file = g_byte_array_new ();
  g_autoptr(GError) error = NULL;

  g_byte_array_append (file, &control, 1);
  g_byte_array_append (file, stream->data, stream->len);
  if (!g_file_set_contents (path, (const gchar *) file->data, file->len, &error))
    g_error ("%s", error->message);
  g_byte_array_set_size (stream, 0);
}

static void
postfix_session (GByteArray *out)
{
  g_autoptr(MilterOption) offer = milter_option_new_postfix ();
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string ("192.0.2.1");
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (inet, 54321);
  const gchar *connect_names[] = { "j", "{daemon_name}", "{daemon_addr}", "v", "_", NULL };
  const gchar *connect_values[] = { "mx.example", "mx.example", "127.0.0.1", "Postfix 3.7",
                                    "client.example [192.0.2.1]", NULL };
  const gchar *mail_names[] = { "{mail_addr}", "{mail_host}", "{mail_mailer}", NULL };
  const gchar *mail_values[] = { "a@example.org", "example.org", "smtp", NULL };
  const gchar *rcpt_names[] = { "i", "{rcpt_addr}", NULL };
  const gchar *rcpt_values[] = { "4Q2xyz", "b@example.net", NULL };
  const gchar *mail_args[] = { "SIZE=1000", NULL };

  milter_encoder_encode_negotiate (out, offer);
  milter_encoder_encode_define_macro (out, 'C', connect_names, connect_values);
  milter_encoder_encode_connect (out, "client.example", address);
  milter_encoder_encode_define_macro (out, 'H', NULL, NULL);
  milter_encoder_encode_string (out, 'H', "client.example");
  milter_encoder_encode_define_macro (out, 'M', mail_names, mail_values);
  milter_encoder_encode_envelope (out, 'M', "<a@example.org>", mail_args);
  milter_encoder_encode_define_macro (out, 'R', rcpt_names, rcpt_values);
  milter_encoder_encode_envelope (out, 'R', "<b@example.net>", NULL);
  milter_encoder_encode_empty (out, 'T');
  milter_encoder_encode_header (out, 'L', "From", "a@example.org");
  milter_encoder_encode_header (out, 'L', "Subject", "hello\n world");
  milter_encoder_encode_empty (out, 'N');
  milter_encoder_encode_data (out, 'B', "body line\r\n\0x\r\n", 15);
  milter_encoder_encode_data (out, 'E', NULL, 0);
  milter_encoder_encode_empty (out, 'A');
  milter_encoder_encode_string (out, 'U', "XFOO");
  milter_encoder_encode_empty (out, 'K');
  milter_encoder_encode_connect_raw (out, "[2001:db8::1]", '6', 25, "IPv6:2001:db8::1");
  milter_encoder_encode_connect_raw (out, "localhost", 'L', 0, "/run/x");
  milter_encoder_encode_connect_raw (out, "unknown", 'U', 0, NULL);
  milter_encoder_encode_empty (out, 'Q');
}

static void
milter_replies (GByteArray *out)
{
  g_autoptr(MilterOption) option = milter_option_new (6, MILTER_ACTION_ALL, MILTER_STEP_NO_CONNECT);
  g_autoptr(MilterMacrosRequests) requests = milter_macros_requests_new ();
  const gchar *eom[] = { "i", "{msg_id}", NULL };

  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_END_OF_MESSAGE, eom);
  milter_encoder_encode_negotiate_reply (out, option, requests);
  milter_encoder_encode_empty (out, 'c');
  milter_encoder_encode_empty (out, 'p');
  milter_encoder_encode_header (out, 'h', "X-Filter", "yes");
  milter_encoder_encode_indexed_header (out, 'i', 0, "X-Top", "1");
  milter_encoder_encode_indexed_header (out, 'm', 1, "Subject", "");
  milter_encoder_encode_string (out, '+', "<c@example.net>");
  milter_encoder_encode_address_with_parameters (out, '2', "<d@example.net>", "NOTIFY=NEVER");
  milter_encoder_encode_string (out, '-', "<b@example.net>");
  milter_encoder_encode_address_with_parameters (out, 'e', "<>", NULL);
  milter_encoder_encode_replace_body (out, "new body\r\n", 10);
  milter_encoder_encode_string (out, 'q', "held");
  milter_encoder_encode_string (out, 'y', "550-5.7.1 first\r\n550 5.7.1 last");
  milter_encoder_encode_empty (out, 'a');
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GByteArray) stream = g_byte_array_new ();

  if (argc != 2)
    g_error ("usage: %s DIRECTORY", argv[0]);
  g_mkdir_with_parents (argv[1], 0755);

  postfix_session (stream);
  write_seed (argv[1], "postfix-session-whole", 0xfe, stream);
  postfix_session (stream);
  write_seed (argv[1], "postfix-session-split7", 12, stream);
  milter_replies (stream);
  write_seed (argv[1], "milter-replies-whole", 0xff, stream);
  milter_replies (stream);
  write_seed (argv[1], "milter-replies-split3", 5, stream);
  return 0;
}
