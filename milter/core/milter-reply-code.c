/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-reply-code.h"

#include <string.h>

/**
 * SECTION:milter-reply-code
 * @title: Reply codes
 * @short_description: Build and check the SMTP replies a milter sends
 * @include: milter/milter.h
 *
 * A milter that rejects or tempfails a command may choose the SMTP reply
 * the MTA sends to its client. The reply travels in a `y`
 * (SMFIR_REPLYCODE) packet as one text such as `550 5.7.1 Go away`, or as
 * several CRLF-separated lines for a multi-line reply.
 *
 * milter_reply_code_format() and milter_reply_code_format_lines() build
 * that text as libmilter's smfi_setreply and smfi_setmlreply do, and
 * refuse what an MTA would refuse or mangle:
 *
 * - the reply code must be 4xx or 5xx;
 * - an enhanced status code (RFC 3463) must look like `5.7.1` and be of
 *   the same class as the reply code;
 * - the text must not contain control characters other than TAB (a CR or
 *   LF would end the SMTP reply early; the others are not allowed in SMTP
 *   reply text by RFC 5321);
 * - each `%` is doubled, because Sendmail uses the text as a printf()
 *   format (Postfix turns `%%` back into `%`), and a line's text may then
 *   be at most %MILTER_REPLY_CODE_MAX_LINE_LENGTH bytes.
 *
 * Bytes from 0x80 on are passed through untouched, so UTF-8 text works
 * with MTAs and clients that accept it.
 *
 * milter_reply_code_validate() checks a reply text that was built some
 * other way, with the rules Postfix 3.12 applies to `y` packets.
 *
 * |[<!-- language="C" -->
 * g_autoptr(GError) error = NULL;
 * g_autofree gchar *reply = NULL;
 *
 * reply = milter_reply_code_format (550, "5.7.1", "Spam score 99% too high",
 *                                   &error);
 * if (reply == NULL)
 *   g_warning ("Cannot reject: %s", error->message);
 * // reply is "550 5.7.1 Spam score 99%% too high"
 * ]|
 */

/**
 * milter_reply_code_error_quark:
 *
 * The quark of %MILTER_REPLY_CODE_ERROR.
 *
 * Returns: the error domain quark
 *
 * Since: 1.0
 */
G_DEFINE_QUARK (milter-reply-code-error-quark, milter_reply_code_error)

/* Error messages quote at most this many bytes of the offending text. */
#define QUOTE_MAX 40

/* Quotes @len bytes of @text for an error message.  Control characters and
 * bytes that are not UTF-8 are escaped and long text is cut, so that the
 * message stays one readable line of valid UTF-8. */
static gchar *
quote (const gchar *text,
       gsize        len)
{
  GString *out = g_string_new ("“");
  const gchar *p = text;
  const gchar *end = text + len;
  gboolean utf8 = g_utf8_validate (text, len, NULL);

  while (p < end)
    {
      guchar c = *p;

      if ((gsize) (p - text) >= QUOTE_MAX)
        {
          g_string_append (out, "…");
          break;
        }

      if (c == '\r')
        g_string_append (out, "\\r");
      else if (c == '\n')
        g_string_append (out, "\\n");
      else if (c == '\t')
        g_string_append (out, "\\t");
      else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
        g_string_append_printf (out, "\\x%02X", c);
      else if (c >= 0x80)
        {
          const gchar *next = g_utf8_next_char (p);

          g_string_append_len (out, p, next - p);
          p = next;
          continue;
        }
      else
        g_string_append_c (out, c);
      p++;
    }

  g_string_append (out, "”");
  return g_string_free (out, FALSE);
}

/* The length of an enhanced status code `d.d{1,3}.d{1,3}` at the start of
 * @s, or 0.  Any class digit is accepted so that callers can tell a wrong
 * class from a wrong shape. */
static gsize
scan_enhanced_code (const gchar *s)
{
  gsize i = 2;
  gsize n;
  guint part;

  if (!g_ascii_isdigit (s[0]) || s[1] != '.')
    return 0;

  for (part = 0; part < 2; part++)
    {
      for (n = 0; n < 3 && g_ascii_isdigit (s[i + n]); n++)
        ;
      if (n == 0)
        return 0;
      i += n;
      if (part == 0)
        {
          if (s[i] != '.')
            return 0;
          i++;
        }
    }

  return i;
}

