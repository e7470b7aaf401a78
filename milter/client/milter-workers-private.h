/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Worker processes. The parent starts N workers that serve from its
 * listening sockets, restarts one that dies (waiting longer each time a
 * worker dies young), and passes signals on.
 *
 * A worker is the program itself, started again with the same arguments
 * (/proc/self/exe and /proc/self/cmdline) and the listening sockets as
 * descriptors 3 and up: a forked copy of a GLib program would lack the
 * threads GLib started in the parent (signal handling, the GTask pool)
 * while believing they exist. milter_client_run() in the new process
 * finds the sockets with milter_workers_take_sockets(). */

typedef struct _MilterWorkers MilterWorkers;

MilterWorkers *milter_workers_new (guint         n_workers,
                                   GPtrArray    *sockets,
                                   const gchar  *directory,
                                   GMainContext *context);
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

/* In a worker: its number (1..n) and the sockets it inherited; 0 and no
 * sockets in any other process. The environment variables are unset so
 * the worker's own children do not take them for theirs. A worker starts
 * with SIGTERM, SIGINT and SIGHUP blocked, so that they wait for its
 * handlers: install those first; this unblocks the signals. */
guint milter_workers_take_sockets (GList  **sockets,
                                   GError **error);

G_END_DECLS
