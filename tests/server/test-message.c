/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "test-util.h"

static MilterMessage *
parse (const gchar *text)
{
  g_autoptr(GBytes) data = g_bytes_new (text, strlen (text));
  g_autoptr(GError) error = NULL;
  MilterMessage *message = milter_message_new_from_data (data, &error);

  g_assert_no_error (error);
  g_assert_nonnull (message);
  return message;
}

static void
assert_body (MilterMessage *message,
             const gchar   *expected)
{
  gsize size;
  const gchar *body = g_bytes_get_data (milter_message_get_body (message), &size);
  g_autofree gchar *text = g_strndup (body != NULL ? body : "", size);

  g_assert_cmpuint (size, ==, strlen (expected));
  g_assert_cmpstr (text, ==, expected);
}

static void
assert_rendered (MilterMessage *message,
                 const gchar   *expected)
{
  g_autoptr(GBytes) bytes = milter_message_to_bytes (message);
  gsize size;
  const gchar *data = g_bytes_get_data (bytes, &size);
  g_autofree gchar *text = g_strndup (data, size);

  g_assert_cmpstr (text, ==, expected);
  g_assert_cmpuint (size, ==, strlen (expected));
}

/* "Name=value|Name=value" of all headers, for compact comparisons. */
static gchar *
headers_text (MilterMessage *message)
{
  MilterHeaders *headers = milter_message_get_headers (message);
  GString *text = g_string_new (NULL);

  for (guint i = 0; i < milter_headers_get_length (headers); i++)
    g_string_append_printf (text, "%s%s=%s", i > 0 ? "|" : "",
                            milter_headers_get_name (headers, i),
                            milter_headers_get_value (headers, i));
  return g_string_free (text, FALSE);
}

static void
assert_headers (MilterMessage *message,
                const gchar   *expected)
{
  g_autofree gchar *text = headers_text (message);

  g_assert_cmpstr (text, ==, expected);
}

static void
test_parse_simple (void)
{
  g_autoptr(MilterMessage) message =
    parse ("From: <a@example.com>\r\nTo: b@example.org\r\nSubject: hi there\r\n\r\nbody\r\n");

  assert_headers (message, "From=<a@example.com>|To=b@example.org|Subject=hi there");
  assert_body (message, "body\r\n");
  g_assert_null (milter_message_get_from (message));
  g_assert_cmpuint (milter_message_get_n_recipients (message), ==, 0);
  g_assert_null (milter_message_get_quarantine_reason (message));
  assert_rendered (message,
                   "From: <a@example.com>\r\nTo: b@example.org\r\nSubject: hi there\r\n"
                   "\r\nbody\r\n");
}

static void
test_parse_folded (void)
{
  g_autoptr(MilterMessage) message =
    parse ("Subject: one\r\n two\r\n\tthree\r\n"
           "X-Tab:\tvalue\r\n"
           "X-Empty:\r\n"
           "X-Spaces:   x\r\n"
           "Obsolete : y\r\n"
           "\r\n");

  assert_headers (message,
                  "Subject=one\n two\n\tthree|X-Tab=\tvalue|X-Empty=|X-Spaces=  x|Obsolete=y");
  assert_body (message, "");
  /* Folds come back as CRLF + their white space. */
  assert_rendered (message,
                   "Subject: one\r\n two\r\n\tthree\r\n"
                   "X-Tab: \tvalue\r\n"
                   "X-Empty: \r\n"
                   "X-Spaces:   x\r\n"
                   "Obsolete: y\r\n"
                   "\r\n");
}

static void
test_parse_line_endings (void)
{
  g_autoptr(MilterMessage) message =
    parse ("A: 1\nB: 2\n  folded\n\nline1\nline2\r\nline3\n\nlast");

  assert_headers (message, "A=1|B=2\n  folded");
  /* Bare LF becomes CRLF in the body, as Sendmail does; CRLF stays. */
  assert_body (message, "line1\r\nline2\r\nline3\r\n\r\nlast");
}

