/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-client.h"
#include "milter-client-context-private.h"
#include "milter-client-private.h"
#include "milter-daemon-private.h"
#include "milter-signal-pipe-private.h"
#include "milter-workers-private.h"
#include "milter/milter-enum-types.h"
#include "milter/core/milter-connection-spec.h"
#include "milter/core/milter-decoder-private.h"
#include "milter/core/milter-errors-private.h"
#include "milter/core/milter-property-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <gio/gunixsocketaddress.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/**
 * SECTION:milter-client
 * @title: MilterClient
 * @short_description: Listens for MTAs and serves each connection
 * @include: milter/milter.h
 * @see_also: #MilterClientContext
 *
 * A #MilterClient listens on one or more connection specs (see
 * milter_connection_spec_parse()) and creates a #MilterClientContext for
 * each MTA connection, announced by #MilterClient::connection-established
 * before anything of that connection is handled: connect the context's
 * signals there.
 *
 * milter_client_listen() starts serving from the thread-default
 * #GMainContext and returns, for applications with their own main loop;
 * milter_client_run() is the blocking convenience for a filter program.
 * It also turns SIGTERM and SIGINT into a graceful
 * milter_client_shutdown(), and with #MilterClient:n-workers starts
 * worker processes (the program itself, run again) that share the
 * listening sockets.
 *
 * Programs add milter_client_get_option_group() to their #GOptionContext
 * to get the usual options: `--connection-spec`, `--timeout`,
 * `--n-workers`, `--max-connections`, `--unix-socket-mode`,
 * `--unix-socket-group`, `--user`, `--group`, `--daemon`, `--pid-file`,
 * `--log-level`.
 *
 * |[<!-- language="C" -->
 * static MilterStatus
 * on_helo (MilterClientContext *context, const gchar *fqdn, gpointer data)
 * {
 *   return g_str_has_suffix (fqdn, ".invalid") ? MILTER_STATUS_REJECT
 *                                              : MILTER_STATUS_CONTINUE;
 * }
 *
 * static void
 * on_connection (MilterClient *client, MilterClientContext *context, gpointer data)
 * {
 *   g_signal_connect (context, "helo", G_CALLBACK (on_helo), NULL);
 * }
 *
 * int
 * main (int argc, char **argv)
 * {
 *   g_autoptr(MilterClient) client = milter_client_new ();
 *   g_autoptr(GError) error = NULL;
 *
 *   g_signal_connect (client, "connection-established", G_CALLBACK (on_connection), NULL);
 *   if (!milter_client_set_connection_spec (client, "unix:/run/helo-check.sock", &error) ||
 *       !milter_client_run (client, &error))
 *     g_error ("%s", error->message);
 *   return 0;
 * }
 * ]|
 */

/* After EMFILE/ENFILE on accept, wait this long before accepting again. */
#define ACCEPT_BACKOFF_MS 250
/* While descriptors stay short, each freed one ends a back-off: say so
 * once a minute at most, not four times a second. */
#define BACKOFF_LOG_INTERVAL (60 * G_USEC_PER_SEC)
/* Connections taken per wake-up, so one busy socket cannot starve others. */
#define ACCEPT_BATCH 16
#define DEFAULT_GRACE_PERIOD 30
/* What the integer options hold until given: any negative number is invalid. */
#define OPTION_NOT_GIVEN G_MININT
/* A session idle this long (µs) waits in the parking lot: long enough
 * that busy ones, a round trip every few milliseconds, never go there. */
#define DEFAULT_PARK_DELAY G_USEC_PER_SEC
#define DEFAULT_UNIX_SOCKET_MODE 0660

typedef struct
{
  MilterClient *client;
  GSocket *socket;
  GSocketAddress *address;  /* effective */
  gboolean is_inet;         /* TCP: no Nagle delay for its connections */
  gchar *unix_path;         /* a socket file we created, to remove */
  dev_t unix_device;        /* which file it is: another instance's */
  ino_t unix_inode;         /* socket at the same path stays */
  gpointer tag;             /* in the client's source, while accepting */
} Listener;

/**
 * MilterClient:
 *
 * Listens for MTAs and serves each connection. All fields are private.
 *
 * Since: 1.0
 */
struct _MilterClient
{
  GObject parent_instance;

  GMainContext *main_context;
  GSource *source;             /* listening sockets and signal pipe */
  MilterSignalPipe *signal_pipe;  /* while milter_client_run() runs */
  gpointer signal_tag;
  MilterParkingLot *parking_lot;  /* idle sessions, watched by source once serving */
  gint64 park_delay;           /* µs of idleness before a session parks */
  GPtrArray *specs;            /* of gchar*, as given */
  GPtrArray *addresses;        /* of GSocketAddress, parsed specs */
  GPtrArray *extra_sockets;    /* of GSocket, added or inherited */
  GPtrArray *inherited_connections;  /* of GSocket: systemd's Accept=yes */
  gboolean stop_after_sessions;  /* nothing to listen on: done when they end */
  GPtrArray *listeners;        /* of Listener* */
  GPtrArray *sessions;         /* of MilterClientContext*, owned */
  gboolean listening;
  gboolean accept_paused;      /* at max-connections */
  gboolean accept_backoff;     /* after EMFILE */
  gint64 backoff_logged_at;  /* monotonic µs; 0: never */
  guint backoff_id;
  gboolean shutting_down;
  guint grace_id;
  GPtrArray *draining;         /* the sessions grace_id ends; owned, or NULL */
  GMainLoop *loop;             /* while milter_client_run() runs */
  MilterWorkers *workers;
  guint worker_id;

  /* Context defaults */
  guint timeout;
  guint packet_buffer_size;
  gboolean use_bytes;
  GType context_type;
  guint max_packet_length;
  guint max_headers;
  guint max_message_result_size;
  guint max_recipients;
  guint max_macros;
  MilterStatus fallback_status;

  /* Service settings */
  guint max_connections;
  guint n_workers;
  guint unix_socket_mode;
  gchar *unix_socket_group;
  gboolean remove_unix_socket_on_close;
  guint shutdown_grace_period;
  gint listen_backlog;
  gchar *user;
  gchar *group;
  gboolean daemon;
  gchar *pid_file;
  gchar *start_directory;   /* the workers start there, also under a daemon */
  gboolean pid_file_written;

  /* Option parsing */
  gchar **option_specs;
  gchar *option_unix_socket_mode;
  gchar *option_log_level;
  gchar *option_unix_socket_group;
  gchar *option_user;
  gchar *option_group;
  gchar *option_pid_file;
  gboolean option_daemon;
  gint option_timeout;
  gint option_n_workers;
  gint option_max_connections;
  gint option_shutdown_grace_period;
};

