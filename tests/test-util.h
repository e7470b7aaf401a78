/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <milter/milter.h>

G_BEGIN_DECLS

/* "00000006 000001ff" → bytes; spaces and newlines are ignored. */
GBytes *test_util_bytes_from_hex (const gchar *hex);
/* Bytes → lowercase hex without spaces. */
gchar *test_util_hex (gconstpointer data,
                      gsize         size);
gchar *test_util_bytes_to_hex (GBytes *bytes);

/* Runs the thread-default main context until *flag is TRUE or
 * @timeout_ms passes; fails the test on timeout. */
void test_util_wait_for_flag (gboolean   *flag,
                              guint       timeout_ms,
                              const gchar *what);
/* Runs the thread-default main context for @ms milliseconds. */
void test_util_run_for (guint ms);

/* A GSpawnChildSetupFunc: the child is killed when the test ends, so a
 * failed assertion does not leave a filter process running (and holding
 * the test harness's output open). */
void test_util_die_with_parent (gpointer user_data);

G_END_DECLS
