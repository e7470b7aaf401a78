/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-daemon-private.h"
#include "milter-client.h"

#include <errno.h>
#include <glib-unix.h>
#include <string.h>
#include <syslog.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define SD_LISTEN_FDS_START 3

static gboolean
set_errno_error (GError      **error,
                 gint          code,
                 int           saved_errno,
                 const gchar  *what)
{
  g_set_error (error, MILTER_CLIENT_ERROR, code, "%s: %s", what, g_strerror (saved_errno));
  return FALSE;
}

/* The parent's side: waits for the child's report, then exits. */
static void G_GNUC_NORETURN
wait_for_ready (int fd)
{
  GString *report = g_string_new (NULL);
  gchar buffer[512];
  gssize n;

  while ((n = read (fd, buffer, sizeof buffer)) != 0)
    {
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        break;
      g_string_append_len (report, buffer, n);
    }
  if (report->len == 1 && report->str[0] == '\0')
    _exit (0);
  g_printerr ("%s: %s\n", g_get_prgname () != NULL ? g_get_prgname () : "milter",
              report->len > 0 ? report->str : "the daemon exited before it was ready");
  _exit (1);
}

void
milter_daemon_ensure_standard_fds (void)
{
  for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
    {
      /* open() takes the lowest free number, which is this one. */
      if (fcntl (fd, F_GETFD) < 0 && errno == EBADF && open ("/dev/null", O_RDWR) < 0)
        break;
    }
}

