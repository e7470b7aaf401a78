/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MILTER_INSIDE) && !defined (MILTER_COMPILATION)
# error "Only <milter/milter.h> can be included directly."
#endif

#include <gio/gio.h>
#include <milter/core/milter-version-macros.h>
#include <milter/core/milter-enums.h>
#include <milter/core/milter-option.h>
#include <milter/core/milter-macros-requests.h>
#include <milter/core/milter-message-result.h>

G_BEGIN_DECLS

/**
 * MILTER_TYPE_CLIENT_CONTEXT:
 *
 * The #GType of #MilterClientContext.
 *
 * Since: 1.0
 */
#define MILTER_TYPE_CLIENT_CONTEXT (milter_client_context_get_type ())

/* Declared here, defined in milter-client.h (which includes this file). */
#ifndef __GTK_DOC_IGNORE__
typedef struct _MilterClient MilterClient;
#endif

MILTER_AVAILABLE_IN_ALL
G_DECLARE_DERIVABLE_TYPE (MilterClientContext, milter_client_context, MILTER, CLIENT_CONTEXT, GObject)

/**
 * MilterClientContextClass:
 * @parent_class: the parent class
 * @negotiate: class handler of #MilterClientContext::negotiate
 * @define_macro: class handler of #MilterClientContext::define-macro
 * @connect: class handler of #MilterClientContext::connect
 * @helo: class handler of #MilterClientContext::helo
 * @envelope_from: class handler of #MilterClientContext::envelope-from
 * @envelope_recipient: class handler of #MilterClientContext::envelope-recipient
 * @data: class handler of #MilterClientContext::data
 * @unknown: class handler of #MilterClientContext::unknown
 * @header: class handler of #MilterClientContext::header
 * @end_of_header: class handler of #MilterClientContext::end-of-header
 * @body: class handler of #MilterClientContext::body
 * @body_bytes: class handler of #MilterClientContext::body-bytes
 * @end_of_message: class handler of #MilterClientContext::end-of-message
 * @end_of_message_bytes: class handler of #MilterClientContext::end-of-message-bytes
 * @abort: class handler of #MilterClientContext::abort
 * @timeout: class handler of #MilterClientContext::timeout
 * @message_processed: class handler of #MilterClientContext::message-processed
 * @finished: class handler of #MilterClientContext::finished
 * @error: class handler of #MilterClientContext::error
 * @negotiate_response: class handler of #MilterClientContext::negotiate-response
 * @connect_response: class handler of #MilterClientContext::connect-response
 * @helo_response: class handler of #MilterClientContext::helo-response
 * @envelope_from_response: class handler of #MilterClientContext::envelope-from-response
 * @envelope_recipient_response: class handler of
 *   #MilterClientContext::envelope-recipient-response
 * @data_response: class handler of #MilterClientContext::data-response
 * @unknown_response: class handler of #MilterClientContext::unknown-response
 * @header_response: class handler of #MilterClientContext::header-response
 * @end_of_header_response: class handler of #MilterClientContext::end-of-header-response
 * @body_response: class handler of #MilterClientContext::body-response
 * @end_of_message_response: class handler of
 *   #MilterClientContext::end-of-message-response
 * @abort_response: class handler of #MilterClientContext::abort-response
 *
 * The class of #MilterClientContext. A subclass that sets these methods
 * handles its events without connecting a handler per connection (give
 * its type to #MilterClient:context-type), which is the cheapest way to
 * write a filter. A method that is set counts as a handler: the event is
 * negotiated with the MTA. While no signal handler is connected, the
 * method is called directly, without an emission (emission hooks then do
 * not run). Handlers connected to the signal run before the method, and a
 * decisive status from one of them stops the emission, as with any
 * run-last signal.
 *
 * The `_response` methods are where a verdict becomes a reply. A subclass
 * may override one to look at or change the verdict of every step of its
 * kind, immediate or deferred, and must chain up to the parent class's
 * method, which sends the reply: without it the MTA waits for the reply
 * until its timeout. A `_response` method set to %NULL stands for
 * #MilterClientContext's own, so that the step still gets its reply.
 *
 * Since: 1.0
 */
struct _MilterClientContextClass
{
  GObjectClass parent_class;