enum {
  PROP_0,
  PROP_CONNECTION_SPEC,
  PROP_TIMEOUT,
  PROP_PACKET_BUFFER_SIZE,
  PROP_USE_BYTES,
  PROP_MAX_PACKET_LENGTH,
  PROP_MAX_HEADERS,
  PROP_MAX_MESSAGE_RESULT_SIZE,
  PROP_MAX_RECIPIENTS,
  PROP_MAX_MACROS,
  PROP_MAX_CONNECTIONS,
  PROP_N_WORKERS,
  PROP_WORKER_ID,
  PROP_UNIX_SOCKET_MODE,
  PROP_UNIX_SOCKET_GROUP,
  PROP_REMOVE_UNIX_SOCKET_ON_CLOSE,
  PROP_SHUTDOWN_GRACE_PERIOD,
  PROP_LISTEN_BACKLOG,
  PROP_USER,
  PROP_GROUP,
  PROP_DAEMON,
  PROP_PID_FILE,
  PROP_N_PROCESSING_SESSIONS,
  PROP_FALLBACK_STATUS,
  PROP_CONTEXT_TYPE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_CONNECTION_ESTABLISHED,
  SIGNAL_LISTEN_STARTED,
  SIGNAL_ERROR,
  SIGNAL_RELOAD,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (MilterClient, milter_client, G_TYPE_OBJECT)

/**
 * milter_client_error_quark:
 *
 * The quark of %MILTER_CLIENT_ERROR.
 *
 * Returns: the error domain quark
 *
 * Since: 1.0
 */
G_DEFINE_QUARK (milter-client-error-quark, milter_client_error)

static void update_accepting (MilterClient *self);
static void on_incoming (Listener *listener);
static void on_signal (int      signum,
                       gpointer user_data);

/* ---- the client's source ------------------------------------------------ */

/* One source watches every listening socket and, while milter_client_run()
 * runs, the signal pipe: every source costs each main-loop iteration some
 * work, ready or not, and the sessions' sources are many already. */
typedef struct
{
  GSource parent;
  MilterClient *client;  /* not a reference: the client owns the source */
} ClientSource;

static gboolean
client_source_dispatch (GSource     *source,
                        GSourceFunc  callback,
                        gpointer     user_data)
{
  MilterClient *self = g_object_ref (((ClientSource *) source)->client);

  if (self->signal_tag != NULL && g_source_query_unix_fd (source, self->signal_tag) != 0)
    milter_signal_pipe_dispatch (self->signal_pipe, on_signal, self);
  if (self->parking_lot != NULL)
    milter_parking_lot_dispatch (self->parking_lot, g_source_get_time (source),
                                 milter_client_context_wake_parked);
  /* Handlers that run from here may stop listening: look again each time. */
  for (guint i = 0; i < self->listeners->len; i++)
    {
      Listener *listener = g_ptr_array_index (self->listeners, i);

      if (listener->tag != NULL && g_source_query_unix_fd (source, listener->tag) != 0)
        on_incoming (listener);
    }
  g_object_unref (self);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs client_source_funcs = {
  NULL, NULL, client_source_dispatch, NULL, NULL, NULL
};

static GSource *
ensure_source (MilterClient *self)
{
  if (self->source == NULL)
    {
      self->source = g_source_new (&client_source_funcs, sizeof (ClientSource));
      ((ClientSource *) self->source)->client = self;
      g_source_set_static_name (self->source, "MilterClient");
      /* GLib takes the descriptors of a source that cannot recurse out of
       * the poll set while it dispatches, and wakes the context up twice
       * to do so. A connection-established handler that runs a main loop
       * may dispatch it again: that only accepts more. */
      g_source_set_can_recurse (self->source, TRUE);
      g_source_attach (self->source, self->main_context);
    }
  return self->source;
}

/* A source with nothing to watch would still cost every iteration. Once
 * sessions were served it always watches the parking lot. */
static void
release_idle_source (MilterClient *self)
{
  if (self->source == NULL || self->signal_tag != NULL || self->parking_lot != NULL)
    return;
  for (guint i = 0; i < self->listeners->len; i++)
    if (((Listener *) g_ptr_array_index (self->listeners, i))->tag != NULL)
      return;
  g_source_destroy (self->source);
  g_clear_pointer (&self->source, g_source_unref);
}

/* ---- listeners ---------------------------------------------------------- */

static void
listener_stop (Listener *listener)
{
  if (listener->tag == NULL)
    return;
  g_source_remove_unix_fd (listener->client->source, listener->tag);
  listener->tag = NULL;
}

static void
listener_free (gpointer data)
{
  Listener *listener = data;

  listener_stop (listener);
  if (listener->socket != NULL)
    g_socket_close (listener->socket, NULL);
  if (listener->unix_path != NULL && listener->client->remove_unix_socket_on_close)
    {
      struct stat st;

      /* Never remove anything but our own socket. */
      if (lstat (listener->unix_path, &st) == 0 && S_ISSOCK (st.st_mode) &&
          st.st_dev == listener->unix_device && st.st_ino == listener->unix_inode)
        unlink (listener->unix_path);
    }
  g_clear_object (&listener->socket);
  g_clear_object (&listener->address);
  g_free (listener->unix_path);
  g_free (listener);
}

static void
set_tcp_nodelay (int fd)
{
  int on = 1;

  /* Replies are small and the MTA waits for each: no Nagle delay. */
  if (setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0)
    g_debug ("Cannot set TCP_NODELAY: %s", g_strerror (errno));
}

static void
ignore_sigpipe (void)
{
  static gsize done;

  /* A peer that vanishes must not kill the process; sockets use
   * MSG_NOSIGNAL already, pipes given to handle_stream() would not. Once
   * per process: a handler installed later is the program's choice. */
  if (g_once_init_enter (&done))
    {
      struct sigaction action;

      if (sigaction (SIGPIPE, NULL, &action) == 0 && action.sa_handler == SIG_DFL)
        signal (SIGPIPE, SIG_IGN);
      g_once_init_leave (&done, 1);
    }
}

static gboolean
on_backoff_done (gpointer user_data)
{
  MilterClient *self = user_data;

  self->backoff_id = 0;
  self->accept_backoff = FALSE;
  update_accepting (self);
  return G_SOURCE_REMOVE;
}

static void
back_off (MilterClient *self,
          GError       *error)
{
  GSource *source;

  gint64 now = g_get_monotonic_time ();

  if (self->backoff_logged_at == 0 || now - self->backoff_logged_at >= BACKOFF_LOG_INTERVAL)
    {
      g_warning ("Cannot accept connections: %s; retrying every %d ms", error->message,
                 ACCEPT_BACKOFF_MS);
      g_signal_emit (self, signals[SIGNAL_ERROR], 0, error);
      self->backoff_logged_at = now;
    }
  self->accept_backoff = TRUE;
  source = g_timeout_source_new (ACCEPT_BACKOFF_MS);
  g_source_set_callback (source, on_backoff_done, self, NULL);
  self->backoff_id = g_source_attach (source, self->main_context);
  g_source_unref (source);
  update_accepting (self);
}

/* Errors that the next accept() would meet again at once: retrying only
 * after a pause keeps the loop from spinning. Network errors that Linux
 * passes on from a pending connection concern that connection alone. */
static gboolean
accept_error_persists (int saved_errno)
{
  switch (saved_errno)
    {
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
    case EINVAL:     /* the socket no longer listens */
    case EBADF:
    case ENOTSOCK:
      return TRUE;
    default:
      return FALSE;
    }
}

static gboolean
at_connection_limit (MilterClient *self)
{
  return self->max_connections > 0 && self->sessions->len >= self->max_connections;
}

static MilterClientContext *serve (MilterClient  *client,
                                   GIOStream     *stream,
                                   gint           fd,
                                   GError       **error);

static void
on_incoming (Listener *listener)
{
  MilterClient *self = g_object_ref (listener->client);
  int fd = g_socket_get_fd (listener->socket);
  gboolean is_inet = listener->is_inet;  /* a handler may free the listener */

  for (guint i = 0; i < ACCEPT_BATCH && !self->shutting_down && !at_connection_limit (self); i++)
    {
      g_autoptr(GError) error = NULL;
      /* accept4() itself, and no GSocket unless someone asks for the
       * stream: g_socket_accept() builds a GError for every EAGAIN that
       * ends a batch, and a GSocket costs several system calls. */
      int connection_fd = accept4 (fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

      if (connection_fd < 0)
        {
          int saved_errno = errno;

          if (saved_errno == EINTR || saved_errno == ECONNABORTED)
            continue;
          if (accept_error_persists (saved_errno))
            {
              milter_set_io_error_from_errno (&error, saved_errno);
              back_off (self, error);
            }
          else if (saved_errno != EAGAIN && saved_errno != EWOULDBLOCK)
            {
              /* The connection is gone (ECONNRESET…); the listener is fine. */
              g_debug ("accept() failed: %s", g_strerror (saved_errno));
            }
          break;
        }
      if (is_inet)
        set_tcp_nodelay (connection_fd);
      serve (self, NULL, connection_fd, NULL);
    }
  update_accepting (self);
  g_object_unref (self);
}

/* Accepts only below max-connections (the kernel's backlog holds the rest)
 * and outside an EMFILE back-off: never a sleep in the main loop. */
static void
update_accepting (MilterClient *self)
{
  gboolean accept = self->listening && !self->shutting_down && self->workers == NULL &&
                    !self->accept_backoff && !at_connection_limit (self);

  for (guint i = 0; i < self->listeners->len; i++)
    {
      Listener *listener = g_ptr_array_index (self->listeners, i);

      if (accept && listener->tag == NULL)
        listener->tag = g_source_add_unix_fd (ensure_source (self),
                                              g_socket_get_fd (listener->socket), G_IO_IN);
      else if (!accept)
        listener_stop (listener);
    }
  release_idle_source (self);
}

/* Probes a socket file: 0 if a process accepts connections on it, else
 * the errno of connect(). Non-blocking: a full backlog must not block. */
static int
probe_unix_path (const gchar *path)
{
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int result = 0;

  if (fd < 0)
    return errno;
  g_strlcpy (address.sun_path, path, sizeof address.sun_path);
  if (connect (fd, (struct sockaddr *) &address, sizeof address) < 0)
    result = errno;
  close (fd);
  return result;
}

/* A stale socket file is replaced; a live one or anything else is not.
 * Only a refused connection proves the file stale: a full backlog or a
 * permission error says nothing about the process behind it. */
static gboolean
clear_unix_path (const gchar  *path,
                 GError      **error)
{
  struct stat st;
  int probe_errno;

  if (lstat (path, &st) < 0)
    return TRUE;
  if (!S_ISSOCK (st.st_mode))
    {
      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_NOT_A_SOCKET,
                   "“%s” exists and is not a socket; not replacing it", path);
      return FALSE;
    }
  probe_errno = probe_unix_path (path);
  if (probe_errno == 0)
    {
      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_ADDRESS_IN_USE,
                   "Another process listens on “%s”", path);
      return FALSE;
    }
  if (probe_errno != ECONNREFUSED && probe_errno != ENOENT)
    {
      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_ADDRESS_IN_USE,
                   "Cannot tell whether another process listens on “%s” (%s); not replacing it",
                   path, g_strerror (probe_errno));
      return FALSE;
    }
  if (unlink (path) < 0 && errno != ENOENT)
    {
      int saved_errno = errno;

      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_LISTEN,
                   "Cannot remove the stale socket “%s”: %s", path, g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

/* Mode and group are set after bind() and before listen(), under the
 * temporary name: there is no moment with wider permissions. */
static gboolean
secure_unix_path (MilterClient  *self,
                  const gchar   *path,
                  GError       **error)
{
  gid_t gid;

  if (self->unix_socket_group != NULL)
    {
      if (!milter_daemon_lookup_group (self->unix_socket_group, &gid, error))
        return FALSE;
      if (chown (path, (uid_t) -1, gid) < 0)
        {
          int saved_errno = errno;

          g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_LISTEN,
                       "Cannot give “%s” to group %s: %s", path, self->unix_socket_group,
                       g_strerror (saved_errno));
          return FALSE;
        }
    }
  if (chmod (path, self->unix_socket_mode) < 0)
    {
      int saved_errno = errno;

      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_LISTEN,
                   "Cannot set the mode of “%s”: %s", path, g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

static Listener *
listener_new (MilterClient *self,
              GSocket      *socket)
{
  Listener *listener = g_new0 (Listener, 1);

  listener->client = self;
  listener->socket = socket;
  listener->address = g_socket_get_local_address (socket, NULL);
  listener->is_inet = g_socket_get_family (socket) == G_SOCKET_FAMILY_IPV4 ||
                      g_socket_get_family (socket) == G_SOCKET_FAMILY_IPV6;
  g_socket_set_blocking (socket, FALSE);
  return listener;
}

/* Where a unix socket is bound before it is renamed into place: beside
 * it, so that rename() is atomic; NULL when that name would not fit. */
static gchar *
temporary_unix_path (const gchar *path)
{
  gchar *temporary = g_strdup_printf ("%s.%d.tmp", path, (int) getpid ());

  if (strlen (temporary) >= sizeof (((struct sockaddr_un *) NULL)->sun_path))
    g_clear_pointer (&temporary, g_free);
  return temporary;
}

static void
set_listen_error (GError         **error,
                  GSocketAddress  *address,
                  GError          *cause)
{
  g_autofree gchar *spec = milter_connection_spec_format (address, NULL);

  g_set_error (error, MILTER_CLIENT_ERROR,
               g_error_matches (cause, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE) ?
               MILTER_CLIENT_ERROR_ADDRESS_IN_USE : MILTER_CLIENT_ERROR_LISTEN,
               "Cannot listen on %s: %s", spec != NULL ? spec : "?", cause->message);
}

/* A unix socket's file appears only once the socket listens, with its
 * mode and group already set: a peer that sees the file can connect.
 * So it is bound and secured under a temporary name, then renamed. */
static gboolean
listen_unix (MilterClient    *self,
             GSocket         *socket,
             GSocketAddress  *address,
             GError         **error)
{
  const gchar *path = g_unix_socket_address_get_path (G_UNIX_SOCKET_ADDRESS (address));
  g_autofree gchar *temporary = temporary_unix_path (path);
  const gchar *bound = temporary != NULL ? temporary : path;
  g_autoptr(GSocketAddress) bind_address = g_unix_socket_address_new (bound);
  g_autoptr(GError) local_error = NULL;

  if (!clear_unix_path (path, error))
    return FALSE;
  if (temporary != NULL)
    unlink (temporary);  /* left by a process of our PID that crashed */
  if (!g_socket_bind (socket, bind_address, FALSE, &local_error))
    {
      set_listen_error (error, address, local_error);
      return FALSE;
    }
  if (!secure_unix_path (self, bound, error))
    goto failed;
  if (!g_socket_listen (socket, &local_error))
    {
      set_listen_error (error, address, local_error);
      goto failed;
    }
  /* link(), not rename(): an instance started at the same moment may
   * have put its socket there since the check, and must keep it. */
  if (temporary != NULL && link (temporary, path) < 0)
    {
      int saved_errno = errno;

      if (saved_errno == EEXIST)
        g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_ADDRESS_IN_USE,
                     "Another process listens on “%s”", path);
      else
        g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_LISTEN,
                     "Cannot move the socket into place at “%s”: %s", path,
                     g_strerror (saved_errno));
      goto failed;
    }
  if (temporary != NULL)
    unlink (temporary);
  return TRUE;

failed:
  unlink (bound);
  return FALSE;
}

static Listener *
bind_address (MilterClient    *self,
              GSocketAddress  *address,
              GError         **error)
{
  GSocketFamily family = g_socket_address_get_family (address);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) local_error = NULL;
  Listener *listener;

