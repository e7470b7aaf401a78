/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "milter/client/milter-client-context-private.h"
#include "milter/client/milter-client-private.h"
#include "milter/client/milter-daemon-private.h"
#include "mta-harness.h"
#include "test-util.h"

/* MilterClient over real sockets. Tests that need a process of their own
 * (workers, socket activation, privileges, a daemon) run this program in
 * --serve mode. */

/* ---- the filter every test serves ----------------------------------------- */

static gint n_in_progress_max;

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  MilterClient *client = milter_client_context_get_client (context);
  g_autofree gchar *served_by = g_strdup_printf ("%d %u", (int) getpid (),
                                                 client != NULL ? milter_client_get_worker_id (client) : 0);
  g_autofree gchar *ids = g_strdup_printf ("%d %d %d %d", (int) getuid (), (int) geteuid (),
                                           (int) getgid (), (int) getegid ());

  g_assert_true (milter_client_context_add_header (context, "X-Served-By", served_by, NULL));
  g_assert_true (milter_client_context_add_header (context, "X-Ids", ids, NULL));
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_helo (MilterClientContext *context,
         const gchar         *fqdn,
         gpointer             user_data)
{
  return g_str_equal (fqdn, "reject.example") ? MILTER_STATUS_REJECT : MILTER_STATUS_CONTINUE;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  n_in_progress_max = MAX (n_in_progress_max, (gint) milter_client_get_n_processing_sessions (client));
  if (g_strcmp0 (g_getenv ("TEST_CLIENT_LOG_SESSIONS"), "debug") == 0)
    g_debug ("session in worker %u", milter_client_get_worker_id (client));
  else if (g_getenv ("TEST_CLIENT_LOG_SESSIONS") != NULL)
    g_message ("session in worker %u", milter_client_get_worker_id (client));
  g_signal_connect (context, "helo", G_CALLBACK (on_helo), NULL);
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), NULL);
}

/* SIGHUP: leave a mark next to the socket. */
static void
on_reload (MilterClient *client,
           gpointer      user_data)
{
  g_autofree gchar *dir = g_path_get_dirname (milter_client_get_connection_spec (client) + strlen ("unix:"));
  g_autofree gchar *name = g_strdup_printf ("reloaded-%d", (int) getpid ());
  g_autofree gchar *mark = g_build_filename (dir, name, NULL);

  g_file_set_contents (mark, "", 0, NULL);
}

static void
on_client_error (MilterClient *client,
                 GError       *error,
                 gpointer      user_data)
{
  g_printerr ("client error: %s\n", error->message);
}

/* TEST_CLIENT_RAISE_AT_LISTEN=SIGNUM: a signal in the middle of the setup,
 * once the socket is bound and before the PID file and the workers. */
static void
raise_at_listen (MilterClient   *client,
                 GSocketAddress *address,
                 gpointer        user_data)
{
  raise (GPOINTER_TO_INT (user_data));
}

/* --serve [client options]: a filter program built on the option group. */
static int
serve (int    argc,
       char **argv)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GOptionContext) options = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;
  const gchar *nofile = g_getenv ("TEST_CLIENT_NOFILE");
  const gchar *nproc = g_getenv ("TEST_CLIENT_NPROC");
  const gchar *log = g_getenv ("TEST_CLIENT_STDERR");

  g_option_context_add_group (options, milter_client_get_option_group (client));
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("serve: %s\n", error->message);
      return 2;
    }
  if (log != NULL)
    {
      int fd = open (log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);

      dup2 (fd, STDERR_FILENO);
      close (fd);
      /* Workers inherit the descriptor: they must not truncate the file. */
      g_unsetenv ("TEST_CLIENT_STDERR");
    }
  if (nofile != NULL)
    {
      struct rlimit limit = { (rlim_t) atoi (nofile), (rlim_t) atoi (nofile) };

      setrlimit (RLIMIT_NOFILE, &limit);
    }
  if (nproc != NULL)
    {
      struct rlimit limit = { (rlim_t) atoi (nproc), (rlim_t) atoi (nproc) };

      setrlimit (RLIMIT_NPROC, &limit);
    }
  g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established), NULL);
  g_signal_connect (client, "reload", G_CALLBACK (on_reload), NULL);
  g_signal_connect (client, "error", G_CALLBACK (on_client_error), NULL);
  if (g_getenv ("TEST_CLIENT_RAISE_AT_LISTEN") != NULL)
    {
      int signum = atoi (g_getenv ("TEST_CLIENT_RAISE_AT_LISTEN"));

      g_unsetenv ("TEST_CLIENT_RAISE_AT_LISTEN");  /* not in the workers */
      g_signal_connect (client, "listen-started", G_CALLBACK (raise_at_listen), GINT_TO_POINTER (signum));
    }
  g_object_set (client, "shutdown-grace-period", 2, NULL);
  /* A filter slow to start, as one that loads much before it serves. */
  if (g_getenv ("TEST_CLIENT_START_DELAY_MS") != NULL)
    g_usleep (atoi (g_getenv ("TEST_CLIENT_START_DELAY_MS")) * 1000);
  if (!milter_client_run (client, &error))
    {
      g_printerr ("serve: %s\n", error->message);
      return 1;
    }
  return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static gchar *
make_tmp_dir (void)
{
  g_autoptr(GError) error = NULL;
  gchar *dir = g_dir_make_tmp ("milter-client-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

static void
remove_tmp_dir (const gchar *dir)
{
  g_autoptr(GDir) handle = g_dir_open (dir, 0, NULL);
  const gchar *name;

  while (handle != NULL && (name = g_dir_read_name (handle)) != NULL)
    {
      g_autofree gchar *path = g_build_filename (dir, name, NULL);
      g_unlink (path);
    }
  g_rmdir (dir);
}

static MtaHarness *
connect_to (GSocketAddress *address)
{
  g_autoptr(GSocket) socket = g_socket_new (g_socket_address_get_family (address),
                                            G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, NULL);
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (socket);
  g_socket_connect (socket, address, NULL, &error);
  g_assert_no_error (error);
  return mta_harness_new (socket);
}

static MtaHarness *
connect_to_spec (const gchar *spec)
{
  g_autoptr(GSocketAddress) address = milter_connection_spec_parse (spec, NULL);

  return connect_to (address);
}

/* An MTA connected to spec that has negotiated protocol 6 with everything
 * offered. */
static MtaHarness *
connect_negotiated (const gchar *spec)
{
  MtaHarness *mta = connect_to_spec (spec);

  mta_harness_negotiate (mta, 6, 0x1ff, 0x1fffff);
  g_free (mta_harness_read (mta));
  return mta;
}

/* Runs one message through the filter; returns the X-Served-By value. */
static gchar *
run_session (MtaHarness *mta)
{
  g_autofree gchar *served_by = NULL;
  g_autofree gchar *ids = NULL;

  mta_harness_negotiate (mta, 6, 0x1ff, 0x1fffff);
  g_free (mta_harness_read (mta));
  mta_harness_helo (mta, "client.example");
  mta_harness_expect (mta, "c");
  mta_harness_end_of_message (mta);
  served_by = mta_harness_read (mta);
  ids = mta_harness_read (mta);
  g_assert_true (g_str_has_prefix (served_by, "h X-Served-By: "));
  g_assert_true (g_str_has_prefix (ids, "h X-Ids: "));
  mta_harness_expect (mta, "c");
  mta_harness_simple (mta, 'Q');
  return g_strdup (served_by + strlen ("h X-Served-By: "));
}

static guint
count_fds (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint n = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

/* Runs the main loop until @count (of @data) is @n, for 5 s at most. */
static void
run_until_count (guint  (*count) (gpointer data),
                 gpointer data,
                 guint    n)
{
  gint64 until = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

  while (count (data) != n && g_get_monotonic_time () < until)
    g_main_context_iteration (NULL, FALSE), g_usleep (500);
}

static guint
count_sessions (gpointer client)
{
  return milter_client_get_n_processing_sessions (client);
}

static void
wait_for_sessions (MilterClient *client,
                   guint         n)
{
  run_until_count (count_sessions, client, n);
  g_assert_cmpuint (milter_client_get_n_processing_sessions (client), ==, n);
}

static MilterClient *
new_client (const gchar *spec)
{
  MilterClient *client = milter_client_new ();
  g_autoptr(GError) error = NULL;

  g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established), NULL);
  g_assert_true (milter_client_set_connection_spec (client, spec, &error));
  g_assert_no_error (error);
  return client;
}

static gchar *
first_listen_spec (MilterClient *client)
{
  GList *addresses = milter_client_get_listen_addresses (client);
  gchar *spec;

  g_assert_nonnull (addresses);
  spec = milter_connection_spec_format (addresses->data, NULL);
  g_list_free_full (addresses, g_object_unref);
  return spec;
}

/* ---- listening ------------------------------------------------------------ */

static void
test_unix_socket (void)
{
  g_autofree gchar *dir = make_tmp_dir ();
  g_autofree gchar *path = g_build_filename (dir, "milter.sock", NULL);
  g_autofree gchar *spec = g_strconcat ("unix:", path, NULL);
  g_autoptr(MilterClient) client = new_client (spec);
  g_autoptr(GError) error = NULL;
  struct group *daemon_group = getgrnam ("daemon");
  gid_t gid = (geteuid () == 0 && daemon_group != NULL) ? daemon_group->gr_gid : getgid ();
  g_autofree gchar *group = g_strdup_printf ("%d", (int) gid);
  MtaHarness *mta;
  g_autofree gchar *served_by = NULL;
  struct stat st;

  g_object_set (client, "unix-socket-mode", 0640, "unix-socket-group", group, NULL);
  g_assert_true (milter_client_listen (client, &error));
  g_assert_no_error (error);
  g_assert_cmpint (lstat (path, &st), ==, 0);
  g_assert_true (S_ISSOCK (st.st_mode));
  g_assert_cmpint (st.st_mode & 07777, ==, 0640);
  g_assert_cmpint (st.st_gid, ==, gid);

  mta = connect_to_spec (spec);
  served_by = run_session (mta);
  g_assert_true (g_str_has_suffix (served_by, " 0"));
  mta_harness_free (mta);
  wait_for_sessions (client, 0);

  milter_client_shutdown (client);
  g_assert_cmpint (lstat (path, &st), ==, -1);
  remove_tmp_dir (dir);
}

/* At exit the client removes its own socket file only: another instance
 * started at the same moment may have put its socket at the path (an old
 * version replaced ours that way), and that one must stay. */
static void
test_unix_socket_of_another_instance_stays (void)
{
  g_autofree gchar *dir = make_tmp_dir ();
  g_autofree gchar *path = g_build_filename (dir, "milter.sock", NULL);
  g_autofree gchar *other_path = g_build_filename (dir, "other.sock", NULL);
  g_autofree gchar *spec = g_strconcat ("unix:", path, NULL);
  g_autoptr(MilterClient) client = new_client (spec);
  g_autoptr(GSocketAddress) other_address = g_unix_socket_address_new (other_path);
  g_autoptr(GSocket) other = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                                           G_SOCKET_PROTOCOL_DEFAULT, NULL);
  g_autoptr(GError) error = NULL;
  struct stat before, after;

  g_assert_true (milter_client_listen (client, &error));
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (other, other_address, FALSE, &error));
  g_assert_no_error (error);
  g_assert_cmpint (rename (other_path, path), ==, 0);
  g_assert_cmpint (lstat (path, &before), ==, 0);

  milter_client_shutdown (client);
  g_clear_object (&client);
  g_assert_cmpint (lstat (path, &after), ==, 0);
  g_assert_cmpuint (after.st_ino, ==, before.st_ino);
  unlink (path);
  remove_tmp_dir (dir);
}

/* A peer that sees the socket file can connect at once, and the file
 * never has wider permissions than asked: a thread spins on the path
 * while the client starts listening, and connects the moment it sees it. */
typedef struct
{
  const gchar *path;
  gint stop;
  guint refused;
  guint wrong_mode;
} SocketWatch;

