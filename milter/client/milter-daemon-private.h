/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "milter-signal-pipe-private.h"

G_BEGIN_DECLS

/* Process-level helpers for running a milter as a service. */

/* Opens /dev/null on standard input, output and error if they are closed,
 * before the process opens anything else: a socket or an eventfd given
 * one of those numbers would receive log messages, or be replaced by
 * /dev/null when a daemon detaches. */
void milter_daemon_ensure_standard_fds (void);

/* Forks; the child continues in a new session with its standard streams
 * on /dev/null, and must call milter_daemon_report_ready() with
 * *@ready_fd once it is set up. The parent frees its copy of
 * @signal_pipe, so that signals act on it as before milter_client_run(),
 * waits for that and exits: with status 0, or with 1 after printing the
 * child's error (or its death). */
gboolean milter_daemon_detach (MilterSignalPipe  *signal_pipe,
                               gint              *ready_fd,
                               GError           **error);
void milter_daemon_report_ready (gint          ready_fd,
                                 const GError *error);

/* Sends the log messages milter_daemon_write_log() gets to syslog
 * (facility mail) from now on, instead of standard error. */
void milter_daemon_log_to_syslog (void);
GLogWriterOutput milter_daemon_write_log (GLogLevelFlags   level,
                                          const GLogField *fields,
                                          gsize            n_fields,
                                          gpointer         user_data);

/* Writes the PID through a temporary file and a rename, so readers never
 * see a partial file. */
gboolean milter_daemon_write_pid_file (const gchar  *path,
                                       GError      **error);
void milter_daemon_remove_pid_file (const gchar *path);

/* Switches to @user (and its primary group, or @group) for good, and
 * checks that root cannot be regained. Either may be NULL. */
gboolean milter_daemon_drop_privileges (const gchar  *user,
                                        const gchar  *group,
                                        GError      **error);

/* Looks up a group by name or number. */
gboolean milter_daemon_lookup_group (const gchar  *group,
                                     gid_t        *gid,
                                     GError      **error);

/* The sockets systemd passed (LISTEN_PID, LISTEN_FDS, from fd 3), or an
 * empty list without socket activation. The variables are then unset so
 * children do not take them for theirs. */
GList *milter_daemon_take_activation_sockets (GError **error);

G_END_DECLS
