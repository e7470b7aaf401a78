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
#include <milter/server/milter-modification.h>

G_BEGIN_DECLS

/**
 * MILTER_SERVER_CONTEXT_ERROR:
 *
 * The error domain of #MilterServerContext.
 *
 * Since: 1.0
 */
#define MILTER_SERVER_CONTEXT_ERROR (milter_server_context_error_quark ())

/**
 * MilterServerContextError:
 * @MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE: the call is not possible
 *   now: another operation is in progress, there is no connection yet, the
 *   milter has not been negotiated with (or was already), or no
 *   connection spec was set
 * @MILTER_SERVER_CONTEXT_ERROR_CLOSED: the context was closed by
 *   milter_server_context_close() or after a quit
 * @MILTER_SERVER_CONTEXT_ERROR_PEER_CLOSED: the milter closed the
 *   connection
 * @MILTER_SERVER_CONTEXT_ERROR_TIMEOUT: connecting, writing or waiting for
 *   a reply took longer than the timeout of that phase
 * @MILTER_SERVER_CONTEXT_ERROR_INVALID_NEGOTIATION: the milter's
 *   negotiation reply requests a higher protocol version, or actions or
 *   steps that were not offered
 * @MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY: a reply that is not valid
 *   at this point: anything but an option reply to negotiation, a
 *   modification request outside end-of-message, skip in reply to anything
 *   but a body chunk, a connection-failure (`f`) reply, or any packet while
 *   no reply was expected
 * @MILTER_SERVER_CONTEXT_ERROR_ACTION_NOT_NEGOTIATED: a modification
 *   request whose action the milter did not negotiate
 * @MILTER_SERVER_CONTEXT_ERROR_INVALID_REPLY_CODE: a reply-code (`y`) text
 *   that milter_reply_code_validate() refuses
 * @MILTER_SERVER_CONTEXT_ERROR_SHUTDOWN: the milter replied shutdown
 *   (`4`) or a 421 reply code: Postfix answers the SMTP client with 421
 *   and disconnects
 * @MILTER_SERVER_CONTEXT_ERROR_LIMIT_EXCEEDED: the modification requests
 *   of one end-of-message exceed
 *   #MilterServerContext:max-modifications-size
 *
 * The failures of a #MilterServerContext. A malformed packet from the
 * milter is reported in the %MILTER_DECODER_ERROR domain, and I/O errors
 * in the %G_IO_ERROR domain. After any of these errors except
 * %MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE the context is closed.
 *
 * Since: 1.0
 */
typedef enum {
  MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE,
  MILTER_SERVER_CONTEXT_ERROR_CLOSED,
  MILTER_SERVER_CONTEXT_ERROR_PEER_CLOSED,
  MILTER_SERVER_CONTEXT_ERROR_TIMEOUT,
  MILTER_SERVER_CONTEXT_ERROR_INVALID_NEGOTIATION,
  MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
  MILTER_SERVER_CONTEXT_ERROR_ACTION_NOT_NEGOTIATED,
  MILTER_SERVER_CONTEXT_ERROR_INVALID_REPLY_CODE,
  MILTER_SERVER_CONTEXT_ERROR_SHUTDOWN,
  MILTER_SERVER_CONTEXT_ERROR_LIMIT_EXCEEDED,
} MilterServerContextError;

MILTER_AVAILABLE_IN_ALL
GQuark milter_server_context_error_quark (void);

/**
 * MILTER_TYPE_SERVER_CONTEXT:
 *
 * The #GType of #MilterServerContext.
 *
 * Since: 1.0
 */
#define MILTER_TYPE_SERVER_CONTEXT (milter_server_context_get_type ())

MILTER_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (MilterServerContext, milter_server_context, MILTER, SERVER_CONTEXT, GObject)

MILTER_AVAILABLE_IN_ALL
MilterServerContext *milter_server_context_new (void);

/* Connection */
MILTER_AVAILABLE_IN_ALL
gboolean milter_server_context_set_connection_spec (MilterServerContext  *context,
                                                    const gchar          *spec,
                                                    GError              **error);