/* The length of the enhanced status code that opens the reply text
 * [@text, @end) as a token of its own (followed by a space or the end of
 * the line), or 0: Postfix checks the class of exactly such a token. */
static gsize
leading_enhanced_code (const gchar *text,
                       const gchar *end)
{
  gsize len = scan_enhanced_code (text);

  if (len == 0 || text + len > end)
    return 0;
  if (text + len < end && text[len] != ' ')
    return 0;
  return len;
}

static gboolean
check_code (guint    code,
            GError **error)
{
  if (code < 400 || code > 599)
    {
      g_set_error (error, MILTER_REPLY_CODE_ERROR,
                   MILTER_REPLY_CODE_ERROR_INVALID_CODE,
                   "Invalid reply code %u: must be 4xx or 5xx", code);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_extended_code (guint         code,
                     const gchar  *extended_code,
                     GError      **error)
{
  gsize len = scan_enhanced_code (extended_code);

  if (len == 0 || extended_code[len] != '\0' ||
      (extended_code[0] != '2' && extended_code[0] != '4' &&
       extended_code[0] != '5'))
    {
      g_autofree gchar *quoted = quote (extended_code,
                                        strlen (extended_code));

      g_set_error (error, MILTER_REPLY_CODE_ERROR,
                   MILTER_REPLY_CODE_ERROR_INVALID_EXTENDED_CODE,
                   "Invalid extended code %s: must be class.subject.detail "
                   "with a class of 2, 4 or 5 and up to three digits each "
                   "for subject and detail, like “5.7.1”", quoted);
      return FALSE;
    }

  if ((guint) (extended_code[0] - '0') != code / 100)
    {
      g_set_error (error, MILTER_REPLY_CODE_ERROR,
                   MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH,
                   "Extended code “%s” does not match reply code %u",
                   extended_code, code);
      return FALSE;
    }

  return TRUE;
}

static const gchar *
control_name (guchar c,
              gchar  buf[8])
{
  if (c == '\r')
    return "CR";
  if (c == '\n')
    return "LF";
  g_snprintf (buf, 8, "0x%02X", c);
  return buf;
}

/* Checks the text of reply line @line (0 for a single-line reply). */
static gboolean
check_text (const gchar  *text,
            guint         line,
            GError      **error)
{
  g_autofree gchar *what = NULL;
  g_autofree gchar *quoted = NULL;
  const gchar *p;
  gsize escaped_len = 0;

  for (p = text; *p != '\0'; p++)
    {
      guchar c = *p;

      /* TAB is the only control character RFC 5321 allows in reply text. */
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        {
          gchar buf[8];

          what = line == 0 ? g_strdup ("Reply text")
                           : g_strdup_printf ("Reply line %u", line);
          quoted = quote (text, strlen (text));
          g_set_error (error, MILTER_REPLY_CODE_ERROR,
                       MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER,
                       "%s %s contains the control character %s "
                       "at byte %" G_GSIZE_FORMAT,
                       what, quoted, control_name (c, buf),
                       (gsize) (p - text));
          return FALSE;
        }
      escaped_len += c == '%' ? 2 : 1;
    }

  if (escaped_len > MILTER_REPLY_CODE_MAX_LINE_LENGTH)
    {
      what = line == 0 ? g_strdup ("Reply text")
                       : g_strdup_printf ("Reply line %u", line);
      quoted = quote (text, strlen (text));
      g_set_error (error, MILTER_REPLY_CODE_ERROR,
                   MILTER_REPLY_CODE_ERROR_LINE_TOO_LONG,
                   "%s %s is %" G_GSIZE_FORMAT " bytes long with each %% "
                   "doubled: at most %d bytes are allowed",
                   what, quoted, escaped_len,
                   MILTER_REPLY_CODE_MAX_LINE_LENGTH);
      return FALSE;
    }

  return TRUE;
}

static void
append_escaped (GString     *out,
                const gchar *text)
{
  for (; *text != '\0'; text++)
    {
      if (*text == '%')
        g_string_append_c (out, '%');
      g_string_append_c (out, *text);
    }
}

/**
 * milter_reply_code_format:
 * @code: the SMTP reply code, 400 to 599
 * @extended_code: (nullable): the RFC 3463 enhanced status code, such as
 *   `"5.7.1"`, or %NULL for none
 * @message: (nullable): the reply text, or %NULL for none
 * @error: return location for a #GError, or %NULL
 *
 * Builds a one-line SMTP reply for a `y` packet, as libmilter's
 * smfi_setreply stores it: `"<code> <extended code> <message>"`, where
 * the extended code and the message with its preceding space are left out
 * when %NULL (an empty @message counts as %NULL). For example
 * `(550, "5.7.1", "50% off")` gives `"550 5.7.1 50%% off"` and
 * `(550, NULL, NULL)` gives `"550 "`.
 *
 * Every `%` in @message is doubled. @message must not contain control
 * characters other than TAB (%MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER),
 * and may be at most %MILTER_REPLY_CODE_MAX_LINE_LENGTH bytes long once
 * escaped (%MILTER_REPLY_CODE_ERROR_LINE_TOO_LONG). @code must be 4xx or
 * 5xx (%MILTER_REPLY_CODE_ERROR_INVALID_CODE); @extended_code must be
 * `class.subject.detail` (%MILTER_REPLY_CODE_ERROR_INVALID_EXTENDED_CODE)
 * with the class equal to the first digit of @code
 * (%MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH).
 *
 * Without @extended_code, a @message that itself starts with an enhanced
 * status code of another class (`"4.7.1 try later"` for 550) fails with
 * %MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH, since Postfix would refuse the
 * reply.
 *
 * The result always passes milter_reply_code_validate().
 *
 * Returns: (transfer full): the reply text, or %NULL with @error set
 *
 * Since: 1.0
 */
gchar *
milter_reply_code_format (guint         code,
                          const gchar  *extended_code,
                          const gchar  *message,
                          GError      **error)
{
  GString *reply;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_code (code, error))
    return NULL;
  if (extended_code != NULL &&
      !check_extended_code (code, extended_code, error))
    return NULL;
  if (message != NULL && !check_text (message, 0, error))
    return NULL;

  if (extended_code == NULL && message != NULL)
    {
      gsize len = leading_enhanced_code (message, message + strlen (message));

      if (len > 0 && (guint) (message[0] - '0') != code / 100)
        {
          g_set_error (error, MILTER_REPLY_CODE_ERROR,
                       MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH,
                       "Extended code “%.*s” at the start of the reply text "
                       "does not match reply code %u",
                       (int) len, message, code);
          return NULL;
        }
    }

  reply = g_string_new (NULL);
  g_string_append_printf (reply, "%u ", code);
  if (extended_code != NULL)
    g_string_append (reply, extended_code);
  if (message != NULL && *message != '\0')
    {
      if (extended_code != NULL)
        g_string_append_c (reply, ' ');
      append_escaped (reply, message);
    }

  return g_string_free (reply, FALSE);
}

/**
 * milter_reply_code_format_lines:
 * @code: the SMTP reply code, 400 to 599
 * @extended_code: (nullable): the RFC 3463 enhanced status code, such as
 *   `"5.7.1"`, or %NULL for `"4.0.0"` or `"5.0.0"` by the class of @code
 * @lines: (array zero-terminated=1) (nullable): the text of each line
 * @error: return location for a #GError, or %NULL
 *
 * Builds a multi-line SMTP reply for a `y` packet, as libmilter's
 * smfi_setmlreply stores it. Lines are joined with CRLF, without one
 * after the last; every line but the last reads `"<code>-<xcode> <text>"`
 * and the last `"<code> <xcode> <text>"`. A line with empty text ends
 * right after the extended code. For example `(550, NULL, {"a", "b"})`
 * gives `"550-5.0.0 a\r\n550 5.0.0 b"`.
 *
 * There must be 1 to %MILTER_REPLY_CODE_MAX_LINES lines
 * (%MILTER_REPLY_CODE_ERROR_NO_LINES for none, including a %NULL @lines;
 * %MILTER_REPLY_CODE_ERROR_TOO_MANY_LINES for more). The code, the
 * extended code and each line's text are checked as in
 * milter_reply_code_format(), and each line's text has its `%` doubled.
 *
 * The result always passes milter_reply_code_validate().
 *
 * Returns: (transfer full): the reply text, or %NULL with @error set
 *
 * Since: 1.0
 */
gchar *
milter_reply_code_format_lines (guint                code,
                                const gchar         *extended_code,
                                const gchar * const *lines,
                                GError             **error)
{
  const gchar *xcode = extended_code;
  GString *reply;
  guint n_lines = 0;
  guint i;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_code (code, error))
    return NULL;
  if (xcode == NULL)
    xcode = code < 500 ? "4.0.0" : "5.0.0";
  else if (!check_extended_code (code, xcode, error))
    return NULL;

  if (lines != NULL)
    while (lines[n_lines] != NULL)
      n_lines++;

  if (n_lines == 0)
    {
      g_set_error (error, MILTER_REPLY_CODE_ERROR,
                   MILTER_REPLY_CODE_ERROR_NO_LINES,
                   "Multi-line reply %u %s has no lines: at least one "
                   "is needed", code, xcode);
      return NULL;
    }
  if (n_lines > MILTER_REPLY_CODE_MAX_LINES)
    {
      g_set_error (error, MILTER_REPLY_CODE_ERROR,
                   MILTER_REPLY_CODE_ERROR_TOO_MANY_LINES,
                   "Multi-line reply %u %s has %u lines: at most %d "
                   "are allowed", code, xcode, n_lines,
                   MILTER_REPLY_CODE_MAX_LINES);
      return NULL;
    }

  for (i = 0; i < n_lines; i++)
    if (!check_text (lines[i], i + 1, error))
      return NULL;

  reply = g_string_new (NULL);
  for (i = 0; i < n_lines; i++)
    {
      gboolean last = i + 1 == n_lines;

      g_string_append_printf (reply, "%u%c%s", code, last ? ' ' : '-',
                              xcode);
      if (*lines[i] != '\0')
        {
          g_string_append_c (reply, ' ');
          append_escaped (reply, lines[i]);
        }
      if (!last)
        g_string_append (reply, "\r\n");
    }

  return g_string_free (reply, FALSE);
}

