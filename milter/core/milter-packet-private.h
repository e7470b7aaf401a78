/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "milter-enums.h"
#include "milter-macros-requests.h"

G_BEGIN_DECLS

/* libmilter's MILTER_CHUNK_SIZE: the largest body chunk either side sends. */
#define MILTER_CHUNK_SIZE 65535

/* The 4-byte length field. */
#define MILTER_PACKET_LENGTH_SIZE 4

/* A decoded packet. Every pointer points into the decoder's buffer and
 * stays valid until the next call into the decoder; strings are
 * NUL-terminated in place. Which member of the union is set depends on
 * the command letter. */
typedef struct
{
  gchar command;
  const guint8 *data;  /* the payload after the command letter */
  gsize size;

  union
  {
    /* 'O' (both directions). symbols: the macro lists of a reply. */
    struct
    {
      guint32 version;
      guint32 action;
      guint32 step;
      const guint8 *symbols;
      gsize symbols_size;
    } negotiate;

    /* 'D': pairs of strings, n_pairs of them. */
    struct
    {
      gchar command;
      const gchar *pairs;
      gsize pairs_size;
      guint n_pairs;
    } macro;

    /* 'C'. address is owned by the decoder, like the rest. */
    struct
    {
      const gchar *host;
      gchar family;
      guint16 port;
      const gchar *address_text;  /* NULL for family 'U' */
      GSocketAddress *address;    /* NULL for 'U' and an empty 'L' path */
    } connect;

    /* 'H', 'U', 'y', 'q', '+', '-': one string. */
    const gchar *string;

    /* 'M', 'R', 'e', '2': the address, then n_args further strings
     * (ESMTP parameters) back to back from args. */
    struct
    {
      const gchar *address;
      const gchar *args;
      gsize args_size;
      guint n_args;
    } envelope;

    /* 'L', 'h', 'i', 'm'. index is 0 for 'L' and 'h'. */
    struct
    {
      guint32 index;
      const gchar *name;
      const gchar *value;
    } header;
  };
} MilterPacket;

/* Walks NUL-terminated strings back to back in [*cursor, end): returns
 * the next one and advances, or NULL at the end. Only for regions the
 * decoder validated. */
const gchar *milter_packet_next_string (const gchar **cursor,
                                        const gchar  *end);

/* The macro lists of a negotiation reply, or NULL if it has none. */
MilterMacrosRequests *milter_packet_get_macros_requests (const MilterPacket *packet);

G_END_DECLS
