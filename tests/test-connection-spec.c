/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>

#include <milter/core/milter-connection-spec.h>

/* A resolver with a fixed table, so that family selection and "literals
 * never reach the resolver" can be checked without depending on DNS or
 * on this machine's /etc/hosts. */

#define TEST_TYPE_RESOLVER (test_resolver_get_type ())
G_DECLARE_FINAL_TYPE (TestResolver, test_resolver, TEST, RESOLVER, GResolver)

struct _TestResolver
{
  GResolver parent_instance;
  guint lookups;
};

G_DEFINE_FINAL_TYPE (TestResolver, test_resolver, G_TYPE_RESOLVER)

static const struct {
  const gchar *name;
  const gchar *addresses[3];
} test_hosts[] = {
  { "dual.test", { "192.0.2.7", "2001:db8::7", NULL } },
  { "v6-first.test", { "2001:db8::8", "2001:db8::9", "192.0.2.8" } },
  { "v4only.test", { "192.0.2.1", NULL, NULL } },
  { "v6only.test", { "2001:db8::1", NULL, NULL } },
};

static GList *
test_resolver_lookup_by_name (GResolver     *resolver,
                              const gchar   *hostname,
                              GCancellable  *cancellable,
                              GError       **error)
{
  TestResolver *self = TEST_RESOLVER (resolver);
  GList *addresses = NULL;
  gsize i, j;

  self->lookups++;

  for (i = 0; i < G_N_ELEMENTS (test_hosts); i++)
    {
      if (!g_str_equal (hostname, test_hosts[i].name))
        continue;
      for (j = 0; j < G_N_ELEMENTS (test_hosts[i].addresses); j++)
        {
          if (test_hosts[i].addresses[j] != NULL)
            addresses = g_list_append (addresses,
                                       g_inet_address_new_from_string (test_hosts[i].addresses[j]));
        }
      return addresses;
    }

  g_set_error (error, G_RESOLVER_ERROR, G_RESOLVER_ERROR_NOT_FOUND,
               "test resolver: no such host “%s”", hostname);
  return NULL;
}

static void
test_resolver_class_init (TestResolverClass *klass)
{
  GResolverClass *resolver_class = G_RESOLVER_CLASS (klass);

  resolver_class->lookup_by_name = test_resolver_lookup_by_name;
}

static void
test_resolver_init (TestResolver *self)
{
}

/* Helpers */

static void
assert_inet (GSocketAddress *address,
             GSocketFamily   family,
             const gchar    *host,
             guint16         port)
{
  GInetAddress *inet_address;
  g_autofree gchar *text = NULL;

  g_assert_nonnull (address);
  g_assert_true (G_IS_INET_SOCKET_ADDRESS (address));
  g_assert_cmpint (g_socket_address_get_family (address), ==, family);

  inet_address = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address));
  g_assert_cmpint (g_inet_address_get_family (inet_address), ==, family);
  text = g_inet_address_to_string (inet_address);
  g_assert_cmpstr (text, ==, host);
  g_assert_cmpuint (g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address)), ==, port);
}

static void
assert_parses_inet (const gchar   *spec,
                    GSocketFamily  family,
                    const gchar   *host,
                    guint16        port)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  g_test_message ("parsing %s", spec);
  address = milter_connection_spec_parse (spec, &error);
  g_assert_no_error (error);
  assert_inet (address, family, host, port);
}

static void
assert_parses_unix (const gchar *spec,
                    const gchar *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  GUnixSocketAddress *unix_address;

  g_test_message ("parsing %s", spec);
  address = milter_connection_spec_parse (spec, &error);
  g_assert_no_error (error);
  g_assert_true (G_IS_UNIX_SOCKET_ADDRESS (address));
  g_assert_cmpint (g_socket_address_get_family (address), ==, G_SOCKET_FAMILY_UNIX);

  unix_address = G_UNIX_SOCKET_ADDRESS (address);
  g_assert_cmpint (g_unix_socket_address_get_address_type (unix_address), ==,
                   G_UNIX_SOCKET_ADDRESS_PATH);
  g_assert_cmpstr (g_unix_socket_address_get_path (unix_address), ==, path);
}

static void
assert_parse_fails (const gchar               *spec,
                    MilterConnectionSpecError  code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  g_test_message ("parsing '%s', expecting error %d", spec, code);
  address = milter_connection_spec_parse (spec, &error);
  g_assert_null (address);
  g_assert_error (error, MILTER_CONNECTION_SPEC_ERROR, (gint) code);
  g_assert_nonnull (strstr (error->message, spec));
}

