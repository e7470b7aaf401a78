/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "test-util.h"
#include "milter/core/milter-encoder-private.h"

/* Each encoder output is compared with bytes written out by hand from
 * protocol.md, so the encoder is checked independently of the decoder. */

static void
assert_bytes (GByteArray  *out,
              const gchar *expected_hex)
{
  g_autoptr(GBytes) expected = test_util_bytes_from_hex (expected_hex);
  g_autofree gchar *expected_text = test_util_bytes_to_hex (expected);
  g_autofree gchar *actual_text = test_util_hex (out->data, out->len);

  g_assert_cmpstr (actual_text, ==, expected_text);
  g_byte_array_set_size (out, 0);
}

static void
test_commands (void)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(MilterOption) option = milter_option_new_postfix ();
  const gchar *names[] = { "j", "{daemon_name}", NULL };
  const gchar *values[] = { "mx.example", "", NULL };
  const gchar *args[] = { "SIZE=100", "BODY=8BITMIME", NULL };

  /* Postfix's offer, as captured by purepythonmilter. */
  milter_encoder_encode_negotiate (out, option);
  assert_bytes (out, "0000000d 4f 00000006 000001ff 001fffff");

  milter_encoder_encode_define_macro (out, 'C', names, values);
  assert_bytes (out, "0000001e 44 43 6a00 6d782e6578616d706c6500 7b6461656d6f6e5f6e616d657d00 00");

  milter_encoder_encode_define_macro (out, 'B', NULL, NULL);
  assert_bytes (out, "00000002 44 42");

  milter_encoder_encode_connect_raw (out, "mx", '4', 25, "192.0.2.1");
  assert_bytes (out, "00000011 43 6d7800 34 0019 3139322e302e322e3100");

  milter_encoder_encode_connect_raw (out, "[192.0.2.1]", 'U', 0, NULL);
  assert_bytes (out, "0000000e 43 5b3139322e302e322e315d00 55");

  milter_encoder_encode_string (out, 'H', "helo");
  assert_bytes (out, "00000006 48 68656c6f00");

  milter_encoder_encode_envelope (out, 'M', "<a@b>", args);
  assert_bytes (out, "0000001e 4d 3c6140623e00 53495a453d31303000 424f44593d384249544d494d4500");

  milter_encoder_encode_envelope (out, 'R', "<c@d>", NULL);
  assert_bytes (out, "00000007 52 3c6340643e00");

  milter_encoder_encode_header (out, 'L', "From", "x");
  assert_bytes (out, "00000008 4c 46726f6d00 7800");

  milter_encoder_encode_header (out, 'L', "X-Empty", "");
  assert_bytes (out, "0000000a 4c 582d456d70747900 00");

  milter_encoder_encode_data (out, 'B', "a\0b", 3);
  assert_bytes (out, "00000004 42 610062");

  milter_encoder_encode_data (out, 'E', NULL, 0);
  assert_bytes (out, "00000001 45");

  milter_encoder_encode_empty (out, 'K');
  assert_bytes (out, "00000001 4b");
}

static void
test_connect_addresses (void)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(GInetAddress) v4 = g_inet_address_new_from_string ("192.0.2.1");
  g_autoptr(GInetAddress) v6 = g_inet_address_new_from_string ("2001:db8::1");
  g_autoptr(GSocketAddress) v4_address = g_inet_socket_address_new (v4, 25);
  g_autoptr(GSocketAddress) v6_address = g_inet_socket_address_new (v6, 587);
  g_autoptr(GSocketAddress) unix_address = g_unix_socket_address_new ("/s");

  milter_encoder_encode_connect (out, "mx", v4_address);
  assert_bytes (out, "00000011 43 6d7800 34 0019 3139322e302e322e3100");

  /* Postfix's plain IPv6 text. */
  milter_encoder_encode_connect (out, "mx", v6_address);
  assert_bytes (out, "00000013 43 6d7800 36 024b 323030313a6462383a3a3100");

  milter_encoder_encode_connect (out, "localhost", unix_address);
  assert_bytes (out, "00000011 43 6c6f63616c686f737400 4c 0000 2f7300");

  milter_encoder_encode_connect (out, "unknown", NULL);
  assert_bytes (out, "0000000a 43 756e6b6e6f776e00 55");
}

