/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "test-util.h"
#include "milter/core/milter-decoder-private.h"
#include "milter/core/milter-encoder-private.h"

/* A decoded packet rendered as text, so whole streams compare as lists of
 * strings whatever way the input was split. */
static gchar *
describe_packet (MilterDecoder      *decoder,
                 const MilterPacket *packet,
                 gboolean            replies)
{
  GString *text = g_string_new (NULL);

  g_string_append_c (text, packet->command);
  switch (packet->command)
    {
    case 'O':
      g_string_append_printf (text, " version=%u action=0x%x step=0x%x",
                              packet->negotiate.version, packet->negotiate.action,
                              packet->negotiate.step);
      if (replies)
        {
          g_autoptr(MilterMacrosRequests) requests = milter_packet_get_macros_requests (packet);

          if (requests != NULL)
            {
              g_autofree gchar *lists = milter_macros_requests_to_string (requests);
              g_string_append_printf (text, " macros=%s", lists);
            }
        }
      break;
    case 'D':
      {
        const gchar *cursor = packet->macro.pairs;
        const gchar *end = cursor + packet->macro.pairs_size;
        const gchar *name;

        g_string_append_printf (text, " for=%c", packet->macro.command);
        while ((name = milter_packet_next_string (&cursor, end)) != NULL)
          g_string_append_printf (text, " %s=%s", name, milter_packet_next_string (&cursor, end));
        g_assert_true (cursor == end);
        break;
      }
    case 'C':
      g_string_append_printf (text, " host=%s family=%c port=%u", packet->connect.host,
                              packet->connect.family, packet->connect.port);
      if (packet->connect.address_text != NULL)
        g_string_append_printf (text, " text=%s", packet->connect.address_text);
      if (packet->connect.address != NULL)
        {
          g_autofree gchar *spec = milter_connection_spec_format (packet->connect.address, NULL);
          g_string_append_printf (text, " address=%s", spec);
        }
      break;
    case 'M': case 'R': case 'e': case '2':
      {
        const gchar *cursor = packet->envelope.args;
        const gchar *end = cursor + packet->envelope.args_size;
        const gchar *arg;
        guint n = 0;

        g_string_append_printf (text, " %s", packet->envelope.address);
        while ((arg = milter_packet_next_string (&cursor, end)) != NULL)
          {
            g_string_append_printf (text, " [%s]", arg);
            n++;
          }
        g_assert_cmpuint (n, ==, packet->envelope.n_args);
        break;
      }
    case 'L': case 'h': case 'i': case 'm':
      if (packet->command == 'i' || packet->command == 'm')
        g_string_append_printf (text, " %u", packet->header.index);
      g_string_append_printf (text, " %s: %s", packet->header.name, packet->header.value);
      break;
    case 'B': case 'E': case 'b':
      {
        g_autofree gchar *hex = test_util_hex (packet->data, packet->size);
        g_autoptr(GBytes) bytes = milter_decoder_get_payload_bytes (decoder);

        /* Zero copy: the slice is the packet's own memory. */
        g_assert_true (g_bytes_get_size (bytes) == 0 ||
                       g_bytes_get_data (bytes, NULL) == (gconstpointer) packet->data);
        g_string_append_printf (text, " %s", hex);
        break;
      }
    case 'H': case 'U': case 'y': case 'q': case '+': case '-':
      g_string_append_printf (text, " %s", packet->string);
      break;
    default:
      g_assert_cmpuint (packet->size, ==, 0);
    }
  return g_string_free (text, FALSE);
}

/* Feeds @stream in pieces whose sizes come from @next_size and returns the
 * descriptions of all packets decoded. */
static GPtrArray *
decode_stream (GBytes   *stream,
               gboolean  replies,
               gsize   (*next_size) (gpointer),
               gpointer  user_data)
{
  MilterDecoder *decoder = milter_decoder_new (replies ? MILTER_DECODER_REPLIES : MILTER_DECODER_COMMANDS);
  GPtrArray *descriptions = g_ptr_array_new_with_free_func (g_free);
  gsize size;
  const guint8 *data = g_bytes_get_data (stream, &size);
  gsize offset = 0;

  while (offset < size)
    {
      gsize wanted = next_size (user_data);  /* not inside MIN(): it would run twice */
      gsize piece = MIN (wanted, size - offset);
      const MilterPacket *packet;
      GError *error = NULL;

      milter_decoder_feed (decoder, data + offset, piece);
      offset += piece;
      while ((packet = milter_decoder_next (decoder, &error)) != NULL)
        g_ptr_array_add (descriptions, describe_packet (decoder, packet, replies));
      g_assert_no_error (error);
    }
  g_assert_cmpuint (milter_decoder_get_pending_size (decoder), ==, 0);
  milter_decoder_free (decoder);
  return descriptions;
}

