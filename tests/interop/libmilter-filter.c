/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A small filter on Sendmail's libmilter, for testing milter-test-server
 * against a milter implementation other than ours.
 *
 *   libmilter-filter SPEC      e.g. unix:/tmp/dir/milter.sock
 *
 * At end-of-message it adds X-Test-Filter: libmilter and headers that
 * report what it received (X-Test-Connect, X-Test-Helo, X-Test-From,
 * X-Test-Macros, X-Test-Body, X-Test-Headers). The Subject decides the
 * verdict: "reject" (550 5.7.1 via smfi_setreply), "tempfail" (451 4.7.1),
 * "discard". Recipients named after an action make it happen:
 *   <reject-recipient@…>  refused with 550 5.1.1 at RCPT
 *   <accept@…>            accept the message at RCPT
 *   <replace-body@…>      replace the body
 *   <add-recipient@…>     add <added@example.org> and, with parameters,
 *                         <added-with-parameters@example.org> NOTIFY=NEVER
 *   <delete-recipient@…>  delete this recipient
 *   <change-from@…>       change the sender to <changed@example.com> RET=HDRS
 *   <quarantine@…>        quarantine "test quarantine"
 *   <change-header@…>     change Subject, insert X-Inserted at the top,
 *                         delete the first X-Delete-Me
 *   <progress@…>          send progress three times during end-of-message
 *   <slow-recipient@…>    sleep 2 s before replying to RCPT
 *   <slow-end-of-message@…> sleep 2 s before replying to end-of-message
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

enum {
  MACRO_CONNECT,
  MACRO_HELO,
  MACRO_ENVELOPE_FROM,
  MACRO_ENVELOPE_RECIPIENT,
  MACRO_DATA,
  MACRO_END_OF_HEADER,
  MACRO_END_OF_MESSAGE,
  N_MACROS
};

static const char * const macro_names[N_MACROS] = {
  "{test_connect}", "{test_helo}", "{test_envelope_from}", "{test_envelope_recipient}",
  "{test_data}", "{test_end_of_header}", "{test_end_of_message}",
};

static const char * const macro_labels[N_MACROS] = {
  "connect", "helo", "envelope-from", "envelope-recipient", "data", "end-of-header",
  "end-of-message",
};

typedef struct
{
  /* Connection */
  char connect[512];
  char helo[256];
  char connect_macros[2][256];   /* connect and helo */
  /* Message */
  char from[256];
  char macros[N_MACROS][256];
  char delete_recipient[256];
  int reject, tempfail, discard;
  int replace_body, add_recipient, change_from, quarantine, change_header, progress;
  int slow_end_of_message;
  unsigned long body_size;
  unsigned int body_chunks;
  unsigned int headers;
} Private;

static Private *
get_private (SMFICTX *ctx)
{
  Private *priv = smfi_getpriv (ctx);

  if (priv == NULL)
    {
      priv = calloc (1, sizeof *priv);
      if (priv == NULL)
        abort ();
      smfi_setpriv (ctx, priv);
    }
  return priv;
}

static void
reset_message (Private *priv)
{
  size_t offset = offsetof (Private, from);

  memset ((char *) priv + offset, 0, sizeof *priv - offset);
}

static void
copy (char       *to,
      size_t      size,
      const char *from)
{
  snprintf (to, size, "%s", from != NULL ? from : "");
}

static void
remember_macro (SMFICTX *ctx,
                Private *priv,
                int      stage)
{
  copy (priv->macros[stage], sizeof priv->macros[stage],
        smfi_getsymval (ctx, (char *) macro_names[stage]));
}

static sfsistat
on_connect (SMFICTX         *ctx,
            char            *hostname,
            struct sockaddr *address)
{
  Private *priv = get_private (ctx);
  char text[INET6_ADDRSTRLEN] = "unknown";

  memset (priv, 0, sizeof *priv);
  if (address != NULL && address->sa_family == AF_INET)
    inet_ntop (AF_INET, &((struct sockaddr_in *) address)->sin_addr, text, sizeof text);
  else if (address != NULL && address->sa_family == AF_INET6)
    inet_ntop (AF_INET6, &((struct sockaddr_in6 *) address)->sin6_addr, text, sizeof text);
  else if (address != NULL && address->sa_family == AF_UNIX)
    copy (text, sizeof text, "unix");
  snprintf (priv->connect, sizeof priv->connect, "%s [%s]", hostname, text);
  copy (priv->connect_macros[0], sizeof priv->connect_macros[0],
        smfi_getsymval (ctx, (char *) macro_names[MACRO_CONNECT]));
  return SMFIS_CONTINUE;
}

