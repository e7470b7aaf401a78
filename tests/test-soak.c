/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <milter/milter.h>

#include "test-util.h"

/* Soak: a long run of mixed sessions against one filter process (every
 * status, aborts, deferred replies, MTAs vanishing mid-session), after
 * which the filter must be back where it started: memory within a small
 * bound, the same file descriptors, no session left. Also: what an idle
 * connection costs.
 *
 * This program is both sides: with --serve it is the filter; as a GTest
 * it spawns itself with --serve and drives it with MilterServerContext.
 * SOAK_SESSIONS (default 100000), SOAK_CONCURRENCY (default 32) and
 * SOAK_VALGRIND=1 (run the filter under valgrind, expecting no leak and
 * no error) tune it. SOAK_SANITIZED=1 says the filter runs with
 * AddressSanitizer: its quarantine keeps freed memory resident, so the
 * memory bounds are not checked (LeakSanitizer checks leaks instead, in
 * the filter's exit status). */

/* ---- the filter ------------------------------------------------------------ */

static MilterClient *serving_client;

static gboolean
reply_later (gpointer user_data)
{
  milter_client_context_reply (user_data, MILTER_STATUS_CONTINUE);
  g_object_unref (user_data);
  return G_SOURCE_REMOVE;
}

static MilterStatus
defer (MilterClientContext *context)
{
  GSource *source = g_timeout_source_new (g_random_int_range (0, 3));

  g_source_set_callback (source, reply_later, g_object_ref (context), NULL);
  g_source_attach (source, NULL);
  g_source_unref (source);
  return MILTER_STATUS_PROGRESS;
}

static guint
count_fds (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint n = 0;

  while (dir != NULL && g_dir_read_name (dir) != NULL)
    n++;
  return n - 1;  /* the directory itself */
}

static MilterStatus
on_helo (MilterClientContext *context,
         const gchar         *fqdn,
         gpointer             user_data)
{
  g_autofree gchar *text = NULL;

  if (!g_str_equal (fqdn, "stats"))
    return MILTER_STATUS_CONTINUE;
  /* The state of the filter, through the only channel an MTA has. */
  text = g_strdup_printf ("sessions=%u fds=%u",
                          milter_client_get_n_processing_sessions (serving_client), count_fds ());
  milter_client_context_set_reply (context, 550, "5.0.0", text, NULL);
  return MILTER_STATUS_REJECT;
}

static MilterStatus
on_envelope_recipient (MilterClientContext *context,
                       const gchar         *recipient,
                       gpointer             user_data)
{
  milter_client_context_set_mail_transaction_shelf_value (context, "kind", recipient + 1);
  if (g_str_has_prefix (recipient, "<reject"))
    {
      milter_client_context_set_reply (context, 550, "5.1.1", "No such user", NULL);
      return MILTER_STATUS_REJECT;
    }
  if (g_str_has_prefix (recipient, "<tempfail"))
    return MILTER_STATUS_TEMPORARY_FAILURE;
  if (g_str_has_prefix (recipient, "<progress"))
    return defer (context);
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_header (MilterClientContext *context,
           const gchar         *name,
           const gchar         *value,
           gpointer             user_data)
{
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_body (MilterClientContext *context,
         GBytes              *chunk,
         gpointer             user_data)
{
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  const gchar *kind = milter_client_context_get_mail_transaction_shelf_value (context, "kind");

  milter_client_context_add_header (context, "X-Soak", "1", NULL);
  if (kind != NULL && g_str_has_prefix (kind, "discard"))
    return MILTER_STATUS_DISCARD;
  if (kind != NULL && g_str_has_prefix (kind, "progress"))
    {
      milter_client_context_progress (context, NULL);
      return defer (context);
    }
  if (kind != NULL && g_str_has_prefix (kind, "replace"))
    milter_client_context_replace_body (context, "replaced\r\n", 10, NULL);
  return MILTER_STATUS_CONTINUE;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  g_signal_connect (context, "helo", G_CALLBACK (on_helo), NULL);
  g_signal_connect (context, "envelope-recipient", G_CALLBACK (on_envelope_recipient), NULL);
  g_signal_connect (context, "header", G_CALLBACK (on_header), NULL);
  g_signal_connect (context, "body-bytes", G_CALLBACK (on_body), NULL);
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), NULL);
}

