/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-daemon-private.h"
#include "milter-client.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
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

gboolean
milter_daemon_detach (GError **error)
{
  pid_t pid = fork ();
  int null_fd;

  if (pid < 0)
    return set_errno_error (error, MILTER_CLIENT_ERROR_DAEMON, errno, "Cannot fork");
  if (pid > 0)
    _exit (0);
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

gboolean
milter_daemon_write_pid_file (const gchar  *path,
                              GError      **error)
{
  g_autofree gchar *contents = g_strdup_printf ("%d\n", (int) getpid ());
  g_autoptr(GError) local_error = NULL;

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
  if (!g_ascii_string_to_unsigned (fds_text, 10, 1, 1024, &n_fds, NULL))
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
