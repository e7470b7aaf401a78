/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include <glib.h>
#include <milter/core/milter-reply-code.h>

#define MAX_LEN MILTER_REPLY_CODE_MAX_LINE_LENGTH

typedef struct {
  guint        code;
  const gchar *extended_code;
  const gchar *message;
  const gchar *expected;
} FormatCase;

static const FormatCase format_cases[] = {
  { 550, NULL, NULL, "550 " },
  { 550, "5.7.1", NULL, "550 5.7.1" },
  { 550, NULL, "no", "550 no" },
  { 550, "5.7.1", "50% off", "550 5.7.1 50%% off" },
  { 550, "5.7.1", "", "550 5.7.1" },
  { 550, NULL, "", "550 " },
  { 400, "4.0.0", "low", "400 4.0.0 low" },
  { 599, "5.999.999", "high", "599 5.999.999 high" },
  { 421, "4.7.0", "Closing", "421 4.7.0 Closing" },
  { 451, NULL, "try\tlater", "451 try\tlater" },
  { 550, NULL, "%%", "550 %%%%" },
  { 550, NULL, "5.7.1 matching class", "550 5.7.1 matching class" },
  { 550, NULL, "4.7.1x is not a code", "550 4.7.1x is not a code" },
  { 550, NULL, "caf\xc3\xa9", "550 caf\xc3\xa9" },
};

typedef struct {
  guint        code;
  const gchar *extended_code;
  const gchar *lines[4];
  const gchar *expected;
} FormatLinesCase;

static const FormatLinesCase format_lines_cases[] = {
  { 550, NULL, { "l1", "l2", "l3", NULL },
    "550-5.0.0 l1\r\n550-5.0.0 l2\r\n550 5.0.0 l3" },
  { 451, NULL, { "x", NULL },
    "451 4.0.0 x" },
  { 550, "5.7.0", { "l1", "l2", NULL },
    "550-5.7.0 l1\r\n550 5.7.0 l2" },
  { 550, "5.7.1", { "", "b", NULL },
    "550-5.7.1\r\n550 5.7.1 b" },
  { 550, "5.7.1", { "a", "", NULL },
    "550-5.7.1 a\r\n550 5.7.1" },
  { 421, "4.7.0", { "100% busy", NULL },
    "421 4.7.0 100%% busy" },
  { 550, NULL, { "", NULL },
    "550 5.0.0" },
};

static void
test_format (void)
{
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (format_cases); i++)
    {
      const FormatCase *c = &format_cases[i];
      g_autoptr(GError) error = NULL;
      g_autofree gchar *reply = NULL;

      reply = milter_reply_code_format (c->code, c->extended_code,
                                        c->message, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (reply, ==, c->expected);
    }
}

static void
assert_format_error (guint        code,
                     const gchar *extended_code,
                     const gchar *message,
                     gint         expected)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *reply = NULL;

  reply = milter_reply_code_format (code, extended_code, message, &error);
  g_assert_error (error, MILTER_REPLY_CODE_ERROR, expected);
  g_assert_null (reply);
  g_assert_nonnull (error->message);
  g_assert_cmpstr (error->message, !=, "");

  /* The NULL-error path must fail the same way without crashing. */
  g_assert_null (milter_reply_code_format (code, extended_code, message,
                                           NULL));
}