  /*< public >*/
  MilterStatus (*negotiate)            (MilterClientContext      *context,
                                        MilterOption             *option,
                                        MilterMacrosRequests     *macros_requests);
  void         (*define_macro)         (MilterClientContext      *context,
                                        MilterCommand             command);
  MilterStatus (*connect)              (MilterClientContext      *context,
                                        const gchar              *host_name,
                                        GSocketAddress           *address);
  MilterStatus (*helo)                 (MilterClientContext      *context,
                                        const gchar              *fqdn);
  MilterStatus (*envelope_from)        (MilterClientContext      *context,
                                        const gchar              *from);
  MilterStatus (*envelope_recipient)   (MilterClientContext      *context,
                                        const gchar              *recipient);
  MilterStatus (*data)                 (MilterClientContext      *context);
  MilterStatus (*unknown)              (MilterClientContext      *context,
                                        const gchar              *command);
  MilterStatus (*header)               (MilterClientContext      *context,
                                        const gchar              *name,
                                        const gchar              *value);
  MilterStatus (*end_of_header)        (MilterClientContext      *context);
  MilterStatus (*body)                 (MilterClientContext      *context,
                                        const gchar              *chunk,
                                        guint64                   size);
  MilterStatus (*body_bytes)           (MilterClientContext      *context,
                                        GBytes                   *chunk);
  MilterStatus (*end_of_message)       (MilterClientContext      *context,
                                        const gchar              *chunk,
                                        guint64                   size);
  MilterStatus (*end_of_message_bytes) (MilterClientContext      *context,
                                        GBytes                   *chunk);
  MilterStatus (*abort)                (MilterClientContext      *context,
                                        MilterClientContextState  state);
  void         (*timeout)              (MilterClientContext      *context);
  void         (*message_processed)    (MilterClientContext      *context,
                                        MilterMessageResult      *result);
  void         (*finished)             (MilterClientContext      *context);
  void         (*error)                (MilterClientContext      *context,
                                        const GError             *error);

  void (*negotiate_response)          (MilterClientContext  *context,
                                       MilterOption         *option,
                                       MilterMacrosRequests *macros_requests,
                                       MilterStatus          status);
  void (*connect_response)            (MilterClientContext  *context,
                                       MilterStatus          status);
  void (*helo_response)               (MilterClientContext  *context,
                                       MilterStatus          status);
  void (*envelope_from_response)      (MilterClientContext  *context,
                                       MilterStatus          status);
  void (*envelope_recipient_response) (MilterClientContext  *context,
                                       MilterStatus          status);
  void (*data_response)               (MilterClientContext  *context,
                                       MilterStatus          status);
  void (*unknown_response)            (MilterClientContext  *context,
                                       MilterStatus          status);
  void (*header_response)             (MilterClientContext  *context,
                                       MilterStatus          status);
  void (*end_of_header_response)      (MilterClientContext  *context,
                                       MilterStatus          status);
  void (*body_response)               (MilterClientContext  *context,
                                       MilterStatus          status);
  void (*end_of_message_response)     (MilterClientContext  *context,
                                       MilterStatus          status);
  void (*abort_response)              (MilterClientContext  *context,
                                       MilterStatus          status);

  /*< private >*/
  gpointer padding[8];
};

/**
 * MILTER_CLIENT_CONTEXT_ERROR:
 *
 * The error domain of #MilterClientContext.
 *
 * Since: 1.0
 */
#define MILTER_CLIENT_CONTEXT_ERROR (milter_client_context_error_quark ())

/**
 * MilterClientContextError:
 * @MILTER_CLIENT_CONTEXT_ERROR_IO: reading from or writing to the MTA failed
 * @MILTER_CLIENT_CONTEXT_ERROR_UNEXPECTED_COMMAND: the MTA sent a command
 *   out of order
 * @MILTER_CLIENT_CONTEXT_ERROR_INVALID_STATE: the operation is not allowed
 *   now (for example a modification outside end-of-message)
 * @MILTER_CLIENT_CONTEXT_ERROR_INVALID_ACTION: the action was not
 *   negotiated with the MTA
 * @MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE: a value the MTA would refuse
 *   or misread (a bad header name, a line break that is not a fold, a
 *   header line of 2048 characters or more, an empty address)
 * @MILTER_CLIENT_CONTEXT_ERROR_INVALID_NEGOTIATION: the negotiation reply a
 *   handler asked for is not within the MTA's offer
 * @MILTER_CLIENT_CONTEXT_ERROR_TOO_MANY_HEADERS: a message with more
 *   headers than #MilterClientContext:max-headers
 * @MILTER_CLIENT_CONTEXT_ERROR_NOT_SUPPORTED: the stream cannot be used
 *   (it is not pollable)
 * @MILTER_CLIENT_CONTEXT_ERROR_TOO_MANY_RECIPIENTS: a message with more
 *   recipients than #MilterClientContext:max-recipients
 * @MILTER_CLIENT_CONTEXT_ERROR_MESSAGE_RESULT_TOO_LARGE: a message whose
 *   headers and recipients are more bytes than
 *   #MilterClientContext:max-message-result-size
 *
 * Errors of a #MilterClientContext. Faults in the packets themselves are
 * reported in the %MILTER_DECODER_ERROR domain.
 *
 * Since: 1.0
 */
