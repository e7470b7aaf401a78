/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* milter-test-server: plays the MTA against a milter, as Postfix would,
 * and reports what the milter decided and changed. With --n-messages or
 * --concurrency it drives many sessions at once and reports throughput
 * and latency. */
#include "config.h"

#include <milter/milter.h>

#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exit statuses: see the --help description. */
enum {
  EXIT_PASS = 0,
  EXIT_ERROR = 1,
  EXIT_REJECT = 2,
  EXIT_TEMPORARY_FAILURE = 3,
  EXIT_DISCARD = 4,
  EXIT_SHUTDOWN = 5,
};

typedef enum {
  VERDICT_PASS,
  VERDICT_ACCEPT,
  VERDICT_REJECT,
  VERDICT_TEMPORARY_FAILURE,
  VERDICT_DISCARD,
  VERDICT_ABORTED,
  VERDICT_SHUTDOWN,
  VERDICT_ERROR,
  N_VERDICTS
} Verdict;

static const gchar * const verdict_names[N_VERDICTS] = {
  "pass", "accept", "reject", "temporary-failure", "discard", "aborted", "shutdown", "error",
};

static const gint verdict_exit_statuses[N_VERDICTS] = {
  EXIT_PASS, EXIT_PASS, EXIT_REJECT, EXIT_TEMPORARY_FAILURE, EXIT_DISCARD, EXIT_PASS,
  EXIT_SHUTDOWN, EXIT_ERROR,
};

typedef enum {
  STEP_CONNECTION,
  STEP_NEGOTIATE,
  STEP_CONNECT,
  STEP_HELO,
  STEP_ENVELOPE_FROM,
  STEP_ENVELOPE_RECIPIENT,
  STEP_DATA,
  STEP_HEADER,
  STEP_END_OF_HEADER,
  STEP_BODY,
  STEP_END_OF_MESSAGE,
  STEP_ABORT,
  STEP_QUIT,
} Step;

static const gchar * const step_names[] = {
  "connection", "negotiate", "connect", "helo", "envelope-from", "envelope-recipient", "data",
  "header", "end-of-header", "body", "end-of-message", "abort", "quit",
};

typedef struct
{
  gchar *address;
  gchar **parameters;
} Address;

typedef struct
{
  MilterCommand command;
  gchar *name;
  gchar *value;
} MacroSetting;

typedef struct
{
  gchar *address;
  Verdict verdict;
  gchar *reply;
} RejectedRecipient;

typedef struct _Tool Tool;

typedef struct
{
  Tool *tool;
  MilterServerContext *context;
  Step step;
  guint index;                /* of the recipient, header or body chunk */
  guint n_accepted;           /* recipients accepted in this message */
  Verdict last_rejection;
  gchar *last_rejection_reply;
  guint n_messages;           /* messages started on this connection */
  gboolean claiming;          /* counted in n_connecting */
  gboolean in_message;
  gint64 message_start;
} Session;

struct _Tool
{
  /* Options */
  gchar *connection_spec;
  gint negotiate_version;
  gchar *connect_host;
  GSocketAddress *connect_address;
  gchar *helo_fqdn;
  Address from;
  GPtrArray *recipients;      /* of Address */
  MilterHeaders *headers;
  GPtrArray *body_chunks;     /* of GBytes */
  GPtrArray *macros;          /* of MacroSetting */
  gdouble connect_timeout;    /* < 0: the context's default */
  gdouble read_timeout;
  gdouble write_timeout;
  gdouble end_of_message_timeout;
  gboolean output_message;
  gboolean json;
  gboolean verbose;
  gboolean load;
  gint n_messages;
  gint concurrency;
  gint messages_per_connection;
  gint abort_after;           /* a Step: continue to its first command aborts; or -1 */

  /* Running */
  GMainLoop *loop;
  gint64 start_time;
  guint n_started;
  guint n_finished;
  guint n_sessions;
  guint n_connecting;         /* sessions that will claim a message */
  guint verdict_counts[N_VERDICTS];
  GArray *latencies;          /* of gdouble, seconds */
  gchar *first_error;

  /* The result of a single run */
  Verdict verdict;
  const gchar *stage;
  gchar *reply;
  GError *error;
  GPtrArray *rejected;        /* of RejectedRecipient */
  GPtrArray *modifications;   /* of MilterModification */
  MilterOption *option;
  MilterMacrosRequests *macros_requests;
  gdouble elapsed;
};

static void session_start (Tool *tool);
static void session_advance (Session *session,
                             MilterStatus status,
                             GError *error);

/* ---- helpers ------------------------------------------------------------ */

/* Bare LF → CRLF, as Sendmail does with a message body. */
static GBytes *
to_crlf (const gchar *text,
         gsize        size)
{
  GByteArray *array = g_byte_array_sized_new ((guint) size);

  for (gsize i = 0; i < size; i++)
    {
      if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
        g_byte_array_append (array, (const guint8 *) "\r", 1);
      g_byte_array_append (array, (const guint8 *) text + i, 1);
    }
  return g_byte_array_free_to_bytes (array);
}

/* "<a@b> SIZE=10" or "a@b": the address in angle brackets and the
 * parameters after it. */
static void
parse_address (const gchar *text,
               Address     *address)
{
  g_auto(GStrv) words = g_strsplit_set (text, " \t", -1);
  GPtrArray *parameters = g_ptr_array_new ();
  const gchar *first = NULL;

  for (guint i = 0; words[i] != NULL; i++)
    {
      if (*words[i] == '\0')
        continue;
      if (first == NULL)
        first = words[i];
      else
        g_ptr_array_add (parameters, g_strdup (words[i]));
    }
  g_ptr_array_add (parameters, NULL);
  if (first == NULL)
    first = "";
  if (first[0] == '<')
    address->address = g_strdup (first);
  else
    address->address = g_strdup_printf ("<%s>", first);
  address->parameters = (gchar **) g_ptr_array_free (parameters, FALSE);
}

static void
address_clear (Address *address)
{
  g_clear_pointer (&address->address, g_free);
  g_clear_pointer (&address->parameters, g_strfreev);
}

static void
address_free (gpointer data)
{
  address_clear (data);
  g_free (data);
}

static void
macro_setting_free (gpointer data)
{
  MacroSetting *setting = data;

  g_free (setting->name);
  g_free (setting->value);
  g_free (setting);
}

static void
rejected_recipient_free (gpointer data)
{
  RejectedRecipient *rejected = data;

  g_free (rejected->address);
  g_free (rejected->reply);
  g_free (rejected);
}

static Verdict
verdict_from_status (MilterStatus status)
{
  switch (status)
    {
    case MILTER_STATUS_ACCEPT: return VERDICT_ACCEPT;
    case MILTER_STATUS_REJECT: return VERDICT_REJECT;
    case MILTER_STATUS_TEMPORARY_FAILURE: return VERDICT_TEMPORARY_FAILURE;
    case MILTER_STATUS_DISCARD: return VERDICT_DISCARD;
    default: return VERDICT_PASS;
    }
}

static const gchar *
status_name (MilterStatus status)
{
  GEnumClass *klass = g_type_class_ref (MILTER_TYPE_STATUS);
  GEnumValue *value = g_enum_get_value (klass, (gint) status);
  const gchar *nick = value != NULL ? value->value_nick : "unknown";

  /* Enum classes of registered types are never freed. */
  g_type_class_unref (klass);
  return nick;
}

static void G_GNUC_PRINTF (2, 3)
verbose (Tool        *tool,
         const gchar *format,
         ...)
{
  va_list args;

  if (!tool->verbose)
    return;
  va_start (args, format);
  vfprintf (stderr, format, args);
  va_end (args);
  fputc ('\n', stderr);
}

