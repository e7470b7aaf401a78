/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-server-context.h"
#include "milter-modification.h"
#include "milter/milter-enum-types.h"
#include "milter-reply-code.h"
#include "milter-connection-spec.h"
#include "milter-decoder-private.h"
#include "milter-encoder-private.h"

#include <string.h>

/**
 * SECTION:milter-server-context
 * @title: MilterServerContext
 * @short_description: Plays the MTA against a milter
 * @include: milter/milter.h
 * @see_also: #MilterMessage, #MilterModification
 *
 * A #MilterServerContext speaks the MTA side of the milter protocol to
 * one milter (one built with this library, with Sendmail's libmilter or
 * with any other implementation), as Postfix does. It is what test tools
 * such as `milter-test-server` and in-process tests of a filter use.
 *
 * A session goes:
 *
 * 1. milter_server_context_set_connection_spec() and
 *    milter_server_context_establish_connection_async() (or
 *    milter_server_context_set_stream() with an already connected stream);
 * 2. milter_server_context_negotiate_async() with an offer (by default
 *    Postfix's: protocol version 6, every action and every step);
 * 3. one asynchronous call per SMTP event: connect, helo, envelope-from,
 *    envelope-recipient (once per recipient), data, header (once per
 *    header), end-of-header, body (once per chunk), end-of-message, and
 *    unknown for SMTP commands the MTA does not know;
 * 4. milter_server_context_quit_async(), or
 *    milter_server_context_quit_new_connection_async() to reuse the
 *    connection for another SMTP session, or
 *    milter_server_context_abort_async() to abandon a message and start
 *    another.
 *
 * Only one call may be in progress at a time. Each `_finish()` function of
 * a command returns the milter's verdict as a #MilterStatus:
 *
 * - `c` → %MILTER_STATUS_CONTINUE (at end-of-message: the message is
 *   accepted as the milter modified it);
 * - `a` → %MILTER_STATUS_ACCEPT, `r` → %MILTER_STATUS_REJECT,
 *   `t` → %MILTER_STATUS_TEMPORARY_FAILURE, `d` → %MILTER_STATUS_DISCARD;
 * - `y` (a reply code) → %MILTER_STATUS_REJECT for a 5xx code or
 *   %MILTER_STATUS_TEMPORARY_FAILURE for a 4xx code; the text, such as
 *   `550 5.7.1 No thanks`, is then available from
 *   milter_server_context_get_reply_text();
 * - `s` → %MILTER_STATUS_SKIP, in reply to a body chunk only: the
 *   remaining body is not sent (later body calls of the same message
 *   complete at once with %MILTER_STATUS_SKIP). Like the MTAs, the context
 *   honours it even if %MILTER_STEP_SKIP was not negotiated, since
 *   libmilter sends it regardless;
 * - `4` (shutdown) is the error %MILTER_SERVER_CONTEXT_ERROR_SHUTDOWN.
 *
 * The context does not enforce the SMTP sequence: like an MTA, its user
 * should stop sending events of a message (or, at connect and HELO, of the
 * connection) once the milter decided with a verdict other than continue,
 * except that a rejected recipient rejects only that recipient.
 *
 * What the milter negotiated is honoured: a step it disabled (a
 * `MILTER_STEP_NO_*` flag, or a command its protocol version lacks: no
 * unknown command below version 3, no DATA below version 4) is not sent,
 * and the call completes with %MILTER_STATUS_CONTINUE once the step's
 * macros are written; a step whose `MILTER_STEP_NO_REPLY_*` flag was
 * negotiated is sent and completes, with %MILTER_STATUS_CONTINUE, without
 * waiting for a reply. A body chunk larger than 65535 bytes is sent as
 * several body packets, each with its own reply.
 *
 * Like Postfix, the context sends a define-macro packet before every
 * command (even when the command itself is not sent, and even with no
 * macros in it; headers carry the end-of-header macros and body chunks the
 * end-of-message ones). By default each stage gets Postfix's default list
 * (`j {daemon_name} {daemon_addr} v _` at connect, the TLS macros at HELO,
 * `i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host}
 * {mail_mailer}` at envelope-from, `i {rcpt_addr} {rcpt_host} {rcpt_mailer}`
 * at envelope-recipient, `i` from DATA to end-of-message), or the list the
 * milter asked for in negotiation if it is not empty. As with Postfix,
 * macros without a value are left out. The context knows `j` and
 * `{daemon_name}` (the host name), `v`, `_`, `{client_addr}`,
 * `{client_name}`, `{client_ptr}`, `{client_port}` (from the connect
 * call), `{mail_addr}`, `{mail_host}`, `{mail_mailer}`, `{rcpt_addr}`,
 * `{rcpt_host}`, `{rcpt_mailer}` (from the envelope) and `i`, a made-up
 * queue ID from the first recipient of a message on; there is no TLS,
 * authentication or `{daemon_addr}`. milter_server_context_set_macro()
 * overrides, adds or suppresses macros per stage, and
 * #MilterServerContext:default-macros turns the defaults off.
 *
 * While waiting for a reply, progress (`p`) packets are accepted; each
 * emits #MilterServerContext::progress and restarts the timer. At
 * end-of-message the milter may send modification requests before its
 * final reply: each emits a signal as it arrives
 * (#MilterServerContext::add-header, #MilterServerContext::replace-body…),
 * and afterwards milter_server_context_get_modifications() lists them all
 * as #MilterModification records, which
 * milter_message_apply_modifications() applies to a #MilterMessage.
 *
 * Anything else the milter does wrong (a modification outside
 * end-of-message or of an action it did not negotiate, skip in reply to
 * something other than a body chunk, an invalid reply code, an unknown
 * reply letter, data in a reply that must be empty, a packet over
 * #MilterServerContext:max-packet-length, closing the connection, not
 * answering in time) fails the call with an error in the
 * %MILTER_SERVER_CONTEXT_ERROR or %MILTER_DECODER_ERROR domain, and the
 * context is closed: every later call fails with that error. Cancelling a
 * call with its #GCancellable closes the context too, because the
 * milter's reply could no longer be matched to a command.
 *
 * All I/O is asynchronous on the thread-default #GMainContext of the
 * thread that created the context, which must also be the one the calls
 * are made from. Nothing blocks, except that
 * milter_server_context_set_connection_spec() resolves a host name.
 *
 * |[<!-- language="C" -->
 * static void
 * on_helo (GObject      *source,
 *          GAsyncResult *result,
 *          gpointer      user_data)
 * {
 *   MilterServerContext *context = MILTER_SERVER_CONTEXT (source);
 *   g_autoptr(GError) error = NULL;
 *   MilterStatus status;
 *
 *   status = milter_server_context_helo_finish (context, result, &error);
 *   if (error != NULL)
 *     g_printerr ("milter failed: %s\n", error->message);
 *   else if (status == MILTER_STATUS_REJECT)
 *     g_print ("rejected: %s\n",
 *              milter_server_context_get_reply_text (context) ?: "550");
 *   else
 *     ... // go on with milter_server_context_envelope_from_async ()
 * }
 *
 * static void
 * on_negotiated (GObject      *source,
 *                GAsyncResult *result,
 *                gpointer      user_data)
 * {
 *   MilterServerContext *context = MILTER_SERVER_CONTEXT (source);
 *   g_autoptr(GError) error = NULL;
 *
 *   if (!milter_server_context_negotiate_finish (context, result, &error))
 *     g_printerr ("negotiation failed: %s\n", error->message);
 *   else
 *     milter_server_context_helo_async (context, "client.example.com",
 *                                       NULL, on_helo, NULL);
 * }
 * ]|
 */

/**
 * milter_server_context_error_quark:
 *
 * The quark of %MILTER_SERVER_CONTEXT_ERROR.
 *
 * Returns: the error domain quark
 *
 * Since: 1.0
 */
G_DEFINE_QUARK (milter-server-context-error-quark, milter_server_context_error)

#define DEFAULT_CONNECT_TIMEOUT 30.0
#define DEFAULT_READ_TIMEOUT 30.0
#define DEFAULT_WRITE_TIMEOUT 30.0
#define DEFAULT_END_OF_MESSAGE_TIMEOUT 300.0
#define DEFAULT_MAX_MODIFICATIONS_SIZE ((guint64) 64 * 1024 * 1024)
#define MIN_PACKET_LENGTH 65536

/* Each read gets a buffer of its own, so that nothing the context frees
 * is ever written by a read still in progress. */
#define READ_SIZE 16384
/* A write buffer that grew beyond this is not kept for reuse. */
#define MAX_KEPT_WRITE_BUFFER (256 * 1024)

typedef enum {
  STATE_NEW,         /* no connection yet */
  STATE_CONNECTING,
  STATE_OPEN,
  STATE_CLOSED,
} ConnectionState;

typedef enum {
  WAIT_NONE,            /* no operation */
  WAIT_CONNECTION,      /* establishing the connection */
  WAIT_FLUSH,           /* completes once its packets are written */
  WAIT_NEGOTIATE,       /* the option reply */
  WAIT_REPLY,           /* the reply to a command */
  WAIT_END_OF_MESSAGE,  /* modifications, then the final reply */
} WaitKind;

/* The commands that get a define-macro packet, in the order of the
 * per-stage tables below. */
static const gchar macro_commands[] = "CHMRTLNBEU";
#define N_MACRO_COMMANDS 10

typedef struct
{
  gchar *name;   /* normalised: long names in braces */
  gchar *value;  /* NULL: do not send this macro */
} Macro;

/**
 * MilterServerContext:
 *
 * The MTA side of one milter connection. All fields are private.
 *
 * Since: 1.0
 */
struct _MilterServerContext
{
  GObject parent_instance;

  GMainContext *main_context;

  /* Settings */
  gchar *connection_spec;
  GSocketAddress *connection_address;
  gdouble connect_timeout;
  gdouble read_timeout;
  gdouble write_timeout;
  gdouble end_of_message_timeout;
  guint max_packet_length;
  guint64 max_modifications_size;
  gboolean default_macros;
  GPtrArray *macros[N_MACRO_COMMANDS];  /* of Macro */

  /* The connection */
  ConnectionState state;
  GError *close_reason;  /* NULL when closed on purpose */
  GIOStream *stream;
  GInputStream *input;
  GOutputStream *output;
  GCancellable *io_cancellable;
  GCancellable *connect_cancellable;
  MilterDecoder *decoder;
  gpointer spare_read;   /* a ReadData to reuse */
  gboolean reading;
  gboolean writing;
  GByteArray *out;       /* queued, not yet being written */
  gsize n_writing;       /* bytes of the write in progress */
  guint64 n_written;     /* total bytes written */
  GSource *write_timer;

  /* Negotiation */
  MilterOption *offer;
  MilterOption *option;
  MilterMacrosRequests *macros_requests;

  /* The operation in progress */
  GTask *task;
  WaitKind wait;
  gchar command;
  gboolean returns_status;
  MilterStatus flush_status;
  guint64 flush_target;
  GSource *reply_timer;
  GSource *cancel_source;
  GBytes *body;
  gsize body_offset;

  /* Session data, for the default macros */
  gchar *client_host;
  GSocketAddress *client_address;
  gchar *from;
  gchar *recipient;
  gchar *queue_id;
  gboolean skip_body;

  /* Results */
  gchar *reply_text;
  GPtrArray *modifications;     /* of MilterModification */
  GByteArray *replaced_body;    /* 'b' packets so far */
  guint replaced_body_index;    /* where the body goes in modifications */
  guint64 modifications_size;
};