static int
serve (const gchar *spec)
{
  g_autoptr(GError) error = NULL;
  struct rlimit limit;

  /* Room for the idle-connection test. */
  if (getrlimit (RLIMIT_NOFILE, &limit) == 0)
    {
      limit.rlim_cur = limit.rlim_max;
      setrlimit (RLIMIT_NOFILE, &limit);
    }
  serving_client = milter_client_new ();
  g_signal_connect (serving_client, "connection-established", G_CALLBACK (on_connection_established), NULL);
  g_object_set (serving_client, "shutdown-grace-period", 1, NULL);
  if (!milter_client_set_connection_spec (serving_client, spec, &error) ||
      !milter_client_run (serving_client, &error))
    {
      g_printerr ("soak filter: %s\n", error->message);
      return 1;
    }
  g_clear_object (&serving_client);
  return 0;
}

/* ---- the driver ------------------------------------------------------------ */

typedef struct
{
  gchar *dir;
  gchar *spec;
  gchar *valgrind_log;
  GPid pid;
} Filter;

static void
filter_start (Filter *filter)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;
  g_autofree gchar *socket = NULL;
  gint64 until = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

  filter->dir = g_dir_make_tmp ("milter-soak-XXXXXX", &error);
  g_assert_no_error (error);
  socket = g_build_filename (filter->dir, "filter.sock", NULL);
  filter->spec = g_strconcat ("unix:", socket, NULL);
  if (g_strcmp0 (g_getenv ("SOAK_VALGRIND"), "1") == 0)
    {
      filter->valgrind_log = g_build_filename (filter->dir, "valgrind.log", NULL);
      g_ptr_array_add (argv, g_strdup ("valgrind"));
      g_ptr_array_add (argv, g_strdup ("--leak-check=full"));
      g_ptr_array_add (argv, g_strdup ("--errors-for-leak-kinds=definite"));
      g_ptr_array_add (argv, g_strconcat ("--log-file=", filter->valgrind_log, NULL));
    }
  g_ptr_array_add (argv, g_strdup (g_test_get_filename (G_TEST_BUILT, "test-soak", NULL)));
  g_ptr_array_add (argv, g_strdup ("--serve"));
  g_ptr_array_add (argv, g_strdup (filter->spec));
  g_ptr_array_add (argv, NULL);
  g_assert_true (g_spawn_async (NULL, (gchar **) argv->pdata, NULL,
                                G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH, test_util_die_with_parent, NULL,
                                &filter->pid, &error));
  g_assert_no_error (error);
  while (!g_file_test (socket, G_FILE_TEST_EXISTS))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, until);
      g_usleep (10000);
    }
}

static void
filter_stop (Filter *filter)
{
  int status;

  kill (filter->pid, SIGTERM);
  g_assert_cmpint (waitpid (filter->pid, &status, 0), ==, filter->pid);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
  if (filter->valgrind_log != NULL)
    {
      g_autofree gchar *log = NULL;

      g_assert_true (g_file_get_contents (filter->valgrind_log, &log, NULL, NULL));
      if (strstr (log, "ERROR SUMMARY: 0 errors") == NULL ||
          (strstr (log, "definitely lost:") != NULL && strstr (log, "definitely lost: 0 bytes") == NULL))
        g_error ("valgrind found problems in the filter:\n%s", log);
      g_unlink (filter->valgrind_log);
      g_free (filter->valgrind_log);
    }
  g_unlink (filter->spec + strlen ("unix:"));
  g_rmdir (filter->dir);
  g_free (filter->dir);
  g_free (filter->spec);
}