static gsize
whole_size (gpointer user_data)
{
  return G_MAXSIZE;
}

static gsize
one_byte (gpointer user_data)
{
  return 1;
}

static gsize
random_size (gpointer user_data)
{
  return (gsize) g_rand_int_range (user_data, 1, 97);
}

typedef struct
{
  GByteArray *stream;
  GPtrArray *expected;
} Expectation;

static void
expect (Expectation *expectation,
        const gchar *description)
{
  g_ptr_array_add (expectation->expected, g_strdup (description));
}

/* Decodes the stream whole, byte by byte and in 60 random splits from a
 * fixed seed, and checks each run gives the expected packets. */
static void
assert_round_trip (Expectation *expectation,
                   gboolean     replies)
{
  g_autoptr(GBytes) stream = g_bytes_new (expectation->stream->data, expectation->stream->len);
  g_autoptr(GRand) rand = g_rand_new_with_seed (20261121);
  GPtrArray *runs[2 + 60];

  runs[0] = decode_stream (stream, replies, whole_size, NULL);
  runs[1] = decode_stream (stream, replies, one_byte, NULL);
  for (guint i = 2; i < G_N_ELEMENTS (runs); i++)
    runs[i] = decode_stream (stream, replies, random_size, rand);

  for (guint r = 0; r < G_N_ELEMENTS (runs); r++)
    {
      g_assert_cmpuint (runs[r]->len, ==, expectation->expected->len);
      for (guint i = 0; i < runs[r]->len; i++)
        g_assert_cmpstr (g_ptr_array_index (runs[r], i), ==,
                         g_ptr_array_index (expectation->expected, i));
      g_ptr_array_unref (runs[r]);
    }
  g_byte_array_unref (expectation->stream);
  g_ptr_array_unref (expectation->expected);
}

static void
expectation_init (Expectation *expectation)
{
  expectation->stream = g_byte_array_new ();
  expectation->expected = g_ptr_array_new_with_free_func (g_free);
}

