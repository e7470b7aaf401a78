/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-connection-spec.h"

#include <stdarg.h>
#include <string.h>
#include <sys/un.h>

#include <gio/gunixsocketaddress.h>

/**
 * SECTION:milter-connection-spec
 * @title: Connection specs
 * @short_description: Parse and format milter socket specs such as
 *   `inet:10025@127.0.0.1`
 * @include: milter/milter.h
 *
 * A connection spec names the socket a milter listens on, in the syntax of
 * libmilter's smfi_setconn and of Sendmail's `S=` equate:
 *
 * - `unix:PATH` or `local:PATH`: a Unix domain socket; PATH may be
 *   relative and must fit in `sun_path` (107 bytes on Linux).
 * - `inet:PORT` or `inet:PORT@HOST`: an IPv4 socket. HOST is an address
 *   (`127.0.0.1`), a bracketed address (`[127.0.0.1]`) or a name resolved
 *   to its first IPv4 address. Without HOST the socket listens on every
 *   interface (`0.0.0.0`). Postfix's `inet:HOST:PORT` spelling is accepted
 *   too when the spec has no `@`.
 * - `inet6:PORT` or `inet6:PORT@HOST`: the same for IPv6; without HOST the
 *   address is `::`.
 *
 * PORT is a decimal number from 0 to 65535; 0 lets the system choose.
 * As in libmilter, schemes are read without regard to case, and a spec
 * with an empty scheme (`:PATH`) or none at all is a Unix socket path;
 * without a scheme, the path must contain a `/` (`/run/milter.sock`,
 * `./milter.sock`), so that a mistyped spec is not taken for a file name.
 *
 * milter_connection_spec_parse() turns a spec into a #GSocketAddress (it
 * does no I/O other than resolving a host name) and
 * milter_connection_spec_format() does the reverse:
 *
 * |[<!-- language="C" -->
 * g_autoptr(GError) error = NULL;
 * g_autoptr(GSocketAddress) address = NULL;
 * g_autofree gchar *spec = NULL;
 *
 * address = milter_connection_spec_parse ("inet:10025@[127.0.0.1]", &error);
 * if (address == NULL)
 *   g_error ("%s", error->message);
 * spec = milter_connection_spec_format (address, NULL);
 * g_print ("%s\n", spec);   // inet:10025@127.0.0.1
 * ]|
 */

/* The longest path that fits in sun_path together with its NUL. */
#define UNIX_PATH_MAX_LENGTH (G_SIZEOF_MEMBER (struct sockaddr_un, sun_path) - 1)

#define PORT_MAX 65535

/**
 * milter_connection_spec_error_quark:
 *
 * The quark of %MILTER_CONNECTION_SPEC_ERROR.
 *
 * Returns: the error domain quark
 *
 * Since: 1.0
 */
G_DEFINE_QUARK (milter-connection-spec-error-quark, milter_connection_spec_error)

static void set_spec_error (GError      **error,
                            gint          code,
                            const gchar  *spec,
                            const gchar  *format,
                            ...) G_GNUC_PRINTF (4, 5);

/* Prefixes the message with the spec. A spec is arbitrary bytes but
 * GError messages must be UTF-8, hence g_utf8_make_valid(). */
static void
set_spec_error (GError      **error,
                gint          code,
                const gchar  *spec,
                const gchar  *format,
                ...)
{
  g_autofree gchar *detail = NULL;
  g_autofree gchar *message = NULL;
  g_autofree gchar *valid = NULL;
  va_list args;

  if (error == NULL)
    return;

  va_start (args, format);
  detail = g_strdup_vprintf (format, args);
  va_end (args);

  message = g_strdup_printf ("Invalid connection spec “%s”: %s", spec, detail);
  valid = g_utf8_make_valid (message, -1);
  g_set_error_literal (error, MILTER_CONNECTION_SPEC_ERROR, code, valid);
}

static const gchar *
family_name (GSocketFamily family)
{
  return family == G_SOCKET_FAMILY_IPV6 ? "IPv6" : "IPv4";
}

static const gchar *
scheme_name (GSocketFamily family)
{
  return family == G_SOCKET_FAMILY_IPV6 ? "inet6" : "inet";
}