enum {
  PROP_0,
  PROP_CONNECTION_SPEC,
  PROP_OPTION,
  PROP_MACROS_REQUESTS,
  PROP_REPLY_TEXT,
  PROP_CONNECT_TIMEOUT,
  PROP_READ_TIMEOUT,
  PROP_WRITE_TIMEOUT,
  PROP_END_OF_MESSAGE_TIMEOUT,
  PROP_MAX_PACKET_LENGTH,
  PROP_MAX_MODIFICATIONS_SIZE,
  PROP_DEFAULT_MACROS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_PROGRESS,
  SIGNAL_ADD_HEADER,
  SIGNAL_INSERT_HEADER,
  SIGNAL_CHANGE_HEADER,
  SIGNAL_DELETE_HEADER,
  SIGNAL_CHANGE_FROM,
  SIGNAL_ADD_RECIPIENT,
  SIGNAL_DELETE_RECIPIENT,
  SIGNAL_REPLACE_BODY,
  SIGNAL_QUARANTINE,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (MilterServerContext, milter_server_context, G_TYPE_OBJECT)

static void close_connection (MilterServerContext *self,
                              const GError        *reason);
static void start_read (MilterServerContext *self);

/* ---- helpers ------------------------------------------------------------ */

static const gchar *
command_name (gchar command)
{
  const gchar *name = milter_decoder_command_name (MILTER_DECODER_COMMANDS, command);

  if (name != NULL)
    return name;
  return command == 0 ? "establish-connection" : "command";
}

static const gchar *
reply_name (gchar reply)
{
  const gchar *name = milter_decoder_command_name (MILTER_DECODER_REPLIES, reply);

  return name != NULL ? name : "reply";
}

static gchar *
flags_to_string (GType type,
                 guint value)
{
  GFlagsClass *klass = g_type_class_ref (type);
  GString *string = g_string_new (NULL);

  for (guint i = 0; i < klass->n_values; i++)
    {
      GFlagsValue *flag = &klass->values[i];

      if (flag->value == 0 || (value & flag->value) != flag->value)
        continue;
      g_string_append_printf (string, "%s%s", string->len > 0 ? "|" : "", flag->value_nick);
      value &= ~flag->value;
    }
  if (value != 0)
    g_string_append_printf (string, "%s0x%x", string->len > 0 ? "|" : "", value);
  g_type_class_unref (klass);
  return g_string_free (string, FALSE);
}

static gint
macro_command_index (gchar command)
{
  const gchar *p = command != 0 ? strchr (macro_commands, command) : NULL;

  return p != NULL ? (gint) (p - macro_commands) : -1;
}

static void
macro_free (gpointer data)
{
  Macro *macro = data;

  g_free (macro->name);
  g_free (macro->value);
  g_free (macro);
}

/* "auth_type" → "{auth_type}"; one-letter and braced names stay. */
static gchar *
normalize_macro_name (const gchar *name)
{
  gsize length = strlen (name);

  if (length <= 1 || (name[0] == '{' && name[length - 1] == '}'))
    return g_strdup (name);
  return g_strdup_printf ("{%s}", name);
}

static GSource *
timer_new (MilterServerContext *self,
           gdouble              seconds,
           GSourceFunc          callback)
{
  GSource *source;
  gdouble ms = seconds * 1000.0;

  if (seconds <= 0)
    return NULL;
  source = g_timeout_source_new (ms >= G_MAXUINT ? G_MAXUINT : (guint) MAX (ms, 1.0));
  g_source_set_callback (source, callback, self, NULL);
  g_source_attach (source, self->main_context);
  return source;
}

static void
timer_clear (GSource **source)
{
  if (*source == NULL)
    return;
  g_source_destroy (*source);
  g_clear_pointer (source, g_source_unref);
}

static guint64
queued_total (MilterServerContext *self)
{
  return self->n_written + self->n_writing + self->out->len;
}

/* ---- operations --------------------------------------------------------- */

/* Ends the operation in progress and hands back its task. */
static GTask *
take_task (MilterServerContext *self)
{
  timer_clear (&self->reply_timer);
  timer_clear (&self->cancel_source);
  g_clear_pointer (&self->body, g_bytes_unref);
  self->wait = WAIT_NONE;
  self->command = 0;
  return g_steal_pointer (&self->task);
}

static void
complete (MilterServerContext *self,
          MilterStatus         status)
{
  gboolean returns_status = self->returns_status;
  GTask *task = take_task (self);

  if (task == NULL)
    return;
  if (returns_status)
    g_task_return_int (task, status);
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

/* Closes the context because of @error (taken) and fails the operation in
 * progress with it. */
static void
fail (MilterServerContext *self,
      GError              *error)
{
  GTask *task;

  g_object_ref (self);
  task = take_task (self);
  close_connection (self, error);
  if (task != NULL)
    {
      g_task_return_error (task, error);
      g_object_unref (task);
    }
  else
    {
      g_error_free (error);
    }
  g_object_unref (self);
}

static void G_GNUC_PRINTF (3, 4)
fail_with (MilterServerContext *self,
           gint                 code,
           const gchar         *format,
           ...)
{
  va_list args;
  gchar *message;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  fail (self, g_error_new_literal (MILTER_SERVER_CONTEXT_ERROR, code, message));
  g_free (message);
}

static gboolean
on_cancelled (GCancellable *cancellable,
              gpointer      user_data)
{
  MilterServerContext *self = user_data;

  fail (self, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                   "The operation was cancelled; the milter connection is closed"));
  return G_SOURCE_REMOVE;
}

static void
return_error (GTask       *task,
              gint         code,
              const gchar *message)
{
  g_task_return_new_error (task, MILTER_SERVER_CONTEXT_ERROR, code, "%s", message);
  g_object_unref (task);
}

/* Returns the error a closed context fails calls with. */
static GError *
closed_error (MilterServerContext *self)
{
  if (self->close_reason != NULL)
    return g_error_copy (self->close_reason);
  return g_error_new_literal (MILTER_SERVER_CONTEXT_ERROR, MILTER_SERVER_CONTEXT_ERROR_CLOSED,
                              "The connection to the milter is closed");
}

typedef enum {
  NEEDS_OPEN,        /* a connection */
  NEEDS_NEGOTIATED,  /* a connection and a finished negotiation */
} Requirement;

/* Starts an operation with @task (taken), or fails the task and returns
 * FALSE if the context cannot run it now. */
static gboolean
begin (MilterServerContext *self,
       GTask               *task,
       gchar                command,
       Requirement          requirement,
       gboolean             returns_status)
{
  GCancellable *cancellable = g_task_get_cancellable (task);

  if (self->task != NULL)
    {
      g_autofree gchar *message =
        g_strdup_printf ("Another call (%s) is in progress", command_name (self->command));

      return_error (task, MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE, message);
      return FALSE;
    }
  if (self->state == STATE_CLOSED)
    {
      g_task_return_error (task, closed_error (self));
      g_object_unref (task);
      return FALSE;
    }
  if (self->state != STATE_OPEN)
    {
      return_error (task, MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE,
                    "Not connected to a milter: establish a connection or set a stream first");
      return FALSE;
    }
  if (requirement == NEEDS_NEGOTIATED && self->option == NULL)
    {
      return_error (task, MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE,
                    "Negotiate with the milter first");
      return FALSE;
    }
  if (g_task_return_error_if_cancelled (task))
    {
      g_object_unref (task);
      return FALSE;
    }

  self->task = task;
  self->command = command;
  self->returns_status = returns_status;
  self->wait = WAIT_NONE;
  g_clear_pointer (&self->reply_text, g_free);
  if (cancellable != NULL)
    {
      self->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (self->cancel_source, (GSourceFunc) (void (*) (void)) on_cancelled,
                             self, NULL);
      g_source_attach (self->cancel_source, self->main_context);
    }
  return TRUE;
}

/* ---- writing ------------------------------------------------------------ */

typedef struct
{
  MilterServerContext *self;  /* not a reference: see on_written () */
  GBytes *bytes;
} WriteData;

static void check_flushed (MilterServerContext *self);

static gboolean
on_write_timeout (gpointer user_data)
{
  MilterServerContext *self = user_data;

  g_clear_pointer (&self->write_timer, g_source_unref);
  fail_with (self, MILTER_SERVER_CONTEXT_ERROR_TIMEOUT,
             "Timed out after %g s writing to the milter", self->write_timeout);
  return G_SOURCE_REMOVE;
}

static void start_write (MilterServerContext *self);

static void
on_written (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  WriteData *data = user_data;
  MilterServerContext *self = data->self;
  GError *error = NULL;
  gsize written;
  gboolean ok;

  ok = g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, &written, &error);
  g_bytes_unref (data->bytes);
  g_free (data);
  /* Closing the context cancels its I/O, and a cancelled operation reports
   * the cancellation whatever else happened: the context may be gone. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_error_free (error);
      return;
    }

  g_object_ref (self);
  self->writing = FALSE;
  timer_clear (&self->write_timer);
  if (!ok)
    {
      g_prefix_error (&error, "Cannot write to the milter: ");
      fail (self, error);
    }
  else
    {
      self->n_written += self->n_writing;
      self->n_writing = 0;
      start_write (self);
      check_flushed (self);
    }
  g_object_unref (self);
}

static void
start_write (MilterServerContext *self)
{
  WriteData *data;
  gconstpointer bytes;
  gsize size;

  if (self->writing || self->state != STATE_OPEN || self->out->len == 0)
    return;

  data = g_new (WriteData, 1);
  data->self = self;
  data->bytes = g_byte_array_free_to_bytes (self->out);
  self->out = g_byte_array_new ();
  bytes = g_bytes_get_data (data->bytes, &size);
  self->n_writing = size;
  self->writing = TRUE;
  self->write_timer = timer_new (self, self->write_timeout, on_write_timeout);
  g_output_stream_write_all_async (self->output, bytes, size, G_PRIORITY_DEFAULT,
                                   self->io_cancellable, on_written, data);
}

/* Completes a WAIT_FLUSH operation once everything it queued is written. */
static void
check_flushed (MilterServerContext *self)
{
  if (self->task == NULL || self->wait != WAIT_FLUSH || self->n_written < self->flush_target)
    return;
  if (self->command == 'Q')
    close_connection (self, NULL);
  complete (self, self->flush_status);
}

static void
await_flush (MilterServerContext *self,
             MilterStatus         status)
{
  self->wait = WAIT_FLUSH;
  self->flush_status = status;
  self->flush_target = queued_total (self);
  start_write (self);
  check_flushed (self);
}

static gboolean
on_reply_timeout (gpointer user_data)
{
  MilterServerContext *self = user_data;
  gdouble timeout = self->wait == WAIT_END_OF_MESSAGE ?
                    self->end_of_message_timeout : self->read_timeout;

  g_clear_pointer (&self->reply_timer, g_source_unref);
  fail_with (self, MILTER_SERVER_CONTEXT_ERROR_TIMEOUT,
             "Timed out after %g s waiting for the milter's reply to %s",
             timeout, command_name (self->command));
  return G_SOURCE_REMOVE;
}

static void
restart_reply_timer (MilterServerContext *self)
{
  gdouble timeout = self->wait == WAIT_END_OF_MESSAGE ?
                    self->end_of_message_timeout : self->read_timeout;

  timer_clear (&self->reply_timer);
  self->reply_timer = timer_new (self, timeout, on_reply_timeout);
}

static void
await_reply (MilterServerContext *self)
{
  switch (self->command)
    {
    case 'O': self->wait = WAIT_NEGOTIATE; break;
    case 'E': self->wait = WAIT_END_OF_MESSAGE; break;
    default: self->wait = WAIT_REPLY; break;
    }
  restart_reply_timer (self);
  start_write (self);
}

/* ---- negotiated behaviour ----------------------------------------------- */

/* Whether the milter wants @command at all. */
static gboolean
step_is_sent (MilterServerContext *self,
              gchar                command)
{
  guint32 version = milter_option_get_version (self->option);
  MilterStepFlags step = milter_option_get_step (self->option);

  switch (command)
    {
    case 'C': return !(step & MILTER_STEP_NO_CONNECT);
    case 'H': return !(step & MILTER_STEP_NO_HELO);
    case 'M': return !(step & MILTER_STEP_NO_ENVELOPE_FROM);
    case 'R': return !(step & MILTER_STEP_NO_ENVELOPE_RECIPIENT);
    case 'T': return version >= 4 && !(step & MILTER_STEP_NO_DATA);
    case 'L': return !(step & MILTER_STEP_NO_HEADERS);
    case 'N': return !(step & MILTER_STEP_NO_END_OF_HEADER);
    case 'B': return !(step & MILTER_STEP_NO_BODY);
    case 'U': return version >= 3 && !(step & MILTER_STEP_NO_UNKNOWN);
    default: return TRUE;
    }
}

/* Whether the milter replies to @command. */
static gboolean
step_has_reply (MilterServerContext *self,
                gchar                command)
{
  MilterStepFlags step = milter_option_get_step (self->option);

  switch (command)
    {
    case 'C': return !(step & MILTER_STEP_NO_REPLY_CONNECT);
    case 'H': return !(step & MILTER_STEP_NO_REPLY_HELO);
    case 'M': return !(step & MILTER_STEP_NO_REPLY_ENVELOPE_FROM);
    case 'R': return !(step & MILTER_STEP_NO_REPLY_ENVELOPE_RECIPIENT);
    case 'T': return !(step & MILTER_STEP_NO_REPLY_DATA);
    case 'L': return !(step & MILTER_STEP_NO_REPLY_HEADER);
    case 'N': return !(step & MILTER_STEP_NO_REPLY_END_OF_HEADER);
    case 'B': return !(step & MILTER_STEP_NO_REPLY_BODY);
    case 'U': return !(step & MILTER_STEP_NO_REPLY_UNKNOWN);
    case 'E': return TRUE;
    default: return FALSE;
    }
}

static gboolean
leading_space_negotiated (MilterServerContext *self)
{
  return self->option != NULL &&
         (milter_option_get_step (self->option) & MILTER_STEP_HEADER_LEADING_SPACE) != 0;
}

/* ---- macros ------------------------------------------------------------- */

/* Postfix's default macro lists (DEF_MILT_*_MACROS), by macro_commands. */
static const gchar * const connect_macros[] = {
  "j", "{daemon_name}", "{daemon_addr}", "v", "_", NULL
};
static const gchar * const helo_macros[] = {
  "{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}", "{cert_issuer}", NULL
};
static const gchar * const mail_macros[] = {
  "i", "{auth_type}", "{auth_authen}", "{auth_author}",
  "{mail_addr}", "{mail_host}", "{mail_mailer}", NULL
};
static const gchar * const rcpt_macros[] = {
  "i", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}", NULL
};
static const gchar * const queue_id_macros[] = { "i", NULL };
static const gchar * const no_macros[] = { NULL };

static const gchar * const *
default_macro_names (gchar command)
{
  switch (command)
    {
    case 'C': return connect_macros;
    case 'H': return helo_macros;
    case 'M': return mail_macros;
    case 'R': return rcpt_macros;
    case 'T': case 'L': case 'N': case 'B': case 'E': return queue_id_macros;
    default: return no_macros;
    }
}

