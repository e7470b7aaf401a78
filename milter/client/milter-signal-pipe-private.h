/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <signal.h>

G_BEGIN_DECLS

/* Called in the main loop for each signal received. */
typedef void (*MilterSignalFunc) (int      signum,
                                  gpointer user_data);

/* Several POSIX signals through one pipe that their handler writes to:
 * whoever watches the pipe's descriptor (MilterClient's source) learns of
 * them in the main loop, and no source per signal is needed as with
 * g_unix_signal_source_new(). Replaces the signals' handlers until freed;
 * one pipe per signal at a time. */
typedef struct _MilterSignalPipe MilterSignalPipe;

MilterSignalPipe *milter_signal_pipe_new      (const int        *signals,
                                               guint             n_signals,
                                               GError          **error);
int               milter_signal_pipe_get_fd   (MilterSignalPipe *pipe);
void              milter_signal_pipe_dispatch (MilterSignalPipe *pipe,
                                               MilterSignalFunc  func,
                                               gpointer          user_data);
void              milter_signal_pipe_block    (MilterSignalPipe *pipe,
                                               sigset_t         *old);
void              milter_signal_pipe_free     (MilterSignalPipe *pipe);

G_END_DECLS