static GSocketAddress *
parse_unix (const gchar  *spec,
            const gchar  *path,
            GError      **error)
{
  gsize length = strlen (path);

  if (length == 0)
    {
      set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_EMPTY_PATH, spec,
                      "the socket path is empty");
      return NULL;
    }
  if (length > UNIX_PATH_MAX_LENGTH)
    {
      set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_PATH_TOO_LONG, spec,
                      "the socket path is %" G_GSIZE_FORMAT " bytes long, "
                      "at most %" G_GSIZE_FORMAT " are allowed",
                      length, (gsize) UNIX_PATH_MAX_LENGTH);
      return NULL;
    }

  return g_unix_socket_address_new (path);
}

/* Digits only: strtoul() would accept signs, spaces and "0x", and wraps
 * around on long inputs. Stops as soon as the value leaves the range, so it
 * cannot overflow however many digits there are. */
static gboolean
parse_port (const gchar  *spec,
            const gchar  *text,
            guint16      *port,
            GError      **error)
{
  const gchar *p;
  guint value = 0;

  if (*text == '\0')
    {
      set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_MISSING_PORT, spec,
                      "the port is missing");
      return FALSE;
    }

  for (p = text; *p != '\0'; p++)
    {
      if (!g_ascii_isdigit (*p))
        {
          set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT, spec,
                          "port “%s” is not a decimal number", text);
          return FALSE;
        }
    }

  for (p = text; *p != '\0'; p++)
    {
      value = value * 10 + (guint) g_ascii_digit_value (*p);
      if (value > PORT_MAX)
        {
          set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT, spec,
                          "port %s is out of range (0–%d)", text, PORT_MAX);
          return FALSE;
        }
    }

  *port = (guint16) value;
  return TRUE;
}

/* Letters, digits, '-', '.' and '_' (some local names use it), or a
 * non-ASCII name that IDNA can convert. Anything else (spaces, ':', '/',
 * brackets) is a typo rather than a name worth asking the resolver. */
static gboolean
is_valid_host_name (const gchar *host)
{
  g_autofree gchar *ascii = NULL;
  const gchar *p;

  if (!g_utf8_validate (host, -1, NULL))
    return FALSE;

  ascii = g_hostname_to_ascii (host);
  if (ascii == NULL || *ascii == '\0')
    return FALSE;

  for (p = ascii; *p != '\0'; p++)
    {
      if (!g_ascii_isalnum (*p) && *p != '-' && *p != '.' && *p != '_')
        return FALSE;
    }

  return TRUE;
}

static GInetAddress *
resolve_host (const gchar    *spec,
              const gchar    *host,
              GSocketFamily   family,
              GError        **error)
{
  g_autoptr(GResolver) resolver = g_resolver_get_default ();
  g_autoptr(GError) local_error = NULL;
  GInetAddress *address = NULL;
  GList *addresses;
  GList *l;

  addresses = g_resolver_lookup_by_name (resolver, host, NULL, &local_error);
  if (addresses == NULL)
    {
      set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_UNRESOLVABLE_HOST, spec,
                      "cannot resolve host “%s”: %s", host, local_error->message);
      return NULL;
    }

  for (l = addresses; l != NULL; l = l->next)
    {
      if (g_inet_address_get_family (l->data) == family)
        {
          address = g_object_ref (l->data);
          break;
        }
    }
  g_resolver_free_addresses (addresses);

  if (address == NULL)
    set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_UNRESOLVABLE_HOST, spec,
                    "host “%s” has no %s address", host, family_name (family));

  return address;
}

/* Literals are recognised before the resolver sees them, so an address of
 * the wrong family is reported as such instead of as a lookup failure. */