/* ---- option parsing ----------------------------------------------------- */

static Tool *the_tool;

static gboolean
split_name_value (const gchar  *option,
                  const gchar  *text,
                  gchar       **name,
                  gchar       **value,
                  GError      **error)
{
  const gchar *colon = strchr (text, ':');

  if (colon == NULL || colon == text)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "%s needs NAME:VALUE, not “%s”", option, text);
      return FALSE;
    }
  *name = g_strndup (text, (gsize) (colon - text));
  *value = g_strdup (colon[1] == ' ' ? colon + 2 : colon + 1);
  return TRUE;
}

static gboolean
on_header_option (const gchar  *option,
                  const gchar  *text,
                  gpointer      data,
                  GError      **error)
{
  g_autofree gchar *name = NULL;
  g_autofree gchar *value = NULL;

  if (!split_name_value (option, text, &name, &value, error))
    return FALSE;
  milter_headers_add (the_tool->headers, name, value);
  return TRUE;
}

static gboolean
on_body_option (const gchar  *option,
                const gchar  *text,
                gpointer      data,
                GError      **error)
{
  g_ptr_array_add (the_tool->body_chunks, to_crlf (text, strlen (text)));
  return TRUE;
}

static gboolean
on_recipient_option (const gchar  *option,
                     const gchar  *text,
                     gpointer      data,
                     GError      **error)
{
  Address *address = g_new0 (Address, 1);

  parse_address (text, address);
  g_ptr_array_add (the_tool->recipients, address);
  return TRUE;
}

static gboolean
on_macro_option (const gchar  *option,
                 const gchar  *text,
                 gpointer      data,
                 GError      **error)
{
  static const struct
  {
    const gchar *option;
    MilterCommand command;
  } stages[] = {
    { "--connect-macro", MILTER_COMMAND_CONNECT },
    { "--helo-macro", MILTER_COMMAND_HELO },
    { "--envelope-from-macro", MILTER_COMMAND_ENVELOPE_FROM },
    { "--envelope-recipient-macro", MILTER_COMMAND_ENVELOPE_RECIPIENT },
    { "--data-macro", MILTER_COMMAND_DATA },
    { "--end-of-header-macro", MILTER_COMMAND_END_OF_HEADER },
    { "--end-of-message-macro", MILTER_COMMAND_END_OF_MESSAGE },
  };
  MacroSetting *setting;
  g_autofree gchar *name = NULL;
  g_autofree gchar *value = NULL;

  if (!split_name_value (option, text, &name, &value, error))
    return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (stages); i++)
    {
      if (strcmp (option, stages[i].option) != 0)
        continue;
      setting = g_new (MacroSetting, 1);
      setting->command = stages[i].command;
      setting->name = g_steal_pointer (&name);
      setting->value = g_steal_pointer (&value);
      g_ptr_array_add (the_tool->macros, setting);
      return TRUE;
    }
  g_assert_not_reached ();
}

static const gchar description[] =
  "Plays the MTA (as Postfix does) against the milter at SPEC, sends one message\n"
  "and prints the milter's verdict, its reply code, every modification it asked\n"
  "for, the quarantine reason, and the elapsed time. Addresses may be given as <user@example.com> or\n"
  "user@example.com, optionally followed by ESMTP parameters:\n"
  "  -f '<a@example.com> SIZE=1000'.\n"
  "Without --mail-file, --header or --body a small default message is sent.\n"
  "Names, addresses, headers, bodies and macros go to the milter byte for byte:\n"
  "they need not be UTF-8 (as in real mail).\n"
  "\n"
  "Verdicts: pass (the milter let the message through, with its changes),\n"
  "accept, reject, temporary-failure, discard, aborted (--abort-after ended the\n"
  "message), shutdown (the milter asked for 421, by the shutdown reply or a 421\n"
  "reply code), error (the milter could not be reached or broke the protocol).\n"
  "\n"
  "Exit status:\n"
  "  0  pass, accept or aborted\n"
  "  1  error (including usage errors; in load mode: any session failed)\n"
  "  2  reject\n"
  "  3  temporary-failure\n"
  "  4  discard\n"
  "  5  shutdown\n"
  "\n"
  "Load mode (--n-messages or --concurrency) sends the message N times over C\n"
  "concurrent connections, M messages per connection, and prints messages/s,\n"
  "errors, and the 50th and 99th percentile latency of a message, from its\n"
  "first command (its connection's, for the first message on a connection) to\n"
  "the milter's final verdict. Use --help to see this text; -h is --header.";

/* The steps --abort-after accepts: those of a message, before its end. */
static gboolean
parse_abort_step (const gchar  *name,
                  gint         *step,
                  GError      **error)
{
  for (Step candidate = STEP_ENVELOPE_FROM; candidate <= STEP_BODY; candidate++)
    if (strcmp (name, step_names[candidate]) == 0)
      {
        *step = (gint) candidate;
        return TRUE;
      }
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               "--abort-after must be envelope-from, envelope-recipient, data, header, "
               "end-of-header or body, not “%s”", name);
  return FALSE;
}