MILTER_AVAILABLE_IN_ALL
const gchar *milter_server_context_get_connection_spec (MilterServerContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_establish_connection_async (MilterServerContext *context,
                                                       GCancellable        *cancellable,
                                                       GAsyncReadyCallback  callback,
                                                       gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
gboolean milter_server_context_establish_connection_finish (MilterServerContext  *context,
                                                            GAsyncResult         *result,
                                                            GError              **error);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_set_stream (MilterServerContext *context,
                                       GIOStream           *stream);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_close (MilterServerContext *context);
MILTER_AVAILABLE_IN_ALL
gboolean milter_server_context_is_closed (MilterServerContext *context);

/* Negotiation */
MILTER_AVAILABLE_IN_ALL
void milter_server_context_negotiate_async (MilterServerContext *context,
                                            MilterOption        *offer,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
gboolean milter_server_context_negotiate_finish (MilterServerContext  *context,
                                                 GAsyncResult         *result,
                                                 GError              **error);
MILTER_AVAILABLE_IN_ALL
MilterOption *milter_server_context_get_option (MilterServerContext *context);
MILTER_AVAILABLE_IN_ALL
MilterMacrosRequests *milter_server_context_get_macros_requests (MilterServerContext *context);

/* Commands with a verdict */
MILTER_AVAILABLE_IN_ALL
void milter_server_context_connect_async (MilterServerContext *context,
                                          const gchar         *host,
                                          GSocketAddress      *address,
                                          GCancellable        *cancellable,
                                          GAsyncReadyCallback  callback,
                                          gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
MilterStatus milter_server_context_connect_finish (MilterServerContext  *context,
                                                   GAsyncResult         *result,
                                                   GError              **error);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_helo_async (MilterServerContext *context,
                                       const gchar         *fqdn,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
MilterStatus milter_server_context_helo_finish (MilterServerContext  *context,
                                                GAsyncResult         *result,
                                                GError              **error);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_envelope_from_async (MilterServerContext *context,
                                                const gchar         *from,
                                                const gchar * const *parameters,
                                                GCancellable        *cancellable,
                                                GAsyncReadyCallback  callback,
                                                gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
MilterStatus milter_server_context_envelope_from_finish (MilterServerContext  *context,
                                                         GAsyncResult         *result,
                                                         GError              **error);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_envelope_recipient_async (MilterServerContext *context,
                                                     const gchar         *recipient,
                                                     const gchar * const *parameters,
                                                     GCancellable        *cancellable,
                                                     GAsyncReadyCallback  callback,
                                                     gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
MilterStatus milter_server_context_envelope_recipient_finish (MilterServerContext  *context,
                                                              GAsyncResult         *result,
                                                              GError              **error);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_data_async (MilterServerContext *context,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
MilterStatus milter_server_context_data_finish (MilterServerContext  *context,
                                                GAsyncResult         *result,
                                                GError              **error);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_header_async (MilterServerContext *context,
                                         const gchar         *name,
                                         const gchar         *value,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
MilterStatus milter_server_context_header_finish (MilterServerContext  *context,
                                                  GAsyncResult         *result,
                                                  GError              **error);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_end_of_header_async (MilterServerContext *context,
                                                GCancellable        *cancellable,
                                                GAsyncReadyCallback  callback,
                                                gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
MilterStatus milter_server_context_end_of_header_finish (MilterServerContext  *context,
                                                         GAsyncResult         *result,
                                                         GError              **error);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_body_async (MilterServerContext *context,
                                       GBytes              *chunk,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
MilterStatus milter_server_context_body_finish (MilterServerContext  *context,
                                                GAsyncResult         *result,
                                                GError              **error);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_end_of_message_async (MilterServerContext *context,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
MilterStatus milter_server_context_end_of_message_finish (MilterServerContext  *context,
                                                          GAsyncResult         *result,
                                                          GError              **error);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_unknown_async (MilterServerContext *context,
                                          const gchar         *command,
                                          GCancellable        *cancellable,
                                          GAsyncReadyCallback  callback,
                                          gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
MilterStatus milter_server_context_unknown_finish (MilterServerContext  *context,
                                                   GAsyncResult         *result,
                                                   GError              **error);

/* Commands without a reply */
MILTER_AVAILABLE_IN_ALL
void milter_server_context_abort_async (MilterServerContext *context,
                                        GCancellable        *cancellable,
                                        GAsyncReadyCallback  callback,
                                        gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
gboolean milter_server_context_abort_finish (MilterServerContext  *context,
                                             GAsyncResult         *result,
                                             GError              **error);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_quit_async (MilterServerContext *context,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
gboolean milter_server_context_quit_finish (MilterServerContext  *context,
                                            GAsyncResult         *result,
                                            GError              **error);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_quit_new_connection_async (MilterServerContext *context,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
MILTER_AVAILABLE_IN_ALL
gboolean milter_server_context_quit_new_connection_finish (MilterServerContext  *context,
                                                           GAsyncResult         *result,
                                                           GError              **error);

/* Results */
MILTER_AVAILABLE_IN_ALL
const gchar *milter_server_context_get_reply_text (MilterServerContext *context);
MILTER_AVAILABLE_IN_ALL
GPtrArray *milter_server_context_get_modifications (MilterServerContext *context);
MILTER_AVAILABLE_IN_ALL
guint milter_server_context_get_n_modifications (MilterServerContext *context);
MILTER_AVAILABLE_IN_ALL
MilterModification *milter_server_context_get_modification (MilterServerContext *context,
                                                            guint                index);

/* Macros */
MILTER_AVAILABLE_IN_ALL
void milter_server_context_set_macro (MilterServerContext *context,
                                      MilterCommand        command,
                                      const gchar         *name,
                                      const gchar         *value);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_clear_macros (MilterServerContext *context,
                                         MilterCommand        command);
MILTER_AVAILABLE_IN_ALL
gboolean milter_server_context_get_default_macros (MilterServerContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_set_default_macros (MilterServerContext *context,
                                               gboolean             default_macros);

/* Timeouts and limits */
MILTER_AVAILABLE_IN_ALL
gdouble milter_server_context_get_connect_timeout (MilterServerContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_set_connect_timeout (MilterServerContext *context,
                                                gdouble              timeout);
MILTER_AVAILABLE_IN_ALL
gdouble milter_server_context_get_read_timeout (MilterServerContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_set_read_timeout (MilterServerContext *context,
                                             gdouble              timeout);
MILTER_AVAILABLE_IN_ALL
gdouble milter_server_context_get_write_timeout (MilterServerContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_set_write_timeout (MilterServerContext *context,
                                              gdouble              timeout);
MILTER_AVAILABLE_IN_ALL
gdouble milter_server_context_get_end_of_message_timeout (MilterServerContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_set_end_of_message_timeout (MilterServerContext *context,
                                                       gdouble              timeout);
MILTER_AVAILABLE_IN_ALL
guint milter_server_context_get_max_packet_length (MilterServerContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_set_max_packet_length (MilterServerContext *context,
                                                  guint                length);
MILTER_AVAILABLE_IN_ALL
guint64 milter_server_context_get_max_modifications_size (MilterServerContext *context);
MILTER_AVAILABLE_IN_ALL
void milter_server_context_set_max_modifications_size (MilterServerContext *context,
                                                       guint64              size);

G_END_DECLS
