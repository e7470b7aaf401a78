/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: filter -h "Subject: hello" -h "X-Internal-Route: a" -h "To: b@example.org" -h "X-Internal-Route: c" --output-message => result["status"] == "pass" and [(m["type"], m.get("name"), m.get("index")) for m in result["modifications"]] == [("change-header", "Subject", 1), ("delete-header", "X-Internal-Route", 2), ("delete-header", "X-Internal-Route", 1), ("add-header", "X-Origin", None), ("add-recipient", None, None)] */
/* guide-check: filter -h "Subject: hello" -h "X-Internal-Route: a" -h "To: b@example.org" -h "X-Internal-Route: c" --output-message => result["message"]["data"].startswith("Subject: [EXTERNAL] hello\r\nTo: b@example.org\r\nX-Origin: external\r\n\r\n") and result["message"]["recipients"][-1] == {"address": "<archive@example.com>", "parameters": ["NOTIFY=NEVER"]} */
/* guide-check: filter -h "Subject: [EXTERNAL] hi" => [m["type"] for m in result["modifications"]] == ["add-header", "add-recipient"] */
/* modify-tag: marks mail from outside. It tags the Subject, adds a header,
 * removes the X-Internal-Route headers that outsiders must not set, and
 * sends a blind copy of every message to an archive. */
#include <milter/milter.h>

#define TAG "[EXTERNAL] "
#define ARCHIVE "<archive@example.com>"

typedef struct
{
  gchar *subject;  /* the first Subject's value, or NULL */
  guint n_routes;  /* how many X-Internal-Route headers */
} Message;

static void
message_free (gpointer data)
{
  Message *message = data;

  g_free (message->subject);
  g_free (message);
}

static MilterStatus
on_envelope_from (MilterClientContext *context,
                  const gchar         *from,
                  gpointer             user_data)
{
  /* A new message: its state replaces (and frees) the last one's. */
  milter_client_context_set_private_data (context, g_new0 (Message, 1), message_free);
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
on_header (MilterClientContext *context,
           const gchar         *name,
           const gchar         *value,
           gpointer             user_data)
{
  Message *message = milter_client_context_get_private_data (context);

  if (g_ascii_strcasecmp (name, "Subject") == 0 && message->subject == NULL)
    message->subject = g_strdup (value);
  else if (g_ascii_strcasecmp (name, "X-Internal-Route") == 0)
    message->n_routes++;
  return MILTER_STATUS_CONTINUE;
}

static gboolean
modify (MilterClientContext  *context,
        Message              *message,
        GError              **error)
{
  /* The first Subject is number 1 of its name. */
  if (message->subject != NULL && !g_str_has_prefix (message->subject, TAG))
    {
      g_autofree gchar *tagged = g_strconcat (TAG, message->subject, NULL);

      if (!milter_client_context_change_header (context, "Subject", 1, tagged, error))
        return FALSE;
    }
  /* From the last one: Postfix renumbers the headers after a deleted one. */
  for (guint i = message->n_routes; i > 0; i--)
    if (!milter_client_context_delete_header (context, "X-Internal-Route", i, error))
      return FALSE;
  return milter_client_context_add_header (context, "X-Origin", "external", error) &&
         /* No delivery notices for the archive's copy. */
         milter_client_context_add_recipient (context, ARCHIVE, "NOTIFY=NEVER", error);
}

static MilterStatus
on_end_of_message (MilterClientContext *context,
                   GBytes              *chunk,
                   gpointer             user_data)
{
  g_autoptr(GError) error = NULL;

  if (!modify (context, milter_client_context_get_private_data (context), &error))
    {
      /* Not without its archive copy: the MTA keeps the message and
       * tries again later. */
      g_warning ("Cannot modify the message: %s", error->message);
      return MILTER_STATUS_TEMPORARY_FAILURE;
    }
  return MILTER_STATUS_CONTINUE;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  g_signal_connect (context, "envelope-from", G_CALLBACK (on_envelope_from), NULL);
  g_signal_connect (context, "header", G_CALLBACK (on_header), NULL);
  g_signal_connect (context, "end-of-message-bytes", G_CALLBACK (on_end_of_message), NULL);
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
      g_printerr ("modify-tag: %s\n", error->message);
      return 1;
    }
  return 0;
}