  socket = g_socket_new (family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, &local_error);
  if (socket == NULL)
    {
      set_listen_error (error, address, local_error);
      return NULL;
    }
  g_socket_set_listen_backlog (socket, self->listen_backlog);
  if (family == G_SOCKET_FAMILY_UNIX)
    {
      if (!listen_unix (self, socket, address, error))
        return NULL;
    }
  else if (!g_socket_bind (socket, address, TRUE, &local_error) ||
           !g_socket_listen (socket, &local_error))
    {
      set_listen_error (error, address, local_error);
      return NULL;
    }
  listener = listener_new (self, g_steal_pointer (&socket));
  if (family == G_SOCKET_FAMILY_UNIX)
    {
      const gchar *path = g_unix_socket_address_get_path (G_UNIX_SOCKET_ADDRESS (address));
      struct stat st;

      /* The kernel knows the temporary name: report the real one. */
      g_set_object (&listener->address, address);
      /* Absolute: a daemon removes it at exit from /. */
      listener->unix_path = g_canonicalize_filename (path, NULL);
      if (lstat (path, &st) == 0)
        {
          listener->unix_device = st.st_dev;
          listener->unix_inode = st.st_ino;
        }
    }
  return listener;
}

/* Whether a socket accepts connections. */
static gboolean
is_listening (GSocket *socket)
{
  gint accepts = 0;

  return g_socket_get_option (socket, SOL_SOCKET, SO_ACCEPTCONN, &accepts, NULL) && accepts != 0;
}

/* Sorts systemd's sockets: listening ones (Accept=no) are listened on,
 * a connected one (Accept=yes: one process per connection) is served. */
static gboolean
take_inherited_socket (MilterClient  *self,
                       GSocket       *socket,
                       GError       **error)
{
  if (is_listening (socket))
    g_ptr_array_add (self->extra_sockets, socket);
  else if (g_socket_get_socket_type (socket) == G_SOCKET_TYPE_STREAM && g_socket_is_connected (socket))
    g_ptr_array_add (self->inherited_connections, socket);
  else
    {
      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_SOCKET_ACTIVATION,
                   "Inherited file descriptor %d is neither a listening nor a connected "
                   "stream socket", g_socket_get_fd (socket));
      g_object_unref (socket);
      return FALSE;
    }
  return TRUE;
}

static gboolean
collect_default_sockets (MilterClient  *self,
                         GError       **error)
{
  GError *local_error = NULL;
  GList *inherited = milter_daemon_take_activation_sockets (&local_error);
  gboolean ok = TRUE;

  if (local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return FALSE;
    }
  if (inherited == NULL)
    return milter_client_set_connection_spec (self, MILTER_CLIENT_DEFAULT_CONNECTION_SPEC, error);
  for (GList *l = inherited; l != NULL; l = l->next)
    {
      if (ok)
        ok = take_inherited_socket (self, l->data, error);
      else
        g_object_unref (l->data);
    }
  g_list_free (inherited);
  return ok;
}

/* Binds everything (no accepting yet). */
static gboolean
open_listeners (MilterClient  *self,
                GError       **error)
{
  if (self->addresses->len == 0 && self->extra_sockets->len == 0 &&
      self->inherited_connections->len == 0 && !collect_default_sockets (self, error))
    return FALSE;

  for (guint i = 0; i < self->addresses->len; i++)
    {
      Listener *listener = bind_address (self, g_ptr_array_index (self->addresses, i), error);

      if (listener == NULL)
        {
          g_ptr_array_set_size (self->listeners, 0);
          return FALSE;
        }
      g_ptr_array_add (self->listeners, listener);
    }
  for (guint i = 0; i < self->extra_sockets->len; i++)
    g_ptr_array_add (self->listeners,
                     listener_new (self, g_object_ref (g_ptr_array_index (self->extra_sockets, i))));
  for (guint i = 0; i < self->listeners->len; i++)
    {
      Listener *listener = g_ptr_array_index (self->listeners, i);

      if (listener->address != NULL)
        g_signal_emit (self, signals[SIGNAL_LISTEN_STARTED], 0, listener->address);
    }
  return TRUE;
}

/* ---- sessions ----------------------------------------------------------- */

/* Ends the sessions that were open at the shutdown; the ones accepted
 * since (after listening again) are not concerned. */
static gboolean
on_grace_period_over (gpointer user_data)
{
  MilterClient *self = user_data;
  g_autoptr(GPtrArray) sessions = g_steal_pointer (&self->draining);

  self->grace_id = 0;
  for (guint i = 0; i < sessions->len; i++)
    milter_client_context_shutdown (g_ptr_array_index (sessions, i));
  return G_SOURCE_REMOVE;
}

static void
cancel_grace_period (MilterClient *self)
{
  if (self->grace_id != 0)
    {
      GSource *source = g_main_context_find_source_by_id (self->main_context, self->grace_id);

      if (source != NULL)
        g_source_destroy (source);
      self->grace_id = 0;
    }
  g_clear_pointer (&self->draining, g_ptr_array_unref);
}

static void
start_grace_period (MilterClient *self)
{
  GSource *source;

  cancel_grace_period (self);
  if (self->sessions->len == 0)
    return;
  self->draining = g_ptr_array_new_full (self->sessions->len, g_object_unref);
  for (guint i = 0; i < self->sessions->len; i++)
    g_ptr_array_add (self->draining, g_object_ref (g_ptr_array_index (self->sessions, i)));
  source = g_timeout_source_new (self->shutdown_grace_period * 1000);
  g_source_set_callback (source, on_grace_period_over, self, NULL);
  self->grace_id = g_source_attach (source, self->main_context);
  g_source_unref (source);
}

static void
quit_if_done (MilterClient *self)
{
  if (!self->shutting_down || self->sessions->len > 0 ||
      (self->workers != NULL && milter_workers_get_n_running (self->workers) > 0))
    return;
  cancel_grace_period (self);
  if (self->loop != NULL)
    g_main_loop_quit (self->loop);
}

/* Drops a session. The search starts from the newest: sessions that end
 * soon after they start are most of them, while the oldest ones are often
 * idle and stay, so a search from the front would pass them every time. */
static void
remove_session (MilterClient        *self,
                MilterClientContext *context)
{
  for (guint i = self->sessions->len; i > 0; i--)
    {
      if (g_ptr_array_index (self->sessions, i - 1) == context)
        {
          g_ptr_array_remove_index_fast (self->sessions, i - 1);
          break;
        }
    }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_PROCESSING_SESSIONS]);
}

static void
on_session_finished (MilterClientContext *context,
                     gpointer             user_data)
{
  MilterClient *self = user_data;

  /* 'K' starts another session on the same connection: keep it. */
  if (!milter_client_context_is_finished (context))
    return;
  milter_client_context_set_finished_func (context, NULL, NULL);
  remove_session (self, context);
  update_accepting (self);
  if (self->stop_after_sessions && self->sessions->len == 0)
    milter_client_shutdown (self);
  quit_if_done (self);
}

/* ---- GObject -------------------------------------------------------------- */

static void
release_session (MilterClientContext *context,
                 gpointer             user_data)
{
  g_object_unref (context);
}

/* The sessions end with the client, from the main loop, not from here: no
 * handler may run from a dispose that a binding's garbage collector can
 * start. Each keeps the client's reference until it has emitted finished. */
static void
end_sessions_without_client (MilterClient *self)
{
  gsize n_sessions = 0;
  gpointer *sessions = g_ptr_array_steal (self->sessions, &n_sessions);

  for (gsize i = 0; i < n_sessions; i++)
    {
      MilterClientContext *context = sessions[i];

      milter_client_context_set_parking_lot (context, NULL, 0);
      milter_client_context_set_finished_func (context, release_session, NULL);
      milter_client_context_shutdown (context);
    }
  g_free (sessions);
}

static void
milter_client_dispose (GObject *object)
{
  MilterClient *self = MILTER_CLIENT (object);

  if (self->backoff_id != 0)
    {
      GSource *source = g_main_context_find_source_by_id (self->main_context, self->backoff_id);

      if (source != NULL)
        g_source_destroy (source);
      self->backoff_id = 0;
    }
  cancel_grace_period (self);
  end_sessions_without_client (self);
  g_ptr_array_set_size (self->listeners, 0);
  g_clear_pointer (&self->parking_lot, milter_parking_lot_free);  /* empty now */
  if (self->source != NULL)
    {
      g_source_destroy (self->source);
      g_clear_pointer (&self->source, g_source_unref);
    }
  g_clear_pointer (&self->workers, milter_workers_free);

  G_OBJECT_CLASS (milter_client_parent_class)->dispose (object);
}