static gpointer
watch_socket (gpointer data)
{
  SocketWatch *watch = data;
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  struct stat st;
  int fd;

  g_strlcpy (address.sun_path, watch->path, sizeof address.sun_path);
  while (lstat (watch->path, &st) < 0)
    if (g_atomic_int_get (&watch->stop))
      return NULL;
  if ((st.st_mode & 07777) != 0640)
    watch->wrong_mode++;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint (fd, >=, 0);
  if (connect (fd, (struct sockaddr *) &address, sizeof address) < 0)
    watch->refused++;
  close (fd);
  return NULL;
}

static void
test_unix_socket_ready_when_visible (void)
{
  g_autofree gchar *dir = make_tmp_dir ();
  g_autofree gchar *path = g_build_filename (dir, "milter.sock", NULL);
  g_autofree gchar *spec = g_strconcat ("unix:", path, NULL);
  SocketWatch watch = { .path = path };

  for (guint round = 0; round < 200; round++)
    {
      g_autoptr(MilterClient) client = new_client (spec);
      g_autoptr(GError) error = NULL;
      GThread *thread;

      g_object_set (client, "unix-socket-mode", 0640, NULL);
      g_atomic_int_set (&watch.stop, 0);
      thread = g_thread_new ("watch", watch_socket, &watch);
      g_assert_true (milter_client_listen (client, &error));
      g_assert_no_error (error);
      g_atomic_int_set (&watch.stop, 1);
      g_thread_join (thread);
      milter_client_shutdown (client);
      g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
    }
  g_assert_cmpuint (watch.refused, ==, 0);
  g_assert_cmpuint (watch.wrong_mode, ==, 0);
  /* Nothing is left beside it, temporary names included. */
  {
    g_autoptr(GDir) handle = g_dir_open (dir, 0, NULL);

    g_assert_null (g_dir_read_name (handle));
  }
  remove_tmp_dir (dir);
}

static void
test_unix_socket_in_the_way (void)
{
  g_autofree gchar *dir = make_tmp_dir ();
  g_autofree gchar *path = g_build_filename (dir, "s", NULL);
  g_autofree gchar *spec = g_strconcat ("unix:", path, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) address = milter_connection_spec_parse (spec, NULL);
  struct stat st;

  /* A regular file is never replaced. */
  {
    g_autoptr(MilterClient) client = new_client (spec);

    g_assert_true (g_file_set_contents (path, "precious", -1, NULL));
    g_assert_false (milter_client_listen (client, &error));
    g_assert_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_NOT_A_SOCKET);
    g_clear_error (&error);
    g_assert_cmpint (lstat (path, &st), ==, 0);
    g_assert_true (S_ISREG (st.st_mode));
    g_unlink (path);
  }

  /* A live socket is someone else's. */
  {
    g_autoptr(MilterClient) client = new_client (spec);
    g_autoptr(GSocket) other = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                                             G_SOCKET_PROTOCOL_DEFAULT, NULL);

    g_assert_true (g_socket_bind (other, address, FALSE, NULL));
    g_assert_true (g_socket_listen (other, NULL));
    g_assert_false (milter_client_listen (client, &error));
    g_assert_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_ADDRESS_IN_USE);
    g_clear_error (&error);
    g_socket_close (other, NULL);
  }

  /* So is one too busy to take a connection now (its backlog full): only
   * a refused connection shows a socket file stale. */
  {
    g_autoptr(MilterClient) client = new_client (spec);
    g_autoptr(GSocket) other = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                                             G_SOCKET_PROTOCOL_DEFAULT, NULL);
    g_autoptr(GArray) waiting = g_array_new (FALSE, FALSE, sizeof (int));
    struct sockaddr_un target = { .sun_family = AF_UNIX };
    ino_t inode;

    g_unlink (path);
    g_socket_set_listen_backlog (other, 0);
    g_assert_true (g_socket_bind (other, address, FALSE, NULL));
    g_assert_true (g_socket_listen (other, NULL));
    g_assert_cmpint (lstat (path, &st), ==, 0);
    inode = st.st_ino;
    g_strlcpy (target.sun_path, path, sizeof target.sun_path);
    for (guint i = 0; i < 64; i++)
      {
        int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int result = connect (fd, (struct sockaddr *) &target, sizeof target);

        g_array_append_val (waiting, fd);
        if (result < 0 && errno == EAGAIN)
          break;
        g_assert_cmpint (result, ==, 0);
      }
    g_assert_false (milter_client_listen (client, &error));
    g_assert_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_ADDRESS_IN_USE);
    g_test_message ("%s", error->message);
    g_clear_error (&error);
    g_assert_cmpint (lstat (path, &st), ==, 0);
    g_assert_cmpuint (st.st_ino, ==, inode);
    for (guint i = 0; i < waiting->len; i++)
      close (g_array_index (waiting, int, i));
    g_socket_close (other, NULL);
  }

  /* The dead one left behind is stale: replaced. */
  {
    g_autoptr(MilterClient) client = new_client (spec);
    MtaHarness *mta;
    g_autofree gchar *served_by = NULL;

    g_assert_cmpint (lstat (path, &st), ==, 0);
    g_assert_true (milter_client_listen (client, &error));
    g_assert_no_error (error);
    mta = connect_to_spec (spec);
    served_by = run_session (mta);
    mta_harness_free (mta);
    milter_client_shutdown (client);
  }
  remove_tmp_dir (dir);
}

static MilterStatus
check_nodelay (MilterClientContext *context,
               const gchar         *host,
               GSocketAddress      *address,
               gpointer             user_data)
{
  GIOStream *stream = milter_client_context_get_stream (context);
  GSocket *socket = g_socket_connection_get_socket (G_SOCKET_CONNECTION (stream));
  gint value = 0;

  /* Made on the first call from the accepted descriptor, then kept. */
  g_assert_true (milter_client_context_get_stream (context) == stream);
  g_assert_true (g_socket_get_option (socket, IPPROTO_TCP, TCP_NODELAY, &value, NULL));
  *(gboolean *) user_data = value != 0;
  return MILTER_STATUS_CONTINUE;
}

static void
connect_nodelay_check (MilterClient        *client,
                       MilterClientContext *context,
                       gpointer             user_data)
{
  g_signal_connect (context, "connect", G_CALLBACK (check_nodelay), user_data);
}

static void
on_listen_started (MilterClient   *client,
                   GSocketAddress *address,
                   GSocketAddress **where)
{
  g_set_object (where, address);
}

static void
test_inet (void)
{
  g_autoptr(MilterClient) client = new_client ("inet:0@127.0.0.1");
  g_autoptr(GSocketAddress) started = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *spec = NULL;
  gboolean nodelay = FALSE;
  MtaHarness *mta;

  g_signal_connect (client, "listen-started", G_CALLBACK (on_listen_started), &started);
  g_signal_connect (client, "connection-established", G_CALLBACK (connect_nodelay_check), &nodelay);
  g_assert_true (milter_client_listen (client, &error));
  g_assert_no_error (error);

  /* Port 0 became a real port, on loopback only. */
  g_assert_nonnull (started);
  g_assert_cmpuint (g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (started)), >, 0);
  spec = first_listen_spec (client);
  g_assert_true (g_str_has_suffix (spec, "@127.0.0.1"));

  mta = connect_to (started);
  mta_harness_negotiate (mta, 6, 0x1ff, 0x1fffff);
  g_free (mta_harness_read (mta));
  mta_harness_connect (mta, "h", NULL);
  mta_harness_expect (mta, "c");
  g_assert_true (nodelay);
  mta_harness_free (mta);
  milter_client_shutdown (client);
}

static void
test_inet6 (void)
{
  g_autoptr(MilterClient) client = new_client ("inet6:0@::1");
  g_autoptr(GError) error = NULL;
  g_autofree gchar *spec = NULL;
  g_autofree gchar *served_by = NULL;
  MtaHarness *mta;

  if (!milter_client_listen (client, &error))
    {
      g_test_skip_printf ("no IPv6 loopback here: %s", error->message);
      return;
    }
  spec = first_listen_spec (client);
  g_assert_true (g_str_has_prefix (spec, "inet6:"));
  g_assert_true (g_str_has_suffix (spec, "@::1"));
  mta = connect_to_spec (spec);
  served_by = run_session (mta);
  mta_harness_free (mta);
  milter_client_shutdown (client);
}

/* Without a spec or socket activation: port 10025 on loopback, never on
 * all interfaces. */
static void
test_default_spec (void)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GError) error = NULL;
  g_autofree gchar *spec = NULL;

  g_unsetenv ("LISTEN_FDS");
  if (!milter_client_listen (client, &error))
    {
      g_assert_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_ADDRESS_IN_USE);
      g_test_skip ("port 10025 is taken here");
      return;
    }
  spec = first_listen_spec (client);
  g_assert_cmpstr (spec, ==, "inet:10025@127.0.0.1");
  g_assert_cmpstr (milter_client_get_connection_spec (client), ==, MILTER_CLIENT_DEFAULT_CONNECTION_SPEC);
  milter_client_shutdown (client);
}

static void
test_listen_twice (void)
{
  g_autoptr(MilterClient) client = new_client ("inet:0@127.0.0.1");
  g_autoptr(GError) error = NULL;

  g_assert_true (milter_client_listen (client, NULL));
  g_assert_false (milter_client_listen (client, &error));
  g_assert_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_STATE);
  g_clear_error (&error);
  g_assert_false (milter_client_add_connection_spec (client, "inet:0", &error));
  g_assert_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_STATE);
  milter_client_shutdown (client);
}

/* LISTEN_FDS=0 (systemd passed nothing) means no sockets, not an error;
 * the variables are consumed either way. */
static void
test_activation_without_sockets (void)
{
  g_autofree gchar *pid = g_strdup_printf ("%d", (int) getpid ());
  g_autoptr(GError) error = NULL;

  g_setenv ("LISTEN_PID", pid, TRUE);
  g_setenv ("LISTEN_FDS", "0", TRUE);
  g_assert_null (milter_daemon_take_activation_sockets (&error));
  g_assert_no_error (error);
  g_assert_null (g_getenv ("LISTEN_PID"));
  g_assert_null (g_getenv ("LISTEN_FDS"));

  g_setenv ("LISTEN_PID", pid, TRUE);
  g_setenv ("LISTEN_FDS", "many", TRUE);
  g_assert_null (milter_daemon_take_activation_sockets (&error));
  g_assert_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_SOCKET_ACTIVATION);
}

/* A socket that does not listen is refused at once: accept() would fail
 * on it at every wake-up. */
static void
test_add_socket_not_listening (void)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GSocket) bound = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                           G_SOCKET_PROTOCOL_DEFAULT, NULL);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GError) error = NULL;

  g_assert_true (g_socket_bind (bound, address, TRUE, NULL));
  g_assert_false (milter_client_add_listening_socket (client, bound, &error));
  g_assert_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_LISTEN);
  g_assert_nonnull (strstr (error->message, "does not listen"));
  g_clear_error (&error);
  g_assert_true (g_socket_listen (bound, NULL));
  g_assert_true (milter_client_add_listening_socket (client, bound, &error));
  g_assert_no_error (error);
}

static void
count_client_errors (MilterClient *client,
                     GError       *error,
                     gpointer      user_data)
{
  (*(guint *) user_data)++;
}

/* CPU time this process used, in milliseconds. */
static gint64
cpu_ms (void)
{
  struct rusage usage;

  g_assert_cmpint (getrusage (RUSAGE_SELF, &usage), ==, 0);
  return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000 +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1000;
}

/* A listening socket that stops listening under the client (accept()
 * fails with EINVAL at every wake-up) is retried after pauses, with one
 * warning, instead of spinning the loop. */
static void
test_accept_error_backs_off (void)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GSocket) listening = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                               G_SOCKET_PROTOCOL_DEFAULT, NULL);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  guint errors = 0;
  gint64 before;

  g_assert_true (g_socket_bind (listening, address, TRUE, NULL));
  g_assert_true (g_socket_listen (listening, NULL));
  g_assert_true (milter_client_add_listening_socket (client, listening, NULL));
  g_signal_connect (client, "error", G_CALLBACK (count_client_errors), &errors);
  g_assert_true (milter_client_listen (client, NULL));
  g_test_expect_message ("Milter", G_LOG_LEVEL_WARNING, "Cannot accept connections: *");
  /* The socket is closed for new connections: it no longer listens, and
   * polls as hung up. */
  g_assert_cmpint (shutdown (g_socket_get_fd (listening), SHUT_RD), ==, 0);
  test_util_run_for (200);
  g_test_assert_expected_messages ();
  g_assert_cmpuint (errors, ==, 1);
  /* A spinning loop would use all of the time. */
  before = cpu_ms ();
  test_util_run_for (600);
  g_assert_cmpint (cpu_ms () - before, <, 200);
  g_assert_cmpuint (errors, ==, 1);
  milter_client_shutdown (client);
}

