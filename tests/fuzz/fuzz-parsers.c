/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <milter/milter.h>
#include <string.h>

/* The text parsers: connection specs (with a resolver that answers at
 * once, so host names cost no lookups) and SMTP reply codes. The first
 * byte picks the parser. */

int LLVMFuzzerTestOneInput (const guint8 *data,
                            size_t        size);

/* ---- a resolver that knows nothing ------------------------------------- */

typedef GResolver FakeResolver;
typedef GResolverClass FakeResolverClass;

static GType fake_resolver_get_type (void);
G_DEFINE_TYPE (FakeResolver, fake_resolver, G_TYPE_RESOLVER)

static GList *
fake_lookup_by_name (GResolver     *resolver,
                     const gchar   *hostname,
                     GCancellable  *cancellable,
                     GError       **error)
{
  if (g_str_equal (hostname, "localhost"))
    return g_list_append (NULL, g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4));
  g_set_error (error, G_RESOLVER_ERROR, G_RESOLVER_ERROR_NOT_FOUND, "unknown host “%s”", hostname);
  return NULL;
}

static void
fake_resolver_class_init (FakeResolverClass *klass)
{
  klass->lookup_by_name = fake_lookup_by_name;
}

static void
fake_resolver_init (FakeResolver *resolver)
{
}

/* ---- targets ------------------------------------------------------------ */

static void
fuzz_spec (const gchar *text)
{
  g_autoptr(GSocketAddress) address = milter_connection_spec_parse (text, NULL);
  g_autofree gchar *formatted = NULL;

  if (address == NULL)
    return;
  formatted = milter_connection_spec_format (address, NULL);
  if (formatted != NULL)
    {
      /* What format gives, parse takes back. */
      g_autoptr(GSocketAddress) again = milter_connection_spec_parse (formatted, NULL);
      g_assert_nonnull (again);
    }
}

static void
fuzz_reply (const gchar *text,
            gsize        length)
{
  g_auto(GStrv) lines = NULL;
  g_autofree gchar *single = NULL;
  g_autofree gchar *multi = NULL;
  guint code;

  milter_reply_code_validate (text, NULL);
  milter_reply_code_get_code (text);
  /* The formatter's output always validates. */
  code = length > 0 ? 400 + (guint) (guchar) text[0] % 200 : 550;
  single = milter_reply_code_format (code, length > 1 && text[1] & 1 ? "4.7.1" : NULL,
                                     text, NULL);
  if (single != NULL)
    g_assert_true (milter_reply_code_validate (single, NULL));
  lines = g_strsplit (text, "|", 40);
  multi = milter_reply_code_format_lines (code, NULL, (const gchar * const *) lines, NULL);
  if (multi != NULL)
    g_assert_true (milter_reply_code_validate (multi, NULL));
}

int
LLVMFuzzerTestOneInput (const guint8 *data,
                        size_t        size)
{
  static gboolean initialized;
  g_autofree gchar *text = NULL;

  if (!initialized)
    {
      g_autoptr(GResolver) resolver = g_object_new (fake_resolver_get_type (), NULL);

      g_resolver_set_default (resolver);
      initialized = TRUE;
    }
  if (size < 1)
    return 0;
  text = g_strndup ((const gchar *) data + 1, size - 1);  /* stops at a NUL */
  if (data[0] & 1)
    fuzz_spec (text);
  else
    fuzz_reply (text, strlen (text));
  return 0;
}