static void
milter_client_finalize (GObject *object)
{
  MilterClient *self = MILTER_CLIENT (object);

  g_ptr_array_unref (self->specs);
  g_ptr_array_unref (self->addresses);
  g_ptr_array_unref (self->extra_sockets);
  g_ptr_array_unref (self->inherited_connections);
  g_ptr_array_unref (self->listeners);
  g_ptr_array_unref (self->sessions);
  g_free (self->unix_socket_group);
  g_free (self->user);
  g_free (self->group);
  g_free (self->pid_file);
  g_free (self->start_directory);
  g_strfreev (self->option_specs);
  g_free (self->option_unix_socket_mode);
  g_free (self->option_log_level);
  g_free (self->option_unix_socket_group);
  g_free (self->option_user);
  g_free (self->option_group);
  g_free (self->option_pid_file);
  g_main_context_unref (self->main_context);

  G_OBJECT_CLASS (milter_client_parent_class)->finalize (object);
}

static void
milter_client_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  MilterClient *self = MILTER_CLIENT (object);

  switch (prop_id)
    {
    case PROP_CONNECTION_SPEC:
      g_value_set_string (value, milter_client_get_connection_spec (self));
      break;
    case PROP_TIMEOUT:
      g_value_set_uint (value, self->timeout);
      break;
    case PROP_PACKET_BUFFER_SIZE:
      g_value_set_uint (value, self->packet_buffer_size);
      break;
    case PROP_USE_BYTES:
      g_value_set_boolean (value, self->use_bytes);
      break;
    case PROP_CONTEXT_TYPE:
      g_value_set_gtype (value, self->context_type);
      break;
    case PROP_MAX_PACKET_LENGTH:
      g_value_set_uint (value, self->max_packet_length);
      break;
    case PROP_MAX_HEADERS:
      g_value_set_uint (value, self->max_headers);
      break;
    case PROP_MAX_MESSAGE_RESULT_SIZE:
      g_value_set_uint (value, self->max_message_result_size);
      break;
    case PROP_MAX_RECIPIENTS:
      g_value_set_uint (value, self->max_recipients);
      break;
    case PROP_MAX_MACROS:
      g_value_set_uint (value, self->max_macros);
      break;
    case PROP_MAX_CONNECTIONS:
      g_value_set_uint (value, self->max_connections);
      break;
    case PROP_N_WORKERS:
      g_value_set_uint (value, self->n_workers);
      break;
    case PROP_WORKER_ID:
      g_value_set_uint (value, self->worker_id);
      break;
    case PROP_UNIX_SOCKET_MODE:
      g_value_set_uint (value, self->unix_socket_mode);
      break;
    case PROP_UNIX_SOCKET_GROUP:
      g_value_set_string (value, self->unix_socket_group);
      break;
    case PROP_REMOVE_UNIX_SOCKET_ON_CLOSE:
      g_value_set_boolean (value, self->remove_unix_socket_on_close);
      break;
    case PROP_SHUTDOWN_GRACE_PERIOD:
      g_value_set_uint (value, self->shutdown_grace_period);
      break;
    case PROP_LISTEN_BACKLOG:
      g_value_set_int (value, self->listen_backlog);
      break;
    case PROP_USER:
      g_value_set_string (value, self->user);
      break;
    case PROP_GROUP:
      g_value_set_string (value, self->group);
      break;
    case PROP_DAEMON:
      g_value_set_boolean (value, self->daemon);
      break;
    case PROP_PID_FILE:
      g_value_set_string (value, self->pid_file);
      break;
    case PROP_N_PROCESSING_SESSIONS:
      g_value_set_uint (value, self->sessions->len);
      break;
    case PROP_FALLBACK_STATUS:
      g_value_set_enum (value, self->fallback_status);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
milter_client_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  MilterClient *self = MILTER_CLIENT (object);
  g_autoptr(GError) error = NULL;

  switch (prop_id)
    {
    case PROP_CONNECTION_SPEC:
      if (g_value_get_string (value) != NULL &&
          !milter_client_set_connection_spec (self, g_value_get_string (value), &error))
        g_warning ("%s", error->message);
      break;
    case PROP_TIMEOUT:
      milter_property_set_uint (object, &self->timeout, g_value_get_uint (value), pspec);
      break;
    case PROP_PACKET_BUFFER_SIZE:
      milter_property_set_uint (object, &self->packet_buffer_size, g_value_get_uint (value), pspec);
      break;
    case PROP_USE_BYTES:
      self->use_bytes = g_value_get_boolean (value);
      break;
    case PROP_CONTEXT_TYPE:
      if (self->context_type != g_value_get_gtype (value))
        {
          self->context_type = g_value_get_gtype (value);
          g_object_notify_by_pspec (object, pspec);
        }
      break;
    case PROP_MAX_PACKET_LENGTH:
      milter_property_set_uint (object, &self->max_packet_length, g_value_get_uint (value), pspec);
      break;
    case PROP_MAX_HEADERS:
      milter_property_set_uint (object, &self->max_headers, g_value_get_uint (value), pspec);
      break;
    case PROP_MAX_MESSAGE_RESULT_SIZE:
      milter_property_set_uint (object, &self->max_message_result_size, g_value_get_uint (value), pspec);
      break;
    case PROP_MAX_RECIPIENTS:
      milter_property_set_uint (object, &self->max_recipients, g_value_get_uint (value), pspec);
      break;
    case PROP_MAX_MACROS:
      milter_property_set_uint (object, &self->max_macros, g_value_get_uint (value), pspec);
      break;
    case PROP_MAX_CONNECTIONS:
      milter_property_set_uint (object, &self->max_connections, g_value_get_uint (value), pspec);
      update_accepting (self);
      break;
    case PROP_N_WORKERS:
      milter_property_set_uint (object, &self->n_workers, g_value_get_uint (value), pspec);
      break;
    case PROP_UNIX_SOCKET_MODE:
      milter_property_set_uint (object, &self->unix_socket_mode, g_value_get_uint (value) & 07777, pspec);
      break;
    case PROP_UNIX_SOCKET_GROUP:
      milter_property_set_string (object, &self->unix_socket_group, g_value_get_string (value), pspec);
      break;
    case PROP_REMOVE_UNIX_SOCKET_ON_CLOSE:
      self->remove_unix_socket_on_close = g_value_get_boolean (value);
      break;
    case PROP_SHUTDOWN_GRACE_PERIOD:
      milter_property_set_uint (object, &self->shutdown_grace_period, g_value_get_uint (value), pspec);
      break;
    case PROP_LISTEN_BACKLOG:
      self->listen_backlog = g_value_get_int (value);
      break;
    case PROP_USER:
      milter_property_set_string (object, &self->user, g_value_get_string (value), pspec);
      break;
    case PROP_GROUP:
      milter_property_set_string (object, &self->group, g_value_get_string (value), pspec);
      break;
    case PROP_DAEMON:
      self->daemon = g_value_get_boolean (value);
      break;
    case PROP_PID_FILE:
      milter_property_set_string (object, &self->pid_file, g_value_get_string (value), pspec);
      break;
    case PROP_FALLBACK_STATUS:
      self->fallback_status = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
install_properties (GObjectClass *object_class)
{
  GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY;

  /**
   * MilterClient:connection-spec:
   *
   * The first connection spec to listen on, such as
   * `inet:10025@127.0.0.1` or `unix:/run/milter.sock`. Setting it replaces
   * all specs; an invalid one is logged and ignored (use
   * milter_client_set_connection_spec() to get the error).
   *
   * Since: 1.0
   */
  properties[PROP_CONNECTION_SPEC] =
    g_param_spec_string ("connection-spec", "Connection spec", "Where to listen", NULL, rw);

  /**
   * MilterClient:timeout:
   *
   * The #MilterClientContext:timeout of new sessions, in seconds.
   *
   * Since: 1.0
   */
  properties[PROP_TIMEOUT] =
    g_param_spec_uint ("timeout", "Timeout", "Seconds of MTA silence before a session ends",
                       0, G_MAXUINT, MILTER_CLIENT_CONTEXT_DEFAULT_TIMEOUT, rw);

  /**
   * MilterClient:packet-buffer-size:
   *
   * The #MilterClientContext:packet-buffer-size of new sessions.
   *
   * Since: 1.0
   */
  properties[PROP_PACKET_BUFFER_SIZE] =
    g_param_spec_uint ("packet-buffer-size", "Packet buffer size",
                       "Bytes of modifications to hold before writing", 0, G_MAXUINT, 0, rw);

  /**
   * MilterClient:use-bytes:
   *
   * The #MilterClientContext:use-bytes of new sessions.
   *
   * Since: 1.0
   */
  properties[PROP_USE_BYTES] =
    g_param_spec_boolean ("use-bytes", "Use bytes", "Whether only the GBytes chunk signals are emitted",
                          FALSE, rw);

  /**
   * MilterClient:context-type:
   *
   * The type of the #MilterClientContext made for each connection: a
   * subclass whose class methods handle the events, so that nothing needs
   * connecting per connection. #MilterClient::connection-established is
   * emitted for it as for any context.
   *
   * Since: 1.0
   */
  properties[PROP_CONTEXT_TYPE] =
    g_param_spec_gtype ("context-type", "Context type", "The type of the contexts made for connections",
                        MILTER_TYPE_CLIENT_CONTEXT, rw);

  /**
   * MilterClient:max-packet-length:
   *
   * The #MilterClientContext:max-packet-length of new sessions.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_PACKET_LENGTH] =
    g_param_spec_uint ("max-packet-length", "Maximum packet length", "The longest packet accepted",
                       1, G_MAXUINT32, MILTER_DECODER_DEFAULT_MAX_PACKET_LENGTH, rw);

  /**
   * MilterClient:max-headers:
   *
   * The #MilterClientContext:max-headers of new sessions.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_HEADERS] =
    g_param_spec_uint ("max-headers", "Maximum headers", "The most headers one message may have",
                       0, G_MAXUINT, 10000, rw);

  /**
   * MilterClient:max-message-result-size:
   *
   * The #MilterClientContext:max-message-result-size of new sessions.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_MESSAGE_RESULT_SIZE] =
    g_param_spec_uint ("max-message-result-size", "Maximum message result size",
                       "The most bytes of headers and recipients one message may have",
                       0, G_MAXUINT, 16 * 1024 * 1024, rw);

  /**
   * MilterClient:max-recipients:
   *
   * The #MilterClientContext:max-recipients of new sessions.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_RECIPIENTS] =
    g_param_spec_uint ("max-recipients", "Maximum recipients",
                       "The most recipients one message may have",
                       0, G_MAXUINT, 100000, rw);

  /**
   * MilterClient:max-macros:
   *
   * The #MilterClientContext:max-macros of new sessions.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_MACROS] =
    g_param_spec_uint ("max-macros", "Maximum macros", "The most macros in one packet",
                       0, G_MAXUINT, MILTER_DECODER_DEFAULT_MAX_MACROS, rw);

  /**
   * MilterClient:max-connections:
   *
   * The most sessions served at once (0: no limit). At the limit the
   * client stops accepting; the kernel's backlog holds new connections
   * until a session finishes.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_CONNECTIONS] =
    g_param_spec_uint ("max-connections", "Maximum connections", "The most sessions at once",
                       0, G_MAXUINT, 0, rw);

  /**
   * MilterClient:n-workers:
   *
   * The number of worker processes milter_client_run() starts to share the
   * listening sockets (0: serve in this process). A worker is the program
   * itself, started again with the same arguments: a program that creates
   * its client and calls milter_client_run() from main() needs nothing
   * more. In the worker, milter_client_run() serves from the sockets it
   * inherited, ignoring the connection specs.
   *
   * Since: 1.0
   */
  properties[PROP_N_WORKERS] =
    g_param_spec_uint ("n-workers", "Workers", "Worker processes to fork", 0, 1024, 0, rw);

  /**
   * MilterClient:worker-id:
   *
   * Which worker this process is: 1 to #MilterClient:n-workers in a
   * worker, 0 in the parent or without workers.
   *
   * Since: 1.0
   */
  properties[PROP_WORKER_ID] =
    g_param_spec_uint ("worker-id", "Worker ID", "Which worker this process is", 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * MilterClient:unix-socket-mode:
   *
   * The permissions of unix sockets the client creates (default 0660),
   * in force before the first connection can be made: the socket file
   * appears, under its final name, only once it listens.
   *
   * Since: 1.0
   */
  properties[PROP_UNIX_SOCKET_MODE] =
    g_param_spec_uint ("unix-socket-mode", "Unix socket mode", "Permissions of unix sockets",
                       0, 07777, DEFAULT_UNIX_SOCKET_MODE, rw);

  /**
   * MilterClient:unix-socket-group:
   *
   * The group (name or number) of unix sockets the client creates, such
   * as the MTA's group; %NULL keeps the process's group.
   *
   * Since: 1.0
   */
  properties[PROP_UNIX_SOCKET_GROUP] =
    g_param_spec_string ("unix-socket-group", "Unix socket group", "Group of unix sockets", NULL, rw);

  /**
   * MilterClient:remove-unix-socket-on-close:
   *
   * Whether unix socket files the client created are removed when it
   * stops listening.
   *
   * Since: 1.0
   */
  properties[PROP_REMOVE_UNIX_SOCKET_ON_CLOSE] =
    g_param_spec_boolean ("remove-unix-socket-on-close", "Remove unix socket on close",
                          "Whether socket files are removed on shutdown", TRUE, rw);

  /**
   * MilterClient:shutdown-grace-period:
   *
   * Seconds milter_client_shutdown() lets sessions in progress finish
   * before closing them.
   *
   * Since: 1.0
   */
  properties[PROP_SHUTDOWN_GRACE_PERIOD] =
    g_param_spec_uint ("shutdown-grace-period", "Shutdown grace period",
                       "Seconds to let sessions finish on shutdown", 0, G_MAXUINT,
                       DEFAULT_GRACE_PERIOD, rw);

  /**
   * MilterClient:listen-backlog:
   *
   * The listen() backlog of the sockets the client binds.
   *
   * Since: 1.0
   */
  properties[PROP_LISTEN_BACKLOG] =
    g_param_spec_int ("listen-backlog", "Listen backlog", "The listen() backlog", 1, G_MAXINT,
                      SOMAXCONN, rw);

  /**
   * MilterClient:user:
   *
   * The user milter_client_run() switches to after binding (name or
   * number); %NULL stays.
   *
   * Since: 1.0
   */
  properties[PROP_USER] =
    g_param_spec_string ("user", "User", "User to run as after binding", NULL, rw);

  /**
   * MilterClient:group:
   *
   * The group milter_client_run() switches to after binding; %NULL takes
   * the #MilterClient:user's group.
   *
   * Since: 1.0
   */
  properties[PROP_GROUP] =
    g_param_spec_string ("group", "Group", "Group to run as after binding", NULL, rw);

  /**
   * MilterClient:daemon:
   *
   * Whether milter_client_run() detaches from the terminal after binding.
   *
   * Since: 1.0
   */
  properties[PROP_DAEMON] =
    g_param_spec_boolean ("daemon", "Daemon", "Whether to detach from the terminal", FALSE, rw);

  /**
   * MilterClient:pid-file:
   *
   * Where milter_client_run() writes the process ID (after dropping
   * privileges); removed on exit. If the file names a running process,
   * milter_client_run() fails with %MILTER_CLIENT_ERROR_DAEMON.
   *
   * Since: 1.0
   */
  properties[PROP_PID_FILE] =
    g_param_spec_string ("pid-file", "PID file", "Where to write the process ID", NULL, rw);

  /**
   * MilterClient:n-processing-sessions:
   *
   * The number of sessions in progress.
   *
   * Since: 1.0
   */
  properties[PROP_N_PROCESSING_SESSIONS] =
    g_param_spec_uint ("n-processing-sessions", "Processing sessions", "Sessions in progress",
                       0, G_MAXUINT, 0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * MilterClient:fallback-status:
   *
   * The #MilterClientContext:fallback-status of new sessions: the reply when
   * the handlers of an event have no opinion, also when a handler in a
   * language binding raised an exception.
   *
   * Since: 1.0
   */
  properties[PROP_FALLBACK_STATUS] =
    g_param_spec_enum ("fallback-status", "Fallback status", "The reply when no handler has an opinion",
                       MILTER_TYPE_STATUS, MILTER_STATUS_CONTINUE, rw);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
milter_client_class_init (MilterClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  /* Before the first client creates its main context's descriptor. */
  milter_daemon_ensure_standard_fds ();

  object_class->dispose = milter_client_dispose;
  object_class->finalize = milter_client_finalize;
  object_class->get_property = milter_client_get_property;
  object_class->set_property = milter_client_set_property;

  install_properties (object_class);

  /**
   * MilterClient::connection-established:
   * @client: the client
   * @context: the new session
   *
   * An MTA connected. Emitted before anything of the connection is
   * handled: connect @context's signals here. The client keeps @context
   * until it finishes.
   *
   * Since: 1.0
   */
  signals[SIGNAL_CONNECTION_ESTABLISHED] =
    g_signal_new ("connection-established", MILTER_TYPE_CLIENT, G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 1, MILTER_TYPE_CLIENT_CONTEXT);

  /**
   * MilterClient::listen-started:
   * @client: the client
   * @address: where the client listens (with the real port if the spec
   *   asked for port 0)
   *
   * The client listens on @address.
   *
   * Since: 1.0
   */
  signals[SIGNAL_LISTEN_STARTED] =
    g_signal_new ("listen-started", MILTER_TYPE_CLIENT, G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 1, G_TYPE_SOCKET_ADDRESS);

  /**
   * MilterClient::error:
   * @client: the client
   * @error: what went wrong
   *
   * Something went wrong outside any session: the client cannot accept
   * connections (out of file descriptors, for example; it retries every
   * 250 ms and reports each such episode once). Errors of a session go to
   * its context's #MilterClientContext::error.
   *
   * Since: 1.0
   */
  signals[SIGNAL_ERROR] =
    g_signal_new ("error", MILTER_TYPE_CLIENT, G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);

  /**
   * MilterClient::reload:
   * @client: the client
   *
   * milter_client_run() received SIGHUP: reopen log files, reread
   * configuration. With workers, the parent passes SIGHUP on and each
   * worker emits this.
   *
   * Since: 1.0
   */
  signals[SIGNAL_RELOAD] =
    g_signal_new ("reload", MILTER_TYPE_CLIENT, G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 0);
}

static void
milter_client_init (MilterClient *self)
{
  self->main_context = g_main_context_ref_thread_default ();
  self->specs = g_ptr_array_new_with_free_func (g_free);
  self->addresses = g_ptr_array_new_with_free_func (g_object_unref);
  self->extra_sockets = g_ptr_array_new_with_free_func (g_object_unref);
  self->inherited_connections = g_ptr_array_new_with_free_func (g_object_unref);
  self->listeners = g_ptr_array_new_with_free_func (listener_free);
  self->sessions = g_ptr_array_new_with_free_func (g_object_unref);
  self->timeout = MILTER_CLIENT_CONTEXT_DEFAULT_TIMEOUT;
  self->max_packet_length = MILTER_DECODER_DEFAULT_MAX_PACKET_LENGTH;
  self->max_headers = 10000;
  self->max_recipients = 100000;
  self->max_message_result_size = 16 * 1024 * 1024;
  self->max_macros = MILTER_DECODER_DEFAULT_MAX_MACROS;
  self->fallback_status = MILTER_STATUS_CONTINUE;
  self->park_delay = DEFAULT_PARK_DELAY;
  self->context_type = MILTER_TYPE_CLIENT_CONTEXT;
  self->unix_socket_mode = DEFAULT_UNIX_SOCKET_MODE;
  self->remove_unix_socket_on_close = TRUE;
  self->shutdown_grace_period = DEFAULT_GRACE_PERIOD;
  self->listen_backlog = SOMAXCONN;
  self->option_timeout = OPTION_NOT_GIVEN;
  self->option_n_workers = OPTION_NOT_GIVEN;
  self->option_max_connections = OPTION_NOT_GIVEN;
  self->option_shutdown_grace_period = OPTION_NOT_GIVEN;
}

/* ---- public API ----------------------------------------------------- */

/**
 * milter_client_new:
 *
 * Creates a client. It serves from the thread-default #GMainContext of
 * the thread that creates it.
 *
 * Returns: (transfer full): a new #MilterClient
 *
 * Since: 1.0
 */
MilterClient *
milter_client_new (void)
{
  return g_object_new (MILTER_TYPE_CLIENT, NULL);
}

/**
 * milter_client_set_connection_spec:
 * @client: a #MilterClient
 * @spec: a connection spec such as `inet:10025@127.0.0.1` or
 *   `unix:/run/milter.sock`
 * @error: return location for a #GError, or %NULL
 *
 * Sets where to listen, replacing earlier specs (smfi_setconn).
 *
 * Returns: %TRUE if @spec is valid; %FALSE with a
 *   %MILTER_CONNECTION_SPEC_ERROR
 *
 * Since: 1.0
 */
static gboolean
check_not_listening (MilterClient  *self,
                     GError       **error)
{
  if (!self->listening)
    return TRUE;
  g_set_error_literal (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_STATE,
                       "The client is already listening");
  return FALSE;
}

static void
add_spec (MilterClient   *self,
          const gchar    *spec,
          GSocketAddress *address)
{
  g_ptr_array_add (self->specs, g_strdup (spec));
  g_ptr_array_add (self->addresses, address);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CONNECTION_SPEC]);
}

gboolean
milter_client_set_connection_spec (MilterClient  *client,
                                   const gchar   *spec,
                                   GError       **error)
{
  GSocketAddress *address;

  g_return_val_if_fail (MILTER_IS_CLIENT (client), FALSE);
  g_return_val_if_fail (spec != NULL, FALSE);

  if (!check_not_listening (client, error))
    return FALSE;
  address = milter_connection_spec_parse (spec, error);
  if (address == NULL)
    return FALSE;
  g_ptr_array_set_size (client->specs, 0);
  g_ptr_array_set_size (client->addresses, 0);
  add_spec (client, spec, address);
  return TRUE;
}

/**
 * milter_client_add_connection_spec:
 * @client: a #MilterClient
 * @spec: a connection spec
 * @error: return location for a #GError, or %NULL
 *
 * Adds another place to listen.
 *
 * Returns: %TRUE if @spec is valid; %FALSE with a
 *   %MILTER_CONNECTION_SPEC_ERROR
 *
 * Since: 1.0
 */
gboolean
milter_client_add_connection_spec (MilterClient  *client,
                                   const gchar   *spec,
                                   GError       **error)
{
  GSocketAddress *address;

  g_return_val_if_fail (MILTER_IS_CLIENT (client), FALSE);
  g_return_val_if_fail (spec != NULL, FALSE);

  if (!check_not_listening (client, error))
    return FALSE;
  address = milter_connection_spec_parse (spec, error);
  if (address == NULL)
    return FALSE;
  add_spec (client, spec, address);
  return TRUE;
}

/**
 * milter_client_get_connection_spec:
 * @client: a #MilterClient
 *
 * Gets the first connection spec.
 *
 * Returns: (nullable): the spec, or %NULL if none was set
 *
 * Since: 1.0
 */
const gchar *
milter_client_get_connection_spec (MilterClient *client)
{
  g_return_val_if_fail (MILTER_IS_CLIENT (client), NULL);

  return client->specs->len > 0 ? g_ptr_array_index (client->specs, 0) : NULL;
}

/**
 * milter_client_add_listening_socket:
 * @client: a #MilterClient
 * @socket: a bound, listening stream socket (for example one passed by a
 *   service manager)
 * @error: return location for a #GError, or %NULL
 *
 * Serves connections from @socket too. Sockets passed by systemd socket
 * activation (`LISTEN_FDS`) are used automatically when no spec is set.
 * A socket that does not listen is refused with
 * %MILTER_CLIENT_ERROR_LISTEN; milter_client_handle_stream() serves a
 * connected one.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
milter_client_add_listening_socket (MilterClient  *client,
                                    GSocket       *socket,
                                    GError       **error)
{
  g_return_val_if_fail (MILTER_IS_CLIENT (client), FALSE);
  g_return_val_if_fail (G_IS_SOCKET (socket), FALSE);

  if (!check_not_listening (client, error))
    return FALSE;
  if (!is_listening (socket))
    {
      /* accept() would fail on every wake-up. */
      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_LISTEN,
                   "Socket %d does not listen; milter_client_handle_stream() serves a "
                   "connected one", g_socket_get_fd (socket));
      return FALSE;
    }
  g_ptr_array_add (client->extra_sockets, g_object_ref (socket));
  return TRUE;
}

