/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "milter-macros-requests.h"

G_BEGIN_DECLS

/* Sets the names of @stage from a list as it comes off the wire: split
 * at spaces, tabs, line ends and commas (as Postfix and Sendmail read
 * it), names that are not valid skipped. The peer is not trusted. */
void milter_macros_requests_set_wire_list (MilterMacrosRequests *requests,
                                           MilterMacroStage      stage,
                                           const gchar          *list);

G_END_DECLS