/* The negotiation stage whose requested list applies to @command: headers
 * carry the end-of-header macros and body chunks the end-of-message ones,
 * as with Postfix. */
static gint
macro_stage (gchar command)
{
  switch (command)
    {
    case 'C': return MILTER_MACRO_STAGE_CONNECT;
    case 'H': return MILTER_MACRO_STAGE_HELO;
    case 'M': return MILTER_MACRO_STAGE_ENVELOPE_FROM;
    case 'R': return MILTER_MACRO_STAGE_ENVELOPE_RECIPIENT;
    case 'T': return MILTER_MACRO_STAGE_DATA;
    case 'L': case 'N': return MILTER_MACRO_STAGE_END_OF_HEADER;
    case 'B': case 'E': return MILTER_MACRO_STAGE_END_OF_MESSAGE;
    default: return -1;
    }
}

/* "<user@example.com>" → "user@example.com". */
static gchar *
strip_brackets (const gchar *address)
{
  gsize length = strlen (address);

  if (length >= 2 && address[0] == '<' && address[length - 1] == '>')
    return g_strndup (address + 1, length - 2);
  return g_strdup (address);
}

static gchar *
address_domain (const gchar *address)
{
  g_autofree gchar *bare = strip_brackets (address);
  const gchar *at = strrchr (bare, '@');

  return at != NULL && at[1] != '\0' ? g_strdup (at + 1) : NULL;
}

static gchar *
client_address_text (MilterServerContext *self)
{
  if (G_IS_INET_SOCKET_ADDRESS (self->client_address))
    return g_inet_address_to_string (
      g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (self->client_address)));
  return NULL;
}

/* The value the context knows for macro @name, or NULL. */
static gchar *
lookup_macro (MilterServerContext *self,
              const gchar         *name)
{
  if (strcmp (name, "j") == 0 || strcmp (name, "{daemon_name}") == 0)
    return g_strdup (g_get_host_name ());
  if (strcmp (name, "v") == 0)
    return g_strdup ("milter-glib " PACKAGE_VERSION);
  if (strcmp (name, "i") == 0)
    return g_strdup (self->queue_id);

  if (self->client_host != NULL)
    {
      if (strcmp (name, "_") == 0)
        {
          g_autofree gchar *address = client_address_text (self);

          if (address == NULL)
            return g_strdup (self->client_host);
          return g_strdup_printf ("%s [%s]", self->client_host, address);
        }
      if (strcmp (name, "{client_name}") == 0 || strcmp (name, "{client_ptr}") == 0)
        return g_strdup (self->client_host);
      if (strcmp (name, "{client_addr}") == 0)
        return client_address_text (self);
      if (strcmp (name, "{client_port}") == 0 && G_IS_INET_SOCKET_ADDRESS (self->client_address))
        return g_strdup_printf ("%u", g_inet_socket_address_get_port (
                                  G_INET_SOCKET_ADDRESS (self->client_address)));
    }

  if (self->from != NULL)
    {
      if (strcmp (name, "{mail_addr}") == 0)
        return strip_brackets (self->from);
      if (strcmp (name, "{mail_host}") == 0)
        return address_domain (self->from);
      if (strcmp (name, "{mail_mailer}") == 0)
        {
          g_autofree gchar *domain = address_domain (self->from);

          return domain != NULL ? g_strdup ("smtp") : NULL;
        }
    }

  if (self->recipient != NULL)
    {
      if (strcmp (name, "{rcpt_addr}") == 0)
        return strip_brackets (self->recipient);
      if (strcmp (name, "{rcpt_host}") == 0)
        return address_domain (self->recipient);
      if (strcmp (name, "{rcpt_mailer}") == 0)
        {
          g_autofree gchar *domain = address_domain (self->recipient);

          return g_strdup (domain != NULL ? "smtp" : "local");
        }
    }
  return NULL;
}

static gint
find_name (GPtrArray   *names,
           const gchar *name)
{
  for (guint i = 0; i < names->len; i++)
    if (strcmp (g_ptr_array_index (names, i), name) == 0)
      return (gint) i;
  return -1;
}

/* Queues the define-macro packet for @command. */
static void
encode_macros (MilterServerContext *self,
               gchar                command)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func (g_free);
  gint index = macro_command_index (command);
  GPtrArray *overrides = index >= 0 ? self->macros[index] : NULL;

  if (self->default_macros)
    {
      const gchar * const *list = default_macro_names (command);
      gint stage = macro_stage (command);

      /* A list the milter asked for replaces the default one; an empty
       * list falls back to the default, as with Postfix. */
      if (stage >= 0 && self->macros_requests != NULL)
        {
          const gchar * const *requested =
            milter_macros_requests_get_symbols (self->macros_requests, stage);

          if (requested != NULL && requested[0] != NULL)
            list = requested;
        }
      for (guint i = 0; list[i] != NULL; i++)
        {
          gchar *value = lookup_macro (self, list[i]);

          if (value == NULL || find_name (names, list[i]) >= 0)
            {
              g_free (value);
              continue;
            }
          g_ptr_array_add (names, g_strdup (list[i]));
          g_ptr_array_add (values, value);
        }
    }

  for (guint i = 0; overrides != NULL && i < overrides->len; i++)
    {
      Macro *macro = g_ptr_array_index (overrides, i);
      gint position = find_name (names, macro->name);

      if (position >= 0)
        {
          g_ptr_array_remove_index (names, (guint) position);
          g_ptr_array_remove_index (values, (guint) position);
          if (macro->value == NULL)
            continue;
          g_ptr_array_insert (names, position, g_strdup (macro->name));
          g_ptr_array_insert (values, position, g_strdup (macro->value));
        }
      else if (macro->value != NULL)
        {
          g_ptr_array_add (names, g_strdup (macro->name));
          g_ptr_array_add (values, g_strdup (macro->value));
        }
    }

  g_ptr_array_add (names, NULL);
  g_ptr_array_add (values, NULL);
  milter_encoder_encode_define_macro (self->out, command,
                                      (const gchar * const *) names->pdata,
                                      (const gchar * const *) values->pdata);
}

static void
reset_message (MilterServerContext *self)
{
  g_clear_pointer (&self->from, g_free);
  g_clear_pointer (&self->recipient, g_free);
  g_clear_pointer (&self->queue_id, g_free);
  self->skip_body = FALSE;
}

static void
reset_connection (MilterServerContext *self)
{
  reset_message (self);
  g_clear_pointer (&self->client_host, g_free);
  g_clear_object (&self->client_address);
}

/* ---- replies ------------------------------------------------------------ */

static void
handle_negotiate_reply (MilterServerContext *self,
                        const MilterPacket  *packet)
{
  guint32 offered_version = milter_option_get_version (self->offer);
  MilterActionFlags offered_action = milter_option_get_action (self->offer);
  MilterStepFlags offered_step = milter_option_get_step (self->offer);
  MilterStepFlags step = packet->negotiate.step;
  guint32 extra;

  if (packet->command != 'O')
    {
      fail_with (self, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
                 "The milter replied %s to negotiation instead of its options (O)",
                 reply_name (packet->command));
      return;
    }
  if (packet->negotiate.version > offered_version)
    {
      fail_with (self, MILTER_SERVER_CONTEXT_ERROR_INVALID_NEGOTIATION,
                 "The milter requested protocol version %u, above the offered version %u",
                 packet->negotiate.version, offered_version);
      return;
    }
  extra = packet->negotiate.action & ~offered_action;
  if (extra != 0)
    {
      g_autofree gchar *names = flags_to_string (MILTER_TYPE_ACTION_FLAGS, extra);

      fail_with (self, MILTER_SERVER_CONTEXT_ERROR_INVALID_NEGOTIATION,
                 "The milter requested actions that were not offered: %s", names);
      return;
    }
  /* Like libmilter, drop the "no DATA" and "no unknown" bits an older MTA
   * would not know. */
  step &= ~(~offered_step & (MILTER_STEP_NO_DATA | MILTER_STEP_NO_UNKNOWN));
  extra = step & ~offered_step;
  if (extra != 0)
    {
      g_autofree gchar *names = flags_to_string (MILTER_TYPE_STEP_FLAGS, extra);

      fail_with (self, MILTER_SERVER_CONTEXT_ERROR_INVALID_NEGOTIATION,
                 "The milter requested steps that were not offered: %s", names);
      return;
    }

  self->option = milter_option_new (packet->negotiate.version, packet->negotiate.action, step);
  self->macros_requests = milter_packet_get_macros_requests (packet);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_OPTION]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MACROS_REQUESTS]);
  complete (self, MILTER_STATUS_CONTINUE);
}

static void send_body_packets (MilterServerContext *self);

/* The ESMTP parameters of a 'e' or '2' packet, or NULL. */
static const gchar *
packet_parameters (const MilterPacket *packet)
{
  return packet->envelope.n_args > 0 ? packet->envelope.args : NULL;
}

/* A header value as milters normally send it: with the leading-space
 * step, values carry their own space after the colon. */
static const gchar *
modification_value (MilterServerContext *self,
                    const gchar         *value)
{
  if (leading_space_negotiated (self) && value[0] == ' ')
    return value + 1;
  return value;
}

static MilterActionFlags
modification_action (gchar reply)
{
  switch (reply)
    {
    case 'h': case 'i': return MILTER_ACTION_ADD_HEADERS;
    case 'm': return MILTER_ACTION_CHANGE_HEADERS;
    case '+': return MILTER_ACTION_ADD_RECIPIENT;
    case '2': return MILTER_ACTION_ADD_RECIPIENT_WITH_PARAMETERS;
    case '-': return MILTER_ACTION_DELETE_RECIPIENT;
    case 'e': return MILTER_ACTION_CHANGE_FROM;
    case 'b': return MILTER_ACTION_CHANGE_BODY;
    case 'q': return MILTER_ACTION_QUARANTINE;
    default: g_assert_not_reached ();
    }
}

static void
handle_modification (MilterServerContext *self,
                     const MilterPacket  *packet)
{
  MilterActionFlags action = modification_action (packet->command);
  MilterModification *modification = NULL;

  if ((milter_option_get_action (self->option) & action) == 0)
    {
      g_autofree gchar *name = flags_to_string (MILTER_TYPE_ACTION_FLAGS, action);

      fail_with (self, MILTER_SERVER_CONTEXT_ERROR_ACTION_NOT_NEGOTIATED,
                 "The milter sent %s without negotiating the %s action",
                 reply_name (packet->command), name);
      return;
    }
  self->modifications_size += packet->size;
  if (self->modifications_size > self->max_modifications_size)
    {
      fail_with (self, MILTER_SERVER_CONTEXT_ERROR_LIMIT_EXCEEDED,
                 "The milter's modifications exceed the limit of %" G_GUINT64_FORMAT " bytes",
                 self->max_modifications_size);
      return;
    }

  switch (packet->command)
    {
    case 'h':
      {
        const gchar *value = modification_value (self, packet->header.value);

        modification = milter_modification_new_add_header (packet->header.name, value);
        g_ptr_array_add (self->modifications, modification);
        g_signal_emit (self, signals[SIGNAL_ADD_HEADER], 0, packet->header.name, value);
        break;
      }
    case 'i':
      {
        const gchar *value = modification_value (self, packet->header.value);

        modification = milter_modification_new_insert_header (packet->header.index,
                                                              packet->header.name, value);
        g_ptr_array_add (self->modifications, modification);
        g_signal_emit (self, signals[SIGNAL_INSERT_HEADER], 0,
                       (guint) packet->header.index, packet->header.name, value);
        break;
      }
    case 'm':
      {
        const gchar *value = modification_value (self, packet->header.value);

        modification = milter_modification_new_change_header (packet->header.name,
                                                              packet->header.index, value);
        g_ptr_array_add (self->modifications, modification);
        if (*value == '\0')
          g_signal_emit (self, signals[SIGNAL_DELETE_HEADER], 0,
                         packet->header.name, (guint) packet->header.index);
        else
          g_signal_emit (self, signals[SIGNAL_CHANGE_HEADER], 0,
                         packet->header.name, (guint) packet->header.index, value);
        break;
      }
    case '+':
    case '2':
      {
        const gchar *address = packet->command == '+' ? packet->string : packet->envelope.address;
        const gchar *parameters = packet->command == '+' ? NULL : packet_parameters (packet);

        modification = milter_modification_new_add_recipient (address, parameters);
        g_ptr_array_add (self->modifications, modification);
        g_signal_emit (self, signals[SIGNAL_ADD_RECIPIENT], 0, address, parameters);
        break;
      }
    case '-':
      modification = milter_modification_new_delete_recipient (packet->string);
      g_ptr_array_add (self->modifications, modification);
      g_signal_emit (self, signals[SIGNAL_DELETE_RECIPIENT], 0, packet->string);
      break;
    case 'e':
      modification = milter_modification_new_change_from (packet->envelope.address,
                                                          packet_parameters (packet));
      g_ptr_array_add (self->modifications, modification);
      g_signal_emit (self, signals[SIGNAL_CHANGE_FROM], 0,
                     packet->envelope.address, packet_parameters (packet));
      break;
    case 'b':
      {
        g_autoptr(GBytes) chunk = milter_decoder_get_payload_bytes (self->decoder);

        if (self->replaced_body == NULL)
          {
            self->replaced_body = g_byte_array_new ();
            self->replaced_body_index = self->modifications->len;
          }
        g_byte_array_append (self->replaced_body, packet->data, (guint) packet->size);
        g_signal_emit (self, signals[SIGNAL_REPLACE_BODY], 0, chunk);
        break;
      }
    case 'q':
      modification = milter_modification_new_quarantine (packet->string);
      g_ptr_array_add (self->modifications, modification);
      g_signal_emit (self, signals[SIGNAL_QUARANTINE], 0, packet->string);
      break;
    default:
      g_assert_not_reached ();
    }
}