static gboolean
parse_options (Tool    *tool,
               int     *argc,
               char  ***argv,
               GError **error)
{
  g_autofree gchar *connect_address = NULL;
  g_autofree gchar *from = NULL;
  g_autofree gchar *mail_file = NULL;
  g_autofree gchar *abort_after = NULL;
  gboolean load_requested;
  GOptionEntry entries[] = {
    { "connection-spec", 's', 0, G_OPTION_ARG_STRING, &tool->connection_spec,
      "The milter's socket: unix:PATH, inet:PORT@HOST or inet6:PORT@HOST", "SPEC" },
    { "negotiate-version", 0, 0, G_OPTION_ARG_INT, &tool->negotiate_version,
      "The protocol version to offer: 2, 3, 4 or 6 (default: 6)", "VERSION" },
    { "connect-host", 0, 0, G_OPTION_ARG_FILENAME, &tool->connect_host,
      "The SMTP client's host name (default: client.example.com)", "HOST" },
    { "connect-address", 0, 0, G_OPTION_ARG_STRING, &connect_address,
      "The SMTP client's address as a spec, e.g. inet:25@192.0.2.1 (default: "
      "inet:50443@192.0.2.1)", "SPEC" },
    { "helo-fqdn", 0, 0, G_OPTION_ARG_FILENAME, &tool->helo_fqdn,
      "The HELO name (default: client.example.com)", "FQDN" },
    { "from", 'f', 0, G_OPTION_ARG_FILENAME, &from,
      "The envelope sender (default: <sender@example.com>)", "ADDRESS" },
    { "recipient", 'r', G_OPTION_FLAG_FILENAME, G_OPTION_ARG_CALLBACK, on_recipient_option,
      "An envelope recipient; repeatable (default: <recipient@example.org>)", "ADDRESS" },
    { "header", 'h', G_OPTION_FLAG_FILENAME, G_OPTION_ARG_CALLBACK, on_header_option,
      "A header; repeatable, in order", "NAME:VALUE" },
    { "body", 'b', G_OPTION_FLAG_FILENAME, G_OPTION_ARG_CALLBACK, on_body_option,
      "A body chunk (LF becomes CRLF); repeatable, one body command each", "TEXT" },
    { "mail-file", 'm', 0, G_OPTION_ARG_FILENAME, &mail_file,
      "Take the headers and body from an RFC 5322 message; --header and --body "
      "add to them", "FILE" },
    { "connect-macro", 0, G_OPTION_FLAG_FILENAME, G_OPTION_ARG_CALLBACK, on_macro_option,
      "A macro sent with connect; repeatable", "NAME:VALUE" },
    { "helo-macro", 0, G_OPTION_FLAG_FILENAME, G_OPTION_ARG_CALLBACK, on_macro_option,
      "A macro sent with HELO; repeatable", "NAME:VALUE" },
    { "envelope-from-macro", 0, G_OPTION_FLAG_FILENAME, G_OPTION_ARG_CALLBACK, on_macro_option,
      "A macro sent with MAIL FROM; repeatable", "NAME:VALUE" },
    { "envelope-recipient-macro", 0, G_OPTION_FLAG_FILENAME, G_OPTION_ARG_CALLBACK, on_macro_option,
      "A macro sent with each RCPT TO; repeatable", "NAME:VALUE" },
    { "data-macro", 0, G_OPTION_FLAG_FILENAME, G_OPTION_ARG_CALLBACK, on_macro_option,
      "A macro sent with DATA; repeatable", "NAME:VALUE" },
    { "end-of-header-macro", 0, G_OPTION_FLAG_FILENAME, G_OPTION_ARG_CALLBACK, on_macro_option,
      "A macro sent with end-of-header; repeatable", "NAME:VALUE" },
    { "end-of-message-macro", 0, G_OPTION_FLAG_FILENAME, G_OPTION_ARG_CALLBACK, on_macro_option,
      "A macro sent with end-of-message; repeatable", "NAME:VALUE" },
    { "connect-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &tool->connect_timeout,
      "Seconds to wait for the connection (default: 30)", "SECONDS" },
    { "read-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &tool->read_timeout,
      "Seconds to wait for each reply but the end-of-message one (default: 30)", "SECONDS" },
    { "write-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &tool->write_timeout,
      "Seconds each write may take (default: 30)", "SECONDS" },
    { "end-of-message-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &tool->end_of_message_timeout,
      "Seconds to wait for the end-of-message reply (default: 300)", "SECONDS" },
    { "abort-after", 0, 0, G_OPTION_ARG_STRING, &abort_after,
      "Abort the message, as after the SMTP client's RSET, once the milter let the "
      "first command of STEP through: envelope-from, envelope-recipient, data, header, "
      "end-of-header or body", "STEP" },
    { "output-message", 0, 0, G_OPTION_ARG_NONE, &tool->output_message,
      "Print the envelope and the message as the milter modified them", NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &tool->json,
      "Print the result as JSON", NULL },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &tool->verbose,
      "Log every step and the milter's answer on standard error", NULL },
    { "n-messages", 0, 0, G_OPTION_ARG_INT, &tool->n_messages,
      "Load mode: send this many messages", "N" },
    { "concurrency", 0, 0, G_OPTION_ARG_INT, &tool->concurrency,
      "Load mode: over this many connections at once (default: 1)", "C" },
    { "messages-per-connection", 0, 0, G_OPTION_ARG_INT, &tool->messages_per_connection,
      "Load mode: messages sent on one connection before it is closed (default: 1)", "M" },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("- MTA emulator for milters");

  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_description (context, description);
  if (!g_option_context_parse (context, argc, argv, error))
    return FALSE;

  if (*argc > 1)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "Unexpected argument “%s”", (*argv)[1]);
      return FALSE;
    }
  if (tool->connection_spec == NULL)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           "--connection-spec is required (e.g. -s unix:/run/milter.sock)");
      return FALSE;
    }
  {
    g_autoptr(GSocketAddress) address = milter_connection_spec_parse (tool->connection_spec, error);

    if (address == NULL)
      {
        g_prefix_error (error, "--connection-spec: ");
        return FALSE;
      }
  }
  if (tool->negotiate_version != 2 && tool->negotiate_version != 3 &&
      tool->negotiate_version != 4 && tool->negotiate_version != 6)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--negotiate-version must be 2, 3, 4 or 6, not %d", tool->negotiate_version);
      return FALSE;
    }
  if (abort_after != NULL && !parse_abort_step (abort_after, &tool->abort_after, error))
    return FALSE;
  tool->connect_address = milter_connection_spec_parse (connect_address != NULL ?
                                                        connect_address :
                                                        "inet:50443@192.0.2.1", error);
  if (tool->connect_address == NULL)
    {
      g_prefix_error (error, "--connect-address: ");
      return FALSE;
    }
  parse_address (from != NULL ? from : "<sender@example.com>", &tool->from);
  if (tool->recipients->len == 0)
    on_recipient_option ("--recipient", "<recipient@example.org>", NULL, NULL);

  if (mail_file != NULL)
    {
      g_autoptr(MilterMessage) message = NULL;
      g_autoptr(GBytes) data = NULL;
      g_autoptr(MilterHeaders) extra = g_steal_pointer (&tool->headers);
      gchar *contents;
      gsize length;

      if (!g_file_get_contents (mail_file, &contents, &length, error))
        return FALSE;
      data = g_bytes_new_take (contents, length);
      message = milter_message_new_from_data (data, error);
      if (message == NULL)
        {
          g_prefix_error (error, "%s: ", mail_file);
          return FALSE;
        }
      tool->headers = milter_headers_copy (milter_message_get_headers (message));
      for (guint i = 0; i < milter_headers_get_length (extra); i++)
        milter_headers_add (tool->headers, milter_headers_get_name (extra, i),
                            milter_headers_get_value (extra, i));
      if (g_bytes_get_size (milter_message_get_body (message)) > 0)
        g_ptr_array_insert (tool->body_chunks, 0,
                            g_bytes_ref (milter_message_get_body (message)));
    }
  else if (milter_headers_get_length (tool->headers) == 0 && tool->body_chunks->len == 0)
    {
      Address *first = g_ptr_array_index (tool->recipients, 0);

      milter_headers_add (tool->headers, "From", tool->from.address);
      milter_headers_add (tool->headers, "To", first->address);
      milter_headers_add (tool->headers, "Subject", "Test message from milter-test-server");
      g_ptr_array_add (tool->body_chunks,
                       g_bytes_new_static ("This is a test message.\r\n", 25));
    }

  load_requested = tool->n_messages > 0 || tool->concurrency > 0 ||
                   tool->messages_per_connection > 0;
  if (tool->n_messages < 0 || tool->concurrency < 0 || tool->messages_per_connection < 0)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           "--n-messages, --concurrency and --messages-per-connection must be "
                           "positive");
      return FALSE;
    }
  tool->load = load_requested;
  if (tool->n_messages == 0)
    tool->n_messages = 1;
  if (tool->concurrency == 0)
    tool->concurrency = 1;
  if (tool->messages_per_connection == 0)
    tool->messages_per_connection = 1;
  if (tool->load && tool->output_message)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           "--output-message is not available in load mode");
      return FALSE;
    }
  return TRUE;
}

/* ---- sessions ----------------------------------------------------------- */

static MilterOption *
new_offer (Tool *tool)
{
  /* What Postfix offers for its milter_protocol setting: every action at
   * every version, the steps the version knows. */
  switch (tool->negotiate_version)
    {
    case 2: return milter_option_new (2, MILTER_ACTION_ALL, 0x7F);
    case 3: return milter_option_new (3, MILTER_ACTION_ALL, 0x17F);
    case 4: return milter_option_new (4, MILTER_ACTION_ALL, 0x37F);
    default: return milter_option_new_postfix ();
    }
}

static void
on_progress (MilterServerContext *context,
             Session             *session)
{
  verbose (session->tool, "[%s] progress", step_names[session->step]);
}