static void
test_parse_body_without_lf (void)
{
  g_autoptr(GBytes) data = NULL;
  g_autoptr(MilterMessage) message = NULL;
  static const gchar text[] = "A: 1\r\n\r\nno\0line\rendings";

  data = g_bytes_new_static (text, sizeof text - 1);
  message = milter_message_new_from_data (data, NULL);
  g_assert_nonnull (message);
  /* Body bytes are kept exactly, NUL and bare CR included. */
  g_assert_cmpmem (g_bytes_get_data (milter_message_get_body (message), NULL),
                   g_bytes_get_size (milter_message_get_body (message)),
                   "no\0line\rendings", 15);
}

static const gchar multipart[] =
  "From: Alice <alice@example.com>\n"
  "To: bob@example.org\n"
  "Subject: multipart test\n"
  "MIME-Version: 1.0\n"
  "Content-Type: multipart/mixed;\n"
  "\tboundary=\"==XYZ==\"\n"
  "\n"
  "This is a multi-part message in MIME format.\n"
  "\n"
  "--==XYZ==\n"
  "Content-Type: text/plain; charset=utf-8\n"
  "Content-Transfer-Encoding: 8bit\n"
  "\n"
  "Hello, Bob: caf\xc3\xa9.\n"
  "\n"
  "--==XYZ==\n"
  "Content-Type: application/octet-stream; name=\"a.bin\"\n"
  "Content-Transfer-Encoding: base64\n"
  "Content-Disposition: attachment; filename=\"a.bin\"\n"
  "\n"
  "AAECAwQFBgcICQ==\n"
  "\n"
  "--==XYZ==--\n";

static gchar *
lf_to_crlf (const gchar *text)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);

  return g_strjoinv ("\r\n", lines);
}

static void
test_parse_multipart (void)
{
  g_autoptr(MilterMessage) message = parse (multipart);
  g_autofree gchar *crlf = lf_to_crlf (multipart);
  const gchar *body_start = strstr (crlf, "\r\n\r\n") + 4;

  assert_headers (message,
                  "From=Alice <alice@example.com>|To=bob@example.org|Subject=multipart test|"
                  "MIME-Version=1.0|Content-Type=multipart/mixed;\n\tboundary=\"==XYZ==\"");
  /* The parts are body bytes: nothing inside the body is parsed. */
  assert_body (message, body_start);
  assert_rendered (message, crlf);
}

static void
test_parse_edge_cases (void)
{
  g_autoptr(MilterMessage) no_body = parse ("A: 1\r\nB: 2");
  g_autoptr(MilterMessage) empty = parse ("");
  g_autoptr(MilterMessage) only_body = parse ("\r\nbody");
  g_autoptr(MilterMessage) mbox = parse ("From alice@example.com Mon Jan  1 00:00:00 2024\n"
                                         "A: 1\n\nx\n");

  assert_headers (no_body, "A=1|B=2");
  assert_body (no_body, "");
  assert_headers (empty, "");
  assert_body (empty, "");
  assert_rendered (empty, "\r\n");
  assert_headers (only_body, "");
  assert_body (only_body, "body");
  assert_headers (mbox, "A=1");
  assert_body (mbox, "x\r\n");
}

static void
assert_parse_error (const gchar *text,
                    gsize        size,
                    const gchar *message_part)
{
  g_autoptr(GBytes) data = g_bytes_new (text, size);
  g_autoptr(GError) error = NULL;
  g_autoptr(MilterMessage) message = milter_message_new_from_data (data, &error);

  g_assert_null (message);
  g_assert_error (error, MILTER_MESSAGE_ERROR, MILTER_MESSAGE_ERROR_INVALID_HEADER);
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
  if (strstr (error->message, message_part) == NULL)
    g_error ("“%s” does not contain “%s”", error->message, message_part);
}