static void
test_several_specs (void)
{
  g_autofree gchar *dir = make_tmp_dir ();
  g_autofree gchar *unix_spec = g_strdup_printf ("unix:%s/a", dir);
  g_autoptr(MilterClient) client = new_client ("inet:0@127.0.0.1");
  g_autoptr(GError) error = NULL;
  GList *addresses;

  g_assert_true (milter_client_add_connection_spec (client, unix_spec, &error));
  g_assert_true (milter_client_listen (client, &error));
  g_assert_no_error (error);
  addresses = milter_client_get_listen_addresses (client);
  g_assert_cmpuint (g_list_length (addresses), ==, 2);
  for (GList *l = addresses; l != NULL; l = l->next)
    {
      g_autofree gchar *spec = milter_connection_spec_format (l->data, NULL);
      MtaHarness *mta = connect_to (l->data);
      g_autofree gchar *served_by = run_session (mta);

      g_test_message ("served on %s by %s", spec, served_by);
      mta_harness_free (mta);
    }
  g_list_free_full (addresses, g_object_unref);
  milter_client_shutdown (client);
  remove_tmp_dir (dir);
}

/* ---- sessions ---------------------------------------------------------- */

/* 200 sessions at once, all answered right; then nothing is left: no
 * session, no file descriptor. */
static void
test_concurrent_sessions (void)
{
  /* The default main context creates its wake-up descriptor on first use. */
  guint fds_before = (g_main_context_iteration (NULL, FALSE), count_fds ());
  g_autoptr(MilterClient) client = new_client ("inet:0@127.0.0.1");
  g_autoptr(GError) error = NULL;
  g_autofree gchar *spec = NULL;
  MtaHarness *mtas[200];

  g_assert_true (milter_client_listen (client, &error));
  spec = first_listen_spec (client);
  for (guint i = 0; i < G_N_ELEMENTS (mtas); i++)
    {
      mtas[i] = connect_to_spec (spec);
      mta_harness_negotiate (mtas[i], 6, 0x1ff, 0x1fffff);
    }
  for (guint i = 0; i < G_N_ELEMENTS (mtas); i++)
    {
      g_free (mta_harness_read (mtas[i]));
      mta_harness_helo (mtas[i], i % 2 == 0 ? "reject.example" : "ok.example");
    }
  wait_for_sessions (client, G_N_ELEMENTS (mtas));
  for (guint i = 0; i < G_N_ELEMENTS (mtas); i++)
    mta_harness_expect (mtas[i], i % 2 == 0 ? "r" : "c");
  for (guint i = 0; i < G_N_ELEMENTS (mtas); i++)
    {
      mta_harness_simple (mtas[i], 'Q');
      mta_harness_free (mtas[i]);
    }
  wait_for_sessions (client, 0);
  milter_client_shutdown (client);
  g_clear_object (&client);
  if (count_fds () != fds_before)
    {
      g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
      const gchar *name;

      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree gchar *path = g_strconcat ("/proc/self/fd/", name, NULL);
          g_autofree gchar *target = g_file_read_link (path, NULL);
          g_test_message ("fd %s → %s", name, target);
        }
    }
  g_assert_cmpuint (count_fds (), ==, fds_before);
}

/* ---- idle sessions --------------------------------------------------------- */

static void
collect_context (MilterClient        *client,
                 MilterClientContext *context,
                 gpointer             user_data)
{
  g_ptr_array_add (user_data, g_object_ref (context));
}

static guint
count_parked (gpointer data)
{
  GPtrArray *contexts = data;
  guint n = 0;

  for (guint i = 0; i < contexts->len; i++)
    n += milter_client_context_is_parked (g_ptr_array_index (contexts, i));
  return n;
}

/* A client listening on a free local port whose sessions park after
 * park_delay_ms; each new context is added to contexts. */
static MilterClient *
new_parking_client (guint       park_delay_ms,
                    GPtrArray  *contexts,
                    gchar     **spec)
{
  MilterClient *client = new_client ("inet:0@127.0.0.1");
  g_autoptr(GError) error = NULL;

  milter_client_set_park_delay (client, park_delay_ms * 1000);
  g_signal_connect (client, "connection-established", G_CALLBACK (collect_context), contexts);
  g_assert_true (milter_client_listen (client, &error));
  g_assert_no_error (error);
  *spec = first_listen_spec (client);
  return client;
}

static void
wait_for_parked (GPtrArray *contexts,
                 guint      n)
{
  run_until_count (count_parked, contexts, n);
  g_assert_cmpuint (count_parked (contexts), ==, n);
}

/* Idle sessions wait in the client's parking lot (one epoll descriptor)
 * instead of in the main loop's poll set; input, the MTA going away and
 * the idle timeout all still reach them. */
static void
test_idle_sessions_park (void)
{
  guint fds_before = (g_main_context_iteration (NULL, FALSE), count_fds ());
  g_autoptr(GPtrArray) contexts = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree gchar *spec = NULL;
  g_autoptr(MilterClient) client = new_parking_client (50, contexts, &spec);
  MtaHarness *mtas[40];

  for (guint i = 0; i < G_N_ELEMENTS (mtas); i++)
    {
      mtas[i] = connect_negotiated (spec);
      mta_harness_helo (mtas[i], "ok.example");
      mta_harness_expect (mtas[i], "c");
    }
  wait_for_sessions (client, G_N_ELEMENTS (mtas));
  wait_for_parked (contexts, G_N_ELEMENTS (mtas));

  /* Input wakes a session up; it parks again once idle. */
  for (guint i = 0; i < 20; i++)
    mta_harness_helo (mtas[i], i % 2 == 0 ? "reject.example" : "ok.example");
  for (guint i = 0; i < 20; i++)
    mta_harness_expect (mtas[i], i % 2 == 0 ? "r" : "c");
  g_assert_cmpuint (count_parked (contexts), <, G_N_ELEMENTS (mtas));
  wait_for_parked (contexts, G_N_ELEMENTS (mtas));

  /* A packet that comes in pieces keeps its session awake until whole. */
  mta_harness_send_hex (mtas[20], "0000000c 48 6f6b2e6578");
  wait_for_parked (contexts, G_N_ELEMENTS (mtas) - 1);
  g_usleep (100 * 1000);
  g_main_context_iteration (NULL, FALSE);
  g_assert_false (milter_client_context_is_parked (g_ptr_array_index (contexts, 20)));
  mta_harness_send_hex (mtas[20], "616d706c6500");
  mta_harness_expect (mtas[20], "c");

  /* An MTA that goes away ends its parked session. */
  wait_for_parked (contexts, G_N_ELEMENTS (mtas));
  for (guint i = 30; i < G_N_ELEMENTS (mtas); i++)
    g_clear_pointer (&mtas[i], mta_harness_free);
  wait_for_sessions (client, 30);

  /* The idle timeout ends a parked session too. */
  milter_client_context_set_timeout (g_ptr_array_index (contexts, 0), 1);
  mta_harness_expect_closed (mtas[0]);
  wait_for_sessions (client, 29);

  /* The client goes first: its sessions end with it, nothing is left. */
  g_clear_object (&client);
  for (guint i = 0; i < 30; i++)
    g_clear_pointer (&mtas[i], mta_harness_free);
  g_ptr_array_set_size (contexts, 0);
  g_main_context_iteration (NULL, FALSE);
  g_assert_cmpuint (count_fds (), ==, fds_before);
}

/* A session parked with its idle timeout running: the parking lot keeps
 * the deadline and ends the session on time. */
static void
test_parked_session_times_out (void)
{
  g_autoptr(GPtrArray) contexts = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree gchar *spec = NULL;
  g_autoptr(MilterClient) client = new_parking_client (20, contexts, &spec);
  MtaHarness *mta;
  gint64 parked_at;

  g_object_set (client, "timeout", 1, NULL);
  mta = connect_negotiated (spec);
  wait_for_parked (contexts, 1);
  parked_at = g_get_monotonic_time ();
  mta_harness_expect_closed (mta);
  g_assert_cmpint (g_get_monotonic_time () - parked_at, <, 2 * G_USEC_PER_SEC);
  wait_for_sessions (client, 0);
  mta_harness_free (mta);
}

/* Shutting down reaches parked sessions: they end with the grace period. */
static void
test_shutdown_parked_sessions (void)
{
  g_autoptr(GPtrArray) contexts = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree gchar *spec = NULL;
  g_autoptr(MilterClient) client = new_parking_client (20, contexts, &spec);
  MtaHarness *mtas[5];

  g_object_set (client, "shutdown-grace-period", 1, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (mtas); i++)
    mtas[i] = connect_negotiated (spec);
  wait_for_parked (contexts, G_N_ELEMENTS (mtas));
  milter_client_shutdown (client);
  wait_for_sessions (client, 0);
  for (guint i = 0; i < G_N_ELEMENTS (mtas); i++)
    {
      mta_harness_expect_closed (mtas[i]);
      mta_harness_free (mtas[i]);
    }
}

/* A subclass given as context-type: each connection gets one, and its
 * class method answers without any handler connected. */
#define TEST_TYPE_REJECTING_CONTEXT (test_rejecting_context_get_type ())
G_DECLARE_FINAL_TYPE (TestRejectingContext, test_rejecting_context, TEST, REJECTING_CONTEXT,
                      MilterClientContext)

struct _TestRejectingContext
{
  MilterClientContext parent_instance;
};

G_DEFINE_FINAL_TYPE (TestRejectingContext, test_rejecting_context, MILTER_TYPE_CLIENT_CONTEXT)

static MilterStatus
rejecting_context_helo (MilterClientContext *context,
                        const gchar         *fqdn)
{
  return MILTER_STATUS_REJECT;
}

static void
test_rejecting_context_class_init (TestRejectingContextClass *klass)
{
  MILTER_CLIENT_CONTEXT_CLASS (klass)->helo = rejecting_context_helo;
}

static void
test_rejecting_context_init (TestRejectingContext *self)
{
}

static void
count_rejecting_contexts (MilterClient        *client,
                          MilterClientContext *context,
                          guint               *n)
{
  g_assert_true (TEST_IS_REJECTING_CONTEXT (context));
  (*n)++;
}

static void
test_context_type (void)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GError) error = NULL;
  g_autofree gchar *spec = NULL;
  GType type = G_TYPE_INVALID;
  MtaHarness *mta;
  guint n = 0;

  g_object_get (client, "context-type", &type, NULL);
  g_assert_true (type == MILTER_TYPE_CLIENT_CONTEXT);
  g_object_set (client, "context-type", TEST_TYPE_REJECTING_CONTEXT, NULL);
  g_signal_connect (client, "connection-established", G_CALLBACK (count_rejecting_contexts), &n);
  g_assert_true (milter_client_set_connection_spec (client, "inet:0@127.0.0.1", &error));
  g_assert_true (milter_client_listen (client, &error));
  g_assert_no_error (error);
  spec = first_listen_spec (client);

  mta = connect_negotiated (spec);
  mta_harness_helo (mta, "ok.example");
  mta_harness_expect (mta, "r");
  g_assert_cmpuint (n, ==, 1);
  mta_harness_simple (mta, 'Q');
  mta_harness_free (mta);
  wait_for_sessions (client, 0);
  milter_client_shutdown (client);
}

