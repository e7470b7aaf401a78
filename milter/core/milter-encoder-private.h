/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "milter-packet-private.h"
#include "milter-option.h"

G_BEGIN_DECLS

/* The packet encoder for both directions. Every function appends one or
 * more complete packets to @out, so replies of one batch can be written
 * with one system call. */

/* Generic framing: begin returns a mark that end uses to fill in the
 * length once the payload has been appended. */
gsize milter_encoder_begin (GByteArray *out,
                            gchar       command);
void milter_encoder_end (GByteArray *out,
                         gsize       mark);
void milter_encoder_append_uint32 (GByteArray *out,
                                   guint32     value);
void milter_encoder_append_string (GByteArray  *out,
                                   const gchar *string);

/* An empty packet: T N A Q K from the MTA; c a r t d s p 4 from a milter. */
void milter_encoder_encode_empty (GByteArray *out,
                                  gchar       command);

/* MTA → milter */
void milter_encoder_encode_negotiate (GByteArray         *out,
                                      const MilterOption *option);
void milter_encoder_encode_define_macro (GByteArray          *out,
                                         gchar                command,
                                         const gchar * const *names,
                                         const gchar * const *values);
void milter_encoder_encode_connect (GByteArray     *out,
                                    const gchar    *host,
                                    GSocketAddress *address);
void milter_encoder_encode_connect_raw (GByteArray  *out,
                                        const gchar *host,
                                        gchar        family,
                                        guint16      port,
                                        const gchar *address);
void milter_encoder_encode_string (GByteArray  *out,
                                   gchar        command,
                                   const gchar *string);
void milter_encoder_encode_envelope (GByteArray          *out,
                                     gchar                command,
                                     const gchar         *address,
                                     const gchar * const *args);
/* 'L' from the MTA, 'h' from a milter. */
void milter_encoder_encode_header (GByteArray  *out,
                                   gchar        command,
                                   const gchar *name,
                                   const gchar *value);
void milter_encoder_encode_data (GByteArray *out,
                                 gchar       command,
                                 gconstpointer data,
                                 gsize       size);

/* milter → MTA */
void milter_encoder_encode_negotiate_reply (GByteArray                 *out,
                                            const MilterOption         *option,
                                            const MilterMacrosRequests *requests);
void milter_encoder_encode_indexed_header (GByteArray  *out,
                                           gchar        command,
                                           guint32      index,
                                           const gchar *name,
                                           const gchar *value);
void milter_encoder_encode_address_with_parameters (GByteArray  *out,
                                                    gchar        command,
                                                    const gchar *address,
                                                    const gchar *parameters);
/* Splits @data into packets of at most MILTER_CHUNK_SIZE bytes. */
void milter_encoder_encode_replace_body (GByteArray   *out,
                                         gconstpointer data,
                                         gsize         size);

G_END_DECLS
