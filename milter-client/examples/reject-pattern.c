/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: run --help */
/* reject-pattern: rejects messages whose Subject or body matches a regular
 * expression, with a custom SMTP reply.
 *
 *   reject-pattern -s unix:/run/reject.sock --pattern '(?i)lottery|viagra'
 */
#include <milter/milter.h>

/* The body kept per message is capped: a pattern is looked for in the
 * first MAX_BODY bytes only. */
#define MAX_BODY (1024 * 1024)

static GRegex *pattern;

typedef struct
{
  GByteArray *body;
  gboolean matched;
} Message;

static void
message_free (gpointer data)
{
  Message *message = data;

  g_byte_array_unref (message->body);
  g_free (message);
}

/* Per-message state lives in the private data and is replaced at each
 * MAIL FROM; the context frees it when the connection ends. */
static Message *
current_message (MilterClientContext *context)
{
  return milter_client_context_get_private_data (context);
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
on_header (MilterClientContext *context,
           const gchar         *name,
           const gchar         *value,
           gpointer             user_data)
{
  if (g_ascii_strcasecmp (name, "Subject") == 0 && g_regex_match (pattern, value, 0, NULL))
    current_message (context)->matched = TRUE;
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_body (MilterClientContext *context,
         GBytes              *chunk,
         gpointer             user_data)
{
  Message *message = current_message (context);
  gsize size;
  const guint8 *data = g_bytes_get_data (chunk, &size);

  size = MIN (size, MAX_BODY - message->body->len);
  g_byte_array_append (message->body, data, (guint) size);
  /* Nothing more to learn: ask the MTA to skip the rest of the body. */
  return message->body->len >= MAX_BODY ? MILTER_STATUS_SKIP : MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  Message *message = current_message (context);
  g_autoptr(GError) error = NULL;

  if (!message->matched)
    message->matched = g_regex_match_full (pattern, (const gchar *) message->body->data,
                                           message->body->len, 0, 0, NULL, NULL);
  if (!message->matched)
    return MILTER_STATUS_CONTINUE;
  /* The reply is used by the next REJECT (its class matches). */
  if (!milter_client_context_set_reply (context, 550, "5.7.1",
                                        "Message rejected: it matches a blocked pattern", &error))
    g_warning ("%s", error->message);
  return MILTER_STATUS_REJECT;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  g_signal_connect (context, "envelope-from", G_CALLBACK (on_envelope_from), NULL);
  g_signal_connect (context, "header", G_CALLBACK (on_header), NULL);
  g_signal_connect (context, "body-bytes", G_CALLBACK (on_body), NULL);
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), NULL);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_autoptr(GOptionContext) options = g_option_context_new ("- reject messages matching a pattern");
  g_autoptr(GError) error = NULL;
  g_autofree gchar *expression = NULL;
  GOptionEntry entries[] = {
    { "pattern", 'p', 0, G_OPTION_ARG_STRING, &expression,
      "A regular expression (PCRE) looked for in the Subject and the body", "REGEX" },
    G_OPTION_ENTRY_NULL
  };

  g_option_context_add_main_entries (options, entries, NULL);
  g_option_context_add_group (options, milter_client_get_option_group (client));
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("reject-pattern: %s\n", error->message);
      return 2;
    }
  if (expression == NULL)
    {
      g_printerr ("reject-pattern: --pattern is required\n");
      return 2;
    }
  /* RAW: the body is bytes, not necessarily UTF-8. */
  pattern = g_regex_new (expression, G_REGEX_RAW | G_REGEX_MULTILINE, 0, &error);
  if (pattern == NULL)
    {
      g_printerr ("reject-pattern: %s\n", error->message);
      return 2;
    }
  g_signal_connect (client, "connection-established", G_CALLBACK (on_connection_established), NULL);
  if (!milter_client_run (client, &error))
    {
      g_printerr ("reject-pattern: %s\n", error->message);
      return 1;
    }
  g_regex_unref (pattern);
  return 0;
}