static GInetAddress *
parse_host (const gchar    *spec,
            const gchar    *host,
            GSocketFamily   family,
            GError        **error)
{
  g_autoptr(GInetAddress) address = NULL;
  g_autofree gchar *inner = NULL;
  const gchar *original = host;
  gsize length = strlen (host);
  gboolean bracketed = FALSE;

  if (host[0] == '[' || (length > 0 && host[length - 1] == ']'))
    {
      if (length < 2 || host[0] != '[' || host[length - 1] != ']')
        {
          set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST, spec,
                          "unbalanced brackets in host “%s”", host);
          return NULL;
        }
      inner = g_strndup (host + 1, length - 2);
      host = inner;
      bracketed = TRUE;
    }

  address = g_inet_address_new_from_string (host);
  if (address != NULL)
    {
      if (g_inet_address_get_family (address) != family)
        {
          set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST, spec,
                          "“%s” is an %s address, but %s needs %s", host,
                          family_name (g_inet_address_get_family (address)),
                          scheme_name (family), family_name (family));
          return NULL;
        }
      return g_steal_pointer (&address);
    }

  /* Brackets mark a literal address, as in libmilter. */
  if (bracketed)
    {
      set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST, spec,
                      "“%s” is not an %s address", original, family_name (family));
      return NULL;
    }

  if (!is_valid_host_name (host))
    {
      set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST, spec,
                      "“%s” is not a valid host name", host);
      return NULL;
    }

  return resolve_host (spec, host, family, error);
}

/* @value is what follows "inet:" or "inet6:". */
static GSocketAddress *
parse_inet (const gchar    *spec,
            const gchar    *value,
            GSocketFamily   family,
            GError        **error)
{
  g_autoptr(GInetAddress) address = NULL;
  g_autofree gchar *port_text = NULL;
  g_autofree gchar *host = NULL;
  const gchar *at = strchr (value, '@');
  const gchar *colon = NULL;
  guint16 port;

  /* Postfix writes inet:HOST:PORT; an IPv6 host has colons of its own, so
   * only plain inet gets this reading, and only without '@'. */
  if (at == NULL && family == G_SOCKET_FAMILY_IPV4)
    colon = strrchr (value, ':');

  if (at != NULL)
    {
      port_text = g_strndup (value, (gsize) (at - value));
      host = g_strdup (at + 1);
    }
  else if (colon != NULL)
    {
      host = g_strndup (value, (gsize) (colon - value));
      port_text = g_strdup (colon + 1);
    }
  else
    {
      port_text = g_strdup (value);
    }

  if (!parse_port (spec, port_text, &port, error))
    return NULL;

  if (host == NULL)
    {
      /* No host: listen on every interface, as libmilter does. */
      address = g_inet_address_new_any (family);
    }
  else if (*host == '\0')
    {
      set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_MISSING_HOST, spec,
                      at != NULL ? "the host after “@” is empty"
                                 : "the host before “:” is empty");
      return NULL;
    }
  else
    {
      address = parse_host (spec, host, family, error);
      if (address == NULL)
        return NULL;
    }

  return g_inet_socket_address_new (address, port);
}

/**
 * milter_connection_spec_parse:
 * @spec: a connection spec such as `inet:10025@127.0.0.1` or
 *   `unix:/run/milter.sock`
 * @error: return location for a #GError, or %NULL
 *
 * Parses @spec into the address a milter listens on. See the overview for
 * the accepted forms.
 *
 * A host name is resolved synchronously with the default #GResolver and
 * the first address of the scheme's family is used, so this function may
 * block; host addresses never reach the resolver.
 *
 * Returns: (transfer full): a #GUnixSocketAddress for `unix` and `local`
 *   specs, a #GInetSocketAddress for `inet` and `inet6` specs, or %NULL
 *   with @error set to a #MilterConnectionSpecError
 *
 * Since: 1.0
 */
GSocketAddress *
milter_connection_spec_parse (const gchar  *spec,
                              GError      **error)
{
  const gchar *colon;
  const gchar *value;
  g_autofree gchar *scheme = NULL;

  g_return_val_if_fail (spec != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  colon = strchr (spec, ':');
  if (colon == NULL)
    {
      /* libmilter takes the whole spec as a socket path. A word without a
       * slash ("inet", "10025") is more likely a mistake than a path. */
      if (strchr (spec, '/') != NULL)
        return parse_unix (spec, spec, error);
      set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_INVALID_FORMAT, spec,
                      "expected SCHEME:VALUE, such as inet:10025@127.0.0.1 or "
                      "unix:/run/milter.sock");
      return NULL;
    }

  scheme = g_strndup (spec, (gsize) (colon - spec));
  value = colon + 1;

  /* As libmilter: an empty scheme means unix, and case does not matter. */
  if (*scheme == '\0' || g_ascii_strcasecmp (scheme, "unix") == 0 ||
      g_ascii_strcasecmp (scheme, "local") == 0)
    return parse_unix (spec, value, error);
  if (g_ascii_strcasecmp (scheme, "inet") == 0)
    return parse_inet (spec, value, G_SOCKET_FAMILY_IPV4, error);
  if (g_ascii_strcasecmp (scheme, "inet6") == 0)
    return parse_inet (spec, value, G_SOCKET_FAMILY_IPV6, error);

  set_spec_error (error, MILTER_CONNECTION_SPEC_ERROR_UNKNOWN_SCHEME, spec,
                  "unknown scheme “%s” (expected unix, local, inet or inet6)",
                  scheme);
  return NULL;
}