/* Serves the connections systemd passed (Accept=yes) on descriptors of
 * their own, as accepted ones. With nothing to listen on, the client is
 * done when they end, as inetd-style services are. */
static void
serve_inherited_connections (MilterClient *self)
{
  for (guint i = 0; i < self->inherited_connections->len; i++)
    {
      GSocket *socket = g_ptr_array_index (self->inherited_connections, i);
      int fd = fcntl (g_socket_get_fd (socket), F_DUPFD_CLOEXEC, 3);

      if (fd < 0)
        {
          g_warning ("Cannot serve the inherited connection: %s", g_strerror (errno));
          continue;
        }
      g_unix_set_fd_nonblocking (fd, TRUE, NULL);
      if (g_socket_get_family (socket) != G_SOCKET_FAMILY_UNIX)
        set_tcp_nodelay (fd);
      serve (self, NULL, fd, NULL);
    }
  g_ptr_array_set_size (self->inherited_connections, 0);
  self->stop_after_sessions = self->listeners->len == 0;
  if (self->stop_after_sessions && self->sessions->len == 0)
    milter_client_shutdown (self);
}

/**
 * milter_client_listen:
 * @client: a #MilterClient
 * @error: return location for a #GError, or %NULL
 *
 * Binds every connection spec (or, without one, the sockets of systemd
 * socket activation, or %MILTER_CLIENT_DEFAULT_CONNECTION_SPEC) and starts
 * accepting connections in the client's main context. Returns at once:
 * the application runs its main loop.
 *
 * A connection systemd passes instead of a listening socket (a socket
 * unit with `Accept=yes`) is served as an accepted one. With nothing to
 * listen on, the client then shuts down when that session ends, so that
 * milter_client_run() returns.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
milter_client_listen (MilterClient  *client,
                      GError       **error)
{
  g_return_val_if_fail (MILTER_IS_CLIENT (client), FALSE);

  if (!check_not_listening (client, error))
    return FALSE;
  ignore_sigpipe ();
  if (!open_listeners (client, error))
    return FALSE;
  client->listening = TRUE;
  client->shutting_down = FALSE;
  update_accepting (client);
  serve_inherited_connections (client);
  return TRUE;
}

/**
 * milter_client_get_listen_addresses:
 * @client: a #MilterClient
 *
 * Gets where the client listens, with real ports for specs that asked for
 * port 0.
 *
 * Returns: (transfer full) (element-type GSocketAddress): the addresses
 *
 * Since: 1.0
 */