/* The client's settings are each new session's. */
static void
test_settings_reach_sessions (void)
{
  static const struct { const gchar *name; guint value; } settings[] = {
    { "timeout", 17 },
    { "packet-buffer-size", 1234 },
    { "max-packet-length", 70000 },
    { "max-headers", 5 },
    { "max-message-result-size", 4096 },
    { "max-recipients", 7 },
    { "max-macros", 9 },
  };
  g_autoptr(GPtrArray) contexts = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree gchar *spec = NULL;
  g_autoptr(MilterClient) client = new_parking_client (1000, contexts, &spec);
  MtaHarness *mta;

  for (guint i = 0; i < G_N_ELEMENTS (settings); i++)
    g_object_set (client, settings[i].name, settings[i].value, NULL);
  mta = connect_negotiated (spec);
  g_assert_cmpuint (contexts->len, ==, 1);
  for (guint i = 0; i < G_N_ELEMENTS (settings); i++)
    {
      guint value = 0;

      g_object_get (g_ptr_array_index (contexts, 0), settings[i].name, &value, NULL);
      g_assert_cmpuint (value, ==, settings[i].value);
    }
  mta_harness_free (mta);
  wait_for_sessions (client, 0);
}

static void
test_max_connections (void)
{
  g_autoptr(MilterClient) client = new_client ("inet:0@127.0.0.1");
  g_autofree gchar *spec = NULL;
  MtaHarness *mtas[10];

  g_object_set (client, "max-connections", 2, NULL);
  g_assert_true (milter_client_listen (client, NULL));
  spec = first_listen_spec (client);
  n_in_progress_max = 0;
  /* All ten connect at once; the kernel's backlog holds the others. */
  for (guint i = 0; i < G_N_ELEMENTS (mtas); i++)
    {
      mtas[i] = connect_to_spec (spec);
      mta_harness_negotiate (mtas[i], 6, 0x1ff, 0x1fffff);
    }
  test_util_run_for (50);
  g_assert_cmpuint (milter_client_get_n_processing_sessions (client), ==, 2);
  for (guint i = 0; i < G_N_ELEMENTS (mtas); i++)
    {
      g_free (mta_harness_read (mtas[i]));
      mta_harness_simple (mtas[i], 'Q');
      mta_harness_expect_closed (mtas[i]);
      mta_harness_free (mtas[i]);
    }
  wait_for_sessions (client, 0);
  /* connection-established saw the count including the new session. */
  g_assert_cmpint (n_in_progress_max, ==, 2);
  milter_client_shutdown (client);
}

static void
count_finished (MilterClientContext *context,
                guint               *n)
{
  (*n)++;
}

static void
watch_finished (MilterClient        *client,
                MilterClientContext *context,
                guint               *n)
{
  g_signal_connect (context, "finished", G_CALLBACK (count_finished), n);
}

/* A stream not from a socket: pipes. A vanished reader (EPIPE) ends the
 * session cleanly instead of killing the process with SIGPIPE. */
static void
test_handle_stream_pipes (void)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  int to_filter[2], from_filter[2];
  g_autoptr(GInputStream) input = NULL;
  g_autoptr(GOutputStream) output = NULL;
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(GError) error = NULL;
  static const guint8 negotiate[] = { 0, 0, 0, 13, 'O', 0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff };
  guint finished = 0;
  MilterClientContext *context;

  g_assert_cmpint (pipe (to_filter), ==, 0);
  g_assert_cmpint (pipe (from_filter), ==, 0);
  input = g_unix_input_stream_new (to_filter[0], TRUE);
  output = g_unix_output_stream_new (from_filter[1], TRUE);
  stream = g_simple_io_stream_new (input, output);
  g_signal_connect (client, "connection-established", G_CALLBACK (watch_finished), &finished);
  context = milter_client_handle_stream (client, stream, &error);
  g_assert_no_error (error);
  g_assert_nonnull (context);
  g_assert_cmpuint (milter_client_get_n_processing_sessions (client), ==, 1);

  close (from_filter[0]);  /* nobody reads the replies */
  g_assert_cmpint (write (to_filter[1], negotiate, sizeof negotiate), ==, sizeof negotiate);
  test_util_run_for (100);
  g_assert_cmpuint (finished, ==, 1);
  wait_for_sessions (client, 0);
  close (to_filter[1]);
}

/* A stream that cannot be polled is refused; the context the client made
 * for it is no session of the client, even while someone keeps it. */
static void
test_handle_stream_refused (void)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GPtrArray) contexts = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GFile) file = g_file_new_for_path ("/dev/null");
  g_autoptr(GFileInputStream) input = g_file_read (file, NULL, NULL);
  g_autoptr(GOutputStream) output = g_memory_output_stream_new_resizable ();
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(GError) error = NULL;
  guint finished = 0;

  g_assert_nonnull (input);
  stream = g_simple_io_stream_new (G_INPUT_STREAM (input), output);
  g_signal_connect (client, "connection-established", G_CALLBACK (collect_context), contexts);
  g_signal_connect (client, "connection-established", G_CALLBACK (watch_finished), &finished);
  g_assert_null (milter_client_handle_stream (client, stream, &error));
  g_assert_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_NOT_SUPPORTED);
  g_assert_cmpuint (milter_client_get_n_processing_sessions (client), ==, 0);
  g_assert_cmpuint (contexts->len, ==, 1);
  /* The client goes first; the context it made for the stream never
   * started, so it never finishes. */
  g_clear_object (&client);
  g_ptr_array_set_size (contexts, 0);
  g_assert_cmpuint (finished, ==, 0);
}

/* ---- shutdown, in an embedding thread -------------------------------------- */

typedef struct
{
  GMainContext *context;
  MilterClient *client;
  gchar *spec;
  guint grace;
  gboolean reply_late;   /* the helo reply comes 300 ms after the handler */
  gboolean never_reply;
  gint64 returned_at;
  gboolean listening;
  GMutex mutex;
  GCond cond;
} Embedded;

static gboolean
reply_helo (gpointer user_data)
{
  milter_client_context_reply (user_data, MILTER_STATUS_CONTINUE);
  g_object_unref (user_data);
  return G_SOURCE_REMOVE;
}

static MilterStatus
defer_helo (MilterClientContext *context,
            const gchar         *fqdn,
            Embedded            *e)
{
  if (!e->never_reply)
    {
      /* The client's thread-default context, not the default one. */
      GSource *source = g_timeout_source_new (300);

      g_source_set_callback (source, reply_helo, g_object_ref (context), NULL);
      g_source_attach (source, g_main_context_get_thread_default ());
      g_source_unref (source);
    }
  return MILTER_STATUS_PROGRESS;
}

static void
embedded_connection (MilterClient        *client,
                     MilterClientContext *context,
                     Embedded            *e)
{
  g_signal_connect (context, "helo", G_CALLBACK (defer_helo), e);
}

static gpointer
embedded_thread (gpointer user_data)
{
  Embedded *e = user_data;
  g_autoptr(GError) error = NULL;
  GList *addresses;

  g_main_context_push_thread_default (e->context);
  e->client = milter_client_new ();
  g_signal_connect (e->client, "connection-established", G_CALLBACK (embedded_connection), e);
  g_object_set (e->client, "shutdown-grace-period", e->grace, NULL);
  g_assert_true (milter_client_set_connection_spec (e->client, "inet:0@127.0.0.1", NULL));
  g_assert_true (milter_client_listen (e->client, &error));
  addresses = milter_client_get_listen_addresses (e->client);
  g_mutex_lock (&e->mutex);
  e->spec = milter_connection_spec_format (addresses->data, NULL);
  e->listening = TRUE;
  g_cond_signal (&e->cond);
  g_mutex_unlock (&e->mutex);
  g_list_free_full (addresses, g_object_unref);

  g_assert_true (milter_client_run (e->client, &error));
  g_assert_no_error (error);
  e->returned_at = g_get_monotonic_time ();
  g_clear_object (&e->client);
  g_main_context_pop_thread_default (e->context);
  return NULL;
}

static gboolean
invoke_shutdown (gpointer user_data)
{
  milter_client_shutdown (((Embedded *) user_data)->client);
  return G_SOURCE_REMOVE;
}

static void
run_shutdown_case (gboolean never_reply)
{
  Embedded e = { 0 };
  GThread *thread;
  MtaHarness *mta;
  gint64 shutdown_at;

  e.context = g_main_context_new ();
  e.grace = 1;
  e.never_reply = never_reply;
  g_mutex_init (&e.mutex);
  g_cond_init (&e.cond);
  thread = g_thread_new ("client", embedded_thread, &e);
  g_mutex_lock (&e.mutex);
  while (!e.listening)
    g_cond_wait (&e.cond, &e.mutex);
  g_mutex_unlock (&e.mutex);

  mta = connect_negotiated (e.spec);
  mta_harness_helo (mta, "h");
  test_util_run_for (50);
  shutdown_at = g_get_monotonic_time ();
  g_main_context_invoke (e.context, invoke_shutdown, &e);
  if (never_reply)
    {
      /* The grace period ends it: the MTA sees the connection close. */
      mta_harness_expect_closed (mta);
      g_thread_join (thread);
      g_assert_cmpint (e.returned_at - shutdown_at, >=, 900 * 1000);
    }
  else
    {
      /* The deferred reply still comes, within the grace period. */
      mta_harness_expect (mta, "c");
      mta_harness_simple (mta, 'Q');
      g_thread_join (thread);
      g_assert_cmpint (e.returned_at - shutdown_at, <, 900 * 1000);
    }
  /* Nobody listens any more. */
  {
    g_autoptr(GSocketAddress) address = milter_connection_spec_parse (e.spec, NULL);
    g_autoptr(GSocket) probe = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                             G_SOCKET_PROTOCOL_DEFAULT, NULL);

    g_assert_false (g_socket_connect (probe, address, NULL, NULL));
  }
  mta_harness_free (mta);
  g_free (e.spec);
  g_main_context_unref (e.context);
  g_mutex_clear (&e.mutex);
  g_cond_clear (&e.cond);
}

static void
test_shutdown_waits_for_session (void)
{
  run_shutdown_case (FALSE);
}

static void
test_shutdown_grace_expires (void)
{
  run_shutdown_case (TRUE);
}

static MilterStatus
count_abort (MilterClientContext     *context,
             MilterClientContextState state,
             guint                   *n)
{
  (*n)++;
  return MILTER_STATUS_DEFAULT;
}

static MilterStatus
continue_envelope_from (MilterClientContext *context,
                        const gchar         *from)
{
  return MILTER_STATUS_CONTINUE;
}

/* Handles envelope-from (so that MAIL is sent and answered) and counts
 * the aborts. */
static void
watch_abort (MilterClient        *client,
             MilterClientContext *context,
             guint               *n)
{
  g_signal_connect (context, "envelope-from", G_CALLBACK (continue_envelope_from), NULL);
  g_signal_connect (context, "abort", G_CALLBACK (count_abort), n);
}

/* A client unreffed with sessions open ends them from the main loop (no
 * handler runs from its dispose): abort for the open message and
 * finished, also for a session the program still holds. */
static void
test_unref_ends_sessions (void)
{
  g_autoptr(GPtrArray) contexts = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree gchar *spec = NULL;
  MilterClient *client = new_client ("inet:0@127.0.0.1");
  g_autoptr(GError) error = NULL;
  guint finished = 0, aborted = 0;
  MtaHarness *mtas[2];
  MilterClientContext *kept;

  g_signal_connect (client, "connection-established", G_CALLBACK (watch_finished), &finished);
  g_signal_connect (client, "connection-established", G_CALLBACK (watch_abort), &aborted);
  g_signal_connect (client, "connection-established", G_CALLBACK (collect_context), contexts);
  g_assert_true (milter_client_listen (client, &error));
  g_assert_no_error (error);
  spec = first_listen_spec (client);
  for (guint i = 0; i < G_N_ELEMENTS (mtas); i++)
    {
      mtas[i] = connect_negotiated (spec);
      mta_harness_helo (mtas[i], "h");
      mta_harness_expect (mtas[i], "c");
      mta_harness_mail (mtas[i], "<a@example.org>");
      mta_harness_expect (mtas[i], "c");
    }
  g_assert_cmpuint (contexts->len, ==, 2);
  /* The program holds the second one; the first only the client does. */
  kept = g_ptr_array_steal_index (contexts, 1);
  g_ptr_array_set_size (contexts, 0);
  g_object_unref (client);
  g_assert_cmpuint (finished, ==, 0);
  mta_harness_expect_closed (mtas[0]);
  mta_harness_expect_closed (mtas[1]);
  test_util_run_for (50);
  g_assert_cmpuint (aborted, ==, 2);
  g_assert_cmpuint (finished, ==, 2);
  g_assert_true (milter_client_context_is_finished (kept));
  g_object_unref (kept);
  g_assert_cmpuint (finished, ==, 2);
  for (guint i = 0; i < G_N_ELEMENTS (mtas); i++)
    mta_harness_free (mtas[i]);
}

