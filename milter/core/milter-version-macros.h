/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MILTER_INSIDE) && !defined (MILTER_COMPILATION)
# error "Only <milter/milter.h> can be included directly."
#endif

#include <glib.h>

/**
 * SECTION:milter-version-macros
 * @title: Version macros
 * @short_description: Symbol export and availability annotations
 * @include: milter/milter.h
 *
 * Every public symbol of milter-glib is preceded by one of these
 * macros. The library is built with hidden symbol visibility; these
 * macros mark what is exported.
 *
 * |[<!-- language="C" -->
 * MILTER_AVAILABLE_IN_ALL
 * MilterClient *milter_client_new (void);
 * ]|
 */

#if defined (__GNUC__) && (__GNUC__ >= 4)
# define _MILTER_EXTERN __attribute__ ((visibility ("default"))) extern
#else
# define _MILTER_EXTERN extern
#endif

/**
 * MILTER_AVAILABLE_IN_ALL:
 *
 * Marks a symbol that is part of the public API since the first release.
 *
 * Since: 1.0
 */
#define MILTER_AVAILABLE_IN_ALL _MILTER_EXTERN

/**
 * MILTER_AVAILABLE_IN_1_0:
 *
 * Marks a symbol that is available since milter-glib 1.0.
 *
 * Since: 1.0
 */
#define MILTER_AVAILABLE_IN_1_0 _MILTER_EXTERN