/* The filter's resident memory, from /proc. */
static guint64
filter_rss_kib (Filter *filter)
{
  g_autofree gchar *path = g_strdup_printf ("/proc/%d/status", (int) filter->pid);
  g_autofree gchar *status = NULL;
  const gchar *line;

  g_assert_true (g_file_get_contents (path, &status, NULL, NULL));
  line = strstr (status, "VmRSS:");
  g_assert_nonnull (line);
  return g_ascii_strtoull (line + strlen ("VmRSS:"), NULL, 10);
}

/* Whether the filter's resident memory says anything about leaks: not
 * under valgrind or AddressSanitizer, which both hold memory of their own. */
static gboolean
filter_rss_is_meaningful (Filter *filter)
{
  return filter->valgrind_log == NULL && g_strcmp0 (g_getenv ("SOAK_SANITIZED"), "1") != 0;
}

typedef struct _Soak Soak;

typedef struct
{
  Soak *soak;
  MilterServerContext *context;
  guint step;
  guint messages_left;
  gboolean abort_message;   /* abort after the header */
  guint vanish_at;          /* close without quit at this step; 0: never */
  const gchar *recipient;
} Session;

struct _Soak
{
  const gchar *spec;
  guint to_start;
  guint running;
  guint concurrency;
  guint failures;
  GRand *rand;
  GHashTable *verdicts;     /* "step:status" → count */
  GMainLoop *loop;
};

enum { ESTABLISH, NEGOTIATE, CONNECT, HELO, MAIL, RCPT, DATA, HEADER, EOH, BODY, EOM, ABORT, QUIT, DONE };

static const gchar *recipients[] = {
  "<plain@example.org>", "<reject@example.org>", "<tempfail@example.org>",
  "<progress@example.org>", "<discard@example.org>", "<replace@example.org>",
};

static void session_next (Session *session);
static void start_sessions (Soak *soak);

static void
session_end (Session *session)
{
  Soak *soak = session->soak;

  milter_server_context_close (session->context);
  g_object_unref (session->context);
  g_free (session);
  soak->running--;
  start_sessions (soak);
  if (soak->running == 0 && soak->to_start == 0)
    g_main_loop_quit (soak->loop);
}

static void
count_verdict (Soak         *soak,
               guint         step,
               MilterStatus  status)
{
  g_autofree gchar *key = g_strdup_printf ("%u:%d", step, status);

  g_hash_table_replace (soak->verdicts, g_steal_pointer (&key),
                        GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (soak->verdicts, key)) + 1));
}

/* Where a verdict leads: on with the message, or to the next message. */
static guint
after (Session      *session,
       guint         step,
       MilterStatus  status)
{
  count_verdict (session->soak, step, status);
  if (step == EOM)
    return session->messages_left > 0 ? MAIL : QUIT;
  if (status != MILTER_STATUS_CONTINUE && status != MILTER_STATUS_SKIP && step >= MAIL)
    return ABORT;
  if (step == HEADER && session->abort_message)
    return ABORT;
  return step + 1;
}