static void
on_step_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Session *session = user_data;
  MilterServerContext *context = MILTER_SERVER_CONTEXT (source);
  GError *error = NULL;
  MilterStatus status = MILTER_STATUS_CONTINUE;

  switch (session->step)
    {
    case STEP_CONNECTION:
      milter_server_context_establish_connection_finish (context, result, &error);
      break;
    case STEP_NEGOTIATE:
      milter_server_context_negotiate_finish (context, result, &error);
      break;
    case STEP_CONNECT:
      status = milter_server_context_connect_finish (context, result, &error);
      break;
    case STEP_HELO:
      status = milter_server_context_helo_finish (context, result, &error);
      break;
    case STEP_ENVELOPE_FROM:
      status = milter_server_context_envelope_from_finish (context, result, &error);
      break;
    case STEP_ENVELOPE_RECIPIENT:
      status = milter_server_context_envelope_recipient_finish (context, result, &error);
      break;
    case STEP_DATA:
      status = milter_server_context_data_finish (context, result, &error);
      break;
    case STEP_HEADER:
      status = milter_server_context_header_finish (context, result, &error);
      break;
    case STEP_END_OF_HEADER:
      status = milter_server_context_end_of_header_finish (context, result, &error);
      break;
    case STEP_BODY:
      status = milter_server_context_body_finish (context, result, &error);
      break;
    case STEP_END_OF_MESSAGE:
      status = milter_server_context_end_of_message_finish (context, result, &error);
      break;
    case STEP_ABORT:
      milter_server_context_abort_finish (context, result, &error);
      break;
    case STEP_QUIT:
      milter_server_context_quit_finish (context, result, &error);
      break;
    default:
      g_assert_not_reached ();
    }
  session_advance (session, status, error);
}

static void
session_free (Session *session)
{
  if (session->claiming)
    session->tool->n_connecting--;
  if (session->context != NULL)
    {
      g_signal_handlers_disconnect_by_data (session->context, session);
      milter_server_context_close (session->context);
      g_clear_object (&session->context);
    }
  g_free (session->last_rejection_reply);
  g_free (session);
}

/* The session's connection is done: start another one if messages are
 * left, or stop when the last session ends. */
static void
session_end (Session *session)
{
  Tool *tool = session->tool;

  session_free (session);
  tool->n_sessions--;
  if (tool->n_started + tool->n_connecting < (guint) tool->n_messages)
    session_start (tool);
  else if (tool->n_sessions == 0)
    g_main_loop_quit (tool->loop);
}

/* A reply as Postfix gives it to the SMTP client: "%%" becomes "%", a
 * single "%" is dropped. */
static gchar *
client_reply_text (const gchar *reply)
{
  GString *text;

  if (reply == NULL)
    return NULL;
  text = g_string_sized_new (strlen (reply));
  for (const gchar *p = reply; *p != '\0'; p++)
    {
      if (*p != '%')
        g_string_append_c (text, *p);
      else if (p[1] == '%')
        g_string_append_c (text, *p++);
    }
  return g_string_free (text, FALSE);
}

static void
record_verdict (Session     *session,
                Verdict      verdict,
                const gchar *stage,
                const gchar *reply,
                GError      *error)
{
  Tool *tool = session->tool;
  gdouble latency = (g_get_monotonic_time () - session->message_start) / (gdouble) G_USEC_PER_SEC;

  tool->n_finished++;
  tool->verdict_counts[verdict]++;
  g_array_append_val (tool->latencies, latency);
  if (error != NULL && tool->first_error == NULL)
    tool->first_error = g_strdup (error->message);
  if (tool->load)
    return;

  tool->verdict = verdict;
  tool->stage = stage;
  tool->reply = client_reply_text (reply);
  if (error != NULL)
    tool->error = g_error_copy (error);
  tool->elapsed = (g_get_monotonic_time () - tool->start_time) / (gdouble) G_USEC_PER_SEC;
  if (session->context != NULL && stage != NULL && strcmp (stage, "end-of-message") == 0)
    tool->modifications =
      g_ptr_array_ref (milter_server_context_get_modifications (session->context));
}

static void
run_step (Session *session,
          Step     step)
{
  Tool *tool = session->tool;
  MilterServerContext *context = session->context;

  session->step = step;
  switch (step)
    {
    case STEP_CONNECTION:
      verbose (tool, "[connection] %s", tool->connection_spec);
      milter_server_context_establish_connection_async (context, NULL, on_step_done, session);
      break;
    case STEP_NEGOTIATE:
      {
        g_autoptr(MilterOption) offer = new_offer (tool);
        g_autofree gchar *text = milter_option_to_string (offer);

        verbose (tool, "[negotiate] offer %s", text);
        milter_server_context_negotiate_async (context, offer, NULL, on_step_done, session);
        break;
      }
    case STEP_CONNECT:
      verbose (tool, "[connect] %s", tool->connect_host);
      milter_server_context_connect_async (context, tool->connect_host, tool->connect_address,
                                           NULL, on_step_done, session);
      break;
    case STEP_HELO:
      verbose (tool, "[helo] %s", tool->helo_fqdn);
      milter_server_context_helo_async (context, tool->helo_fqdn, NULL, on_step_done, session);
      break;
    case STEP_ENVELOPE_FROM:
      verbose (tool, "[envelope-from] %s", tool->from.address);
      milter_server_context_envelope_from_async (context, tool->from.address,
                                                 (const gchar * const *) tool->from.parameters,
                                                 NULL, on_step_done, session);
      break;
    case STEP_ENVELOPE_RECIPIENT:
      {
        Address *recipient = g_ptr_array_index (tool->recipients, session->index);
        const gchar * const *parameters = (const gchar * const *) recipient->parameters;

        verbose (tool, "[envelope-recipient] %s", recipient->address);
        milter_server_context_envelope_recipient_async (context, recipient->address, parameters,
                                                        NULL, on_step_done, session);
        break;
      }
    case STEP_DATA:
      verbose (tool, "[data]");
      milter_server_context_data_async (context, NULL, on_step_done, session);
      break;
    case STEP_HEADER:
      verbose (tool, "[header] %s", milter_headers_get_name (tool->headers, session->index));
      milter_server_context_header_async (context,
                                          milter_headers_get_name (tool->headers, session->index),
                                          milter_headers_get_value (tool->headers, session->index),
                                          NULL, on_step_done, session);
      break;
    case STEP_END_OF_HEADER:
      verbose (tool, "[end-of-header]");
      milter_server_context_end_of_header_async (context, NULL, on_step_done, session);
      break;
    case STEP_BODY:
      {
        GBytes *chunk = g_ptr_array_index (tool->body_chunks, session->index);

        verbose (tool, "[body] %" G_GSIZE_FORMAT " bytes", g_bytes_get_size (chunk));
        milter_server_context_body_async (context, chunk, NULL, on_step_done, session);
        break;
      }
    case STEP_END_OF_MESSAGE:
      verbose (tool, "[end-of-message]");
      milter_server_context_end_of_message_async (context, NULL, on_step_done, session);
      break;
    case STEP_ABORT:
      milter_server_context_abort_async (context, NULL, on_step_done, session);
      break;
    case STEP_QUIT:
      verbose (tool, "[quit]");
      milter_server_context_quit_async (context, NULL, on_step_done, session);
      break;
    default:
      g_assert_not_reached ();
    }
}

/* Starts the next message on this connection, or quits. */
static void
next_message (Session *session)
{
  Tool *tool = session->tool;

  if (session->claiming)
    {
      session->claiming = FALSE;
      tool->n_connecting--;
    }
  if (session->n_messages >= (guint) tool->messages_per_connection ||
      tool->n_started >= (guint) tool->n_messages)
    {
      run_step (session, STEP_QUIT);
      return;
    }
  if (session->n_messages > 0)
    session->message_start = g_get_monotonic_time ();
  session->n_messages++;
  tool->n_started++;
  session->in_message = TRUE;
  session->index = 0;
  session->n_accepted = 0;
  session->last_rejection = VERDICT_REJECT;
  g_clear_pointer (&session->last_rejection_reply, g_free);
  run_step (session, STEP_ENVELOPE_FROM);
}

