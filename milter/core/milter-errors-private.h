/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Sets a G_IO_ERROR for a failed system call's errno. */
void milter_set_io_error_from_errno (GError **error,
                                     int      saved_errno);

G_END_DECLS
