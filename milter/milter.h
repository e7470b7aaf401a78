/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The only header applications include. */

#define MILTER_INSIDE
# include <milter/core/milter-version-macros.h>
# include <milter/core/milter-enums.h>
# include <milter/milter-enum-types.h>
# include <milter/core/milter-errors.h>
# include <milter/core/milter-option.h>
# include <milter/core/milter-macros-requests.h>
# include <milter/core/milter-headers.h>
# include <milter/core/milter-message-result.h>
# include <milter/core/milter-reply-code.h>
# include <milter/core/milter-connection-spec.h>
/* client */
# include <milter/client/milter-client-context.h>
# include <milter/client/milter-client.h>
/* server */
# include <milter/server/milter-modification.h>
# include <milter/server/milter-message.h>
# include <milter/server/milter-server-context.h>
#undef MILTER_INSIDE
