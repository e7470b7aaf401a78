/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <milter/milter.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* milter-test-client: a milter that prints every event it receives, with
 * its arguments and macros, and answers as told on the command line. It
 * serves people debugging their MTA setup and tests that need a fixture. */

typedef struct
{
  MilterStatus status;   /* DEFAULT: no instruction */
  guint delay_ms;        /* 0: answer at once */
} StepRule;

/* The steps a reply can be chosen for, by signal name. */
static const gchar *step_names[] = {
  "negotiate", "connect", "helo", "envelope-from", "envelope-recipient", "data", "unknown",
  "header", "end-of-header", "body", "end-of-message", "abort",
};
#define N_STEPS G_N_ELEMENTS (step_names)

static StepRule rules[N_STEPS];
static gchar *reply_code;       /* --reply-code as given */
static guint reply_number;      /* …split into code, extended code and text */
static gchar *reply_extended;
static gchar *reply_text;
static gchar **added_headers;
static gboolean quiet;
static guint session_counter;

typedef struct
{
  guint id;
} Session;

static gint
step_index (const gchar *name)
{
  for (guint i = 0; i < N_STEPS; i++)
    if (g_str_equal (step_names[i], name))
      return (gint) i;
  return -1;
}

static void G_GNUC_PRINTF (2, 3)
say (MilterClientContext *context,
     const gchar         *format,
     ...)
{
  Session *session = milter_client_context_get_private_data (context);
  g_autofree gchar *text = NULL;
  va_list args;

  if (quiet)
    return;
  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  g_print ("[%u] %s\n", session != NULL ? session->id : 0, text);
}

/* Printable text: bytes outside ASCII and control characters escaped. */
static gchar *
printable (const gchar *data,
           gsize        size)
{
  GString *text = g_string_sized_new (size);

  for (gsize i = 0; i < size; i++)
    {
      guchar c = (guchar) data[i];

      if (c == '\n')
        g_string_append (text, "\\n");
      else if (c == '\r')
        g_string_append (text, "\\r");
      else if (c < 0x20 || c >= 0x7f)
        g_string_append_printf (text, "\\x%02x", c);
      else
        g_string_append_c (text, (gchar) c);
    }
  return g_string_free (text, FALSE);
}

static gboolean
reply_later (gpointer user_data)
{
  MilterClientContext *context = user_data;
  MilterStatus status = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (context), "delayed-status"));

  say (context, "  (replying after the delay)");
  milter_client_context_reply (context, status);
  g_object_unref (context);
  return G_SOURCE_REMOVE;
}

/* The status the command line asked for at @step, deferring the reply if
 * a delay was asked for. */
static MilterStatus
answer (MilterClientContext *context,
        const gchar         *step)
{
  StepRule *rule = &rules[step_index (step)];
  MilterStatus status = rule->status;

  if (reply_number != 0 &&
      (status == MILTER_STATUS_REJECT || status == MILTER_STATUS_TEMPORARY_FAILURE))
    milter_client_context_set_reply (context, reply_number, reply_extended, reply_text, NULL);
  if (rule->delay_ms == 0)
    return status;
  {
    GSource *source = g_timeout_source_new (rule->delay_ms);

    g_object_set_data (G_OBJECT (context), "delayed-status", GINT_TO_POINTER (status));
    g_source_set_callback (source, reply_later, g_object_ref (context), NULL);
    g_source_attach (source, g_main_context_get_thread_default ());
    g_source_unref (source);
  }
  say (context, "  (deferring the reply for %u ms)", rule->delay_ms);
  return MILTER_STATUS_PROGRESS;
}

static MilterStatus
on_negotiate (MilterClientContext  *context,
              MilterOption         *option,
              MilterMacrosRequests *requests,
              gpointer              user_data)
{
  g_autofree gchar *offer = milter_option_to_string (option);

  say (context, "negotiate: %s", offer);
  return answer (context, "negotiate");
}

