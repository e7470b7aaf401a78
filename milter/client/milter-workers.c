/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-workers-private.h"
#include "milter-client.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKER_ID_VARIABLE "MILTER_GLIB_WORKER"
#define WORKER_FDS_VARIABLE "MILTER_GLIB_WORKER_FDS"
#define FIRST_FD 3

/* A worker that dies within this time of its start, or cannot be started
 * again, is restarted after a delay that doubles each time, up to
 * MAX_RESTART_DELAY_MS, so a crashing filter cannot make the parent start
 * processes in a tight loop. */
#define YOUNG_DEATH_USEC (2 * G_USEC_PER_SEC)
#define MAX_RESTART_DELAY_MS 30000

typedef struct
{
  MilterWorkers *workers;
  guint id;              /* 1..n */
  GPid pid;              /* 0 when not running */
  gint64 started_at;
  guint restart_delay_ms;
  guint watch_id;
  guint restart_id;
} Worker;

struct _MilterWorkers
{
  GMainContext *context;
  GArray *fds;           /* of int: the listening sockets */
  gchar **argv;          /* the executable, then the arguments */
  gchar *directory;      /* where the program was started */
  Worker *slots;
  guint n_slots;
  gboolean stopping;
  GSourceFunc done;
  gpointer done_data;
};

static gboolean spawn (Worker  *worker,
                       GError **error);

MilterWorkers *
milter_workers_new (guint         n_workers,
                    GPtrArray    *sockets,
                    const gchar  *directory,
                    GMainContext *context)
{
  MilterWorkers *workers = g_new0 (MilterWorkers, 1);

  /* A daemon works from /, where a script's relative path (python3
   * filter.py) and the program's own relative paths would not resolve. */
  workers->directory = g_strdup (directory);

  workers->context = context != NULL ? g_main_context_ref (context) : g_main_context_ref_thread_default ();
  workers->fds = g_array_new (FALSE, FALSE, sizeof (int));
  for (guint i = 0; i < sockets->len; i++)
    {
      int fd = g_socket_get_fd (g_ptr_array_index (sockets, i));

      g_array_append_val (workers->fds, fd);
    }
  workers->n_slots = n_workers;
  workers->slots = g_new0 (Worker, n_workers);
  for (guint i = 0; i < n_workers; i++)
    {
      workers->slots[i].workers = workers;
      workers->slots[i].id = i + 1;
    }
  return workers;
}

static void
remove_source (GMainContext *context,
               guint        *id)
{
  GSource *source;

  if (*id == 0)
    return;
  source = g_main_context_find_source_by_id (context, *id);
  if (source != NULL)
    g_source_destroy (source);
  *id = 0;
}

void
milter_workers_free (MilterWorkers *workers)
{
  if (workers == NULL)
    return;
  for (guint i = 0; i < workers->n_slots; i++)
    {
      remove_source (workers->context, &workers->slots[i].watch_id);
      remove_source (workers->context, &workers->slots[i].restart_id);
    }
  g_free (workers->slots);
  g_array_unref (workers->fds);
  g_strfreev (workers->argv);
  g_free (workers->directory);
  g_main_context_unref (workers->context);
  g_free (workers);
}

guint
milter_workers_get_n_running (MilterWorkers *workers)
{
  guint n = 0;

  for (guint i = 0; i < workers->n_slots; i++)
    if (workers->slots[i].pid != 0)
      n++;
  return n;
}

/* This very program and its arguments as it was started, in the form
 * G_SPAWN_FILE_AND_ARGV_ZERO wants: the executable, then argv. */
static gboolean
read_own_command_line (MilterWorkers  *workers,
                       GError        **error)
{
  g_autofree gchar *cmdline = NULL;
  g_autofree gchar *executable = NULL;
  g_autoptr(GError) local_error = NULL;
  GPtrArray *argv;
  gsize length;

  executable = g_file_read_link ("/proc/self/exe", &local_error);
  if (executable == NULL ||
      !g_file_get_contents ("/proc/self/cmdline", &cmdline, &length, &local_error))
    {
      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_WORKERS,
                   "Cannot find out how this program was started: %s", local_error->message);
      return FALSE;
    }
  argv = g_ptr_array_new ();
  g_ptr_array_add (argv, g_steal_pointer (&executable));
  for (gsize offset = 0; offset < length; offset += strlen (cmdline + offset) + 1)
    g_ptr_array_add (argv, g_strdup (cmdline + offset));
  g_ptr_array_add (argv, NULL);
  workers->argv = (gchar **) g_ptr_array_free (argv, FALSE);
  return TRUE;
}