static void
test_commands_round_trip (void)
{
  Expectation e;
  g_autoptr(MilterOption) offer = milter_option_new_postfix ();
  g_autoptr(GInetAddress) v6 = g_inet_address_new_from_string ("2001:db8::25");
  g_autoptr(GSocketAddress) v6_address = g_inet_socket_address_new (v6, 4321);
  g_autoptr(GSocketAddress) unix_address = g_unix_socket_address_new ("/run/smtp.sock");
  const gchar *names[] = { "j", "{daemon_name}", "_", NULL };
  const gchar *values[] = { "mx.example", "", "client [192.0.2.1]", NULL };
  const gchar *mail_args[] = { "SIZE=100", "BODY=8BITMIME", NULL };
  guint8 body[300];

  for (guint i = 0; i < sizeof body; i++)
    body[i] = (guint8) i;  /* includes NUL, CR and LF bytes */

  expectation_init (&e);
  milter_encoder_encode_negotiate (e.stream, offer);
  expect (&e, "O version=6 action=0x1ff step=0x1fffff");
  milter_encoder_encode_define_macro (e.stream, 'C', names, values);
  expect (&e, "D for=C j=mx.example {daemon_name}= _=client [192.0.2.1]");
  milter_encoder_encode_define_macro (e.stream, 'L', NULL, NULL);
  expect (&e, "D for=L");
  milter_encoder_encode_connect_raw (e.stream, "mx", '4', 25, "192.0.2.1");
  expect (&e, "C host=mx family=4 port=25 text=192.0.2.1 address=inet:25@192.0.2.1");
  milter_encoder_encode_connect (e.stream, "v6.example", v6_address);
  expect (&e, "C host=v6.example family=6 port=4321 text=2001:db8::25 address=inet6:4321@2001:db8::25");
  milter_encoder_encode_connect_raw (e.stream, "sendmail", '6', 25, "IPv6:2001:db8::1");
  expect (&e, "C host=sendmail family=6 port=25 text=IPv6:2001:db8::1 address=inet6:25@2001:db8::1");
  milter_encoder_encode_connect (e.stream, "localhost", unix_address);
  expect (&e, "C host=localhost family=L port=0 text=/run/smtp.sock address=unix:/run/smtp.sock");
  milter_encoder_encode_connect (e.stream, "[192.0.2.9]", NULL);
  expect (&e, "C host=[192.0.2.9] family=U port=0");
  /* Addresses that do not parse for their family: no address, as 'U'.
   * Postfix sends "unknown" for a client XCLIENT gave as [UNAVAILABLE]. */
  milter_encoder_encode_connect_raw (e.stream, "unknown", '4', 0, "unknown");
  expect (&e, "C host=unknown family=4 port=0 text=unknown");
  milter_encoder_encode_connect_raw (e.stream, "mx", '4', 25, "999.1.1.1");
  expect (&e, "C host=mx family=4 port=25 text=999.1.1.1");
  milter_encoder_encode_connect_raw (e.stream, "mx", '4', 25, "::1");
  expect (&e, "C host=mx family=4 port=25 text=::1");
  milter_encoder_encode_connect_raw (e.stream, "mx", '6', 25, "1.2.3.4");
  expect (&e, "C host=mx family=6 port=25 text=1.2.3.4");
  {
    g_autofree gchar *long_path = g_strnfill (200, 'p');
    g_autofree gchar *line = g_strdup_printf ("C host=localhost family=L port=0 text=%s", long_path);

    milter_encoder_encode_connect_raw (e.stream, "localhost", 'L', 0, long_path);
    expect (&e, line);
  }
  milter_encoder_encode_string (e.stream, 'H', "client.example");
  expect (&e, "H client.example");
  milter_encoder_encode_envelope (e.stream, 'M', "<a@example.org>", mail_args);
  expect (&e, "M <a@example.org> [SIZE=100] [BODY=8BITMIME]");
  milter_encoder_encode_envelope (e.stream, 'R', "<b@example.org>", NULL);
  expect (&e, "R <b@example.org>");
  milter_encoder_encode_empty (e.stream, 'T');
  expect (&e, "T");
  milter_encoder_encode_header (e.stream, 'L', "Subject", "hello\n\tworld");
  expect (&e, "L Subject: hello\n\tworld");
  milter_encoder_encode_header (e.stream, 'L', "X-Empty", "");
  expect (&e, "L X-Empty: ");
  milter_encoder_encode_empty (e.stream, 'N');
  expect (&e, "N");
  milter_encoder_encode_data (e.stream, 'B', body, sizeof body);
  {
    g_autofree gchar *hex = test_util_hex (body, sizeof body);
    g_autofree gchar *line = g_strconcat ("B ", hex, NULL);
    expect (&e, line);
  }
  milter_encoder_encode_data (e.stream, 'E', NULL, 0);
  expect (&e, "E ");
  milter_encoder_encode_data (e.stream, 'E', "tail", 4);
  expect (&e, "E 7461696c");
  milter_encoder_encode_string (e.stream, 'U', "XFOO bar");
  expect (&e, "U XFOO bar");
  milter_encoder_encode_empty (e.stream, 'A');
  expect (&e, "A");
  milter_encoder_encode_empty (e.stream, 'K');
  expect (&e, "K");
  milter_encoder_encode_empty (e.stream, 'Q');
  expect (&e, "Q");
  assert_round_trip (&e, FALSE);
}