static void
on_define_macro (MilterClientContext *context,
                 MilterCommand        command,
                 gpointer             user_data)
{
  g_autoptr(GHashTable) macros = milter_client_context_get_command_macros (context, command);
  g_autoptr(GList) names = g_list_sort (g_hash_table_get_keys (macros), (GCompareFunc) strcmp);
  GString *text = g_string_new (NULL);

  for (GList *l = names; l != NULL; l = l->next)
    {
      g_autofree gchar *value = NULL;
      const gchar *raw = g_hash_table_lookup (macros, l->data);

      value = printable (raw, strlen (raw));
      g_string_append_printf (text, " %s=%s", (const gchar *) l->data, value);
    }
  say (context, "define-macro: %c:%s", (gchar) command, text->str);
  g_string_free (text, TRUE);
}

static MilterStatus
on_connect (MilterClientContext *context,
            const gchar         *host,
            GSocketAddress      *address,
            gpointer             user_data)
{
  g_autofree gchar *spec = address != NULL ? milter_connection_spec_format (address, NULL) : NULL;
  g_autofree gchar *shown = printable (host, strlen (host));

  say (context, "connect: %s %s", shown, spec != NULL ? spec : "(unknown address)");
  return answer (context, "connect");
}

static MilterStatus
on_string_event (MilterClientContext *context,
                 const gchar         *value,
                 gpointer             user_data)
{
  const gchar *step = user_data;
  const gchar * const *parameters = milter_client_context_get_esmtp_parameters (context);
  g_autofree gchar *joined = NULL;
  g_autofree gchar *shown = printable (value, strlen (value));

  if ((g_str_equal (step, "envelope-from") || g_str_equal (step, "envelope-recipient")) &&
      parameters != NULL && parameters[0] != NULL)
    joined = g_strjoinv (" ", (gchar **) parameters);
  say (context, "%s: %s%s%s", step, shown, joined != NULL ? " " : "", joined != NULL ? joined : "");
  return answer (context, step);
}

static MilterStatus
on_plain_event (MilterClientContext *context,
                gpointer             user_data)
{
  const gchar *step = user_data;

  say (context, "%s", step);
  return answer (context, step);
}

static MilterStatus
on_header (MilterClientContext *context,
           const gchar         *name,
           const gchar         *value,
           gpointer             user_data)
{
  g_autofree gchar *shown = printable (value, strlen (value));

  say (context, "header: %s: %s", name, shown);
  return answer (context, "header");
}

static MilterStatus
on_body (MilterClientContext *context,
         GBytes              *chunk,
         gpointer             user_data)
{
  gsize size;
  const gchar *data = g_bytes_get_data (chunk, &size);
  g_autofree gchar *shown = printable (data, MIN (size, 60));

  say (context, "body: %" G_GSIZE_FORMAT " bytes: %s%s", size, shown, size > 60 ? "…" : "");
  return answer (context, "body");
}

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  say (context, "end-of-message%s", chunk != NULL ? " (with a last chunk)" : "");
  for (guint i = 0; added_headers != NULL && added_headers[i] != NULL; i++)
    {
      g_auto(GStrv) parts = g_strsplit (added_headers[i], ":", 2);
      g_autoptr(GError) error = NULL;

      if (parts[1] == NULL ||
          !milter_client_context_add_header (context, g_strstrip (parts[0]), g_strchug (parts[1]), &error))
        g_printerr ("milter-test-client: cannot add “%s”: %s\n", added_headers[i],
                    error != NULL ? error->message : "expected NAME:VALUE");
    }
  return answer (context, "end-of-message");
}

static MilterStatus
on_abort (MilterClientContext     *context,
          MilterClientContextState state,
          gpointer                 user_data)
{
  say (context, "abort");
  return MILTER_STATUS_DEFAULT;
}

