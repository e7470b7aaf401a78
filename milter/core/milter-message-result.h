/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MILTER_INSIDE) && !defined (MILTER_COMPILATION)
# error "Only <milter/milter.h> can be included directly."
#endif

#include <glib-object.h>
#include <milter/core/milter-version-macros.h>
#include <milter/core/milter-enums.h>
#include <milter/core/milter-headers.h>

G_BEGIN_DECLS

/**
 * MILTER_TYPE_MESSAGE_RESULT:
 *
 * The #GType of #MilterMessageResult.
 *
 * Since: 1.0
 */
#define MILTER_TYPE_MESSAGE_RESULT (milter_message_result_get_type ())

MILTER_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (MilterMessageResult, milter_message_result, MILTER, MESSAGE_RESULT, GObject)

MILTER_AVAILABLE_IN_ALL
MilterMessageResult *milter_message_result_new (void);

MILTER_AVAILABLE_IN_ALL
const gchar *milter_message_result_get_from (MilterMessageResult *result);
MILTER_AVAILABLE_IN_ALL
void milter_message_result_set_from (MilterMessageResult *result,
                                     const gchar         *from);

MILTER_AVAILABLE_IN_ALL
const gchar * const *milter_message_result_get_recipients (MilterMessageResult *result);
MILTER_AVAILABLE_IN_ALL
void milter_message_result_add_recipient (MilterMessageResult *result,
                                          const gchar         *recipient);
MILTER_AVAILABLE_IN_ALL
const gchar * const *milter_message_result_get_rejected_recipients (MilterMessageResult *result);
MILTER_AVAILABLE_IN_ALL
void milter_message_result_add_rejected_recipient (MilterMessageResult *result,
                                                   const gchar         *recipient);

MILTER_AVAILABLE_IN_ALL
MilterHeaders *milter_message_result_get_headers (MilterMessageResult *result);

MILTER_AVAILABLE_IN_ALL
guint64 milter_message_result_get_body_size (MilterMessageResult *result);
MILTER_AVAILABLE_IN_ALL
void milter_message_result_set_body_size (MilterMessageResult *result,
                                          guint64              body_size);
MILTER_AVAILABLE_IN_ALL
void milter_message_result_add_body_size (MilterMessageResult *result,
                                          guint64              size);

MILTER_AVAILABLE_IN_ALL
MilterStatus milter_message_result_get_status (MilterMessageResult *result);
MILTER_AVAILABLE_IN_ALL
void milter_message_result_set_status (MilterMessageResult *result,
                                       MilterStatus         status);

MILTER_AVAILABLE_IN_ALL
void milter_message_result_start (MilterMessageResult *result);
MILTER_AVAILABLE_IN_ALL
void milter_message_result_stop (MilterMessageResult *result);
MILTER_AVAILABLE_IN_ALL
gint64 milter_message_result_get_start_time (MilterMessageResult *result);
MILTER_AVAILABLE_IN_ALL
gint64 milter_message_result_get_end_time (MilterMessageResult *result);
MILTER_AVAILABLE_IN_ALL
gdouble milter_message_result_get_elapsed_time (MilterMessageResult *result);

G_END_DECLS