typedef enum {
  MILTER_CLIENT_CONTEXT_ERROR_IO,
  MILTER_CLIENT_CONTEXT_ERROR_UNEXPECTED_COMMAND,
  MILTER_CLIENT_CONTEXT_ERROR_INVALID_STATE,
  MILTER_CLIENT_CONTEXT_ERROR_INVALID_ACTION,
  MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE,
  MILTER_CLIENT_CONTEXT_ERROR_INVALID_NEGOTIATION,
  MILTER_CLIENT_CONTEXT_ERROR_TOO_MANY_HEADERS,
  MILTER_CLIENT_CONTEXT_ERROR_NOT_SUPPORTED,
  MILTER_CLIENT_CONTEXT_ERROR_TOO_MANY_RECIPIENTS,
  MILTER_CLIENT_CONTEXT_ERROR_MESSAGE_RESULT_TOO_LARGE,
} MilterClientContextError;

/**
 * MILTER_CLIENT_CONTEXT_DEFAULT_TIMEOUT:
 *
 * The default idle timeout in seconds, as libmilter's.
 *
 * Since: 1.0
 */
#define MILTER_CLIENT_CONTEXT_DEFAULT_TIMEOUT 7210

/**
 * MilterClientMailTransactionShelfFunc:
 * @key: a key
 * @value: its value
 * @user_data: the data passed to
 *   milter_client_context_mail_transaction_shelf_foreach()
 *
 * Called for each entry of the mail-transaction shelf.
 *
 * Since: 1.0
 */
typedef void (*MilterClientMailTransactionShelfFunc) (const gchar *key,
                                                      const gchar *value,
                                                      gpointer     user_data);

MILTER_AVAILABLE_IN_ALL
GQuark milter_client_context_error_quark (void);

