/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <milter/milter.h>

G_BEGIN_DECLS

/* Plays the MTA against a filter in the same process, over a socket: sends
 * commands built with the encoder and reads the filter's replies with the
 * decoder. Every wait fails the test after a timeout. */

typedef struct _MtaHarness MtaHarness;

/* Takes our end of a connected socket pair. */
MtaHarness *mta_harness_new (GSocket *socket);
void mta_harness_free (MtaHarness *mta);

/* A connected pair: *filter_end goes to the filter under test. */
MtaHarness *mta_harness_new_pair (GIOStream **filter_end);

/* Sends raw bytes (the packets of a GByteArray) and empties it. */
void mta_harness_send (MtaHarness *mta,
                       GByteArray *packets);
/* Sends what the socket takes now, without waiting: the bytes sent, or -1
 * if the connection is gone. The packets stay in @packets. */
gssize mta_harness_try_send (MtaHarness *mta,
                             GByteArray *packets);
void mta_harness_send_hex (MtaHarness  *mta,
                           const gchar *hex);

/* Short forms for the commands (each preceded by no macros). */
void mta_harness_negotiate (MtaHarness *mta,
                            guint32     version,
                            guint32     action,
                            guint32     step);
void mta_harness_macro (MtaHarness  *mta,
                        gchar        command,
                        const gchar *name,
                        const gchar *value);
void mta_harness_connect (MtaHarness  *mta,
                          const gchar *host,
                          const gchar *address);
void mta_harness_helo (MtaHarness  *mta,
                       const gchar *fqdn);
void mta_harness_mail (MtaHarness  *mta,
                       const gchar *from);
void mta_harness_rcpt (MtaHarness  *mta,
                       const gchar *to);
void mta_harness_data (MtaHarness *mta);
void mta_harness_header (MtaHarness  *mta,
                         const gchar *name,
                         const gchar *value);
void mta_harness_end_of_header (MtaHarness *mta);
void mta_harness_body (MtaHarness  *mta,
                       const void  *data,
                       gsize        size);
void mta_harness_end_of_message (MtaHarness *mta);
void mta_harness_unknown (MtaHarness  *mta,
                          const gchar *command);
void mta_harness_simple (MtaHarness *mta,
                         gchar       command);

/* The next reply as text: the letter, then its fields ("c", "y 550 no",
 * "h X-A: b", "O 6 0x1ff 0x...", "b 4 74657374"). Fails after 5 s. */
gchar *mta_harness_read (MtaHarness *mta);
/* Reads the next reply and compares it with @expected. */
void mta_harness_expect (MtaHarness  *mta,
                         const gchar *expected);
/* Runs the main loop for @ms and checks nothing arrived. */
void mta_harness_expect_silence (MtaHarness *mta,
                                 guint       ms);
/* Waits until the filter closes its end (reads EOF); pending replies
 * must have been read. */
void mta_harness_expect_closed (MtaHarness *mta);
/* Closes our end. */
void mta_harness_close (MtaHarness *mta);
/* Shuts down our sending side only. */
void mta_harness_shutdown_write (MtaHarness *mta);

/* Describes one decoded reply packet (shared with tests that decode
 * replies themselves). */
gchar *mta_harness_describe_reply (const void *packet);

G_END_DECLS
