/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "test-util.h"

static void
count_notify (GObject    *object,
              GParamSpec *pspec,
              gpointer    user_data)
{
  (*(guint *) user_data)++;
}

static void
test_fields (void)
{
  g_autoptr(MilterMessageResult) result = milter_message_result_new ();
  const gchar *recipients[] = { "<a@x>", "<b@x>", NULL };
  const gchar *rejected[] = { "<c@x>", NULL };
  g_auto(GStrv) property_recipients = NULL;
  MilterStatus status;
  guint notifications = 0;

  g_signal_connect (result, "notify", G_CALLBACK (count_notify), &notifications);

  g_assert_null (milter_message_result_get_from (result));
  g_assert_null (milter_message_result_get_recipients (result)[0]);
  milter_message_result_set_from (result, "<s@x>");
  milter_message_result_set_from (result, "<s@x>");  /* unchanged: no notify */
  milter_message_result_add_recipient (result, "<a@x>");
  milter_message_result_add_recipient (result, "<b@x>");
  milter_message_result_add_rejected_recipient (result, "<c@x>");
  milter_message_result_add_body_size (result, 10);
  milter_message_result_add_body_size (result, 5);
  milter_message_result_set_status (result, MILTER_STATUS_REJECT);
  milter_headers_add (milter_message_result_get_headers (result), "Subject", "s");

  g_assert_cmpstr (milter_message_result_get_from (result), ==, "<s@x>");
  g_assert_true (g_strv_equal (milter_message_result_get_recipients (result), recipients));
  g_assert_true (g_strv_equal (milter_message_result_get_rejected_recipients (result), rejected));
  g_assert_cmpuint (milter_message_result_get_body_size (result), ==, 15);
  g_assert_cmpint (milter_message_result_get_status (result), ==, MILTER_STATUS_REJECT);
  g_assert_cmpuint (milter_headers_get_length (milter_message_result_get_headers (result)), ==, 1);
  g_assert_cmpuint (notifications, ==, 7);

  g_object_get (result, "recipients", &property_recipients, "status", &status, NULL);
  g_assert_true (g_strv_equal ((const gchar * const *) property_recipients, recipients));
  g_assert_cmpint (status, ==, MILTER_STATUS_REJECT);
}

static void
test_times (void)
{
  g_autoptr(MilterMessageResult) result = milter_message_result_new ();
  gint64 before = g_get_real_time ();

  g_assert_cmpfloat (milter_message_result_get_elapsed_time (result), ==, 0);
  milter_message_result_start (result);
  g_usleep (20000);
  milter_message_result_stop (result);

  g_assert_cmpint (milter_message_result_get_start_time (result), >=, before);
  g_assert_cmpint (milter_message_result_get_end_time (result), >=,
                   milter_message_result_get_start_time (result) + 20000);
  g_assert_cmpfloat (milter_message_result_get_elapsed_time (result), >=, 0.02);
  g_assert_cmpfloat (milter_message_result_get_elapsed_time (result), <, 10);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/message-result/fields", test_fields);
  g_test_add_func ("/message-result/times", test_times);

  return g_test_run ();
}
