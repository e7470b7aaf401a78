/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "milter-client.h"

G_BEGIN_DECLS

/* How long (µs) a session waits with nothing to do before its descriptor
 * goes to the client's parking lot; tests shorten it. */
void milter_client_set_park_delay (MilterClient *client,
                                   gint64        delay);

G_END_DECLS
