/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-message-result.h"
#include "milter-message-result-private.h"
#include "milter/milter-enum-types.h"

/**
 * SECTION:milter-message-result
 * @title: MilterMessageResult
 * @short_description: What happened to one message
 * @include: milter/milter.h
 *
 * A #MilterClientContext fills one #MilterMessageResult per message (from
 * MAIL FROM to the end-of-message reply or the abort) and hands it to
 * #MilterClientContext::message-processed: the envelope, the headers the
 * milter saw, the body size, the final status and the times.
 *
 * Fields the MTA never sent (because the milter negotiated their events
 * away) stay empty.
 *
 * |[<!-- language="C" -->
 * static void
 * on_message_processed (MilterClientContext *context,
 *                       MilterMessageResult *result,
 *                       gpointer             user_data)
 * {
 *   g_message ("%s from %s: %s, %" G_GUINT64_FORMAT " body bytes, %.3f s",
 *              milter_client_context_get_macro (context, "i"),
 *              milter_message_result_get_from (result),
 *              g_enum_to_string (MILTER_TYPE_STATUS, milter_message_result_get_status (result)),
 *              milter_message_result_get_body_size (result),
 *              milter_message_result_get_elapsed_time (result));
 * }
 * ]|
 */

/**
 * MilterMessageResult:
 *
 * The record of one message. All fields are private; use the accessors.
 *
 * Since: 1.0
 */
struct _MilterMessageResult
{
  GObject parent_instance;

  gchar *from;
  GPtrArray *recipients;           /* NULL-terminated */
  GPtrArray *rejected_recipients;  /* NULL-terminated */
  MilterHeaders *headers;
  guint64 body_size;
  MilterStatus status;
  gint64 start_time;
  gint64 end_time;
};