static void
test_format_invalid_code (void)
{
  g_autoptr(GError) error = NULL;

  assert_format_error (250, NULL, "ok", MILTER_REPLY_CODE_ERROR_INVALID_CODE);
  assert_format_error (600, NULL, NULL, MILTER_REPLY_CODE_ERROR_INVALID_CODE);
  assert_format_error (99, NULL, NULL, MILTER_REPLY_CODE_ERROR_INVALID_CODE);
  assert_format_error (0, NULL, NULL, MILTER_REPLY_CODE_ERROR_INVALID_CODE);
  assert_format_error (399, NULL, NULL, MILTER_REPLY_CODE_ERROR_INVALID_CODE);
  assert_format_error (4000, NULL, NULL, MILTER_REPLY_CODE_ERROR_INVALID_CODE);
  /* The code is checked before the extended code. */
  assert_format_error (250, "2.0.0", NULL,
                       MILTER_REPLY_CODE_ERROR_INVALID_CODE);

  g_assert_null (milter_reply_code_format (250, NULL, NULL, &error));
  g_assert_cmpstr (error->message, ==,
                   "Invalid reply code 250: must be 4xx or 5xx");
}

static void
test_format_invalid_extended_code (void)
{
  static const gchar *const bad[] = {
    "5.7", "5.7.1.1", "5.1234.1", "5.7.1234", "x.7.1", "5.7.1 ", " 5.7.1",
    "5.7.x", "5..1", "5.7.", "", "5", "55.7.1", "3.7.1", "1.0.0", "5,7,1",
    "5.7.1\r\n", "5.-7.1",
  };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (bad); i++)
    assert_format_error (550, bad[i], "x",
                         MILTER_REPLY_CODE_ERROR_INVALID_EXTENDED_CODE);
}

static void
test_format_class_mismatch (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *reply = NULL;

  assert_format_error (550, "4.7.1", "x",
                       MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH);
  assert_format_error (451, "5.7.1", "x",
                       MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH);
  assert_format_error (550, "2.0.0", NULL,
                       MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH);
  /* Without an extended code, a text that starts with one of another
   * class would be refused by Postfix. */
  assert_format_error (550, NULL, "4.7.1 try later",
                       MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH);
  assert_format_error (451, NULL, "5.7.1",
                       MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH);

  reply = milter_reply_code_format (550, "4.7.1", NULL, &error);
  g_assert_null (reply);
  g_assert_cmpstr (error->message, ==,
                   "Extended code “4.7.1” does not match reply code 550");
}

static void
test_format_invalid_character (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *reply = NULL;

  assert_format_error (550, NULL, "a\rb",
                       MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER);
  assert_format_error (550, "5.7.1", "a\nb",
                       MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER);
  assert_format_error (550, NULL, "a\r\nb",
                       MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER);
  assert_format_error (550, NULL, "trailing\n",
                       MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER);
  assert_format_error (550, NULL, "bell\a",
                       MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER);
  assert_format_error (550, NULL, "esc\x1b[0m",
                       MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER);
  assert_format_error (550, NULL, "del\x7f",
                       MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER);

  /* The message names the character and escapes it in the quote. */
  reply = milter_reply_code_format (550, NULL, "a\rb", &error);
  g_assert_null (reply);
  g_assert_cmpstr (error->message, ==,
                   "Reply text “a\\rb” contains the control character CR "
                   "at byte 1");
}

static void
test_format_line_too_long (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *max = g_strnfill (MAX_LEN, 'a');
  g_autofree gchar *over = g_strnfill (MAX_LEN + 1, 'a');
  g_autofree gchar *percent_ok = g_strnfill (MAX_LEN / 2, '%');
  g_autofree gchar *percent_over = g_strnfill (MAX_LEN / 2 + 1, '%');
  g_autofree gchar *reply = NULL;
  g_autofree gchar *expected = NULL;
  g_autofree gchar *escaped = NULL;

  g_assert_cmpuint (strlen (over), ==, 981);
  g_assert_cmpuint (strlen (percent_ok), ==, 490);

  reply = milter_reply_code_format (550, "5.7.1", max, &error);
  g_assert_no_error (error);
  expected = g_strconcat ("550 5.7.1 ", max, NULL);
  g_assert_cmpstr (reply, ==, expected);
  g_clear_pointer (&reply, g_free);
  g_clear_pointer (&expected, g_free);

  assert_format_error (550, "5.7.1", over,
                       MILTER_REPLY_CODE_ERROR_LINE_TOO_LONG);
  assert_format_error (550, NULL, over,
                       MILTER_REPLY_CODE_ERROR_LINE_TOO_LONG);

  /* 490 '%' become 980 bytes: just fits. */
  reply = milter_reply_code_format (550, NULL, percent_ok, &error);
  g_assert_no_error (error);
  escaped = g_strnfill (MAX_LEN, '%');
  expected = g_strconcat ("550 ", escaped, NULL);
  g_assert_cmpstr (reply, ==, expected);

  /* 491 '%' become 982 bytes. */
  assert_format_error (550, NULL, percent_over,
                       MILTER_REPLY_CODE_ERROR_LINE_TOO_LONG);
}