static void
on_message_processed (MilterClientContext *context,
                      MilterMessageResult *result,
                      gpointer             user_data)
{
  GEnumClass *statuses = g_type_class_ref (MILTER_TYPE_STATUS);

  say (context, "message-processed: %s, %" G_GUINT64_FORMAT " body bytes, %.3f s",
       g_enum_get_value (statuses, milter_message_result_get_status (result))->value_nick,
       milter_message_result_get_body_size (result),
       milter_message_result_get_elapsed_time (result));
  g_type_class_unref (statuses);
}

static void
on_finished (MilterClientContext *context,
             gpointer             user_data)
{
  say (context, "finished");
}

static void
on_error (MilterClientContext *context,
          GError              *error,
          gpointer             user_data)
{
  say (context, "error: %s", error->message);
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  Session *session = g_new0 (Session, 1);

  session->id = ++session_counter;
  milter_client_context_set_private_data (context, session, g_free);
  g_signal_connect (context, "negotiate", G_CALLBACK (on_negotiate), NULL);
  g_signal_connect (context, "define-macro", G_CALLBACK (on_define_macro), NULL);
  g_signal_connect (context, "connect", G_CALLBACK (on_connect), NULL);
  g_signal_connect (context, "helo", G_CALLBACK (on_string_event), (gpointer) "helo");
  g_signal_connect (context, "envelope-from", G_CALLBACK (on_string_event), (gpointer) "envelope-from");
  g_signal_connect (context, "envelope-recipient", G_CALLBACK (on_string_event),
                    (gpointer) "envelope-recipient");
  g_signal_connect (context, "data", G_CALLBACK (on_plain_event), (gpointer) "data");
  g_signal_connect (context, "unknown", G_CALLBACK (on_string_event), (gpointer) "unknown");
  g_signal_connect (context, "header", G_CALLBACK (on_header), NULL);
  g_signal_connect (context, "end-of-header", G_CALLBACK (on_plain_event), (gpointer) "end-of-header");
  g_signal_connect (context, "body-bytes", G_CALLBACK (on_body), NULL);
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), NULL);
  g_signal_connect (context, "abort", G_CALLBACK (on_abort), NULL);
  g_signal_connect (context, "message-processed", G_CALLBACK (on_message_processed), NULL);
  g_signal_connect (context, "finished", G_CALLBACK (on_finished), NULL);
  g_signal_connect (context, "error", G_CALLBACK (on_error), NULL);
}

static void
on_listen_started (MilterClient   *client,
                   GSocketAddress *address,
                   gpointer        user_data)
{
  g_autofree gchar *spec = milter_connection_spec_format (address, NULL);

  if (!quiet)
    g_print ("listening on %s\n", spec != NULL ? spec : "?");
}

static gboolean
parse_step_rule (const gchar  *option,
                 const gchar  *value,
                 gboolean      is_delay,
                 GError      **error)
{
  g_auto(GStrv) parts = g_strsplit (value, "=", 2);
  gint step = parts[1] != NULL ? step_index (parts[0]) : -1;

  if (step < 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "%s: expected STEP=%s with STEP one of connect, helo, envelope-from, "
                   "envelope-recipient, data, unknown, header, end-of-header, body, "
                   "end-of-message, negotiate", option, is_delay ? "MS" : "STATUS");
      return FALSE;
    }
  if (is_delay)
    {
      guint64 ms;

      if (!g_ascii_string_to_unsigned (parts[1], 10, 1, 3600 * 1000, &ms, error))
        return FALSE;
      rules[step].delay_ms = (guint) ms;
    }
  else
    {
      GEnumClass *statuses = g_type_class_ref (MILTER_TYPE_STATUS);
      GEnumValue *status = g_enum_get_value_by_nick (statuses, parts[1]);

      if (status == NULL || status->value == MILTER_STATUS_PROGRESS)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "%s: unknown status “%s” (continue, reject, temporary-failure, accept, "
                       "discard, skip, no-reply, all-options)", option, parts[1]);
          g_type_class_unref (statuses);
          return FALSE;
        }
      rules[step].status = status->value;
      g_type_class_unref (statuses);
    }
  return TRUE;
}