static void
test_parse_errors (void)
{
  static const gchar nul[] = "A: 1\r\nB: x\0y\r\n\r\n";

  assert_parse_error (" folded: first\r\n\r\n", 18, "Line 1 is a continuation line");
  assert_parse_error ("A: 1\r\nnot a header\r\n\r\nbody", 26, "Line 2 “not a header”");
  assert_parse_error (nul, sizeof nul - 1, "Line 2 of the header section contains a NUL");
  assert_parse_error ("Bad Name: x\r\n\r\n", 15, "invalid header name “Bad Name”");
  assert_parse_error (": x\r\n\r\n", 7, "Line 1: invalid header name “”");
  assert_parse_error ("A: 1\r\nX\x01Y: 2\r\n", 14, "invalid header name “X\\x01Y”");
}

static guint n_notifications;

static void
on_notify (GObject    *object,
           GParamSpec *pspec,
           gpointer    user_data)
{
  n_notifications++;
}

static void
test_envelope (void)
{
  g_autoptr(MilterMessage) message = milter_message_new ();
  const gchar *from_parameters[] = { "SIZE=100", "BODY=8BITMIME", NULL };
  const gchar *rcpt_parameters[] = { "NOTIFY=NEVER", NULL };
  g_auto(GStrv) recipients = NULL;
  g_autofree gchar *from = NULL;

  g_signal_connect (message, "notify", G_CALLBACK (on_notify), NULL);
  n_notifications = 0;

  g_assert_cmpstrv (milter_message_get_from_parameters (message), ((const gchar *[]) { NULL }));
  milter_message_set_from (message, "<a@example.com>", from_parameters);
  g_assert_cmpstr (milter_message_get_from (message), ==, "<a@example.com>");
  g_assert_cmpstrv (milter_message_get_from_parameters (message), from_parameters);
  g_assert_cmpuint (n_notifications, ==, 2);

  milter_message_add_recipient (message, "<b@example.org>", rcpt_parameters);
  milter_message_add_recipient (message, "<c@example.org>", NULL);
  milter_message_add_recipient (message, "<b@example.org>", NULL);
  g_assert_cmpuint (milter_message_get_n_recipients (message), ==, 3);
  g_assert_cmpstrv (milter_message_get_recipients (message),
                    ((const gchar *[]) { "<b@example.org>", "<c@example.org>",
                                         "<b@example.org>", NULL }));
  g_assert_cmpstrv (milter_message_get_recipient_parameters (message, 0), rcpt_parameters);
  g_assert_cmpstrv (milter_message_get_recipient_parameters (message, 1),
                    ((const gchar *[]) { NULL }));
  g_assert_null (milter_message_get_recipient_parameters (message, 3));

  /* Removal needs the exact form and removes every copy. */
  g_assert_false (milter_message_remove_recipient (message, "b@example.org"));
  g_assert_true (milter_message_remove_recipient (message, "<b@example.org>"));
  g_assert_cmpstrv (milter_message_get_recipients (message),
                    ((const gchar *[]) { "<c@example.org>", NULL }));
  g_assert_cmpstrv (milter_message_get_recipient_parameters (message, 0),
                    ((const gchar *[]) { NULL }));

  g_object_get (message, "recipients", &recipients, "from", &from, NULL);
  g_assert_cmpstrv (recipients, ((const gchar *[]) { "<c@example.org>", NULL }));
  g_assert_cmpstr (from, ==, "<a@example.com>");

  milter_message_set_from (message, NULL, NULL);
  g_assert_null (milter_message_get_from (message));
  g_assert_cmpstrv (milter_message_get_from_parameters (message), ((const gchar *[]) { NULL }));

  milter_message_set_body (message, NULL);
  g_assert_cmpuint (g_bytes_get_size (milter_message_get_body (message)), ==, 0);
  g_object_set (message, "quarantine-reason", "held", NULL);
  g_assert_cmpstr (milter_message_get_quarantine_reason (message), ==, "held");
}

static void
apply (MilterMessage      *message,
       MilterModification *modification)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (milter_message_apply_modification (message, modification, &error));
  g_assert_no_error (error);
  milter_modification_unref (modification);
}