static void
test_replies (void)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(MilterOption) option =
    milter_option_new (6, MILTER_ACTION_ADD_HEADERS, MILTER_STEP_NO_CONNECT | MILTER_STEP_SKIP);
  g_autoptr(MilterMacrosRequests) requests = milter_macros_requests_new ();
  const gchar *eom[] = { "i", "auth_type", NULL };
  const gchar *none[] = { NULL };

  milter_encoder_encode_negotiate_reply (out, option, NULL);
  assert_bytes (out, "0000000d 4f 00000006 00000001 00000401");

  /* Stage numbers: EOM is 5, EOH 6; lists follow in stage order. */
  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_END_OF_HEADER, none);
  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_END_OF_MESSAGE, eom);
  milter_encoder_encode_negotiate_reply (out, option, requests);
  assert_bytes (out, "00000024 4f 00000006 00000001 00000401"
                     " 00000005 69207b617574685f747970657d00"
                     " 00000006 00");

  milter_encoder_encode_empty (out, 'c');
  assert_bytes (out, "00000001 63");

  milter_encoder_encode_string (out, 'y', "550 5.7.1 no");
  assert_bytes (out, "0000000e 79 35353020352e372e31206e6f00");

  milter_encoder_encode_indexed_header (out, 'i', 0, "X-A", "b");
  assert_bytes (out, "0000000b 69 00000000 582d4100 6200");

  milter_encoder_encode_indexed_header (out, 'm', 2, "X-A", "");
  assert_bytes (out, "0000000a 6d 00000002 582d4100 00");

  milter_encoder_encode_address_with_parameters (out, '2', "<x@y>", "NOTIFY=NEVER");
  assert_bytes (out, "00000014 32 3c7840793e00 4e4f544946593d4e4556455200");

  milter_encoder_encode_address_with_parameters (out, 'e', "<>", NULL);
  assert_bytes (out, "00000004 65 3c3e00");

  milter_encoder_encode_string (out, 'q', "spam");
  assert_bytes (out, "00000006 71 7370616d00");
}

static void
test_replace_body_chunks (void)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();
  gsize size = 65535 * 2 + 10;
  g_autofree guint8 *body = g_malloc (size);
  gsize offset = 0;
  guint n_packets = 0;

  for (gsize i = 0; i < size; i++)
    body[i] = (guint8) (i * 7);
  milter_encoder_encode_replace_body (out, body, size);

  /* Packets of at most 65535 data bytes that concatenate to the body. */
  for (gsize p = 0; p < out->len; n_packets++)
    {
      guint32 length = GUINT32_FROM_BE (*(guint32 *) (out->data + p));

      g_assert_cmpuint (out->data[p + 4], ==, 'b');
      g_assert_cmpuint (length - 1, <=, 65535);
      g_assert_cmpmem (out->data + p + 5, length - 1, body + offset, length - 1);
      offset += length - 1;
      p += 4 + length;
    }
  g_assert_cmpuint (n_packets, ==, 3);
  g_assert_cmpuint (offset, ==, size);

  g_byte_array_set_size (out, 0);
  milter_encoder_encode_replace_body (out, NULL, 0);
  assert_bytes (out, "00000001 62");
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/encoder/commands", test_commands);
  g_test_add_func ("/encoder/connect-addresses", test_connect_addresses);
  g_test_add_func ("/encoder/replies", test_replies);
  g_test_add_func ("/encoder/replace-body-chunks", test_replace_body_chunks);

  return g_test_run ();
}
