/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-errors.h"

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
