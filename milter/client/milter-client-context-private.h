/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "milter-client-context.h"
#include "milter-parking-lot-private.h"

G_BEGIN_DECLS

/* For contexts driven with milter_client_context_feed() and no stream:
 * takes the replies written so far. Tests and fuzzers use it. */
GBytes *milter_client_context_take_output (MilterClientContext *context);

/* Ends the session as if the MTA had gone: abort (if a message is open),
 * finished, close. Used by MilterClient when it shuts down. */
void milter_client_context_shutdown (MilterClientContext *context);

/* Before the context starts: the main context it runs in (a client's
 * sessions run in the client's, whatever thread made them). */
void milter_client_context_set_main_context (MilterClientContext *context,
                                             GMainContext        *main_context);

/* Like milter_client_context_start() for a connected socket descriptor
 * the context then owns; its #GIOStream is only made if
 * milter_client_context_get_stream() asks for it. MilterClient uses it for
 * the connections it accepts: a GSocket costs several system calls. */
void milter_client_context_start_socket (MilterClientContext *context,
                                         gint                 fd);

/* Bytes of replies waiting to be written (tests check it stays bounded). */
gsize milter_client_context_get_output_size (MilterClientContext *context);

/* Called at the end of each session, after the finished signal and the
 * private data are done with: how MilterClient keeps count of its
 * sessions without connecting a handler to each context. */
typedef void (*MilterClientContextFinishedFunc) (MilterClientContext *context,
                                                 gpointer             user_data);
void milter_client_context_set_finished_func (MilterClientContext            *context,
                                              MilterClientContextFinishedFunc func,
                                              gpointer                        user_data);

/* MilterClient's parking lot (see milter-parking-lot-private.h): after
 * @delay µs with nothing to do but wait for the MTA, the connection's
 * descriptor waits there instead of in the context's own source. NULL
 * (the default) parks nothing; changing it takes a parked descriptor back
 * first. */
void     milter_client_context_set_parking_lot (MilterClientContext *context,
                                                MilterParkingLot    *lot,
                                                gint64               delay);
/* The parking lot's dispatch function: input came for a parked context. */
void     milter_client_context_wake_parked     (gpointer             context);
gboolean milter_client_context_is_parked       (MilterClientContext *context);

G_END_DECLS