/* Parsing valid specs */

static void
test_parse_unix (void)
{
  assert_parses_unix ("unix:/run/milter/milter.sock", "/run/milter/milter.sock");
  assert_parses_unix ("local:/var/spool/postfix/milter", "/var/spool/postfix/milter");
  assert_parses_unix ("unix:milter.sock", "milter.sock");
  assert_parses_unix ("local:./run/milter.sock", "./run/milter.sock");
  /* Everything after the first colon is the path. */
  assert_parses_unix ("unix:/tmp/a:b@c", "/tmp/a:b@c");
  /* As libmilter: no scheme, an empty one, any case. */
  assert_parses_unix ("/run/milter/milter.sock", "/run/milter/milter.sock");
  assert_parses_unix ("./milter.sock", "./milter.sock");
  assert_parses_unix (":milter.sock", "milter.sock");
  assert_parses_unix ("Unix:/run/milter.sock", "/run/milter.sock");
  assert_parses_unix ("LOCAL:/run/milter.sock", "/run/milter.sock");
}

static void
test_parse_unix_path_length (void)
{
  gsize max = sizeof (((struct sockaddr_un *) 0)->sun_path) - 1;
  g_autofree gchar *longest = NULL;
  g_autofree gchar *too_long = NULL;
  g_autofree gchar *spec = NULL;

#ifdef __linux__
  g_assert_cmpuint (max, ==, 107);
#endif

  longest = g_strnfill (max, 'a');
  longest[0] = '/';
  spec = g_strconcat ("unix:", longest, NULL);
  assert_parses_unix (spec, longest);
  g_clear_pointer (&spec, g_free);

  too_long = g_strnfill (max + 1, 'a');
  too_long[0] = '/';
  spec = g_strconcat ("unix:", too_long, NULL);
  assert_parse_fails (spec, MILTER_CONNECTION_SPEC_ERROR_PATH_TOO_LONG);
  g_clear_pointer (&spec, g_free);

  spec = g_strconcat ("local:", too_long, NULL);
  assert_parse_fails (spec, MILTER_CONNECTION_SPEC_ERROR_PATH_TOO_LONG);
}

static void
test_parse_inet (void)
{
  assert_parses_inet ("inet:10025", G_SOCKET_FAMILY_IPV4, "0.0.0.0", 10025);
  assert_parses_inet ("INET:10025@127.0.0.1", G_SOCKET_FAMILY_IPV4, "127.0.0.1", 10025);
  assert_parses_inet ("Inet6:10025@::1", G_SOCKET_FAMILY_IPV6, "::1", 10025);
  assert_parses_inet ("inet:10025@127.0.0.1", G_SOCKET_FAMILY_IPV4, "127.0.0.1", 10025);
  assert_parses_inet ("inet:10025@[127.0.0.1]", G_SOCKET_FAMILY_IPV4, "127.0.0.1", 10025);
  assert_parses_inet ("inet:10025@192.0.2.33", G_SOCKET_FAMILY_IPV4, "192.0.2.33", 10025);
  assert_parses_inet ("inet:10025@localhost", G_SOCKET_FAMILY_IPV4, "127.0.0.1", 10025);
  assert_parses_inet ("inet:0", G_SOCKET_FAMILY_IPV4, "0.0.0.0", 0);
  assert_parses_inet ("inet:0@127.0.0.1", G_SOCKET_FAMILY_IPV4, "127.0.0.1", 0);
  assert_parses_inet ("inet:65535@127.0.0.1", G_SOCKET_FAMILY_IPV4, "127.0.0.1", 65535);
  /* Leading zeros are still decimal, not octal. */
  assert_parses_inet ("inet:010025", G_SOCKET_FAMILY_IPV4, "0.0.0.0", 10025);
}

static void
test_parse_inet_postfix (void)
{
  assert_parses_inet ("inet:127.0.0.1:10025", G_SOCKET_FAMILY_IPV4, "127.0.0.1", 10025);
  assert_parses_inet ("inet:localhost:10025", G_SOCKET_FAMILY_IPV4, "127.0.0.1", 10025);
  assert_parses_inet ("inet:[127.0.0.1]:10025", G_SOCKET_FAMILY_IPV4, "127.0.0.1", 10025);
  assert_parses_inet ("inet:127.0.0.1:0", G_SOCKET_FAMILY_IPV4, "127.0.0.1", 0);
}

