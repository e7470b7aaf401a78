/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MILTER_INSIDE) && !defined (MILTER_COMPILATION)
# error "Only <milter/milter.h> can be included directly."
#endif

#include <gio/gio.h>
#include <milter/core/milter-version-macros.h>

G_BEGIN_DECLS

/**
 * MILTER_CONNECTION_SPEC_ERROR:
 *
 * The error domain of malformed connection specs.
 *
 * Since: 1.0
 */
#define MILTER_CONNECTION_SPEC_ERROR (milter_connection_spec_error_quark ())

/**
 * MilterConnectionSpecError:
 * @MILTER_CONNECTION_SPEC_ERROR_INVALID_FORMAT: not of the form
 *   `SCHEME:VALUE`
 * @MILTER_CONNECTION_SPEC_ERROR_UNKNOWN_SCHEME: a scheme other than `unix`,
 *   `local`, `inet` or `inet6`
 * @MILTER_CONNECTION_SPEC_ERROR_MISSING_PORT: an `inet`/`inet6` spec
 *   without a port
 * @MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT: a port that is not a decimal
 *   number from 0 to 65535
 * @MILTER_CONNECTION_SPEC_ERROR_MISSING_HOST: an empty host after `@`
 * @MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST: a host that is not a valid
 *   address or name for the scheme (for example an IPv4 address in an
 *   `inet6` spec, or unbalanced brackets)
 * @MILTER_CONNECTION_SPEC_ERROR_UNRESOLVABLE_HOST: a host name that does not
 *   resolve to an address of the scheme's family
 * @MILTER_CONNECTION_SPEC_ERROR_EMPTY_PATH: a `unix`/`local` spec without a
 *   path
 * @MILTER_CONNECTION_SPEC_ERROR_PATH_TOO_LONG: a socket path longer than the
 *   system allows (107 bytes on Linux)
 * @MILTER_CONNECTION_SPEC_ERROR_UNSUPPORTED_ADDRESS: an address that no spec
 *   can express (milter_connection_spec_format() only)
 *
 * Faults in a connection spec.
 *
 * Since: 1.0
 */
typedef enum {
  MILTER_CONNECTION_SPEC_ERROR_INVALID_FORMAT,
  MILTER_CONNECTION_SPEC_ERROR_UNKNOWN_SCHEME,
  MILTER_CONNECTION_SPEC_ERROR_MISSING_PORT,
  MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT,
  MILTER_CONNECTION_SPEC_ERROR_MISSING_HOST,
  MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST,
  MILTER_CONNECTION_SPEC_ERROR_UNRESOLVABLE_HOST,
  MILTER_CONNECTION_SPEC_ERROR_EMPTY_PATH,
  MILTER_CONNECTION_SPEC_ERROR_PATH_TOO_LONG,
  MILTER_CONNECTION_SPEC_ERROR_UNSUPPORTED_ADDRESS,
} MilterConnectionSpecError;

MILTER_AVAILABLE_IN_ALL
GQuark milter_connection_spec_error_quark (void);

MILTER_AVAILABLE_IN_ALL
GSocketAddress *milter_connection_spec_parse (const gchar  *spec,
                                              GError      **error);

MILTER_AVAILABLE_IN_ALL
gchar *milter_connection_spec_format (GSocketAddress  *address,
                                      GError         **error);

G_END_DECLS