static void
test_format_lines (void)
{
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (format_lines_cases); i++)
    {
      const FormatLinesCase *c = &format_lines_cases[i];
      g_autoptr(GError) error = NULL;
      g_autofree gchar *reply = NULL;

      reply = milter_reply_code_format_lines (c->code, c->extended_code,
                                              c->lines, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (reply, ==, c->expected);
    }
}

static void
assert_format_lines_error (guint                code,
                           const gchar         *extended_code,
                           const gchar * const *lines,
                           gint                 expected)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *reply = NULL;

  reply = milter_reply_code_format_lines (code, extended_code, lines,
                                          &error);
  g_assert_error (error, MILTER_REPLY_CODE_ERROR, expected);
  g_assert_null (reply);
  g_assert_cmpstr (error->message, !=, "");
}

/* Returns a NULL-terminated array of @n copies of "line". */
static const gchar **
make_lines (guint n)
{
  const gchar **lines = g_new0 (const gchar *, n + 1);
  guint i;

  for (i = 0; i < n; i++)
    lines[i] = "line";
  return lines;
}

static void
test_format_lines_count (void)
{
  static const gchar *const none[] = { NULL };
  g_autoptr(GError) error = NULL;
  g_autofree const gchar **max = make_lines (MILTER_REPLY_CODE_MAX_LINES);
  g_autofree const gchar **over = make_lines (MILTER_REPLY_CODE_MAX_LINES + 1);
  g_autofree gchar *reply = NULL;
  g_auto(GStrv) split = NULL;

  assert_format_lines_error (550, NULL, none,
                             MILTER_REPLY_CODE_ERROR_NO_LINES);
  assert_format_lines_error (550, "5.7.1", NULL,
                             MILTER_REPLY_CODE_ERROR_NO_LINES);
  assert_format_lines_error (550, NULL, (const gchar * const *) over,
                             MILTER_REPLY_CODE_ERROR_TOO_MANY_LINES);

  reply = milter_reply_code_format_lines (550, NULL,
                                          (const gchar * const *) max,
                                          &error);
  g_assert_no_error (error);
  split = g_strsplit (reply, "\r\n", -1);
  g_assert_cmpuint (g_strv_length (split), ==, MILTER_REPLY_CODE_MAX_LINES);
  g_assert_cmpstr (split[0], ==, "550-5.0.0 line");
  g_assert_cmpstr (split[MILTER_REPLY_CODE_MAX_LINES - 2], ==,
                   "550-5.0.0 line");
  g_assert_cmpstr (split[MILTER_REPLY_CODE_MAX_LINES - 1], ==,
                   "550 5.0.0 line");
}