static void
test_parse_inet6 (void)
{
  assert_parses_inet ("inet6:10025", G_SOCKET_FAMILY_IPV6, "::", 10025);
  assert_parses_inet ("inet6:10025@::1", G_SOCKET_FAMILY_IPV6, "::1", 10025);
  assert_parses_inet ("inet6:10025@[::1]", G_SOCKET_FAMILY_IPV6, "::1", 10025);
  assert_parses_inet ("inet6:10025@2001:db8::1", G_SOCKET_FAMILY_IPV6, "2001:db8::1", 10025);
  assert_parses_inet ("inet6:10025@[::ffff:127.0.0.1]", G_SOCKET_FAMILY_IPV6,
                      "::ffff:127.0.0.1", 10025);
  assert_parses_inet ("inet6:0@::1", G_SOCKET_FAMILY_IPV6, "::1", 0);
  assert_parses_inet ("inet6:65535", G_SOCKET_FAMILY_IPV6, "::", 65535);
}

/* Name resolution, against the fixed table of TestResolver */

typedef struct {
  GResolver *saved;
  TestResolver *resolver;
} ResolverFixture;

static void
resolver_setup (ResolverFixture *f,
                gconstpointer    data)
{
  f->saved = g_resolver_get_default ();
  f->resolver = g_object_new (TEST_TYPE_RESOLVER, NULL);
  g_resolver_set_default (G_RESOLVER (f->resolver));
}

static void
resolver_teardown (ResolverFixture *f,
                   gconstpointer    data)
{
  g_resolver_set_default (f->saved);
  g_clear_object (&f->saved);
  g_clear_object (&f->resolver);
}

static void
test_resolve_family (ResolverFixture *f,
                     gconstpointer    data)
{
  assert_parses_inet ("inet:25@dual.test", G_SOCKET_FAMILY_IPV4, "192.0.2.7", 25);
  assert_parses_inet ("inet6:25@dual.test", G_SOCKET_FAMILY_IPV6, "2001:db8::7", 25);
  /* The first address of the scheme's family wins. */
  assert_parses_inet ("inet:25@v6-first.test", G_SOCKET_FAMILY_IPV4, "192.0.2.8", 25);
  assert_parses_inet ("inet6:25@v6-first.test", G_SOCKET_FAMILY_IPV6, "2001:db8::8", 25);
  assert_parses_inet ("inet:v4only.test:25", G_SOCKET_FAMILY_IPV4, "192.0.2.1", 25);
  g_assert_cmpuint (f->resolver->lookups, ==, 5);
}

static void
test_resolve_wrong_family (ResolverFixture *f,
                           gconstpointer    data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  assert_parse_fails ("inet6:25@v4only.test", MILTER_CONNECTION_SPEC_ERROR_UNRESOLVABLE_HOST);
  assert_parse_fails ("inet:25@v6only.test", MILTER_CONNECTION_SPEC_ERROR_UNRESOLVABLE_HOST);

  address = milter_connection_spec_parse ("inet6:25@v4only.test", &error);
  g_assert_null (address);
  g_assert_nonnull (strstr (error->message, "IPv6"));
}

static void
test_resolve_failure (ResolverFixture *f,
                      gconstpointer    data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  address = milter_connection_spec_parse ("inet:25@unknown.test", &error);
  g_assert_null (address);
  g_assert_error (error, MILTER_CONNECTION_SPEC_ERROR,
                  MILTER_CONNECTION_SPEC_ERROR_UNRESOLVABLE_HOST);
  g_assert_nonnull (strstr (error->message, "inet:25@unknown.test"));
  /* The resolver's own message is kept. */
  g_assert_nonnull (strstr (error->message, "test resolver: no such host"));
  g_assert_cmpuint (f->resolver->lookups, ==, 1);
}

static void
test_resolve_literals_skip_resolver (ResolverFixture *f,
                                     gconstpointer    data)
{
  assert_parses_inet ("inet:25@127.0.0.1", G_SOCKET_FAMILY_IPV4, "127.0.0.1", 25);
  assert_parses_inet ("inet:25@[127.0.0.1]", G_SOCKET_FAMILY_IPV4, "127.0.0.1", 25);
  assert_parses_inet ("inet:127.0.0.1:25", G_SOCKET_FAMILY_IPV4, "127.0.0.1", 25);
  assert_parses_inet ("inet6:25@::1", G_SOCKET_FAMILY_IPV6, "::1", 25);
  assert_parses_inet ("inet6:25@[::1]", G_SOCKET_FAMILY_IPV6, "::1", 25);
  assert_parse_fails ("inet:25@::1", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST);
  assert_parse_fails ("inet6:25@127.0.0.1", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST);
  /* Bracketed names and malformed hosts are rejected before any lookup. */
  assert_parse_fails ("inet:25@[dual.test]", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST);
  assert_parse_fails ("inet:25@dual test", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST);
  g_assert_cmpuint (f->resolver->lookups, ==, 0);
}

