/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "test-util.h"

static void
test_wire_values (void)
{
  /* protocol.md §4.1 and §4.2: the flags are the wire bits. */
  g_assert_cmpuint (MILTER_ACTION_ADD_HEADERS, ==, 0x001);
  g_assert_cmpuint (MILTER_ACTION_CHANGE_BODY, ==, 0x002);
  g_assert_cmpuint (MILTER_ACTION_ADD_RECIPIENT, ==, 0x004);
  g_assert_cmpuint (MILTER_ACTION_DELETE_RECIPIENT, ==, 0x008);
  g_assert_cmpuint (MILTER_ACTION_CHANGE_HEADERS, ==, 0x010);
  g_assert_cmpuint (MILTER_ACTION_QUARANTINE, ==, 0x020);
  g_assert_cmpuint (MILTER_ACTION_CHANGE_FROM, ==, 0x040);
  g_assert_cmpuint (MILTER_ACTION_ADD_RECIPIENT_WITH_PARAMETERS, ==, 0x080);
  g_assert_cmpuint (MILTER_ACTION_SET_SYMBOL_LIST, ==, 0x100);
  g_assert_cmpuint (MILTER_ACTION_ALL, ==, 0x1ff);

  g_assert_cmpuint (MILTER_STEP_NO_CONNECT, ==, 0x1);
  g_assert_cmpuint (MILTER_STEP_NO_HELO, ==, 0x2);
  g_assert_cmpuint (MILTER_STEP_NO_ENVELOPE_FROM, ==, 0x4);
  g_assert_cmpuint (MILTER_STEP_NO_ENVELOPE_RECIPIENT, ==, 0x8);
  g_assert_cmpuint (MILTER_STEP_NO_BODY, ==, 0x10);
  g_assert_cmpuint (MILTER_STEP_NO_HEADERS, ==, 0x20);
  g_assert_cmpuint (MILTER_STEP_NO_END_OF_HEADER, ==, 0x40);
  g_assert_cmpuint (MILTER_STEP_NO_REPLY_HEADER, ==, 0x80);
  g_assert_cmpuint (MILTER_STEP_NO_UNKNOWN, ==, 0x100);
  g_assert_cmpuint (MILTER_STEP_NO_DATA, ==, 0x200);
  g_assert_cmpuint (MILTER_STEP_SKIP, ==, 0x400);
  g_assert_cmpuint (MILTER_STEP_ENVELOPE_RECIPIENT_REJECTED, ==, 0x800);
  g_assert_cmpuint (MILTER_STEP_NO_REPLY_CONNECT, ==, 0x1000);
  g_assert_cmpuint (MILTER_STEP_NO_REPLY_HELO, ==, 0x2000);
  g_assert_cmpuint (MILTER_STEP_NO_REPLY_ENVELOPE_FROM, ==, 0x4000);
  g_assert_cmpuint (MILTER_STEP_NO_REPLY_ENVELOPE_RECIPIENT, ==, 0x8000);
  g_assert_cmpuint (MILTER_STEP_NO_REPLY_DATA, ==, 0x10000);
  g_assert_cmpuint (MILTER_STEP_NO_REPLY_UNKNOWN, ==, 0x20000);
  g_assert_cmpuint (MILTER_STEP_NO_REPLY_END_OF_HEADER, ==, 0x40000);
  g_assert_cmpuint (MILTER_STEP_NO_REPLY_BODY, ==, 0x80000);
  g_assert_cmpuint (MILTER_STEP_HEADER_LEADING_SPACE, ==, 0x100000);
  g_assert_cmpuint (MILTER_STEP_MAX_DATA_SIZE_256K, ==, 0x10000000);
  g_assert_cmpuint (MILTER_STEP_MAX_DATA_SIZE_1M, ==, 0x20000000);
  g_assert_cmpuint (MILTER_STEP_ALL, ==, 0x1fffff);
  g_assert_cmpuint (MILTER_STEP_NO_EVENT_MASK, ==, 0x37f);
  g_assert_cmpuint (MILTER_STEP_NO_REPLY_MASK, ==, 0xff080);

  g_assert_cmpint (MILTER_STATUS_DEFAULT, ==, 0);
  g_assert_cmpint (MILTER_COMMAND_QUIT_NEW_CONNECTION, ==, 'K');
  g_assert_cmpint (MILTER_REPLY_REPLY_CODE, ==, 'y');
  g_assert_cmpint (MILTER_MACRO_STAGE_END_OF_MESSAGE, ==, 5);
  g_assert_cmpint (MILTER_MACRO_STAGE_END_OF_HEADER, ==, 6);
}

static void
test_enum_types (void)
{
  /* Generated and registered, so bindings see them. */
  GType types[] = {
    MILTER_TYPE_STATUS, MILTER_TYPE_ACTION_FLAGS, MILTER_TYPE_STEP_FLAGS,
    MILTER_TYPE_COMMAND, MILTER_TYPE_REPLY, MILTER_TYPE_MACRO_STAGE,
    MILTER_TYPE_CLIENT_CONTEXT_STATE, MILTER_TYPE_DECODER_ERROR,
  };
  GEnumClass *status_class;

  for (guint i = 0; i < G_N_ELEMENTS (types); i++)
    g_assert_true (G_TYPE_IS_ENUM (types[i]) || G_TYPE_IS_FLAGS (types[i]));
  g_assert_true (G_TYPE_IS_FLAGS (MILTER_TYPE_ACTION_FLAGS));
  g_assert_true (G_TYPE_IS_FLAGS (MILTER_TYPE_STEP_FLAGS));

  status_class = g_type_class_ref (MILTER_TYPE_STATUS);
  g_assert_cmpstr (g_enum_get_value (status_class, MILTER_STATUS_TEMPORARY_FAILURE)->value_nick,
                   ==, "temporary-failure");
  g_assert_cmpint (g_enum_get_value_by_nick (status_class, "default")->value, ==, 0);
  g_type_class_unref (status_class);
}

