/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* interop-filter: the milter that test-postfix.py and test-sendmail.py
 * drive through a real MTA. The message chooses what happens to it (its
 * X-Test-Case header; the client address and the HELO name for the earlier
 * stages), so one process serves every case. What the filter saw is
 * appended to the --events file: one block per session, written when the
 * session ends:
 *
 *   session ID
 *   EVENT<TAB>ARGUMENT...     (g_strescape()d, so 8-bit bytes survive)
 *   end ID
 */

#include <milter/milter.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* PROGRESS cases: the verdict comes this late, keep-alives this often. */
#define PROGRESS_DELAY_MS 3000
#define PROGRESS_INTERVAL_MS 500

static gchar *events_path;
static gboolean only_end_of_message;
static int events_fd = -1;
static guint n_sessions;

typedef struct
{
  guint id;
  GString *log;
  gboolean negotiated;
  /* The message in progress; reset at MAIL. */
  GChecksum *body_checksum;
  guint64 body_size;
  gsize longest_header;
  gchar *latin1_value;
} Session;

static void
session_free (Session *session)
{
  g_string_free (session->log, TRUE);
  g_checksum_free (session->body_checksum);
  g_free (session->latin1_value);
  g_free (session);
}

static Session *
get_session (MilterClientContext *context)
{
  return milter_client_context_get_private_data (context);
}

/* Appends one record: the event name, then each argument escaped, up to
 * the NULL that ends the list. A missing value is passed as NULLABLE (s)
 * and written as "(null)". */
static void
record (Session     *session,
        const gchar *event,
        ...)
{
  va_list args;
  const gchar *argument;

  g_string_append (session->log, event);
  va_start (args, event);
  while ((argument = va_arg (args, const gchar *)) != NULL)
    {
      g_autofree gchar *escaped = NULL;

      if (argument == (const gchar *) 1)
        argument = "(null)";
      escaped = g_strescape (argument, NULL);
      g_string_append_c (session->log, '\t');
      g_string_append (session->log, escaped);
    }
  va_end (args);
  g_string_append_c (session->log, '\n');
}

/* For nullable arguments of record(): NULL ends the list. */
#define NULLABLE(s) ((s) != NULL ? (s) : (const gchar *) 1)

static void
write_all (const gchar *data,
           gsize        size)
{
  while (size > 0)
    {
      ssize_t written = write (events_fd, data, size);

      if (written < 0)
        {
          if (errno == EINTR)
            continue;
          g_warning ("Writing %s failed: %s", events_path, g_strerror (errno));
          return;
        }
      data += written;
      size -= written;
    }
}

/* A modification that fails is a finding, not a reason to stop: the test
 * sees it in the events and in the delivered message. */
static void
check (Session   *session,
       gboolean   ok,
       GError   **error)
{
  if (!ok)
    record (session, "modification-error", *error != NULL ? (*error)->message : "?", NULL);
  g_clear_error (error);
}

static void
reset_message (Session *session)
{
  g_checksum_reset (session->body_checksum);
  session->body_size = 0;
  session->longest_header = 0;
  g_clear_pointer (&session->latin1_value, g_free);
}

/* Modifications that record their failure instead of returning it. */
static void
add_header (MilterClientContext *context,
            const gchar         *name,
            const gchar         *value)
{
  GError *error = NULL;
  gboolean ok = milter_client_context_add_header (context, name, value, &error);

  check (get_session (context), ok, &error);
}

static void
change_header (MilterClientContext *context,
               const gchar         *name,
               guint32              index,
               const gchar         *value)
{
  GError *error = NULL;
  gboolean ok = milter_client_context_change_header (context, name, index, value, &error);

  check (get_session (context), ok, &error);
}

static void
insert_header (MilterClientContext *context,
               guint32              index,
               const gchar         *name,
               const gchar         *value)
{
  GError *error = NULL;
  gboolean ok = milter_client_context_insert_header (context, index, name, value, &error);

  check (get_session (context), ok, &error);
}

static void
delete_header (MilterClientContext *context,
               const gchar         *name,
               guint32              index)
{
  GError *error = NULL;
  gboolean ok = milter_client_context_delete_header (context, name, index, &error);

  check (get_session (context), ok, &error);
}

static void
change_from (MilterClientContext *context,
             const gchar         *from,
             const gchar         *parameters)
{
  GError *error = NULL;
  gboolean ok = milter_client_context_change_from (context, from, parameters, &error);

  check (get_session (context), ok, &error);
}