GList *
milter_client_get_listen_addresses (MilterClient *client)
{
  GList *addresses = NULL;

  g_return_val_if_fail (MILTER_IS_CLIENT (client), NULL);

  for (guint i = 0; i < client->listeners->len; i++)
    {
      Listener *listener = g_ptr_array_index (client->listeners, i);

      if (listener->address != NULL)
        addresses = g_list_append (addresses, g_object_ref (listener->address));
    }
  return addresses;
}

/* The parking lot idle sessions wait in, watched by the client's source;
 * NULL if the system has no epoll descriptor to spare. */
static MilterParkingLot *
ensure_parking_lot (MilterClient *self)
{
  if (self->parking_lot == NULL)
    self->parking_lot = milter_parking_lot_new (ensure_source (self));
  return self->parking_lot;
}

void
milter_client_set_park_delay (MilterClient *client,
                              gint64        delay)
{
  client->park_delay = delay;
}

/* Serves one connection: @stream, or else the socket descriptor @fd. */
static MilterClientContext *
serve (MilterClient  *client,
       GIOStream     *stream,
       gint           fd,
       GError       **error)
{
  MilterClientContext *context;

  ignore_sigpipe ();
  context = g_object_new (client->context_type, "client", client, NULL);
  milter_client_context_set_main_context (context, client->main_context);
  milter_client_context_set_timeout (context, client->timeout);
  milter_client_context_set_packet_buffer_size (context, client->packet_buffer_size);
  milter_client_context_set_use_bytes (context, client->use_bytes);
  milter_client_context_set_max_packet_length (context, client->max_packet_length);
  milter_client_context_set_max_headers (context, client->max_headers);
  milter_client_context_set_max_message_result_size (context, client->max_message_result_size);
  milter_client_context_set_max_recipients (context, client->max_recipients);
  milter_client_context_set_max_macros (context, client->max_macros);
  milter_client_context_set_fallback_status (context, client->fallback_status);
  g_ptr_array_add (client->sessions, context);
  milter_client_context_set_finished_func (context, on_session_finished, client);
  milter_client_context_set_parking_lot (context, ensure_parking_lot (client), client->park_delay);
  g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_N_PROCESSING_SESSIONS]);
  g_signal_emit (client, signals[SIGNAL_CONNECTION_ESTABLISHED], 0, context);

  if (stream == NULL)
    {
      milter_client_context_start_socket (context, fd);
    }
  else if (!milter_client_context_start (context, stream, error))
    {
      milter_client_context_set_finished_func (context, NULL, NULL);
      milter_client_context_set_parking_lot (context, NULL, 0);
      remove_session (client, context);
      return NULL;
    }
  return context;
}

/**
 * milter_client_handle_stream:
 * @client: a #MilterClient
 * @stream: a connection to an MTA; its streams must be pollable
 * @error: return location for a #GError, or %NULL
 *
 * Serves an already connected stream: for tests, socket activation per
 * connection, or custom transports. Emits
 * #MilterClient::connection-established first. The session runs in the
 * client's main context, as the sessions it accepts do; like every
 * #MilterClient function, call it from the thread that runs that context.
 *
 * Returns: (transfer none) (nullable): the session's context, or %NULL
 *   with @error set
 *
 * Since: 1.0
 */
MilterClientContext *
milter_client_handle_stream (MilterClient  *client,
                             GIOStream     *stream,
                             GError       **error)
{
  g_return_val_if_fail (MILTER_IS_CLIENT (client), NULL);
  g_return_val_if_fail (G_IS_IO_STREAM (stream), NULL);

  return serve (client, stream, -1, error);
}

/**
 * milter_client_get_n_processing_sessions:
 * @client: a #MilterClient
 *
 * Gets the number of sessions in progress.
 *
 * Returns: the number of sessions
 *
 * Since: 1.0
 */
guint
milter_client_get_n_processing_sessions (MilterClient *client)
{
  g_return_val_if_fail (MILTER_IS_CLIENT (client), 0);

  return client->sessions->len;
}

