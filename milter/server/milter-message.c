/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-message.h"

#include <string.h>

/**
 * SECTION:milter-message
 * @title: MilterMessage
 * @short_description: A message with its envelope, as an MTA holds it
 * @include: milter/milter.h
 * @see_also: #MilterServerContext, #MilterModification
 *
 * A #MilterMessage is what an MTA hands to a milter and what the milter's
 * changes apply to: the envelope sender and recipients (each with
 * optional ESMTP parameters), the headers (a #MilterHeaders) and the body
 * (a #GBytes with CRLF line endings).
 *
 * milter_message_new_from_data() parses an RFC 5322 message: header
 * fields (with folded continuation lines), a blank line, and the body.
 * Header values are stored as MTAs pass them to milters, without the one
 * space after the colon and with folded lines joined by "\n". Bare LF line
 * endings in the body become CRLF, as Sendmail does; a MIME multipart body
 * is body bytes like any other. A first line starting with `From ` (an
 * mbox separator) is skipped. milter_message_to_bytes() renders the
 * message back.
 *
 * Envelope addresses are kept exactly as given; by convention they are in
 * the form of the SMTP commands and the milter protocol, in angle brackets
 * (`<user@example.com>`, `<>` for the null sender).
 *
 * milter_message_apply_modifications() applies what a milter requested at
 * end-of-message (see milter_server_context_get_modifications()) as an
 * MTA does:
 *
 * - an added header is appended;
 * - an inserted header goes before the header at its index, counted from
 *   0 at the top; an index past the end appends;
 * - a changed header is the n-th header of its name, counted from 1
 *   (0 counts as 1); an empty value deletes it, and an index past the
 *   count of that name adds the header;
 * - deleting a recipient removes the recipients equal to the given
 *   address, which must be in the form the MTA sent (usually with angle
 *   brackets); deleting one that does not exist changes nothing;
 * - a replaced body is the concatenation of every replace-body packet of
 *   one end-of-message.
 *
 * |[<!-- language="C" -->
 * g_autoptr(GError) error = NULL;
 * g_autoptr(GBytes) data = g_bytes_new_static (text, strlen (text));
 * g_autoptr(MilterMessage) message = milter_message_new_from_data (data, &error);
 *
 * milter_message_set_from (message, "<sender@example.com>", NULL);
 * milter_message_add_recipient (message, "<rcpt@example.org>", NULL);
 * // ... run the session with a MilterServerContext, then:
 * if (!milter_message_apply_modifications (message,
 *                                          milter_server_context_get_modifications (context),
 *                                          &error))
 *   g_printerr ("%s\n", error->message);
 * ]|
 */

/**
 * milter_message_error_quark:
 *
 * The quark of %MILTER_MESSAGE_ERROR.
 *
 * Returns: the error domain quark
 *
 * Since: 1.0
 */
G_DEFINE_QUARK (milter-message-error-quark, milter_message_error)

/**
 * MilterMessage:
 *
 * A message and its envelope. All fields are private; use the accessors.
 *
 * Since: 1.0
 */
struct _MilterMessage
{
  GObject parent_instance;

  gchar *from;
  gchar **from_parameters;
  GPtrArray *recipients;            /* of gchar *, NULL-terminated */
  GPtrArray *recipient_parameters;  /* of GStrv, parallel to recipients */
  MilterHeaders *headers;
  GBytes *body;
  gchar *quarantine_reason;
};

enum {
  PROP_0,
  PROP_FROM,
  PROP_FROM_PARAMETERS,
  PROP_RECIPIENTS,
  PROP_HEADERS,
  PROP_BODY,
  PROP_QUARANTINE_REASON,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (MilterMessage, milter_message, G_TYPE_OBJECT)

static const gchar * const empty_strv[] = { NULL };

static void
milter_message_finalize (GObject *object)
{
  MilterMessage *self = MILTER_MESSAGE (object);

  g_free (self->from);
  g_strfreev (self->from_parameters);
  g_ptr_array_unref (self->recipients);
  g_ptr_array_unref (self->recipient_parameters);
  milter_headers_unref (self->headers);
  g_bytes_unref (self->body);
  g_free (self->quarantine_reason);

  G_OBJECT_CLASS (milter_message_parent_class)->finalize (object);
}

static void
milter_message_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  MilterMessage *self = MILTER_MESSAGE (object);

