/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "test-util.h"
#include "milter/core/milter-decoder-private.h"
#include "milter/core/milter-encoder-private.h"

G_BEGIN_DECLS

/* How long any wait of these helpers may take before the test fails. */
#define TEST_PEER_TIMEOUT_MS 5000

/* The milter end of a socket pair whose other end a MilterServerContext
 * uses: reads what the context sends with a command decoder, and sends
 * replies built with the encoder. Every wait runs the thread-default main
 * context (so the context under test makes progress) and fails the test
 * after TEST_PEER_TIMEOUT_MS. */
typedef struct
{
  GSocketConnection *connection;
  GSocket *socket;
  MilterDecoder *decoder;
  GByteArray *out;         /* replies to send with test_peer_flush () */
  GByteArray *received;    /* every byte received, in order */
} TestPeer;

/* A peer on the milter's end of @connection. */
TestPeer *test_peer_new (GSocketConnection *connection);
/* A connected pair: *context uses one end (set as its stream), the
 * returned peer the other. */
TestPeer *test_peer_new_pair (MilterServerContext **context);
void test_peer_free (TestPeer *peer);

/* The next packet the context sent, valid until the next call. */
const MilterPacket *test_peer_read (TestPeer *peer);
/* The next packet, described as text, e.g. "D for=C j=mx", "H helo",
 * "M <a@b> SIZE=10", "L Subject=hi", "B 5 bytes", "O version=6
 * action=0x1ff step=0x1fffff", "E". */
gchar *test_peer_read_text (TestPeer *peer);
/* Reads the next packet and compares its description. */
void test_peer_expect (TestPeer    *peer,
                       const gchar *expected);
/* Asserts the context sends nothing within @ms milliseconds. */
void test_peer_expect_nothing (TestPeer *peer,
                               guint     ms);
/* Asserts the context closes the connection (after no further packet). */
void test_peer_expect_eof (TestPeer *peer);

/* Sends and empties peer->out. */
void test_peer_flush (TestPeer *peer);
/* Shorthands that append one reply to peer->out and flush. */
void test_peer_reply (TestPeer *peer,
                      gchar     letter);
void test_peer_reply_string (TestPeer    *peer,
                             gchar        letter,
                             const gchar *string);
void test_peer_reply_negotiate (TestPeer                   *peer,
                                guint32                     version,
                                guint32                     action,
                                guint32                     step,
                                const MilterMacrosRequests *requests);
/* Closes the peer's end. */
void test_peer_close (TestPeer *peer);

/* The result of one asynchronous call of the context. */
typedef struct
{
  gboolean done;
  MilterStatus status;   /* the verdict of a command */
  gboolean ok;           /* the result of a boolean call */
  GError *error;
} TestResult;

void test_result_clear (TestResult *result);
/* A GAsyncReadyCallback for every call of MilterServerContext: calls the
 * matching _finish () and fills the TestResult passed as user data. */
void test_result_callback (GObject      *source,
                           GAsyncResult *async_result,
                           gpointer      user_data);
/* Runs the main context until the call completed. */
void test_result_wait (TestResult *result);

/* Runs a whole negotiation: the context offers @offer (NULL: Postfix's),
 * the peer checks the offer is sent and replies with the given option. */
void test_negotiate (MilterServerContext *context,
                     TestPeer            *peer,
                     MilterOption        *offer,
                     guint32              version,
                     guint32              action,
                     guint32              step);

G_END_DECLS
