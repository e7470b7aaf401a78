/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MILTER_INSIDE) && !defined (MILTER_COMPILATION)
# error "Only <milter/milter.h> can be included directly."
#endif

#include <glib.h>
#include <milter/core/milter-version-macros.h>

G_BEGIN_DECLS

/**
 * MILTER_REPLY_CODE_ERROR:
 *
 * The error domain of invalid SMTP reply codes.
 *
 * Since: 1.0
 */
#define MILTER_REPLY_CODE_ERROR (milter_reply_code_error_quark ())

/**
 * MILTER_REPLY_CODE_MAX_LINES:
 *
 * The most lines a multi-line reply may have (libmilter's MAXREPLIES).
 *
 * Since: 1.0
 */
#define MILTER_REPLY_CODE_MAX_LINES 32

/**
 * MILTER_REPLY_CODE_MAX_LINE_LENGTH:
 *
 * The longest text one reply line may carry, in bytes (libmilter's
 * MAXREPLYLEN).
 *
 * Since: 1.0
 */
#define MILTER_REPLY_CODE_MAX_LINE_LENGTH 980

/**
 * MilterReplyCodeError:
 * @MILTER_REPLY_CODE_ERROR_INVALID_CODE: the reply code is not 4xx or 5xx
 * @MILTER_REPLY_CODE_ERROR_INVALID_EXTENDED_CODE: the enhanced status code
 *   is not of the form `class.subject.detail` (RFC 3463)
 * @MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH: the enhanced status code's class
 *   differs from the reply code's first digit
 * @MILTER_REPLY_CODE_ERROR_NO_LINES: a multi-line reply without any line
 * @MILTER_REPLY_CODE_ERROR_TOO_MANY_LINES: more than
 *   %MILTER_REPLY_CODE_MAX_LINES lines
 * @MILTER_REPLY_CODE_ERROR_LINE_TOO_LONG: a line longer than
 *   %MILTER_REPLY_CODE_MAX_LINE_LENGTH bytes
 * @MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER: a control character other
 *   than TAB (such as CR or LF) inside a line's text
 * @MILTER_REPLY_CODE_ERROR_MALFORMED: a formatted reply that does not parse
 *   (found by milter_reply_code_validate())
 *
 * Faults in an SMTP reply a milter wants the MTA to send.
 *
 * Since: 1.0
 */
typedef enum {
  MILTER_REPLY_CODE_ERROR_INVALID_CODE,
  MILTER_REPLY_CODE_ERROR_INVALID_EXTENDED_CODE,
  MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH,
  MILTER_REPLY_CODE_ERROR_NO_LINES,
  MILTER_REPLY_CODE_ERROR_TOO_MANY_LINES,
  MILTER_REPLY_CODE_ERROR_LINE_TOO_LONG,
  MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER,
  MILTER_REPLY_CODE_ERROR_MALFORMED,
} MilterReplyCodeError;

MILTER_AVAILABLE_IN_ALL
GQuark milter_reply_code_error_quark (void);

MILTER_AVAILABLE_IN_ALL
gchar *milter_reply_code_format (guint         code,
                                 const gchar  *extended_code,
                                 const gchar  *message,
                                 GError      **error);

MILTER_AVAILABLE_IN_ALL
gchar *milter_reply_code_format_lines (guint                code,
                                       const gchar         *extended_code,
                                       const gchar * const *lines,
                                       GError             **error);

MILTER_AVAILABLE_IN_ALL
gboolean milter_reply_code_validate (const gchar  *reply,
                                     GError      **error);

MILTER_AVAILABLE_IN_ALL
guint milter_reply_code_get_code (const gchar *reply);

G_END_DECLS