/* Puts the replacement body, if any, into the list of modifications. */
static void
finish_modifications (MilterServerContext *self)
{
  g_autoptr(GBytes) body = NULL;

  if (self->replaced_body == NULL)
    return;
  body = g_byte_array_free_to_bytes (g_steal_pointer (&self->replaced_body));
  g_ptr_array_insert (self->modifications, (gint) self->replaced_body_index,
                      milter_modification_new_replace_body (body));
}

static void
handle_verdict (MilterServerContext *self,
                MilterStatus         status)
{
  if (self->command == 'E')
    {
      finish_modifications (self);
      self->skip_body = FALSE;
    }
  else if (self->command == 'B' && status == MILTER_STATUS_CONTINUE &&
           self->body != NULL && self->body_offset < g_bytes_get_size (self->body))
    {
      send_body_packets (self);
      return;
    }
  complete (self, status);
}

static void
handle_reply (MilterServerContext *self,
              const MilterPacket  *packet)
{
  switch (packet->command)
    {
    case 'p':
      restart_reply_timer (self);
      g_signal_emit (self, signals[SIGNAL_PROGRESS], 0);
      return;
    case 'c':
      handle_verdict (self, MILTER_STATUS_CONTINUE);
      return;
    case 'a':
      handle_verdict (self, MILTER_STATUS_ACCEPT);
      return;
    case 'r':
      handle_verdict (self, MILTER_STATUS_REJECT);
      return;
    case 't':
      handle_verdict (self, MILTER_STATUS_TEMPORARY_FAILURE);
      return;
    case 'd':
      handle_verdict (self, MILTER_STATUS_DISCARD);
      return;
    case 'y':
      {
        g_autoptr(GError) error = NULL;

        if (!milter_reply_code_validate (packet->string, &error))
          {
            fail_with (self, MILTER_SERVER_CONTEXT_ERROR_INVALID_REPLY_CODE,
                       "Invalid reply code from the milter in reply to %s: %s",
                       command_name (self->command), error->message);
            return;
          }
        self->reply_text = g_strdup (packet->string);
        g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_REPLY_TEXT]);
        /* Postfix ends the SMTP session after any 421, as after '4'. */
        if (g_str_has_prefix (packet->string, "421"))
          {
            fail_with (self, MILTER_SERVER_CONTEXT_ERROR_SHUTDOWN,
                       "The milter replied 421 to %s: the SMTP session ends",
                       command_name (self->command));
            return;
          }
        handle_verdict (self, packet->string[0] == '4' ?
                        MILTER_STATUS_TEMPORARY_FAILURE : MILTER_STATUS_REJECT);
        return;
      }
    case 's':
      if (self->command != 'B')
        {
          fail_with (self, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
                     "The milter replied skip (s) to %s; skip is only valid in reply to "
                     "a body chunk", command_name (self->command));
          return;
        }
      self->skip_body = TRUE;
      complete (self, MILTER_STATUS_SKIP);
      return;
    case '4':
      fail_with (self, MILTER_SERVER_CONTEXT_ERROR_SHUTDOWN,
                 "The milter replied shutdown (4) to %s: the SMTP session ends with 421",
                 command_name (self->command));
      return;
    case 'h': case 'i': case 'm': case '+': case '2': case '-': case 'e': case 'b': case 'q':
      if (self->wait != WAIT_END_OF_MESSAGE)
        {
          fail_with (self, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
                     "The milter sent %s in reply to %s; modifications are only allowed at "
                     "end-of-message", reply_name (packet->command), command_name (self->command));
          return;
        }
      handle_modification (self, packet);
      return;
    default:
      fail_with (self, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
                 "The milter replied %s to %s", reply_name (packet->command),
                 command_name (self->command));
      return;
    }
}

static void
handle_packet (MilterServerContext *self,
               const MilterPacket  *packet)
{
  switch (self->wait)
    {
    case WAIT_NEGOTIATE:
      handle_negotiate_reply (self, packet);
      return;
    case WAIT_REPLY:
    case WAIT_END_OF_MESSAGE:
      handle_reply (self, packet);
      return;
    case WAIT_NONE:
    case WAIT_CONNECTION:
    case WAIT_FLUSH:
    default:
      fail_with (self, MILTER_SERVER_CONTEXT_ERROR_UNEXPECTED_REPLY,
                 "The milter sent %s while no reply was expected", reply_name (packet->command));
      return;
    }
}

/* ---- reading ------------------------------------------------------------ */

typedef struct
{
  MilterServerContext *self;  /* not a reference: see on_written () */
  guint8 buffer[READ_SIZE];
} ReadData;

static void
process_input (MilterServerContext *self)
{
  while (self->state == STATE_OPEN)
    {
      GError *error = NULL;
      const MilterPacket *packet = milter_decoder_next (self->decoder, &error);

      if (error != NULL)
        {
          fail (self, error);
          return;
        }
      if (packet == NULL)
        break;
      handle_packet (self, packet);
    }
  if (self->state == STATE_OPEN)
    milter_decoder_release_buffer (self->decoder);
}

static void
on_read (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  ReadData *data = user_data;
  MilterServerContext *self = data->self;
  GError *error = NULL;
  gssize n;

  n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_error_free (error);
      g_free (data);
      return;
    }

  g_object_ref (self);
  self->reading = FALSE;
  if (n > 0)
    milter_decoder_feed (self->decoder, data->buffer, (gsize) n);
  /* No read uses the buffer any more: keep it for the next one. */
  if (self->spare_read == NULL)
    self->spare_read = data;
  else
    g_free (data);

  if (n <= 0 && self->task != NULL && self->command == 'Q')
    {
      /* The milter closes once it read the quit: that ends the session
       * as well as our own close would, even before the write completes. */
      g_clear_error (&error);
      close_connection (self, NULL);
      complete (self, MILTER_STATUS_CONTINUE);
    }
  else if (n < 0)
    {
      g_prefix_error (&error, "Cannot read from the milter: ");
      fail (self, error);
    }
  else if (n == 0)
    {
      GString *message = g_string_new ("The milter closed the connection");

      if (milter_decoder_get_pending_size (self->decoder) > 0)
        g_string_append (message, " in the middle of a packet");
      if (self->wait == WAIT_NEGOTIATE || self->wait == WAIT_REPLY ||
          self->wait == WAIT_END_OF_MESSAGE)
        g_string_append_printf (message, " instead of replying to %s",
                                command_name (self->command));
      fail (self, g_error_new_literal (MILTER_SERVER_CONTEXT_ERROR,
                                       MILTER_SERVER_CONTEXT_ERROR_PEER_CLOSED, message->str));
      g_string_free (message, TRUE);
    }
  else
    {
      process_input (self);
      start_read (self);
    }
  g_object_unref (self);
}

/* The context always has one read outstanding while it is open, so that
 * a reply that was not asked for, or the milter closing the connection,
 * is noticed at once. */
static void
start_read (MilterServerContext *self)
{
  ReadData *data;

  if (self->reading || self->state != STATE_OPEN)
    return;
  data = self->spare_read != NULL ? g_steal_pointer (&self->spare_read) : g_new (ReadData, 1);
  data->self = self;
  self->reading = TRUE;
  g_input_stream_read_async (self->input, data->buffer, sizeof data->buffer, G_PRIORITY_DEFAULT,
                             self->io_cancellable, on_read, data);
}

/* ---- connection --------------------------------------------------------- */

static void
close_connection (MilterServerContext *self,
                  const GError        *reason)
{
  if (self->state == STATE_CLOSED)
    return;
  self->state = STATE_CLOSED;
  if (reason != NULL && self->close_reason == NULL)
    self->close_reason = g_error_copy (reason);
  g_cancellable_cancel (self->io_cancellable);
  if (self->connect_cancellable != NULL)
    g_cancellable_cancel (self->connect_cancellable);
  timer_clear (&self->write_timer);
  if (self->stream != NULL)
    g_io_stream_close (self->stream, NULL, NULL);
  g_byte_array_set_size (self->out, 0);
}

static void
open_stream (MilterServerContext *self,
             GIOStream           *stream)
{
  self->stream = g_object_ref (stream);
  self->input = g_io_stream_get_input_stream (stream);
  self->output = g_io_stream_get_output_stream (stream);
  self->state = STATE_OPEN;
  start_read (self);
}

/* ---- GObject ------------------------------------------------------------ */

static void
milter_server_context_dispose (GObject *object)
{
  MilterServerContext *self = MILTER_SERVER_CONTEXT (object);

  close_connection (self, NULL);
  g_clear_pointer (&self->task, g_object_unref);
  timer_clear (&self->reply_timer);
  timer_clear (&self->cancel_source);
  g_clear_object (&self->stream);
  self->input = NULL;
  self->output = NULL;

  G_OBJECT_CLASS (milter_server_context_parent_class)->dispose (object);
}

static void
milter_server_context_finalize (GObject *object)
{
  MilterServerContext *self = MILTER_SERVER_CONTEXT (object);

  g_main_context_unref (self->main_context);
  g_free (self->connection_spec);
  g_clear_object (&self->connection_address);
  for (guint i = 0; i < N_MACRO_COMMANDS; i++)
    g_clear_pointer (&self->macros[i], g_ptr_array_unref);
  g_clear_error (&self->close_reason);
  g_clear_object (&self->io_cancellable);
  g_clear_object (&self->connect_cancellable);
  milter_decoder_free (self->decoder);
  g_free (self->spare_read);
  g_byte_array_unref (self->out);
  g_clear_pointer (&self->offer, milter_option_free);
  g_clear_pointer (&self->option, milter_option_free);
  g_clear_pointer (&self->macros_requests, milter_macros_requests_free);
  g_clear_pointer (&self->body, g_bytes_unref);
  reset_connection (self);
  g_free (self->reply_text);
  g_ptr_array_unref (self->modifications);
  if (self->replaced_body != NULL)
    g_byte_array_unref (self->replaced_body);

  G_OBJECT_CLASS (milter_server_context_parent_class)->finalize (object);
}

