/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-encoder-private.h"

#include <gio/gunixsocketaddress.h>
#include <string.h>

static void
put_be32 (guint8  *p,
          guint32  value)
{
  p[0] = (guint8) (value >> 24);
  p[1] = (guint8) (value >> 16);
  p[2] = (guint8) (value >> 8);
  p[3] = (guint8) value;
}

gsize
milter_encoder_begin (GByteArray *out,
                      gchar       command)
{
  gsize mark = out->len;
  guint8 header[MILTER_PACKET_LENGTH_SIZE + 1] = { 0, 0, 0, 0, (guint8) command };

  g_byte_array_append (out, header, sizeof header);
  return mark;
}

void
milter_encoder_end (GByteArray *out,
                    gsize       mark)
{
  gsize length = out->len - mark - MILTER_PACKET_LENGTH_SIZE;

  g_return_if_fail (length <= G_MAXUINT32);
  put_be32 (out->data + mark, (guint32) length);
}

void
milter_encoder_append_uint32 (GByteArray *out,
                              guint32     value)
{
  guint8 bytes[4];

  put_be32 (bytes, value);
  g_byte_array_append (out, bytes, sizeof bytes);
}

void
milter_encoder_append_string (GByteArray  *out,
                              const gchar *string)
{
  g_byte_array_append (out, (const guint8 *) string, (guint) strlen (string) + 1);
}

void
milter_encoder_encode_empty (GByteArray *out,
                             gchar       command)
{
  milter_encoder_end (out, milter_encoder_begin (out, command));
}

void
milter_encoder_encode_negotiate (GByteArray         *out,
                                 const MilterOption *option)
{
  gsize mark = milter_encoder_begin (out, 'O');

  milter_encoder_append_uint32 (out, milter_option_get_version (option));
  milter_encoder_append_uint32 (out, milter_option_get_action (option));
  milter_encoder_append_uint32 (out, milter_option_get_step (option));
  milter_encoder_end (out, mark);
}

void
milter_encoder_encode_define_macro (GByteArray          *out,
                                    gchar                command,
                                    const gchar * const *names,
                                    const gchar * const *values)
{
  gsize mark = milter_encoder_begin (out, 'D');

  g_byte_array_append (out, (const guint8 *) &command, 1);
  for (guint i = 0; names != NULL && names[i] != NULL; i++)
    {
      milter_encoder_append_string (out, names[i]);
      milter_encoder_append_string (out, values[i]);
    }
  milter_encoder_end (out, mark);
}

void
milter_encoder_encode_connect_raw (GByteArray  *out,
                                   const gchar *host,
                                   gchar        family,
                                   guint16      port,
                                   const gchar *address)
{
  gsize mark = milter_encoder_begin (out, 'C');

  milter_encoder_append_string (out, host);
  g_byte_array_append (out, (const guint8 *) &family, 1);
  if (family != 'U')
    {
      guint8 port_bytes[2] = { (guint8) (port >> 8), (guint8) port };

      g_byte_array_append (out, port_bytes, sizeof port_bytes);
      milter_encoder_append_string (out, address);
    }
  milter_encoder_end (out, mark);
}

void
milter_encoder_encode_connect (GByteArray     *out,
                               const gchar    *host,
                               GSocketAddress *address)
{
  if (G_IS_INET_SOCKET_ADDRESS (address))
    {
      GInetSocketAddress *inet = G_INET_SOCKET_ADDRESS (address);
      GInetAddress *inet_address = g_inet_socket_address_get_address (inet);
      g_autofree gchar *text = g_inet_address_to_string (inet_address);
      gboolean ipv6 = g_inet_address_get_family (inet_address) == G_SOCKET_FAMILY_IPV6;

      milter_encoder_encode_connect_raw (out, host, ipv6 ? '6' : '4',
                                         g_inet_socket_address_get_port (inet), text);
    }
  else if (G_IS_UNIX_SOCKET_ADDRESS (address))
    {
      milter_encoder_encode_connect_raw (out, host, 'L', 0,
                                         g_unix_socket_address_get_path (G_UNIX_SOCKET_ADDRESS (address)));
    }
  else
    {
      milter_encoder_encode_connect_raw (out, host, 'U', 0, NULL);
    }
}