  switch (prop_id)
    {
    case PROP_FROM:
      g_value_set_string (value, self->from);
      break;
    case PROP_FROM_PARAMETERS:
      g_value_set_boxed (value, milter_message_get_from_parameters (self));
      break;
    case PROP_RECIPIENTS:
      g_value_set_boxed (value, self->recipients->pdata);
      break;
    case PROP_HEADERS:
      g_value_set_boxed (value, self->headers);
      break;
    case PROP_BODY:
      g_value_set_boxed (value, self->body);
      break;
    case PROP_QUARANTINE_REASON:
      g_value_set_string (value, self->quarantine_reason);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
milter_message_set_property (GObject      *object,
                             guint         prop_id,
                             const GValue *value,
                             GParamSpec   *pspec)
{
  MilterMessage *self = MILTER_MESSAGE (object);

  switch (prop_id)
    {
    case PROP_BODY:
      milter_message_set_body (self, g_value_get_boxed (value));
      break;
    case PROP_QUARANTINE_REASON:
      milter_message_set_quarantine_reason (self, g_value_get_string (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
milter_message_class_init (MilterMessageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = milter_message_finalize;
  object_class->get_property = milter_message_get_property;
  object_class->set_property = milter_message_set_property;

  /**
   * MilterMessage:from:
   *
   * The envelope sender, e.g. `<user@example.com>`, or %NULL if unset.
   * From a binding, milter_message_get_from() keeps bytes that are not
   * UTF-8; the property cannot.
   *
   * Since: 1.0
   */
  properties[PROP_FROM] =
    g_param_spec_string ("from", "From", "The envelope sender",
                         NULL,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * MilterMessage:from-parameters:
   *
   * The ESMTP parameters of the envelope sender, e.g. `BODY=8BITMIME`.
   *
   * Since: 1.0
   */
  properties[PROP_FROM_PARAMETERS] =
    g_param_spec_boxed ("from-parameters", "From parameters",
                        "The ESMTP parameters of the envelope sender",
                        G_TYPE_STRV,
                        G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * MilterMessage:recipients:
   *
   * The envelope recipients, in order.
   *
   * Since: 1.0
   */
  properties[PROP_RECIPIENTS] =
    g_param_spec_boxed ("recipients", "Recipients", "The envelope recipients",
                        G_TYPE_STRV,
                        G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * MilterMessage:headers:
   *
   * The headers, in order; the list may be changed in place.
   *
   * Since: 1.0
   */
  properties[PROP_HEADERS] =
    g_param_spec_boxed ("headers", "Headers", "The message headers",
                        MILTER_TYPE_HEADERS,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * MilterMessage:body:
   *
   * The body, with CRLF line endings.
   *
   * Since: 1.0
   */
  properties[PROP_BODY] =
    g_param_spec_boxed ("body", "Body", "The message body",
                        G_TYPE_BYTES,
                        G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * MilterMessage:quarantine-reason:
   *
   * Why the message was quarantined, or %NULL if it was not.
   *
   * Since: 1.0
   */
  properties[PROP_QUARANTINE_REASON] =
    g_param_spec_string ("quarantine-reason", "Quarantine reason",
                         "Why the message was quarantined",
                         NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
milter_message_init (MilterMessage *self)
{
  self->recipients = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (self->recipients, NULL);
  self->recipient_parameters = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  self->headers = milter_headers_new ();
  self->body = g_bytes_new (NULL, 0);
}

/**
 * milter_message_new:
 *
 * Creates an empty message: no envelope, no headers, an empty body.
 *
 * Returns: (transfer full): a new #MilterMessage
 *
 * Since: 1.0
 */
MilterMessage *
milter_message_new (void)
{
  return g_object_new (MILTER_TYPE_MESSAGE, NULL);
}

/* Printable ASCII without the colon (RFC 5322 ftext). */
static gboolean
is_valid_header_name (const gchar *name,
                      gsize        length)
{
  if (length == 0)
    return FALSE;
  for (gsize i = 0; i < length; i++)
    {
      guchar c = (guchar) name[i];

      if (c < 33 || c > 126 || c == ':')
        return FALSE;
    }
  return TRUE;
}

/* A value may contain line breaks only as folds: "\n" followed by a space
 * or a tab, and no CR. */
static gboolean
is_valid_header_value (const gchar *value)
{
  for (const gchar *p = value; *p != '\0'; p++)
    {
      if (*p == '\r')
        return FALSE;
      if (*p == '\n' && p[1] != ' ' && p[1] != '\t')
        return FALSE;
    }
  return TRUE;
}

/* Quotes at most 60 bytes of @text for an error message, as one line of
 * valid UTF-8. */
static gchar *
quote_for_error (const gchar *text,
                 gsize        length)
{
  g_autofree gchar *valid = g_utf8_make_valid (text, (gssize) MIN (length, 60));
  GString *quoted = g_string_new ("“");

  for (const gchar *p = valid; *p != '\0'; p++)
    {
      guchar c = (guchar) *p;

      if (c == '\n')
        g_string_append (quoted, "\\n");
      else if (c == '\r')
        g_string_append (quoted, "\\r");
      else if (c < 0x20 || c == 0x7f)
        g_string_append_printf (quoted, "\\x%02x", c);
      else
        g_string_append_c (quoted, (gchar) c);
    }
  g_string_append (quoted, length > 60 ? "…”" : "”");
  return g_string_free (quoted, FALSE);
}

static gboolean
check_header (const gchar  *name,
              const gchar  *value,
              GError      **error)
{
  if (!is_valid_header_name (name, strlen (name)))
    {
      g_autofree gchar *quoted = quote_for_error (name, strlen (name));

      g_set_error (error, MILTER_MESSAGE_ERROR, MILTER_MESSAGE_ERROR_INVALID_HEADER,
                   "Invalid header name %s: a name is printable ASCII without spaces or colons",
                   quoted);
      return FALSE;
    }
  if (!is_valid_header_value (value))
    {
      g_autofree gchar *quoted = quote_for_error (value, strlen (value));

      g_set_error (error, MILTER_MESSAGE_ERROR, MILTER_MESSAGE_ERROR_INVALID_HEADER,
                   "Invalid value %s for header %s: a line break must be a LF followed "
                   "by a space or tab (a fold), without CR", quoted, name);
      return FALSE;
    }
  return TRUE;
}

/* Converts bare LF line endings to CRLF; returns a slice of @data when
 * there are none. */
static GBytes *
body_to_crlf (GBytes *data,
              gsize   offset)
{
  gsize size;
  const guint8 *bytes = g_bytes_get_data (data, &size);
  gsize n_bare = 0;
  GByteArray *array;

  for (gsize i = offset; i < size; i++)
    if (bytes[i] == '\n' && (i == offset || bytes[i - 1] != '\r'))
      n_bare++;
  if (n_bare == 0)
    return g_bytes_new_from_bytes (data, offset, size - offset);

  array = g_byte_array_sized_new ((guint) (size - offset + n_bare));
  for (gsize i = offset, start = offset; i <= size; i++)
    {
      if (i == size)
        {
          g_byte_array_append (array, bytes + start, (guint) (i - start));
          break;
        }
      if (bytes[i] == '\n' && (i == offset || bytes[i - 1] != '\r'))
        {
          g_byte_array_append (array, bytes + start, (guint) (i - start));
          g_byte_array_append (array, (const guint8 *) "\r\n", 2);
          start = i + 1;
        }
    }
  return g_byte_array_free_to_bytes (array);
}

static void
flush_header (MilterHeaders  *headers,
              GString       **name,
              GString       **value)
{
  if (*name == NULL)
    return;
  milter_headers_add (headers, (*name)->str, (*value)->str);
  g_string_free (*name, TRUE);
  g_string_free (*value, TRUE);
  *name = *value = NULL;
}

/**
 * milter_message_new_from_data:
 * @data: an RFC 5322 message
 * @error: return location for a #GError
 *
 * Parses a message: header fields, possibly folded, then a blank line and
 * the body. Lines may end in CRLF or LF. Header values lose the one space
 * after the colon (a tab stays) and keep folds as "\n" followed by the
 * continuation line's leading whitespace. Bare LF line endings in the body
 * become CRLF. Without a blank line the whole input is headers and the
 * body is empty. A first line starting with `From ` (an mbox separator)
 * is skipped.
 *
 * A line in the header section that is neither a header field nor a
 * continuation line is an error (an MTA would start the body there, but in
 * a test message it is more likely a mistake), and so is a NUL byte in
 * the header section, which no milter packet could carry.
 *
 * The envelope is left empty.
 *
 * Returns: (transfer full) (nullable): a new #MilterMessage, or %NULL
 *   with @error set
 *
 * Since: 1.0
 */
MilterMessage *
milter_message_new_from_data (GBytes  *data,
                              GError **error)
{
  g_autoptr(MilterMessage) message = NULL;
  GString *name = NULL, *value = NULL;
  const guint8 *start, *p, *end;
  gsize size;
  guint line_no = 0;
  gboolean has_body = FALSE;

  g_return_val_if_fail (data != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  message = milter_message_new ();
  start = p = g_bytes_get_data (data, &size);
  end = p + size;

  if (size >= 5 && memcmp (p, "From ", 5) == 0)
    {
      const guint8 *nl = memchr (p, '\n', size);

      p = nl != NULL ? nl + 1 : end;
      line_no++;
    }

  while (p < end)
    {
      const guint8 *nl = memchr (p, '\n', (gsize) (end - p));
      const guint8 *next = nl != NULL ? nl + 1 : end;
      gsize length = (gsize) ((nl != NULL ? nl : end) - p);
      const gchar *line = (const gchar *) p;

      line_no++;
      if (length > 0 && line[length - 1] == '\r')
        length--;
      if (length == 0)
        {
          has_body = TRUE;
          p = next;
          break;
        }
      if (memchr (line, '\0', length) != NULL)
        {
          g_set_error (error, MILTER_MESSAGE_ERROR, MILTER_MESSAGE_ERROR_INVALID_HEADER,
                       "Line %u of the header section contains a NUL byte", line_no);
          goto fail;
        }

      if (line[0] == ' ' || line[0] == '\t')
        {
          if (name == NULL)
            {
              g_set_error (error, MILTER_MESSAGE_ERROR, MILTER_MESSAGE_ERROR_INVALID_HEADER,
                           "Line %u is a continuation line before the first header",
                           line_no);
              goto fail;
            }
          g_string_append_c (value, '\n');
          g_string_append_len (value, line, (gssize) length);
        }
      else
        {
          const gchar *colon = memchr (line, ':', length);
          gsize name_length;
          const gchar *value_start;

          flush_header (message->headers, &name, &value);
          if (colon == NULL)
            {
              g_autofree gchar *quoted = quote_for_error (line, length);

              g_set_error (error, MILTER_MESSAGE_ERROR, MILTER_MESSAGE_ERROR_INVALID_HEADER,
                           "Line %u %s is not a header field (no colon) and no blank line "
                           "comes before it", line_no, quoted);
              goto fail;
            }
          /* Obsolete syntax allows white space before the colon. */
          name_length = (gsize) (colon - line);
          while (name_length > 0 && (line[name_length - 1] == ' ' || line[name_length - 1] == '\t'))
            name_length--;
          if (!is_valid_header_name (line, name_length))
            {
              g_autofree gchar *quoted = quote_for_error (line, (gsize) (colon - line));

              g_set_error (error, MILTER_MESSAGE_ERROR, MILTER_MESSAGE_ERROR_INVALID_HEADER,
                           "Line %u: invalid header name %s", line_no, quoted);
              goto fail;
            }
          value_start = colon + 1;
          if (value_start < line + length && *value_start == ' ')
            value_start++;
          name = g_string_new_len (line, (gssize) name_length);
          value = g_string_new_len (value_start, (gssize) (line + length - value_start));
        }
      p = next;
    }
  flush_header (message->headers, &name, &value);

  if (has_body)
    {
      g_bytes_unref (message->body);
      message->body = body_to_crlf (data, (gsize) (p - start));
    }
  return g_steal_pointer (&message);

fail:
  if (name != NULL)
    {
      g_string_free (name, TRUE);
      g_string_free (value, TRUE);
    }
  return NULL;
}

/**
 * milter_message_to_bytes:
 * @message: a #MilterMessage
 *
 * Renders the message: each header as `Name: value` with CRLF line
 * endings (folds become CRLF followed by their white space), a blank
 * line, then the body. The envelope is not included.
 *
 * Returns: (transfer full): the message text
 *
 * Since: 1.0
 */
GBytes *
milter_message_to_bytes (MilterMessage *message)
{
  g_autofree gchar *headers = NULL;
  GByteArray *array;
  gsize body_size;
  gconstpointer body;

  g_return_val_if_fail (MILTER_IS_MESSAGE (message), NULL);

  headers = milter_headers_to_string (message->headers);
  body = g_bytes_get_data (message->body, &body_size);
  array = g_byte_array_sized_new ((guint) (strlen (headers) + 2 + body_size));
  g_byte_array_append (array, (const guint8 *) headers, (guint) strlen (headers));
  g_byte_array_append (array, (const guint8 *) "\r\n", 2);
  if (body_size > 0)
    g_byte_array_append (array, body, (guint) body_size);
  return g_byte_array_free_to_bytes (array);
}

/**
 * milter_message_get_from:
 * @message: a #MilterMessage
 *
 * Gets the envelope sender.
 *
 * Returns: (type filename) (nullable): the envelope sender, or %NULL if unset
 *
 * Since: 1.0
 */
const gchar *
milter_message_get_from (MilterMessage *message)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE (message), NULL);

  return message->from;
}

/**
 * milter_message_get_from_parameters:
 * @message: a #MilterMessage
 *
 * Gets the ESMTP parameters of the envelope sender.
 *
 * Returns: (transfer none) (array zero-terminated=1) (element-type filename): the parameters,
 *   possibly none
 *
 * Since: 1.0
 */
const gchar * const *
milter_message_get_from_parameters (MilterMessage *message)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE (message), NULL);

  return message->from_parameters != NULL ?
         (const gchar * const *) message->from_parameters : empty_strv;
}

/**
 * milter_message_set_from:
 * @message: a #MilterMessage
 * @from: (nullable) (type filename): the envelope sender, e.g. `<user@example.com>`
 * @parameters: (nullable) (array zero-terminated=1) (element-type filename): ESMTP parameters,
 *   one per string
 *
 * Sets the envelope sender and its parameters.
 *
 * Since: 1.0
 */
void
milter_message_set_from (MilterMessage       *message,
                         const gchar         *from,
                         const gchar * const *parameters)
{
  g_return_if_fail (MILTER_IS_MESSAGE (message));

  g_free (message->from);
  message->from = g_strdup (from);
  g_strfreev (message->from_parameters);
  message->from_parameters = g_strdupv ((gchar **) parameters);
  g_object_notify_by_pspec (G_OBJECT (message), properties[PROP_FROM]);
  g_object_notify_by_pspec (G_OBJECT (message), properties[PROP_FROM_PARAMETERS]);
}

/**
 * milter_message_get_recipients:
 * @message: a #MilterMessage
 *
 * Gets the envelope recipients.
 *
 * Returns: (transfer none) (array zero-terminated=1) (element-type filename): the recipients, in
 *   order; valid until the recipients change
 *
 * Since: 1.0
 */
const gchar * const *
milter_message_get_recipients (MilterMessage *message)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE (message), NULL);

  return (const gchar * const *) message->recipients->pdata;
}

/**
 * milter_message_get_n_recipients:
 * @message: a #MilterMessage
 *
 * Counts the envelope recipients.
 *
 * Returns: the number of recipients
 *
 * Since: 1.0
 */
guint
milter_message_get_n_recipients (MilterMessage *message)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE (message), 0);

  return message->recipient_parameters->len;
}

/**
 * milter_message_get_recipient_parameters:
 * @message: a #MilterMessage
 * @index: the position of a recipient, from 0
 *
 * Gets the ESMTP parameters of the recipient at @index.
 *
 * Returns: (transfer none) (array zero-terminated=1) (element-type filename) (nullable): the
 *   parameters, possibly none, or %NULL if @index is out of range
 *
 * Since: 1.0
 */
const gchar * const *
milter_message_get_recipient_parameters (MilterMessage *message,
                                         guint          index)
{
  gchar **parameters;

  g_return_val_if_fail (MILTER_IS_MESSAGE (message), NULL);

  if (index >= message->recipient_parameters->len)
    return NULL;
  parameters = g_ptr_array_index (message->recipient_parameters, index);
  return parameters != NULL ? (const gchar * const *) parameters : empty_strv;
}

/**
 * milter_message_add_recipient:
 * @message: a #MilterMessage
 * @recipient: (type filename): the recipient, e.g. `<user@example.com>`
 * @parameters: (nullable) (array zero-terminated=1) (element-type filename): ESMTP parameters,
 *   one per string
 *
 * Appends an envelope recipient.
 *
 * Since: 1.0
 */
void
milter_message_add_recipient (MilterMessage       *message,
                              const gchar         *recipient,
                              const gchar * const *parameters)
{
  g_return_if_fail (MILTER_IS_MESSAGE (message));
  g_return_if_fail (recipient != NULL);

  g_ptr_array_insert (message->recipients, (gint) message->recipients->len - 1,
                      g_strdup (recipient));
  g_ptr_array_add (message->recipient_parameters, g_strdupv ((gchar **) parameters));
  g_object_notify_by_pspec (G_OBJECT (message), properties[PROP_RECIPIENTS]);
}

/**
 * milter_message_remove_recipient:
 * @message: a #MilterMessage
 * @recipient: (type filename): the recipient, exactly as it was added
 *
 * Removes every envelope recipient equal to @recipient.
 *
 * Returns: %TRUE if a recipient was removed
 *
 * Since: 1.0
 */
gboolean
milter_message_remove_recipient (MilterMessage *message,
                                 const gchar   *recipient)
{
  gboolean removed = FALSE;

  g_return_val_if_fail (MILTER_IS_MESSAGE (message), FALSE);
  g_return_val_if_fail (recipient != NULL, FALSE);

  for (guint i = message->recipient_parameters->len; i-- > 0;)
    {
      if (strcmp (g_ptr_array_index (message->recipients, i), recipient) != 0)
        continue;
      g_ptr_array_remove_index (message->recipients, i);
      g_ptr_array_remove_index (message->recipient_parameters, i);
      removed = TRUE;
    }
  if (removed)
    g_object_notify_by_pspec (G_OBJECT (message), properties[PROP_RECIPIENTS]);
  return removed;
}

/**
 * milter_message_get_headers:
 * @message: a #MilterMessage
 *
 * Gets the headers. The list belongs to @message and may be changed in
 * place.
 *
 * Returns: (transfer none): the headers
 *
 * Since: 1.0
 */
MilterHeaders *
milter_message_get_headers (MilterMessage *message)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE (message), NULL);

  return message->headers;
}

/**
 * milter_message_get_body:
 * @message: a #MilterMessage
 *
 * Gets the body.
 *
 * Returns: (transfer none): the body, with CRLF line endings
 *
 * Since: 1.0
 */
GBytes *
milter_message_get_body (MilterMessage *message)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE (message), NULL);

  return message->body;
}

/**
 * milter_message_set_body:
 * @message: a #MilterMessage
 * @body: (nullable): the new body; %NULL empties it
 *
 * Replaces the body. It is used as given: line endings are not
 * converted.
 *
 * Since: 1.0
 */
void
milter_message_set_body (MilterMessage *message,
                         GBytes        *body)
{
  g_return_if_fail (MILTER_IS_MESSAGE (message));

  g_bytes_unref (message->body);
  message->body = body != NULL ? g_bytes_ref (body) : g_bytes_new (NULL, 0);
  g_object_notify_by_pspec (G_OBJECT (message), properties[PROP_BODY]);
}

/**
 * milter_message_get_quarantine_reason:
 * @message: a #MilterMessage
 *
 * Gets why the message was quarantined.
 *
 * Returns: (type filename) (nullable): the reason, or %NULL if the message is not
 *   quarantined
 *
 * Since: 1.0
 */
const gchar *
milter_message_get_quarantine_reason (MilterMessage *message)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE (message), NULL);

