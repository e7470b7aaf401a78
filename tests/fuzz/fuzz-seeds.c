/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>

#include "milter/core/milter-encoder-private.h"

#include <string.h>

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

/* The milter's side of the session the server-context target plays:
 * negotiation, one reply per command, then end-of-message's changes. */
static void
session_replies (GByteArray *out,
                 gchar       verdict_at_rcpt)
{
  g_autoptr(MilterOption) option = milter_option_new (6, MILTER_ACTION_ALL, MILTER_STEP_SKIP);

  milter_encoder_encode_negotiate_reply (out, option, NULL);
  for (guint i = 0; i < 3; i++)
    milter_encoder_encode_empty (out, 'c');  /* connect, helo, mail */
  if (verdict_at_rcpt == 'y')
    milter_encoder_encode_string (out, 'y', "550 5.1.1 No such user");
  else
    milter_encoder_encode_empty (out, verdict_at_rcpt);
  for (guint i = 0; i < 4; i++)
    milter_encoder_encode_empty (out, 'c');  /* data, header, end-of-header, body */
  milter_replies (out);
  milter_encoder_encode_empty (out, 'c');    /* unknown */
}

static gchar *
make_dir (const gchar *top,
          const gchar *target)
{
  gchar *dir = g_build_filename (top, target, NULL);

  g_mkdir_with_parents (dir, 0755);
  return dir;
}

static void
write_text_seed (const gchar *dir,
                 const gchar *name,
                 guint8       selector,
                 const gchar *text)
{
  g_autoptr(GByteArray) stream = g_byte_array_new ();

  g_byte_array_append (stream, (const guint8 *) text, (guint) strlen (text));
  write_seed (dir, name, selector, stream);
}

/* Writes one directory of seeds per fuzz target. */
int
main (int    argc,
      char **argv)
{
  g_autoptr(GByteArray) stream = g_byte_array_new ();
  g_autofree gchar *decoder = NULL;
  g_autofree gchar *client = NULL;
  g_autofree gchar *server = NULL;
  g_autofree gchar *parsers = NULL;
  /* Handler statuses (one byte per event), a flags byte, a split byte:
   * all continue; progress everywhere; a reject at RCPT with skips. */
  static const guint8 plans[][14] = {
    { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0 },
    { 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 3, 7 },
    { 9, 0, 3, 1, 2, 0, 6, 1, 0, 6, 5, 1, 12, 1 },
  };

  if (argc != 2)
    g_error ("usage: %s DIRECTORY", argv[0]);
  decoder = make_dir (argv[1], "fuzz-decoder");
  client = make_dir (argv[1], "fuzz-client-context");
  server = make_dir (argv[1], "fuzz-server-context");
  parsers = make_dir (argv[1], "fuzz-parsers");

  postfix_session (stream);
  write_seed (decoder, "postfix-session-whole", 0xfe, stream);
  postfix_session (stream);
  write_seed (decoder, "postfix-session-split7", 12, stream);
  milter_replies (stream);
  write_seed (decoder, "milter-replies-whole", 0xff, stream);
  milter_replies (stream);
  write_seed (decoder, "milter-replies-split3", 5, stream);

  for (guint i = 0; i < G_N_ELEMENTS (plans); i++)
    {
      g_autofree gchar *name = g_strdup_printf ("postfix-session-plan%u", i);

      g_byte_array_append (stream, plans[i] + 1, sizeof plans[i] - 1);
      postfix_session (stream);
      write_seed (client, name, plans[i][0], stream);
    }

  session_replies (stream, 'c');
  write_seed (server, "session", 'O', stream);
  session_replies (stream, 'y');
  write_seed (server, "session-reply-code", 'O', stream);
  /* write_seed's first byte is part of the stream here: drop it. */
  {
    g_autoptr(GDir) dir = g_dir_open (server, 0, NULL);
    const gchar *name;

    while ((name = g_dir_read_name (dir)) != NULL)
      {
        g_autofree gchar *path = g_build_filename (server, name, NULL);
        g_autofree gchar *contents = NULL;
        gsize length;

        g_file_get_contents (path, &contents, &length, NULL);
        g_file_set_contents (path, contents + 1, (gssize) length - 1, NULL);
      }
  }

  write_text_seed (parsers, "unix", 1, "unix:/run/milter/filter.sock");
  write_text_seed (parsers, "inet", 1, "inet:10025@127.0.0.1");
  write_text_seed (parsers, "inet6", 1, "inet6:10025@[::1]");
  write_text_seed (parsers, "postfix-style", 1, "inet:localhost:10025");
  write_text_seed (parsers, "reply", 0, "550 5.7.1 Go away, 100% spam");
  write_text_seed (parsers, "multi-line", 0, "\x21line one|line two|line three");
  return 0;
}