static void
test_replies_round_trip (void)
{
  Expectation e;
  g_autoptr(MilterOption) option = milter_option_new (6, MILTER_ACTION_ALL, MILTER_STEP_NO_CONNECT);
  g_autoptr(MilterMacrosRequests) requests = milter_macros_requests_new ();
  const gchar *eom[] = { "i", "{msg_id}", NULL };
  const gchar *none[] = { NULL };
  const gchar *simple = "carstdp4";
  gsize body_size = 65535 + 100;
  g_autofree guint8 *body = g_malloc (body_size);

  for (gsize i = 0; i < body_size; i++)
    body[i] = (guint8) (i % 251);
  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_END_OF_MESSAGE, eom);
  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_CONNECT, none);

  expectation_init (&e);
  milter_encoder_encode_negotiate_reply (e.stream, option, NULL);
  expect (&e, "O version=6 action=0x1ff step=0x1");
  milter_encoder_encode_negotiate_reply (e.stream, option, requests);
  expect (&e, "O version=6 action=0x1ff step=0x1 macros=0:\"\" 5:\"i {msg_id}\"");
  for (const gchar *p = simple; *p != '\0'; p++)
    {
      gchar one[2] = { *p, '\0' };
      milter_encoder_encode_empty (e.stream, *p);
      expect (&e, one);
    }
  milter_encoder_encode_string (e.stream, 'y', "550-5.7.1 a\r\n550 5.7.1 b");
  expect (&e, "y 550-5.7.1 a\r\n550 5.7.1 b");
  milter_encoder_encode_header (e.stream, 'h', "X-A", "1");
  expect (&e, "h X-A: 1");
  milter_encoder_encode_indexed_header (e.stream, 'i', 0, "X-Top", "v");
  expect (&e, "i 0 X-Top: v");
  milter_encoder_encode_indexed_header (e.stream, 'm', 3, "Subject", "");
  expect (&e, "m 3 Subject: ");
  milter_encoder_encode_string (e.stream, '+', "<new@example.org>");
  expect (&e, "+ <new@example.org>");
  milter_encoder_encode_address_with_parameters (e.stream, '2', "<p@example.org>", "NOTIFY=NEVER");
  expect (&e, "2 <p@example.org> [NOTIFY=NEVER]");
  milter_encoder_encode_string (e.stream, '-', "<old@example.org>");
  expect (&e, "- <old@example.org>");
  milter_encoder_encode_address_with_parameters (e.stream, 'e', "<>", NULL);
  expect (&e, "e <>");
  milter_encoder_encode_replace_body (e.stream, body, body_size);
  {
    g_autofree gchar *first = test_util_hex (body, 65535);
    g_autofree gchar *second = test_util_hex (body + 65535, 100);
    g_autofree gchar *line1 = g_strconcat ("b ", first, NULL);
    g_autofree gchar *line2 = g_strconcat ("b ", second, NULL);
    expect (&e, line1);
    expect (&e, line2);
  }
  milter_encoder_encode_string (e.stream, 'q', "suspicious");
  expect (&e, "q suspicious");
  assert_round_trip (&e, TRUE);
}

/* Bytes as Postfix and Sendmail send them (protocol.md §2, §4.3). */
/* A milter's macro lists are split at spaces, tabs and commas as MTAs
 * read them; a name with a control character is dropped, not a
 * programming error (the peer is not trusted). */
static void
test_macro_lists_from_the_wire (void)
{
  g_autoptr(GBytes) bytes = test_util_bytes_from_hex (
    "00000022 4f 00000006 000001ff 00000000 00000000 7b617d01 206209632c64 20202c 7b657d00");
  g_autoptr(GPtrArray) descriptions = decode_stream (bytes, TRUE, one_byte, NULL);

  g_assert_cmpuint (descriptions->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (descriptions, 0), ==,
                   "O version=6 action=0x1ff step=0x0 macros=0:\"b c d {e}\"");
}

static void
test_real_mta_bytes (void)
{
  static const struct
  {
    const gchar *hex;
    const gchar *expected;
  } cases[] = {
    /* Postfix 2.6+ default offer. */
    { "0000000d 4f 00000006 000001ff 001fffff", "O version=6 action=0x1ff step=0x1fffff" },
    /* milter_protocol = 2 */
    { "0000000d 4f 00000002 000001ff 0000007f", "O version=2 action=0x1ff step=0x7f" },
    /* C, family 4: "mail.example.com", port 54321, 192.0.2.10 */
    { "00000020 43 6d61696c2e6578616d706c652e636f6d00 34 d431 3139322e302e322e313000",
      "C host=mail.example.com family=4 port=54321 text=192.0.2.10 address=inet:54321@192.0.2.10" },
    /* C, family 6, Postfix's plain text: "[2607:f8b0::748]" unknown host */
    { "00000024 43 5b323630373a663862303a3a3734385d00 36 c350 323630373a663862303a3a37343800",
      "C host=[2607:f8b0::748] family=6 port=50000 text=2607:f8b0::748 address=inet6:50000@2607:f8b0::748" },
    /* C, family 6, Sendmail's "IPv6:" prefix */
    { "00000018 43 6d7800 36 0019 495076363a323030313a6462383a3a3100",
      "C host=mx family=6 port=25 text=IPv6:2001:db8::1 address=inet6:25@2001:db8::1" },
    /* C, family L (port 0, the socket path) */
    { "00000018 43 6c6f63616c686f737400 4c 0000 2f7661722f736f636b00",
      "C host=localhost family=L port=0 text=/var/sock address=unix:/var/sock" },
    /* C, family U: only the host name */
    { "0000000a 43 756e6b6e6f776e00 55", "C host=unknown family=U port=0" },
    /* D with zero pairs (Postfix sends these before every event) */
    { "00000002 44 4c", "D for=L" },
    /* D with an empty value ({mail_addr} for MAIL FROM:<>) */
    { "0000000f 44 4d 7b6d61696c5f616464727d00 00", "D for=M {mail_addr}=" },
    /* an odd count of strings: the last name gets an empty value */
    { "00000004 44 43 6a00", "D for=C j=" },
    { "00000008 44 43 6a00 7800 6b00", "D for=C j=x k=" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GBytes) bytes = test_util_bytes_from_hex (cases[i].hex);
      g_autoptr(GPtrArray) descriptions = decode_stream (bytes, FALSE, one_byte, NULL);

      g_assert_cmpuint (descriptions->len, ==, 1);
      g_assert_cmpstr (g_ptr_array_index (descriptions, 0), ==, cases[i].expected);
    }
}