  return message->quarantine_reason;
}

/**
 * milter_message_set_quarantine_reason:
 * @message: a #MilterMessage
 * @reason: (nullable): the reason, or %NULL to release the message
 *
 * Sets why the message is quarantined.
 *
 * Since: 1.0
 */
void
milter_message_set_quarantine_reason (MilterMessage *message,
                                      const gchar   *reason)
{
  g_return_if_fail (MILTER_IS_MESSAGE (message));

  if (g_strcmp0 (message->quarantine_reason, reason) == 0)
    return;
  g_free (message->quarantine_reason);
  message->quarantine_reason = g_strdup (reason);
  g_object_notify_by_pspec (G_OBJECT (message), properties[PROP_QUARANTINE_REASON]);
}

/* "A=1  B=2" → { "A=1", "B=2" }, or NULL for no parameters. */
static gchar **
split_parameters (const gchar *parameters)
{
  g_auto(GStrv) words = NULL;
  GPtrArray *kept;

  if (parameters == NULL)
    return NULL;
  words = g_strsplit_set (parameters, " \t", -1);
  kept = g_ptr_array_new ();
  for (guint i = 0; words[i] != NULL; i++)
    if (*words[i] != '\0')
      g_ptr_array_add (kept, g_strdup (words[i]));
  if (kept->len == 0)
    {
      g_ptr_array_free (kept, TRUE);
      return NULL;
    }
  g_ptr_array_add (kept, NULL);
  return (gchar **) g_ptr_array_free (kept, FALSE);
}