static guint
next_restart_delay (guint delay_ms)
{
  return MIN (MAX (delay_ms * 2, 100), MAX_RESTART_DELAY_MS);
}

static gboolean restart_later (gpointer user_data);

static void
schedule_restart (Worker *worker)
{
  GSource *source = g_timeout_source_new (worker->restart_delay_ms);

  g_source_set_callback (source, restart_later, worker, NULL);
  worker->restart_id = g_source_attach (source, worker->workers->context);
  g_source_unref (source);
}

/* A failed start (the executable replaced, out of processes or
 * descriptors) may pass: try again, waiting longer each time, so that the
 * slot is not left without a worker for good. */
static gboolean
restart_later (gpointer user_data)
{
  Worker *worker = user_data;
  g_autoptr(GError) error = NULL;

  worker->restart_id = 0;
  if (worker->workers->stopping || spawn (worker, &error))
    return G_SOURCE_REMOVE;
  worker->restart_delay_ms = next_restart_delay (worker->restart_delay_ms);
  g_warning ("Cannot restart worker %u: %s; trying again in %u ms", worker->id, error->message,
             worker->restart_delay_ms);
  schedule_restart (worker);
  return G_SOURCE_REMOVE;
}

static void
on_worker_exit (GPid     pid,
                gint     wait_status,
                gpointer user_data)
{
  Worker *worker = user_data;
  MilterWorkers *workers = worker->workers;
  gint64 lived = g_get_monotonic_time () - worker->started_at;

  g_spawn_close_pid (pid);
  worker->pid = 0;
  worker->watch_id = 0;

  if (workers->stopping)
    {
      if (milter_workers_get_n_running (workers) == 0 && workers->done != NULL)
        workers->done (workers->done_data);
      return;
    }

  if (WIFSIGNALED (wait_status))
    g_warning ("Worker %u (process %d) was killed by signal %d; restarting it",
               worker->id, (int) pid, WTERMSIG (wait_status));
  else
    g_warning ("Worker %u (process %d) exited with status %d; restarting it",
               worker->id, (int) pid, WEXITSTATUS (wait_status));

  worker->restart_delay_ms = lived < YOUNG_DEATH_USEC ? next_restart_delay (worker->restart_delay_ms) : 0;
  if (worker->restart_delay_ms == 0)
    restart_later (worker);
  else
    schedule_restart (worker);
}

/* The signals the parent sends a worker (SIGTERM, SIGHUP) or that reach
 * its whole process group (SIGINT). */
static void
get_worker_signals (sigset_t *set)
{
  sigemptyset (set);
  sigaddset (set, SIGTERM);
  sigaddset (set, SIGINT);
  sigaddset (set, SIGHUP);
}

/* In the new process, before exec: a worker must not outlive its parent,
 * which may have died before prctl(), too late for the signal. Its
 * signals stay blocked across exec until milter_workers_take_sockets():
 * one that comes before the worker's handlers then waits for them instead
 * of killing it with the default action. */
static void
setup_worker (gpointer user_data)
{
  pid_t parent = GPOINTER_TO_INT (user_data);
  sigset_t blocked;

  prctl (PR_SET_PDEATHSIG, SIGTERM);
  if (getppid () != parent)
    _exit (1);
  get_worker_signals (&blocked);
  sigprocmask (SIG_BLOCK, &blocked, NULL);
}