/**
 * milter_client_get_worker_id:
 * @client: a #MilterClient
 *
 * Gets #MilterClient:worker-id.
 *
 * Returns: the worker number, or 0 outside a worker
 *
 * Since: 1.0
 */
guint
milter_client_get_worker_id (MilterClient *client)
{
  g_return_val_if_fail (MILTER_IS_CLIENT (client), 0);

  return client->worker_id;
}

static gboolean
on_workers_stopped (gpointer user_data)
{
  quit_if_done (user_data);
  return G_SOURCE_REMOVE;
}

/**
 * milter_client_shutdown:
 * @client: a #MilterClient
 *
 * Stops accepting (removing the unix socket files it created), lets the
 * sessions in progress finish for up to
 * #MilterClient:shutdown-grace-period seconds, then ends the rest
 * (#MilterClientContext::finished is emitted for each) and makes
 * milter_client_run() return. With workers, the workers are stopped the
 * same way.
 *
 * Since: 1.0
 */
void
milter_client_shutdown (MilterClient *client)
{
  g_return_if_fail (MILTER_IS_CLIENT (client));

  if (client->shutting_down)
    return;
  client->shutting_down = TRUE;
  g_ptr_array_set_size (client->listeners, 0);
  client->listening = FALSE;
  release_idle_source (client);

  if (client->workers != NULL)
    milter_workers_stop (client->workers, on_workers_stopped, client);
  start_grace_period (client);
  quit_if_done (client);
}

/* ---- run, workers, daemon -------------------------------------------- */

/* SIGTERM and SIGINT shut down; SIGHUP reloads (or is passed on to the
 * workers). */
static void
on_signal (int      signum,
           gpointer user_data)
{
  MilterClient *self = user_data;

  if (signum != SIGHUP)
    milter_client_shutdown (self);
  else if (self->workers != NULL)
    milter_workers_kill (self->workers, SIGHUP);
  else
    g_signal_emit (self, signals[SIGNAL_RELOAD], 0);
}

static const int handled_signals[] = { SIGTERM, SIGINT, SIGHUP };

/* From the start of milter_client_run(): a signal during the setup waits
 * in the pipe for the main loop, instead of killing the process with its
 * socket and PID files left behind and its workers orphaned. */
static gboolean
watch_signals (MilterClient  *self,
               GError       **error)
{
  g_autoptr(GError) local_error = NULL;

  self->signal_pipe = milter_signal_pipe_new (handled_signals, G_N_ELEMENTS (handled_signals),
                                              &local_error);
  if (self->signal_pipe == NULL)
    {
      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_LISTEN,
                   "Cannot create a pipe for signals: %s", local_error->message);
      return FALSE;
    }
  self->signal_tag = g_source_add_unix_fd (ensure_source (self),
                                           milter_signal_pipe_get_fd (self->signal_pipe), G_IO_IN);
  return TRUE;
}

static void
unwatch_signals (MilterClient *self)
{
  g_source_remove_unix_fd (self->source, self->signal_tag);
  self->signal_tag = NULL;
  g_clear_pointer (&self->signal_pipe, milter_signal_pipe_free);
  release_idle_source (self);
}

static void
run_loop (MilterClient *self)
{
  self->loop = g_main_loop_new (self->main_context, FALSE);
  if (!self->shutting_down)
    g_main_loop_run (self->loop);
  g_clear_pointer (&self->loop, g_main_loop_unref);
}

static void log_to_syslog (void);

/* In a worker started by milter_client_run(): serve from the inherited
 * sockets until told to stop. The parent owns socket files and PID file,
 * and has dropped privileges already. */
static gboolean
run_as_worker (MilterClient  *self,
               guint          worker_id,
               GList         *sockets)
{
  self->worker_id = worker_id;
  /* A daemon's workers log where it does. */
  if (self->daemon)
    log_to_syslog ();
  for (GList *l = sockets; l != NULL; l = l->next)
    g_ptr_array_add (self->listeners, listener_new (self, l->data));
  g_list_free (sockets);
  ignore_sigpipe ();
  self->listening = TRUE;
  self->shutting_down = FALSE;
  update_accepting (self);
  run_loop (self);
  g_ptr_array_set_size (self->listeners, 0);
  self->listening = FALSE;
  return TRUE;
}

static GPtrArray *
listening_sockets (MilterClient *self)
{
  GPtrArray *sockets = g_ptr_array_new ();

  for (guint i = 0; i < self->listeners->len; i++)
    g_ptr_array_add (sockets, ((Listener *) g_ptr_array_index (self->listeners, i))->socket);
  return sockets;
}

static gboolean
drop_privileges_and_write_pid_file (MilterClient  *self,
                                    GError       **error)
{
  if (!milter_daemon_drop_privileges (self->user, self->group, error))
    return FALSE;
  if (self->pid_file != NULL)
    {
      if (!milter_daemon_write_pid_file (self->pid_file, error))
        return FALSE;
      self->pid_file_written = TRUE;
    }
  return TRUE;
}

/* Detaches (with *ready_fd then set for milter_daemon_report_ready()),
 * drops privileges and writes the PID file. */
static gboolean
become_service (MilterClient  *self,
                gint          *ready_fd,
                GError       **error)
{
  if (self->pid_file != NULL && !g_path_is_absolute (self->pid_file))
    {
      /* A daemon works from /. */
      gchar *absolute = g_canonicalize_filename (self->pid_file, NULL);

      g_free (self->pid_file);
      self->pid_file = absolute;
    }
  if (self->daemon)
    {
      if (!milter_daemon_detach (self->signal_pipe, ready_fd, error))
        return FALSE;
      log_to_syslog ();
    }
  return drop_privileges_and_write_pid_file (self, error);
}

static gboolean
start_workers (MilterClient  *self,
               GError       **error)
{
  g_autoptr(GPtrArray) sockets = NULL;

  if (self->n_workers == 0)
    return TRUE;
  sockets = listening_sockets (self);
  self->workers = milter_workers_new (self->n_workers, sockets, self->start_directory,
                                      self->main_context);
  update_accepting (self);
  return milter_workers_start (self->workers, error);
}

/* Sets up the service, workers included. A daemon reports how that went
 * to the process that started it, which exits with it: a failure is never
 * silent. */
static gboolean
set_up_service (MilterClient  *self,
                GError       **error)
{
  g_autoptr(GError) local_error = NULL;
  gint ready_fd = -1;
  gboolean ok;

  ok = become_service (self, &ready_fd, &local_error) && start_workers (self, &local_error);
  if (ready_fd >= 0)
    milter_daemon_report_ready (ready_fd, local_error);
  if (!ok)
    g_propagate_error (error, g_steal_pointer (&local_error));
  return ok;
}

/* milter_client_run() with the signals watched. */
static gboolean
set_up_and_serve (MilterClient  *client,
                  GError       **error)
{
  gboolean ok = TRUE;
  GList *inherited = NULL;
  GError *worker_error = NULL;
  guint worker_id;

  worker_id = milter_workers_take_sockets (&inherited, &worker_error);
  if (worker_error != NULL)
    {
      g_propagate_error (error, worker_error);
      return FALSE;
    }
  if (worker_id > 0)
    return run_as_worker (client, worker_id, inherited);

  if (client->n_workers > 0 && !client->listening)
    {
      /* Bind only: the workers accept, not the parent. */
      ignore_sigpipe ();
      if (!open_listeners (client, error))
        return FALSE;
      if (client->inherited_connections->len > 0)
        {
          g_set_error_literal (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_SOCKET_ACTIVATION,
                               "Workers need listening sockets (systemd's Accept=no), not a "
                               "connection");
          g_ptr_array_set_size (client->listeners, 0);
          g_ptr_array_set_size (client->inherited_connections, 0);
          return FALSE;
        }
      client->listening = TRUE;
    }
  else if (!client->listening && !milter_client_listen (client, error))
    {
      return FALSE;
    }
  ok = set_up_service (client, error);
  if (ok)
    run_loop (client);
  if (client->pid_file_written)
    milter_daemon_remove_pid_file (client->pid_file);
  g_ptr_array_set_size (client->listeners, 0);
  client->listening = FALSE;
  g_clear_pointer (&client->workers, milter_workers_free);
  return ok;
}

/**
 * milter_client_run:
 * @client: a #MilterClient
 * @error: return location for a #GError, or %NULL
 *
 * Listens (if milter_client_listen() was not called), then runs the main
 * loop until milter_client_shutdown() or SIGTERM/SIGINT (or, serving only
 * a connection systemd passed, until that ends). Before serving it
 * detaches (#MilterClient:daemon), drops privileges (#MilterClient:user,
 * #MilterClient:group), writes the #MilterClient:pid-file, and starts
 * #MilterClient:n-workers workers, restarting any that dies; SIGHUP is
 * passed on to them. In a worker process it serves until SIGTERM.
 *
 * While it runs, it handles SIGTERM, SIGINT and SIGHUP itself (with its own
 * signal handlers, restored when it returns): do not watch these signals
 * with g_unix_signal_add() at the same time; connect to
 * #MilterClient::reload for SIGHUP. The handlers are installed first, so a
 * signal that arrives during the setup takes effect once it serves: SIGTERM
 * then stops it normally, removing the socket and PID files.
 *
 * Returns: %TRUE when the client stopped normally
 *
 * Since: 1.0
 */
gboolean
milter_client_run (MilterClient  *client,
                   GError       **error)
{
  gboolean ok;

  g_return_val_if_fail (MILTER_IS_CLIENT (client), FALSE);

  if (!watch_signals (client, error))
    return FALSE;
  g_free (client->start_directory);
  client->start_directory = g_get_current_dir ();
  ok = set_up_and_serve (client, error);
  unwatch_signals (client);
  return ok;
}

/* ---- options ---------------------------------------------------------- */

static GLogLevelFlags log_threshold = G_LOG_LEVEL_MESSAGE;
static gboolean log_level_given;
static gboolean writer_installed;

static const gchar *
log_domain_of (const GLogField *fields,
               gsize            n_fields)
{
  for (gsize i = 0; i < n_fields; i++)
    if (g_str_equal (fields[i].key, "GLIB_DOMAIN"))
      return fields[i].value;
  return NULL;
}