static void
milter_server_context_get_property (GObject    *object,
                                    guint       prop_id,
                                    GValue     *value,
                                    GParamSpec *pspec)
{
  MilterServerContext *self = MILTER_SERVER_CONTEXT (object);

  switch (prop_id)
    {
    case PROP_CONNECTION_SPEC:
      g_value_set_string (value, self->connection_spec);
      break;
    case PROP_OPTION:
      g_value_set_boxed (value, self->option);
      break;
    case PROP_MACROS_REQUESTS:
      g_value_set_boxed (value, self->macros_requests);
      break;
    case PROP_REPLY_TEXT:
      g_value_set_string (value, self->reply_text);
      break;
    case PROP_CONNECT_TIMEOUT:
      g_value_set_double (value, self->connect_timeout);
      break;
    case PROP_READ_TIMEOUT:
      g_value_set_double (value, self->read_timeout);
      break;
    case PROP_WRITE_TIMEOUT:
      g_value_set_double (value, self->write_timeout);
      break;
    case PROP_END_OF_MESSAGE_TIMEOUT:
      g_value_set_double (value, self->end_of_message_timeout);
      break;
    case PROP_MAX_PACKET_LENGTH:
      g_value_set_uint (value, self->max_packet_length);
      break;
    case PROP_MAX_MODIFICATIONS_SIZE:
      g_value_set_uint64 (value, self->max_modifications_size);
      break;
    case PROP_DEFAULT_MACROS:
      g_value_set_boolean (value, self->default_macros);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
milter_server_context_set_property (GObject      *object,
                                    guint         prop_id,
                                    const GValue *value,
                                    GParamSpec   *pspec)
{
  MilterServerContext *self = MILTER_SERVER_CONTEXT (object);

  switch (prop_id)
    {
    case PROP_CONNECT_TIMEOUT:
      milter_server_context_set_connect_timeout (self, g_value_get_double (value));
      break;
    case PROP_READ_TIMEOUT:
      milter_server_context_set_read_timeout (self, g_value_get_double (value));
      break;
    case PROP_WRITE_TIMEOUT:
      milter_server_context_set_write_timeout (self, g_value_get_double (value));
      break;
    case PROP_END_OF_MESSAGE_TIMEOUT:
      milter_server_context_set_end_of_message_timeout (self, g_value_get_double (value));
      break;
    case PROP_MAX_PACKET_LENGTH:
      milter_server_context_set_max_packet_length (self, g_value_get_uint (value));
      break;
    case PROP_MAX_MODIFICATIONS_SIZE:
      milter_server_context_set_max_modifications_size (self, g_value_get_uint64 (value));
      break;
    case PROP_DEFAULT_MACROS:
      milter_server_context_set_default_macros (self, g_value_get_boolean (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
milter_server_context_class_init (MilterServerContextClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags rw = G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;
  GParamFlags ro = G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->dispose = milter_server_context_dispose;
  object_class->finalize = milter_server_context_finalize;
  object_class->get_property = milter_server_context_get_property;
  object_class->set_property = milter_server_context_set_property;

  /**
   * MilterServerContext:connection-spec:
   *
   * The spec of the milter's socket, such as `unix:/run/milter.sock` or
   * `inet:10025@127.0.0.1`, set with
   * milter_server_context_set_connection_spec().
   *
   * Since: 1.0
   */
  properties[PROP_CONNECTION_SPEC] =
    g_param_spec_string ("connection-spec", "Connection spec", "The spec of the milter's socket",
                         NULL, ro);

  /**
   * MilterServerContext:option:
   *
   * What the milter negotiated: its protocol version, the actions it may
   * take and the steps it changed. %NULL before negotiation.
   *
   * Since: 1.0
   */
  properties[PROP_OPTION] =
    g_param_spec_boxed ("option", "Option", "What the milter negotiated",
                        MILTER_TYPE_OPTION, ro);

  /**
   * MilterServerContext:macros-requests:
   *
   * The macro lists the milter asked for in negotiation, or %NULL if it
   * asked for none.
   *
   * Since: 1.0
   */
  properties[PROP_MACROS_REQUESTS] =
    g_param_spec_boxed ("macros-requests", "Macros requests",
                        "The macro lists the milter asked for",
                        MILTER_TYPE_MACROS_REQUESTS, ro);

  /**
   * MilterServerContext:reply-text:
   *
   * The SMTP reply of the milter's last verdict, if it gave one with a
   * reply code (`y`), e.g. `550 5.7.1 Rejected`; %NULL otherwise.
   *
   * Since: 1.0
   */
  properties[PROP_REPLY_TEXT] =
    g_param_spec_string ("reply-text", "Reply text", "The SMTP reply of the last verdict",
                         NULL, ro);

  /**
   * MilterServerContext:connect-timeout:
   *
   * Seconds to wait for the connection to the milter, as Postfix's
   * `milter_connect_timeout`. 0 waits forever.
   *
   * Since: 1.0
   */
  properties[PROP_CONNECT_TIMEOUT] =
    g_param_spec_double ("connect-timeout", "Connect timeout",
                         "Seconds to wait for the connection to the milter",
                         0, G_MAXDOUBLE, DEFAULT_CONNECT_TIMEOUT, rw);

  /**
   * MilterServerContext:read-timeout:
   *
   * Seconds to wait for the reply to negotiation and to every command but
   * end-of-message, as Postfix's `milter_command_timeout`. A progress
   * packet restarts the wait. 0 waits forever.
   *
   * Since: 1.0
   */
  properties[PROP_READ_TIMEOUT] =
    g_param_spec_double ("read-timeout", "Read timeout",
                         "Seconds to wait for a reply to a command",
                         0, G_MAXDOUBLE, DEFAULT_READ_TIMEOUT, rw);

  /**
   * MilterServerContext:write-timeout:
   *
   * Seconds one write to the milter may take. 0 waits forever.
   *
   * Since: 1.0
   */
  properties[PROP_WRITE_TIMEOUT] =
    g_param_spec_double ("write-timeout", "Write timeout",
                         "Seconds one write to the milter may take",
                         0, G_MAXDOUBLE, DEFAULT_WRITE_TIMEOUT, rw);

  /**
   * MilterServerContext:end-of-message-timeout:
   *
   * Seconds to wait for the final reply to end-of-message (between the
   * modification and progress packets), as Postfix's
   * `milter_content_timeout`. 0 waits forever.
   *
   * Since: 1.0
   */
  properties[PROP_END_OF_MESSAGE_TIMEOUT] =
    g_param_spec_double ("end-of-message-timeout", "End-of-message timeout",
                         "Seconds to wait for the reply to end-of-message",
                         0, G_MAXDOUBLE, DEFAULT_END_OF_MESSAGE_TIMEOUT, rw);

  /**
   * MilterServerContext:max-packet-length:
   *
   * The longest packet accepted from the milter (its length field,
   * which counts the reply letter and the data). At least 65536.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_PACKET_LENGTH] =
    g_param_spec_uint ("max-packet-length", "Maximum packet length",
                       "The longest packet accepted from the milter",
                       MIN_PACKET_LENGTH, G_MAXUINT32, MILTER_DECODER_DEFAULT_MAX_PACKET_LENGTH,
                       rw);

  /**
   * MilterServerContext:max-modifications-size:
   *
   * The most bytes of modification requests (a replaced body included)
   * accepted for one end-of-message.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_MODIFICATIONS_SIZE] =
    g_param_spec_uint64 ("max-modifications-size", "Maximum modifications size",
                         "The most bytes of modification requests per message",
                         0, G_MAXUINT64, DEFAULT_MAX_MODIFICATIONS_SIZE, rw);

  /**
   * MilterServerContext:default-macros:
   *
   * Whether the macros Postfix would send (or those the milter asked for)
   * are sent with the values the context knows. Without them, only the
   * macros set with milter_server_context_set_macro() are sent.
   *
   * Since: 1.0
   */
  properties[PROP_DEFAULT_MACROS] =
    g_param_spec_boolean ("default-macros", "Default macros",
                          "Whether to send the macros Postfix would send",
                          TRUE, rw);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * MilterServerContext::progress:
   * @context: the context
   *
   * The milter sent a progress packet: it is still working on its reply.
   *
   * Since: 1.0
   */
  signals[SIGNAL_PROGRESS] =
    g_signal_new ("progress", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * MilterServerContext::add-header:
   * @context: the context
   * @name: (type filename): the header name
   * @value: (type filename): the header value
   *
   * The milter asked to append a header.
   *
   * Since: 1.0
   */
  signals[SIGNAL_ADD_HEADER] =
    g_signal_new ("add-header", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 2,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * MilterServerContext::insert-header:
   * @context: the context
   * @index: the position, from 0 at the top; past the end appends
   * @name: (type filename): the header name
   * @value: (type filename): the header value
   *
   * The milter asked to insert a header.
   *
   * Since: 1.0
   */
  signals[SIGNAL_INSERT_HEADER] =
    g_signal_new ("insert-header", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 3,
                  G_TYPE_UINT,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * MilterServerContext::change-header:
   * @context: the context
   * @name: (type filename): the header name
   * @index: which header of that name, from 1 (0 counts as 1)
   * @value: (type filename): the new value
   *
   * The milter asked to change a header.
   *
   * Since: 1.0
   */
  signals[SIGNAL_CHANGE_HEADER] =
    g_signal_new ("change-header", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 3,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                  G_TYPE_UINT,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * MilterServerContext::delete-header:
   * @context: the context
   * @name: (type filename): the header name
   * @index: which header of that name, from 1 (0 counts as 1)
   *
   * The milter asked to delete a header (a change to an empty value).
   *
   * Since: 1.0
   */
  signals[SIGNAL_DELETE_HEADER] =
    g_signal_new ("delete-header", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 2,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                  G_TYPE_UINT);

  /**
   * MilterServerContext::change-from:
   * @context: the context
   * @address: (type filename): the new envelope sender
   * @parameters: (type filename) (nullable): its ESMTP parameters, space-separated
   *
   * The milter asked to change the envelope sender.
   *
   * Since: 1.0
   */
  signals[SIGNAL_CHANGE_FROM] =
    g_signal_new ("change-from", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 2,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * MilterServerContext::add-recipient:
   * @context: the context
   * @address: (type filename): the new recipient
   * @parameters: (type filename) (nullable): its ESMTP parameters, space-separated
   *
   * The milter asked to add a recipient.
   *
   * Since: 1.0
   */
  signals[SIGNAL_ADD_RECIPIENT] =
    g_signal_new ("add-recipient", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 2,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * MilterServerContext::delete-recipient:
   * @context: the context
   * @address: (type filename): the recipient, in the form the MTA sent it
   *
   * The milter asked to delete a recipient.
   *
   * Since: 1.0
   */
  signals[SIGNAL_DELETE_RECIPIENT] =
    g_signal_new ("delete-recipient", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * MilterServerContext::replace-body:
   * @context: the context
   * @chunk: the next part of the new body
   *
   * The milter sent part of a replacement body. The parts of one
   * end-of-message, concatenated, replace the body.
   *
   * Since: 1.0
   */
  signals[SIGNAL_REPLACE_BODY] =
    g_signal_new ("replace-body", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1,
                  G_TYPE_BYTES);

  /**
   * MilterServerContext::quarantine:
   * @context: the context
   * @reason: (type filename): why the message should be quarantined
   *
   * The milter asked to quarantine the message.
   *
   * Since: 1.0
   */
  signals[SIGNAL_QUARANTINE] =
    g_signal_new ("quarantine", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);
}

static void
milter_server_context_init (MilterServerContext *self)
{
  self->main_context = g_main_context_ref_thread_default ();
  self->connect_timeout = DEFAULT_CONNECT_TIMEOUT;
  self->read_timeout = DEFAULT_READ_TIMEOUT;
  self->write_timeout = DEFAULT_WRITE_TIMEOUT;
  self->end_of_message_timeout = DEFAULT_END_OF_MESSAGE_TIMEOUT;
  self->max_packet_length = MILTER_DECODER_DEFAULT_MAX_PACKET_LENGTH;
  self->max_modifications_size = DEFAULT_MAX_MODIFICATIONS_SIZE;
  self->default_macros = TRUE;
  self->state = STATE_NEW;
  self->io_cancellable = g_cancellable_new ();
  self->decoder = milter_decoder_new (MILTER_DECODER_REPLIES);
  milter_decoder_set_max_packet_length (self->decoder, self->max_packet_length);
  self->out = g_byte_array_new ();
  self->modifications = g_ptr_array_new_with_free_func ((GDestroyNotify) milter_modification_unref);
}

/**
 * milter_server_context_new:
 *
 * Creates a context. It works on the thread-default #GMainContext of the
 * calling thread.
 *
 * Returns: (transfer full): a new #MilterServerContext
 *
 * Since: 1.0
 */
MilterServerContext *
milter_server_context_new (void)
{
  return g_object_new (MILTER_TYPE_SERVER_CONTEXT, NULL);
}

/* ---- public API: connection --------------------------------------------- */

/**
 * milter_server_context_set_connection_spec:
 * @context: a #MilterServerContext
 * @spec: the milter's socket, e.g. `unix:/run/milter.sock`,
 *   `inet:10025@127.0.0.1` or `inet6:10025@[::1]`
 * @error: return location for a #GError
 *
 * Sets where milter_server_context_establish_connection_async() connects
 * to. A host name in @spec is resolved now, synchronously.
 *
 * Returns: %TRUE on success, %FALSE with @error set (in the
 *   %MILTER_CONNECTION_SPEC_ERROR domain) if @spec is invalid
 *
 * Since: 1.0
 */
gboolean
milter_server_context_set_connection_spec (MilterServerContext  *context,
                                           const gchar          *spec,
                                           GError              **error)
{
  GSocketAddress *address;

  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), FALSE);
  g_return_val_if_fail (spec != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  address = milter_connection_spec_parse (spec, error);
  if (address == NULL)
    return FALSE;
  g_clear_object (&context->connection_address);
  context->connection_address = address;
  g_free (context->connection_spec);
  context->connection_spec = g_strdup (spec);
  g_object_notify_by_pspec (G_OBJECT (context), properties[PROP_CONNECTION_SPEC]);
  return TRUE;
}

/**
 * milter_server_context_get_connection_spec:
 * @context: a #MilterServerContext
 *
 * Gets the spec set with milter_server_context_set_connection_spec().
 *
 * Returns: (nullable): the connection spec, or %NULL if none was set
 *
 * Since: 1.0
 */
const gchar *
milter_server_context_get_connection_spec (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), NULL);

  return context->connection_spec;
}

static gboolean
on_connect_timeout (gpointer user_data)
{
  MilterServerContext *self = user_data;

  g_clear_pointer (&self->reply_timer, g_source_unref);
  fail_with (self, MILTER_SERVER_CONTEXT_ERROR_TIMEOUT,
             "Timed out after %g s connecting to the milter at %s",
             self->connect_timeout, self->connection_spec);
  return G_SOURCE_REMOVE;
}

static void
on_connected (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  MilterServerContext *self = user_data;
  GError *error = NULL;
  GSocketConnection *connection;

  connection = g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);
  if (self->state != STATE_CONNECTING || self->wait != WAIT_CONNECTION)
    {
      /* Timed out, cancelled or closed meanwhile: already reported. */
      if (connection != NULL)
        g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
    }
  else if (connection == NULL)
    {
      g_prefix_error (&error, "Cannot connect to the milter at %s: ", self->connection_spec);
      fail (self, g_steal_pointer (&error));
    }
  else
    {
      g_clear_object (&self->connect_cancellable);
      open_stream (self, G_IO_STREAM (connection));
      complete (self, MILTER_STATUS_CONTINUE);
    }
  g_clear_error (&error);
  g_clear_object (&connection);
  g_object_unref (self);
}

/**
 * milter_server_context_establish_connection_async:
 * @context: a #MilterServerContext
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the connection is made or failed
 * @user_data: (closure): data for @callback
 *
 * Connects to the milter at the spec set with
 * milter_server_context_set_connection_spec(), within
 * #MilterServerContext:connect-timeout.
 *
 * Since: 1.0
 */
void
milter_server_context_establish_connection_async (MilterServerContext *context,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data)
{
  GTask *task;
  g_autoptr(GSocketClient) client = NULL;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (context, cancellable, callback, user_data);
  g_task_set_source_tag (task, milter_server_context_establish_connection_async);

  if (context->task != NULL || context->state != STATE_NEW || context->connection_address == NULL)
    {
      if (context->state == STATE_CLOSED && context->task == NULL)
        {
          g_task_return_error (task, closed_error (context));
          g_object_unref (task);
        }
      else
        {
          return_error (task, MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE,
                        context->connection_address == NULL ?
                        "No connection spec was set" :
                        "The context is already connected or connecting");
        }
      return;
    }
  if (g_task_return_error_if_cancelled (task))
    {
      g_object_unref (task);
      return;
    }

  /* begin () needs an open connection; set up the operation by hand. */
  context->task = task;
  context->command = 0;
  context->returns_status = FALSE;
  context->wait = WAIT_CONNECTION;
  context->state = STATE_CONNECTING;
  if (cancellable != NULL)
    {
      context->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (context->cancel_source, (GSourceFunc) (void (*) (void)) on_cancelled,
                             context, NULL);
      g_source_attach (context->cancel_source, context->main_context);
    }
  context->reply_timer = timer_new (context, context->connect_timeout, on_connect_timeout);
  context->connect_cancellable = g_cancellable_new ();
  client = g_socket_client_new ();
  g_socket_client_connect_async (client, G_SOCKET_CONNECTABLE (context->connection_address),
                                 context->connect_cancellable, on_connected,
                                 g_object_ref (context));
}

/**
 * milter_server_context_establish_connection_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_establish_connection_async().
 *
 * Returns: %TRUE if the context is connected, %FALSE with @error set
 *
 * Since: 1.0
 */
gboolean
milter_server_context_establish_connection_finish (MilterServerContext  *context,
                                                   GAsyncResult         *result,
                                                   GError              **error)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, context), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result,
                                                  milter_server_context_establish_connection_async),
                        FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * milter_server_context_set_stream:
 * @context: a #MilterServerContext
 * @stream: a stream connected to a milter
 *
 * Uses @stream, which is already connected to a milter (for example one
 * end of a socket pair, in tests), instead of a connection spec. The
 * context closes @stream when it closes. Only possible once, before any
 * connection.
 *
 * Since: 1.0
 */
void
milter_server_context_set_stream (MilterServerContext *context,
                                  GIOStream           *stream)
{
  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));
  g_return_if_fail (G_IS_IO_STREAM (stream));
  g_return_if_fail (context->state == STATE_NEW && context->task == NULL);

  open_stream (context, stream);
}

/**
 * milter_server_context_close:
 * @context: a #MilterServerContext
 *
 * Closes the connection without a quit command, as an MTA that gives up
 * on a milter does. A call in progress fails with
 * %MILTER_SERVER_CONTEXT_ERROR_CLOSED, and so does every later one.
 * Closing a closed context does nothing.
 *
 * Since: 1.0
 */
void
milter_server_context_close (MilterServerContext *context)
{
  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));

  if (context->state == STATE_CLOSED)
    return;
  if (context->task != NULL)
    {
      fail_with (context, MILTER_SERVER_CONTEXT_ERROR_CLOSED,
                 "The connection to the milter was closed during %s",
                 command_name (context->command));
      /* Closed on purpose: later calls get the plain "closed" error. */
      g_clear_error (&context->close_reason);
      return;
    }
  close_connection (context, NULL);
}

/**
 * milter_server_context_is_closed:
 * @context: a #MilterServerContext
 *
 * Checks whether the context was closed: after a quit,
 * milter_server_context_close(), or an error.
 *
 * Returns: %TRUE if the context is closed
 *
 * Since: 1.0
 */
gboolean
milter_server_context_is_closed (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), TRUE);

  return context->state == STATE_CLOSED;
}

/* ---- public API: negotiation -------------------------------------------- */

/**
 * milter_server_context_negotiate_async:
 * @context: a #MilterServerContext
 * @offer: (nullable): what the MTA offers: protocol version (2, 3, 4 or
 *   6), actions and steps; %NULL offers what Postfix 3 offers
 *   (milter_option_new_postfix())
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the milter has replied
 * @user_data: (closure): data for @callback
 *
 * Sends the negotiation and checks the milter's reply as Postfix and
 * Sendmail do: the version must be at least 2 and at most the offered
 * one, and the actions and steps must be among those offered, except
 * that "no DATA" and "no unknown" steps are dropped silently when not
 * offered, as libmilter does. The macro lists the milter appends are
 * parsed too. Afterwards milter_server_context_get_option() and
 * milter_server_context_get_macros_requests() tell what was negotiated.
 *
 * Since: 1.0
 */
void
milter_server_context_negotiate_async (MilterServerContext *context,
                                       MilterOption        *offer,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (context, cancellable, callback, user_data);
  g_task_set_source_tag (task, milter_server_context_negotiate_async);
  if (context->option != NULL && context->task == NULL && context->state == STATE_OPEN)
    {
      return_error (task, MILTER_SERVER_CONTEXT_ERROR_INVALID_STATE,
                    "The milter was already negotiated with");
      return;
    }
  if (!begin (context, task, 'O', NEEDS_OPEN, FALSE))
    return;

  g_clear_pointer (&context->offer, milter_option_free);
  context->offer = offer != NULL ? milter_option_copy (offer) : milter_option_new_postfix ();
  milter_encoder_encode_negotiate (context->out, context->offer);
  await_reply (context);
}

/**
 * milter_server_context_negotiate_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_negotiate_async().
 *
 * Returns: %TRUE if the milter's reply was valid, %FALSE with @error set
 *
 * Since: 1.0
 */
gboolean
milter_server_context_negotiate_finish (MilterServerContext  *context,
                                        GAsyncResult         *result,
                                        GError              **error)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, context), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, milter_server_context_negotiate_async),
                        FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * milter_server_context_get_option:
 * @context: a #MilterServerContext
 *
 * Gets what the milter negotiated: its protocol version, actions and
 * steps (without the "no DATA" and "no unknown" steps dropped because
 * they were not offered).
 *
 * Returns: (transfer none) (nullable): the negotiated option, or %NULL
 *   before negotiation
 *
 * Since: 1.0
 */
