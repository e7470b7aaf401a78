/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MILTER_INSIDE) && !defined (MILTER_COMPILATION)
# error "Only <milter/milter.h> can be included directly."
#endif

#include <glib-object.h>
#include <milter/core/milter-version-macros.h>
#include <milter/core/milter-headers.h>
#include <milter/server/milter-modification.h>

G_BEGIN_DECLS

/**
 * MILTER_MESSAGE_ERROR:
 *
 * The error domain of #MilterMessage.
 *
 * Since: 1.0
 */
#define MILTER_MESSAGE_ERROR (milter_message_error_quark ())

/**
 * MilterMessageError:
 * @MILTER_MESSAGE_ERROR_INVALID_HEADER: a header that cannot be part of a
 *   message: a line in the header section that is neither a header field
 *   nor a continuation line, a NUL byte in the header section, an invalid
 *   header name (empty, or with characters other than printable ASCII
 *   without the colon), or a value whose line breaks are not folds
 * @MILTER_MESSAGE_ERROR_INVALID_ADDRESS: an empty envelope address in a
 *   modification
 *
 * Faults found while parsing a message or applying a modification.
 *
 * Since: 1.0
 */
typedef enum {
  MILTER_MESSAGE_ERROR_INVALID_HEADER,
  MILTER_MESSAGE_ERROR_INVALID_ADDRESS,
} MilterMessageError;

MILTER_AVAILABLE_IN_ALL
GQuark milter_message_error_quark (void);

/**
 * MILTER_TYPE_MESSAGE:
 *
 * The #GType of #MilterMessage.
 *
 * Since: 1.0
 */
#define MILTER_TYPE_MESSAGE (milter_message_get_type ())

MILTER_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (MilterMessage, milter_message, MILTER, MESSAGE, GObject)

MILTER_AVAILABLE_IN_ALL
MilterMessage *milter_message_new (void);
MILTER_AVAILABLE_IN_ALL
MilterMessage *milter_message_new_from_data (GBytes  *data,
                                             GError **error);
MILTER_AVAILABLE_IN_ALL
GBytes *milter_message_to_bytes (MilterMessage *message);

MILTER_AVAILABLE_IN_ALL
const gchar *milter_message_get_from (MilterMessage *message);
MILTER_AVAILABLE_IN_ALL
const gchar * const *milter_message_get_from_parameters (MilterMessage *message);
MILTER_AVAILABLE_IN_ALL
void milter_message_set_from (MilterMessage       *message,
                              const gchar         *from,
                              const gchar * const *parameters);

MILTER_AVAILABLE_IN_ALL
const gchar * const *milter_message_get_recipients (MilterMessage *message);
MILTER_AVAILABLE_IN_ALL
guint milter_message_get_n_recipients (MilterMessage *message);
MILTER_AVAILABLE_IN_ALL
const gchar * const *milter_message_get_recipient_parameters (MilterMessage *message,
                                                              guint          index);
MILTER_AVAILABLE_IN_ALL
void milter_message_add_recipient (MilterMessage       *message,
                                   const gchar         *recipient,
                                   const gchar * const *parameters);
MILTER_AVAILABLE_IN_ALL
gboolean milter_message_remove_recipient (MilterMessage *message,
                                          const gchar   *recipient);

MILTER_AVAILABLE_IN_ALL
MilterHeaders *milter_message_get_headers (MilterMessage *message);

MILTER_AVAILABLE_IN_ALL
GBytes *milter_message_get_body (MilterMessage *message);
MILTER_AVAILABLE_IN_ALL
void milter_message_set_body (MilterMessage *message,
                              GBytes        *body);

MILTER_AVAILABLE_IN_ALL
const gchar *milter_message_get_quarantine_reason (MilterMessage *message);
MILTER_AVAILABLE_IN_ALL
void milter_message_set_quarantine_reason (MilterMessage *message,
                                           const gchar   *reason);

MILTER_AVAILABLE_IN_ALL
gboolean milter_message_apply_modification (MilterMessage       *message,
                                            MilterModification  *modification,
                                            GError             **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_message_apply_modifications (MilterMessage  *message,
                                             GPtrArray      *modifications,
                                             GError        **error);

G_END_DECLS