static void
add_recipient (MilterClientContext *context,
               const gchar         *recipient,
               const gchar         *parameters)
{
  GError *error = NULL;
  gboolean ok = milter_client_context_add_recipient (context, recipient, parameters, &error);

  check (get_session (context), ok, &error);
}

static void
delete_recipient (MilterClientContext *context,
                  const gchar         *recipient)
{
  GError *error = NULL;
  gboolean ok = milter_client_context_delete_recipient (context, recipient, &error);

  check (get_session (context), ok, &error);
}

static void
replace_body (MilterClientContext *context,
              const gchar         *body)
{
  g_autoptr(GBytes) bytes = g_bytes_new_static (body, strlen (body));
  GError *error = NULL;
  gboolean ok = milter_client_context_replace_body_bytes (context, bytes, &error);

  check (get_session (context), ok, &error);
}

static void
quarantine (MilterClientContext *context,
            const gchar         *reason)
{
  GError *error = NULL;
  gboolean ok = milter_client_context_quarantine (context, reason, &error);

  check (get_session (context), ok, &error);
}

static void
set_reply (MilterClientContext *context,
           guint                code,
           const gchar         *extended_code,
           const gchar         *message)
{
  GError *error = NULL;
  gboolean ok = milter_client_context_set_reply (context, code, extended_code, message, &error);

  check (get_session (context), ok, &error);
}

/* Arguments of record() */

static gchar *
nick_of_state (MilterClientContextState state)
{
  g_autoptr(GEnumClass) klass = g_type_class_ref (MILTER_TYPE_CLIENT_CONTEXT_STATE);
  GEnumValue *value = g_enum_get_value (klass, state);

  return g_strdup (value != NULL ? value->value_nick : "?");
}

static gchar *
count_strv (const gchar * const *strv)
{
  return g_strdup_printf ("%u", strv != NULL ? g_strv_length ((gchar **) strv) : 0);
}

/* ---- events ------------------------------------------------------------ */

static void
on_state_changed (MilterClientContext *context,
                  GParamSpec          *pspec,
                  gpointer             user_data)
{
  Session *session = get_session (context);
  MilterClientContextState state = milter_client_context_get_state (context);
  g_autofree gchar *nick = nick_of_state (state);

  /* Only the commands that arrived, not the replies to them. */
  if (session == NULL || g_str_has_suffix (nick, "-replied"))
    return;
  if (state == MILTER_CLIENT_CONTEXT_STATE_NEGOTIATE)
    session->negotiated = TRUE;
  record (session, "state", nick, NULL);
}

static MilterStatus
on_negotiate (MilterClientContext  *context,
              MilterOption         *option,
              MilterMacrosRequests *requests,
              gpointer              user_data)
{
  Session *session = get_session (context);
  g_autofree gchar *offer = milter_option_to_string (option);

  session->negotiated = TRUE;
  record (session, "negotiate", offer, NULL);
  return MILTER_STATUS_DEFAULT;
}