MilterOption *
milter_server_context_get_option (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), NULL);

  return context->option;
}

/**
 * milter_server_context_get_macros_requests:
 * @context: a #MilterServerContext
 *
 * Gets the macro lists the milter asked for in negotiation.
 *
 * Returns: (transfer none) (nullable): the requests, or %NULL if the
 *   milter sent none
 *
 * Since: 1.0
 */
MilterMacrosRequests *
milter_server_context_get_macros_requests (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), NULL);

  return context->macros_requests;
}

/* ---- public API: commands ----------------------------------------------- */

static GTask *
new_task (MilterServerContext *context,
          GCancellable        *cancellable,
          GAsyncReadyCallback  callback,
          gpointer             user_data,
          gpointer             source_tag)
{
  GTask *task = g_task_new (context, cancellable, callback, user_data);

  g_task_set_source_tag (task, source_tag);
  return task;
}

/* After a command's macros (and the command, if @sent) were queued. */
static void
command_queued (MilterServerContext *self,
                gboolean             sent)
{
  if (sent && step_has_reply (self, self->command))
    await_reply (self);
  else
    await_flush (self, MILTER_STATUS_CONTINUE);
}

static MilterStatus
finish_status (MilterServerContext  *context,
               GAsyncResult         *result,
               gpointer              source_tag,
               GError              **error)
{
  GError *task_error = NULL;
  gssize status;

  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), MILTER_STATUS_DEFAULT);
  g_return_val_if_fail (g_task_is_valid (result, context), MILTER_STATUS_DEFAULT);
  g_return_val_if_fail (g_async_result_is_tagged (result, source_tag), MILTER_STATUS_DEFAULT);

  status = g_task_propagate_int (G_TASK (result), &task_error);
  if (task_error != NULL)
    {
      g_propagate_error (error, task_error);
      return MILTER_STATUS_DEFAULT;
    }
  return (MilterStatus) status;
}

static gboolean
finish_boolean (MilterServerContext  *context,
                GAsyncResult         *result,
                gpointer              source_tag,
                GError              **error)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, context), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, source_tag), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * milter_server_context_connect_async:
 * @context: a #MilterServerContext
 * @host: (type filename): the SMTP client's host name, or `[address]` if it has none
 * @address: (nullable): the SMTP client's address: an IPv4, IPv6 or Unix
 *   socket address; %NULL sends an unknown address (family `U`)
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the milter's verdict
 * @user_data: (closure): data for @callback
 *
 * Tells the milter about a new SMTP connection (SMFIC_CONNECT), after the
 * connect-stage macros.
 *
 * Since: 1.0
 */
void
milter_server_context_connect_async (MilterServerContext *context,
                                     const gchar         *host,
                                     GSocketAddress      *address,
                                     GCancellable        *cancellable,
                                     GAsyncReadyCallback  callback,
                                     gpointer             user_data)
{
  GTask *task;
  gboolean sent;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));
  g_return_if_fail (host != NULL);
  g_return_if_fail (address == NULL || G_IS_SOCKET_ADDRESS (address));

  task = new_task (context, cancellable, callback, user_data, milter_server_context_connect_async);
  if (!begin (context, task, 'C', NEEDS_NEGOTIATED, TRUE))
    return;

  reset_connection (context);
  context->client_host = g_strdup (host);
  context->client_address = address != NULL ? g_object_ref (address) : NULL;
  encode_macros (context, 'C');
  sent = step_is_sent (context, 'C');
  if (sent)
    milter_encoder_encode_connect (context->out, host, address);
  command_queued (context, sent);
}

/**
 * milter_server_context_connect_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_connect_async().
 *
 * Returns: the milter's verdict, or %MILTER_STATUS_DEFAULT with @error set
 *
 * Since: 1.0
 */
MilterStatus
milter_server_context_connect_finish (MilterServerContext  *context,
                                      GAsyncResult         *result,
                                      GError              **error)
{
  return finish_status (context, result, milter_server_context_connect_async, error);
}

/**
 * milter_server_context_helo_async:
 * @context: a #MilterServerContext
 * @fqdn: (type filename): the name the SMTP client gave in HELO or EHLO
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the milter's verdict
 * @user_data: (closure): data for @callback
 *
 * Sends HELO (SMFIC_HELO), after the HELO-stage macros.
 *
 * Since: 1.0
 */
void
milter_server_context_helo_async (MilterServerContext *context,
                                  const gchar         *fqdn,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  GTask *task;
  gboolean sent;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));
  g_return_if_fail (fqdn != NULL);

  task = new_task (context, cancellable, callback, user_data, milter_server_context_helo_async);
  if (!begin (context, task, 'H', NEEDS_NEGOTIATED, TRUE))
    return;

  encode_macros (context, 'H');
  sent = step_is_sent (context, 'H');
  if (sent)
    milter_encoder_encode_string (context->out, 'H', fqdn);
  command_queued (context, sent);
}

/**
 * milter_server_context_helo_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_helo_async().
 *
 * Returns: the milter's verdict, or %MILTER_STATUS_DEFAULT with @error set
 *
 * Since: 1.0
 */
MilterStatus
milter_server_context_helo_finish (MilterServerContext  *context,
                                   GAsyncResult         *result,
                                   GError              **error)
{
  return finish_status (context, result, milter_server_context_helo_async, error);
}

/**
 * milter_server_context_envelope_from_async:
 * @context: a #MilterServerContext
 * @from: (type filename): the envelope sender as in the SMTP command, in angle brackets:
 *   `<user@example.com>`, or `<>` for the null sender
 * @parameters: (nullable) (array zero-terminated=1) (element-type filename): ESMTP parameters
 *   such as `SIZE=1024`, one per string
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the milter's verdict
 * @user_data: (closure): data for @callback
 *
 * Starts a message with MAIL FROM (SMFIC_MAIL), after the envelope-from
 * macros.
 *
 * Since: 1.0
 */
void
milter_server_context_envelope_from_async (MilterServerContext *context,
                                           const gchar         *from,
                                           const gchar * const *parameters,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data)
{
  GTask *task;
  gboolean sent;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));
  g_return_if_fail (from != NULL);

  task = new_task (context, cancellable, callback, user_data,
                   milter_server_context_envelope_from_async);
  if (!begin (context, task, 'M', NEEDS_NEGOTIATED, TRUE))
    return;

  reset_message (context);
  context->from = g_strdup (from);
  encode_macros (context, 'M');
  sent = step_is_sent (context, 'M');
  if (sent)
    milter_encoder_encode_envelope (context->out, 'M', from, parameters);
  command_queued (context, sent);
}

/**
 * milter_server_context_envelope_from_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_envelope_from_async().
 *
 * Returns: the milter's verdict, or %MILTER_STATUS_DEFAULT with @error set
 *
 * Since: 1.0
 */
MilterStatus
milter_server_context_envelope_from_finish (MilterServerContext  *context,
                                            GAsyncResult         *result,
                                            GError              **error)
{
  return finish_status (context, result, milter_server_context_envelope_from_async, error);
}

/**
 * milter_server_context_envelope_recipient_async:
 * @context: a #MilterServerContext
 * @recipient: (type filename): the recipient as in the SMTP command, in angle brackets:
 *   `<user@example.com>`
 * @parameters: (nullable) (array zero-terminated=1) (element-type filename): ESMTP parameters
 *   such as `NOTIFY=NEVER`, one per string
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the milter's verdict
 * @user_data: (closure): data for @callback
 *
 * Sends one RCPT TO (SMFIC_RCPT), after the envelope-recipient macros. At
 * the first recipient of a message the context makes up a queue ID, sent
 * as macro `i` from then on.
 *
 * Since: 1.0
 */