typedef struct
{
  const gchar *hex;
  gint code;
} MalformedCase;

static void
assert_malformed (const MalformedCase *cases,
                  guint                n_cases,
                  gboolean             replies)
{
  for (guint i = 0; i < n_cases; i++)
    {
      g_autoptr(GBytes) bytes = test_util_bytes_from_hex (cases[i].hex);
      MilterDecoder *decoder =
        milter_decoder_new (replies ? MILTER_DECODER_REPLIES : MILTER_DECODER_COMMANDS);
      g_autoptr(GError) error = NULL;
      g_autoptr(GError) again = NULL;

      milter_decoder_set_max_macros (decoder, 3);
      milter_decoder_feed (decoder, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
      g_assert_null (milter_decoder_next (decoder, &error));
      if (error == NULL || error->code != cases[i].code)
        g_error ("case %u (%s): expected code %d, got %s", i, cases[i].hex, cases[i].code,
                 error != NULL ? error->message : "no error");
      g_assert_error (error, MILTER_DECODER_ERROR, cases[i].code);
      g_test_message ("%s → %s", cases[i].hex, error->message);

      /* The failure is sticky: the stream cannot be resynchronised. */
      g_assert_null (milter_decoder_next (decoder, &again));
      g_assert_error (again, MILTER_DECODER_ERROR, cases[i].code);
      milter_decoder_free (decoder);
    }
}

static void
test_malformed_commands (void)
{
  static const MalformedCase cases[] = {
    { "00000000", MILTER_DECODER_ERROR_ZERO_LENGTH },
    { "00100001", MILTER_DECODER_ERROR_TOO_LONG },
    { "ffffffff", MILTER_DECODER_ERROR_TOO_LONG },
    { "00000001 5a", MILTER_DECODER_ERROR_UNKNOWN_COMMAND },
    { "00000001 00", MILTER_DECODER_ERROR_UNKNOWN_COMMAND },
    { "00000001 63", MILTER_DECODER_ERROR_UNKNOWN_COMMAND },  /* a reply letter */
    /* negotiate */
    { "00000009 4f 00000006 000001ff", MILTER_DECODER_ERROR_SHORT_PAYLOAD },
    { "00000001 4f", MILTER_DECODER_ERROR_SHORT_PAYLOAD },
    { "0000000d 4f 00000001 000001ff 001fffff", MILTER_DECODER_ERROR_INVALID_VERSION },
    /* define-macro */
    { "00000001 44", MILTER_DECODER_ERROR_MISSING_VALUE },
    { "00000006 44 43 6a00 7878", MILTER_DECODER_ERROR_MISSING_TERMINATOR },
    { "0000000e 44 43 6100 00 6200 00 6300 00 6400 00", MILTER_DECODER_ERROR_TOO_MANY_MACROS },
    /* connect */
    { "00000001 43", MILTER_DECODER_ERROR_MISSING_VALUE },
    { "00000003 43 6d78", MILTER_DECODER_ERROR_MISSING_TERMINATOR },
    { "00000004 43 6d7800", MILTER_DECODER_ERROR_SHORT_PAYLOAD },
    { "00000009 43 6d7800 58 0019 6100", MILTER_DECODER_ERROR_INVALID_FAMILY },
    { "00000006 43 6d7800 34 00", MILTER_DECODER_ERROR_SHORT_PAYLOAD },
    { "00000008 43 6d7800 34 0019 31", MILTER_DECODER_ERROR_MISSING_TERMINATOR },
    { "00000007 43 6d7800 34 0019", MILTER_DECODER_ERROR_MISSING_VALUE },
    { "00000010 43 6d7800 34 0019 312e322e332e3400 78", MILTER_DECODER_ERROR_EXTRA_DATA },
    { "00000006 43 6d7800 55 78", MILTER_DECODER_ERROR_EXTRA_DATA },
    /* helo, unknown */
    { "00000001 48", MILTER_DECODER_ERROR_MISSING_VALUE },
    { "00000003 48 6162", MILTER_DECODER_ERROR_MISSING_TERMINATOR },
    { "00000005 48 6100 6200", MILTER_DECODER_ERROR_EXTRA_DATA },
    { "00000001 55", MILTER_DECODER_ERROR_MISSING_VALUE },
    /* envelope */
    { "00000001 4d", MILTER_DECODER_ERROR_MISSING_VALUE },
    { "00000009 4d 3c613e00 53495a45", MILTER_DECODER_ERROR_MISSING_TERMINATOR },
    { "00000001 52", MILTER_DECODER_ERROR_MISSING_VALUE },
    /* header */
    { "00000001 4c", MILTER_DECODER_ERROR_MISSING_VALUE },
    { "00000006 4c 46726f6d00", MILTER_DECODER_ERROR_MISSING_VALUE },
    { "00000007 4c 46726f6d00 78", MILTER_DECODER_ERROR_MISSING_TERMINATOR },
    { "0000000a 4c 46726f6d00 7800 7900", MILTER_DECODER_ERROR_EXTRA_DATA },
    /* body and empty commands */
    { "00000001 42", MILTER_DECODER_ERROR_MISSING_VALUE },
    { "00000002 54 78", MILTER_DECODER_ERROR_EXTRA_DATA },
    { "00000002 4e 78", MILTER_DECODER_ERROR_EXTRA_DATA },
    { "00000002 41 78", MILTER_DECODER_ERROR_EXTRA_DATA },
    { "00000002 51 78", MILTER_DECODER_ERROR_EXTRA_DATA },
    { "00000002 4b 78", MILTER_DECODER_ERROR_EXTRA_DATA },
  };

  assert_malformed (cases, G_N_ELEMENTS (cases), FALSE);
}

static void
test_malformed_replies (void)
{
  static const MalformedCase cases[] = {
    { "00000001 4f", MILTER_DECODER_ERROR_SHORT_PAYLOAD },
    { "0000000d 4f 00000000 00000000 00000000", MILTER_DECODER_ERROR_INVALID_VERSION },
    { "0000000f 4f 00000006 00000000 00000000 0000", MILTER_DECODER_ERROR_SHORT_PAYLOAD },
    { "00000012 4f 00000006 00000000 00000000 00000007 00", MILTER_DECODER_ERROR_INVALID_MACRO_STAGE },
    { "00000012 4f 00000006 00000000 00000000 00000005 69", MILTER_DECODER_ERROR_MISSING_TERMINATOR },
    { "00000001 4c", MILTER_DECODER_ERROR_UNKNOWN_COMMAND },  /* a command letter */
    { "00000001 6c", MILTER_DECODER_ERROR_UNKNOWN_COMMAND },  /* 'l' is never a packet */
    { "00000002 63 00", MILTER_DECODER_ERROR_EXTRA_DATA },
    { "00000002 73 00", MILTER_DECODER_ERROR_EXTRA_DATA },
    { "00000002 70 00", MILTER_DECODER_ERROR_EXTRA_DATA },
    { "00000002 79 00", MILTER_DECODER_ERROR_MISSING_VALUE },
    { "00000004 79 353530", MILTER_DECODER_ERROR_MISSING_TERMINATOR },
    { "00000007 79 35353000 7800", MILTER_DECODER_ERROR_EXTRA_DATA },
    { "00000001 79", MILTER_DECODER_ERROR_MISSING_VALUE },
    { "00000004 69 000000", MILTER_DECODER_ERROR_SHORT_PAYLOAD },
    { "00000007 6d 00000001 6100", MILTER_DECODER_ERROR_MISSING_VALUE },
    { "00000003 68 6100", MILTER_DECODER_ERROR_MISSING_VALUE },
    { "00000001 2b", MILTER_DECODER_ERROR_MISSING_VALUE },
    { "00000006 2d 3c613e 0078", MILTER_DECODER_ERROR_EXTRA_DATA },
    { "00000009 32 3c613e00 6100 6200", MILTER_DECODER_ERROR_EXTRA_DATA },
    { "00000006 65 3c613e00 61", MILTER_DECODER_ERROR_MISSING_TERMINATOR },
    { "00000002 71 00", MILTER_DECODER_ERROR_MISSING_VALUE },
  };

  assert_malformed (cases, G_N_ELEMENTS (cases), TRUE);
}

/* An over-limit length fails as soon as the 4 length bytes arrive, and the
 * decoder never sizes a buffer by it. */
static void
test_length_limit (void)
{
  MilterDecoder *decoder = milter_decoder_new (MILTER_DECODER_COMMANDS);
  const guint8 huge[] = { 0x7f, 0xff, 0xff, 0xff };
  g_autoptr(GError) error = NULL;
  gsize room;

  g_assert_cmpuint (milter_decoder_get_max_packet_length (decoder), ==, 1024 * 1024);
  milter_decoder_feed (decoder, huge, sizeof huge);
  g_assert_null (milter_decoder_next (decoder, &error));
  g_assert_error (error, MILTER_DECODER_ERROR, MILTER_DECODER_ERROR_TOO_LONG);
  milter_decoder_get_write_area (decoder, &room);
  g_assert_cmpuint (room, <, 128 * 1024);
  milter_decoder_free (decoder);
}

/* A packet of exactly the limit decodes; one byte more does not. The
 * 1 MiB limit admits the 1M data-size extension (1048575 data bytes). */
static void
test_length_boundary (void)
{
  gsize data_size = 1048575;
  g_autoptr(GByteArray) stream = g_byte_array_new ();
  g_autofree guint8 *data = g_malloc0 (data_size + 1);
  MilterDecoder *decoder;
  const MilterPacket *packet;
  g_autoptr(GError) error = NULL;

  milter_encoder_encode_data (stream, 'B', data, data_size);
  decoder = milter_decoder_new (MILTER_DECODER_COMMANDS);
  milter_decoder_feed (decoder, stream->data, stream->len);
  packet = milter_decoder_next (decoder, &error);
  g_assert_no_error (error);
  g_assert_nonnull (packet);
  g_assert_cmpuint (packet->size, ==, data_size);
  milter_decoder_free (decoder);

  g_byte_array_set_size (stream, 0);
  milter_encoder_encode_data (stream, 'B', data, data_size + 1);
  decoder = milter_decoder_new (MILTER_DECODER_COMMANDS);
  milter_decoder_feed (decoder, stream->data, stream->len);
  g_assert_null (milter_decoder_next (decoder, &error));
  g_assert_error (error, MILTER_DECODER_ERROR, MILTER_DECODER_ERROR_TOO_LONG);
  milter_decoder_free (decoder);

  g_clear_error (&error);
  decoder = milter_decoder_new (MILTER_DECODER_COMMANDS);
  milter_decoder_set_max_packet_length (decoder, 10);
  g_byte_array_set_size (stream, 0);
  milter_encoder_encode_data (stream, 'B', data, 9);
  milter_encoder_encode_data (stream, 'B', data, 10);
  milter_decoder_feed (decoder, stream->data, stream->len);
  g_assert_nonnull (milter_decoder_next (decoder, &error));
  g_assert_null (milter_decoder_next (decoder, &error));
  g_assert_error (error, MILTER_DECODER_ERROR, MILTER_DECODER_ERROR_TOO_LONG);
  milter_decoder_free (decoder);
}

/* A header packet over 64 KiB, as Postfix sends (header_size_limit is
 * 100 KiB), split in small reads through the zero-copy write area. */
static void
test_large_header (void)
{
  g_autoptr(GByteArray) stream = g_byte_array_new ();
  gsize value_size = 100 * 1024;
  g_autofree gchar *value = g_malloc (value_size + 1);
  MilterDecoder *decoder = milter_decoder_new (MILTER_DECODER_COMMANDS);
  const MilterPacket *packet = NULL;
  g_autoptr(GError) error = NULL;
  gsize offset = 0;

  memset (value, 'v', value_size);
  value[value_size] = '\0';
  milter_encoder_encode_header (stream, 'L', "X-Big", value);
  while (packet == NULL && offset < stream->len)
    {
      gsize room;
      guint8 *area = milter_decoder_get_write_area (decoder, &room);
      gsize n = MIN (MIN (room, 1000), stream->len - offset);

      memcpy (area, stream->data + offset, n);
      milter_decoder_commit (decoder, n);
      offset += n;
      packet = milter_decoder_next (decoder, &error);
      g_assert_no_error (error);
    }
  g_assert_nonnull (packet);
  g_assert_cmpuint (offset, ==, stream->len);
  g_assert_cmpstr (packet->header.name, ==, "X-Big");
  g_assert_cmpstr (packet->header.value, ==, value);
  milter_decoder_free (decoder);
}

/* A body slice stays intact while the decoder goes on reading, moves to
 * new buffers and is freed. */
static void
test_payload_bytes_survive (void)
{
  g_autoptr(GByteArray) stream = g_byte_array_new ();
  MilterDecoder *decoder = milter_decoder_new (MILTER_DECODER_COMMANDS);
  const MilterPacket *packet;
  g_autoptr(GBytes) first = NULL;
  guint8 chunk[1000];
  guint n_packets = 0;

  for (guint i = 0; i < sizeof chunk; i++)
    chunk[i] = (guint8) (i * 3);
  for (guint i = 0; i < 300; i++)
    {
      chunk[0] = (guint8) i;
      milter_encoder_encode_data (stream, 'B', chunk, sizeof chunk);
    }

  for (gsize offset = 0; offset < stream->len; offset += 777)
    {
      milter_decoder_feed (decoder, stream->data + offset, MIN (777, stream->len - offset));
      while ((packet = milter_decoder_next (decoder, NULL)) != NULL)
        {
          if (n_packets++ == 0)
            first = milter_decoder_get_payload_bytes (decoder);
        }
      milter_decoder_release_buffer (decoder);
    }
  g_assert_cmpuint (n_packets, ==, 300);
  milter_decoder_free (decoder);

  chunk[0] = 0;
  g_assert_cmpmem (g_bytes_get_data (first, NULL), g_bytes_get_size (first), chunk, sizeof chunk);
}

/* A buffer starts at a fixed offset into a page, never at its boundary,
 * whether it is new, recycled, grown for a large packet or replaces one a
 * slice keeps (the kernel copied large writes into page-aligned buffers at
 * half speed). @pending bytes are already in the buffer. */
static void
assert_buffer_off_page_boundary (MilterDecoder *decoder,
                                 gsize          pending)
{
  gsize room;
  guint8 *area = milter_decoder_get_write_area (decoder, &room);
  guintptr page_offset = ((guintptr) area - pending) % 4096;

  g_assert_cmpuint (room, >, 0);
  g_assert_cmpuint (page_offset, ==, MILTER_DECODER_BUFFER_PAGE_OFFSET);
}

static void
test_read_buffer_placement (void)
{
  g_autoptr(GByteArray) stream = g_byte_array_new ();
  g_autofree guint8 *data = g_malloc0 (200 * 1024);
  MilterDecoder *decoder = milter_decoder_new (MILTER_DECODER_COMMANDS);
  g_autoptr(GBytes) slice = NULL;

  assert_buffer_off_page_boundary (decoder, 0);
  milter_decoder_release_buffer (decoder);  /* back to the cache */
  assert_buffer_off_page_boundary (decoder, 0);

  milter_decoder_set_max_packet_length (decoder, 300 * 1024);
  milter_encoder_encode_data (stream, 'B', data, 200 * 1024);
  milter_decoder_feed (decoder, stream->data, 10);  /* the length is known */
  assert_buffer_off_page_boundary (decoder, 10);  /* grown */
  milter_decoder_feed (decoder, stream->data + 10, stream->len - 10);
  g_assert_nonnull (milter_decoder_next (decoder, NULL));
  slice = milter_decoder_get_payload_bytes (decoder);
  g_assert_cmpuint (g_bytes_get_size (slice), ==, 200 * 1024);

  /* The slice keeps the big buffer; the next packet needs a new one. */
  g_byte_array_set_size (stream, 0);
  milter_encoder_encode_data (stream, 'B', data, 100);
  milter_decoder_feed (decoder, stream->data, 3);
  g_assert_null (milter_decoder_next (decoder, NULL));
  milter_decoder_release_buffer (decoder);
  assert_buffer_off_page_boundary (decoder, 3);
  milter_decoder_free (decoder);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/decoder/commands/round-trip", test_commands_round_trip);
  g_test_add_func ("/decoder/replies/round-trip", test_replies_round_trip);
  g_test_add_func ("/decoder/real-mta-bytes", test_real_mta_bytes);
  g_test_add_func ("/decoder/macro-lists-from-the-wire", test_macro_lists_from_the_wire);
  g_test_add_func ("/decoder/commands/malformed", test_malformed_commands);
  g_test_add_func ("/decoder/replies/malformed", test_malformed_replies);
  g_test_add_func ("/decoder/length-limit", test_length_limit);
  g_test_add_func ("/decoder/length-boundary", test_length_boundary);
  g_test_add_func ("/decoder/large-header", test_large_header);
  g_test_add_func ("/decoder/payload-bytes-survive", test_payload_bytes_survive);
  g_test_add_func ("/decoder/read-buffer-placement", test_read_buffer_placement);

  return g_test_run ();
}