/* The message got its verdict: record it and, as Postfix does after each
 * message, send abort before the next one. */
static void
finish_message (Session     *session,
                Verdict      verdict,
                const gchar *reply)
{
  record_verdict (session, verdict, step_names[session->step], reply, NULL);
  session->in_message = FALSE;
  run_step (session, STEP_ABORT);
}

/* The negotiation bits that leave a step out, or its reply. */
static const MilterStepFlags step_flags[][2] = {
  [STEP_CONNECT] = { MILTER_STEP_NO_CONNECT, MILTER_STEP_NO_REPLY_CONNECT },
  [STEP_HELO] = { MILTER_STEP_NO_HELO, MILTER_STEP_NO_REPLY_HELO },
  [STEP_ENVELOPE_FROM] = { MILTER_STEP_NO_ENVELOPE_FROM, MILTER_STEP_NO_REPLY_ENVELOPE_FROM },
  [STEP_ENVELOPE_RECIPIENT] = { MILTER_STEP_NO_ENVELOPE_RECIPIENT,
                                MILTER_STEP_NO_REPLY_ENVELOPE_RECIPIENT },
  [STEP_DATA] = { MILTER_STEP_NO_DATA, MILTER_STEP_NO_REPLY_DATA },
  [STEP_HEADER] = { MILTER_STEP_NO_HEADERS, MILTER_STEP_NO_REPLY_HEADER },
  [STEP_END_OF_HEADER] = { MILTER_STEP_NO_END_OF_HEADER, MILTER_STEP_NO_REPLY_END_OF_HEADER },
  [STEP_BODY] = { MILTER_STEP_NO_BODY, MILTER_STEP_NO_REPLY_BODY },
  [STEP_END_OF_MESSAGE] = { 0, 0 },
};

/* Says so when the milter never saw the step, or sent no reply to it:
 * the status is then the one the MTA assumes. */
static const gchar *
negotiated_note (Session *session)
{
  MilterOption *option = milter_server_context_get_option (session->context);
  MilterStepFlags steps = option != NULL ? milter_option_get_step (option) : 0;

  if (session->step >= G_N_ELEMENTS (step_flags))
    return "";
  if (steps & step_flags[session->step][0])
    return " (not sent: negotiated away)";
  if (steps & step_flags[session->step][1])
    return " (no reply: negotiated away)";
  return "";
}

static void
log_status (Session      *session,
            MilterStatus  status)
{
  const gchar *reply = milter_server_context_get_reply_text (session->context);

  verbose (session->tool, "[%s] -> %s%s%s%s", step_names[session->step], status_name (status),
           reply != NULL ? " " : "", reply != NULL ? reply : "", negotiated_note (session));
}

static void
session_fail (Session *session,
              GError  *error)
{
  Tool *tool = session->tool;
  Verdict verdict = g_error_matches (error, MILTER_SERVER_CONTEXT_ERROR,
                                     MILTER_SERVER_CONTEXT_ERROR_SHUTDOWN) ?
                    VERDICT_SHUTDOWN : VERDICT_ERROR;

  verbose (tool, "[%s] error: %s", step_names[session->step], error->message);
  /* A failure outside a message still uses up one, so that a dead milter
   * cannot keep the load mode going forever. */
  if (!session->in_message)
    tool->n_started++;
  record_verdict (session, verdict, step_names[session->step], NULL, error);
  g_error_free (error);
  session_end (session);
}

static void
session_advance (Session      *session,
                 MilterStatus  status,
                 GError       *error)
{
  Tool *tool = session->tool;
  const gchar *reply;

  if (error != NULL)
    {
      if (session->step == STEP_QUIT || session->step == STEP_ABORT)
        {
          /* The verdict is in; a milter that closes first is not an error
           * of the message. */
          verbose (tool, "[%s] %s", step_names[session->step], error->message);
          g_error_free (error);
          session_end (session);
          return;
        }
      session_fail (session, error);
      return;
    }

  if (session->step != STEP_CONNECTION && session->step != STEP_NEGOTIATE &&
      session->step != STEP_ABORT && session->step != STEP_QUIT)
    log_status (session, status);
  reply = milter_server_context_get_reply_text (session->context);
  if ((gint) session->step == tool->abort_after && status == MILTER_STATUS_CONTINUE)
    {
      verbose (tool, "[abort] after %s", step_names[session->step]);
      finish_message (session, VERDICT_ABORTED, NULL);
      return;
    }

  switch (session->step)
    {
    case STEP_CONNECTION:
      run_step (session, STEP_NEGOTIATE);
      return;

    case STEP_NEGOTIATE:
      {
        MilterOption *option = milter_server_context_get_option (session->context);
        MilterMacrosRequests *requests =
          milter_server_context_get_macros_requests (session->context);
        g_autofree gchar *text = milter_option_to_string (option);

        verbose (tool, "[negotiate] milter %s", text);
        if (requests != NULL && tool->verbose)
          {
            g_autofree gchar *lists = milter_macros_requests_to_string (requests);

            verbose (tool, "[negotiate] macros %s", lists);
          }
        if (!tool->load && tool->option == NULL)
          {
            tool->option = milter_option_copy (option);
            if (requests != NULL)
              tool->macros_requests = milter_macros_requests_copy (requests);
          }
        run_step (session, STEP_CONNECT);
        return;
      }

    case STEP_CONNECT:
    case STEP_HELO:
      /* Postfix ignores discard here; accept, reject and tempfail decide
       * for the whole connection, which it then closes. */
      if (status == MILTER_STATUS_ACCEPT || status == MILTER_STATUS_REJECT ||
          status == MILTER_STATUS_TEMPORARY_FAILURE)
        {
          tool->n_started++;
          record_verdict (session, verdict_from_status (status), step_names[session->step],
                          reply, NULL);
          run_step (session, STEP_QUIT);
          return;
        }
      if (session->step == STEP_CONNECT)
        run_step (session, STEP_HELO);
      else
        next_message (session);
      return;

    case STEP_ENVELOPE_FROM:
      if (status != MILTER_STATUS_CONTINUE)
        {
          finish_message (session, verdict_from_status (status), reply);
          return;
        }
      session->index = 0;
      run_step (session, STEP_ENVELOPE_RECIPIENT);
      return;

    case STEP_ENVELOPE_RECIPIENT:
      {
        Address *recipient = g_ptr_array_index (tool->recipients, session->index);

        if (status == MILTER_STATUS_REJECT || status == MILTER_STATUS_TEMPORARY_FAILURE)
          {
            /* Only this recipient is refused. */
            session->last_rejection = verdict_from_status (status);
            g_free (session->last_rejection_reply);
            session->last_rejection_reply = g_strdup (reply);
            if (!tool->load)
              {
                RejectedRecipient *rejected = g_new0 (RejectedRecipient, 1);

                rejected->address = g_strdup (recipient->address);
                rejected->verdict = session->last_rejection;
                rejected->reply = client_reply_text (reply);
                g_ptr_array_add (tool->rejected, rejected);
              }
          }
        else if (status != MILTER_STATUS_CONTINUE)
          {
            finish_message (session, verdict_from_status (status), reply);
            return;
          }
        else
          {
            session->n_accepted++;
          }
        if (++session->index < tool->recipients->len)
          {
            run_step (session, STEP_ENVELOPE_RECIPIENT);
            return;
          }
        if (session->n_accepted == 0)
          {
            /* No recipient left: the SMTP client gets the last refusal. */
            finish_message (session, session->last_rejection, session->last_rejection_reply);
            return;
          }
        run_step (session, STEP_DATA);
        return;
      }

    case STEP_DATA:
    case STEP_HEADER:
    case STEP_END_OF_HEADER:
      if (status != MILTER_STATUS_CONTINUE)
        {
          finish_message (session, verdict_from_status (status), reply);
          return;
        }
      if (session->step == STEP_DATA)
        session->index = 0;
      else if (session->step == STEP_HEADER)
        session->index++;
      if (session->step != STEP_END_OF_HEADER &&
          session->index < milter_headers_get_length (tool->headers))
        {
          run_step (session, STEP_HEADER);
          return;
        }
      if (session->step != STEP_END_OF_HEADER)
        {
          run_step (session, STEP_END_OF_HEADER);
          return;
        }
      session->index = 0;
      run_step (session, tool->body_chunks->len > 0 ? STEP_BODY : STEP_END_OF_MESSAGE);
      return;

    case STEP_BODY:
      if (status == MILTER_STATUS_SKIP)
        {
          run_step (session, STEP_END_OF_MESSAGE);
          return;
        }
      if (status != MILTER_STATUS_CONTINUE)
        {
          finish_message (session, verdict_from_status (status), reply);
          return;
        }
      if (++session->index < tool->body_chunks->len)
        run_step (session, STEP_BODY);
      else
        run_step (session, STEP_END_OF_MESSAGE);
      return;

    case STEP_END_OF_MESSAGE:
      if (tool->verbose)
        {
          GPtrArray *modifications = milter_server_context_get_modifications (session->context);

          for (guint i = 0; i < modifications->len; i++)
            {
              g_autofree gchar *text =
                milter_modification_to_string (g_ptr_array_index (modifications, i));

              verbose (tool, "[end-of-message] %s", text);
            }
        }
      finish_message (session, verdict_from_status (status), reply);
      return;

    case STEP_ABORT:
      next_message (session);
      return;

    case STEP_QUIT:
      session_end (session);
      return;

    default:
      g_assert_not_reached ();
    }
}

