/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib.h>

/* What every fuzz target shares: a critical warning reached from input is
 * a bug (the library's precondition checks are for programming errors,
 * never for what a peer sends), so it aborts like a crash; the library's
 * messages about bad peers are dropped, or they would slow the fuzzer
 * down to the speed of the terminal. */

int LLVMFuzzerInitialize (int    *argc,
                          char ***argv);

static void
drop_message (const gchar    *domain,
              GLogLevelFlags  level,
              const gchar    *message,
              gpointer        user_data)
{
}

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
  g_log_set_handler ("Milter", G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG,
                     drop_message, NULL);
  return 0;
}