static gchar *
format_unix (GUnixSocketAddress  *address,
             GError             **error)
{
  const gchar *path;

  if (g_unix_socket_address_get_address_type (address) != G_UNIX_SOCKET_ADDRESS_PATH)
    {
      g_set_error_literal (error, MILTER_CONNECTION_SPEC_ERROR,
                           MILTER_CONNECTION_SPEC_ERROR_UNSUPPORTED_ADDRESS,
                           "Cannot express an abstract or anonymous Unix socket "
                           "address as a connection spec");
      return NULL;
    }

  /* An empty path would format as "unix:", which does not parse. */
  path = g_unix_socket_address_get_path (address);
  if (*path == '\0')
    {
      g_set_error_literal (error, MILTER_CONNECTION_SPEC_ERROR,
                           MILTER_CONNECTION_SPEC_ERROR_UNSUPPORTED_ADDRESS,
                           "Cannot express a Unix socket address with an empty "
                           "path as a connection spec");
      return NULL;
    }

  return g_strconcat ("unix:", path, NULL);
}

static gchar *
format_inet (GInetSocketAddress  *address,
             GError             **error)
{
  GInetAddress *inet_address = g_inet_socket_address_get_address (address);
  g_autofree gchar *text = NULL;
  gboolean ipv6;

  ipv6 = g_inet_address_get_family (inet_address) == G_SOCKET_FAMILY_IPV6;

  /* A spec has no room for a scope ID; dropping it would give back a
   * different address when parsed. */
  if (ipv6 && g_inet_socket_address_get_scope_id (address) != 0)
    {
      g_set_error_literal (error, MILTER_CONNECTION_SPEC_ERROR,
                           MILTER_CONNECTION_SPEC_ERROR_UNSUPPORTED_ADDRESS,
                           "Cannot express an IPv6 address with a scope ID "
                           "as a connection spec");
      return NULL;
    }

  text = g_inet_address_to_string (inet_address);
  return g_strdup_printf ("%s:%u@%s", ipv6 ? "inet6" : "inet",
                          (guint) g_inet_socket_address_get_port (address), text);
}

/**
 * milter_connection_spec_format:
 * @address: a #GSocketAddress
 * @error: return location for a #GError, or %NULL
 *
 * Formats @address as a connection spec that milter_connection_spec_parse()
 * turns back into an equal address: `unix:PATH` for a path-based
 * #GUnixSocketAddress, `inet:PORT@ADDRESS` for an IPv4 and
 * `inet6:PORT@ADDRESS` (without brackets) for an IPv6
 * #GInetSocketAddress.
 *
 * Abstract and anonymous Unix socket addresses, IPv6 addresses with a scope
 * ID and other kinds of address fail with
 * %MILTER_CONNECTION_SPEC_ERROR_UNSUPPORTED_ADDRESS.
 *
 * Returns: (transfer full): the connection spec, or %NULL with @error set
 *
 * Since: 1.0
 */
gchar *
milter_connection_spec_format (GSocketAddress  *address,
                               GError         **error)
{
  g_return_val_if_fail (G_IS_SOCKET_ADDRESS (address), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (G_IS_UNIX_SOCKET_ADDRESS (address))
    return format_unix (G_UNIX_SOCKET_ADDRESS (address), error);
  if (G_IS_INET_SOCKET_ADDRESS (address))
    return format_inet (G_INET_SOCKET_ADDRESS (address), error);

  g_set_error (error, MILTER_CONNECTION_SPEC_ERROR,
               MILTER_CONNECTION_SPEC_ERROR_UNSUPPORTED_ADDRESS,
               "Cannot express a %s as a connection spec",
               G_OBJECT_TYPE_NAME (address));
  return NULL;
}