static void
session_start (Tool *tool)
{
  Session *session = g_new0 (Session, 1);
  MilterServerContext *context = milter_server_context_new ();
  g_autoptr(GError) error = NULL;

  session->tool = tool;
  session->context = context;
  session->message_start = g_get_monotonic_time ();
  session->claiming = TRUE;
  tool->n_sessions++;
  tool->n_connecting++;

  /* The spec was checked when the options were parsed. */
  if (!milter_server_context_set_connection_spec (context, tool->connection_spec, &error))
    g_error ("%s", error->message);
  if (tool->connect_timeout >= 0)
    milter_server_context_set_connect_timeout (context, tool->connect_timeout);
  if (tool->read_timeout >= 0)
    milter_server_context_set_read_timeout (context, tool->read_timeout);
  if (tool->write_timeout >= 0)
    milter_server_context_set_write_timeout (context, tool->write_timeout);
  if (tool->end_of_message_timeout >= 0)
    milter_server_context_set_end_of_message_timeout (context, tool->end_of_message_timeout);
  for (guint i = 0; i < tool->macros->len; i++)
    {
      MacroSetting *setting = g_ptr_array_index (tool->macros, i);

      milter_server_context_set_macro (context, setting->command, setting->name, setting->value);
    }
  if (tool->verbose)
    g_signal_connect (context, "progress", G_CALLBACK (on_progress), session);
  run_step (session, STEP_CONNECTION);
}

/* ---- output ------------------------------------------------------------- */

/* A JSON string of @size bytes, kept byte for byte: a byte that is not
 * UTF-8 becomes the lone surrogate \udcXX, as Python's "surrogateescape"
 * does (json.loads(...).encode("utf-8", "surrogateescape") gives the
 * bytes back), and NUL becomes \u0000. */
static void
json_text (GString     *out,
           const gchar *data,
           gsize        size)
{
  const gchar *end = data + size;

  g_string_append_c (out, '"');
  for (const gchar *p = data; p < end;)
    {
      guchar c = (guchar) *p;
      gunichar ch = c >= 0x80 ? g_utf8_get_char_validated (p, end - p) : c;

      if (c >= 0x80 && ch != (gunichar) -1 && ch != (gunichar) -2)
        {
          const gchar *next = g_utf8_next_char (p);

          g_string_append_len (out, p, next - p);
          p = next;
          continue;
        }
      switch (c)
        {
        case '"': g_string_append (out, "\\\""); break;
        case '\\': g_string_append (out, "\\\\"); break;
        case '\n': g_string_append (out, "\\n"); break;
        case '\r': g_string_append (out, "\\r"); break;
        case '\t': g_string_append (out, "\\t"); break;
        default:
          if (c >= 0x80)
            g_string_append_printf (out, "\\udc%02x", c);
          else if (c < 0x20)
            g_string_append_printf (out, "\\u%04x", c);
          else
            g_string_append_c (out, (gchar) c);
        }
      p++;
    }
  g_string_append_c (out, '"');
}

static void
json_string (GString     *out,
             const gchar *text)
{
  if (text == NULL)
    g_string_append (out, "null");
  else
    json_text (out, text, strlen (text));
}

static void
json_bytes (GString *out,
            GBytes  *bytes)
{
  gsize size;
  const gchar *data = g_bytes_get_data (bytes, &size);

  json_text (out, data, size);
}

static void
json_strv (GString             *out,
           const gchar * const *strv)
{
  g_string_append_c (out, '[');
  for (guint i = 0; strv != NULL && strv[i] != NULL; i++)
    {
      if (i > 0)
        g_string_append_c (out, ',');
      json_string (out, strv[i]);
    }
  g_string_append_c (out, ']');
}

static const gchar *
modification_type_name (MilterModificationType type)
{
  GEnumClass *klass = g_type_class_ref (MILTER_TYPE_MODIFICATION_TYPE);
  GEnumValue *value = g_enum_get_value (klass, (gint) type);
  const gchar *nick = value != NULL ? value->value_nick : "unknown";

  g_type_class_unref (klass);
  return nick;
}

static void
json_modification (GString            *out,
                   MilterModification *modification)
{
  MilterModificationType type = milter_modification_get_modification_type (modification);

  g_string_append (out, "{\"type\":");
  json_string (out, modification_type_name (type));
  switch (type)
    {
    case MILTER_MODIFICATION_TYPE_ADD_HEADER:
    case MILTER_MODIFICATION_TYPE_INSERT_HEADER:
    case MILTER_MODIFICATION_TYPE_CHANGE_HEADER:
    case MILTER_MODIFICATION_TYPE_DELETE_HEADER:
      g_string_append (out, ",\"name\":");
      json_string (out, milter_modification_get_name (modification));
      g_string_append (out, ",\"value\":");
      json_string (out, milter_modification_get_value (modification));
      if (type != MILTER_MODIFICATION_TYPE_ADD_HEADER)
        g_string_append_printf (out, ",\"index\":%u", milter_modification_get_index (modification));
      break;
    case MILTER_MODIFICATION_TYPE_CHANGE_FROM:
    case MILTER_MODIFICATION_TYPE_ADD_RECIPIENT:
    case MILTER_MODIFICATION_TYPE_DELETE_RECIPIENT:
      g_string_append (out, ",\"address\":");
      json_string (out, milter_modification_get_address (modification));
      if (type != MILTER_MODIFICATION_TYPE_DELETE_RECIPIENT)
        {
          g_string_append (out, ",\"parameters\":");
          json_string (out, milter_modification_get_parameters (modification));
        }
      break;
    case MILTER_MODIFICATION_TYPE_REPLACE_BODY:
      g_string_append (out, ",\"body\":");
      json_bytes (out, milter_modification_get_body (modification));
      break;
    case MILTER_MODIFICATION_TYPE_QUARANTINE:
      g_string_append (out, ",\"reason\":");
      json_string (out, milter_modification_get_reason (modification));
      break;
    default:
      break;
    }
  g_string_append_c (out, '}');
}

