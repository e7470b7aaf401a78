/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: filter => result["status"] == "pass" and headers == [("X-Body-SHA256", "c04ecd5d29209f1f4f1a26af378399849cedbe4a8f0e57a6577386b849cbc0da")] */
/* guide-check: filter --body "Buy cheap pills now!" => result["status"] == "reject" and result["reply"] == "550 5.7.1 Known bad content" and result["exit"] == 2 */
/* guide-check: filter --n-messages 40 --concurrency 8 --messages-per-connection 2 => result["statuses"]["pass"] == 40 and result["errors"] == 0 */
/* progress-scan: at end-of-message, feeds the body to a child process
 * and defers the verdict until the child has answered, sending the MTA
 * keep-alives meanwhile. The child is sha256sum, standing in for a slow
 * scanner (a virus scanner, spamc…): bodies whose digest is on a list are
 * rejected, the others get the digest in a header. */
#include <milter/milter.h>

#define KEEPALIVE_SECONDS 10
#define MAX_BODY (10 * 1024 * 1024)

static const gchar * const scanner[] = { "sha256sum", NULL };

static const gchar * const bad_digests[] = {
  "d76396e4442de8df05a93d48d517b8b0ca0efaeae75c5528f61cf548748a4e8a",
  NULL
};

/* The current message: replaced at each MAIL FROM, dropped at abort. */
typedef struct
{
  GByteArray *body;          /* its first MAX_BODY bytes, until the scan */
  GCancellable *cancellable; /* of its scan, once started */
} Message;

/* One scan, from the start of the child to its answer. */
typedef struct
{
  MilterClientContext *context;  /* a reference, for the late reply */
  guint keepalive_id;
} Scan;

static void
message_free (gpointer data)
{
  Message *message = data;

  /* Stops the scan if it still runs. */
  if (message->cancellable != NULL)
    g_cancellable_cancel (message->cancellable);
  g_clear_object (&message->cancellable);
  g_clear_pointer (&message->body, g_byte_array_unref);
  g_free (message);
}

static void
scan_free (Scan *scan)
{
  g_source_remove (scan->keepalive_id);
  g_object_unref (scan->context);
  g_free (scan);
}

static gboolean
send_keepalive (gpointer user_data)
{
  Scan *scan = user_data;

  /* "Still working": the MTA restarts its timeout. */
  milter_client_context_progress (scan->context, NULL);
  return G_SOURCE_CONTINUE;
}

/* The child printed the body's digest: reject or mark the message. */
static MilterStatus
verdict (MilterClientContext *context,
         GBytes              *output)
{
  gsize size;
  const gchar *data = g_bytes_get_data (output, &size);
  g_autofree gchar *digest = NULL;
  g_autoptr(GError) error = NULL;

  if (size < 64)
    {
      g_warning ("Unexpected output from the scanner");
      return MILTER_STATUS_TEMPORARY_FAILURE;
    }
  digest = g_strndup (data, 64);
  if (g_strv_contains (bad_digests, digest))
    {
      milter_client_context_set_reply (context, 550, "5.7.1", "Known bad content", NULL);
      return MILTER_STATUS_REJECT;
    }
  if (!milter_client_context_add_header (context, "X-Body-SHA256", digest, &error))
    g_warning ("Cannot add the header: %s", error->message);
  return MILTER_STATUS_CONTINUE;
}

static void
on_scanned (GObject      *process,
            GAsyncResult *result,
            gpointer      user_data)
{
  Scan *scan = user_data;
  g_autoptr(GBytes) output = NULL;
  g_autoptr(GError) error = NULL;
  MilterStatus status;

  if (!g_subprocess_communicate_finish (G_SUBPROCESS (process), result, &output, NULL, &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          /* The message was dropped: nobody waits for the verdict. */
          g_subprocess_force_exit (G_SUBPROCESS (process));
          scan_free (scan);
          return;
        }
      g_warning ("The scanner failed: %s", error->message);
      status = MILTER_STATUS_TEMPORARY_FAILURE;
    }
  else if (!g_subprocess_get_successful (G_SUBPROCESS (process)))
    {
      g_warning ("The scanner failed");
      status = MILTER_STATUS_TEMPORARY_FAILURE;
    }
  else
    {
      status = verdict (scan->context, output);
    }
  /* Answer the deferred end-of-message (a no-op if the MTA has gone). */
  milter_client_context_reply (scan->context, status);
  scan_free (scan);
}

static MilterStatus
on_envelope_from (MilterClientContext *context,
                  const gchar         *from,
                  gpointer             user_data)
{
  Message *message = g_new0 (Message, 1);

  message->body = g_byte_array_new ();
  milter_client_context_set_private_data (context, message, message_free);
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_body (MilterClientContext *context,
         GBytes              *chunk,
         gpointer             user_data)
{
  Message *message = milter_client_context_get_private_data (context);
  gsize size;
  const guint8 *data = g_bytes_get_data (chunk, &size);

  size = MIN (size, MAX_BODY - message->body->len);
  g_byte_array_append (message->body, data, (guint) size);
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  Message *message = milter_client_context_get_private_data (context);
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) process = NULL;
  Scan *scan;

  if (chunk != NULL)
    on_body (context, chunk, NULL);
  body = g_byte_array_free_to_bytes (g_steal_pointer (&message->body));
  process = g_subprocess_newv (scanner, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                               &error);
  if (process == NULL)
    {
      g_warning ("Cannot start the scanner: %s", error->message);
      return MILTER_STATUS_TEMPORARY_FAILURE;
    }
  scan = g_new0 (Scan, 1);
  scan->context = g_object_ref (context);
  scan->keepalive_id = g_timeout_add_seconds (KEEPALIVE_SECONDS, send_keepalive, scan);
  message->cancellable = g_cancellable_new ();
  g_subprocess_communicate_async (process, body, message->cancellable, on_scanned, scan);
  /* The context reads nothing more from this MTA until the reply. */
  return MILTER_STATUS_PROGRESS;
}

static MilterStatus
on_abort (MilterClientContext     *context,
          MilterClientContextState state,
          gpointer                 user_data)
{
  /* The MTA gave the message up or went away: drop it (and its scan). */
  milter_client_context_set_private_data (context, NULL, NULL);
  return MILTER_STATUS_CONTINUE;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  g_signal_connect (context, "envelope-from", G_CALLBACK (on_envelope_from), NULL);
  g_signal_connect (context, "body-bytes", G_CALLBACK (on_body), NULL);
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), NULL);
  g_signal_connect (context, "abort", G_CALLBACK (on_abort), NULL);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_auto(GStrv) args = g_strdupv (argv);
  g_autoptr(GError) error = NULL;

  g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established), NULL);
  if (milter_client_parse_command_line (client, &args, &error) && args[1] != NULL)
    g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION,
                 "Unknown argument %s", args[1]);
  if (error != NULL || !milter_client_run (client, &error))
    {
      g_printerr ("progress-scan: %s\n", error->message);
      return 1;
    }
  return 0;
}