static sfsistat
on_helo (SMFICTX *ctx,
         char    *helo)
{
  Private *priv = get_private (ctx);

  copy (priv->helo, sizeof priv->helo, helo);
  copy (priv->connect_macros[1], sizeof priv->connect_macros[1],
        smfi_getsymval (ctx, (char *) macro_names[MACRO_HELO]));
  return SMFIS_CONTINUE;
}

static sfsistat
on_envelope_from (SMFICTX  *ctx,
                  char    **argv)
{
  Private *priv = get_private (ctx);

  reset_message (priv);
  copy (priv->from, sizeof priv->from, argv[0]);
  for (int i = 1; argv[i] != NULL; i++)
    {
      strncat (priv->from, " ", sizeof priv->from - strlen (priv->from) - 1);
      strncat (priv->from, argv[i], sizeof priv->from - strlen (priv->from) - 1);
    }
  remember_macro (ctx, priv, MACRO_ENVELOPE_FROM);
  return SMFIS_CONTINUE;
}

static int
is_recipient (const char *recipient,
              const char *name)
{
  size_t length = strlen (name);

  return recipient[0] == '<' && strncmp (recipient + 1, name, length) == 0 &&
         recipient[1 + length] == '@';
}

static sfsistat
on_envelope_recipient (SMFICTX  *ctx,
                       char    **argv)
{
  Private *priv = get_private (ctx);
  const char *recipient = argv[0];

  remember_macro (ctx, priv, MACRO_ENVELOPE_RECIPIENT);
  if (is_recipient (recipient, "reject-recipient"))
    {
      smfi_setreply (ctx, "550", "5.1.1", "No such user here");
      return SMFIS_REJECT;
    }
  if (is_recipient (recipient, "accept"))
    return SMFIS_ACCEPT;
  if (is_recipient (recipient, "slow-recipient"))
    sleep (2);
  priv->replace_body |= is_recipient (recipient, "replace-body");
  priv->add_recipient |= is_recipient (recipient, "add-recipient");
  priv->change_from |= is_recipient (recipient, "change-from");
  priv->quarantine |= is_recipient (recipient, "quarantine");
  priv->change_header |= is_recipient (recipient, "change-header");
  priv->progress |= is_recipient (recipient, "progress");
  priv->slow_end_of_message |= is_recipient (recipient, "slow-end-of-message");
  if (is_recipient (recipient, "delete-recipient"))
    copy (priv->delete_recipient, sizeof priv->delete_recipient, recipient);
  return SMFIS_CONTINUE;
}

static sfsistat
on_data (SMFICTX *ctx)
{
  remember_macro (ctx, get_private (ctx), MACRO_DATA);
  return SMFIS_CONTINUE;
}

static sfsistat
on_header (SMFICTX *ctx,
           char    *name,
           char    *value)
{
  Private *priv = get_private (ctx);

  priv->headers++;
  if (strcasecmp (name, "Subject") == 0)
    {
      priv->reject |= strstr (value, "reject") != NULL;
      priv->tempfail |= strstr (value, "tempfail") != NULL;
      priv->discard |= strstr (value, "discard") != NULL;
    }
  return SMFIS_CONTINUE;
}

static sfsistat
on_end_of_header (SMFICTX *ctx)
{
  remember_macro (ctx, get_private (ctx), MACRO_END_OF_HEADER);
  return SMFIS_CONTINUE;
}

static sfsistat
on_body (SMFICTX       *ctx,
         unsigned char *chunk,
         size_t         size)
{
  Private *priv = get_private (ctx);

  priv->body_size += size;
  priv->body_chunks++;
  return SMFIS_CONTINUE;
}