enum {
  PROP_0,
  PROP_FROM,
  PROP_RECIPIENTS,
  PROP_REJECTED_RECIPIENTS,
  PROP_HEADERS,
  PROP_BODY_SIZE,
  PROP_STATUS,
  PROP_START_TIME,
  PROP_END_TIME,
  PROP_ELAPSED_TIME,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (MilterMessageResult, milter_message_result, G_TYPE_OBJECT)

static GPtrArray *
new_strv_array (void)
{
  GPtrArray *array = g_ptr_array_new_with_free_func (g_free);

  g_ptr_array_add (array, NULL);
  return array;
}

static void
strv_array_append (GPtrArray   *array,
                   const gchar *string)
{
  g_ptr_array_insert (array, (gint) array->len - 1, g_strdup (string));
}

static void
milter_message_result_finalize (GObject *object)
{
  MilterMessageResult *self = MILTER_MESSAGE_RESULT (object);

  g_free (self->from);
  g_ptr_array_unref (self->recipients);
  g_ptr_array_unref (self->rejected_recipients);
  milter_headers_unref (self->headers);

  G_OBJECT_CLASS (milter_message_result_parent_class)->finalize (object);
}

static void
milter_message_result_get_property (GObject    *object,
                                    guint       prop_id,
                                    GValue     *value,
                                    GParamSpec *pspec)
{
  MilterMessageResult *self = MILTER_MESSAGE_RESULT (object);

  switch (prop_id)
    {
    case PROP_FROM:
      g_value_set_string (value, self->from);
      break;
    case PROP_RECIPIENTS:
      g_value_set_boxed (value, self->recipients->pdata);
      break;
    case PROP_REJECTED_RECIPIENTS:
      g_value_set_boxed (value, self->rejected_recipients->pdata);
      break;
    case PROP_HEADERS:
      g_value_set_boxed (value, self->headers);
      break;
    case PROP_BODY_SIZE:
      g_value_set_uint64 (value, self->body_size);
      break;
    case PROP_STATUS:
      g_value_set_enum (value, self->status);
      break;
    case PROP_START_TIME:
      g_value_set_int64 (value, self->start_time);
      break;
    case PROP_END_TIME:
      g_value_set_int64 (value, self->end_time);
      break;
    case PROP_ELAPSED_TIME:
      g_value_set_double (value, milter_message_result_get_elapsed_time (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
milter_message_result_set_property (GObject      *object,
                                    guint         prop_id,
                                    const GValue *value,
                                    GParamSpec   *pspec)
{
  MilterMessageResult *self = MILTER_MESSAGE_RESULT (object);

  switch (prop_id)
    {
    case PROP_FROM:
      milter_message_result_set_from (self, g_value_get_string (value));
      break;
    case PROP_BODY_SIZE:
      milter_message_result_set_body_size (self, g_value_get_uint64 (value));
      break;
    case PROP_STATUS:
      milter_message_result_set_status (self, g_value_get_enum (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
milter_message_result_class_init (MilterMessageResultClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY;
  GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  object_class->finalize = milter_message_result_finalize;
  object_class->get_property = milter_message_result_get_property;
  object_class->set_property = milter_message_result_set_property;

  /**
   * MilterMessageResult:from:
   *
   * The envelope sender as MAIL FROM gave it (with angle brackets).
   * Bindings read string properties as UTF-8: in Python, one that is not
   * raises; milter_message_result_get_from() never fails.
   *
   * Since: 1.0
   */
  properties[PROP_FROM] =
    g_param_spec_string ("from", "From", "The envelope sender", NULL, rw);

  /**
   * MilterMessageResult:recipients:
   *
   * The envelope recipients the milter did not reject. From a binding,
   * read them with milter_message_result_get_recipients(), which keeps
   * bytes that are not UTF-8 (the property cannot).
   *
   * Since: 1.0
   */
  properties[PROP_RECIPIENTS] =
    g_param_spec_boxed ("recipients", "Recipients", "The accepted envelope recipients", G_TYPE_STRV, ro);

  /**
   * MilterMessageResult:rejected-recipients:
   *
   * The envelope recipients the milter rejected or temporarily failed.
   * From a binding, read them with
   * milter_message_result_get_rejected_recipients().
   *
   * Since: 1.0
   */
  properties[PROP_REJECTED_RECIPIENTS] =
    g_param_spec_boxed ("rejected-recipients", "Rejected recipients", "The rejected envelope recipients", G_TYPE_STRV, ro);

  /**
   * MilterMessageResult:headers:
   *
   * The headers the MTA sent.
   *
   * Since: 1.0
   */
  properties[PROP_HEADERS] =
    g_param_spec_boxed ("headers", "Headers", "The headers the MTA sent", MILTER_TYPE_HEADERS, ro);

  /**
   * MilterMessageResult:body-size:
   *
   * The number of body bytes the MTA sent.
   *
   * Since: 1.0
   */
  properties[PROP_BODY_SIZE] =
    g_param_spec_uint64 ("body-size", "Body size", "The body size in bytes", 0, G_MAXUINT64, 0, rw);

  /**
   * MilterMessageResult:status:
   *
   * The final status of the message: the verdict that ended it, or
   * %MILTER_STATUS_ABORT.
   *
   * Since: 1.0
   */
  properties[PROP_STATUS] =
    g_param_spec_enum ("status", "Status", "The final status", MILTER_TYPE_STATUS, MILTER_STATUS_DEFAULT, rw);

  /**
   * MilterMessageResult:start-time:
   *
   * When the message started, in microseconds since the epoch
   * (g_get_real_time()), or 0.
   *
   * Since: 1.0
   */
  properties[PROP_START_TIME] =
    g_param_spec_int64 ("start-time", "Start time", "When the message started", 0, G_MAXINT64, 0, ro);

  /**
   * MilterMessageResult:end-time:
   *
   * When the message ended, in microseconds since the epoch, or 0.
   *
   * Since: 1.0
   */
  properties[PROP_END_TIME] =
    g_param_spec_int64 ("end-time", "End time", "When the message ended", 0, G_MAXINT64, 0, ro);

  /**
   * MilterMessageResult:elapsed-time:
   *
   * The seconds from start to end (to now while the message is open).
   *
   * Since: 1.0
   */
  properties[PROP_ELAPSED_TIME] =
    g_param_spec_double ("elapsed-time", "Elapsed time", "Seconds from start to end", 0, G_MAXDOUBLE, 0, ro);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
milter_message_result_init (MilterMessageResult *self)
{
  self->recipients = new_strv_array ();
  self->rejected_recipients = new_strv_array ();
  self->headers = milter_headers_new ();
}

void
milter_message_result_reset (MilterMessageResult *result)
{
  g_return_if_fail (MILTER_IS_MESSAGE_RESULT (result));

  g_clear_pointer (&result->from, g_free);
  g_ptr_array_set_size (result->recipients, 0);
  g_ptr_array_add (result->recipients, NULL);
  g_ptr_array_set_size (result->rejected_recipients, 0);
  g_ptr_array_add (result->rejected_recipients, NULL);
  milter_headers_clear (result->headers);
  result->body_size = 0;
  result->status = MILTER_STATUS_DEFAULT;
  result->start_time = 0;
  result->end_time = 0;
}

/**
 * milter_message_result_new:
 *
 * Creates an empty result.
 *
 * Returns: (transfer full): a new #MilterMessageResult
 *
 * Since: 1.0
 */
MilterMessageResult *
milter_message_result_new (void)
{
  return g_object_new (MILTER_TYPE_MESSAGE_RESULT, NULL);
}

/**
 * milter_message_result_get_from:
 * @result: a #MilterMessageResult
 *
 * Gets the envelope sender.
 *
 * Returns: (type filename) (nullable): the envelope sender
 *
 * Since: 1.0
 */
const gchar *
milter_message_result_get_from (MilterMessageResult *result)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE_RESULT (result), NULL);

  return result->from;
}

/**
 * milter_message_result_set_from:
 * @result: a #MilterMessageResult
 * @from: (type filename) (nullable): the envelope sender
 *
 * Sets the envelope sender.
 *
 * Since: 1.0
 */
void
milter_message_result_set_from (MilterMessageResult *result,
                                const gchar         *from)
{
  g_return_if_fail (MILTER_IS_MESSAGE_RESULT (result));

  if (g_strcmp0 (result->from, from) == 0)
    return;
  g_free (result->from);
  result->from = g_strdup (from);
  g_object_notify_by_pspec (G_OBJECT (result), properties[PROP_FROM]);
}

/**
 * milter_message_result_get_recipients:
 * @result: a #MilterMessageResult
 *
 * Gets the accepted recipients.
 *
 * Returns: (transfer none) (array zero-terminated=1) (element-type filename): the accepted recipients
 *
 * Since: 1.0
 */
const gchar * const *
milter_message_result_get_recipients (MilterMessageResult *result)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE_RESULT (result), NULL);

  return (const gchar * const *) result->recipients->pdata;
}

/**
 * milter_message_result_add_recipient:
 * @result: a #MilterMessageResult
 * @recipient: (type filename): an envelope recipient
 *
 * Appends an accepted recipient.
 *
 * Since: 1.0
 */
void
milter_message_result_add_recipient (MilterMessageResult *result,
                                     const gchar         *recipient)
{
  g_return_if_fail (MILTER_IS_MESSAGE_RESULT (result));
  g_return_if_fail (recipient != NULL);

  strv_array_append (result->recipients, recipient);
  g_object_notify_by_pspec (G_OBJECT (result), properties[PROP_RECIPIENTS]);
}

/**
 * milter_message_result_get_rejected_recipients:
 * @result: a #MilterMessageResult
 *
 * Gets the rejected recipients.
 *
 * Returns: (transfer none) (array zero-terminated=1) (element-type filename): the rejected recipients
 *
 * Since: 1.0
 */
const gchar * const *
milter_message_result_get_rejected_recipients (MilterMessageResult *result)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE_RESULT (result), NULL);

  return (const gchar * const *) result->rejected_recipients->pdata;
}

/**
 * milter_message_result_add_rejected_recipient:
 * @result: a #MilterMessageResult
 * @recipient: (type filename): an envelope recipient
 *
 * Appends a rejected recipient.
 *
 * Since: 1.0
 */
void
milter_message_result_add_rejected_recipient (MilterMessageResult *result,
                                              const gchar         *recipient)
{
  g_return_if_fail (MILTER_IS_MESSAGE_RESULT (result));
  g_return_if_fail (recipient != NULL);

  strv_array_append (result->rejected_recipients, recipient);
  g_object_notify_by_pspec (G_OBJECT (result), properties[PROP_REJECTED_RECIPIENTS]);
}

/**
 * milter_message_result_get_headers:
 * @result: a #MilterMessageResult
 *
 * Gets the headers, which the caller may modify.
 *
 * Returns: (transfer none): the headers, which the caller may modify
 *
 * Since: 1.0
 */
MilterHeaders *
milter_message_result_get_headers (MilterMessageResult *result)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE_RESULT (result), NULL);

  return result->headers;
}

/**
 * milter_message_result_get_body_size:
 * @result: a #MilterMessageResult
 *
 * Gets the body size in bytes.
 *
 * Returns: the body size in bytes
 *
 * Since: 1.0
 */
guint64
milter_message_result_get_body_size (MilterMessageResult *result)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE_RESULT (result), 0);