/* Listening again after a shutdown is a restart: the sessions accepted
 * since are not the ones the old grace period was for. */
static void
test_shutdown_then_listen_again (void)
{
  g_autoptr(GPtrArray) contexts = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree gchar *spec = NULL;
  g_autofree gchar *new_spec = NULL;
  g_autoptr(MilterClient) client = new_parking_client (10000, contexts, &spec);
  g_autoptr(GError) error = NULL;
  MtaHarness *old_mta;
  MtaHarness *new_mta;

  g_object_set (client, "shutdown-grace-period", 1, NULL);
  old_mta = connect_negotiated (spec);
  milter_client_shutdown (client);
  g_assert_true (milter_client_listen (client, &error));
  g_assert_no_error (error);
  new_spec = first_listen_spec (client);
  new_mta = connect_negotiated (new_spec);
  /* The old session ends with its grace period; the new one goes on. */
  mta_harness_expect_closed (old_mta);
  test_util_run_for (300);
  wait_for_sessions (client, 1);
  mta_harness_helo (new_mta, "h");
  mta_harness_expect (new_mta, "c");
  mta_harness_simple (new_mta, 'Q');
  mta_harness_expect_closed (new_mta);
  wait_for_sessions (client, 0);
  mta_harness_free (old_mta);
  mta_harness_free (new_mta);
}

static MilterStatus
note_owner_at_connect (MilterClientContext *context,
                       const gchar         *host_name,
                       GSocketAddress      *address,
                       GMainContext        *own)
{
  g_object_set_data (G_OBJECT (context), "connect-in-own-context",
                     GINT_TO_POINTER (g_main_context_is_owner (own) ? 1 : 2));
  return MILTER_STATUS_CONTINUE;
}

static void
watch_owner_at_connect (MilterClient        *client,
                        MilterClientContext *context,
                        GMainContext        *own)
{
  g_signal_connect (context, "connect", G_CALLBACK (note_owner_at_connect), own);
}

/* A client serves its sessions in its own main context, not in whatever
 * context is thread-default when a connection comes. */
static void
test_sessions_run_in_the_client_context (void)
{
  g_autoptr(GMainContext) own = g_main_context_new ();
  g_autoptr(GPtrArray) contexts = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(MilterClient) client = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *spec = NULL;
  gint64 until = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  MtaHarness *mta;
  gpointer seen = NULL;

  g_main_context_push_thread_default (own);
  client = new_client ("inet:0@127.0.0.1");
  g_signal_connect (client, "connection-established", G_CALLBACK (collect_context), contexts);
  g_signal_connect (client, "connection-established", G_CALLBACK (watch_owner_at_connect), own);
  g_assert_true (milter_client_listen (client, &error));
  g_assert_no_error (error);
  spec = first_listen_spec (client);
  g_main_context_pop_thread_default (own);

  mta = connect_to_spec (spec);
  mta_harness_negotiate (mta, 6, 0x1ff, 0x1fffff);
  mta_harness_connect (mta, "h", NULL);
  while (seen == NULL && g_get_monotonic_time () < until)
    {
      g_main_context_iteration (own, FALSE);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (500);
      if (contexts->len > 0)
        seen = g_object_get_data (g_ptr_array_index (contexts, 0), "connect-in-own-context");
    }
  g_assert_cmpint (GPOINTER_TO_INT (seen), ==, 1);
  mta_harness_close (mta);
  mta_harness_free (mta);
  while (milter_client_get_n_processing_sessions (client) > 0 && g_get_monotonic_time () < until)
    g_main_context_iteration (own, FALSE), g_usleep (500);
  g_assert_cmpuint (milter_client_get_n_processing_sessions (client), ==, 0);
}

/* ---- options ---------------------------------------------------------------- */

static void
test_option_group (void)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GOptionContext) options = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;
  const gchar *args[] = { "prog", "-s", "unix:/tmp/x.sock", "--connection-spec", "inet:0@127.0.0.1",
                          "--timeout", "30", "--max-connections", "5", "--n-workers", "3",
                          "--shutdown-grace-period", "4",
                          "--unix-socket-mode", "0600", "--unix-socket-group", "mail",
                          "--user", "nobody", "--group", "nogroup", "--daemon", "--pid-file", "/run/x.pid",
                          "--log-level", "warning", NULL };
  /* Parsing removes what it consumes from argv: free our own copy. */
  g_auto(GStrv) owned = g_strdupv ((gchar **) args);
  g_autofree gchar **argv = g_memdup2 (owned, sizeof (gchar *) * (g_strv_length (owned) + 1));
  gint argc = (gint) g_strv_length (argv);
  guint timeout, max_connections, n_workers, mode, grace;
  g_autofree gchar *group = NULL;
  g_autofree gchar *user = NULL;
  g_autofree gchar *run_group = NULL;
  g_autofree gchar *pid_file = NULL;
  gboolean daemon;
  GList *addresses;

  g_option_context_add_group (options, milter_client_get_option_group (client));
  g_assert_true (g_option_context_parse (options, &argc, &argv, &error));
  g_assert_no_error (error);
  g_object_get (client, "timeout", &timeout, "max-connections", &max_connections,
                "n-workers", &n_workers, "unix-socket-mode", &mode, "unix-socket-group", &group,
                "user", &user, "group", &run_group, "daemon", &daemon, "pid-file", &pid_file, NULL);
  g_assert_cmpuint (timeout, ==, 30);
  g_object_get (client, "shutdown-grace-period", &grace, NULL);
  g_assert_cmpuint (grace, ==, 4);
  g_assert_cmpuint (max_connections, ==, 5);
  g_assert_cmpuint (n_workers, ==, 3);
  g_assert_cmpuint (mode, ==, 0600);
  g_assert_cmpstr (group, ==, "mail");
  g_assert_cmpstr (user, ==, "nobody");
  g_assert_cmpstr (run_group, ==, "nogroup");
  g_assert_true (daemon);
  g_assert_cmpstr (pid_file, ==, "/run/x.pid");
  g_assert_cmpstr (milter_client_get_connection_spec (client), ==, "unix:/tmp/x.sock");
  addresses = milter_client_get_listen_addresses (client);
  g_assert_null (addresses);  /* not listening yet */
}

static void
expect_option_error (const gchar *option,
                     const gchar *value)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GOptionContext) options = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;
  gchar *args[] = { "prog", (gchar *) option, (gchar *) value, NULL };
  g_auto(GStrv) owned = g_strdupv (args);
  g_autofree gchar **argv = g_memdup2 (owned, sizeof args);
  gint argc = 3;

  g_option_context_add_group (options, milter_client_get_option_group (client));
  g_assert_false (g_option_context_parse (options, &argc, &argv, &error));
  g_assert_nonnull (error);
  g_test_message ("%s %s → %s", option, value, error->message);
}

static void
test_option_errors (void)
{
  expect_option_error ("--connection-spec", "tcp:25");
  expect_option_error ("--unix-socket-mode", "rw-rw----");
  expect_option_error ("--log-level", "loud");
  /* Negative numbers are no "not given": they were ignored before. */
  expect_option_error ("--timeout", "-1");
  expect_option_error ("--n-workers", "-3");
  expect_option_error ("--max-connections", "-1");
  expect_option_error ("--shutdown-grace-period", "-2");
  expect_option_error ("--n-workers", "100000");
}

/* For bindings: parse_command_line takes the client's options from a
 * vector and leaves the rest, unknown options included, in place. */
static void
test_parse_command_line (void)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) argv = g_strdupv ((gchar *[]) { "prog", "--timeout=12", "--own", "-s", "inet:0", "file", NULL });
  g_auto(GStrv) bad = g_strdupv ((gchar *[]) { "prog", "--max-connections", "many", NULL });
  guint timeout;

  g_assert_true (milter_client_parse_command_line (client, &argv, &error));
  g_assert_no_error (error);
  g_assert_cmpstrv (argv, ((const gchar *[]) { "prog", "--own", "file", NULL }));
  g_object_get (client, "timeout", &timeout, NULL);
  g_assert_cmpuint (timeout, ==, 12);
  g_assert_cmpstr (milter_client_get_connection_spec (client), ==, "inet:0");

  g_assert_false (milter_client_parse_command_line (client, &bad, &error));
  g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE);
}

/* ---- processes ------------------------------------------------------------ */

typedef struct
{
  GPid pid;
  gchar *dir;
  gchar *path;
  gchar *spec;
} Server;

static gboolean
wait_for_path (const gchar *path,
               gboolean     present)
{
  gint64 until = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (g_get_monotonic_time () < until)
    {
      if (g_file_test (path, G_FILE_TEST_EXISTS) == present)
        return TRUE;
      g_usleep (10000);
    }
  return FALSE;
}

/* Runs this program in --serve mode on a unix socket in a new temporary
 * directory, with @extra options. */
/* This program, absolute: a test may start it from another directory. */
static gchar *program_path;

/* A new temporary directory for the filter, and its socket @name in it. */
static void
server_prepare (Server      *server,
                const gchar *name)
{
  server->dir = make_tmp_dir ();
  server->path = g_build_filename (server->dir, name, NULL);
  server->spec = g_strconcat ("unix:", server->path, NULL);
}

/* Like server_start(), with @program (a copy of this program). */
static void
server_start_program (Server              *server,
                      const gchar         *program,
                      const gchar * const *extra,
                      GSpawnFlags          flags)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;

  server_prepare (server, "milter.sock");
  g_ptr_array_add (argv, g_strdup (program));
  g_ptr_array_add (argv, g_strdup ("--serve"));
  g_ptr_array_add (argv, g_strconcat ("--connection-spec=", server->spec, NULL));
  for (guint i = 0; extra != NULL && extra[i] != NULL; i++)
    g_ptr_array_add (argv, g_strdup (extra[i]));
  g_ptr_array_add (argv, NULL);
  g_assert_true (g_spawn_async (NULL, (gchar **) argv->pdata, NULL, G_SPAWN_DO_NOT_REAP_CHILD | flags,
                                test_util_die_with_parent, NULL, &server->pid, &error));
  g_assert_no_error (error);
}

static void
server_start (Server              *server,
              const gchar * const *extra,
              GSpawnFlags          flags)
{
  server_start_program (server, program_path, extra, flags);
}

static gint
server_wait (Server *server)
{
  gint64 until = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  int status;

  while (waitpid (server->pid, &status, WNOHANG) == 0)
    {
      if (g_get_monotonic_time () > until)
        {
          kill (server->pid, SIGKILL);
          waitpid (server->pid, &status, 0);
          g_error ("the --serve process did not exit");
        }
      g_usleep (10000);
    }
  return status;
}

/* SIGTERM: milter_client_run() returns and the process exits with 0
 * after removing its socket file. */
static void
server_terminate (Server *server)
{
  gint status;

  kill (server->pid, SIGTERM);
  status = server_wait (server);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
  g_assert_true (wait_for_path (server->path, FALSE));
}

static void
server_free (Server *server)
{
  remove_tmp_dir (server->dir);
  g_free (server->dir);
  g_free (server->path);
  g_free (server->spec);
}

static gboolean
process_alive (GPid pid)
{
  g_autofree gchar *stat_path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree gchar *contents = NULL;
  const gchar *state;

  if (!g_file_get_contents (stat_path, &contents, NULL, NULL))
    return FALSE;
  state = strrchr (contents, ')');
  return state != NULL && state[2] != 'Z';
}