/* Malformed specs */

static const struct {
  const gchar *spec;
  MilterConnectionSpecError code;
} malformed_specs[] = {
  { "", MILTER_CONNECTION_SPEC_ERROR_INVALID_FORMAT },
  { "inet", MILTER_CONNECTION_SPEC_ERROR_INVALID_FORMAT },
  { "10025", MILTER_CONNECTION_SPEC_ERROR_INVALID_FORMAT },
  { "milter.sock", MILTER_CONNECTION_SPEC_ERROR_INVALID_FORMAT },
  { "tcp:10025", MILTER_CONNECTION_SPEC_ERROR_UNKNOWN_SCHEME },
  { "/tmp/a:b", MILTER_CONNECTION_SPEC_ERROR_UNKNOWN_SCHEME },
  { ":", MILTER_CONNECTION_SPEC_ERROR_EMPTY_PATH },
  { "INET:", MILTER_CONNECTION_SPEC_ERROR_MISSING_PORT },
  { " inet:10025", MILTER_CONNECTION_SPEC_ERROR_UNKNOWN_SCHEME },
  { "unix:", MILTER_CONNECTION_SPEC_ERROR_EMPTY_PATH },
  { "local:", MILTER_CONNECTION_SPEC_ERROR_EMPTY_PATH },
  { "inet:", MILTER_CONNECTION_SPEC_ERROR_MISSING_PORT },
  { "inet6:", MILTER_CONNECTION_SPEC_ERROR_MISSING_PORT },
  { "inet:@127.0.0.1", MILTER_CONNECTION_SPEC_ERROR_MISSING_PORT },
  { "inet6:@::1", MILTER_CONNECTION_SPEC_ERROR_MISSING_PORT },
  { "inet:@", MILTER_CONNECTION_SPEC_ERROR_MISSING_PORT },
  { "inet:127.0.0.1:", MILTER_CONNECTION_SPEC_ERROR_MISSING_PORT },
  { "inet:65536", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet:99999", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet:-1", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet:+25", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet: 25", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet:25 ", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet:0x19", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet:10a", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet:smtp", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet:99999999999999999999", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet:4294967297", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet:127.0.0.1:65536", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet6:10025@", MILTER_CONNECTION_SPEC_ERROR_MISSING_HOST },
  { "inet6:[::1]:10025", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet6:70000@::1", MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT },
  { "inet:10025@", MILTER_CONNECTION_SPEC_ERROR_MISSING_HOST },
  { "inet::10025", MILTER_CONNECTION_SPEC_ERROR_MISSING_HOST },
  { "inet:10025@::1", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet:10025@[::1]", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet:[::1]:10025", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet6:10025@127.0.0.1", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet6:10025@[127.0.0.1]", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet6:10025@[::1", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet6:10025@::1]", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet:10025@[127.0.0.1", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet:10025@[]", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet:10025@[", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet:10025@[localhost]", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet:10025@mail example.com", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet:10025@ localhost", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet:10025@host/name", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet:10025@127.0.0.1@127.0.0.1", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
  { "inet6:10025@fe80::zz", MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST },
};

static void
test_parse_errors (void)
{
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (malformed_specs); i++)
    assert_parse_fails (malformed_specs[i].spec, malformed_specs[i].code);
}

static void
test_parse_error_messages (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  address = milter_connection_spec_parse ("inet:99999", &error);
  g_assert_null (address);
  g_assert_error (error, MILTER_CONNECTION_SPEC_ERROR, MILTER_CONNECTION_SPEC_ERROR_INVALID_PORT);
  g_assert_cmpstr (error->message, ==,
                   "Invalid connection spec “inet:99999”: port 99999 is out of range (0–65535)");
  g_clear_error (&error);

  /* A NULL error location is allowed. */
  g_assert_null (milter_connection_spec_parse ("tcp:25", NULL));

  /* Messages stay valid UTF-8 whatever bytes the spec holds. */
  address = milter_connection_spec_parse ("inet:25@\xff\xfe", &error);
  g_assert_null (address);
  g_assert_error (error, MILTER_CONNECTION_SPEC_ERROR, MILTER_CONNECTION_SPEC_ERROR_INVALID_HOST);
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
  g_assert_nonnull (strstr (error->message, "inet:25@"));
}

static void
test_parse_unresolvable (void)
{
  const gchar *spec = "inet:10025@nonexistent.invalid";
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  gint64 start = g_get_monotonic_time ();

  address = milter_connection_spec_parse (spec, &error);
  g_assert_null (address);
  g_assert_error (error, MILTER_CONNECTION_SPEC_ERROR,
                  MILTER_CONNECTION_SPEC_ERROR_UNRESOLVABLE_HOST);
  g_assert_nonnull (strstr (error->message, spec));
  g_assert_nonnull (strstr (error->message, "nonexistent.invalid"));
  /* The name cannot exist (RFC 6761), so the lookup must fail quickly. */
  g_assert_cmpint (g_get_monotonic_time () - start, <, 10 * G_USEC_PER_SEC);
}

static void
test_parse_null (void)
{
  if (g_test_subprocess ())
    {
      milter_connection_spec_parse (NULL, NULL);
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*spec != NULL*");
}

/* Formatting */

/* Not g_inet_socket_address_new_from_string(): it turns ::ffff:a.b.c.d
 * into a plain IPv4 address. */
static GSocketAddress *
inet_socket_address (const gchar *host,
                     guint16      port)
{
  g_autoptr(GInetAddress) address = g_inet_address_new_from_string (host);

  g_assert_nonnull (address);
  return g_inet_socket_address_new (address, port);
}

static void
assert_round_trip (GSocketAddress *address,
                   const gchar    *expected)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) parsed = NULL;
  g_autofree gchar *spec = NULL;

  spec = milter_connection_spec_format (address, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (spec, ==, expected);

  parsed = milter_connection_spec_parse (spec, &error);
  g_assert_no_error (error);
  g_assert_nonnull (parsed);
  g_assert_true (G_OBJECT_TYPE (parsed) == G_OBJECT_TYPE (address));
  g_assert_cmpint (g_socket_address_get_family (parsed), ==,
                   g_socket_address_get_family (address));

  if (G_IS_UNIX_SOCKET_ADDRESS (address))
    {
      GUnixSocketAddress *a = G_UNIX_SOCKET_ADDRESS (address);
      GUnixSocketAddress *b = G_UNIX_SOCKET_ADDRESS (parsed);

      g_assert_cmpint (g_unix_socket_address_get_address_type (b), ==,
                       g_unix_socket_address_get_address_type (a));
      g_assert_cmpstr (g_unix_socket_address_get_path (b), ==,
                       g_unix_socket_address_get_path (a));
    }
  else
    {
      GInetSocketAddress *a = G_INET_SOCKET_ADDRESS (address);
      GInetSocketAddress *b = G_INET_SOCKET_ADDRESS (parsed);

      g_assert_true (g_inet_address_equal (g_inet_socket_address_get_address (b),
                                           g_inet_socket_address_get_address (a)));
      g_assert_cmpuint (g_inet_socket_address_get_port (b), ==,
                        g_inet_socket_address_get_port (a));
    }
}

static void
test_format_unix (void)
{
  g_autoptr(GSocketAddress) absolute = g_unix_socket_address_new ("/run/milter/milter.sock");
  g_autoptr(GSocketAddress) relative = g_unix_socket_address_new ("milter.sock");

  assert_round_trip (absolute, "unix:/run/milter/milter.sock");
  assert_round_trip (relative, "unix:milter.sock");
}

static void
test_format_inet (void)
{
  g_autoptr(GSocketAddress) loopback = inet_socket_address ("127.0.0.1", 10025);
  g_autoptr(GSocketAddress) any = inet_socket_address ("0.0.0.0", 0);
  g_autoptr(GSocketAddress) high = inet_socket_address ("192.0.2.1", 65535);

  assert_round_trip (loopback, "inet:10025@127.0.0.1");
  assert_round_trip (any, "inet:0@0.0.0.0");
  assert_round_trip (high, "inet:65535@192.0.2.1");
}

static void
test_format_inet6 (void)
{
  g_autoptr(GSocketAddress) loopback = inet_socket_address ("::1", 10025);
  g_autoptr(GSocketAddress) any = inet_socket_address ("::", 25);
  g_autoptr(GSocketAddress) doc = inet_socket_address ("2001:db8::1", 65535);
  g_autoptr(GSocketAddress) mapped = inet_socket_address ("::ffff:127.0.0.1", 1);

  assert_round_trip (loopback, "inet6:10025@::1");
  assert_round_trip (any, "inet6:25@::");
  assert_round_trip (doc, "inet6:65535@2001:db8::1");
  assert_round_trip (mapped, "inet6:1@::ffff:127.0.0.1");
}

static void
assert_format_unsupported (GSocketAddress *address)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *spec = NULL;

  spec = milter_connection_spec_format (address, &error);
  g_assert_null (spec);
  g_assert_error (error, MILTER_CONNECTION_SPEC_ERROR,
                  MILTER_CONNECTION_SPEC_ERROR_UNSUPPORTED_ADDRESS);
}

static void
test_format_unsupported (void)
{
  g_autoptr(GSocketAddress) abstract = NULL;
  g_autoptr(GSocketAddress) anonymous = NULL;
  g_autoptr(GSocketAddress) scoped = NULL;
  g_autoptr(GInetAddress) link_local = NULL;
  g_autoptr(GSocketAddress) native = NULL;
  struct sockaddr_storage storage;

  abstract = g_unix_socket_address_new_with_type ("milter", -1,
                                                  G_UNIX_SOCKET_ADDRESS_ABSTRACT);
  assert_format_unsupported (abstract);

  anonymous = g_unix_socket_address_new_with_type ("", 0, G_UNIX_SOCKET_ADDRESS_ANONYMOUS);
  assert_format_unsupported (anonymous);

  /* A scope ID would be lost, so the round trip would not hold. */
  link_local = g_inet_address_new_from_string ("fe80::1");
  scoped = g_object_new (G_TYPE_INET_SOCKET_ADDRESS,
                         "address", link_local, "port", 25, "scope-id", 2, NULL);
  assert_format_unsupported (scoped);

  /* A family GIO has no class for becomes a GNativeSocketAddress. */
  memset (&storage, 0, sizeof storage);
  storage.ss_family = AF_APPLETALK;
  native = g_socket_address_new_from_native (&storage, sizeof storage);
  g_assert_nonnull (native);
  g_assert_false (G_IS_INET_SOCKET_ADDRESS (native));
  g_assert_false (G_IS_UNIX_SOCKET_ADDRESS (native));
  assert_format_unsupported (native);
}

static void
test_format_null (void)
{
  if (g_test_subprocess ())
    {
      milter_connection_spec_format (NULL, NULL);
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*G_IS_SOCKET_ADDRESS*");
}

static void
test_error_quark (void)
{
  g_assert_cmpstr (g_quark_to_string (MILTER_CONNECTION_SPEC_ERROR), ==,
                   "milter-connection-spec-error-quark");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/connection-spec/error-quark", test_error_quark);
  g_test_add_func ("/connection-spec/parse/unix", test_parse_unix);
  g_test_add_func ("/connection-spec/parse/unix-path-length", test_parse_unix_path_length);
  g_test_add_func ("/connection-spec/parse/inet", test_parse_inet);
  g_test_add_func ("/connection-spec/parse/inet-postfix", test_parse_inet_postfix);
  g_test_add_func ("/connection-spec/parse/inet6", test_parse_inet6);
  g_test_add ("/connection-spec/resolve/family", ResolverFixture, NULL,
              resolver_setup, test_resolve_family, resolver_teardown);
  g_test_add ("/connection-spec/resolve/wrong-family", ResolverFixture, NULL,
              resolver_setup, test_resolve_wrong_family, resolver_teardown);
  g_test_add ("/connection-spec/resolve/failure", ResolverFixture, NULL,
              resolver_setup, test_resolve_failure, resolver_teardown);
  g_test_add ("/connection-spec/resolve/literals-skip-resolver", ResolverFixture, NULL,
              resolver_setup, test_resolve_literals_skip_resolver, resolver_teardown);
  g_test_add_func ("/connection-spec/parse/errors", test_parse_errors);
  g_test_add_func ("/connection-spec/parse/error-messages", test_parse_error_messages);
  g_test_add_func ("/connection-spec/parse/unresolvable", test_parse_unresolvable);
  g_test_add_func ("/connection-spec/parse/null", test_parse_null);
  g_test_add_func ("/connection-spec/format/unix", test_format_unix);
  g_test_add_func ("/connection-spec/format/inet", test_format_inet);
  g_test_add_func ("/connection-spec/format/inet6", test_format_inet6);
  g_test_add_func ("/connection-spec/format/unsupported", test_format_unsupported);
  g_test_add_func ("/connection-spec/format/null", test_format_null);

  return g_test_run ();
}
