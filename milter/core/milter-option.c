/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-option.h"
#include "milter/milter-enum-types.h"

/**
 * SECTION:milter-option
 * @title: MilterOption
 * @short_description: The protocol version, actions and steps of a negotiation
 * @include: milter/milter.h
 *
 * A #MilterOption holds what one side of a negotiation offers or requests:
 * the protocol version, the #MilterActionFlags (which modifications the
 * milter may make) and the #MilterStepFlags (which events the MTA leaves
 * out, which ones get no reply, and protocol extensions).
 *
 * The #MilterClientContext::negotiate signal receives the MTA's offer as
 * a #MilterOption; a handler that returns %MILTER_STATUS_CONTINUE edits
 * it into the milter's request:
 *
 * |[<!-- language="C" -->
 * static MilterStatus
 * on_negotiate (MilterClientContext  *context,
 *               MilterOption         *option,
 *               MilterMacrosRequests *requests,
 *               gpointer              user_data)
 * {
 *   milter_option_set_action (option, MILTER_ACTION_ADD_HEADERS);
 *   milter_option_remove_step (option, MILTER_STEP_NO_REPLY_MASK);
 *   return MILTER_STATUS_CONTINUE;
 * }
 * ]|
 */

struct _MilterOption
{
  guint32 version;
  MilterActionFlags action;
  MilterStepFlags step;
};

G_DEFINE_BOXED_TYPE (MilterOption, milter_option, milter_option_copy, milter_option_free)

/**
 * milter_option_new:
 * @version: the protocol version (2, 3, 4 or 6)
 * @action: the actions
 * @step: the steps
 *
 * Creates an option.
 *
 * Returns: (transfer full): a new #MilterOption
 *
 * Since: 1.0
 */
MilterOption *
milter_option_new (guint32           version,
                   MilterActionFlags action,
                   MilterStepFlags   step)
{
  MilterOption *option = g_new (MilterOption, 1);

  option->version = version;
  option->action = action;
  option->step = step;
  return option;
}

/**
 * milter_option_new_postfix:
 *
 * Creates the option Postfix 2.6 and later offer by default: version 6,
 * every action (0x1FF) and every step (0x1FFFFF), no data-size bit.
 *
 * Returns: (transfer full): a new #MilterOption
 *
 * Since: 1.0
 */
MilterOption *
milter_option_new_postfix (void)
{
  return milter_option_new (MILTER_PROTOCOL_VERSION, MILTER_ACTION_ALL, MILTER_STEP_ALL);
}

/**
 * milter_option_copy:
 * @option: a #MilterOption
 *
 * Copies @option.
 *
 * Returns: (transfer full): a copy of @option
 *
 * Since: 1.0
 */
MilterOption *
milter_option_copy (const MilterOption *option)
{
  g_return_val_if_fail (option != NULL, NULL);

  return g_memdup2 (option, sizeof *option);
}

/**
 * milter_option_free:
 * @option: (nullable): a #MilterOption
 *
 * Frees @option.
 *
 * Since: 1.0
 */
void
milter_option_free (MilterOption *option)
{
  g_free (option);
}

/**
 * milter_option_get_version:
 * @option: a #MilterOption
 *
 * Gets the protocol version.
 *
 * Returns: the protocol version
 *
 * Since: 1.0
 */
guint32
milter_option_get_version (const MilterOption *option)
{
  g_return_val_if_fail (option != NULL, 0);

  return option->version;
}

/**
 * milter_option_set_version:
 * @option: a #MilterOption
 * @version: the protocol version
 *
 * Sets the protocol version.
 *
 * Since: 1.0
 */
void
milter_option_set_version (MilterOption *option,
                           guint32       version)
{
  g_return_if_fail (option != NULL);

  option->version = version;
}

/**
 * milter_option_get_action:
 * @option: a #MilterOption
 *
 * Gets the actions.
 *
 * Returns: the actions
 *
 * Since: 1.0
 */
MilterActionFlags
milter_option_get_action (const MilterOption *option)
{
  g_return_val_if_fail (option != NULL, MILTER_ACTION_NONE);

  return option->action;
}

/**
 * milter_option_set_action:
 * @option: a #MilterOption
 * @action: the actions
 *
 * Replaces the actions.
 *
 * Since: 1.0
 */
void
milter_option_set_action (MilterOption     *option,
                          MilterActionFlags action)
{
  g_return_if_fail (option != NULL);

  option->action = action;
}

/**
 * milter_option_add_action:
 * @option: a #MilterOption
 * @action: the actions to add
 *
 * Adds actions.
 *
 * Since: 1.0
 */
void
milter_option_add_action (MilterOption     *option,
                          MilterActionFlags action)
{
  g_return_if_fail (option != NULL);

  option->action |= action;
}

/**
 * milter_option_remove_action:
 * @option: a #MilterOption
 * @action: the actions to remove
 *
 * Removes actions.
 *
 * Since: 1.0
 */