/* The message as the milter modified it. */
static MilterMessage *
modified_message (Tool    *tool,
                  GError **error)
{
  g_autoptr(MilterMessage) message = milter_message_new ();
  MilterHeaders *headers = milter_message_get_headers (message);
  GByteArray *body = g_byte_array_new ();

  milter_message_set_from (message, tool->from.address,
                           (const gchar * const *) tool->from.parameters);
  for (guint i = 0; i < tool->recipients->len; i++)
    {
      Address *recipient = g_ptr_array_index (tool->recipients, i);
      gboolean rejected = FALSE;

      for (guint j = 0; j < tool->rejected->len; j++)
        {
          RejectedRecipient *refused = g_ptr_array_index (tool->rejected, j);

          rejected |= strcmp (refused->address, recipient->address) == 0;
        }
      if (!rejected)
        milter_message_add_recipient (message, recipient->address,
                                      (const gchar * const *) recipient->parameters);
    }
  for (guint i = 0; i < milter_headers_get_length (tool->headers); i++)
    milter_headers_add (headers, milter_headers_get_name (tool->headers, i),
                        milter_headers_get_value (tool->headers, i));
  for (guint i = 0; i < tool->body_chunks->len; i++)
    {
      gsize size;
      gconstpointer data = g_bytes_get_data (g_ptr_array_index (tool->body_chunks, i), &size);

      g_byte_array_append (body, data, (guint) size);
    }
  {
    g_autoptr(GBytes) bytes = g_byte_array_free_to_bytes (body);

    milter_message_set_body (message, bytes);
  }
  if (tool->modifications != NULL &&
      !milter_message_apply_modifications (message, tool->modifications, error))
    return NULL;
  return g_steal_pointer (&message);
}

static gchar *
address_text (const gchar         *address,
              const gchar * const *parameters)
{
  g_autofree gchar *joined = parameters != NULL ? g_strjoinv (" ", (gchar **) parameters) : NULL;

  if (joined == NULL || *joined == '\0')
    return g_strdup (address);
  return g_strdup_printf ("%s %s", address, joined);
}

/* The reason of the last quarantine request, or NULL. */
static const gchar *
quarantine_reason (Tool *tool)
{
  const gchar *reason = NULL;

  for (guint i = 0; tool->modifications != NULL && i < tool->modifications->len; i++)
    {
      MilterModification *modification = g_ptr_array_index (tool->modifications, i);

      if (milter_modification_get_modification_type (modification) ==
          MILTER_MODIFICATION_TYPE_QUARANTINE)
        reason = milter_modification_get_reason (modification);
    }
  return reason;
}

static gint
print_single_result (Tool *tool)
{
  g_autoptr(MilterMessage) message = NULL;
  g_autoptr(GError) apply_error = NULL;
  gint status = verdict_exit_statuses[tool->verdict];
  GString *out = g_string_new (NULL);

  if (tool->output_message && tool->verdict != VERDICT_ERROR)
    {
      message = modified_message (tool, &apply_error);
      if (message == NULL)
        status = EXIT_ERROR;
    }

  if (tool->json)
    {
      g_string_append (out, "{\"status\":");
      json_string (out, verdict_names[tool->verdict]);
      g_string_append (out, ",\"stage\":");
      json_string (out, tool->stage);
      g_string_append (out, ",\"reply\":");
      json_string (out, tool->reply);
      g_string_append (out, ",\"error\":");
      json_string (out, tool->error != NULL ? tool->error->message :
                        apply_error != NULL ? apply_error->message : NULL);
      g_string_append (out, ",\"negotiated\":");
      if (tool->option != NULL)
        {
          g_string_append_printf (out, "{\"version\":%u,\"action\":%u,\"step\":%u,\"macros\":",
                                  milter_option_get_version (tool->option),
                                  milter_option_get_action (tool->option),
                                  milter_option_get_step (tool->option));
          if (tool->macros_requests != NULL)
            {
              g_autofree gchar *lists = milter_macros_requests_to_string (tool->macros_requests);

              json_string (out, lists);
            }
          else
            {
              g_string_append (out, "null");
            }
          g_string_append_c (out, '}');
        }
      else
        {
          g_string_append (out, "null");
        }
      g_string_append (out, ",\"rejected-recipients\":[");
      for (guint i = 0; i < tool->rejected->len; i++)
        {
          RejectedRecipient *rejected = g_ptr_array_index (tool->rejected, i);

          g_string_append_printf (out, "%s{\"address\":", i > 0 ? "," : "");
          json_string (out, rejected->address);
          g_string_append (out, ",\"status\":");
          json_string (out, verdict_names[rejected->verdict]);
          g_string_append (out, ",\"reply\":");
          json_string (out, rejected->reply);
          g_string_append_c (out, '}');
        }
      g_string_append (out, "],\"modifications\":[");
      for (guint i = 0; tool->modifications != NULL && i < tool->modifications->len; i++)
        {
          if (i > 0)
            g_string_append_c (out, ',');
          json_modification (out, g_ptr_array_index (tool->modifications, i));
        }
      g_string_append (out, "],\"quarantine-reason\":");
      json_string (out, quarantine_reason (tool));
      g_string_append_printf (out, ",\"elapsed-time\":%.6f", tool->elapsed);
      if (message != NULL)
        {
          g_autoptr(GBytes) data = milter_message_to_bytes (message);

          g_string_append (out, ",\"message\":{\"from\":");
          json_string (out, milter_message_get_from (message));
          g_string_append (out, ",\"from-parameters\":");
          json_strv (out, milter_message_get_from_parameters (message));
          g_string_append (out, ",\"recipients\":[");
          for (guint i = 0; i < milter_message_get_n_recipients (message); i++)
            {
              g_string_append_printf (out, "%s{\"address\":", i > 0 ? "," : "");
              json_string (out, milter_message_get_recipients (message)[i]);
              g_string_append (out, ",\"parameters\":");
              json_strv (out, milter_message_get_recipient_parameters (message, i));
              g_string_append_c (out, '}');
            }
          g_string_append (out, "],\"quarantine-reason\":");
          json_string (out, milter_message_get_quarantine_reason (message));
          g_string_append (out, ",\"data\":");
          json_bytes (out, data);
          g_string_append_c (out, '}');
        }
      g_string_append (out, "}\n");
      fwrite (out->str, 1, out->len, stdout);
      g_string_free (out, TRUE);
      return status;
    }

  g_string_append_printf (out, "status: %s\n", verdict_names[tool->verdict]);
  if (tool->stage != NULL && strcmp (tool->stage, "end-of-message") != 0)
    g_string_append_printf (out, "stage: %s\n", tool->stage);
  if (tool->reply != NULL)
    g_string_append_printf (out, "reply: %s\n", tool->reply);
  if (tool->error != NULL)
    g_string_append_printf (out, "error: %s\n", tool->error->message);
  for (guint i = 0; i < tool->rejected->len; i++)
    {
      RejectedRecipient *rejected = g_ptr_array_index (tool->rejected, i);

      g_string_append_printf (out, "rejected-recipient: %s %s%s%s\n", rejected->address,
                              verdict_names[rejected->verdict],
                              rejected->reply != NULL ? " " : "",
                              rejected->reply != NULL ? rejected->reply : "");
    }
  for (guint i = 0; tool->modifications != NULL && i < tool->modifications->len; i++)
    {
      MilterModification *modification = g_ptr_array_index (tool->modifications, i);
      g_autofree gchar *text = milter_modification_to_string (modification);

      g_string_append_printf (out, "%s\n", text);
    }
  if (quarantine_reason (tool) != NULL)
    g_string_append_printf (out, "quarantine-reason: %s\n", quarantine_reason (tool));
  g_string_append_printf (out, "elapsed-time: %.6f s\n", tool->elapsed);
  if (apply_error != NULL)
    g_string_append_printf (out, "error: %s\n", apply_error->message);
  if (message != NULL)
    {
      g_autoptr(GBytes) data = milter_message_to_bytes (message);
      g_autofree gchar *from = address_text (milter_message_get_from (message),
                                             milter_message_get_from_parameters (message));

      g_string_append_printf (out, "envelope-from: %s\n", from);
      for (guint i = 0; i < milter_message_get_n_recipients (message); i++)
        {
          g_autofree gchar *recipient =
            address_text (milter_message_get_recipients (message)[i],
                          milter_message_get_recipient_parameters (message, i));

          g_string_append_printf (out, "envelope-recipient: %s\n", recipient);
        }
      g_string_append (out, "message:\n");
      g_string_append_len (out, g_bytes_get_data (data, NULL), (gssize) g_bytes_get_size (data));
    }
  fwrite (out->str, 1, out->len, stdout);
  g_string_free (out, TRUE);
  return status;
}