static sfsistat
on_end_of_message (SMFICTX *ctx)
{
  Private *priv = get_private (ctx);
  char text[2048];
  size_t used = 0;

  remember_macro (ctx, priv, MACRO_END_OF_MESSAGE);
  if (priv->slow_end_of_message)
    sleep (2);
  if (priv->reject)
    {
      smfi_setreply (ctx, "550", "5.7.1", "Rejected by test filter");
      return SMFIS_REJECT;
    }
  if (priv->tempfail)
    {
      smfi_setreply (ctx, "451", "4.7.1", "Try again later");
      return SMFIS_TEMPFAIL;
    }
  if (priv->discard)
    return SMFIS_DISCARD;
  if (priv->progress)
    for (int i = 0; i < 3; i++)
      {
        smfi_progress (ctx);
        usleep (100 * 1000);
      }

  smfi_addheader (ctx, "X-Test-Filter", "libmilter");
  smfi_addheader (ctx, "X-Test-Connect", priv->connect);
  smfi_addheader (ctx, "X-Test-Helo", priv->helo);
  smfi_addheader (ctx, "X-Test-From", priv->from);
  text[0] = '\0';
  for (int i = 0; i < N_MACROS; i++)
    {
      const char *value = i < 2 ? priv->connect_macros[i] : priv->macros[i];

      used += (size_t) snprintf (text + used, sizeof text - used, "%s%s=%s", i > 0 ? " " : "",
                                 macro_labels[i], value);
      if (used >= sizeof text)
        break;
    }
  smfi_addheader (ctx, "X-Test-Macros", text);
  snprintf (text, sizeof text, "%lu bytes in %u chunks", priv->body_size, priv->body_chunks);
  smfi_addheader (ctx, "X-Test-Body", text);
  snprintf (text, sizeof text, "%u", priv->headers);
  smfi_addheader (ctx, "X-Test-Headers", text);

  if (priv->replace_body)
    {
      static const char body[] = "Replaced by the test filter.\r\n";

      smfi_replacebody (ctx, (unsigned char *) body, (int) strlen (body));
    }
  if (priv->add_recipient)
    {
      smfi_addrcpt (ctx, "<added@example.org>");
      smfi_addrcpt_par (ctx, "<added-with-parameters@example.org>", "NOTIFY=NEVER");
    }
  if (priv->delete_recipient[0] != '\0')
    smfi_delrcpt (ctx, priv->delete_recipient);
  if (priv->change_from)
    smfi_chgfrom (ctx, "<changed@example.com>", "RET=HDRS");
  if (priv->quarantine)
    smfi_quarantine (ctx, "test quarantine");
  if (priv->change_header)
    {
      smfi_chgheader (ctx, "Subject", 1, "changed subject");
      smfi_insheader (ctx, 0, "X-Inserted", "top");
      smfi_chgheader (ctx, "X-Delete-Me", 1, NULL);
    }
  return SMFIS_CONTINUE;
}

static sfsistat
on_abort (SMFICTX *ctx)
{
  Private *priv = smfi_getpriv (ctx);

  if (priv != NULL)
    reset_message (priv);
  return SMFIS_CONTINUE;
}

static sfsistat
on_close (SMFICTX *ctx)
{
  free (smfi_getpriv (ctx));
  smfi_setpriv (ctx, NULL);
  return SMFIS_CONTINUE;
}

static struct smfiDesc filter = {
  "libmilter-test-filter",
  SMFI_VERSION,
  SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT | SMFIF_ADDRCPT_PAR |
  SMFIF_DELRCPT | SMFIF_QUARANTINE | SMFIF_CHGFROM,
  on_connect,
  on_helo,
  on_envelope_from,
  on_envelope_recipient,
  on_header,
  on_end_of_header,
  on_body,
  on_end_of_message,
  on_abort,
  on_close,
  NULL,   /* unknown */
  on_data,
  NULL,   /* negotiate */
};

int
main (int    argc,
      char **argv)
{
  if (argc != 2)
    {
      fprintf (stderr, "usage: %s SPEC\n", argv[0]);
      return 2;
    }
  /* Die with the test that started us, whatever happens to it. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () == 1)
    return 1;

  if (smfi_setconn (argv[1]) == MI_FAILURE ||
      smfi_setbacklog (256) == MI_FAILURE ||
      smfi_register (filter) == MI_FAILURE ||
      smfi_opensocket (1) == MI_FAILURE)
    {
      fprintf (stderr, "%s: cannot listen on %s\n", argv[0], argv[1]);
      return 1;
    }
  return smfi_main () == MI_SUCCESS ? 0 : 1;
}
