/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-macros-requests-private.h"

#include <string.h>

/**
 * SECTION:milter-macros-requests
 * @title: MilterMacrosRequests
 * @short_description: The macros a milter asks the MTA to send, per stage
 * @include: milter/milter.h
 *
 * During negotiation a milter may name, for each #MilterMacroStage, the
 * macros the MTA should send (libmilter's smfi_setsymlist). The
 * #MilterClientContext::negotiate signal hands an empty
 * #MilterMacrosRequests to its handlers; what they set is appended to the
 * negotiation reply.
 *
 * Names may be given with or without braces: `"i"`, `"{auth_type}"` and
 * `"auth_type"` all work; long names are sent in braces. An empty list
 * asks Sendmail for no macros at that stage; Postfix then falls back to
 * its configured list.
 *
 * |[<!-- language="C" -->
 * const gchar *symbols[] = { "i", "{auth_authen}", NULL };
 * milter_macros_requests_set_symbols (requests,
 *                                     MILTER_MACRO_STAGE_ENVELOPE_FROM,
 *                                     symbols);
 * ]|
 */

struct _MilterMacrosRequests
{
  /* Per stage: NULL when unset, else a NULL-terminated vector of names
   * normalised as sent (long names in braces). */
  gchar **symbols[MILTER_MACRO_STAGE_COUNT];
};

G_DEFINE_BOXED_TYPE (MilterMacrosRequests, milter_macros_requests,
                     milter_macros_requests_copy, milter_macros_requests_free)

static gboolean
is_valid_stage (MilterMacroStage stage)
{
  return (guint) stage < MILTER_MACRO_STAGE_COUNT;
}

/**
 * milter_macros_requests_new:
 *
 * Creates an empty set of requests.
 *
 * Returns: (transfer full): a new #MilterMacrosRequests
 *
 * Since: 1.0
 */
MilterMacrosRequests *
milter_macros_requests_new (void)
{
  return g_new0 (MilterMacrosRequests, 1);
}

/**
 * milter_macros_requests_copy:
 * @requests: a #MilterMacrosRequests
 *
 * Copies @requests.
 *
 * Returns: (transfer full): a copy of @requests
 *
 * Since: 1.0
 */
MilterMacrosRequests *
milter_macros_requests_copy (const MilterMacrosRequests *requests)
{
  MilterMacrosRequests *copy;

  g_return_val_if_fail (requests != NULL, NULL);

  copy = milter_macros_requests_new ();
  for (guint stage = 0; stage < MILTER_MACRO_STAGE_COUNT; stage++)
    copy->symbols[stage] = g_strdupv (requests->symbols[stage]);
  return copy;
}

/**
 * milter_macros_requests_free:
 * @requests: (nullable): a #MilterMacrosRequests
 *
 * Frees @requests.
 *
 * Since: 1.0
 */
void
milter_macros_requests_free (MilterMacrosRequests *requests)
{
  if (requests == NULL)
    return;
  for (guint stage = 0; stage < MILTER_MACRO_STAGE_COUNT; stage++)
    g_strfreev (requests->symbols[stage]);
  g_free (requests);
}

/* "auth_type" → "{auth_type}"; one-letter names and braced names stay. */
static gchar *
normalize_symbol (const gchar *symbol)
{
  gsize length = strlen (symbol);

  if (length <= 1 || (symbol[0] == '{' && symbol[length - 1] == '}'))
    return g_strdup (symbol);
  return g_strdup_printf ("{%s}", symbol);
}

static gboolean
is_valid_symbol (const gchar *symbol)
{
  if (*symbol == '\0')
    return FALSE;
  for (const gchar *p = symbol; *p != '\0'; p++)
    if (g_ascii_isspace (*p) || g_ascii_iscntrl (*p))
      return FALSE;
  return TRUE;
}

/* Keeps the valid names of @symbols, normalized. */
static void
set_valid_symbols (MilterMacrosRequests *requests,
                   MilterMacroStage      stage,
                   const gchar * const  *symbols)
{
  GPtrArray *normalized = g_ptr_array_new ();

  for (guint i = 0; symbols[i] != NULL; i++)
    if (is_valid_symbol (symbols[i]))
      g_ptr_array_add (normalized, normalize_symbol (symbols[i]));
  g_ptr_array_add (normalized, NULL);
  g_strfreev (requests->symbols[stage]);
  requests->symbols[stage] = (gchar **) g_ptr_array_free (normalized, FALSE);
}

/**
 * milter_macros_requests_set_symbols:
 * @requests: a #MilterMacrosRequests
 * @stage: the stage
 * @symbols: (array zero-terminated=1): macro names; an empty array asks for
 *   no macros at @stage
 *
 * Sets the macros requested for @stage, replacing any earlier list. Names
 * must be non-empty and free of spaces and control characters: one name
 * per element, not libmilter's space-separated list. A list with an
 * invalid name is a programming error and changes nothing.
 *
 * Since: 1.0
 */