static void
test_format_lines_invalid (void)
{
  static const gchar *const ok[] = { "a", NULL };
  static const gchar *const with_cr[] = { "a", "b\rc", NULL };
  static const gchar *const with_lf[] = { "a\nb", "c", NULL };
  static const gchar *const with_nul_ctl[] = { "a", "\x01", NULL };
  g_autoptr(GError) error = NULL;
  g_autofree gchar *over = g_strnfill (MAX_LEN + 1, 'a');
  g_autofree gchar *percent_ok = g_strnfill (MAX_LEN / 2, '%');
  g_autofree gchar *percent_over = g_strnfill (MAX_LEN / 2 + 1, '%');
  const gchar *too_long[] = { "a", over, NULL };
  const gchar *fits[] = { percent_ok, percent_ok, NULL };
  const gchar *percent_too_long[] = { percent_ok, percent_over, NULL };
  g_autofree gchar *reply = NULL;

  assert_format_lines_error (250, NULL, ok,
                             MILTER_REPLY_CODE_ERROR_INVALID_CODE);
  assert_format_lines_error (600, NULL, ok,
                             MILTER_REPLY_CODE_ERROR_INVALID_CODE);
  assert_format_lines_error (550, "5.7", ok,
                             MILTER_REPLY_CODE_ERROR_INVALID_EXTENDED_CODE);
  assert_format_lines_error (550, "5.7.1 ", ok,
                             MILTER_REPLY_CODE_ERROR_INVALID_EXTENDED_CODE);
  assert_format_lines_error (550, "4.7.1", ok,
                             MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH);
  assert_format_lines_error (451, "5.7.1", ok,
                             MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH);
  assert_format_lines_error (550, NULL, with_cr,
                             MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER);
  assert_format_lines_error (550, NULL, with_lf,
                             MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER);
  assert_format_lines_error (550, NULL, with_nul_ctl,
                             MILTER_REPLY_CODE_ERROR_INVALID_CHARACTER);
  assert_format_lines_error (550, NULL, too_long,
                             MILTER_REPLY_CODE_ERROR_LINE_TOO_LONG);
  assert_format_lines_error (550, NULL, percent_too_long,
                             MILTER_REPLY_CODE_ERROR_LINE_TOO_LONG);

  /* The limit is per line, not for the whole reply. */
  reply = milter_reply_code_format_lines (550, NULL, fits, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (reply), ==, 2 * (10 + MAX_LEN) + 2);

  /* The error names the line. */
  g_clear_pointer (&reply, g_free);
  reply = milter_reply_code_format_lines (550, NULL, with_cr, &error);
  g_assert_null (reply);
  g_assert_cmpstr (error->message, ==,
                   "Reply line 2 “b\\rc” contains the control character CR "
                   "at byte 1");
}