static GLogWriterOutput
filtered_writer (GLogLevelFlags   level,
                 const GLogField *fields,
                 gsize            n_fields,
                 gpointer         user_data)
{
  /* Lower flag values are more severe. Without --log-level, GLib's rules
   * (G_MESSAGES_DEBUG) hold, in syslog as on standard error. */
  if (log_level_given ? (level & G_LOG_LEVEL_MASK) > log_threshold
                      : g_log_writer_default_would_drop (level & G_LOG_LEVEL_MASK,
                                                         log_domain_of (fields, n_fields)))
    return G_LOG_WRITER_HANDLED;
  /* Standard error, or syslog once a daemon. */
  return milter_daemon_write_log (level, fields, n_fields, user_data);
}

/* A process can set its writer only once. */
static void
install_log_writer (void)
{
  if (!writer_installed)
    g_log_set_writer_func (filtered_writer, NULL, NULL);
  writer_installed = TRUE;
}

static void
log_to_syslog (void)
{
  install_log_writer ();
  milter_daemon_log_to_syslog ();
}

static gboolean
apply_log_level (const gchar  *name,
                 GError      **error)
{
  static const struct { const gchar *name; GLogLevelFlags level; } levels[] = {
    { "error", G_LOG_LEVEL_CRITICAL },
    { "warning", G_LOG_LEVEL_WARNING },
    { "message", G_LOG_LEVEL_MESSAGE },
    { "info", G_LOG_LEVEL_INFO },
    { "debug", G_LOG_LEVEL_DEBUG },
  };

  for (guint i = 0; i < G_N_ELEMENTS (levels); i++)
    if (g_ascii_strcasecmp (name, levels[i].name) == 0)
      {
        log_threshold = levels[i].level;
        log_level_given = TRUE;
        /* g_log_writer_default hides info and debug unless told. */
        if (log_threshold >= G_LOG_LEVEL_INFO)
          g_log_set_debug_enabled (TRUE);
        install_log_writer ();
        return TRUE;
      }
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               "Unknown log level “%s” (error, warning, message, info, debug)", name);
  return FALSE;
}

/* Sets a guint property from its option, unless the option was not given;
 * a value out of the property's range is the user's mistake, not ours. */
static gboolean
apply_number_option (MilterClient *client,
                     const gchar  *name,
                     gint          value,
                     GError      **error)
{
  GParamSpecUInt *pspec;

  if (value == OPTION_NOT_GIVEN)
    return TRUE;
  pspec = G_PARAM_SPEC_UINT (g_object_class_find_property (G_OBJECT_GET_CLASS (client), name));
  if (value < 0 || (guint) value < pspec->minimum)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "Invalid --%s %d: must be at least %u", name, value, pspec->minimum);
      return FALSE;
    }
  if ((guint) value > pspec->maximum)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "Invalid --%s %d: must be at most %u", name, value, pspec->maximum);
      return FALSE;
    }
  g_object_set (client, name, (guint) value, NULL);
  return TRUE;
}

/**
 * milter_client_apply_options:
 * @client: a #MilterClient
 * @error: return location for a #GError, or %NULL
 *
 * Applies what the options of milter_client_get_option_group() parsed to
 * the client's properties. The group does this itself after parsing;
 * call it only to re-apply.
 *
 * Returns: %TRUE if every option value was valid
 *
 * Since: 1.0
 */
gboolean
milter_client_apply_options (MilterClient  *client,
                             GError       **error)
{
  g_return_val_if_fail (MILTER_IS_CLIENT (client), FALSE);

  if (client->option_specs != NULL)
    {
      g_ptr_array_set_size (client->specs, 0);
      g_ptr_array_set_size (client->addresses, 0);
      for (guint i = 0; client->option_specs[i] != NULL; i++)
        if (!milter_client_add_connection_spec (client, client->option_specs[i], error))
          return FALSE;
    }
  if (client->option_unix_socket_mode != NULL)
    {
      guint64 mode;

      if (!g_ascii_string_to_unsigned (client->option_unix_socket_mode, 8, 0, 07777, &mode, NULL))
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "Invalid unix socket mode “%s” (octal, e.g. 0660)",
                       client->option_unix_socket_mode);
          return FALSE;
        }
      g_object_set (client, "unix-socket-mode", (guint) mode, NULL);
    }
  if (!apply_number_option (client, "timeout", client->option_timeout, error) ||
      !apply_number_option (client, "n-workers", client->option_n_workers, error) ||
      !apply_number_option (client, "max-connections", client->option_max_connections, error) ||
      !apply_number_option (client, "shutdown-grace-period",
                            client->option_shutdown_grace_period, error))
    return FALSE;
  if (client->option_unix_socket_group != NULL)
    g_object_set (client, "unix-socket-group", client->option_unix_socket_group, NULL);
  if (client->option_user != NULL)
    g_object_set (client, "user", client->option_user, NULL);
  if (client->option_group != NULL)
    g_object_set (client, "group", client->option_group, NULL);
  if (client->option_pid_file != NULL)
    g_object_set (client, "pid-file", client->option_pid_file, NULL);
  if (client->option_daemon)
    g_object_set (client, "daemon", TRUE, NULL);
  if (client->option_log_level != NULL && !apply_log_level (client->option_log_level, error))
    return FALSE;
  return TRUE;
}

static gboolean
post_parse (GOptionContext  *context,
            GOptionGroup    *group,
            gpointer         user_data,
            GError         **error)
{
  return milter_client_apply_options (user_data, error);
}

/**
 * milter_client_parse_command_line:
 * @client: a #MilterClient
 * @argv: (inout) (array zero-terminated=1) (element-type filename): the
 *   program's arguments; the options of milter_client_get_option_group()
 *   are removed, the rest stays
 * @error: return location for a #GError, or %NULL
 *
 * Parses the command line with the options of
 * milter_client_get_option_group() (and `--help`), for programs that cannot
 * use a #GOptionContext themselves, such as Python and Ruby ones, and for
 * short C programs. Options it does not know stay in @argv, for the
 * program's own parser; a program without options of its own should
 * refuse them, or a mistyped option goes unnoticed. In C, pass a copy of
 * main()'s @argv made with g_strdupv(): the strings it removes are freed.
 *
 * |[<!-- language="Python" -->
 * client = Milter.Client.new()
 * sys.argv = client.parse_command_line(sys.argv)
 * ]|
 *
 * Returns: (skip): %TRUE if the options were valid
 *
 * Since: 1.0
 */
gboolean
milter_client_parse_command_line (MilterClient   *client,
                                  gchar        ***argv,
                                  GError        **error)
{
  g_autoptr(GOptionContext) context = NULL;

  g_return_val_if_fail (MILTER_IS_CLIENT (client), FALSE);
  g_return_val_if_fail (argv != NULL && *argv != NULL, FALSE);

  context = g_option_context_new (NULL);
  g_option_context_set_main_group (context, milter_client_get_option_group (client));
  g_option_context_set_ignore_unknown_options (context, TRUE);
  return g_option_context_parse_strv (context, argv, error);
}

/**
 * milter_client_get_option_group: (skip)
 * @client: a #MilterClient
 *
 * Creates the command-line options of a milter program, applied to
 * @client when parsing succeeds: `-s/--connection-spec` (repeatable),
 * `--timeout`, `--n-workers`, `--max-connections`,
 * `--shutdown-grace-period`, `--unix-socket-mode`, `--unix-socket-group`,
 * `--user`, `--group`, `--daemon`, `--pid-file` and `--log-level`.
 * `--n-workers`, `--user`, `--group`, `--daemon` and `--pid-file` take
 * effect in milter_client_run(); a program that calls
 * milter_client_listen() and runs its own main loop does that itself.
 * Bindings, which have no use for a #GOptionGroup, call
 * milter_client_parse_command_line() instead.
 *
 * Returns: (transfer full): a #GOptionGroup to add to a #GOptionContext
 *
 * Since: 1.0
 */
GOptionGroup *
milter_client_get_option_group (MilterClient *client)
{
  GOptionEntry entries[] = {
    { "connection-spec", 's', 0, G_OPTION_ARG_STRING_ARRAY, &client->option_specs,
      "Where to listen: unix:PATH, inet:PORT[@HOST] or inet6:PORT[@HOST] "
      "(default: systemd's sockets, or " MILTER_CLIENT_DEFAULT_CONNECTION_SPEC ")", "SPEC" },
    { "timeout", 0, 0, G_OPTION_ARG_INT, &client->option_timeout,
      "Seconds of MTA silence before a session ends (default 7210)", "SECONDS" },
    { "n-workers", 0, 0, G_OPTION_ARG_INT, &client->option_n_workers,
      "Worker processes to start (default 0; milter_client_run() only)", "N" },
    { "max-connections", 0, 0, G_OPTION_ARG_INT, &client->option_max_connections,
      "The most sessions at once (default 0: no limit)", "N" },
    { "shutdown-grace-period", 0, 0, G_OPTION_ARG_INT, &client->option_shutdown_grace_period,
      "Seconds sessions may take to finish after SIGTERM (default 30)", "SECONDS" },
    { "unix-socket-mode", 0, 0, G_OPTION_ARG_STRING, &client->option_unix_socket_mode,
      "Permissions of the unix socket (default 0660)", "MODE" },
    { "unix-socket-group", 0, 0, G_OPTION_ARG_STRING, &client->option_unix_socket_group,
      "Group of the unix socket", "GROUP" },
    { "user", 0, 0, G_OPTION_ARG_STRING, &client->option_user,
      "Run as USER after binding (milter_client_run() only)", "USER" },
    { "group", 0, 0, G_OPTION_ARG_STRING, &client->option_group,
      "Run as GROUP after binding (milter_client_run() only)", "GROUP" },
    { "daemon", 0, 0, G_OPTION_ARG_NONE, &client->option_daemon,
      "Detach from the terminal and log to syslog (milter_client_run() only)", NULL },
    { "pid-file", 0, 0, G_OPTION_ARG_FILENAME, &client->option_pid_file,
      "Write the process ID to FILE (milter_client_run() only)", "FILE" },
    { "log-level", 0, 0, G_OPTION_ARG_STRING, &client->option_log_level,
      "Log at LEVEL and above: error, warning, message, info, debug", "LEVEL" },
    G_OPTION_ENTRY_NULL
  };
  GOptionGroup *group;

  g_return_val_if_fail (MILTER_IS_CLIENT (client), NULL);

  group = g_option_group_new ("milter", "Milter options:", "Show the milter options",
                              g_object_ref (client), g_object_unref);
  g_option_group_add_entries (group, entries);
  g_option_group_set_parse_hooks (group, NULL, post_parse);
  return group;
}
