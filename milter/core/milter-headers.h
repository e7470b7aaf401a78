/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MILTER_INSIDE) && !defined (MILTER_COMPILATION)
# error "Only <milter/milter.h> can be included directly."
#endif

#include <glib-object.h>
#include <milter/core/milter-version-macros.h>

G_BEGIN_DECLS

/**
 * MILTER_TYPE_HEADERS:
 *
 * The #GType of #MilterHeaders.
 *
 * Since: 1.0
 */
#define MILTER_TYPE_HEADERS (milter_headers_get_type ())

/**
 * MilterHeaders:
 *
 * An opaque, reference-counted list of headers.
 *
 * Since: 1.0
 */
typedef struct _MilterHeaders MilterHeaders;

MILTER_AVAILABLE_IN_ALL
GType milter_headers_get_type (void) G_GNUC_CONST;

MILTER_AVAILABLE_IN_ALL
MilterHeaders *milter_headers_new (void);
MILTER_AVAILABLE_IN_ALL
MilterHeaders *milter_headers_ref (MilterHeaders *headers);
MILTER_AVAILABLE_IN_ALL
void milter_headers_unref (MilterHeaders *headers);
MILTER_AVAILABLE_IN_ALL
MilterHeaders *milter_headers_copy (const MilterHeaders *headers);

MILTER_AVAILABLE_IN_ALL
guint milter_headers_get_length (const MilterHeaders *headers);
MILTER_AVAILABLE_IN_ALL
const gchar *milter_headers_get_name (const MilterHeaders *headers,
                                      guint                index);
MILTER_AVAILABLE_IN_ALL
const gchar *milter_headers_get_value (const MilterHeaders *headers,
                                       guint                index);
MILTER_AVAILABLE_IN_ALL
const gchar *milter_headers_lookup (const MilterHeaders *headers,
                                    const gchar         *name,
                                    guint                nth);
MILTER_AVAILABLE_IN_ALL
guint milter_headers_count (const MilterHeaders *headers,
                            const gchar         *name);

MILTER_AVAILABLE_IN_ALL
void milter_headers_add (MilterHeaders *headers,
                         const gchar   *name,
                         const gchar   *value);
MILTER_AVAILABLE_IN_ALL
void milter_headers_insert (MilterHeaders *headers,
                            guint          index,
                            const gchar   *name,
                            const gchar   *value);
MILTER_AVAILABLE_IN_ALL
void milter_headers_change (MilterHeaders *headers,
                            const gchar   *name,
                            guint          nth,
                            const gchar   *value);
MILTER_AVAILABLE_IN_ALL
gboolean milter_headers_remove (MilterHeaders *headers,
                                const gchar   *name,
                                guint          nth);
MILTER_AVAILABLE_IN_ALL
void milter_headers_clear (MilterHeaders *headers);
MILTER_AVAILABLE_IN_ALL
gchar *milter_headers_to_string (const MilterHeaders *headers);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MilterHeaders, milter_headers_unref)

G_END_DECLS
