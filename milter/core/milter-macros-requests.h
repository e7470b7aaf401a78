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
 * MILTER_TYPE_MACROS_REQUESTS:
 *
 * The #GType of #MilterMacrosRequests.
 *
 * Since: 1.0
 */
#define MILTER_TYPE_MACROS_REQUESTS (milter_macros_requests_get_type ())

/**
 * MilterMacrosRequests:
 *
 * An opaque, copyable set of macro lists, one per #MilterMacroStage.
 *
 * Since: 1.0
 */
typedef struct _MilterMacrosRequests MilterMacrosRequests;

MILTER_AVAILABLE_IN_ALL
GType milter_macros_requests_get_type (void) G_GNUC_CONST;

MILTER_AVAILABLE_IN_ALL
MilterMacrosRequests *milter_macros_requests_new (void);
MILTER_AVAILABLE_IN_ALL
MilterMacrosRequests *milter_macros_requests_copy (const MilterMacrosRequests *requests);
MILTER_AVAILABLE_IN_ALL
void milter_macros_requests_free (MilterMacrosRequests *requests);

MILTER_AVAILABLE_IN_ALL
void milter_macros_requests_set_symbols (MilterMacrosRequests *requests,
                                         MilterMacroStage      stage,
                                         const gchar * const  *symbols);
MILTER_AVAILABLE_IN_ALL
const gchar * const *milter_macros_requests_get_symbols (const MilterMacrosRequests *requests,
                                                         MilterMacroStage            stage);
MILTER_AVAILABLE_IN_ALL
void milter_macros_requests_unset_symbols (MilterMacrosRequests *requests,
                                           MilterMacroStage      stage);
MILTER_AVAILABLE_IN_ALL
gboolean milter_macros_requests_is_empty (const MilterMacrosRequests *requests);
MILTER_AVAILABLE_IN_ALL
gboolean milter_macros_requests_equal (const MilterMacrosRequests *requests,
                                       const MilterMacrosRequests *other);
MILTER_AVAILABLE_IN_ALL
gchar *milter_macros_requests_to_string (const MilterMacrosRequests *requests);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MilterMacrosRequests, milter_macros_requests_free)

G_END_DECLS