static void
test_apply_headers (void)
{
  g_autoptr(MilterMessage) message =
    parse ("Received: r1\r\nSubject: s1\r\nX-A: a1\r\nsubject: s2\r\nX-A: a2\r\n\r\n");

  /* Insert: index 0 is the top; past the end appends. */
  apply (message, milter_modification_new_insert_header (0, "X-Top", "t"));
  apply (message, milter_modification_new_insert_header (2, "X-Third", "3"));
  apply (message, milter_modification_new_insert_header (100, "X-End", "e"));
  assert_headers (message,
                  "X-Top=t|Received=r1|X-Third=3|Subject=s1|X-A=a1|subject=s2|X-A=a2|X-End=e");

  /* Change: per name, from 1, case-insensitive; 0 counts as 1. */
  apply (message, milter_modification_new_change_header ("SUBJECT", 2, "S2"));
  apply (message, milter_modification_new_change_header ("x-a", 0, "A1"));
  assert_headers (message,
                  "X-Top=t|Received=r1|X-Third=3|Subject=s1|X-A=A1|subject=S2|X-A=a2|X-End=e");

  /* Past the count of that name: the header is added. */
  apply (message, milter_modification_new_change_header ("X-A", 3, "a3"));
  /* An empty value deletes; so does a delete request; later ones move up. */
  apply (message, milter_modification_new_change_header ("X-A", 1, ""));
  apply (message, milter_modification_new_delete_header ("Subject", 1));
  assert_headers (message, "X-Top=t|Received=r1|X-Third=3|subject=S2|X-A=a2|X-End=e|X-A=a3");
  /* Deleting what does not exist changes nothing. */
  apply (message, milter_modification_new_delete_header ("X-None", 1));
  apply (message, milter_modification_new_add_header ("X-Added", "folded\n value"));
  assert_headers (message,
                  "X-Top=t|Received=r1|X-Third=3|subject=S2|X-A=a2|X-End=e|X-A=a3|"
                  "X-Added=folded\n value");
  assert_rendered (message,
                   "X-Top: t\r\nReceived: r1\r\nX-Third: 3\r\nsubject: S2\r\nX-A: a2\r\n"
                   "X-End: e\r\nX-A: a3\r\nX-Added: folded\r\n value\r\n\r\n");
}

static void
test_apply_envelope (void)
{
  g_autoptr(MilterMessage) message = milter_message_new ();
  g_autoptr(GBytes) body = g_bytes_new_static ("new\r\n", 5);
  g_autoptr(GPtrArray) modifications =
    g_ptr_array_new_with_free_func ((GDestroyNotify) milter_modification_unref);
  g_autoptr(GError) error = NULL;

  milter_message_set_from (message, "<a@example.com>", NULL);
  milter_message_add_recipient (message, "<b@example.org>", NULL);
  milter_message_add_recipient (message, "<c@example.org>", NULL);

  g_ptr_array_add (modifications, milter_modification_new_change_from ("<new@example.com>",
                                                                      "RET=HDRS  ENVID=x1"));
  g_ptr_array_add (modifications, milter_modification_new_add_recipient ("<d@example.org>",
                                                                        "NOTIFY=NEVER"));
  g_ptr_array_add (modifications, milter_modification_new_add_recipient ("e@example.org", NULL));
  g_ptr_array_add (modifications, milter_modification_new_delete_recipient ("<b@example.org>"));
  /* Not the form the MTA sent: nothing is deleted. */
  g_ptr_array_add (modifications, milter_modification_new_delete_recipient ("c@example.org"));
  g_ptr_array_add (modifications, milter_modification_new_replace_body (body));
  g_ptr_array_add (modifications, milter_modification_new_quarantine ("suspicious"));
  g_assert_true (milter_message_apply_modifications (message, modifications, &error));
  g_assert_no_error (error);

  g_assert_cmpstr (milter_message_get_from (message), ==, "<new@example.com>");
  g_assert_cmpstrv (milter_message_get_from_parameters (message),
                    ((const gchar *[]) { "RET=HDRS", "ENVID=x1", NULL }));
  g_assert_cmpstrv (milter_message_get_recipients (message),
                    ((const gchar *[]) { "<c@example.org>", "<d@example.org>", "e@example.org",
                                         NULL }));
  g_assert_cmpstrv (milter_message_get_recipient_parameters (message, 1),
                    ((const gchar *[]) { "NOTIFY=NEVER", NULL }));
  g_assert_cmpstrv (milter_message_get_recipient_parameters (message, 2),
                    ((const gchar *[]) { NULL }));
  assert_body (message, "new\r\n");
  g_assert_cmpstr (milter_message_get_quarantine_reason (message), ==, "suspicious");
}

