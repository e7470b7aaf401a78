/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guide-check: filter --header "Subject: Buy now" => headers == [("X-Subject-Flag", "advertising")] and result["negotiated"]["step"] & 0x10 and not result["negotiated"]["step"] & 0x20 */
/* guide-check: filter --header "Subject: Minutes" => headers == [] and result["status"] == "pass" */
/* performance-subclass: the Subject filter of this chapter as a
 * MilterClientContext subclass. Its class methods handle the events, so
 * nothing is connected per connection, and the per-connection state is
 * the instance itself. */
#include <milter/milter.h>

#define TAG_TYPE_CONTEXT (tag_context_get_type ())
G_DECLARE_FINAL_TYPE (TagContext, tag_context, TAG, CONTEXT, MilterClientContext)

struct _TagContext
{
  MilterClientContext parent_instance;
  gboolean advertising;  /* of the current message */
};

G_DEFINE_FINAL_TYPE (TagContext, tag_context, MILTER_TYPE_CLIENT_CONTEXT)

static MilterStatus
tag_context_header (MilterClientContext *context,
                    const gchar         *name,
                    const gchar         *value)
{
  TagContext *self = TAG_CONTEXT (context);

  if (g_ascii_strcasecmp (name, "Subject") == 0)
    self->advertising = g_str_has_prefix (value, "Buy ") || strstr (value, "% off") != NULL;
  return MILTER_STATUS_CONTINUE;
}

static MilterStatus
tag_context_end_of_message_bytes (MilterClientContext *context,
                                  GBytes              *chunk)
{
  TagContext *self = TAG_CONTEXT (context);

  if (self->advertising)
    milter_client_context_add_header (context, "X-Subject-Flag", "advertising", NULL);
  self->advertising = FALSE;
  return MILTER_STATUS_CONTINUE;
}

/* An aborted message must not tag the next one. */
static MilterStatus
tag_context_abort (MilterClientContext     *context,
                   MilterClientContextState last_state)
{
  TAG_CONTEXT (context)->advertising = FALSE;
  return MILTER_STATUS_CONTINUE;
}

static void
tag_context_class_init (TagContextClass *klass)
{
  MilterClientContextClass *context_class = MILTER_CLIENT_CONTEXT_CLASS (klass);

  /* Only these events are negotiated, as with two connected handlers. */
  context_class->header = tag_context_header;
  context_class->end_of_message_bytes = tag_context_end_of_message_bytes;
  context_class->abort = tag_context_abort;
}

static void
tag_context_init (TagContext *self)
{
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(MilterClient) client = milter_client_new ();
  g_auto(GStrv) args = g_strdupv (argv);
  g_autoptr(GError) error = NULL;

  g_object_set (client, "use-bytes", TRUE, "context-type", TAG_TYPE_CONTEXT, NULL);
  if (milter_client_parse_command_line (client, &args, &error) && args[1] != NULL)
    g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION,
                 "Unknown argument %s", args[1]);
  if (error != NULL || !milter_client_run (client, &error))
    {
      g_printerr ("performance-subclass: %s\n", error->message);
      return 1;
    }
  return 0;
}