static void
test_workers (void)
{
  Server server = { 0 };
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree gchar *killed = NULL;
  const gchar *extra[] = { "--n-workers", "2", NULL };
  GList *pids;

  server_start (&server, extra, 0);
  g_assert_true (wait_for_path (server.path, TRUE));

  /* Both workers serve, each in its own process. */
  for (guint i = 0; i < 200 && g_hash_table_size (seen) < 2; i++)
    {
      MtaHarness *mta = connect_to_spec (server.spec);
      gchar *served_by = run_session (mta);

      mta_harness_free (mta);
      g_assert_false (g_str_has_prefix (served_by, "0 "));
      g_hash_table_add (seen, served_by);
    }
  g_assert_cmpuint (g_hash_table_size (seen), ==, 2);

  /* A worker killed is replaced. */
  pids = g_hash_table_get_keys (seen);
  killed = g_strdup (pids->data);
  g_list_free (pids);
  kill (atoi (killed), SIGKILL);
  {
    gboolean replaced = FALSE;

    for (guint i = 0; i < 400 && !replaced; i++)
      {
        MtaHarness *mta = connect_to_spec (server.spec);
        gchar *served_by = run_session (mta);

        mta_harness_free (mta);
        g_assert_cmpstr (served_by, !=, killed);
        replaced = !g_hash_table_contains (seen, served_by);
        g_hash_table_add (seen, served_by);
        if (!replaced)
          g_usleep (20000);
      }
    g_assert_true (replaced);
  }

  /* SIGHUP reaches the workers (which stay), not killing anyone. */
  kill (server.pid, SIGHUP);
  {
    GHashTableIter iter;
    gpointer key;
    guint marks = 0;

    test_util_run_for (300);
    g_hash_table_iter_init (&iter, seen);
    while (g_hash_table_iter_next (&iter, &key, NULL))
      {
        g_autofree gchar *name = g_strdup_printf ("reloaded-%d", atoi (key));
        g_autofree gchar *mark = g_build_filename (server.dir, name, NULL);

        if (process_alive (atoi (key)))
          {
            g_assert_true (wait_for_path (mark, TRUE));
            marks++;
          }
      }
    g_assert_cmpuint (marks, ==, 2);
    g_assert_true (process_alive (server.pid));
  }

  /* SIGTERM ends the parent and every worker, and removes the socket. */
  server_terminate (&server);
  {
    GHashTableIter iter;
    gpointer key;

    g_hash_table_iter_init (&iter, seen);
    while (g_hash_table_iter_next (&iter, &key, NULL))
      {
        GPid pid = atoi (key);
        gint64 until = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

        while (process_alive (pid) && g_get_monotonic_time () < until)
          g_usleep (10000);
        g_assert_false (process_alive (pid));
      }
  }
  server_free (&server);
}

/* Waits until the file at @path contains @text. */
static gboolean
wait_for_text (const gchar *path,
               const gchar *text)
{
  gint64 until = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (g_get_monotonic_time () < until)
    {
      g_autofree gchar *contents = NULL;

      if (g_file_get_contents (path, &contents, NULL, NULL) && strstr (contents, text) != NULL)
        return TRUE;
      g_usleep (10000);
    }
  return FALSE;
}

/* A worker that cannot be started again (here its program is not
 * executable for a while) is retried until it can be. The program is a
 * copy, since workers run the file the parent was started from. */
static void
test_worker_restart_retried (void)
{
  Server server = { 0 };
  const gchar *extra[] = { "--n-workers", "1", NULL };
  g_autofree gchar *copy_dir = make_tmp_dir ();
  g_autofree gchar *copy = g_build_filename (copy_dir, "test-client", NULL);
  g_autofree gchar *log = g_build_filename (copy_dir, "stderr", NULL);
  g_autofree gchar *contents = NULL;
  g_autofree gchar *first = NULL;
  g_autofree gchar *second = NULL;
  gsize length;
  MtaHarness *mta;

  g_assert_true (g_file_get_contents (program_path, &contents, &length, NULL));
  g_assert_true (g_file_set_contents_full (copy, contents, (gssize) length, G_FILE_SET_CONTENTS_NONE,
                                           0755, NULL));
  g_setenv ("TEST_CLIENT_STDERR", log, TRUE);
  server_start_program (&server, copy, extra, 0);
  g_unsetenv ("TEST_CLIENT_STDERR");
  g_assert_true (wait_for_path (server.path, TRUE));
  mta = connect_to_spec (server.spec);
  first = run_session (mta);
  mta_harness_free (mta);

  g_assert_cmpint (chmod (copy, 0644), ==, 0);
  kill (atoi (first), SIGKILL);
  g_assert_true (wait_for_text (log, "Cannot restart worker 1"));
  g_assert_cmpint (chmod (copy, 0755), ==, 0);

  /* A session waits in the listen queue until the new worker takes it. */
  mta = connect_to_spec (server.spec);
  second = run_session (mta);
  mta_harness_free (mta);
  g_assert_cmpstr (second, !=, first);
  g_assert_true (g_str_has_suffix (second, " 1"));

  server_terminate (&server);
  server_free (&server);
  remove_tmp_dir (copy_dir);
}

/* Whether a process runs with @arg on its command line. */
static gboolean
process_with_arg (const gchar *arg)
{
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  const gchar *name;

  while ((name = g_dir_read_name (proc)) != NULL)
    {
      g_autofree gchar *path = g_build_filename ("/proc", name, "cmdline", NULL);
      g_autofree gchar *cmdline = NULL;
      gsize length;

      if (atoi (name) <= 0 || !process_alive (atoi (name)) ||
          !g_file_get_contents (path, &cmdline, &length, NULL))
        continue;
      for (gsize offset = 0; offset < length; offset += strlen (cmdline + offset) + 1)
        if (g_str_equal (cmdline + offset, arg))
          return TRUE;
    }
  return FALSE;
}

/* SIGTERM or SIGINT during the setup (see raise_at_listen()) is handled
 * once the client serves: it stops normally, with socket and PID files
 * removed and no worker left. */
static void
test_signal_during_startup (void)
{
  const gchar *workers[] = { "0", "2" };
  const int signals[] = { SIGTERM, SIGINT };

  for (guint i = 0; i < G_N_ELEMENTS (workers); i++)
    for (guint j = 0; j < G_N_ELEMENTS (signals); j++)
      {
        Server server = { 0 };
        g_autofree gchar *pid_dir = make_tmp_dir ();
        g_autofree gchar *pid_file = g_build_filename (pid_dir, "milter.pid", NULL);
        g_autofree gchar *pid_option = g_strconcat ("--pid-file=", pid_file, NULL);
        g_autofree gchar *signum = g_strdup_printf ("%d", signals[j]);
        g_autofree gchar *spec_option = NULL;
        const gchar *extra[] = { "--n-workers", workers[i], pid_option, NULL };
        gint status;

        g_test_message ("%s workers, signal %d", workers[i], signals[j]);
        g_setenv ("TEST_CLIENT_RAISE_AT_LISTEN", signum, TRUE);
        server_start (&server, extra, 0);
        g_unsetenv ("TEST_CLIENT_RAISE_AT_LISTEN");
        status = server_wait (&server);
        g_assert_true (WIFEXITED (status));
        g_assert_cmpint (WEXITSTATUS (status), ==, 0);
        g_assert_false (g_file_test (server.path, G_FILE_TEST_EXISTS));
        g_assert_false (g_file_test (pid_file, G_FILE_TEST_EXISTS));
        spec_option = g_strconcat ("--connection-spec=", server.spec, NULL);
        g_assert_false (process_with_arg (spec_option));
        server_free (&server);
        remove_tmp_dir (pid_dir);
      }
}

static guint
count_reload_marks (const gchar *dir)
{
  g_autoptr(GDir) handle = g_dir_open (dir, 0, NULL);
  const gchar *name;
  guint n = 0;

  while ((name = g_dir_read_name (handle)) != NULL)
    if (g_str_has_prefix (name, "reloaded-"))
      n++;
  return n;
}

/* Whether @pid's main thread blocks SIGHUP, SIGINT or SIGTERM. */
static gboolean
blocks_stop_signals (GPid pid)
{
  g_autofree gchar *path = g_strdup_printf ("/proc/%d/status", (int) pid);
  g_autofree gchar *status = NULL;
  const gchar *line;
  guint64 mask;

  g_assert_true (g_file_get_contents (path, &status, NULL, NULL));
  line = strstr (status, "\nSigBlk:");
  g_assert_nonnull (line);
  mask = g_ascii_strtoull (line + strlen ("\nSigBlk:"), NULL, 16);
  return (mask & ((1 << (SIGHUP - 1)) | (1 << (SIGINT - 1)) | (1 << (SIGTERM - 1)))) != 0;
}

/* SIGHUP passed on to workers that are still starting waits for their
 * handlers: none dies of it, and each reloads. The parent gets one while
 * it sets up (see raise_at_listen()) and passes it on as soon as it has
 * started the workers, which take 300 ms to start, then more meanwhile. */
static void
test_sighup_during_worker_startup (void)
{
  Server server = { 0 };
  const gchar *extra[] = { "--n-workers", "2", NULL };
  g_autofree gchar *log_dir = make_tmp_dir ();
  g_autofree gchar *log = g_build_filename (log_dir, "stderr", NULL);
  g_autofree gchar *output = NULL;
  g_autofree gchar *served_by = NULL;
  gint64 until;
  MtaHarness *mta;

  g_setenv ("TEST_CLIENT_STDERR", log, TRUE);
  g_setenv ("TEST_CLIENT_RAISE_AT_LISTEN", "1", TRUE);
  g_setenv ("TEST_CLIENT_START_DELAY_MS", "300", TRUE);
  server_start (&server, extra, 0);
  g_unsetenv ("TEST_CLIENT_START_DELAY_MS");
  g_unsetenv ("TEST_CLIENT_RAISE_AT_LISTEN");
  g_unsetenv ("TEST_CLIENT_STDERR");
  g_assert_true (wait_for_path (server.path, TRUE));
  for (guint i = 0; i < 100; i++)
    {
      kill (server.pid, SIGHUP);
      g_usleep (1000);
    }
  until = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (count_reload_marks (server.dir) < 2 && g_get_monotonic_time () < until)
    g_usleep (10000);
  mta = connect_to_spec (server.spec);
  served_by = run_session (mta);
  mta_harness_free (mta);
  /* Workers unblock the signals they start with; the parent never blocks them. */
  g_assert_false (blocks_stop_signals (atoi (served_by)));
  g_assert_false (blocks_stop_signals (server.pid));
  server_terminate (&server);

  g_assert_true (g_file_get_contents (log, &output, NULL, NULL));
  g_assert_null (strstr (output, "was killed by signal"));
  g_assert_cmpuint (count_reload_marks (server.dir), ==, 2);
  server_free (&server);
  remove_tmp_dir (log_dir);
}

/* Without workers, the one process serves every socket and takes the
 * signals itself, all watched by the client's one source. */
static void
test_run_signals (void)
{
  Server server = { 0 };
  g_autofree gchar *second_path = NULL;
  g_autofree gchar *second_spec = NULL;
  g_autofree gchar *second_option = NULL;
  g_autofree gchar *mark = NULL;
  g_autofree gchar *name = NULL;
  g_autofree gchar *expected = NULL;
  const gchar *extra[2] = { NULL, NULL };

  second_path = g_strdup_printf ("%s/second-%d.sock", g_get_tmp_dir (), (int) getpid ());
  second_spec = g_strconcat ("unix:", second_path, NULL);
  second_option = g_strconcat ("--connection-spec=", second_spec, NULL);
  extra[0] = second_option;
  server_start (&server, extra, 0);
  g_assert_true (wait_for_path (server.path, TRUE));
  g_assert_true (wait_for_path (second_path, TRUE));
  expected = g_strdup_printf ("%d 0", (int) server.pid);
  for (guint round = 0; round < 2; round++)
    {
      /* Both sockets serve, before and after a reload. */
      const gchar *specs[] = { server.spec, second_spec };

      for (guint i = 0; i < G_N_ELEMENTS (specs); i++)
        {
          MtaHarness *mta = connect_to_spec (specs[i]);
          g_autofree gchar *served_by = run_session (mta);

          mta_harness_free (mta);
          g_assert_cmpstr (served_by, ==, expected);
        }
      if (round == 0)
        {
          /* SIGHUP: MilterClient::reload, and the process stays. */
          name = g_strdup_printf ("reloaded-%d", (int) server.pid);
          mark = g_build_filename (server.dir, name, NULL);
          kill (server.pid, SIGHUP);
          g_assert_true (wait_for_path (mark, TRUE));
          g_assert_true (process_alive (server.pid));
        }
    }

  server_terminate (&server);
  g_assert_true (wait_for_path (second_path, FALSE));
  server_free (&server);
}