void
milter_server_context_envelope_recipient_async (MilterServerContext *context,
                                                const gchar         *recipient,
                                                const gchar * const *parameters,
                                                GCancellable        *cancellable,
                                                GAsyncReadyCallback  callback,
                                                gpointer             user_data)
{
  GTask *task;
  gboolean sent;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));
  g_return_if_fail (recipient != NULL);

  task = new_task (context, cancellable, callback, user_data,
                   milter_server_context_envelope_recipient_async);
  if (!begin (context, task, 'R', NEEDS_NEGOTIATED, TRUE))
    return;

  /* Postfix knows the queue ID once the first recipient is accepted. */
  if (context->queue_id == NULL)
    context->queue_id = g_strdup_printf ("%05X%05X", g_random_int_range (0, 0x100000),
                                         g_random_int_range (0, 0x100000));
  g_free (context->recipient);
  context->recipient = g_strdup (recipient);
  encode_macros (context, 'R');
  sent = step_is_sent (context, 'R');
  if (sent)
    milter_encoder_encode_envelope (context->out, 'R', recipient, parameters);
  command_queued (context, sent);
}

/**
 * milter_server_context_envelope_recipient_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_envelope_recipient_async().
 *
 * Returns: the milter's verdict on this recipient, or
 *   %MILTER_STATUS_DEFAULT with @error set
 *
 * Since: 1.0
 */
MilterStatus
milter_server_context_envelope_recipient_finish (MilterServerContext  *context,
                                                 GAsyncResult         *result,
                                                 GError              **error)
{
  return finish_status (context, result, milter_server_context_envelope_recipient_async, error);
}

/* The commands without arguments: DATA and end-of-header. */
static void
simple_command (MilterServerContext *context,
                GTask               *task,
                gchar                command)
{
  gboolean sent;

  if (!begin (context, task, command, NEEDS_NEGOTIATED, TRUE))
    return;
  encode_macros (context, command);
  sent = step_is_sent (context, command);
  if (sent)
    milter_encoder_encode_empty (context->out, command);
  command_queued (context, sent);
}

/**
 * milter_server_context_data_async:
 * @context: a #MilterServerContext
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the milter's verdict
 * @user_data: (closure): data for @callback
 *
 * Sends DATA (SMFIC_DATA), after the DATA-stage macros. Milters that
 * negotiated a protocol version below 4 do not get it.
 *
 * Since: 1.0
 */
void
milter_server_context_data_async (MilterServerContext *context,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));

  simple_command (context,
                  new_task (context, cancellable, callback, user_data,
                            milter_server_context_data_async),
                  'T');
}

/**
 * milter_server_context_data_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_data_async().
 *
 * Returns: the milter's verdict, or %MILTER_STATUS_DEFAULT with @error set
 *
 * Since: 1.0
 */
MilterStatus
milter_server_context_data_finish (MilterServerContext  *context,
                                   GAsyncResult         *result,
                                   GError              **error)
{
  return finish_status (context, result, milter_server_context_data_async, error);
}

/**
 * milter_server_context_header_async:
 * @context: a #MilterServerContext
 * @name: (type filename): the header name
 * @value: (type filename): the header value as milters normally get it: without the space
 *   after the colon, folded lines joined by "\n". If the milter negotiated
 *   %MILTER_STEP_HEADER_LEADING_SPACE, the context sends it with that
 *   space, as MTAs do.
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the milter's verdict
 * @user_data: (closure): data for @callback
 *
 * Sends one header (SMFIC_HEADER), after the end-of-header macros (as
 * Postfix does).
 *
 * Since: 1.0
 */
void
milter_server_context_header_async (MilterServerContext *context,
                                    const gchar         *name,
                                    const gchar         *value,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  GTask *task;
  gboolean sent;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));
  g_return_if_fail (name != NULL);
  g_return_if_fail (value != NULL);

  task = new_task (context, cancellable, callback, user_data, milter_server_context_header_async);
  if (!begin (context, task, 'L', NEEDS_NEGOTIATED, TRUE))
    return;

  encode_macros (context, 'L');
  sent = step_is_sent (context, 'L');
  if (sent)
    {
      g_autofree gchar *spaced = NULL;

      if (leading_space_negotiated (context))
        value = spaced = g_strconcat (" ", value, NULL);
      milter_encoder_encode_header (context->out, 'L', name, value);
    }
  command_queued (context, sent);
}

/**
 * milter_server_context_header_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_header_async().
 *
 * Returns: the milter's verdict, or %MILTER_STATUS_DEFAULT with @error set
 *
 * Since: 1.0
 */
MilterStatus
milter_server_context_header_finish (MilterServerContext  *context,
                                     GAsyncResult         *result,
                                     GError              **error)
{
  return finish_status (context, result, milter_server_context_header_async, error);
}

/**
 * milter_server_context_end_of_header_async:
 * @context: a #MilterServerContext
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the milter's verdict
 * @user_data: (closure): data for @callback
 *
 * Tells the milter that all headers were sent (SMFIC_EOH), after the
 * end-of-header macros.
 *
 * Since: 1.0
 */
void
milter_server_context_end_of_header_async (MilterServerContext *context,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data)
{
  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));

  simple_command (context,
                  new_task (context, cancellable, callback, user_data,
                            milter_server_context_end_of_header_async),
                  'N');
}

/**
 * milter_server_context_end_of_header_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_end_of_header_async().
 *
 * Returns: the milter's verdict, or %MILTER_STATUS_DEFAULT with @error set
 *
 * Since: 1.0
 */
MilterStatus
milter_server_context_end_of_header_finish (MilterServerContext  *context,
                                            GAsyncResult         *result,
                                            GError              **error)
{
  return finish_status (context, result, milter_server_context_end_of_header_async, error);
}

/* Queues the next body packet with its macros and waits for its reply;
 * without replies (or without body packets at all), queues every
 * remaining piece. */
static void
send_body_packets (MilterServerContext *self)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (self->body, &size);
  gboolean sent = step_is_sent (self, 'B');

  do
    {
      gsize n = MIN (size - self->body_offset, MILTER_CHUNK_SIZE);

      encode_macros (self, 'B');
      if (sent)
        milter_encoder_encode_data (self->out, 'B', data + self->body_offset, n);
      self->body_offset += n;
    }
  while (!(sent && step_has_reply (self, 'B')) && self->body_offset < size);
  command_queued (self, sent);
}

/**
 * milter_server_context_body_async:
 * @context: a #MilterServerContext
 * @chunk: a piece of the body, with CRLF line endings
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the milter's verdict
 * @user_data: (closure): data for @callback
 *
 * Sends a piece of the body (SMFIC_BODY), each packet after the
 * end-of-message macros (as Postfix does). A @chunk larger than 65535
 * bytes goes out as several packets, each waiting for its reply; the
 * verdict is the first one other than continue, or continue. An empty
 * @chunk sends nothing and completes with %MILTER_STATUS_CONTINUE; after
 * the milter replied skip, later chunks of the message send nothing and
 * complete with %MILTER_STATUS_SKIP.
 *
 * Since: 1.0
 */
void
milter_server_context_body_async (MilterServerContext *context,
                                  GBytes              *chunk,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));
  g_return_if_fail (chunk != NULL);

  task = new_task (context, cancellable, callback, user_data, milter_server_context_body_async);
  if (!begin (context, task, 'B', NEEDS_NEGOTIATED, TRUE))
    return;

  if (context->skip_body)
    {
      await_flush (context, MILTER_STATUS_SKIP);
      return;
    }
  if (g_bytes_get_size (chunk) == 0)
    {
      await_flush (context, MILTER_STATUS_CONTINUE);
      return;
    }
  context->body = g_bytes_ref (chunk);
  context->body_offset = 0;
  send_body_packets (context);
}

/**
 * milter_server_context_body_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_body_async().
 *
 * Returns: the milter's verdict, or %MILTER_STATUS_DEFAULT with @error set
 *
 * Since: 1.0
 */
MilterStatus
milter_server_context_body_finish (MilterServerContext  *context,
                                   GAsyncResult         *result,
                                   GError              **error)
{
  return finish_status (context, result, milter_server_context_body_async, error);
}

/**
 * milter_server_context_end_of_message_async:
 * @context: a #MilterServerContext
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the milter's final verdict
 * @user_data: (closure): data for @callback
 *
 * Ends the message (SMFIC_BODYEOB), after the end-of-message macros, and
 * collects the milter's modification requests until its final reply,
 * within #MilterServerContext:end-of-message-timeout. Each request emits
 * its signal; the whole list is then available from
 * milter_server_context_get_modifications().
 *
 * Since: 1.0
 */
void
milter_server_context_end_of_message_async (MilterServerContext *context,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));

  task = new_task (context, cancellable, callback, user_data,
                   milter_server_context_end_of_message_async);
  if (!begin (context, task, 'E', NEEDS_NEGOTIATED, TRUE))
    return;

  g_ptr_array_unref (context->modifications);
  context->modifications =
    g_ptr_array_new_with_free_func ((GDestroyNotify) milter_modification_unref);
  if (context->replaced_body != NULL)
    g_clear_pointer (&context->replaced_body, g_byte_array_unref);
  context->modifications_size = 0;
  encode_macros (context, 'E');
  milter_encoder_encode_empty (context->out, 'E');
  command_queued (context, TRUE);
}

/**
 * milter_server_context_end_of_message_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_end_of_message_async().
 *
 * Returns: the milter's final verdict (%MILTER_STATUS_CONTINUE means the
 *   message is accepted with the modifications), or
 *   %MILTER_STATUS_DEFAULT with @error set
 *
 * Since: 1.0
 */
MilterStatus
milter_server_context_end_of_message_finish (MilterServerContext  *context,
                                             GAsyncResult         *result,
                                             GError              **error)
{
  return finish_status (context, result, milter_server_context_end_of_message_async, error);
}

/**
 * milter_server_context_unknown_async:
 * @context: a #MilterServerContext
 * @command: (type filename): the SMTP command line the MTA did not recognise
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the milter's verdict
 * @user_data: (closure): data for @callback
 *
 * Sends an unknown SMTP command (SMFIC_UNKNOWN), after an empty
 * define-macro packet. Milters that negotiated a protocol version below 3
 * do not get it.
 *
 * Since: 1.0
 */
void
milter_server_context_unknown_async (MilterServerContext *context,
                                     const gchar         *command,
                                     GCancellable        *cancellable,
                                     GAsyncReadyCallback  callback,
                                     gpointer             user_data)
{
  GTask *task;
  gboolean sent;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));
  g_return_if_fail (command != NULL);

  task = new_task (context, cancellable, callback, user_data, milter_server_context_unknown_async);
  if (!begin (context, task, 'U', NEEDS_NEGOTIATED, TRUE))
    return;

  encode_macros (context, 'U');
  sent = step_is_sent (context, 'U');
  if (sent)
    milter_encoder_encode_string (context->out, 'U', command);
  command_queued (context, sent);
}

/**
 * milter_server_context_unknown_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_unknown_async().
 *
 * Returns: the milter's verdict, or %MILTER_STATUS_DEFAULT with @error set
 *
 * Since: 1.0
 */
MilterStatus
milter_server_context_unknown_finish (MilterServerContext  *context,
                                      GAsyncResult         *result,
                                      GError              **error)
{
  return finish_status (context, result, milter_server_context_unknown_async, error);
}

/**
 * milter_server_context_abort_async:
 * @context: a #MilterServerContext
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called once the command is written
 * @user_data: (closure): data for @callback
 *
 * Abandons the current message (SMFIC_ABORT); the milter does not reply.
 * The connection stays open for another message.
 *
 * Since: 1.0
 */
void
milter_server_context_abort_async (MilterServerContext *context,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));

  task = new_task (context, cancellable, callback, user_data, milter_server_context_abort_async);
  if (!begin (context, task, 'A', NEEDS_NEGOTIATED, FALSE))
    return;

  reset_message (context);
  milter_encoder_encode_empty (context->out, 'A');
  await_flush (context, MILTER_STATUS_CONTINUE);
}

/**
 * milter_server_context_abort_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_abort_async().
 *
 * Returns: %TRUE once the command was written, %FALSE with @error set
 *
 * Since: 1.0
 */
gboolean
milter_server_context_abort_finish (MilterServerContext  *context,
                                    GAsyncResult         *result,
                                    GError              **error)
{
  return finish_boolean (context, result, milter_server_context_abort_async, error);
}

/**
 * milter_server_context_quit_async:
 * @context: a #MilterServerContext
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called once the command is written and the
 *   connection closed
 * @user_data: (closure): data for @callback
 *
 * Ends the session (SMFIC_QUIT) and closes the connection; the milter does
 * not reply. On a context that is not connected, or already closed, it
 * only completes.
 *
 * Since: 1.0
 */
void
milter_server_context_quit_async (MilterServerContext *context,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));

  task = new_task (context, cancellable, callback, user_data, milter_server_context_quit_async);
  if (context->task == NULL && (context->state == STATE_CLOSED || context->state == STATE_NEW))
    {
      close_connection (context, NULL);
      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
      return;
    }
  if (!begin (context, task, 'Q', NEEDS_OPEN, FALSE))
    return;

  milter_encoder_encode_empty (context->out, 'Q');
  await_flush (context, MILTER_STATUS_CONTINUE);
}

