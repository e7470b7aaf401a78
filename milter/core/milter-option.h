/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MILTER_INSIDE) && !defined (MILTER_COMPILATION)
# error "Only <milter/milter.h> can be included directly."
#endif

#include <glib-object.h>
#include <milter/core/milter-version-macros.h>
#include <milter/core/milter-enums.h>

G_BEGIN_DECLS

/**
 * MILTER_PROTOCOL_VERSION:
 *
 * The highest milter protocol version this library speaks.
 *
 * Since: 1.0
 */
#define MILTER_PROTOCOL_VERSION 6

/**
 * MILTER_TYPE_OPTION:
 *
 * The #GType of #MilterOption.
 *
 * Since: 1.0
 */
#define MILTER_TYPE_OPTION (milter_option_get_type ())

/**
 * MilterOption:
 *
 * An opaque, copyable value: a protocol version with #MilterActionFlags and #MilterStepFlags.
 *
 * Since: 1.0
 */
typedef struct _MilterOption MilterOption;

MILTER_AVAILABLE_IN_ALL
GType milter_option_get_type (void) G_GNUC_CONST;

MILTER_AVAILABLE_IN_ALL
MilterOption *milter_option_new (guint32           version,
                                 MilterActionFlags action,
                                 MilterStepFlags   step);
MILTER_AVAILABLE_IN_ALL
MilterOption *milter_option_new_postfix (void);
MILTER_AVAILABLE_IN_ALL
MilterOption *milter_option_copy (const MilterOption *option);
MILTER_AVAILABLE_IN_ALL
void milter_option_free (MilterOption *option);

MILTER_AVAILABLE_IN_ALL
guint32 milter_option_get_version (const MilterOption *option);
MILTER_AVAILABLE_IN_ALL
void milter_option_set_version (MilterOption *option,
                                guint32       version);

MILTER_AVAILABLE_IN_ALL
MilterActionFlags milter_option_get_action (const MilterOption *option);
MILTER_AVAILABLE_IN_ALL
void milter_option_set_action (MilterOption     *option,
                               MilterActionFlags action);
MILTER_AVAILABLE_IN_ALL
void milter_option_add_action (MilterOption     *option,
                               MilterActionFlags action);
MILTER_AVAILABLE_IN_ALL
void milter_option_remove_action (MilterOption     *option,
                                  MilterActionFlags action);

MILTER_AVAILABLE_IN_ALL
MilterStepFlags milter_option_get_step (const MilterOption *option);
MILTER_AVAILABLE_IN_ALL
void milter_option_set_step (MilterOption   *option,
                             MilterStepFlags step);
MILTER_AVAILABLE_IN_ALL
void milter_option_add_step (MilterOption   *option,
                             MilterStepFlags step);
MILTER_AVAILABLE_IN_ALL
void milter_option_remove_step (MilterOption   *option,
                                MilterStepFlags step);

MILTER_AVAILABLE_IN_ALL
gboolean milter_option_equal (const MilterOption *option,
                              const MilterOption *other);
MILTER_AVAILABLE_IN_ALL
void milter_option_merge (MilterOption       *option,
                          const MilterOption *other);
MILTER_AVAILABLE_IN_ALL
void milter_option_combine (MilterOption       *option,
                            const MilterOption *other);
MILTER_AVAILABLE_IN_ALL
gchar *milter_option_to_string (const MilterOption *option);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MilterOption, milter_option_free)

G_END_DECLS