void
milter_macros_requests_set_symbols (MilterMacrosRequests *requests,
                                    MilterMacroStage      stage,
                                    const gchar * const  *symbols)
{
  g_return_if_fail (requests != NULL);
  g_return_if_fail (is_valid_stage (stage));
  g_return_if_fail (symbols != NULL);

  /* A programming error has no effect, as after g_return_if_fail(). */
  for (guint i = 0; symbols[i] != NULL; i++)
    if (!is_valid_symbol (symbols[i]))
      {
        g_critical ("%s: invalid macro name “%s”", G_STRFUNC, symbols[i]);
        return;
      }
  set_valid_symbols (requests, stage, symbols);
}

void
milter_macros_requests_set_wire_list (MilterMacrosRequests *requests,
                                      MilterMacroStage      stage,
                                      const gchar          *list)
{
  g_auto(GStrv) names = g_strsplit_set (list, " \t\r\n,", -1);

  set_valid_symbols (requests, stage, (const gchar * const *) names);
}

/**
 * milter_macros_requests_get_symbols:
 * @requests: a #MilterMacrosRequests
 * @stage: the stage
 *
 * Gets the names requested for @stage (long names in braces), or %NULL if none were set.
 *
 * Returns: (transfer none) (array zero-terminated=1) (nullable): the names
 *   requested for @stage (long names in braces), or %NULL if none were set
 *
 * Since: 1.0
 */
const gchar * const *
milter_macros_requests_get_symbols (const MilterMacrosRequests *requests,
                                    MilterMacroStage            stage)
{
  g_return_val_if_fail (requests != NULL, NULL);
  g_return_val_if_fail (is_valid_stage (stage), NULL);

  return (const gchar * const *) requests->symbols[stage];
}

/**
 * milter_macros_requests_unset_symbols:
 * @requests: a #MilterMacrosRequests
 * @stage: the stage
 *
 * Forgets the list for @stage, so the MTA's default applies.
 *
 * Since: 1.0
 */
void
milter_macros_requests_unset_symbols (MilterMacrosRequests *requests,
                                      MilterMacroStage      stage)
{
  g_return_if_fail (requests != NULL);
  g_return_if_fail (is_valid_stage (stage));

  g_clear_pointer (&requests->symbols[stage], g_strfreev);
}

/**
 * milter_macros_requests_is_empty:
 * @requests: a #MilterMacrosRequests
 *
 * Checks whether no stage has a list.
 *
 * Returns: %TRUE if no stage has a list
 *
 * Since: 1.0
 */
gboolean
milter_macros_requests_is_empty (const MilterMacrosRequests *requests)
{
  g_return_val_if_fail (requests != NULL, TRUE);

  for (guint stage = 0; stage < MILTER_MACRO_STAGE_COUNT; stage++)
    if (requests->symbols[stage] != NULL)
      return FALSE;
  return TRUE;
}

/**
 * milter_macros_requests_equal:
 * @requests: a #MilterMacrosRequests
 * @other: another #MilterMacrosRequests
 *
 * Compares two sets of requests.
 *
 * Returns: whether both have the same lists for every stage
 *
 * Since: 1.0
 */
gboolean
milter_macros_requests_equal (const MilterMacrosRequests *requests,
                              const MilterMacrosRequests *other)
{
  g_return_val_if_fail (requests != NULL, FALSE);
  g_return_val_if_fail (other != NULL, FALSE);

  for (guint stage = 0; stage < MILTER_MACRO_STAGE_COUNT; stage++)
    {
      gchar **a = requests->symbols[stage], **b = other->symbols[stage];

      if ((a == NULL) != (b == NULL))
        return FALSE;
      if (a != NULL && !g_strv_equal ((const gchar * const *) a, (const gchar * const *) b))
        return FALSE;
    }
  return TRUE;
}

/**
 * milter_macros_requests_to_string:
 * @requests: a #MilterMacrosRequests
 *
 * Describes @requests for logs, e.g. `2:"i {auth_authen}" 5:""`, one entry
 * per stage that has a list, by wire stage number.
 *
 * Returns: (transfer full): a readable description
 *
 * Since: 1.0
 */
gchar *
milter_macros_requests_to_string (const MilterMacrosRequests *requests)
{
  GString *string;

  g_return_val_if_fail (requests != NULL, NULL);

  string = g_string_new (NULL);
  for (guint stage = 0; stage < MILTER_MACRO_STAGE_COUNT; stage++)
    {
      g_autofree gchar *joined = NULL;

      if (requests->symbols[stage] == NULL)
        continue;
      joined = g_strjoinv (" ", requests->symbols[stage]);
      g_string_append_printf (string, "%s%u:\"%s\"", string->len > 0 ? " " : "", stage, joined);
    }
  return g_string_free (string, FALSE);
}