static MilterStatus
on_connect (MilterClientContext *context,
            const gchar         *host_name,
            GSocketAddress      *address,
            gpointer             user_data)
{
  Session *session = get_session (context);
  g_autofree gchar *address_string = NULL;

  if (G_IS_INET_SOCKET_ADDRESS (address))
    {
      GInetSocketAddress *inet = G_INET_SOCKET_ADDRESS (address);

      address_string = g_inet_address_to_string (g_inet_socket_address_get_address (inet));
    }
  record (session, "connect", host_name, NULLABLE (address_string), NULL);

  if (g_strcmp0 (address_string, "127.0.0.2") == 0)
    {
      set_reply (context, 554, "5.7.1", "interop: connections from 127.0.0.2 are refused");
      return MILTER_STATUS_REJECT;
    }
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_helo (MilterClientContext *context,
         const gchar         *fqdn,
         gpointer             user_data)
{
  Session *session = get_session (context);

  record (session, "helo", fqdn, NULL);
  if (g_str_has_prefix (fqdn, "reject-helo."))
    {
      set_reply (context, 550, "5.7.1", "interop: HELO reject-helo refused");
      return MILTER_STATUS_REJECT;
    }
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_envelope_from (MilterClientContext *context,
                  const gchar         *from,
                  gpointer             user_data)
{
  Session *session = get_session (context);
  MilterMessageResult *result = milter_client_context_get_message_result (context);
  GHashTable *shelf = milter_client_context_get_mail_transaction_shelf (context);
  g_autofree gchar *shelf_size = g_strdup_printf ("%u", g_hash_table_size (shelf));
  g_autofree gchar *n_recipients =
    count_strv (result != NULL ? milter_message_result_get_recipients (result) : NULL);

  /* What is left of the previous message must be gone by now. */
  record (session, "envelope-from", from,
          shelf_size,
          NULLABLE (milter_client_context_get_macro (context, "{rcpt_addr}")),
          n_recipients,
          NULL);
  reset_message (session);
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_envelope_recipient (MilterClientContext *context,
                       const gchar         *recipient,
                       gpointer             user_data)
{
  record (get_session (context), "envelope-recipient", recipient, NULL);
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_data (MilterClientContext *context,
         gpointer             user_data)
{
  record (get_session (context), "data", NULL);
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_header (MilterClientContext *context,
           const gchar         *name,
           const gchar         *value,
           gpointer             user_data)
{
  Session *session = get_session (context);
  gsize length = strlen (value);
  g_autofree gchar *length_string = g_strdup_printf ("%" G_GSIZE_FORMAT, length);

  /* Long headers are recorded by length and digest only. */
  if (length > 4096)
    {
      g_autofree gchar *digest =
        g_compute_checksum_for_string (G_CHECKSUM_SHA256, value, length);

      record (session, "long-header", name, length_string, digest, NULL);
    }
  else
    {
      record (session, "header", name, value, NULL);
    }
  session->longest_header = MAX (session->longest_header, length);
  if (g_ascii_strcasecmp (name, "X-Test-Case") == 0)
    milter_client_context_set_mail_transaction_shelf_value (context, "case", value);
  else if (g_ascii_strcasecmp (name, "X-Latin1") == 0)
    {
      g_free (session->latin1_value);
      session->latin1_value = g_strdup (value);
    }
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_end_of_header (MilterClientContext *context,
                  gpointer             user_data)
{
  record (get_session (context), "end-of-header", NULL);
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_body (MilterClientContext *context,
         GBytes              *chunk,
         gpointer             user_data)
{
  Session *session = get_session (context);
  gsize size;
  const guchar *data = g_bytes_get_data (chunk, &size);
  g_autofree gchar *size_string = g_strdup_printf ("%" G_GSIZE_FORMAT, size);

  record (session, "body", size_string, NULL);
  g_checksum_update (session->body_checksum, data, size);
  session->body_size += size;
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_abort (MilterClientContext      *context,
          MilterClientContextState  state,
          gpointer                  user_data)
{
  g_autofree gchar *nick = nick_of_state (state);

  record (get_session (context), "abort", nick, NULL);
  return MILTER_STATUS_DEFAULT;
}

/* ---- end of message ------------------------------------------------------ */

typedef struct
{
  MilterClientContext *context;
  gboolean keep_alive;
  gint64 deadline;
} Deferred;

static void
deferred_free (Deferred *deferred)
{
  g_object_unref (deferred->context);
  g_free (deferred);
}

static gboolean
on_progress_tick (gpointer data)
{
  Deferred *deferred = data;

  if (g_get_monotonic_time () < deferred->deadline)
    {
      /* When the MTA gave up already, this fails; nothing to do then. */
      if (deferred->keep_alive)
        milter_client_context_progress (deferred->context, NULL);
      return G_SOURCE_CONTINUE;
    }
  milter_client_context_add_header (deferred->context, "X-Interop-Progress", "replied after 3 s",
                                    NULL);
  milter_client_context_reply (deferred->context, MILTER_STATUS_CONTINUE);
  return G_SOURCE_REMOVE;
}

static MilterStatus
defer_verdict (MilterClientContext *context,
               gboolean             keep_alive)
{
  Deferred *deferred = g_new0 (Deferred, 1);

  deferred->context = g_object_ref (context);
  deferred->keep_alive = keep_alive;
  deferred->deadline = g_get_monotonic_time () + PROGRESS_DELAY_MS * G_TIME_SPAN_MILLISECOND;
  g_timeout_add_full (G_PRIORITY_DEFAULT, PROGRESS_INTERVAL_MS, on_progress_tick, deferred,
                      (GDestroyNotify) deferred_free);
  return MILTER_STATUS_PROGRESS;
}

/* Exercises protocol.md §8.3/§8.4 in Postfix: inserts count Postfix's own
 * Received:, changes and deletes do not, and a deletion shifts the indexes
 * after it. */
static void
edit_headers (MilterClientContext *context)
{
  change_header (context, "X-Change-Me", 1, "new value");
  delete_header (context, "X-Delete-Me", 1);
  delete_header (context, "X-Multi", 1);
  /* "three" now, not "two". */
  change_header (context, "X-Multi", 2, "changed after delete");
  /* The client's Received:, not Postfix's hidden one. */
  change_header (context, "Received", 1,
                 "from changed.example.test by relay.example.test;"
                 " Thu, 1 Jan 2026 00:00:00 +0000");
  insert_header (context, 1, "X-Inserted-One", "below the MTA's Received");
  insert_header (context, 0, "X-Inserted-Zero", "on top");
  add_header (context, "X-Added-Last", "at the bottom");
}

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  Session *session = get_session (context);
  MilterMessageResult *result = milter_client_context_get_message_result (context);
  MilterHeaders *headers = milter_message_result_get_headers (result);
  const gchar *test_case =
    milter_client_context_get_mail_transaction_shelf_value (context, "case");
  const gchar *queue_id = milter_client_context_get_macro (context, "i");
  g_autofree gchar *body_size = NULL;
  g_autofree gchar *n_headers = NULL;
  g_autofree gchar *n_recipients = NULL;
  g_autofree gchar *longest = NULL;
  g_autofree gchar *digest = NULL;

  if (chunk != NULL && g_bytes_get_size (chunk) > 0)
    on_body (context, chunk, user_data);
  digest = g_strdup (g_checksum_get_string (session->body_checksum));
  body_size = g_strdup_printf ("%" G_GUINT64_FORMAT, session->body_size);
  /* From the library's per-message result: must not add up over messages. */
  n_headers = g_strdup_printf ("%u", milter_headers_get_length (headers));
  n_recipients = count_strv (milter_message_result_get_recipients (result));
  longest = g_strdup_printf ("%" G_GSIZE_FORMAT, session->longest_header);
  record (session, "end-of-message", NULLABLE (test_case), NULLABLE (queue_id), body_size, digest,
          n_headers, n_recipients, NULL);

  if (only_end_of_message)
    {
      MilterOption *option = milter_client_context_get_option (context);
      g_autofree gchar *option_string = milter_option_to_string (option);

      record (session, "negotiated", option_string, NULL);
      add_header (context, "X-Interop-Only-Eom", "yes");
      return MILTER_STATUS_CONTINUE;
    }
  if (test_case == NULL)
    return MILTER_STATUS_CONTINUE;

  if (strcmp (test_case, "add-header") == 0)
    {
      add_header (context, "X-Interop-Queue-Id", queue_id != NULL ? queue_id : "(none)");
    }
  else if (strcmp (test_case, "reject") == 0)
    {
      set_reply (context, 554, "5.7.1", "interop: rejected with a custom reply");
      return MILTER_STATUS_REJECT;
    }
  else if (strcmp (test_case, "tempfail") == 0)
    {
      set_reply (context, 451, "4.7.1", "interop: try again later");
      return MILTER_STATUS_TEMPORARY_FAILURE;
    }
  else if (strcmp (test_case, "tempfail-plain") == 0)
    {
      return MILTER_STATUS_TEMPORARY_FAILURE;
    }
  else if (strcmp (test_case, "discard") == 0)
    {
      return MILTER_STATUS_DISCARD;
    }
  else if (strcmp (test_case, "change-from") == 0)
    {
      change_from (context, "<changed-sender@example.test>", "RET=HDRS");
    }
  else if (strcmp (test_case, "add-recipients") == 0)
    {
      add_recipient (context, "<added-plain@example.test>", NULL);
      add_recipient (context, "<added-never@example.test>", "NOTIFY=NEVER");
    }
  else if (strcmp (test_case, "delete-recipient") == 0)
    {
      delete_recipient (context, "<drop@example.test>");
    }
  else if (strcmp (test_case, "replace-body") == 0)
    {
      replace_body (context, "This body was replaced by interop-filter.\r\n"
                             "Second line, then a dot alone:\r\n.\r\nEnd.\r\n");
    }
  else if (strcmp (test_case, "headers") == 0)
    {
      edit_headers (context);
    }
  else if (strcmp (test_case, "quarantine") == 0)
    {
      quarantine (context, "interop: held for inspection");
    }
  else if (strcmp (test_case, "progress") == 0 || strcmp (test_case, "progress-silent") == 0)
    {
      return defer_verdict (context, strcmp (test_case, "progress") == 0);
    }
  else if (strcmp (test_case, "body-digest") == 0)
    {
      add_header (context, "X-Interop-Body-SHA256", digest);
      add_header (context, "X-Interop-Body-Size", body_size);
      add_header (context, "X-Interop-Header-Count", n_headers);
      add_header (context, "X-Interop-Longest-Header", longest);
      /* Sent back as it came: the library must not mangle 8-bit bytes. */
      if (session->latin1_value != NULL)
        add_header (context, "X-Interop-Latin1-Echo", session->latin1_value);
    }
  else
    {
      record (session, "unknown-case", test_case, NULL);
    }
  return MILTER_STATUS_CONTINUE;
}

/* ---- sessions ------------------------------------------------------------- */

static void
on_finished (MilterClientContext *context,
             gpointer             user_data)
{
  Session *session = get_session (context);
  g_autofree gchar *block = NULL;

  /* A bare connect (a readiness probe) never negotiated: not a session. */
  if (session == NULL || !session->negotiated)
    return;
  record (session, "finished", NULL);
  block = g_strdup_printf ("session %u\n%send %u\n", session->id, session->log->str,
                           session->id);
  write_all (block, strlen (block));
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  Session *session = g_new0 (Session, 1);

  session->id = ++n_sessions;
  session->log = g_string_new (NULL);
  session->body_checksum = g_checksum_new (G_CHECKSUM_SHA256);
  milter_client_context_set_private_data (context, session, (GDestroyNotify) session_free);

  g_signal_connect (context, "finished", G_CALLBACK (on_finished), NULL);
  /* Connected before the negotiation: handlers decide which events the
   * MTA is asked to send. */
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), NULL);
  if (only_end_of_message)
    {
      /* Which commands arrive at all, whether anyone listens or not. */
      g_signal_connect (context, "notify::state", G_CALLBACK (on_state_changed), NULL);
      return;
    }
  g_signal_connect (context, "negotiate", G_CALLBACK (on_negotiate), NULL);
  g_signal_connect (context, "connect", G_CALLBACK (on_connect), NULL);
  g_signal_connect (context, "helo", G_CALLBACK (on_helo), NULL);
  g_signal_connect (context, "envelope-from", G_CALLBACK (on_envelope_from), NULL);
  g_signal_connect (context, "envelope-recipient", G_CALLBACK (on_envelope_recipient), NULL);
  g_signal_connect (context, "data", G_CALLBACK (on_data), NULL);
  g_signal_connect (context, "header", G_CALLBACK (on_header), NULL);
  g_signal_connect (context, "end-of-header", G_CALLBACK (on_end_of_header), NULL);
  g_signal_connect (context, "body-bytes", G_CALLBACK (on_body), NULL);
  g_signal_connect (context, "abort", G_CALLBACK (on_abort), NULL);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GOptionContext) options = g_option_context_new ("- milter for the MTA interop tests");
  g_autoptr(GError) error = NULL;
  GOptionEntry entries[] = {
    { "events", 0, 0, G_OPTION_ARG_FILENAME, &events_path,
      "Append what each session saw to FILE", "FILE" },
    { "only-eom", 0, 0, G_OPTION_ARG_NONE, &only_end_of_message,
      "Handle end-of-message only, so the MTA can skip every other event", NULL },
    G_OPTION_ENTRY_NULL
  };

  g_option_context_add_main_entries (options, entries, NULL);
  g_option_context_add_group (options, milter_client_get_option_group (client));
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("interop-filter: %s\n", error->message);
      return 2;
    }
  events_fd = open (events_path != NULL ? events_path : "/dev/null",
                    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (events_fd < 0)
    {
      g_printerr ("interop-filter: %s: %s\n", events_path, g_strerror (errno));
      return 1;
    }

  g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established),
                    NULL);
  if (!milter_client_run (client, &error))
    {
      g_printerr ("interop-filter: %s\n", error->message);
      return 1;
    }
  close (events_fd);
  g_free (events_path);
  return 0;
}
