/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MILTER_INSIDE) && !defined (MILTER_COMPILATION)
# error "Only <milter/milter.h> can be included directly."
#endif

#include <glib.h>
#include <milter/core/milter-version-macros.h>

G_BEGIN_DECLS

/**
 * SECTION:milter-errors
 * @title: Protocol errors
 * @short_description: Errors found in milter packets
 * @include: milter/milter.h
 *
 * Malformed packets from the peer are reported in the
 * %MILTER_DECODER_ERROR domain, on the #MilterClientContext::error signal
 * of the filter side and in the errors of #MilterServerContext on the MTA
 * side. The message names the command and the fault.
 *
 * |[<!-- language="C" -->
 * static void
 * on_error (MilterClientContext *context,
 *           GError              *error,
 *           gpointer             user_data)
 * {
 *   if (error->domain == MILTER_DECODER_ERROR)
 *     g_warning ("The MTA sent a malformed packet: %s", error->message);
 * }
 * ]|
 */

/**
 * MILTER_DECODER_ERROR:
 *
 * The error domain of malformed milter packets.
 *
 * Since: 1.0
 */
#define MILTER_DECODER_ERROR (milter_decoder_error_quark ())

/**
 * MilterDecoderError:
 * @MILTER_DECODER_ERROR_ZERO_LENGTH: a packet length of 0 (at least the
 *   command byte is required)
 * @MILTER_DECODER_ERROR_TOO_LONG: a packet longer than the configured limit
 * @MILTER_DECODER_ERROR_UNKNOWN_COMMAND: an unknown command or reply letter
 * @MILTER_DECODER_ERROR_SHORT_PAYLOAD: a fixed-size field is cut short (a
 *   negotiation under 12 bytes, a connect without family or port, a header
 *   index missing)
 * @MILTER_DECODER_ERROR_MISSING_TERMINATOR: a string without its NUL byte
 * @MILTER_DECODER_ERROR_MISSING_VALUE: a required string or payload is absent
 * @MILTER_DECODER_ERROR_EXTRA_DATA: bytes after the last field, or data in a
 *   packet that must be empty
 * @MILTER_DECODER_ERROR_INVALID_FAMILY: a connect address family other than
 *   'U', 'L', '4' or '6'
 * @MILTER_DECODER_ERROR_TOO_MANY_MACROS: more macros in one packet than the
 *   configured limit
 * @MILTER_DECODER_ERROR_INVALID_MACRO_STAGE: a macro list for an unknown
 *   stage in a negotiation reply
 * @MILTER_DECODER_ERROR_INVALID_VERSION: a protocol version below 2
 *
 * The faults the packet decoder reports.
 *
 * Since: 1.0
 */
typedef enum {
  MILTER_DECODER_ERROR_ZERO_LENGTH,
  MILTER_DECODER_ERROR_TOO_LONG,
  MILTER_DECODER_ERROR_UNKNOWN_COMMAND,
  MILTER_DECODER_ERROR_SHORT_PAYLOAD,
  MILTER_DECODER_ERROR_MISSING_TERMINATOR,
  MILTER_DECODER_ERROR_MISSING_VALUE,
  MILTER_DECODER_ERROR_EXTRA_DATA,
  MILTER_DECODER_ERROR_INVALID_FAMILY,
  MILTER_DECODER_ERROR_TOO_MANY_MACROS,
  MILTER_DECODER_ERROR_INVALID_MACRO_STAGE,
  MILTER_DECODER_ERROR_INVALID_VERSION,
} MilterDecoderError;

MILTER_AVAILABLE_IN_ALL
GQuark milter_decoder_error_quark (void);

G_END_DECLS
