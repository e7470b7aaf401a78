/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "test-util.h"

static void
test_set_get (void)
{
  g_autoptr(MilterMacrosRequests) requests = milter_macros_requests_new ();
  const gchar *symbols[] = { "i", "auth_type", "{mail_addr}", "_", NULL };
  const gchar *expected[] = { "i", "{auth_type}", "{mail_addr}", "_", NULL };
  const gchar *none[] = { NULL };

  g_assert_true (milter_macros_requests_is_empty (requests));
  g_assert_null (milter_macros_requests_get_symbols (requests, MILTER_MACRO_STAGE_HELO));

  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_ENVELOPE_FROM, symbols);
  g_assert_false (milter_macros_requests_is_empty (requests));
  g_assert_true (g_strv_equal (milter_macros_requests_get_symbols (requests, MILTER_MACRO_STAGE_ENVELOPE_FROM),
                               expected));

  /* An empty list is a list ("no macros"), not an unset stage. */
  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_DATA, none);
  g_assert_nonnull (milter_macros_requests_get_symbols (requests, MILTER_MACRO_STAGE_DATA));
  g_assert_null (milter_macros_requests_get_symbols (requests, MILTER_MACRO_STAGE_DATA)[0]);

  milter_macros_requests_unset_symbols (requests, MILTER_MACRO_STAGE_DATA);
  g_assert_null (milter_macros_requests_get_symbols (requests, MILTER_MACRO_STAGE_DATA));
}

static void
test_copy_equal_string (void)
{
  g_autoptr(MilterMacrosRequests) requests = milter_macros_requests_new ();
  g_autoptr(MilterMacrosRequests) copy = NULL;
  g_autofree gchar *text = NULL;
  const gchar *eom[] = { "i", "msg_id", NULL };
  const gchar *none[] = { NULL };
  const gchar *other[] = { "j", NULL };

  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_END_OF_MESSAGE, eom);
  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_CONNECT, none);
  copy = milter_macros_requests_copy (requests);
  g_assert_true (milter_macros_requests_equal (requests, copy));

  text = milter_macros_requests_to_string (copy);
  g_assert_cmpstr (text, ==, "0:\"\" 5:\"i {msg_id}\"");

  milter_macros_requests_set_symbols (copy, MILTER_MACRO_STAGE_CONNECT, other);
  g_assert_false (milter_macros_requests_equal (requests, copy));
  milter_macros_requests_unset_symbols (copy, MILTER_MACRO_STAGE_CONNECT);
  g_assert_false (milter_macros_requests_equal (requests, copy));
}

static void
test_invalid_symbol (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(MilterMacrosRequests) requests = milter_macros_requests_new ();
      const gchar *symbols[] = { "ok", "bad name", "", NULL };

      milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_HELO, symbols);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*invalid macro name*bad name*");
}

/* libmilter's space-separated string in one element: refused, and the
 * stage keeps what it had rather than becoming an empty list, which the
 * MTA would read as "send no macros". */
static void
test_invalid_symbol_changes_nothing (void)
{
  g_autoptr(MilterMacrosRequests) requests = milter_macros_requests_new ();
  const gchar *before[] = { "i", NULL };
  const gchar *ported[] = { "j {daemon_name}", NULL };
  g_autofree gchar *expected = NULL;
  g_autofree gchar *text = NULL;

  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_HELO, before);
  expected = milter_macros_requests_to_string (requests);
  g_test_expect_message ("Milter", G_LOG_LEVEL_CRITICAL, "*invalid macro name*j {daemon_name}*");
  milter_macros_requests_set_symbols (requests, MILTER_MACRO_STAGE_HELO, ported);
  g_test_assert_expected_messages ();
  text = milter_macros_requests_to_string (requests);
  g_assert_cmpstr (text, ==, expected);
}

static void
test_invalid_stage (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(MilterMacrosRequests) requests = milter_macros_requests_new ();
      const gchar *symbols[] = { "i", NULL };

      milter_macros_requests_set_symbols (requests, 7, symbols);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*is_valid_stage*");
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/macros-requests/set-get", test_set_get);
  g_test_add_func ("/macros-requests/copy-equal-string", test_copy_equal_string);
  g_test_add_func ("/macros-requests/invalid-symbol", test_invalid_symbol);
  g_test_add_func ("/macros-requests/invalid-symbol-changes-nothing", test_invalid_symbol_changes_nothing);
  g_test_add_func ("/macros-requests/invalid-stage", test_invalid_stage);

  return g_test_run ();
}
