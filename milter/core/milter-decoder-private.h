/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "milter-packet-private.h"

G_BEGIN_DECLS

/* The default limit on a packet's length field (command byte + payload):
 * 1 MiB, so the 1M data-size extension and Postfix's large header packets
 * fit. */
#define MILTER_DECODER_DEFAULT_MAX_PACKET_LENGTH (1024 * 1024)
#define MILTER_DECODER_DEFAULT_MAX_MACROS 256
/* Read buffers start this many bytes into a page (see milter-decoder.c). */
#define MILTER_DECODER_BUFFER_PAGE_OFFSET 256

typedef enum
{
  MILTER_DECODER_COMMANDS,  /* MTA → milter: what a filter reads */
  MILTER_DECODER_REPLIES,   /* milter → MTA: what an MTA reads */
} MilterDecoderDirection;

typedef struct _MilterDecoder MilterDecoder;

MilterDecoder *milter_decoder_new (MilterDecoderDirection direction);

/* "envelope-from (M)", "reject (r)": a packet's name for messages, or NULL
 * for a letter that is no packet in @direction. */
const gchar *milter_decoder_command_name (MilterDecoderDirection direction,
                                          gchar                  command);
void milter_decoder_free (MilterDecoder *decoder);

void milter_decoder_set_max_packet_length (MilterDecoder *decoder,
                                           gsize          length);
gsize milter_decoder_get_max_packet_length (MilterDecoder *decoder);
void milter_decoder_set_max_macros (MilterDecoder *decoder,
                                    guint          n_macros);

/* Zero-copy input: read into the returned area (at least one byte), then
 * commit what was read. */
guint8 *milter_decoder_get_write_area (MilterDecoder *decoder,
                                       gsize         *size);
void milter_decoder_commit (MilterDecoder *decoder,
                            gsize          size);

/* Copying input: appends all of data. */
void milter_decoder_feed (MilterDecoder *decoder,
                          const guint8  *data,
                          gsize          size);

/* The next complete packet, or NULL when more input is needed (error
 * unset) or the input is malformed (error set; the decoder then stays
 * failed). The packet is valid until the next call into the decoder. */
const MilterPacket *milter_decoder_next (MilterDecoder  *decoder,
                                         GError        **error);

/* A zero-copy GBytes of the payload of the packet last returned. */
GBytes *milter_decoder_get_payload_bytes (MilterDecoder *decoder);

/* Bytes received but not yet returned as packets. */
gsize milter_decoder_get_pending_size (MilterDecoder *decoder);

/* Drops the input buffer when it holds nothing, so an idle connection
 * costs no buffer memory. */
void milter_decoder_release_buffer (MilterDecoder *decoder);

G_END_DECLS