MILTER_AVAILABLE_IN_ALL
MilterClientContext *milter_client_context_new (MilterClient *client);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_start (MilterClientContext  *context,
                                      GIOStream            *stream,
                                      GError              **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_feed (MilterClientContext  *context,
                                     const gchar          *chunk,
                                     gsize                 size,
                                     GError              **error);
MILTER_AVAILABLE_IN_ALL
MilterClient *milter_client_context_get_client (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
GIOStream *milter_client_context_get_stream (MilterClientContext *context);

/* Replies */
MILTER_AVAILABLE_IN_ALL
void milter_client_context_reply (MilterClientContext *context,
                                  MilterStatus         status);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_is_reply_pending (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_progress (MilterClientContext  *context,
                                         GError              **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_set_reply (MilterClientContext  *context,
                                          guint                 code,
                                          const gchar          *extended_code,
                                          const gchar          *message,
                                          GError              **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_set_multiline_reply (MilterClientContext  *context,
                                                    guint                 code,
                                                    const gchar          *extended_code,
                                                    const gchar * const  *lines,
                                                    GError              **error);
MILTER_AVAILABLE_IN_ALL
gchar *milter_client_context_format_reply (MilterClientContext *context);

/* Modifications (end-of-message only) */
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_add_header (MilterClientContext  *context,
                                           const gchar          *name,
                                           const gchar          *value,
                                           GError              **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_insert_header (MilterClientContext  *context,
                                              guint32               index,
                                              const gchar          *name,
                                              const gchar          *value,
                                              GError              **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_change_header (MilterClientContext  *context,
                                              const gchar          *name,
                                              guint32               index,
                                              const gchar          *value,
                                              GError              **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_delete_header (MilterClientContext  *context,
                                              const gchar          *name,
                                              guint32               index,
                                              GError              **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_change_from (MilterClientContext  *context,
                                            const gchar          *from,
                                            const gchar          *parameters,
                                            GError              **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_add_recipient (MilterClientContext  *context,
                                              const gchar          *recipient,
                                              const gchar          *parameters,
                                              GError              **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_delete_recipient (MilterClientContext  *context,
                                                 const gchar          *recipient,
                                                 GError              **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_replace_body (MilterClientContext  *context,
                                             const gchar          *body,
                                             gsize                 body_size,
                                             GError              **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_replace_body_bytes (MilterClientContext  *context,
                                                   GBytes               *body,
                                                   GError              **error);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_quarantine (MilterClientContext  *context,
                                           const gchar          *reason,
                                           GError              **error);

/* Macros and envelope details */
MILTER_AVAILABLE_IN_ALL
const gchar *milter_client_context_get_macro (MilterClientContext *context,
                                              const gchar         *name);
MILTER_AVAILABLE_IN_ALL
GHashTable *milter_client_context_get_macros (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
gchar **milter_client_context_get_macro_names (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
GHashTable *milter_client_context_get_command_macros (MilterClientContext *context,
                                                      MilterCommand        command);
MILTER_AVAILABLE_IN_ALL
const gchar * const *milter_client_context_get_esmtp_parameters (MilterClientContext *context);

/* Per-connection and per-message storage */
MILTER_AVAILABLE_IN_ALL
gpointer milter_client_context_get_private_data (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_private_data (MilterClientContext *context,
                                             gpointer             data,
                                             GDestroyNotify       destroy);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_mail_transaction_shelf_value (MilterClientContext *context,
                                                             const gchar         *key,
                                                             const gchar         *value);
MILTER_AVAILABLE_IN_ALL
const gchar *milter_client_context_get_mail_transaction_shelf_value (MilterClientContext *context,
                                                                     const gchar         *key);
MILTER_AVAILABLE_IN_ALL
GHashTable *milter_client_context_get_mail_transaction_shelf (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_clear_mail_transaction_shelf (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_mail_transaction_shelf_foreach (MilterClientContext                 *context,
                                                           MilterClientMailTransactionShelfFunc func,
                                                           gpointer                             user_data);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_reset_message_related_data (MilterClientContext *context);

/* State and settings */
MILTER_AVAILABLE_IN_ALL
MilterClientContextState milter_client_context_get_state (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_state (MilterClientContext     *context,
                                      MilterClientContextState state);
MILTER_AVAILABLE_IN_ALL
MilterClientContextState milter_client_context_get_last_state (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
MilterStatus milter_client_context_get_status (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_status (MilterClientContext *context,
                                       MilterStatus         status);
MILTER_AVAILABLE_IN_ALL
MilterOption *milter_client_context_get_option (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_option (MilterClientContext *context,
                                       MilterOption        *option);
MILTER_AVAILABLE_IN_ALL
MilterMessageResult *milter_client_context_get_message_result (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
const gchar *milter_client_context_get_quarantine_reason (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_quarantine_reason (MilterClientContext *context,
                                                  const gchar         *reason);
MILTER_AVAILABLE_IN_ALL
guint milter_client_context_get_timeout (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_timeout (MilterClientContext *context,
                                        guint                timeout);
MILTER_AVAILABLE_IN_ALL
guint milter_client_context_get_packet_buffer_size (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_packet_buffer_size (MilterClientContext *context,
                                                   guint                size);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_get_use_bytes (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_use_bytes (MilterClientContext *context,
                                          gboolean             use_bytes);
MILTER_AVAILABLE_IN_ALL
guint milter_client_context_get_max_packet_length (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_max_packet_length (MilterClientContext *context,
                                                  guint                length);
MILTER_AVAILABLE_IN_ALL
guint milter_client_context_get_max_headers (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_max_headers (MilterClientContext *context,
                                            guint                max_headers);
MILTER_AVAILABLE_IN_ALL
guint milter_client_context_get_max_message_result_size (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_max_message_result_size (MilterClientContext *context,
                                                        guint                max_size);
MILTER_AVAILABLE_IN_ALL
guint milter_client_context_get_max_recipients (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_max_recipients (MilterClientContext *context,
                                               guint                max_recipients);
MILTER_AVAILABLE_IN_ALL
guint milter_client_context_get_max_macros (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_max_macros (MilterClientContext *context,
                                           guint                max_macros);
MILTER_AVAILABLE_IN_ALL
MilterStatus milter_client_context_get_fallback_status (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_client_context_set_fallback_status (MilterClientContext *context,
                                                MilterStatus         status);
MILTER_AVAILABLE_IN_ALL
guint milter_client_context_get_n_processing_sessions (MilterClientContext *context);
MILTER_AVAILABLE_IN_ALL
gboolean milter_client_context_is_finished (MilterClientContext *context);

G_END_DECLS
