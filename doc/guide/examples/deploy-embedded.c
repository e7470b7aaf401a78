/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: filter => result["status"] == "pass" and headers == [("X-Message-Number", "1")] */
/* guide-check: filter => headers == [("X-Message-Number", "2")] */
/* guide-new-session-varies: X-Message-Number */
/* deploy-embedded: a milter served from the program's own main loop, next
 * to a timer that logs statistics. Numbers the messages it sees. */
#include <milter/milter.h>
#include <glib-unix.h>
#include <signal.h>

typedef struct
{
  MilterClient *client;
  GMainLoop *loop;
  guint64 n_messages;     /* one process: every session sees the same count */
  gboolean stopping;
} App;

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  App *app = user_data;
  g_autofree gchar *number = g_strdup_printf ("%" G_GUINT64_FORMAT, ++app->n_messages);
  g_autoptr(GError) error = NULL;

  if (!milter_client_context_add_header (context, "X-Message-Number", number, &error))
    g_warning ("Cannot add the header: %s", error->message);
  return MILTER_STATUS_CONTINUE;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), user_data);
}

static gboolean
log_statistics (gpointer user_data)
{
  App *app = user_data;

  g_message ("%u sessions in progress, %" G_GUINT64_FORMAT " messages so far",
             milter_client_get_n_processing_sessions (app->client), app->n_messages);
  return G_SOURCE_CONTINUE;
}

/* After milter_client_shutdown(), the client is done once its last
 * session has ended: then the loop can stop. */
static void
on_n_sessions_changed (GObject    *object,
                       GParamSpec *pspec,
                       gpointer    user_data)
{
  App *app = user_data;

  if (app->stopping && milter_client_get_n_processing_sessions (app->client) == 0)
    g_main_loop_quit (app->loop);
}

static gboolean
on_quit_signal (gpointer user_data)
{
  App *app = user_data;

  /* Stops accepting and removes the socket file; sessions in progress
   * get the client's shutdown-grace-period to finish. */
  app->stopping = TRUE;
  milter_client_shutdown (app->client);
  on_n_sessions_changed (NULL, NULL, app);
  return G_SOURCE_CONTINUE;
}

int
main (int    argc,
      char **argv)
{
  App app = { 0 };
  gint interval = 60;
  GOptionEntry entries[] = {
    { "stats-interval", 0, 0, G_OPTION_ARG_INT, &interval,
      "Seconds between two statistics lines (default 60)", "SECONDS" },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- a milter in its own main loop");
  g_autoptr(GError) error = NULL;

  app.client = milter_client_new ();
  g_option_context_add_main_entries (options, entries, NULL);
  /* -s, --timeout, --max-connections…: listed by --help-milter. */
  g_option_context_add_group (options, milter_client_get_option_group (app.client));
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("deploy-embedded: %s\n", error->message);
      return 1;
    }
  if (interval <= 0)
    {
      g_printerr ("deploy-embedded: --stats-interval must be positive\n");
      return 1;
    }

  g_signal_connect (app.client, "connection-established",
                    G_CALLBACK (on_connection_established), &app);
  g_signal_connect (app.client, "notify::n-processing-sessions",
                    G_CALLBACK (on_n_sessions_changed), &app);
  /* Binds and starts accepting in the default main context, then returns. */
  if (!milter_client_listen (app.client, &error))
    {
      g_printerr ("deploy-embedded: %s\n", error->message);
      return 1;
    }

  app.loop = g_main_loop_new (NULL, FALSE);
  g_timeout_add_seconds ((guint) interval, log_statistics, &app);
  /* Without milter_client_run() the program handles the signals itself. */
  g_unix_signal_add (SIGTERM, on_quit_signal, &app);
  g_unix_signal_add (SIGINT, on_quit_signal, &app);
  g_main_loop_run (app.loop);

  log_statistics (&app);
  g_main_loop_unref (app.loop);
  g_object_unref (app.client);
  return 0;
}