static void
test_validate_formatted (void)
{
  static const gchar *const lines_one[] = { "only", NULL };
  static const gchar *const lines_pct[] = { "%", "%%", "50% off", NULL };
  g_autofree const gchar **max = make_lines (MILTER_REPLY_CODE_MAX_LINES);
  g_autofree gchar *long_text = g_strnfill (MAX_LEN / 2, '%');
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (format_cases); i++)
    {
      const FormatCase *c = &format_cases[i];
      g_autoptr(GError) error = NULL;
      g_autofree gchar *reply = NULL;

      reply = milter_reply_code_format (c->code, c->extended_code,
                                        c->message, NULL);
      g_assert_nonnull (reply);
      g_assert_true (milter_reply_code_validate (reply, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (milter_reply_code_get_code (reply), ==, c->code);
    }

  for (i = 0; i < G_N_ELEMENTS (format_lines_cases); i++)
    {
      const FormatLinesCase *c = &format_lines_cases[i];
      g_autoptr(GError) error = NULL;
      g_autofree gchar *reply = NULL;

      reply = milter_reply_code_format_lines (c->code, c->extended_code,
                                              c->lines, NULL);
      g_assert_nonnull (reply);
      g_assert_true (milter_reply_code_validate (reply, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (milter_reply_code_get_code (reply), ==, c->code);
    }

  /* A few more built on the spot, including the largest ones. */
    {
      g_autoptr(GError) error = NULL;
      g_autofree gchar *a = NULL;
      g_autofree gchar *b = NULL;
      g_autofree gchar *c = NULL;
      g_autofree gchar *d = NULL;

      a = milter_reply_code_format (554, "5.7.1", long_text, &error);
      g_assert_no_error (error);
      b = milter_reply_code_format_lines (421, "4.7.0", lines_one, &error);
      g_assert_no_error (error);
      c = milter_reply_code_format_lines (450, NULL, lines_pct, &error);
      g_assert_no_error (error);
      d = milter_reply_code_format_lines (550, NULL,
                                          (const gchar * const *) max,
                                          &error);
      g_assert_no_error (error);

      g_assert_true (milter_reply_code_validate (a, &error));
      g_assert_true (milter_reply_code_validate (b, &error));
      g_assert_true (milter_reply_code_validate (c, &error));
      g_assert_true (milter_reply_code_validate (d, &error));
      g_assert_no_error (error);
    }
}

static void
test_validate_valid (void)
{
  static const gchar *const good[] = {
    "550 ",
    "550 5.7.1",
    "550 5.7.1 Rejected",
    "451 4.7.1 try later",
    "421 4.7.0 Closing",
    "550 no enhanced code",
    "550 4.7.1x is not a token",
    "550 4.7 is not a token",
    "550-5.7.1 a\r\n550 5.7.1 b",
    "550-a\r\n550-b\r\n550 c",
    "550-\r\n550 ",
    "550 a\tb",
  };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_true (milter_reply_code_validate (good[i], &error));
      g_assert_no_error (error);
    }
}

typedef struct {
  const gchar *reply;
  gint         expected;
} ValidateCase;

static void
test_validate_invalid (void)
{
  static const ValidateCase bad[] = {
    { "", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550 ok\r\n", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550-a\r\n550 b\r\n", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550-a\r\n", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "\r\n", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550-a\n550 b", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550 a\nb", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550 a\rb", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550-a\r\r\n550 b", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550 a\r", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550x", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550-a", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550-a\r\n451 b", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550-a\r\n551 b", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550 a\r\n550 b", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "550-a\r\n550\r\n550 c", MILTER_REPLY_CODE_ERROR_MALFORMED },
    { "250 ok", MILTER_REPLY_CODE_ERROR_INVALID_CODE },
    { "354 go", MILTER_REPLY_CODE_ERROR_INVALID_CODE },
    { "650 x", MILTER_REPLY_CODE_ERROR_INVALID_CODE },
    { "55", MILTER_REPLY_CODE_ERROR_INVALID_CODE },
    { "5x0 a", MILTER_REPLY_CODE_ERROR_INVALID_CODE },
    { " 550 a", MILTER_REPLY_CODE_ERROR_INVALID_CODE },
    { "550-a\r\nb", MILTER_REPLY_CODE_ERROR_INVALID_CODE },
    { "550-a\r\n250 b", MILTER_REPLY_CODE_ERROR_INVALID_CODE },
    { "550 4.7.1 x", MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH },
    { "451 5.7.1 x", MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH },
    { "550 2.0.0", MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH },
    { "550-5.7.1 a\r\n550 4.7.1 b", MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH },
    { "550-4.7.1\r\n550 5.7.1 b", MILTER_REPLY_CODE_ERROR_CLASS_MISMATCH },
  };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;

      g_test_message ("reply %" G_GSIZE_FORMAT, i);
      g_assert_false (milter_reply_code_validate (bad[i].reply, &error));
      g_assert_error (error, MILTER_REPLY_CODE_ERROR, bad[i].expected);
      g_assert_cmpstr (error->message, !=, "");
      g_assert_false (milter_reply_code_validate (bad[i].reply, NULL));
    }
}

static void
test_validate_messages (void)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (milter_reply_code_validate ("550 4.7.1 x", &error));
  g_assert_cmpstr (error->message, ==,
                   "Extended code “4.7.1” in reply line 1 “550 4.7.1 x” "
                   "does not match reply code 550");
  g_clear_error (&error);

  g_assert_false (milter_reply_code_validate ("550-a\r\n451 b", &error));
  g_assert_cmpstr (error->message, ==,
                   "Reply line 2 “451 b” has code 451, but the first line "
                   "has 550");
  g_clear_error (&error);

  g_assert_false (milter_reply_code_validate ("550 ok\r\n", &error));
  g_assert_cmpstr (error->message, ==,
                   "Reply line 1 “550 ok” is followed by a CRLF, but no "
                   "line follows it");
  g_clear_error (&error);

  g_assert_false (milter_reply_code_validate ("550 a\nb", &error));
  g_assert_cmpstr (error->message, ==,
                   "Reply line 1 “550 a\\nb” contains a bare LF at byte 5: "
                   "lines must be separated by CRLF");
}

static void
test_validate_null (void)
{
  if (g_test_subprocess ())
    {
      g_assert_false (milter_reply_code_validate (NULL, NULL));
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*CRITICAL*reply != NULL*");
}

static void
test_get_code (void)
{
  g_assert_cmpuint (milter_reply_code_get_code (NULL), ==, 0);
  g_assert_cmpuint (milter_reply_code_get_code (""), ==, 0);
  g_assert_cmpuint (milter_reply_code_get_code ("5"), ==, 0);
  g_assert_cmpuint (milter_reply_code_get_code ("55"), ==, 0);
  g_assert_cmpuint (milter_reply_code_get_code ("5x0 a"), ==, 0);
  g_assert_cmpuint (milter_reply_code_get_code (" 550 a"), ==, 0);
  g_assert_cmpuint (milter_reply_code_get_code ("abc"), ==, 0);
  g_assert_cmpuint (milter_reply_code_get_code ("550"), ==, 550);
  g_assert_cmpuint (milter_reply_code_get_code ("550 5.7.1 no"), ==, 550);
  g_assert_cmpuint (milter_reply_code_get_code ("451 4.7.1"), ==, 451);
  g_assert_cmpuint (milter_reply_code_get_code ("421-a\r\n421 b"), ==, 421);
  g_assert_cmpuint (milter_reply_code_get_code ("250 ok"), ==, 250);
  g_assert_cmpuint (milter_reply_code_get_code ("099 x"), ==, 99);
}

static void
test_error_quark (void)
{
  g_assert_cmpuint (MILTER_REPLY_CODE_ERROR, !=, 0);
  g_assert_cmpuint (MILTER_REPLY_CODE_ERROR, ==,
                    g_quark_from_string ("milter-reply-code-error-quark"));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/reply-code/format", test_format);
  g_test_add_func ("/reply-code/format/invalid-code",
                   test_format_invalid_code);
  g_test_add_func ("/reply-code/format/invalid-extended-code",
                   test_format_invalid_extended_code);
  g_test_add_func ("/reply-code/format/class-mismatch",
                   test_format_class_mismatch);
  g_test_add_func ("/reply-code/format/invalid-character",
                   test_format_invalid_character);
  g_test_add_func ("/reply-code/format/line-too-long",
                   test_format_line_too_long);
  g_test_add_func ("/reply-code/format-lines", test_format_lines);
  g_test_add_func ("/reply-code/format-lines/count",
                   test_format_lines_count);
  g_test_add_func ("/reply-code/format-lines/invalid",
                   test_format_lines_invalid);
  g_test_add_func ("/reply-code/validate/formatted",
                   test_validate_formatted);
  g_test_add_func ("/reply-code/validate/valid", test_validate_valid);
  g_test_add_func ("/reply-code/validate/invalid", test_validate_invalid);
  g_test_add_func ("/reply-code/validate/messages",
                   test_validate_messages);
  g_test_add_func ("/reply-code/validate/null", test_validate_null);
  g_test_add_func ("/reply-code/get-code", test_get_code);
  g_test_add_func ("/reply-code/error-quark", test_error_quark);

  return g_test_run ();
}
