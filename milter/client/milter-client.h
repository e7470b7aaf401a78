/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MILTER_INSIDE) && !defined (MILTER_COMPILATION)
# error "Only <milter/milter.h> can be included directly."
#endif

#include <gio/gio.h>
#include <milter/core/milter-version-macros.h>
#include <milter/client/milter-client-context.h>

G_BEGIN_DECLS

/**
 * MILTER_TYPE_CLIENT:
 *
 * The #GType of #MilterClient.
 *
 * Since: 1.0
 */
#define MILTER_TYPE_CLIENT (milter_client_get_type ())

MILTER_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (MilterClient, milter_client, MILTER, CLIENT, GObject)

/**
 * MILTER_CLIENT_ERROR:
 *
 * The error domain of #MilterClient.
 *
 * Since: 1.0
 */
#define MILTER_CLIENT_ERROR (milter_client_error_quark ())

/**
 * MilterClientError:
 * @MILTER_CLIENT_ERROR_NOT_A_SOCKET: a file that is not a socket is in the
 *   way of a unix socket; it is never removed
 * @MILTER_CLIENT_ERROR_ADDRESS_IN_USE: another process listens on the
 *   address
 * @MILTER_CLIENT_ERROR_LISTEN: creating, binding or setting up a listening
 *   socket, or what serving needs (the pipe for signals), failed
 * @MILTER_CLIENT_ERROR_STATE: the call does not fit the client's state
 *   (for example listening twice)
 * @MILTER_CLIENT_ERROR_SOCKET_ACTIVATION: the sockets passed by systemd
 *   (`LISTEN_FDS`) cannot be used: neither listening nor connected stream
 *   sockets, or a connection (`Accept=yes`) given to workers
 * @MILTER_CLIENT_ERROR_PRIVILEGES: dropping privileges (`--user`,
 *   `--group`) failed
 * @MILTER_CLIENT_ERROR_DAEMON: becoming a daemon or writing the PID file
 *   failed
 * @MILTER_CLIENT_ERROR_WORKERS: starting worker processes failed
 *
 * Errors of a #MilterClient.
 *
 * Since: 1.0
 */
typedef enum {
  MILTER_CLIENT_ERROR_NOT_A_SOCKET,
  MILTER_CLIENT_ERROR_ADDRESS_IN_USE,
  MILTER_CLIENT_ERROR_LISTEN,
  MILTER_CLIENT_ERROR_STATE,
  MILTER_CLIENT_ERROR_SOCKET_ACTIVATION,
  MILTER_CLIENT_ERROR_PRIVILEGES,
  MILTER_CLIENT_ERROR_DAEMON,
  MILTER_CLIENT_ERROR_WORKERS,
} MilterClientError;

/**
 * MILTER_CLIENT_DEFAULT_CONNECTION_SPEC:
 *
 * Where a client listens when given no spec and no socket activation:
 * port 10025 on the loopback address only.
 *
 * Since: 1.0
 */
#define MILTER_CLIENT_DEFAULT_CONNECTION_SPEC "inet:10025@127.0.0.1"

MILTER_AVAILABLE_IN_ALL
GQuark milter_client_error_quark (void);

MILTER_AVAILABLE_IN_ALL
MilterClient *milter_client_new (void);

MILTER_AVAILABLE_IN_ALL
gboolean milter_client_set_connection_spec (MilterClient  *client,
                                            const gchar   *spec,
                                            GError       **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_add_connection_spec (MilterClient  *client,
                                            const gchar   *spec,
                                            GError       **error);
MILTER_AVAILABLE_IN_ALL
const gchar *milter_client_get_connection_spec (MilterClient *client);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_add_listening_socket (MilterClient  *client,
                                             GSocket       *socket,
                                             GError       **error);

MILTER_AVAILABLE_IN_ALL
gboolean milter_client_listen (MilterClient  *client,
                               GError       **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_run (MilterClient  *client,
                            GError       **error);
MILTER_AVAILABLE_IN_ALL
void milter_client_shutdown (MilterClient *client);
MILTER_AVAILABLE_IN_ALL
MilterClientContext *milter_client_handle_stream (MilterClient  *client,
                                                  GIOStream     *stream,
                                                  GError       **error);

MILTER_AVAILABLE_IN_ALL
GList *milter_client_get_listen_addresses (MilterClient *client);
MILTER_AVAILABLE_IN_ALL
guint milter_client_get_n_processing_sessions (MilterClient *client);
MILTER_AVAILABLE_IN_ALL
guint milter_client_get_worker_id (MilterClient *client);

MILTER_AVAILABLE_IN_ALL
GOptionGroup *milter_client_get_option_group (MilterClient *client);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_apply_options (MilterClient  *client,
                                      GError       **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_parse_command_line (MilterClient   *client,
                                           gchar        ***argv,
                                           GError        **error);

G_END_DECLS
