/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Called in the main loop for each signal received. */
typedef gboolean (*MilterSignalSourceFunc) (int      signum,
                                            gpointer user_data);

/* One source for several POSIX signals, through a pipe its handler writes
 * to: a main-loop iteration then costs one source, not one per signal as
 * with g_unix_signal_source_new(). Replaces the signals' handlers until
 * the source is finalized; one such source per signal at a time. */
GSource *milter_signal_source_new (const int *signals,
                                   guint      n_signals);

G_END_DECLS
