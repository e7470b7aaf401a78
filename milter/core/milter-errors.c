/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-errors.h"
#include "milter-errors-private.h"

/**
 * milter_decoder_error_quark:
 *
 * The quark of %MILTER_DECODER_ERROR.
 *
 * Returns: the error domain quark
 *
 * Since: 1.0
 */
G_DEFINE_QUARK (milter-decoder-error-quark, milter_decoder_error)

void
milter_set_io_error_from_errno (GError **error,
                                int      saved_errno)
{
  g_set_error_literal (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                       g_strerror (saved_errno));
}