  return result->body_size;
}

/**
 * milter_message_result_set_body_size:
 * @result: a #MilterMessageResult
 * @body_size: the body size in bytes
 *
 * Sets the body size.
 *
 * Since: 1.0
 */
void
milter_message_result_set_body_size (MilterMessageResult *result,
                                     guint64              body_size)
{
  g_return_if_fail (MILTER_IS_MESSAGE_RESULT (result));

  if (result->body_size == body_size)
    return;
  result->body_size = body_size;
  g_object_notify_by_pspec (G_OBJECT (result), properties[PROP_BODY_SIZE]);
}

/**
 * milter_message_result_add_body_size:
 * @result: a #MilterMessageResult
 * @size: bytes to add
 *
 * Adds @size to the body size (one body chunk).
 *
 * Since: 1.0
 */
void
milter_message_result_add_body_size (MilterMessageResult *result,
                                     guint64              size)
{
  g_return_if_fail (MILTER_IS_MESSAGE_RESULT (result));

  milter_message_result_set_body_size (result, result->body_size + size);
}

/**
 * milter_message_result_get_status:
 * @result: a #MilterMessageResult
 *
 * Gets the final status.
 *
 * Returns: the final status
 *
 * Since: 1.0
 */
MilterStatus
milter_message_result_get_status (MilterMessageResult *result)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE_RESULT (result), MILTER_STATUS_DEFAULT);

  return result->status;
}