static void
activation_setup (gpointer user_data)
{
  int fd = GPOINTER_TO_INT (user_data);
  char pid[32];

  test_util_die_with_parent (NULL);
  /* In the child: the socket at fd 3, announced for this very process. */
  dup2 (fd, 3);
  fcntl (3, F_SETFD, 0);
  g_snprintf (pid, sizeof pid, "%d", (int) getpid ());
  setenv ("LISTEN_PID", pid, 1);
  setenv ("LISTEN_FDS", "1", 1);
}

/* Runs this program in --serve mode with @fd as the one socket systemd
 * passes, and @extra_option if not NULL. */
static void
spawn_activated (Server      *server,
                 int          fd,
                 const gchar *extra_option)
{
  const gchar *argv[] = { program_path, "--serve", extra_option, NULL };
  g_autoptr(GError) error = NULL;

  g_assert_true (g_spawn_async (NULL, (gchar **) argv, NULL,
                                G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_LEAVE_DESCRIPTORS_OPEN,
                                activation_setup, GINT_TO_POINTER (fd), &server->pid, &error));
  g_assert_no_error (error);
}

static void
test_socket_activation (void)
{
  Server server = { 0 };
  g_autoptr(GSocket) listening = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autofree gchar *served_by = NULL;
  MtaHarness *mta;
  gint status;

  server_prepare (&server, "activated.sock");
  address = milter_connection_spec_parse (server.spec, NULL);
  listening = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, NULL);
  g_assert_true (g_socket_bind (listening, address, FALSE, NULL));
  g_assert_true (g_socket_listen (listening, NULL));
  spawn_activated (&server, g_socket_get_fd (listening), NULL);
  /* Our copy stays open; the filter serves from the inherited one. */
  mta = connect_to_spec (server.spec);
  served_by = run_session (mta);
  mta_harness_free (mta);
  g_assert_cmpint (atoi (served_by), ==, server.pid);
  kill (server.pid, SIGTERM);
  status = server_wait (&server);
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  server_free (&server);
}

/* systemd's Accept=yes passes one connection, not a listening socket: the
 * filter serves it and, with nothing else to serve, exits when the MTA
 * leaves. */
static void
test_socket_activation_connection (void)
{
  Server server = { 0 };
  g_autoptr(GSocket) mta_end = NULL;
  g_autofree gchar *served_by = NULL;
  MtaHarness *mta;
  int pair[2];
  gint status;

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), ==, 0);
  spawn_activated (&server, pair[1], NULL);
  close (pair[1]);
  mta_end = g_socket_new_from_fd (pair[0], NULL);
  g_assert_nonnull (mta_end);
  mta = mta_harness_new (mta_end);
  served_by = run_session (mta);
  mta_harness_free (mta);
  g_assert_cmpint (atoi (served_by), ==, server.pid);
  status = server_wait (&server);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
}

/* What a filter that had to refuse to start wrote to @log: it exited
 * with status 1. */
static gchar *
refusal_output (Server      *server,
                const gchar *log)
{
  gint status = server_wait (server);
  gchar *output = NULL;

  /* The output first: it tells why when the status is wrong. */
  g_assert_true (g_file_get_contents (log, &output, NULL, NULL));
  g_test_message ("%s", output);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 1);
  return output;
}

/* Starts the test filter with @extra, which must make it refuse to start;
 * returns what it said on standard error. */
static gchar *
expect_start_refused (const gchar * const *extra)
{
  Server server = { 0 };
  g_autofree gchar *log_dir = make_tmp_dir ();
  g_autofree gchar *log = g_build_filename (log_dir, "stderr", NULL);
  gchar *output;

  g_setenv ("TEST_CLIENT_STDERR", log, TRUE);
  server_start (&server, extra, 0);
  g_unsetenv ("TEST_CLIENT_STDERR");
  output = refusal_output (&server, log);
  server_free (&server);
  remove_tmp_dir (log_dir);
  return output;
}

/* A socket systemd passes that the filter cannot use, or a connection
 * given to workers: the filter says why and exits with 1. */
static void
check_activation_refused (int          socket_type,
                          const gchar *extra_option,
                          const gchar *expected)
{
  Server server = { 0 };
  g_autofree gchar *log_dir = make_tmp_dir ();
  g_autofree gchar *log = g_build_filename (log_dir, "stderr", NULL);
  g_autofree gchar *output = NULL;
  int pair[2];

  g_assert_cmpint (socketpair (AF_UNIX, socket_type | SOCK_CLOEXEC, 0, pair), ==, 0);
  g_setenv ("TEST_CLIENT_STDERR", log, TRUE);
  spawn_activated (&server, pair[1], extra_option);
  g_unsetenv ("TEST_CLIENT_STDERR");
  output = refusal_output (&server, log);
  close (pair[0]);
  close (pair[1]);
  g_assert_nonnull (strstr (output, expected));
  remove_tmp_dir (log_dir);
}

static void
test_socket_activation_refused (void)
{
  check_activation_refused (SOCK_DGRAM, NULL,
                            "Inherited file descriptor 3 is neither a listening nor a connected "
                            "stream socket");
  check_activation_refused (SOCK_STREAM, "--n-workers=1", "Workers need listening sockets");
}

static void
wait_gone (GPid pid)
{
  gint64 until = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  /* Not our child: poll until it is gone. */
  while (process_alive (pid) && g_get_monotonic_time () < until)
    g_usleep (10000);
  g_assert_false (process_alive (pid));
}

/* The launched process exits with 0 once the daemon is ready: returns the
 * daemon's PID, from @pid_file. */
static GPid
wait_for_daemon (Server      *server,
                 const gchar *pid_file)
{
  g_autofree gchar *contents = NULL;
  gint status = server_wait (server);

  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  g_assert_true (wait_for_path (pid_file, TRUE));
  g_assert_true (g_file_get_contents (pid_file, &contents, NULL, NULL));
  g_assert_cmpint (atoi (contents), >, 0);
  return atoi (contents);
}

/* --user and --daemon and --pid-file: the daemon serves as nobody (real
 * and effective ids), and removes its PID file when it stops. */
static void
test_privileges_and_pid_file (void)
{
  Server server = { 0 };
  struct passwd *nobody = getpwnam ("nobody");
  g_autofree gchar *pid_dir = NULL;
  g_autofree gchar *pid_file = NULL;
  g_autofree gchar *pid_arg = NULL;
  g_autofree gchar *ids = NULL;
  g_autofree gchar *expected = NULL;
  MtaHarness *mta;

  if (geteuid () != 0 || nobody == NULL)
    {
      g_test_skip ("dropping privileges needs root and a “nobody” user");
      return;
    }
  pid_dir = make_tmp_dir ();
  g_assert_cmpint (chmod (pid_dir, 0777), ==, 0);  /* nobody writes and removes it */
  pid_file = g_build_filename (pid_dir, "milter.pid", NULL);
  /* Relative to where the program starts, although the daemon works from /. */
  pid_arg = g_strdup ("--pid-file=milter.pid");
  {
    const gchar *extra[] = { pid_arg, "--user", "nobody", "--unix-socket-mode", "0666", "--daemon",
                             NULL };
    g_autofree gchar *cwd = g_get_current_dir ();

    g_assert_cmpint (chdir (pid_dir), ==, 0);
    server_start (&server, extra, 0);
    g_assert_cmpint (chdir (cwd), ==, 0);
  }
  /* The launched process exits at once; the daemon goes on. */
  server.pid = wait_for_daemon (&server, pid_file);

  mta = connect_negotiated (server.spec);
  mta_harness_end_of_message (mta);
  g_free (mta_harness_read (mta));
  ids = mta_harness_read (mta);
  expected = g_strdup_printf ("h X-Ids: %d %d %d %d", (int) nobody->pw_uid, (int) nobody->pw_uid,
                              (int) nobody->pw_gid, (int) nobody->pw_gid);
  g_assert_cmpstr (ids, ==, expected);
  mta_harness_free (mta);

  kill (server.pid, SIGTERM);
  wait_gone (server.pid);
  g_assert_false (g_file_test (pid_file, G_FILE_TEST_EXISTS));
  remove_tmp_dir (pid_dir);
  server_free (&server);
}

/* A daemon's workers log to syslog as the daemon does (their standard
 * error is /dev/null). Checked with a stand-in for the syslog socket,
 * only where none runs. */
static void
test_daemon_workers_log_to_syslog (void)
{
  Server server = { 0 };
  g_autoptr(GSocket) log_socket = NULL;
  g_autoptr(GSocketAddress) log_address = NULL;
  g_autofree gchar *pid_dir = NULL;
  g_autofree gchar *pid_file = NULL;
  g_autofree gchar *pid_arg = NULL;
  g_autofree gchar *served_by = NULL;
  gboolean found = FALSE;
  MtaHarness *mta;

  if (geteuid () != 0 || g_file_test ("/dev/log", G_FILE_TEST_EXISTS))
    {
      g_test_skip ("needs root and no syslog socket at /dev/log");
      return;
    }
  log_socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_DEFAULT, NULL);
  log_address = g_unix_socket_address_new ("/dev/log");
  if (!g_socket_bind (log_socket, log_address, FALSE, NULL))
    {
      g_test_skip ("cannot create /dev/log here");
      return;
    }
  pid_dir = make_tmp_dir ();
  pid_file = g_build_filename (pid_dir, "milter.pid", NULL);
  pid_arg = g_strconcat ("--pid-file=", pid_file, NULL);
  {
    const gchar *extra[] = { pid_arg, "--daemon", "--n-workers", "1", NULL };

    /* A debug message: without --log-level, G_MESSAGES_DEBUG lets it
     * through to syslog as it would to standard error. */
    g_setenv ("TEST_CLIENT_LOG_SESSIONS", "debug", TRUE);
    g_setenv ("G_MESSAGES_DEBUG", "all", TRUE);
    server_start (&server, extra, 0);
    g_unsetenv ("TEST_CLIENT_LOG_SESSIONS");
    g_unsetenv ("G_MESSAGES_DEBUG");
  }
  server.pid = wait_for_daemon (&server, pid_file);
  mta = connect_to_spec (server.spec);
  served_by = run_session (mta);
  mta_harness_free (mta);
  g_assert_cmpstr (served_by, !=, "");

  g_socket_set_timeout (log_socket, 5);
  while (!found)
    {
      gchar buffer[1024];
      gssize n = g_socket_receive (log_socket, buffer, sizeof buffer - 1, NULL, NULL);

      if (n <= 0)
        break;
      buffer[n] = '\0';
      g_test_message ("syslog: %s", buffer);
      found = strstr (buffer, "session in worker 1") != NULL;
    }
  kill (server.pid, SIGTERM);
  wait_gone (server.pid);
  g_unlink ("/dev/log");
  server_free (&server);
  remove_tmp_dir (pid_dir);
  g_assert_true (found);
}

/* A daemon whose workers cannot start (here: no process left for its
 * user) says so through the process that started it, which exits with 1,
 * rather than reporting success and vanishing. */
static void
test_daemon_reports_worker_failure (void)
{
  const gchar *extra[] = { "--daemon", "--user", "nobody", "--n-workers", "1", NULL };
  g_autofree gchar *output = NULL;

  if (geteuid () != 0 || getpwnam ("nobody") == NULL)
    {
      g_test_skip ("limiting another user's processes needs root and a “nobody” user");
      return;
    }
  g_setenv ("TEST_CLIENT_NPROC", "1", TRUE);
  output = expect_start_refused (extra);
  g_unsetenv ("TEST_CLIENT_NPROC");
  g_assert_nonnull (strstr (output, "worker"));
}

/* A PID file naming a running process is another instance's: the filter
 * refuses to start rather than take it over. */