static void
on_done (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Session *session = user_data;
  MilterServerContext *c = session->context;
  g_autoptr(GError) error = NULL;
  MilterStatus status = MILTER_STATUS_CONTINUE;
  guint step = session->step;

  switch (step)
    {
    case ESTABLISH: milter_server_context_establish_connection_finish (c, result, &error); break;
    case NEGOTIATE: milter_server_context_negotiate_finish (c, result, &error); break;
    case CONNECT: status = milter_server_context_connect_finish (c, result, &error); break;
    case HELO: status = milter_server_context_helo_finish (c, result, &error); break;
    case MAIL: status = milter_server_context_envelope_from_finish (c, result, &error); break;
    case RCPT: status = milter_server_context_envelope_recipient_finish (c, result, &error); break;
    case DATA: status = milter_server_context_data_finish (c, result, &error); break;
    case HEADER: status = milter_server_context_header_finish (c, result, &error); break;
    case EOH: status = milter_server_context_end_of_header_finish (c, result, &error); break;
    case BODY: status = milter_server_context_body_finish (c, result, &error); break;
    case EOM: status = milter_server_context_end_of_message_finish (c, result, &error); break;
    case ABORT: milter_server_context_abort_finish (c, result, &error); break;
    case QUIT: milter_server_context_quit_finish (c, result, &error); break;
    default: g_assert_not_reached ();
    }
  if (error != NULL)
    {
      g_printerr ("soak: session failed at step %u: %s\n", step, error->message);
      session->soak->failures++;
      session_end (session);
      return;
    }
  if (step == QUIT)
    {
      session_end (session);
      return;
    }
  session->step = step == ABORT ? (session->messages_left > 0 ? MAIL : QUIT) : after (session, step, status);
  session_next (session);
}

static void
session_next (Session *session)
{
  MilterServerContext *c = session->context;
  const gchar *none[] = { NULL };
  g_autoptr(GBytes) body = g_bytes_new_static ("Hello soak.\r\n", 13);

  if (session->vanish_at != 0 && session->step == session->vanish_at)
    {
      /* The MTA goes away without a word. */
      session_end (session);
      return;
    }
  switch (session->step)
    {
    case ESTABLISH: milter_server_context_establish_connection_async (c, NULL, on_done, session); break;
    case NEGOTIATE: milter_server_context_negotiate_async (c, NULL, NULL, on_done, session); break;
    case CONNECT: milter_server_context_connect_async (c, "client.example", NULL, NULL, on_done, session); break;
    case HELO: milter_server_context_helo_async (c, "client.example", NULL, on_done, session); break;
    case MAIL:
      session->messages_left--;
      session->recipient = recipients[g_rand_int_range (session->soak->rand, 0, G_N_ELEMENTS (recipients))];
      session->abort_message = g_rand_int_range (session->soak->rand, 0, 10) == 0;
      milter_server_context_envelope_from_async (c, "<sender@example.org>", none, NULL, on_done, session);
      break;
    case RCPT:
      milter_server_context_envelope_recipient_async (c, session->recipient, none, NULL, on_done, session);
      break;
    case DATA: milter_server_context_data_async (c, NULL, on_done, session); break;
    case HEADER: milter_server_context_header_async (c, "Subject", "soak", NULL, on_done, session); break;
    case EOH: milter_server_context_end_of_header_async (c, NULL, on_done, session); break;
    case BODY: milter_server_context_body_async (c, body, NULL, on_done, session); break;
    case EOM: milter_server_context_end_of_message_async (c, NULL, on_done, session); break;
    case ABORT: milter_server_context_abort_async (c, NULL, on_done, session); break;
    case QUIT: milter_server_context_quit_async (c, NULL, on_done, session); break;
    default: g_assert_not_reached ();
    }
}

static void
start_sessions (Soak *soak)
{
  while (soak->to_start > 0 && soak->running < soak->concurrency)
    {
      Session *session = g_new0 (Session, 1);

      soak->to_start--;
      soak->running++;
      session->soak = soak;
      session->context = milter_server_context_new ();
      g_assert_true (milter_server_context_set_connection_spec (session->context, soak->spec, NULL));
      session->messages_left = (guint) g_rand_int_range (soak->rand, 1, 5);
      /* One session in twenty vanishes somewhere. */
      if (g_rand_int_range (soak->rand, 0, 20) == 0)
        session->vanish_at = (guint) g_rand_int_range (soak->rand, CONNECT, QUIT);
      session_next (session);
    }
}