void
milter_option_remove_action (MilterOption     *option,
                             MilterActionFlags action)
{
  g_return_if_fail (option != NULL);

  option->action &= ~action;
}

/**
 * milter_option_get_step:
 * @option: a #MilterOption
 *
 * Gets the steps.
 *
 * Returns: the steps
 *
 * Since: 1.0
 */
MilterStepFlags
milter_option_get_step (const MilterOption *option)
{
  g_return_val_if_fail (option != NULL, MILTER_STEP_NONE);

  return option->step;
}

/**
 * milter_option_set_step:
 * @option: a #MilterOption
 * @step: the steps
 *
 * Replaces the steps.
 *
 * Since: 1.0
 */
void
milter_option_set_step (MilterOption   *option,
                        MilterStepFlags step)
{
  g_return_if_fail (option != NULL);

  option->step = step;
}

/**
 * milter_option_add_step:
 * @option: a #MilterOption
 * @step: the steps to add
 *
 * Adds steps.
 *
 * Since: 1.0
 */
void
milter_option_add_step (MilterOption   *option,
                        MilterStepFlags step)
{
  g_return_if_fail (option != NULL);

  option->step |= step;
}

/**
 * milter_option_remove_step:
 * @option: a #MilterOption
 * @step: the steps to remove
 *
 * Removes steps.
 *
 * Since: 1.0
 */
void
milter_option_remove_step (MilterOption   *option,
                           MilterStepFlags step)
{
  g_return_if_fail (option != NULL);

  option->step &= ~step;
}

/**
 * milter_option_equal:
 * @option: a #MilterOption
 * @other: another #MilterOption
 *
 * Compares two options.
 *
 * Returns: whether both options have the same version, actions and steps
 *
 * Since: 1.0
 */
gboolean
milter_option_equal (const MilterOption *option,
                     const MilterOption *other)
{
  g_return_val_if_fail (option != NULL, FALSE);
  g_return_val_if_fail (other != NULL, FALSE);

  return option->version == other->version &&
         option->action == other->action &&
         option->step == other->step;
}

/**
 * milter_option_merge:
 * @option: the #MilterOption to restrict
 * @other: what the other side allows
 *
 * Restricts @option to what @other allows: the lower version, and only the
 * actions and steps both have. Use it to fit a request into an offer.
 *
 * Since: 1.0
 */
void
milter_option_merge (MilterOption       *option,
                     const MilterOption *other)
{
  g_return_if_fail (option != NULL);
  g_return_if_fail (other != NULL);

  option->version = MIN (option->version, other->version);
  option->action &= other->action;
  option->step &= other->step;
}

/**
 * milter_option_combine:
 * @option: the #MilterOption to extend
 * @other: another request
 *
 * Extends @option so it serves both requests, as when several milters share
 * one MTA connection: the higher version, the union of the actions and of
 * the extension steps (skip, rejected recipients, leading space, data
 * sizes), and a "do not send" or "no reply" step only when both requests
 * have it.
 *
 * Since: 1.0
 */
void
milter_option_combine (MilterOption       *option,
                       const MilterOption *other)
{
  MilterStepFlags opt_out = MILTER_STEP_NO_EVENT_MASK | MILTER_STEP_NO_REPLY_MASK;

  g_return_if_fail (option != NULL);
  g_return_if_fail (other != NULL);

  option->version = MAX (option->version, other->version);
  option->action |= other->action;
  option->step = ((option->step & other->step) & opt_out) |
                 ((option->step | other->step) & ~opt_out);
}

static void
append_flags (GString *string,
              GType    type,
              guint    value)
{
  GFlagsClass *klass = g_type_class_ref (type);
  gboolean first = TRUE;

  for (guint i = 0; i < klass->n_values; i++)
    {
      GFlagsValue *flag = &klass->values[i];

      if (flag->value == 0 || (value & flag->value) != flag->value)
        continue;
      g_string_append_printf (string, "%s%s", first ? "" : "|", flag->value_nick);
      value &= ~flag->value;
      first = FALSE;
    }
  if (value != 0)
    g_string_append_printf (string, "%s0x%x", first ? "" : "|", value);
  else if (first)
    g_string_append (string, "none");
  g_type_class_unref (klass);
}

/**
 * milter_option_to_string:
 * @option: a #MilterOption
 *
 * Describes @option for logs, e.g.
 * `version=6 action=add-headers|change-body step=no-connect|skip`.
 * Bits without a name are shown in hexadecimal.
 *
 * Returns: (transfer full): a readable description
 *
 * Since: 1.0
 */
gchar *
milter_option_to_string (const MilterOption *option)
{
  GString *string;

  g_return_val_if_fail (option != NULL, NULL);

  string = g_string_new (NULL);
  g_string_append_printf (string, "version=%u action=", option->version);
  append_flags (string, MILTER_TYPE_ACTION_FLAGS, option->action);
  g_string_append (string, " step=");
  append_flags (string, MILTER_TYPE_STEP_FLAGS, option->step);
  return g_string_free (string, FALSE);
}