static void
test_pid_file_of_running_process (void)
{
  Server server = { 0 };
  g_autofree gchar *log_dir = make_tmp_dir ();
  g_autofree gchar *log = g_build_filename (log_dir, "stderr", NULL);
  g_autofree gchar *pid_file = g_build_filename (log_dir, "milter.pid", NULL);
  g_autofree gchar *pid_arg = g_strconcat ("--pid-file=", pid_file, NULL);
  g_autofree gchar *ours = g_strdup_printf ("%d\n", (int) getpid ());
  g_autofree gchar *output = NULL;
  g_autofree gchar *contents = NULL;
  const gchar *extra[] = { pid_arg, NULL };

  /* This test program stands for the running instance. */
  g_assert_true (g_file_set_contents (pid_file, ours, -1, NULL));
  g_setenv ("TEST_CLIENT_STDERR", log, TRUE);
  server_start (&server, extra, 0);
  g_unsetenv ("TEST_CLIENT_STDERR");
  output = refusal_output (&server, log);
  g_assert_nonnull (strstr (output, "which is running"));
  g_assert_true (g_file_get_contents (pid_file, &contents, NULL, NULL));
  g_assert_cmpstr (contents, ==, ours);
  server_free (&server);

  /* A stale one (no such process) is replaced. */
  g_assert_true (g_file_set_contents (pid_file, "2147483646\n", -1, NULL));
  server_start (&server, extra, 0);
  g_assert_true (wait_for_path (server.path, TRUE));
  {
    /* Served: set up, PID file included. */
    MtaHarness *mta = connect_to_spec (server.spec);
    g_autofree gchar *served_by = run_session (mta);

    mta_harness_free (mta);
  }
  g_clear_pointer (&contents, g_free);
  g_assert_true (g_file_get_contents (pid_file, &contents, NULL, NULL));
  g_assert_cmpint (atoi (contents), ==, server.pid);
  server_terminate (&server);
  g_assert_false (g_file_test (pid_file, G_FILE_TEST_EXISTS));
  server_free (&server);
  remove_tmp_dir (log_dir);
}

static void
close_standard_fds (gpointer user_data)
{
  test_util_die_with_parent (NULL);
  close (STDIN_FILENO);
  close (STDOUT_FILENO);
  close (STDERR_FILENO);
}

/* A daemon started with standard input, output and error closed (as some
 * init scripts do) serves: its own descriptors must not take those
 * numbers, or detaching would put /dev/null over them. */
static void
test_daemon_without_standard_fds (void)
{
  Server server = { 0 };
  g_autofree gchar *pid_file = NULL;
  g_autofree gchar *pid_arg = NULL;
  g_autofree gchar *spec_arg = NULL;
  g_autofree gchar *served_by = NULL;
  g_autoptr(GError) error = NULL;
  MtaHarness *mta;

  server_prepare (&server, "milter.sock");
  pid_file = g_build_filename (server.dir, "milter.pid", NULL);
  pid_arg = g_strconcat ("--pid-file=", pid_file, NULL);
  spec_arg = g_strconcat ("--connection-spec=", server.spec, NULL);
  {
    const gchar *argv[] = { program_path, "--serve", spec_arg, pid_arg, "--daemon", NULL };

    g_assert_true (g_spawn_async (NULL, (gchar **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                  close_standard_fds, NULL, &server.pid, &error));
    g_assert_no_error (error);
  }
  server.pid = wait_for_daemon (&server, pid_file);

  mta = connect_to_spec (server.spec);
  served_by = run_session (mta);
  mta_harness_free (mta);
  g_assert_cmpint (atoi (served_by), ==, server.pid);

  kill (server.pid, SIGTERM);
  wait_gone (server.pid);
  g_assert_false (g_file_test (pid_file, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (server.path, G_FILE_TEST_EXISTS));
  server_free (&server);
}

/* A daemon that cannot set itself up says so, through the process that
 * started it, which exits with status 1: never a silent success. */
static void
test_daemon_reports_failure (void)
{
  const gchar *extra[] = { "--daemon", "--user", "no-such-user-here", NULL };
  g_autofree gchar *output = expect_start_refused (extra);

  /* The quotes depend on the locale. */
  g_assert_nonnull (strstr (output, "Unknown user"));
  g_assert_nonnull (strstr (output, "no-such-user-here"));
}

/* A failed drop of privileges is fatal: never run as root by mistake. */
static void
test_unknown_user_refused (void)
{
  Server server = { 0 };
  const gchar *extra[] = { "--user", "no-such-user-here", NULL };
  gint status;

  server_start (&server, extra, G_SPAWN_STDERR_TO_DEV_NULL);
  status = server_wait (&server);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 1);
  g_assert_false (g_file_test (server.path, G_FILE_TEST_EXISTS));
  server_free (&server);
}

static guint64
cpu_ticks (GPid pid)
{
  g_autofree gchar *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree gchar *contents = NULL;
  g_auto(GStrv) fields = NULL;

  g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
  fields = g_strsplit (strrchr (contents, ')') + 2, " ", -1);
  /* utime and stime are fields 14 and 15; index 0 here is field 3. */
  return g_ascii_strtoull (fields[11], NULL, 10) + g_ascii_strtoull (fields[12], NULL, 10);
}

/* Out of file descriptors: the client backs off instead of spinning, and
 * serves again once descriptors are free. */
static void
test_emfile_backoff (void)
{
  Server server = { 0 };
  GPtrArray *idle = g_ptr_array_new_with_free_func ((GDestroyNotify) mta_harness_free);
  g_autofree gchar *served_by = NULL;
  guint64 before, after;
  MtaHarness *mta;

  g_autofree gchar *log_name = NULL;
  g_autofree gchar *log_path = NULL;
  g_autofree gchar *log = NULL;
  g_auto(GStrv) lines = NULL;
  guint warnings = 0;
  guint errors = 0;

  log_name = g_strdup_printf ("milter-test-emfile-%d.log", (int) getpid ());
  log_path = g_build_filename (g_get_tmp_dir (), log_name, NULL);
  g_setenv ("TEST_CLIENT_NOFILE", "24", TRUE);
  g_setenv ("TEST_CLIENT_STDERR", log_path, TRUE);
  server_start (&server, NULL, 0);
  g_unsetenv ("TEST_CLIENT_NOFILE");
  g_unsetenv ("TEST_CLIENT_STDERR");
  g_assert_true (wait_for_path (server.path, TRUE));

  /* Hold more connections than the filter has descriptors for. */
  for (guint i = 0; i < 40; i++)
    g_ptr_array_add (idle, connect_to_spec (server.spec));
  test_util_run_for (300);
  before = cpu_ticks (server.pid);
  test_util_run_for (1000);
  after = cpu_ticks (server.pid);
  /* A busy loop would burn about 100 ticks a second. */
  g_assert_cmpuint (after - before, <, 20);
  /* The trouble is logged once, not once per attempt. */
  g_assert_true (g_file_get_contents (log_path, &log, NULL, NULL));
  lines = g_strsplit (log, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      if (strstr (lines[i], "Cannot accept connections") != NULL)
        warnings++;
      if (g_str_has_prefix (lines[i], "client error: ") && strstr (lines[i], "open files") != NULL)
        errors++;
    }
  g_assert_cmpuint (warnings, ==, 1);
  /* …and reported once through MilterClient::error. */
  g_assert_cmpuint (errors, ==, 1);

  /* Descriptors freed one by one while the trouble lasts: each lets one
   * waiting connection in, and the next accept() fails again. Still one
   * warning: it is said once a minute at most. */
  for (guint i = 0; i < 6; i++)
    {
      g_ptr_array_remove_index (idle, 0);
      test_util_run_for (300);
    }
  g_clear_pointer (&log, g_free);
  g_clear_pointer (&lines, g_strfreev);
  g_assert_true (g_file_get_contents (log_path, &log, NULL, NULL));
  lines = g_strsplit (log, "\n", -1);
  warnings = 0;
  for (guint i = 0; lines[i] != NULL; i++)
    if (strstr (lines[i], "Cannot accept connections") != NULL)
      warnings++;
  g_assert_cmpuint (warnings, ==, 1);

  g_ptr_array_unref (idle);
  test_util_run_for (600);
  mta = connect_to_spec (server.spec);
  served_by = run_session (mta);
  mta_harness_free (mta);
  kill (server.pid, SIGTERM);
  server_wait (&server);
  g_unlink (log_path);
  server_free (&server);
}

int
main (int    argc,
      char **argv)
{
  if (argc > 1 && g_str_equal (argv[1], "--serve"))
    return serve (argc - 1, argv + 1);

  g_test_init (&argc, &argv, NULL);

  program_path = g_canonicalize_filename (argv[0], NULL);
  g_test_add_func ("/client/listen/unix-socket", test_unix_socket);
  g_test_add_func ("/client/listen/unix-socket-ready-when-visible", test_unix_socket_ready_when_visible);
  g_test_add_func ("/client/listen/unix-socket-in-the-way", test_unix_socket_in_the_way);
  g_test_add_func ("/client/listen/unix-socket-of-another-instance-stays",
                   test_unix_socket_of_another_instance_stays);
  g_test_add_func ("/client/listen/inet", test_inet);
  g_test_add_func ("/client/listen/inet6", test_inet6);
  g_test_add_func ("/client/listen/default-spec", test_default_spec);
  g_test_add_func ("/client/listen/twice", test_listen_twice);
  g_test_add_func ("/client/listen/add-socket-not-listening", test_add_socket_not_listening);
  g_test_add_func ("/client/listen/activation-without-sockets", test_activation_without_sockets);
  g_test_add_func ("/client/listen/accept-error-backs-off", test_accept_error_backs_off);
  g_test_add_func ("/client/listen/several-specs", test_several_specs);
  g_test_add_func ("/client/sessions/concurrent", test_concurrent_sessions);
  g_test_add_func ("/client/sessions/max-connections", test_max_connections);
  g_test_add_func ("/client/sessions/idle-sessions-park", test_idle_sessions_park);
  g_test_add_func ("/client/sessions/parked-session-times-out", test_parked_session_times_out);
  g_test_add_func ("/client/sessions/context-type", test_context_type);
  g_test_add_func ("/client/sessions/settings-reach-sessions", test_settings_reach_sessions);
  g_test_add_func ("/client/sessions/handle-stream-pipes", test_handle_stream_pipes);
  g_test_add_func ("/client/sessions/handle-stream-refused", test_handle_stream_refused);
  g_test_add_func ("/client/shutdown/waits-for-session", test_shutdown_waits_for_session);
  g_test_add_func ("/client/shutdown/grace-expires", test_shutdown_grace_expires);
  g_test_add_func ("/client/shutdown/parked-sessions", test_shutdown_parked_sessions);
  g_test_add_func ("/client/shutdown/then-listen-again", test_shutdown_then_listen_again);
  g_test_add_func ("/client/shutdown/unref-ends-sessions", test_unref_ends_sessions);
  g_test_add_func ("/client/sessions/run-in-the-client-context", test_sessions_run_in_the_client_context);
  g_test_add_func ("/client/options/group", test_option_group);
  g_test_add_func ("/client/options/errors", test_option_errors);
  g_test_add_func ("/client/options/parse-command-line", test_parse_command_line);
  g_test_add_func ("/client/process/workers", test_workers);
  g_test_add_func ("/client/process/worker-restart-retried", test_worker_restart_retried);
  g_test_add_func ("/client/process/run-signals", test_run_signals);
  g_test_add_func ("/client/process/signal-during-startup", test_signal_during_startup);
  g_test_add_func ("/client/process/sighup-during-worker-startup", test_sighup_during_worker_startup);
  g_test_add_func ("/client/process/socket-activation", test_socket_activation);
  g_test_add_func ("/client/process/socket-activation-connection", test_socket_activation_connection);
  g_test_add_func ("/client/process/socket-activation-refused", test_socket_activation_refused);
  g_test_add_func ("/client/process/privileges-and-pid-file", test_privileges_and_pid_file);
  g_test_add_func ("/client/process/unknown-user-refused", test_unknown_user_refused);
  g_test_add_func ("/client/process/daemon-reports-failure", test_daemon_reports_failure);
  g_test_add_func ("/client/process/daemon-without-standard-fds", test_daemon_without_standard_fds);
  g_test_add_func ("/client/process/daemon-reports-worker-failure", test_daemon_reports_worker_failure);
  g_test_add_func ("/client/process/daemon-workers-log-to-syslog", test_daemon_workers_log_to_syslog);
  g_test_add_func ("/client/process/pid-file-of-running-process", test_pid_file_of_running_process);
  g_test_add_func ("/client/process/emfile-backoff", test_emfile_backoff);

  return g_test_run ();
}