static void
test_accessors (void)
{
  g_autoptr(MilterOption) option = milter_option_new (2, MILTER_ACTION_ADD_HEADERS, MILTER_STEP_NO_CONNECT);
  g_autoptr(MilterOption) copy = NULL;

  g_assert_cmpuint (milter_option_get_version (option), ==, 2);
  milter_option_set_version (option, 6);
  g_assert_cmpuint (milter_option_get_version (option), ==, 6);

  milter_option_add_action (option, MILTER_ACTION_QUARANTINE);
  g_assert_cmpuint (milter_option_get_action (option), ==, MILTER_ACTION_ADD_HEADERS | MILTER_ACTION_QUARANTINE);
  milter_option_remove_action (option, MILTER_ACTION_ADD_HEADERS);
  g_assert_cmpuint (milter_option_get_action (option), ==, MILTER_ACTION_QUARANTINE);
  milter_option_set_action (option, MILTER_ACTION_CHANGE_BODY);
  g_assert_cmpuint (milter_option_get_action (option), ==, MILTER_ACTION_CHANGE_BODY);

  milter_option_add_step (option, MILTER_STEP_SKIP);
  g_assert_cmpuint (milter_option_get_step (option), ==, MILTER_STEP_NO_CONNECT | MILTER_STEP_SKIP);
  milter_option_remove_step (option, MILTER_STEP_NO_CONNECT);
  g_assert_cmpuint (milter_option_get_step (option), ==, MILTER_STEP_SKIP);
  milter_option_set_step (option, MILTER_STEP_NO_BODY);
  g_assert_cmpuint (milter_option_get_step (option), ==, MILTER_STEP_NO_BODY);

  copy = milter_option_copy (option);
  g_assert_true (milter_option_equal (option, copy));
  milter_option_set_version (copy, 4);
  g_assert_false (milter_option_equal (option, copy));
  g_assert_cmpuint (milter_option_get_version (option), ==, 6);

  g_assert_true (G_TYPE_IS_BOXED (MILTER_TYPE_OPTION));
}

static void
test_postfix (void)
{
  g_autoptr(MilterOption) option = milter_option_new_postfix ();

  g_assert_cmpuint (milter_option_get_version (option), ==, 6);
  g_assert_cmpuint (milter_option_get_action (option), ==, 0x1ff);
  g_assert_cmpuint (milter_option_get_step (option), ==, 0x1fffff);
}

static void
test_merge (void)
{
  g_autoptr(MilterOption) request =
    milter_option_new (6, MILTER_ACTION_ADD_HEADERS | MILTER_ACTION_CHANGE_FROM,
                       MILTER_STEP_NO_CONNECT | MILTER_STEP_SKIP | MILTER_STEP_MAX_DATA_SIZE_1M);
  g_autoptr(MilterOption) offer = milter_option_new (2, 0x3f, 0x7f);

  milter_option_merge (request, offer);
  g_assert_cmpuint (milter_option_get_version (request), ==, 2);
  g_assert_cmpuint (milter_option_get_action (request), ==, MILTER_ACTION_ADD_HEADERS);
  g_assert_cmpuint (milter_option_get_step (request), ==, MILTER_STEP_NO_CONNECT);
}

static void
test_combine (void)
{
  g_autoptr(MilterOption) a =
    milter_option_new (4, MILTER_ACTION_ADD_HEADERS,
                       MILTER_STEP_NO_CONNECT | MILTER_STEP_NO_HELO | MILTER_STEP_NO_REPLY_HEADER | MILTER_STEP_SKIP);
  g_autoptr(MilterOption) b =
    milter_option_new (6, MILTER_ACTION_CHANGE_BODY,
                       MILTER_STEP_NO_CONNECT | MILTER_STEP_HEADER_LEADING_SPACE);

  /* A step is left out only if neither request wants it; extensions add up. */
  milter_option_combine (a, b);
  g_assert_cmpuint (milter_option_get_version (a), ==, 6);
  g_assert_cmpuint (milter_option_get_action (a), ==, MILTER_ACTION_ADD_HEADERS | MILTER_ACTION_CHANGE_BODY);
  g_assert_cmpuint (milter_option_get_step (a), ==,
                    MILTER_STEP_NO_CONNECT | MILTER_STEP_SKIP | MILTER_STEP_HEADER_LEADING_SPACE);
}

static void
test_to_string (void)
{
  g_autoptr(MilterOption) option =
    milter_option_new (6, MILTER_ACTION_ADD_HEADERS | MILTER_ACTION_CHANGE_BODY,
                       MILTER_STEP_NO_CONNECT | MILTER_STEP_SKIP | 0x40000000);
  g_autoptr(MilterOption) empty = milter_option_new (2, 0, 0);
  g_autofree gchar *text = milter_option_to_string (option);
  g_autofree gchar *empty_text = milter_option_to_string (empty);

  g_assert_cmpstr (text, ==,
                   "version=6 action=add-headers|change-body step=no-connect|skip|0x40000000");
  g_assert_cmpstr (empty_text, ==, "version=2 action=none step=none");
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/option/wire-values", test_wire_values);
  g_test_add_func ("/option/enum-types", test_enum_types);
  g_test_add_func ("/option/accessors", test_accessors);
  g_test_add_func ("/option/postfix", test_postfix);
  g_test_add_func ("/option/merge", test_merge);
  g_test_add_func ("/option/combine", test_combine);
  g_test_add_func ("/option/to-string", test_to_string);

  return g_test_run ();
}