static void
run_sessions (const gchar *spec,
              guint        n,
              guint        concurrency,
              GRand       *rand)
{
  Soak soak = { spec, n, 0, concurrency, 0, rand, NULL, NULL };

  soak.verdicts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  soak.loop = g_main_loop_new (NULL, FALSE);
  start_sessions (&soak);
  if (soak.running > 0)
    g_main_loop_run (soak.loop);
  g_main_loop_unref (soak.loop);
  g_assert_cmpuint (soak.failures, ==, 0);
  /* Every kind of verdict happened. */
  g_assert_nonnull (g_hash_table_lookup (soak.verdicts, "5:3"));  /* RCPT reject */
  g_assert_nonnull (g_hash_table_lookup (soak.verdicts, "5:6"));  /* RCPT tempfail */
  g_assert_nonnull (g_hash_table_lookup (soak.verdicts, "10:4")); /* EOM discard */
  g_assert_nonnull (g_hash_table_lookup (soak.verdicts, "10:2")); /* EOM continue */
  g_hash_table_unref (soak.verdicts);
}

typedef struct
{
  gchar *reply;
  gboolean done;
} Stats;

static void
on_stats_helo (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  Stats *stats = user_data;

  g_assert_cmpint (milter_server_context_helo_finish (MILTER_SERVER_CONTEXT (source), result, NULL), ==,
                   MILTER_STATUS_REJECT);
  stats->reply = g_strdup (milter_server_context_get_reply_text (MILTER_SERVER_CONTEXT (source)));
  stats->done = TRUE;
}

static void
on_stats_step (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  Stats *stats = user_data;

  stats->done = TRUE;
}

static void
wait_done (gboolean *done)
{
  while (!*done)
    g_main_context_iteration (NULL, TRUE);
  *done = FALSE;
}

/* Asks the filter for its session and descriptor counts. */
static void
query_stats (const gchar *spec,
             guint       *sessions,
             guint       *fds)
{
  g_autoptr(MilterServerContext) context = milter_server_context_new ();
  Stats stats = { 0 };
  const gchar *text;

  g_assert_true (milter_server_context_set_connection_spec (context, spec, NULL));
  milter_server_context_establish_connection_async (context, NULL, on_stats_step, &stats);
  wait_done (&stats.done);
  milter_server_context_negotiate_async (context, NULL, NULL, on_stats_step, &stats);
  wait_done (&stats.done);
  milter_server_context_helo_async (context, "stats", NULL, on_stats_helo, &stats);
  wait_done (&stats.done);
  text = strstr (stats.reply, "sessions=");
  g_assert_nonnull (text);
  g_assert_cmpint (sscanf (text, "sessions=%u fds=%u", sessions, fds), ==, 2);
  milter_server_context_close (context);
  g_free (stats.reply);
}

static guint
env_uint (const gchar *name,
          guint        fallback)
{
  const gchar *value = g_getenv (name);

  return value != NULL ? (guint) g_ascii_strtoull (value, NULL, 10) : fallback;
}

static void
settle (void)
{
  gint64 until = g_get_monotonic_time () + 300 * 1000;

  while (g_get_monotonic_time () < until)
    g_main_context_iteration (NULL, FALSE), g_usleep (1000);
}