/**
 * milter_server_context_quit_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_quit_async().
 *
 * Returns: %TRUE once the session ended, %FALSE with @error set
 *
 * Since: 1.0
 */
gboolean
milter_server_context_quit_finish (MilterServerContext  *context,
                                   GAsyncResult         *result,
                                   GError              **error)
{
  return finish_boolean (context, result, milter_server_context_quit_async, error);
}

/**
 * milter_server_context_quit_new_connection_async:
 * @context: a #MilterServerContext
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called once the command is written
 * @user_data: (closure): data for @callback
 *
 * Ends the SMTP session but keeps the milter connection, with what was
 * negotiated, for another one (SMFIC_QUIT_NC, protocol version 6); the
 * milter does not reply. A connect call comes next.
 *
 * Since: 1.0
 */
void
milter_server_context_quit_new_connection_async (MilterServerContext *context,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));

  task = new_task (context, cancellable, callback, user_data,
                   milter_server_context_quit_new_connection_async);
  if (!begin (context, task, 'K', NEEDS_NEGOTIATED, FALSE))
    return;

  reset_connection (context);
  milter_encoder_encode_empty (context->out, 'K');
  await_flush (context, MILTER_STATUS_CONTINUE);
}

/**
 * milter_server_context_quit_new_connection_finish:
 * @context: a #MilterServerContext
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes milter_server_context_quit_new_connection_async().
 *
 * Returns: %TRUE once the command was written, %FALSE with @error set
 *
 * Since: 1.0
 */
gboolean
milter_server_context_quit_new_connection_finish (MilterServerContext  *context,
                                                  GAsyncResult         *result,
                                                  GError              **error)
{
  return finish_boolean (context, result, milter_server_context_quit_new_connection_async,
                         error);
}

/* ---- public API: results ------------------------------------------------ */

/**
 * milter_server_context_get_reply_text:
 * @context: a #MilterServerContext
 *
 * Gets the SMTP reply the milter chose with its last verdict, when it
 * replied with a reply code (`y`), such as `550 5.7.1 Spam` or a
 * multi-line reply with CRLF between the lines. Each call clears it.
 *
 * Returns: (type filename) (nullable): the reply, or %NULL
 *
 * Since: 1.0
 */
const gchar *
milter_server_context_get_reply_text (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), NULL);

  return context->reply_text;
}

/**
 * milter_server_context_get_modifications:
 * @context: a #MilterServerContext
 *
 * Gets the modifications the milter requested at the last
 * end-of-message, in the order it sent them; all replace-body packets
 * make one %MILTER_MODIFICATION_TYPE_REPLACE_BODY entry, at the place of
 * the first one. Pass the list to milter_message_apply_modifications().
 *
 * Returns: (transfer none) (element-type MilterModification): the
 *   modifications; valid until the next end-of-message call
 *
 * Since: 1.0
 */
GPtrArray *
milter_server_context_get_modifications (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), NULL);

  return context->modifications;
}

/**
 * milter_server_context_get_n_modifications:
 * @context: a #MilterServerContext
 *
 * Gets how many modifications milter_server_context_get_modifications()
 * holds; with milter_server_context_get_modification() this reads them
 * from bindings that cannot take a #GPtrArray (such as Ruby's).
 *
 * Returns: the number of modifications
 *
 * Since: 1.0
 */
guint
milter_server_context_get_n_modifications (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), 0);

  return context->modifications->len;
}

/**
 * milter_server_context_get_modification:
 * @context: a #MilterServerContext
 * @index: a position, from 0
 *
 * Gets one of the modifications of the last end-of-message.
 *
 * Returns: (transfer none) (nullable): the modification at @index, or %NULL
 *   past the end
 *
 * Since: 1.0
 */
MilterModification *
milter_server_context_get_modification (MilterServerContext *context,
                                        guint                index)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), NULL);

  if (index >= context->modifications->len)
    return NULL;
  return g_ptr_array_index (context->modifications, index);
}

/* ---- public API: macros ------------------------------------------------- */

/**
 * milter_server_context_set_macro:
 * @context: a #MilterServerContext
 * @command: the command whose define-macro packet carries the macro:
 *   %MILTER_COMMAND_CONNECT, %MILTER_COMMAND_HELO,
 *   %MILTER_COMMAND_ENVELOPE_FROM, %MILTER_COMMAND_ENVELOPE_RECIPIENT,
 *   %MILTER_COMMAND_DATA, %MILTER_COMMAND_HEADER,
 *   %MILTER_COMMAND_END_OF_HEADER, %MILTER_COMMAND_BODY,
 *   %MILTER_COMMAND_END_OF_MESSAGE or %MILTER_COMMAND_UNKNOWN
 * @name: (type filename): the macro name; a name longer than one character gets braces if
 *   it has none (`auth_type` is sent as `{auth_type}`)
 * @value: (type filename) (nullable): the value; %NULL keeps the macro from being sent
 *   at that stage, even by default
 *
 * Sets a macro for every later @command, replacing a default value or
 * an earlier setting.
 *
 * Since: 1.0
 */
void
milter_server_context_set_macro (MilterServerContext *context,
                                 MilterCommand        command,
                                 const gchar         *name,
                                 const gchar         *value)
{
  gint index = macro_command_index ((gchar) command);
  g_autofree gchar *normalized = NULL;
  Macro *macro;
  GPtrArray *list;

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));
  g_return_if_fail (index >= 0);
  g_return_if_fail (name != NULL && *name != '\0');

  normalized = normalize_macro_name (name);
  if (context->macros[index] == NULL)
    context->macros[index] = g_ptr_array_new_with_free_func (macro_free);
  list = context->macros[index];
  for (guint i = 0; i < list->len; i++)
    {
      macro = g_ptr_array_index (list, i);
      if (strcmp (macro->name, normalized) == 0)
        {
          g_free (macro->value);
          macro->value = g_strdup (value);
          return;
        }
    }
  macro = g_new (Macro, 1);
  macro->name = g_steal_pointer (&normalized);
  macro->value = g_strdup (value);
  g_ptr_array_add (list, macro);
}

/**
 * milter_server_context_clear_macros:
 * @context: a #MilterServerContext
 * @command: the command, as for milter_server_context_set_macro()
 *
 * Forgets every macro set for @command, so only the defaults are sent.
 *
 * Since: 1.0
 */
void
milter_server_context_clear_macros (MilterServerContext *context,
                                    MilterCommand        command)
{
  gint index = macro_command_index ((gchar) command);

  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));
  g_return_if_fail (index >= 0);

  g_clear_pointer (&context->macros[index], g_ptr_array_unref);
}

/**
 * milter_server_context_get_default_macros:
 * @context: a #MilterServerContext
 *
 * Gets #MilterServerContext:default-macros.
 *
 * Returns: whether the default macros are sent
 *
 * Since: 1.0
 */
gboolean
milter_server_context_get_default_macros (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), FALSE);

  return context->default_macros;
}

/**
 * milter_server_context_set_default_macros:
 * @context: a #MilterServerContext
 * @default_macros: whether to send the default macros
 *
 * Sets #MilterServerContext:default-macros.
 *
 * Since: 1.0
 */
void
milter_server_context_set_default_macros (MilterServerContext *context,
                                          gboolean             default_macros)
{
  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));

  default_macros = !!default_macros;
  if (context->default_macros == default_macros)
    return;
  context->default_macros = default_macros;
  g_object_notify_by_pspec (G_OBJECT (context), properties[PROP_DEFAULT_MACROS]);
}

/* ---- public API: timeouts and limits ------------------------------------ */

static void
set_timeout (MilterServerContext *self,
             gdouble             *field,
             gdouble              timeout,
             guint                prop_id)
{
  g_return_if_fail (timeout >= 0);

  if (*field == timeout)
    return;
  *field = timeout;
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop_id]);
}

/**
 * milter_server_context_get_connect_timeout:
 * @context: a #MilterServerContext
 *
 * Gets #MilterServerContext:connect-timeout.
 *
 * Returns: the timeout in seconds
 *
 * Since: 1.0
 */
gdouble
milter_server_context_get_connect_timeout (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), 0);

  return context->connect_timeout;
}

/**
 * milter_server_context_set_connect_timeout:
 * @context: a #MilterServerContext
 * @timeout: seconds, or 0 to wait forever
 *
 * Sets #MilterServerContext:connect-timeout.
 *
 * Since: 1.0
 */
void
milter_server_context_set_connect_timeout (MilterServerContext *context,
                                           gdouble              timeout)
{
  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));

  set_timeout (context, &context->connect_timeout, timeout, PROP_CONNECT_TIMEOUT);
}

/**
 * milter_server_context_get_read_timeout:
 * @context: a #MilterServerContext
 *
 * Gets #MilterServerContext:read-timeout.
 *
 * Returns: the timeout in seconds
 *
 * Since: 1.0
 */
gdouble
milter_server_context_get_read_timeout (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), 0);

  return context->read_timeout;
}

/**
 * milter_server_context_set_read_timeout:
 * @context: a #MilterServerContext
 * @timeout: seconds, or 0 to wait forever
 *
 * Sets #MilterServerContext:read-timeout. It applies from the next wait.
 *
 * Since: 1.0
 */
void
milter_server_context_set_read_timeout (MilterServerContext *context,
                                        gdouble              timeout)
{
  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));

  set_timeout (context, &context->read_timeout, timeout, PROP_READ_TIMEOUT);
}

/**
 * milter_server_context_get_write_timeout:
 * @context: a #MilterServerContext
 *
 * Gets #MilterServerContext:write-timeout.
 *
 * Returns: the timeout in seconds
 *
 * Since: 1.0
 */
gdouble
milter_server_context_get_write_timeout (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), 0);

  return context->write_timeout;
}

/**
 * milter_server_context_set_write_timeout:
 * @context: a #MilterServerContext
 * @timeout: seconds, or 0 to wait forever
 *
 * Sets #MilterServerContext:write-timeout. It applies from the next
 * write.
 *
 * Since: 1.0
 */
void
milter_server_context_set_write_timeout (MilterServerContext *context,
                                         gdouble              timeout)
{
  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));

  set_timeout (context, &context->write_timeout, timeout, PROP_WRITE_TIMEOUT);
}

/**
 * milter_server_context_get_end_of_message_timeout:
 * @context: a #MilterServerContext
 *
 * Gets #MilterServerContext:end-of-message-timeout.
 *
 * Returns: the timeout in seconds
 *
 * Since: 1.0
 */
gdouble
milter_server_context_get_end_of_message_timeout (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), 0);

  return context->end_of_message_timeout;
}

/**
 * milter_server_context_set_end_of_message_timeout:
 * @context: a #MilterServerContext
 * @timeout: seconds, or 0 to wait forever
 *
 * Sets #MilterServerContext:end-of-message-timeout. It applies from the
 * next wait.
 *
 * Since: 1.0
 */
void
milter_server_context_set_end_of_message_timeout (MilterServerContext *context,
                                                  gdouble              timeout)
{
  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));

  set_timeout (context, &context->end_of_message_timeout, timeout,
               PROP_END_OF_MESSAGE_TIMEOUT);
}

/**
 * milter_server_context_get_max_packet_length:
 * @context: a #MilterServerContext
 *
 * Gets #MilterServerContext:max-packet-length.
 *
 * Returns: the longest packet accepted from the milter
 *
 * Since: 1.0
 */
guint
milter_server_context_get_max_packet_length (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), 0);

  return context->max_packet_length;
}

/**
 * milter_server_context_set_max_packet_length:
 * @context: a #MilterServerContext
 * @length: the longest packet accepted from the milter, at least 65536
 *
 * Sets #MilterServerContext:max-packet-length.
 *
 * Since: 1.0
 */
void
milter_server_context_set_max_packet_length (MilterServerContext *context,
                                             guint                length)
{
  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));
  g_return_if_fail (length >= MIN_PACKET_LENGTH);

  if (context->max_packet_length == length)
    return;
  context->max_packet_length = length;
  milter_decoder_set_max_packet_length (context->decoder, length);
  g_object_notify_by_pspec (G_OBJECT (context), properties[PROP_MAX_PACKET_LENGTH]);
}

/**
 * milter_server_context_get_max_modifications_size:
 * @context: a #MilterServerContext
 *
 * Gets #MilterServerContext:max-modifications-size.
 *
 * Returns: the limit in bytes
 *
 * Since: 1.0
 */
guint64
milter_server_context_get_max_modifications_size (MilterServerContext *context)
{
  g_return_val_if_fail (MILTER_IS_SERVER_CONTEXT (context), 0);

  return context->max_modifications_size;
}

/**
 * milter_server_context_set_max_modifications_size:
 * @context: a #MilterServerContext
 * @size: the most bytes of modification requests per end-of-message
 *
 * Sets #MilterServerContext:max-modifications-size.
 *
 * Since: 1.0
 */
void
milter_server_context_set_max_modifications_size (MilterServerContext *context,
                                                  guint64              size)
{
  g_return_if_fail (MILTER_IS_SERVER_CONTEXT (context));

  if (context->max_modifications_size == size)
    return;
  context->max_modifications_size = size;
  g_object_notify_by_pspec (G_OBJECT (context), properties[PROP_MAX_MODIFICATIONS_SIZE]);
}
