/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

/* Setters for the fields behind explicit-notify properties: each stores
 * the value and emits ::notify only when it changed. */

static inline void
milter_property_set_uint (GObject    *object,
                          guint      *field,
                          guint       value,
                          GParamSpec *pspec)
{
  if (*field == value)
    return;
  *field = value;
  g_object_notify_by_pspec (object, pspec);
}

static inline void
milter_property_set_string (GObject     *object,
                            gchar      **field,
                            const gchar *value,
                            GParamSpec  *pspec)
{
  if (g_strcmp0 (*field, value) == 0)
    return;
  g_free (*field);
  *field = g_strdup (value);
  g_object_notify_by_pspec (object, pspec);
}

G_END_DECLS
