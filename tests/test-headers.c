/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "test-util.h"

static MilterHeaders *
sample (void)
{
  MilterHeaders *headers = milter_headers_new ();

  milter_headers_add (headers, "Received", "one");
  milter_headers_add (headers, "From", "a@example.org");
  milter_headers_add (headers, "Received", "two");
  milter_headers_add (headers, "Subject", "hi");
  return headers;
}

static gchar *
names (MilterHeaders *headers)
{
  GString *text = g_string_new (NULL);

  for (guint i = 0; i < milter_headers_get_length (headers); i++)
    g_string_append_printf (text, "%s%s=%s", i > 0 ? "," : "",
                            milter_headers_get_name (headers, i),
                            milter_headers_get_value (headers, i));
  return g_string_free (text, FALSE);
}

static void
test_lookup (void)
{
  g_autoptr(MilterHeaders) headers = sample ();

  g_assert_cmpuint (milter_headers_get_length (headers), ==, 4);
  g_assert_cmpuint (milter_headers_count (headers, "received"), ==, 2);
  g_assert_cmpstr (milter_headers_lookup (headers, "RECEIVED", 1), ==, "one");
  g_assert_cmpstr (milter_headers_lookup (headers, "Received", 0), ==, "one");
  g_assert_cmpstr (milter_headers_lookup (headers, "Received", 2), ==, "two");
  g_assert_null (milter_headers_lookup (headers, "Received", 3));
  g_assert_null (milter_headers_get_name (headers, 4));
  g_assert_null (milter_headers_get_value (headers, 99));
}

/* The index rules of protocol.md §3 and §8. */
static void
test_modifications (void)
{
  g_autoptr(MilterHeaders) headers = sample ();
  g_autofree gchar *after_insert = NULL;
  g_autofree gchar *after_change = NULL;
  g_autofree gchar *after_delete = NULL;

  milter_headers_insert (headers, 0, "X-Top", "t");
  milter_headers_insert (headers, 2, "X-Mid", "m");
  milter_headers_insert (headers, 100, "X-End", "e");
  after_insert = names (headers);
  g_assert_cmpstr (after_insert, ==,
                   "X-Top=t,Received=one,X-Mid=m,From=a@example.org,Received=two,Subject=hi,X-End=e");

  milter_headers_change (headers, "received", 2, "TWO");
  milter_headers_change (headers, "Subject", 0, "changed");  /* 0 counts as 1 */
  milter_headers_change (headers, "X-New", 3, "added");      /* past the count adds */
  after_change = names (headers);
  g_assert_cmpstr (after_change, ==,
                   "X-Top=t,Received=one,X-Mid=m,From=a@example.org,Received=TWO,Subject=changed,X-End=e,X-New=added");

  milter_headers_change (headers, "Received", 1, "");   /* empty value deletes */
  g_assert_true (milter_headers_remove (headers, "X-Mid", 1));
  g_assert_false (milter_headers_remove (headers, "X-Mid", 1));
  milter_headers_change (headers, "Absent", 1, NULL);    /* deleting nothing is fine */
  after_delete = names (headers);
  /* The second Received is now the first: later indexes shift, as in Postfix. */
  g_assert_cmpstr (after_delete, ==,
                   "X-Top=t,From=a@example.org,Received=TWO,Subject=changed,X-End=e,X-New=added");
  g_assert_cmpstr (milter_headers_lookup (headers, "Received", 1), ==, "TWO");

  milter_headers_clear (headers);
  g_assert_cmpuint (milter_headers_get_length (headers), ==, 0);
}

static void
test_copy_ref (void)
{
  g_autoptr(MilterHeaders) headers = sample ();
  g_autoptr(MilterHeaders) copy = milter_headers_copy (headers);
  MilterHeaders *ref = milter_headers_ref (headers);

  milter_headers_add (copy, "X-Copy", "1");
  g_assert_cmpuint (milter_headers_get_length (headers), ==, 4);
  g_assert_cmpuint (milter_headers_get_length (copy), ==, 5);
  g_assert_true (ref == headers);
  milter_headers_unref (ref);
  g_assert_cmpuint (milter_headers_get_length (headers), ==, 4);
}

static void
test_to_string (void)
{
  g_autoptr(MilterHeaders) headers = milter_headers_new ();
  g_autofree gchar *text = NULL;

  milter_headers_add (headers, "Subject", "folded\n\tline");
  milter_headers_add (headers, "X-Empty", "");
  text = milter_headers_to_string (headers);
  g_assert_cmpstr (text, ==, "Subject: folded\r\n\tline\r\nX-Empty: \r\n");
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/headers/lookup", test_lookup);
  g_test_add_func ("/headers/modifications", test_modifications);
  g_test_add_func ("/headers/copy-ref", test_copy_ref);
  g_test_add_func ("/headers/to-string", test_to_string);

  return g_test_run ();
}