void
milter_encoder_encode_string (GByteArray  *out,
                              gchar        command,
                              const gchar *string)
{
  gsize mark = milter_encoder_begin (out, command);

  milter_encoder_append_string (out, string);
  milter_encoder_end (out, mark);
}

void
milter_encoder_encode_envelope (GByteArray          *out,
                                gchar                command,
                                const gchar         *address,
                                const gchar * const *args)
{
  gsize mark = milter_encoder_begin (out, command);

  milter_encoder_append_string (out, address);
  for (guint i = 0; args != NULL && args[i] != NULL; i++)
    milter_encoder_append_string (out, args[i]);
  milter_encoder_end (out, mark);
}

void
milter_encoder_encode_header (GByteArray  *out,
                              gchar        command,
                              const gchar *name,
                              const gchar *value)
{
  gsize mark = milter_encoder_begin (out, command);

  milter_encoder_append_string (out, name);
  milter_encoder_append_string (out, value);
  milter_encoder_end (out, mark);
}

void
milter_encoder_encode_data (GByteArray   *out,
                            gchar         command,
                            gconstpointer data,
                            gsize         size)
{
  gsize mark = milter_encoder_begin (out, command);

  if (size > 0)
    g_byte_array_append (out, data, (guint) size);
  milter_encoder_end (out, mark);
}

static void
append_symbol_list (GByteArray          *out,
                    guint32              stage,
                    const gchar * const *symbols)
{
  milter_encoder_append_uint32 (out, stage);
  for (guint i = 0; symbols[i] != NULL; i++)
    {
      if (i > 0)
        g_byte_array_append (out, (const guint8 *) " ", 1);
      g_byte_array_append (out, (const guint8 *) symbols[i], (guint) strlen (symbols[i]));
    }
  g_byte_array_append (out, (const guint8 *) "", 1);
}

void
milter_encoder_encode_negotiate_reply (GByteArray                 *out,
                                       const MilterOption         *option,
                                       const MilterMacrosRequests *requests)
{
  gsize mark = milter_encoder_begin (out, 'O');

  milter_encoder_append_uint32 (out, milter_option_get_version (option));
  milter_encoder_append_uint32 (out, milter_option_get_action (option));
  milter_encoder_append_uint32 (out, milter_option_get_step (option));
  for (guint stage = 0; requests != NULL && stage < MILTER_MACRO_STAGE_COUNT; stage++)
    {
      const gchar * const *symbols = milter_macros_requests_get_symbols (requests, stage);

      if (symbols != NULL)
        append_symbol_list (out, stage, symbols);
    }
  milter_encoder_end (out, mark);
}

void
milter_encoder_encode_indexed_header (GByteArray  *out,
                                      gchar        command,
                                      guint32      index,
                                      const gchar *name,
                                      const gchar *value)
{
  gsize mark = milter_encoder_begin (out, command);

  milter_encoder_append_uint32 (out, index);
  milter_encoder_append_string (out, name);
  milter_encoder_append_string (out, value);
  milter_encoder_end (out, mark);
}

void
milter_encoder_encode_address_with_parameters (GByteArray  *out,
                                               gchar        command,
                                               const gchar *address,
                                               const gchar *parameters)
{
  gsize mark = milter_encoder_begin (out, command);

  milter_encoder_append_string (out, address);
  if (parameters != NULL)
    milter_encoder_append_string (out, parameters);
  milter_encoder_end (out, mark);
}

void
milter_encoder_encode_replace_body (GByteArray   *out,
                                    gconstpointer data,
                                    gsize         size)
{
  const guint8 *p = data;

  /* An empty replacement is one empty packet: the body becomes empty. */
  do
    {
      gsize n = MIN (size, MILTER_CHUNK_SIZE);

      milter_encoder_encode_data (out, 'b', p, n);
      p += n;
      size -= n;
    }
  while (size > 0);
}