static gboolean
on_reply_option (const gchar  *option,
                 const gchar  *value,
                 gpointer      data,
                 GError      **error)
{
  return parse_step_rule (option, value, FALSE, error);
}

static gboolean
on_delay_option (const gchar  *option,
                 const gchar  *value,
                 gpointer      data,
                 GError      **error)
{
  return parse_step_rule (option, value, TRUE, error);
}

/* "554 5.7.1 No thanks" or "451 Try later": the code, an optional
 * extended code, the text; checked as the context will check it. */
static gboolean
parse_reply_code (const gchar  *text,
                  GError      **error)
{
  g_auto(GStrv) parts = g_strsplit (text, " ", 2);
  g_autofree gchar *formatted = NULL;
  const gchar *rest = parts[1];

  reply_number = (guint) g_ascii_strtoull (parts[0], NULL, 10);
  if (rest != NULL && g_ascii_isdigit (rest[0]) && rest[1] == '.')
    {
      const gchar *space = strchr (rest, ' ');

      reply_extended = space != NULL ? g_strndup (rest, (gsize) (space - rest)) : g_strdup (rest);
      rest = space != NULL ? space + 1 : NULL;
    }
  reply_text = g_strdup (rest);
  formatted = milter_reply_code_format (reply_number, reply_extended, reply_text, error);
  return formatted != NULL;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GOptionContext) options = g_option_context_new ("- print what an MTA sends to a milter");
  g_autoptr(GError) error = NULL;
  GOptionEntry entries[] = {
    { "reply", 0, 0, G_OPTION_ARG_CALLBACK, on_reply_option,
      "Answer STATUS at STEP (e.g. helo=reject, body=skip); repeatable", "STEP=STATUS" },
    { "reply-code", 0, 0, G_OPTION_ARG_STRING, &reply_code,
      "The SMTP reply for a reject or temporary failure, e.g. \"554 5.7.1 No thanks\"", "REPLY" },
    { "delay", 0, 0, G_OPTION_ARG_CALLBACK, on_delay_option,
      "Defer the reply at STEP by MS milliseconds (PROGRESS); repeatable", "STEP=MS" },
    { "add-header", 0, 0, G_OPTION_ARG_STRING_ARRAY, &added_headers,
      "Add a header at end-of-message; repeatable", "NAME:VALUE" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "Print nothing", NULL },
    G_OPTION_ENTRY_NULL
  };

  setlocale (LC_ALL, "");
  g_option_context_add_main_entries (options, entries, NULL);
  g_option_context_add_group (options, milter_client_get_option_group (client));
  g_option_context_set_description (options,
    "Serves as a milter: prints every event an MTA sends, with its arguments and\n"
    "macros, and answers continue unless told otherwise. Every handler is\n"
    "connected, so the MTA is asked to send everything.\n\n"
    "Example: milter-test-client -s unix:/tmp/test.sock --reply envelope-recipient=reject \\\n"
    "           --reply-code \"550 5.1.1 No such user\" --add-header \"X-Test: yes\"");
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("milter-test-client: %s\n", error->message);
      return 2;
    }
  if (reply_code != NULL && !parse_reply_code (reply_code, &error))
    {
      g_printerr ("milter-test-client: --reply-code: %s\n", error->message);
      return 2;
    }
  /* Tests read the output as it comes. */
  setvbuf (stdout, NULL, _IOLBF, 0);

  g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established), NULL);
  g_signal_connect (client, "listen-started", G_CALLBACK (on_listen_started), NULL);
  if (!milter_client_run (client, &error))
    {
      g_printerr ("milter-test-client: %s\n", error->message);
      return 1;
    }
  return 0;
}