/* Checks one line [@line, @end) of a reply; @first is the first line, whose
 * code every line must repeat. */
static gboolean
check_reply_line (const gchar  *line,
                  const gchar  *end,
                  const gchar  *first,
                  guint         line_no,
                  gboolean      last,
                  GError      **error)
{
  g_autofree gchar *quoted = NULL;
  gsize len = end - line;
  gsize xlen;

  if (len < 3 || (line[0] != '4' && line[0] != '5') ||
      !g_ascii_isdigit (line[1]) || !g_ascii_isdigit (line[2]))
    {
      quoted = quote (line, len);
      g_set_error (error, MILTER_REPLY_CODE_ERROR,
                   MILTER_REPLY_CODE_ERROR_INVALID_CODE,
                   "Reply line %u %s does not start with a 4xx or 5xx code",
                   line_no, quoted);
      return FALSE;
    }

  if (memcmp (line, first, 3) != 0)
    {
      quoted = quote (line, len);
      g_set_error (error, MILTER_REPLY_CODE_ERROR,
                   MILTER_REPLY_CODE_ERROR_MALFORMED,
                   "Reply line %u %s has code %.3s, but the first line "
                   "has %.3s", line_no, quoted, line, first);
      return FALSE;
    }

  if (len == 3 || line[3] != (last ? ' ' : '-'))
    {
      quoted = quote (line, len);
      g_set_error (error, MILTER_REPLY_CODE_ERROR,
                   MILTER_REPLY_CODE_ERROR_MALFORMED,
                   last ? "Reply line %u %s must have a space after its "
                          "code, as it is the last line"
                        : "Reply line %u %s must have a “-” after its "
                          "code, as more lines follow",
                   line_no, quoted);
      return FALSE;
    }

  xlen = leading_enhanced_code (line + 4, end);
  if (xlen > 0 && line[4] != line[0])
    {
      quoted = quote (line, len);
      g_set_error (error, MILTER_REPLY_CODE_ERROR,
                   MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH,
                   "Extended code “%.*s” in reply line %u %s does not "
                   "match reply code %.3s",
                   (int) xlen, line + 4, line_no, quoted, line);
      return FALSE;
    }

  return TRUE;
}