gboolean
milter_daemon_detach (MilterSignalPipe  *signal_pipe,
                      gint              *ready_fd,
                      GError           **error)
{
  int fds[2];
  pid_t pid;
  int null_fd;
  sigset_t old_mask;

  if (!g_unix_open_pipe (fds, FD_CLOEXEC, NULL))
    return set_errno_error (error, MILTER_CLIENT_ERROR_DAEMON, errno, "Cannot create a pipe");
  /* Until the parent has its own handlers back, a signal it got would go
   * down the pipe it shares with the child, and stop the daemon. */
  milter_signal_pipe_block (signal_pipe, &old_mask);
  pid = fork ();
  if (pid < 0)
    {
      int saved_errno = errno;

      pthread_sigmask (SIG_SETMASK, &old_mask, NULL);
      close (fds[0]);
      close (fds[1]);
      return set_errno_error (error, MILTER_CLIENT_ERROR_DAEMON, saved_errno, "Cannot fork");
    }
  if (pid > 0)
    {
      milter_signal_pipe_free (signal_pipe);
      pthread_sigmask (SIG_SETMASK, &old_mask, NULL);
      close (fds[1]);
      wait_for_ready (fds[0]);
    }
  pthread_sigmask (SIG_SETMASK, &old_mask, NULL);
  close (fds[0]);
  *ready_fd = fds[1];
  if (setsid () < 0)
    return set_errno_error (error, MILTER_CLIENT_ERROR_DAEMON, errno, "Cannot start a new session");
  if (chdir ("/") < 0)
    return set_errno_error (error, MILTER_CLIENT_ERROR_DAEMON, errno, "Cannot change to /");
  null_fd = open ("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0)
    return set_errno_error (error, MILTER_CLIENT_ERROR_DAEMON, errno, "Cannot open /dev/null");
  dup2 (null_fd, STDIN_FILENO);
  dup2 (null_fd, STDOUT_FILENO);
  dup2 (null_fd, STDERR_FILENO);
  if (null_fd > STDERR_FILENO)
    close (null_fd);
  return TRUE;
}

void
milter_daemon_report_ready (gint          ready_fd,
                            const GError *error)
{
  const gchar *report = error != NULL ? error->message : "";
  gsize size = error != NULL ? strlen (report) : 1;  /* success: one NUL byte */

  while (size > 0)
    {
      gssize n = write (ready_fd, report, size);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      report += n;
      size -= (gsize) n;
    }
  close (ready_fd);
}

static int
syslog_priority (GLogLevelFlags level)
{
  switch (level & G_LOG_LEVEL_MASK)
    {
    case G_LOG_LEVEL_ERROR: return LOG_ERR;
    case G_LOG_LEVEL_CRITICAL: return LOG_CRIT;
    case G_LOG_LEVEL_WARNING: return LOG_WARNING;
    case G_LOG_LEVEL_MESSAGE: return LOG_NOTICE;
    case G_LOG_LEVEL_INFO: return LOG_INFO;
    default: return LOG_DEBUG;
    }
}

static GLogWriterOutput
write_to_syslog (GLogLevelFlags   level,
                 const GLogField *fields,
                 gsize            n_fields,
                 gpointer         user_data)
{
  const gchar *message = "";
  const gchar *domain = NULL;

  for (gsize i = 0; i < n_fields; i++)
    {
      if (g_str_equal (fields[i].key, "MESSAGE") && fields[i].length < 0)
        message = fields[i].value;
      else if (g_str_equal (fields[i].key, "GLIB_DOMAIN") && fields[i].length < 0)
        domain = fields[i].value;
    }
  syslog (syslog_priority (level), "%s%s%s", domain != NULL ? domain : "", domain != NULL ? ": " : "",
          message);
  return G_LOG_WRITER_HANDLED;
}

static GLogWriterFunc daemon_writer;

void
milter_daemon_log_to_syslog (void)
{
  openlog (g_get_prgname (), LOG_PID, LOG_MAIL);
  daemon_writer = write_to_syslog;
}

GLogWriterOutput
milter_daemon_write_log (GLogLevelFlags   level,
                         const GLogField *fields,
                         gsize            n_fields,
                         gpointer         user_data)
{
  if (daemon_writer != NULL)
    return daemon_writer (level, fields, n_fields, user_data);
  return g_log_writer_default (level, fields, n_fields, user_data);
}

gboolean
milter_daemon_write_pid_file (const gchar  *path,
                              GError      **error)
{
  g_autofree gchar *contents = g_strdup_printf ("%d\n", (int) getpid ());
  g_autofree gchar *previous = NULL;
  g_autoptr(GError) local_error = NULL;

  /* Another instance's file is not ours to take: stopping it through the
   * file would stop us instead. A stale one is replaced. */
  if (g_file_get_contents (path, &previous, NULL, NULL))
    {
      int other = atoi (previous);

      if (other > 0 && other != (int) getpid () && (kill (other, 0) == 0 || errno == EPERM))
        {
          g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_DAEMON,
                       "The PID file “%s” names process %d, which is running", path, other);
          return FALSE;
        }
    }
  /* g_file_set_contents writes a temporary file and renames it. */
  if (!g_file_set_contents_full (path, contents, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0644,
                                 &local_error))
    {
      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_DAEMON,
                   "Cannot write the PID file: %s", local_error->message);
      return FALSE;
    }
  return TRUE;
}

void
milter_daemon_remove_pid_file (const gchar *path)
{
  g_autofree gchar *contents = NULL;

  /* Only our own: a successor may have written it already. */
  if (g_file_get_contents (path, &contents, NULL, NULL) && atoi (contents) == (int) getpid ())
    unlink (path);
}

gboolean
milter_daemon_lookup_group (const gchar  *group,
                            gid_t        *gid,
                            GError      **error)
{
  struct group *entry;
  gchar *end;
  guint64 number;

  errno = 0;
  entry = getgrnam (group);
  if (entry != NULL)
    {
      *gid = entry->gr_gid;
      return TRUE;
    }
  number = g_ascii_strtoull (group, &end, 10);
  if (*group != '\0' && *end == '\0' && number <= G_MAXUINT32)
    {
      *gid = (gid_t) number;
      return TRUE;
    }
  g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_PRIVILEGES,
               "Unknown group “%s”", group);
  return FALSE;
}

