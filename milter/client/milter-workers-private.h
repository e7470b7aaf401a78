/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Pre-forked worker processes. The parent forks N workers that share its
 * listening sockets, restarts one that dies (waiting longer each time a
 * worker dies young), and passes signals on. */

typedef struct _MilterWorkers MilterWorkers;

/* Runs in a new worker; its return value is the worker's exit status. */
typedef int (*MilterWorkerFunc) (guint    worker_id,
                                 gpointer user_data);

MilterWorkers *milter_workers_new (guint            n_workers,
                                   MilterWorkerFunc func,
                                   gpointer         user_data,
                                   GMainContext    *context);
void milter_workers_free (MilterWorkers *workers);

gboolean milter_workers_start (MilterWorkers  *workers,
                               GError        **error);
/* Sends @signum to every worker. */
void milter_workers_kill (MilterWorkers *workers,
                          int            signum);
/* Stops restarting workers and sends SIGTERM; @done runs once all exited. */
void milter_workers_stop (MilterWorkers *workers,
                          GSourceFunc    done,
                          gpointer       user_data);
guint milter_workers_get_n_running (MilterWorkers *workers);
/* The PIDs of the running workers (for tests). */
GArray *milter_workers_get_pids (MilterWorkers *workers);

G_END_DECLS