/**
 * milter_reply_code_validate:
 * @reply: a reply text, as sent in a `y` packet without its NUL
 * @error: return location for a #GError, or %NULL
 *
 * Checks @reply with the rules Postfix 3.12 applies to `y` packets
 * (milter8_valid_smtp_reply); Postfix treats a reply that breaks them
 * as a configuration error.
 *
 * @reply must be non-empty, with lines separated by CRLF and no CRLF after
 * the last line; a bare CR or LF is %MILTER_REPLY_CODE_ERROR_MALFORMED.
 * Every line must start with a 4xx or 5xx code
 * (%MILTER_REPLY_CODE_ERROR_INVALID_CODE), the same on all lines, followed
 * by `-` on every line but the last and by a space on the last
 * (%MILTER_REPLY_CODE_ERROR_MALFORMED). When a line's text starts with an
 * enhanced status code (`d.d.d` followed by a space or the end of the
 * line), its class must be the first digit of the reply code
 * (%MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH).
 *
 * Line lengths and other control characters are not checked here, as
 * Postfix does not check them either.
 *
 * Returns: %TRUE if @reply is valid, %FALSE with @error set otherwise
 *
 * Since: 1.0
 */
gboolean
milter_reply_code_validate (const gchar  *reply,
                            GError      **error)
{
  const gchar *line = reply;
  guint line_no = 1;

  g_return_val_if_fail (reply != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (*reply == '\0')
    {
      g_set_error_literal (error, MILTER_REPLY_CODE_ERROR,
                           MILTER_REPLY_CODE_ERROR_MALFORMED,
                           "Empty reply “”: expected a line such as "
                           "“550 5.7.1 Rejected”");
      return FALSE;
    }

  for (;;)
    {
      const gchar *end = line + strcspn (line, "\r\n");
      gboolean last = *end == '\0';

      if (!last && (end[0] != '\r' || end[1] != '\n'))
        {
          /* Quote up to the next line break, to show what follows. */
          const gchar *next = end + 1 + strcspn (end + 1, "\r\n");
          g_autofree gchar *quoted = quote (line, next - line);

          g_set_error (error, MILTER_REPLY_CODE_ERROR,
                       MILTER_REPLY_CODE_ERROR_MALFORMED,
                       "Reply line %u %s contains a bare %s at byte %"
                       G_GSIZE_FORMAT ": lines must be separated by CRLF",
                       line_no, quoted, *end == '\r' ? "CR" : "LF",
                       (gsize) (end - line));
          return FALSE;
        }

      if (!last && end[2] == '\0')
        {
          g_autofree gchar *quoted = quote (line, end - line);

          g_set_error (error, MILTER_REPLY_CODE_ERROR,
                       MILTER_REPLY_CODE_ERROR_MALFORMED,
                       "Reply line %u %s is followed by a CRLF, but no "
                       "line follows it", line_no, quoted);
          return FALSE;
        }

      if (!check_reply_line (line, end, reply, line_no, last, error))
        return FALSE;

      if (last)
        return TRUE;
      line = end + 2;
      line_no++;
    }
}

/**
 * milter_reply_code_get_code:
 * @reply: (nullable): a reply text
 *
 * Reads the reply code at the start of @reply. Only the first three bytes
 * are looked at (as libmilter looks only at the first one to choose
 * between a tempfail and a reject reply); @reply is not otherwise checked,
 * so `"250 ok"` gives 250. Use milter_reply_code_validate() for that.
 *
 * Returns: the code, or 0 if @reply is %NULL or does not start with
 *   three digits
 *
 * Since: 1.0
 */
guint
milter_reply_code_get_code (const gchar *reply)
{
  if (reply == NULL || !g_ascii_isdigit (reply[0]) ||
      !g_ascii_isdigit (reply[1]) || !g_ascii_isdigit (reply[2]))
    return 0;

  return (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
}