/**
 * milter_message_result_set_status:
 * @result: a #MilterMessageResult
 * @status: the final status
 *
 * Sets the final status.
 *
 * Since: 1.0
 */
void
milter_message_result_set_status (MilterMessageResult *result,
                                  MilterStatus         status)
{
  g_return_if_fail (MILTER_IS_MESSAGE_RESULT (result));

  if (result->status == status)
    return;
  result->status = status;
  g_object_notify_by_pspec (G_OBJECT (result), properties[PROP_STATUS]);
}

/**
 * milter_message_result_start:
 * @result: a #MilterMessageResult
 *
 * Records now as the start time.
 *
 * Since: 1.0
 */
void
milter_message_result_start (MilterMessageResult *result)
{
  g_return_if_fail (MILTER_IS_MESSAGE_RESULT (result));

  result->start_time = g_get_real_time ();
  result->end_time = 0;
  g_object_notify_by_pspec (G_OBJECT (result), properties[PROP_START_TIME]);
}

/**
 * milter_message_result_stop:
 * @result: a #MilterMessageResult
 *
 * Records now as the end time.
 *
 * Since: 1.0
 */
void
milter_message_result_stop (MilterMessageResult *result)
{
  g_return_if_fail (MILTER_IS_MESSAGE_RESULT (result));

  result->end_time = g_get_real_time ();
  g_object_notify_by_pspec (G_OBJECT (result), properties[PROP_END_TIME]);
}

/**
 * milter_message_result_get_start_time:
 * @result: a #MilterMessageResult
 *
 * Gets the start time in microseconds since the epoch, or 0.
 *
 * Returns: the start time in microseconds since the epoch, or 0
 *
 * Since: 1.0
 */
gint64
milter_message_result_get_start_time (MilterMessageResult *result)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE_RESULT (result), 0);

  return result->start_time;
}

/**
 * milter_message_result_get_end_time:
 * @result: a #MilterMessageResult
 *
 * Gets the end time in microseconds since the epoch, or 0.
 *
 * Returns: the end time in microseconds since the epoch, or 0
 *
 * Since: 1.0
 */
gint64
milter_message_result_get_end_time (MilterMessageResult *result)
{
  g_return_val_if_fail (MILTER_IS_MESSAGE_RESULT (result), 0);

  return result->end_time;
}

/**
 * milter_message_result_get_elapsed_time:
 * @result: a #MilterMessageResult
 *
 * Gets the duration of the message.
 *
 * Returns: seconds from start to end (to now if not ended; 0 if not started)
 *
 * Since: 1.0
 */
gdouble
milter_message_result_get_elapsed_time (MilterMessageResult *result)
{
  gint64 end;

  g_return_val_if_fail (MILTER_IS_MESSAGE_RESULT (result), 0);

  if (result->start_time == 0)
    return 0;
  end = result->end_time != 0 ? result->end_time : g_get_real_time ();
  return MAX (0, end - result->start_time) / (gdouble) G_USEC_PER_SEC;
}