static void
test_soak (void)
{
  guint n = env_uint ("SOAK_SESSIONS", 100000);
  guint concurrency = env_uint ("SOAK_CONCURRENCY", 32);
  guint warm_up = MIN (n / 10, 2000);
  g_autoptr(GRand) rand = g_rand_new_with_seed (20261121);
  Filter filter = { 0 };
  guint sessions, fds_start, fds_end;
  guint64 rss_start, rss_end;
  gint64 started;

  filter_start (&filter);
  run_sessions (filter.spec, warm_up, concurrency, rand);
  settle ();
  query_stats (filter.spec, &sessions, &fds_start);
  rss_start = filter_rss_kib (&filter);

  started = g_get_monotonic_time ();
  run_sessions (filter.spec, n - warm_up, concurrency, rand);
  settle ();
  query_stats (filter.spec, &sessions, &fds_end);
  rss_end = filter_rss_kib (&filter);

  g_test_message ("%u sessions in %.1f s; filter RSS %" G_GUINT64_FORMAT " KiB after warm-up, %"
                  G_GUINT64_FORMAT " KiB at the end; descriptors %u then %u",
                  n, (g_get_monotonic_time () - started) / 1e6, rss_start, rss_end, fds_start, fds_end);
  /* Only the stats session itself is in progress. */
  g_assert_cmpuint (sessions, ==, 1);
  g_assert_cmpuint (fds_end, ==, fds_start);
  /* Memory back within a small bound of its start. */
  if (filter_rss_is_meaningful (&filter))
    g_assert_cmpuint (rss_end, <=, rss_start + 1024);
  filter_stop (&filter);
}

typedef struct
{
  guint ready;
} Idle;

static void
on_idle_step (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  ((Idle *) user_data)->ready++;
}

/* What an idle connection costs the filter: 1,000 sessions open after
 * HELO, nothing more. */
static void
test_idle_connections (void)
{
  guint n = 1000;
  Filter filter = { 0 };
  GPtrArray *contexts = g_ptr_array_new_with_free_func (g_object_unref);
  Idle idle = { 0 };
  guint64 before, after;
  guint sessions, fds;
  struct rlimit limit;

  if (getrlimit (RLIMIT_NOFILE, &limit) == 0)
    {
      limit.rlim_cur = limit.rlim_max;
      setrlimit (RLIMIT_NOFILE, &limit);
    }
  filter_start (&filter);
  /* Warm up the allocator and the buffer cache. */
  {
    g_autoptr(GRand) rand = g_rand_new_with_seed (1);

    run_sessions (filter.spec, 200, 16, rand);
  }
  settle ();
  before = filter_rss_kib (&filter);
  for (guint i = 0; i < n; i++)
    {
      MilterServerContext *context = milter_server_context_new ();

      g_assert_true (milter_server_context_set_connection_spec (context, filter.spec, NULL));
      milter_server_context_establish_connection_async (context, NULL, on_idle_step, &idle);
      g_ptr_array_add (contexts, context);
    }
  while (idle.ready < n)
    g_main_context_iteration (NULL, TRUE);
  for (guint step = 0; step < 3; step++)
    {
      idle.ready = 0;
      for (guint i = 0; i < n; i++)
        {
          MilterServerContext *context = g_ptr_array_index (contexts, i);

          if (step == 0)
            milter_server_context_negotiate_async (context, NULL, NULL, on_idle_step, &idle);
          else if (step == 1)
            milter_server_context_connect_async (context, "client.example", NULL, NULL, on_idle_step, &idle);
          else
            milter_server_context_helo_async (context, "client.example", NULL, on_idle_step, &idle);
        }
      while (idle.ready < n)
        g_main_context_iteration (NULL, TRUE);
    }
  settle ();
  query_stats (filter.spec, &sessions, &fds);
  after = filter_rss_kib (&filter);
  g_assert_cmpuint (sessions, ==, n + 1);
  g_test_message ("%u idle connections: filter RSS %" G_GUINT64_FORMAT " KiB → %" G_GUINT64_FORMAT
                  " KiB, %.1f KiB per connection", n, before, after, (after - before) / (gdouble) n);
  if (filter_rss_is_meaningful (&filter))
    g_assert_cmpuint ((after - before) * 1024 / n, <, 32 * 1024);
  g_ptr_array_unref (contexts);
  settle ();
  filter_stop (&filter);
}

int
main (int    argc,
      char **argv)
{
  if (argc == 3 && g_str_equal (argv[1], "--serve"))
    return serve (argv[2]);

  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/soak/sessions", test_soak);
  g_test_add_func ("/soak/idle-connections", test_idle_connections);
  return g_test_run ();
}
