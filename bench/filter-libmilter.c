/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* filter-libmilter: the benchmark filter on Sendmail's libmilter.
 *
 *   filter-libmilter unix:PATH [--eom-only]
 *
 * The same filter as filter-glib.c: callbacks for every event, a small
 * per-connection state counting headers and body bytes, one header added
 * at end-of-message, continue everywhere. --eom-only sets every callback
 * but xxfi_eom to NULL, so libmilter negotiates the other events away.
 * Not part of the library; built by bench/run.
 */
#include <libmilter/mfapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  unsigned long long messages;
  unsigned long long headers;
  unsigned long long body_bytes;
  int in_message;
} State;

#define STATE(ctx) ((State *) smfi_getpriv (ctx))

static sfsistat
on_connect (SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
  State *state = calloc (1, sizeof *state);
  if (!state)
    return SMFIS_TEMPFAIL;
  smfi_setpriv (ctx, state);
  return SMFIS_CONTINUE;
}

static sfsistat
on_helo (SMFICTX *ctx, char *helo)
{
  return SMFIS_CONTINUE;
}

static sfsistat
on_envfrom (SMFICTX *ctx, char **argv)
{
  State *state = STATE (ctx);
  state->headers = 0;
  state->body_bytes = 0;
  state->in_message = 1;
  return SMFIS_CONTINUE;
}

static sfsistat
on_envrcpt (SMFICTX *ctx, char **argv)
{
  return SMFIS_CONTINUE;
}

static sfsistat
on_data (SMFICTX *ctx)
{
  return SMFIS_CONTINUE;
}

static sfsistat
on_header (SMFICTX *ctx, char *name, char *value)
{
  STATE (ctx)->headers++;
  return SMFIS_CONTINUE;
}

static sfsistat
on_eoh (SMFICTX *ctx)
{
  return SMFIS_CONTINUE;
}

static sfsistat
on_body (SMFICTX *ctx, unsigned char *chunk, size_t size)
{
  STATE (ctx)->body_bytes += size;
  return SMFIS_CONTINUE;
}

static sfsistat
on_eom (SMFICTX *ctx)
{
  State *state = STATE (ctx);
  if (state)
    {
      state->messages++;
      state->in_message = 0;
    }
  if (smfi_addheader (ctx, "X-Bench", "libmilter") != MI_SUCCESS)
    fprintf (stderr, "smfi_addheader failed\n");
  return SMFIS_CONTINUE;
}

static sfsistat
on_abort (SMFICTX *ctx)
{
  State *state = STATE (ctx);
  if (state)
    state->in_message = 0;
  return SMFIS_CONTINUE;
}

static sfsistat
on_close (SMFICTX *ctx)
{
  State *state = STATE (ctx);
  if (state)
    {
      free (state);
      smfi_setpriv (ctx, NULL);
    }
  return SMFIS_CONTINUE;
}

int
main (int argc, char **argv)
{
  struct smfiDesc desc = {
    "bench",
    SMFI_VERSION,
    SMFIF_ADDHDRS,
    on_connect, on_helo, on_envfrom, on_envrcpt, on_header, on_eoh, on_body, on_eom, on_abort,
    on_close,
    NULL,      /* xxfi_unknown */
    on_data,
    NULL,      /* xxfi_negotiate */
  };
  const char *spec = NULL;

  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "--eom-only") == 0)
      {
        desc.xxfi_connect = NULL;
        desc.xxfi_helo = NULL;
        desc.xxfi_envfrom = NULL;
        desc.xxfi_envrcpt = NULL;
        desc.xxfi_header = NULL;
        desc.xxfi_eoh = NULL;
        desc.xxfi_body = NULL;
        desc.xxfi_abort = NULL;
        desc.xxfi_close = NULL;
        desc.xxfi_data = NULL;
      }
    else
      spec = argv[i];
  if (!spec)
    {
      fprintf (stderr, "usage: filter-libmilter unix:PATH [--eom-only]\n");
      return 2;
    }
  if (strncmp (spec, "unix:", 5) == 0)
    unlink (spec + 5);
  if (smfi_setconn ((char *) spec) == MI_FAILURE || smfi_setbacklog (4096) == MI_FAILURE ||
      smfi_register (desc) == MI_FAILURE)
    {
      fprintf (stderr, "filter-libmilter: cannot set up\n");
      return 1;
    }
  return smfi_main () == MI_SUCCESS ? 0 : 1;
}