static gint
compare_doubles (gconstpointer a,
                 gconstpointer b)
{
  gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;

  return x < y ? -1 : x > y ? 1 : 0;
}

/* The nearest-rank percentile of sorted @values. */
static gdouble
percentile (GArray  *values,
            gdouble  p)
{
  gsize rank;

  if (values->len == 0)
    return 0;
  rank = (gsize) ceil (p / 100.0 * values->len);
  rank = CLAMP (rank, 1, values->len);
  return g_array_index (values, gdouble, rank - 1);
}

static gint
print_load_result (Tool *tool)
{
  gdouble elapsed = (g_get_monotonic_time () - tool->start_time) / (gdouble) G_USEC_PER_SEC;
  guint n_errors = tool->verdict_counts[VERDICT_ERROR] + tool->verdict_counts[VERDICT_SHUTDOWN];
  gdouble rate = elapsed > 0 ? tool->n_finished / elapsed : 0;
  gdouble p50, p99;
  GString *out = g_string_new (NULL);

  g_array_sort (tool->latencies, compare_doubles);
  p50 = percentile (tool->latencies, 50) * 1000;
  p99 = percentile (tool->latencies, 99) * 1000;

  if (tool->json)
    {
      g_string_append_printf (out, "{\"messages\":%u,\"errors\":%u,\"concurrency\":%d,"
                              "\"messages-per-connection\":%d,\"elapsed-time\":%.6f,"
                              "\"messages-per-second\":%.1f,\"latency-p50-ms\":%.3f,"
                              "\"latency-p99-ms\":%.3f,\"statuses\":{",
                              tool->n_finished, n_errors, tool->concurrency,
                              tool->messages_per_connection, elapsed, rate, p50, p99);
      for (guint i = 0; i < N_VERDICTS; i++)
        g_string_append_printf (out, "%s\"%s\":%u", i > 0 ? "," : "", verdict_names[i],
                                tool->verdict_counts[i]);
      g_string_append (out, "},\"first-error\":");
      json_string (out, tool->first_error);
      g_string_append (out, "}\n");
    }
  else
    {
      g_string_append_printf (out, "messages: %u\n", tool->n_finished);
      g_string_append_printf (out, "errors: %u\n", n_errors);
      g_string_append_printf (out, "concurrency: %d\n", tool->concurrency);
      g_string_append_printf (out, "messages-per-connection: %d\n",
                              tool->messages_per_connection);
      g_string_append_printf (out, "elapsed-time: %.3f s\n", elapsed);
      g_string_append_printf (out, "messages/s: %.1f\n", rate);
      g_string_append_printf (out, "latency-p50: %.3f ms\n", p50);
      g_string_append_printf (out, "latency-p99: %.3f ms\n", p99);
      g_string_append (out, "statuses:");
      for (guint i = 0; i < N_VERDICTS; i++)
        if (tool->verdict_counts[i] > 0)
          g_string_append_printf (out, " %s=%u", verdict_names[i], tool->verdict_counts[i]);
      g_string_append_c (out, '\n');
      if (tool->first_error != NULL)
        g_string_append_printf (out, "first-error: %s\n", tool->first_error);
    }
  fwrite (out->str, 1, out->len, stdout);
  g_string_free (out, TRUE);
  return n_errors == 0 ? EXIT_PASS : EXIT_ERROR;
}

/* ---- main --------------------------------------------------------------- */

static void
tool_free (Tool *tool)
{
  g_free (tool->connection_spec);
  g_free (tool->connect_host);
  g_clear_object (&tool->connect_address);
  g_free (tool->helo_fqdn);
  address_clear (&tool->from);
  g_ptr_array_unref (tool->recipients);
  milter_headers_unref (tool->headers);
  g_ptr_array_unref (tool->body_chunks);
  g_ptr_array_unref (tool->macros);
  g_clear_pointer (&tool->loop, g_main_loop_unref);
  g_array_unref (tool->latencies);
  g_free (tool->first_error);
  g_free (tool->reply);
  g_clear_error (&tool->error);
  g_ptr_array_unref (tool->rejected);
  g_clear_pointer (&tool->modifications, g_ptr_array_unref);
  g_clear_pointer (&tool->option, milter_option_free);
  g_clear_pointer (&tool->macros_requests, milter_macros_requests_free);
  g_free (tool);
}

int
main (int    argc,
      char **argv)
{
  Tool *tool = g_new0 (Tool, 1);
  g_autoptr(GError) error = NULL;
  gint status;

  setlocale (LC_ALL, "");
  /* Writing to a milter that went away must not kill the process. */
  signal (SIGPIPE, SIG_IGN);

  tool->negotiate_version = 6;
  tool->abort_after = -1;
  tool->connect_timeout = tool->read_timeout = -1;
  tool->write_timeout = tool->end_of_message_timeout = -1;
  tool->recipients = g_ptr_array_new_with_free_func (address_free);
  tool->headers = milter_headers_new ();
  tool->body_chunks = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  tool->macros = g_ptr_array_new_with_free_func (macro_setting_free);
  tool->latencies = g_array_new (FALSE, FALSE, sizeof (gdouble));
  tool->rejected = g_ptr_array_new_with_free_func (rejected_recipient_free);
  tool->verdict = VERDICT_ERROR;
  the_tool = tool;

  if (!parse_options (tool, &argc, &argv, &error))
    {
      g_printerr ("milter-test-server: %s\n", error->message);
      g_printerr ("Try “%s --help” for more information.\n", g_get_prgname ());
      tool_free (tool);
      return EXIT_ERROR;
    }
  if (tool->connect_host == NULL)
    tool->connect_host = g_strdup ("client.example.com");
  if (tool->helo_fqdn == NULL)
    tool->helo_fqdn = g_strdup ("client.example.com");

  tool->loop = g_main_loop_new (NULL, FALSE);
  tool->start_time = g_get_monotonic_time ();
  for (gint i = 0; i < tool->concurrency && i < tool->n_messages; i++)
    session_start (tool);
  g_main_loop_run (tool->loop);

  status = tool->load ? print_load_result (tool) : print_single_result (tool);
  fflush (stdout);
  tool_free (tool);
  return status;
}