static void
assert_apply_fails (MilterModification *modification,
                    gint                code,
                    const gchar        *message_part)
{
  g_autoptr(MilterMessage) message = parse ("A: 1\r\n\r\nbody");
  g_autoptr(GError) error = NULL;

  g_assert_false (milter_message_apply_modification (message, modification, &error));
  g_assert_error (error, MILTER_MESSAGE_ERROR, code);
  if (strstr (error->message, message_part) == NULL)
    g_error ("“%s” does not contain “%s”", error->message, message_part);
  assert_headers (message, "A=1");
  g_assert_null (milter_message_get_from (message));
  milter_modification_unref (modification);
}

static void
test_apply_invalid (void)
{
  g_autoptr(MilterMessage) message = parse ("A: 1\r\n\r\n");
  g_autoptr(GPtrArray) modifications =
    g_ptr_array_new_with_free_func ((GDestroyNotify) milter_modification_unref);
  g_autoptr(GError) error = NULL;

  assert_apply_fails (milter_modification_new_add_header ("X:Y", "v"),
                      MILTER_MESSAGE_ERROR_INVALID_HEADER, "Invalid header name “X:Y”");
  assert_apply_fails (milter_modification_new_add_header ("", "v"),
                      MILTER_MESSAGE_ERROR_INVALID_HEADER, "Invalid header name “”");
  assert_apply_fails (milter_modification_new_insert_header (0, "X-Y", "a\nB: injected"),
                      MILTER_MESSAGE_ERROR_INVALID_HEADER, "“a\\nB: injected”");
  assert_apply_fails (milter_modification_new_change_header ("A", 1, "a\r\n b"),
                      MILTER_MESSAGE_ERROR_INVALID_HEADER, "without CR");
  assert_apply_fails (milter_modification_new_change_from ("", NULL),
                      MILTER_MESSAGE_ERROR_INVALID_ADDRESS, "Empty sender address");
  assert_apply_fails (milter_modification_new_add_recipient ("", NULL),
                      MILTER_MESSAGE_ERROR_INVALID_ADDRESS, "Empty recipient address");

  /* A list stops at the first invalid change, after applying those before. */
  g_ptr_array_add (modifications, milter_modification_new_add_header ("X-1", "1"));
  g_ptr_array_add (modifications, milter_modification_new_add_header ("X 2", "2"));
  g_ptr_array_add (modifications, milter_modification_new_add_header ("X-3", "3"));
  g_assert_false (milter_message_apply_modifications (message, modifications, &error));
  g_assert_error (error, MILTER_MESSAGE_ERROR, MILTER_MESSAGE_ERROR_INVALID_HEADER);
  assert_headers (message, "A=1|X-1=1");
}

