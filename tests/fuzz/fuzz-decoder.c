/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter/core/milter-decoder-private.h"

/* Input: one control byte, then the stream. Bit 0 of the control byte
 * picks the direction (commands or replies), the rest the size of the
 * pieces the stream is fed in, so splits are explored too. Every packet
 * is walked the way its consumer would. */

int LLVMFuzzerTestOneInput (const guint8 *data,
                            size_t        size);

static void
walk_packet (MilterDecoder      *decoder,
             const MilterPacket *packet)
{
  switch (packet->command)
    {
    case 'D':
      {
        const gchar *cursor = packet->macro.pairs;
        const gchar *end = cursor + packet->macro.pairs_size;

        while (milter_packet_next_string (&cursor, end) != NULL)
          ;
        break;
      }
    case 'M': case 'R': case 'e': case '2':
      {
        const gchar *cursor = packet->envelope.args;
        const gchar *end = cursor + packet->envelope.args_size;

        while (milter_packet_next_string (&cursor, end) != NULL)
          ;
        break;
      }
    case 'O':
      {
        MilterMacrosRequests *requests = milter_packet_get_macros_requests (packet);

        milter_macros_requests_free (requests);
        break;
      }
    case 'B': case 'E': case 'b':
      g_bytes_unref (milter_decoder_get_payload_bytes (decoder));
      break;
    default:
      break;
    }
}

int
LLVMFuzzerTestOneInput (const guint8 *data,
                        size_t        size)
{
  MilterDecoder *decoder;
  gsize piece;

  if (size < 1)
    return 0;
  decoder = milter_decoder_new ((data[0] & 1) ? MILTER_DECODER_REPLIES : MILTER_DECODER_COMMANDS);
  piece = (data[0] >> 1) + 1;
  milter_decoder_set_max_packet_length (decoder, 64 * 1024);
  data++;
  size--;

  while (size > 0)
    {
      gsize n = MIN (piece, size);
      const MilterPacket *packet;
      GError *error = NULL;

      milter_decoder_feed (decoder, data, n);
      data += n;
      size -= n;
      while ((packet = milter_decoder_next (decoder, &error)) != NULL)
        walk_packet (decoder, packet);
      if (error != NULL)
        {
          g_error_free (error);
          break;
        }
      milter_decoder_release_buffer (decoder);
    }
  milter_decoder_free (decoder);
  return 0;
}
