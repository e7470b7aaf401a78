/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: filter --output-message -r "<bob@old.example>" -r "<carol@example.org>" -r "<dave@Paused.Example>" => result["status"] == "pass" and result["message"]["recipients"] == [{"address": "<carol@example.org>", "parameters": []}] and [(r["address"], r["status"], r["reply"]) for r in result["rejected-recipients"]] == [("<bob@old.example>", "reject", "550-5.1.6 <bob@old.example> has moved.\r\n550 5.1.6 Please write to <bob@new.example> instead."), ("<dave@Paused.Example>", "temporary-failure", "450 4.2.1 Mailbox under maintenance, try again in an hour")] */
/* guide-check: filter -r "<a%b@old.example>" => result["status"] == "reject" and result["stage"] == "envelope-recipient" and result["reply"] == "550-5.1.6 <a%b@old.example> has moved.\r\n550 5.1.6 Please write to <a%b@new.example> instead." */
/* replies-moved: refuses the recipients of a domain that moved, with a
 * multi-line reply that gives the new address, and asks the senders to
 * retry later for a domain under maintenance. The message still goes to
 * its other recipients. */
#include <milter/milter.h>

#include <string.h>

#define OLD_DOMAIN "old.example"
#define NEW_DOMAIN "new.example"
#define PAUSED_DOMAIN "paused.example"

/* The part of "<user@domain>" before the '@', or NULL if @recipient is
 * not in @domain. */
static gchar *
local_part_in (const gchar *recipient,
               const gchar *domain)
{
  const gchar *at = strrchr (recipient, '@');
  gsize length = strlen (domain);

  if (recipient[0] != '<' || at == NULL || g_ascii_strncasecmp (at + 1, domain, length) != 0 ||
      g_strcmp0 (at + 1 + length, ">") != 0)
    return NULL;
  return g_strndup (recipient + 1, at - recipient - 1);
}

static MilterStatus
on_envelope_recipient (MilterClientContext *context,
                       const gchar         *recipient,
                       gpointer             user_data)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *user = NULL;

  if ((user = local_part_in (recipient, OLD_DOMAIN)) != NULL)
    {
      g_autofree gchar *moved = g_strdup_printf ("%s has moved.", recipient);
      g_autofree gchar *write = g_strdup_printf ("Please write to <%s@%s> instead.", user, NEW_DOMAIN);
      const gchar *lines[] = { moved, write, NULL };

      /* 5.1.6: the mailbox has moved (RFC 3463). Without a reply of its
       * own, the MTA gives its default rejection text. */
      if (!milter_client_context_set_multiline_reply (context, 550, "5.1.6", lines, &error))
        g_warning ("%s", error->message);
      return MILTER_STATUS_REJECT;
    }
  if ((user = local_part_in (recipient, PAUSED_DOMAIN)) != NULL)
    {
      /* A 4xx code for a temporary failure. */
      if (!milter_client_context_set_reply (context, 450, "4.2.1",
                                            "Mailbox under maintenance, try again in an hour", &error))
        g_warning ("%s", error->message);
      return MILTER_STATUS_TEMPORARY_FAILURE;
    }
  return MILTER_STATUS_CONTINUE;
}

static void
on_connection_established (MilterClient        *client,
                           MilterClientContext *context,
                           gpointer             user_data)
{
  g_signal_connect (context, "envelope-recipient", G_CALLBACK (on_envelope_recipient), NULL);
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
      g_printerr ("replies-moved: %s\n", error->message);
      return 1;
    }
  return 0;
}