static void
test_modification (void)
{
  g_autoptr(GBytes) body = g_bytes_new_static ("abc", 3);
  g_autoptr(GBytes) same_body = g_bytes_new ("abc", 3);
  struct
  {
    MilterModification *modification;
    MilterModificationType type;
    const gchar *text;
  } cases[] = {
    { milter_modification_new_add_header ("X-A", "v\n w\x01"),
      MILTER_MODIFICATION_TYPE_ADD_HEADER, "add-header: X-A: v\\n w\\x01" },
    { milter_modification_new_insert_header (3, "X-B", "caf\xc3\xa9"),
      MILTER_MODIFICATION_TYPE_INSERT_HEADER, "insert-header[3]: X-B: caf\xc3\xa9" },
    { milter_modification_new_change_header ("Subject", 2, "new"),
      MILTER_MODIFICATION_TYPE_CHANGE_HEADER, "change-header: Subject[2]: new" },
    { milter_modification_new_change_header ("Subject", 1, ""),
      MILTER_MODIFICATION_TYPE_DELETE_HEADER, "delete-header: Subject[1]" },
    { milter_modification_new_delete_header ("X-C", 0),
      MILTER_MODIFICATION_TYPE_DELETE_HEADER, "delete-header: X-C[0]" },
    { milter_modification_new_change_from ("<a@b>", "RET=HDRS"),
      MILTER_MODIFICATION_TYPE_CHANGE_FROM, "change-from: <a@b> RET=HDRS" },
    { milter_modification_new_add_recipient ("<c@d>", NULL),
      MILTER_MODIFICATION_TYPE_ADD_RECIPIENT, "add-recipient: <c@d>" },
    { milter_modification_new_delete_recipient ("<e@f>"),
      MILTER_MODIFICATION_TYPE_DELETE_RECIPIENT, "delete-recipient: <e@f>" },
    { milter_modification_new_replace_body (body),
      MILTER_MODIFICATION_TYPE_REPLACE_BODY, "replace-body: 3 bytes" },
    { milter_modification_new_quarantine ("bad\xff"),
      MILTER_MODIFICATION_TYPE_QUARANTINE, "quarantine: bad\\xff" },
  };
  g_autoptr(MilterModification) body_copy = milter_modification_new_replace_body (same_body);
  g_autoptr(MilterModification) other_header = milter_modification_new_add_header ("X-A", "v");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree gchar *text = milter_modification_to_string (cases[i].modification);
      MilterModification *ref = milter_modification_ref (cases[i].modification);

      g_assert_cmpint (milter_modification_get_modification_type (cases[i].modification), ==,
                       cases[i].type);
      g_assert_cmpstr (text, ==, cases[i].text);
      g_assert_true (milter_modification_equal (cases[i].modification, ref));
      if (i > 0)
        g_assert_false (milter_modification_equal (cases[i].modification,
                                                   cases[i - 1].modification));
      milter_modification_unref (ref);
    }

  g_assert_cmpstr (milter_modification_get_name (cases[2].modification), ==, "Subject");
  g_assert_cmpuint (milter_modification_get_index (cases[2].modification), ==, 2);
  g_assert_cmpstr (milter_modification_get_value (cases[2].modification), ==, "new");
  g_assert_null (milter_modification_get_address (cases[2].modification));
  g_assert_cmpstr (milter_modification_get_value (cases[3].modification), ==, "");
  g_assert_cmpstr (milter_modification_get_address (cases[5].modification), ==, "<a@b>");
  g_assert_cmpstr (milter_modification_get_parameters (cases[5].modification), ==, "RET=HDRS");
  g_assert_null (milter_modification_get_parameters (cases[6].modification));
  g_assert_true (milter_modification_get_body (cases[8].modification) == body);
  g_assert_null (milter_modification_get_body (cases[0].modification));
  g_assert_cmpstr (milter_modification_get_reason (cases[9].modification), ==, "bad\xff");
  g_assert_true (milter_modification_equal (cases[8].modification, body_copy));
  g_assert_false (milter_modification_equal (cases[0].modification, other_header));
  g_assert_true (G_TYPE_IS_BOXED (MILTER_TYPE_MODIFICATION));

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    milter_modification_unref (cases[i].modification);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/message/parse/simple", test_parse_simple);
  g_test_add_func ("/message/parse/folded", test_parse_folded);
  g_test_add_func ("/message/parse/line-endings", test_parse_line_endings);
  g_test_add_func ("/message/parse/body-bytes", test_parse_body_without_lf);
  g_test_add_func ("/message/parse/multipart", test_parse_multipart);
  g_test_add_func ("/message/parse/edge-cases", test_parse_edge_cases);
  g_test_add_func ("/message/parse/errors", test_parse_errors);
  g_test_add_func ("/message/envelope", test_envelope);
  g_test_add_func ("/message/apply/headers", test_apply_headers);
  g_test_add_func ("/message/apply/envelope-body-quarantine", test_apply_envelope);
  g_test_add_func ("/message/apply/invalid", test_apply_invalid);
  g_test_add_func ("/modification/values", test_modification);

  return g_test_run ();
}