static gboolean
spawn (Worker  *worker,
       GError **error)
{
  MilterWorkers *workers = worker->workers;
  g_auto(GStrv) envp = g_get_environ ();
  g_autofree gchar *id = g_strdup_printf ("%u", worker->id);
  g_autofree gchar *n_fds = g_strdup_printf ("%u", workers->fds->len);
  g_autofree gint *targets = g_new (gint, workers->fds->len);
  g_autoptr(GError) local_error = NULL;

  envp = g_environ_setenv (envp, WORKER_ID_VARIABLE, id, TRUE);
  envp = g_environ_setenv (envp, WORKER_FDS_VARIABLE, n_fds, TRUE);
  envp = g_environ_unsetenv (envp, "LISTEN_FDS");
  envp = g_environ_unsetenv (envp, "LISTEN_PID");
  for (guint i = 0; i < workers->fds->len; i++)
    targets[i] = FIRST_FD + (gint) i;

  if (!g_spawn_async_with_pipes_and_fds (workers->directory, (const gchar * const *) workers->argv,
                                         (const gchar * const *) envp,
                                         G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_FILE_AND_ARGV_ZERO,
                                         setup_worker, GINT_TO_POINTER (getpid ()), -1, -1, -1,
                                         (const gint *) workers->fds->data, targets,
                                         workers->fds->len, &worker->pid, NULL, NULL, NULL,
                                         &local_error))
    {
      worker->pid = 0;
      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_WORKERS,
                   "Cannot start worker %u: %s", worker->id, local_error->message);
      return FALSE;
    }

  worker->started_at = g_get_monotonic_time ();
  {
    GSource *source = g_child_watch_source_new (worker->pid);

    g_source_set_callback (source, G_SOURCE_FUNC (on_worker_exit), worker, NULL);
    worker->watch_id = g_source_attach (source, workers->context);
    g_source_unref (source);
  }
  return TRUE;
}

gboolean
milter_workers_start (MilterWorkers  *workers,
                      GError        **error)
{
  if (!read_own_command_line (workers, error))
    return FALSE;
  for (guint i = 0; i < workers->n_slots; i++)
    if (!spawn (&workers->slots[i], error))
      {
        milter_workers_stop (workers, NULL, NULL);
        return FALSE;
      }
  return TRUE;
}

void
milter_workers_kill (MilterWorkers *workers,
                     int            signum)
{
  for (guint i = 0; i < workers->n_slots; i++)
    if (workers->slots[i].pid != 0)
      kill (workers->slots[i].pid, signum);
}

void
milter_workers_stop (MilterWorkers *workers,
                     GSourceFunc    done,
                     gpointer       user_data)
{
  workers->stopping = TRUE;
  workers->done = done;
  workers->done_data = user_data;
  for (guint i = 0; i < workers->n_slots; i++)
    remove_source (workers->context, &workers->slots[i].restart_id);
  milter_workers_kill (workers, SIGTERM);
  if (milter_workers_get_n_running (workers) == 0 && done != NULL)
    done (user_data);
}

static void
unblock_worker_signals (void)
{
  sigset_t blocked;

  get_worker_signals (&blocked);
  pthread_sigmask (SIG_UNBLOCK, &blocked, NULL);
}

guint
milter_workers_take_sockets (GList  **sockets,
                             GError **error)
{
  const gchar *id_text = g_getenv (WORKER_ID_VARIABLE);
  const gchar *fds_text = g_getenv (WORKER_FDS_VARIABLE);
  guint64 id, n_fds;

  *sockets = NULL;
  if (id_text == NULL || fds_text == NULL)
    return 0;
  unblock_worker_signals ();
  if (!g_ascii_string_to_unsigned (id_text, 10, 1, G_MAXUINT, &id, NULL) ||
      !g_ascii_string_to_unsigned (fds_text, 10, 1, 1024, &n_fds, NULL))
    {
      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_WORKERS,
                   "Invalid worker environment %s=%s %s=%s", WORKER_ID_VARIABLE, id_text,
                   WORKER_FDS_VARIABLE, fds_text);
      return 0;
    }
  g_unsetenv (WORKER_ID_VARIABLE);
  g_unsetenv (WORKER_FDS_VARIABLE);
  for (guint i = 0; i < n_fds; i++)
    {
      int fd = FIRST_FD + (int) i;
      g_autoptr(GError) socket_error = NULL;
      GSocket *socket;

      fcntl (fd, F_SETFD, FD_CLOEXEC);
      socket = g_socket_new_from_fd (fd, &socket_error);
      if (socket == NULL)
        {
          g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_WORKERS,
                       "Worker %u: descriptor %d is not a socket: %s", (guint) id, fd,
                       socket_error->message);
          g_list_free_full (*sockets, g_object_unref);
          *sockets = NULL;
          return 0;
        }
      *sockets = g_list_append (*sockets, socket);
    }
  return (guint) id;
}
