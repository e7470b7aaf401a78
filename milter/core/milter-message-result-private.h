/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "milter-message-result.h"

G_BEGIN_DECLS

/* Empties @result for the next message, keeping its allocations: the
 * context reuses its result when nobody else holds a reference. */
void milter_message_result_reset (MilterMessageResult *result);

G_END_DECLS