static gboolean
lookup_user (const gchar  *user,
             uid_t        *uid,
             gid_t        *gid,
             GError      **error)
{
  struct passwd *entry = getpwnam (user);
  gchar *end;
  guint64 number;

  if (entry != NULL)
    {
      *uid = entry->pw_uid;
      *gid = entry->pw_gid;
      return TRUE;
    }
  number = g_ascii_strtoull (user, &end, 10);
  if (*user != '\0' && *end == '\0' && number <= G_MAXUINT32)
    {
      *uid = (uid_t) number;
      entry = getpwuid (*uid);
      *gid = entry != NULL ? entry->pw_gid : (gid_t) number;
      return TRUE;
    }
  g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_PRIVILEGES,
               "Unknown user “%s”", user);
  return FALSE;
}

gboolean
milter_daemon_drop_privileges (const gchar  *user,
                               const gchar  *group,
                               GError      **error)
{
  uid_t uid = getuid ();
  gid_t gid = getgid ();
  struct passwd *entry;

  if (user == NULL && group == NULL)
    return TRUE;
  if (user != NULL && !lookup_user (user, &uid, &gid, error))
    return FALSE;
  if (group != NULL && !milter_daemon_lookup_group (group, &gid, error))
    return FALSE;

  if (setgroups (1, &gid) < 0 && geteuid () == 0)
    return set_errno_error (error, MILTER_CLIENT_ERROR_PRIVILEGES, errno, "Cannot set the groups");
  entry = user != NULL ? getpwuid (uid) : NULL;
  if (entry != NULL && initgroups (entry->pw_name, gid) < 0 && geteuid () == 0)
    return set_errno_error (error, MILTER_CLIENT_ERROR_PRIVILEGES, errno,
                            "Cannot set the supplementary groups");
  if (setresgid (gid, gid, gid) < 0)
    return set_errno_error (error, MILTER_CLIENT_ERROR_PRIVILEGES, errno, "Cannot change the group");
  if (user != NULL && setresuid (uid, uid, uid) < 0)
    return set_errno_error (error, MILTER_CLIENT_ERROR_PRIVILEGES, errno, "Cannot change the user");

  /* Refuse to go on with privileges we were asked to give up. */
  if (getgid () != gid || getegid () != gid ||
      (user != NULL && (getuid () != uid || geteuid () != uid)) ||
      (user != NULL && uid != 0 && setuid (0) == 0))
    {
      g_set_error_literal (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_PRIVILEGES,
                           "Dropping privileges did not take effect");
      return FALSE;
    }
  return TRUE;
}

GList *
milter_daemon_take_activation_sockets (GError **error)
{
  const gchar *pid_text = g_getenv ("LISTEN_PID");
  const gchar *fds_text = g_getenv ("LISTEN_FDS");
  GList *sockets = NULL;
  guint64 pid, n_fds;

  if (pid_text == NULL || fds_text == NULL)
    return NULL;
  if (!g_ascii_string_to_unsigned (pid_text, 10, 1, G_MAXINT, &pid, NULL) ||
      (pid_t) pid != getpid ())
    return NULL;  /* meant for another process */
  g_unsetenv ("LISTEN_PID");
  g_unsetenv ("LISTEN_FDS");
  g_unsetenv ("LISTEN_FDNAMES");
  /* 0 is valid: nothing passed, as sd_listen_fds() reads it. */
  if (!g_ascii_string_to_unsigned (fds_text, 10, 0, 1024, &n_fds, NULL))
    {
      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_SOCKET_ACTIVATION,
                   "Invalid LISTEN_FDS “%s”", fds_text);
      return NULL;
    }
  for (guint i = 0; i < n_fds; i++)
    {
      int fd = SD_LISTEN_FDS_START + (int) i;
      g_autoptr(GError) socket_error = NULL;
      GSocket *socket;

      fcntl (fd, F_SETFD, FD_CLOEXEC);
      socket = g_socket_new_from_fd (fd, &socket_error);
      if (socket == NULL)
        {
          g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_SOCKET_ACTIVATION,
                       "Inherited file descriptor %d is not a usable socket: %s",
                       fd, socket_error->message);
          g_list_free_full (sockets, g_object_unref);
          return NULL;
        }
      sockets = g_list_append (sockets, socket);
    }
  return sockets;
}
