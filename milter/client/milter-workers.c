/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-workers-private.h"
#include "milter-client.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* A worker that dies within this time of its start is restarted after a
 * delay that doubles each time, up to MAX_RESTART_DELAY, so a crashing
 * filter cannot make the parent fork in a tight loop. */
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
  MilterWorkerFunc func;
  gpointer user_data;
  GMainContext *context;
  Worker *slots;
  guint n_slots;
  gboolean stopping;
  GSourceFunc done;
  gpointer done_data;
};

static gboolean spawn (Worker  *worker,
                       GError **error);

MilterWorkers *
milter_workers_new (guint            n_workers,
                    MilterWorkerFunc func,
                    gpointer         user_data,
                    GMainContext    *context)
{
  MilterWorkers *workers = g_new0 (MilterWorkers, 1);

  workers->func = func;
  workers->user_data = user_data;
  workers->context = context != NULL ? g_main_context_ref (context) : g_main_context_ref_thread_default ();
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

GArray *
milter_workers_get_pids (MilterWorkers *workers)
{
  GArray *pids = g_array_new (FALSE, FALSE, sizeof (GPid));

  for (guint i = 0; i < workers->n_slots; i++)
    if (workers->slots[i].pid != 0)
      g_array_append_val (pids, workers->slots[i].pid);
  return pids;
}

static gboolean
restart_later (gpointer user_data)
{
  Worker *worker = user_data;
  g_autoptr(GError) error = NULL;

  worker->restart_id = 0;
  if (!worker->workers->stopping && !spawn (worker, &error))
    g_warning ("Cannot restart worker %u: %s", worker->id, error->message);
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

  worker->restart_delay_ms = lived < YOUNG_DEATH_USEC ?
                             MIN (MAX (worker->restart_delay_ms * 2, 100), MAX_RESTART_DELAY_MS) : 0;
  if (worker->restart_delay_ms == 0)
    {
      restart_later (worker);
      return;
    }
  {
    GSource *source = g_timeout_source_new (worker->restart_delay_ms);

    g_source_set_callback (source, restart_later, worker, NULL);
    worker->restart_id = g_source_attach (source, workers->context);
    g_source_unref (source);
  }
}

static gboolean
spawn (Worker  *worker,
       GError **error)
{
  MilterWorkers *workers = worker->workers;
  pid_t pid = fork ();

  if (pid < 0)
    {
      int saved_errno = errno;

      g_set_error (error, MILTER_CLIENT_ERROR, MILTER_CLIENT_ERROR_WORKERS,
                   "Cannot fork worker %u: %s", worker->id, g_strerror (saved_errno));
      return FALSE;
    }
  if (pid == 0)
    {
      int status;

      /* The worker: the parent's signal handling does not apply here. */
      signal (SIGTERM, SIG_DFL);
      signal (SIGINT, SIG_DFL);
      signal (SIGHUP, SIG_DFL);
      status = workers->func (worker->id, workers->user_data);
      _exit (status);
    }

  worker->pid = pid;
  worker->started_at = g_get_monotonic_time ();
  {
    GSource *source = g_child_watch_source_new (pid);

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
