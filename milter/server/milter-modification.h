/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MILTER_INSIDE) && !defined (MILTER_COMPILATION)
# error "Only <milter/milter.h> can be included directly."
#endif

#include <glib-object.h>
#include <milter/core/milter-version-macros.h>

G_BEGIN_DECLS

/**
 * MilterModificationType:
 * @MILTER_MODIFICATION_TYPE_ADD_HEADER: append a header (`h`,
 *   SMFIR_ADDHEADER)
 * @MILTER_MODIFICATION_TYPE_INSERT_HEADER: insert a header at a position
 *   counted from 0 at the top (`i`, SMFIR_INSHEADER)
 * @MILTER_MODIFICATION_TYPE_CHANGE_HEADER: change the n-th header of a
 *   name (`m`, SMFIR_CHGHEADER with a non-empty value)
 * @MILTER_MODIFICATION_TYPE_DELETE_HEADER: delete the n-th header of a
 *   name (`m`, SMFIR_CHGHEADER with an empty value)
 * @MILTER_MODIFICATION_TYPE_CHANGE_FROM: change the envelope sender (`e`,
 *   SMFIR_CHGFROM)
 * @MILTER_MODIFICATION_TYPE_ADD_RECIPIENT: add a recipient, with or
 *   without ESMTP parameters (`+` SMFIR_ADDRCPT, `2` SMFIR_ADDRCPT_PAR)
 * @MILTER_MODIFICATION_TYPE_DELETE_RECIPIENT: delete a recipient (`-`,
 *   SMFIR_DELRCPT)
 * @MILTER_MODIFICATION_TYPE_REPLACE_BODY: replace the body (all `b`
 *   packets of one end-of-message, SMFIR_REPLBODY)
 * @MILTER_MODIFICATION_TYPE_QUARANTINE: quarantine the message (`q`,
 *   SMFIR_QUARANTINE)
 *
 * The kinds of change a milter can request at end-of-message.
 *
 * Since: 1.0
 */
typedef enum {
  MILTER_MODIFICATION_TYPE_ADD_HEADER,
  MILTER_MODIFICATION_TYPE_INSERT_HEADER,
  MILTER_MODIFICATION_TYPE_CHANGE_HEADER,
  MILTER_MODIFICATION_TYPE_DELETE_HEADER,
  MILTER_MODIFICATION_TYPE_CHANGE_FROM,
  MILTER_MODIFICATION_TYPE_ADD_RECIPIENT,
  MILTER_MODIFICATION_TYPE_DELETE_RECIPIENT,
  MILTER_MODIFICATION_TYPE_REPLACE_BODY,
  MILTER_MODIFICATION_TYPE_QUARANTINE,
} MilterModificationType;

/**
 * MILTER_TYPE_MODIFICATION:
 *
 * The #GType of #MilterModification.
 *
 * Since: 1.0
 */
#define MILTER_TYPE_MODIFICATION (milter_modification_get_type ())

/**
 * MilterModification:
 *
 * An opaque, immutable, reference-counted record of one change a milter
 * requested.
 *
 * Since: 1.0
 */
typedef struct _MilterModification MilterModification;

MILTER_AVAILABLE_IN_ALL
GType milter_modification_get_type (void) G_GNUC_CONST;

MILTER_AVAILABLE_IN_ALL
MilterModification *milter_modification_new_add_header (const gchar *name,
                                                        const gchar *value);
MILTER_AVAILABLE_IN_ALL
MilterModification *milter_modification_new_insert_header (guint        index,
                                                           const gchar *name,
                                                           const gchar *value);
MILTER_AVAILABLE_IN_ALL
MilterModification *milter_modification_new_change_header (const gchar *name,
                                                           guint        index,
                                                           const gchar *value);
MILTER_AVAILABLE_IN_ALL
MilterModification *milter_modification_new_delete_header (const gchar *name,
                                                           guint        index);
MILTER_AVAILABLE_IN_ALL
MilterModification *milter_modification_new_change_from (const gchar *address,
                                                         const gchar *parameters);
MILTER_AVAILABLE_IN_ALL
MilterModification *milter_modification_new_add_recipient (const gchar *address,
                                                           const gchar *parameters);
MILTER_AVAILABLE_IN_ALL
MilterModification *milter_modification_new_delete_recipient (const gchar *address);
MILTER_AVAILABLE_IN_ALL
MilterModification *milter_modification_new_replace_body (GBytes *body);
MILTER_AVAILABLE_IN_ALL
MilterModification *milter_modification_new_quarantine (const gchar *reason);

MILTER_AVAILABLE_IN_ALL
MilterModification *milter_modification_ref (MilterModification *modification);
MILTER_AVAILABLE_IN_ALL
void milter_modification_unref (MilterModification *modification);

MILTER_AVAILABLE_IN_ALL
MilterModificationType
milter_modification_get_modification_type (const MilterModification *modification);
MILTER_AVAILABLE_IN_ALL
const gchar *milter_modification_get_name (const MilterModification *modification);
MILTER_AVAILABLE_IN_ALL
const gchar *milter_modification_get_value (const MilterModification *modification);
MILTER_AVAILABLE_IN_ALL
guint milter_modification_get_index (const MilterModification *modification);
MILTER_AVAILABLE_IN_ALL
const gchar *milter_modification_get_address (const MilterModification *modification);
MILTER_AVAILABLE_IN_ALL
const gchar *milter_modification_get_parameters (const MilterModification *modification);
MILTER_AVAILABLE_IN_ALL
GBytes *milter_modification_get_body (const MilterModification *modification);
MILTER_AVAILABLE_IN_ALL
const gchar *milter_modification_get_reason (const MilterModification *modification);

MILTER_AVAILABLE_IN_ALL
gboolean milter_modification_equal (const MilterModification *modification,
                                    const MilterModification *other);
MILTER_AVAILABLE_IN_ALL
gchar *milter_modification_to_string (const MilterModification *modification);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MilterModification, milter_modification_unref)

G_END_DECLS