static gboolean
check_address (const gchar  *address,
               const gchar  *what,
               GError      **error)
{
  if (*address != '\0')
    return TRUE;
  g_set_error (error, MILTER_MESSAGE_ERROR, MILTER_MESSAGE_ERROR_INVALID_ADDRESS,
               "Empty %s address (the null sender is “<>”)", what);
  return FALSE;
}

/**
 * milter_message_apply_modification:
 * @message: a #MilterMessage
 * @modification: a change requested by a milter
 * @error: return location for a #GError
 *
 * Applies one change as an MTA does (see the overview). A header name that
 * is not printable ASCII without a colon, a header value with line breaks
 * that are not folds, and an empty address are refused, because the
 * resulting message would be malformed.
 *
 * Returns: %TRUE on success, %FALSE with @error set if the change is
 *   invalid; @message is then unchanged
 *
 * Since: 1.0
 */
gboolean
milter_message_apply_modification (MilterMessage       *message,
                                   MilterModification  *modification,
                                   GError             **error)
{
  const gchar *name, *value, *address;
  guint index;

  g_return_val_if_fail (MILTER_IS_MESSAGE (message), FALSE);
  g_return_val_if_fail (modification != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  name = milter_modification_get_name (modification);
  value = milter_modification_get_value (modification);
  address = milter_modification_get_address (modification);
  index = milter_modification_get_index (modification);

  switch (milter_modification_get_modification_type (modification))
    {
    case MILTER_MODIFICATION_TYPE_ADD_HEADER:
      if (!check_header (name, value, error))
        return FALSE;
      milter_headers_add (message->headers, name, value);
      return TRUE;
    case MILTER_MODIFICATION_TYPE_INSERT_HEADER:
      if (!check_header (name, value, error))
        return FALSE;
      milter_headers_insert (message->headers, index, name, value);
      return TRUE;
    case MILTER_MODIFICATION_TYPE_CHANGE_HEADER:
    case MILTER_MODIFICATION_TYPE_DELETE_HEADER:
      if (!check_header (name, value, error))
        return FALSE;
      milter_headers_change (message->headers, name, index, value);
      return TRUE;
    case MILTER_MODIFICATION_TYPE_CHANGE_FROM:
      {
        g_auto(GStrv) parameters = NULL;

        if (!check_address (address, "sender", error))
          return FALSE;
        parameters = split_parameters (milter_modification_get_parameters (modification));
        milter_message_set_from (message, address, (const gchar * const *) parameters);
        return TRUE;
      }
    case MILTER_MODIFICATION_TYPE_ADD_RECIPIENT:
      {
        g_auto(GStrv) parameters = NULL;

        if (!check_address (address, "recipient", error))
          return FALSE;
        parameters = split_parameters (milter_modification_get_parameters (modification));
        milter_message_add_recipient (message, address, (const gchar * const *) parameters);
        return TRUE;
      }
    case MILTER_MODIFICATION_TYPE_DELETE_RECIPIENT:
      milter_message_remove_recipient (message, address);
      return TRUE;
    case MILTER_MODIFICATION_TYPE_REPLACE_BODY:
      milter_message_set_body (message, milter_modification_get_body (modification));
      return TRUE;
    case MILTER_MODIFICATION_TYPE_QUARANTINE:
      milter_message_set_quarantine_reason (message, milter_modification_get_reason (modification));
      return TRUE;
    default:
      g_assert_not_reached ();
    }
}

/**
 * milter_message_apply_modifications:
 * @message: a #MilterMessage
 * @modifications: (element-type MilterModification): the changes, in the
 *   order the milter sent them
 * @error: return location for a #GError
 *
 * Applies each change in order with milter_message_apply_modification().
 *
 * Returns: %TRUE on success; %FALSE with @error set at the first invalid
 *   change, with the changes before it applied
 *
 * Since: 1.0
 */
gboolean
milter_message_apply_modifications (MilterMessage  *message,
                                    GPtrArray      *modifications,
                                    GError        **error)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE (message), FALSE);
  g_return_val_if_fail (modifications != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  for (guint i = 0; i < modifications->len; i++)
    if (!milter_message_apply_modification (message, g_ptr_array_index (modifications, i), error))
      return FALSE;
  return TRUE;
}
