/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-client-context.h"
#include "milter-client-context-private.h"
#include "milter-client.h"
#include "milter/milter-enum-types.h"
#include "milter/milter-marshal.h"
#include "milter/core/milter-decoder-private.h"
#include "milter/core/milter-encoder-private.h"
#include "milter/core/milter-errors.h"
#include "milter/core/milter-errors-private.h"
#include "milter/core/milter-message-result-private.h"
#include "milter/core/milter-property-private.h"
#include "milter/core/milter-reply-code.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/**
 * SECTION:milter-client-context
 * @title: MilterClientContext
 * @short_description: One milter session with an MTA
 * @include: milter/milter.h
 * @see_also: #MilterClient
 *
 * A #MilterClientContext serves one connection from an MTA: it decodes
 * the MTA's commands, emits one signal per protocol event and sends the
 * reply that the handlers' #MilterStatus asks for. #MilterClient creates
 * one per connection and announces it with
 * #MilterClient::connection-established, which is the place to connect
 * handlers.
 *
 * The events come in this order (events the MTA was asked not to send are
 * left out, see below):
 *
 * |[
 * negotiate → connect → helo* → per message: envelope-from →
 *   envelope-recipient+ → data → header* → end-of-header → body* →
 *   end-of-message → (next message …) → finished
 * ]|
 *
 * #MilterClientContext::abort comes instead of the rest of a message when
 * the MTA abandons it, and only if the milter has not already decided the
 * message. #MilterClientContext::finished comes exactly once per
 * connection, whatever ends it.
 *
 * ## Statuses
 *
 * Every event signal returns a #MilterStatus. Handlers run in the order
 * they were connected; the first one that returns something other than
 * %MILTER_STATUS_DEFAULT or %MILTER_STATUS_NOT_CHANGE decides, and if none
 * does, #MilterClientContext:fallback-status applies (continue unless set;
 * %MILTER_STATUS_ALL_OPTIONS for negotiation). A Python handler that
 * returns nothing or raises yields %MILTER_STATUS_DEFAULT, so it never
 * causes a verdict by accident; in Ruby, a block that raises or returns
 * nil ends the program (a ruby-gnome rule), so end each with a status.
 *
 * ## Replying later
 *
 * A handler that cannot decide yet returns %MILTER_STATUS_PROGRESS. The
 * context then reads no further command of this connection (other
 * connections go on) until the status is given with
 * milter_client_context_reply() or by emitting the event's `-response`
 * signal. The reply is written from the main loop, never from inside the
 * caller's stack. At end-of-message, milter_client_context_progress()
 * tells the MTA to keep waiting meanwhile.
 *
 * ## Negotiation
 *
 * If the #MilterClientContext::negotiate handlers return
 * %MILTER_STATUS_ALL_OPTIONS (or nothing), the context asks for every
 * action the MTA offers and asks the MTA to leave out every event that has
 * no handler connected (nor a class method, see below). Connect handlers before the negotiation (in
 * #MilterClient::connection-established) so they count. A handler can
 * instead edit the offered #MilterOption and return
 * %MILTER_STATUS_CONTINUE, or end the session with %MILTER_STATUS_REJECT.
 *
 * ## Subclasses
 *
 * Instead of connecting handlers to each context, a subclass can set the
 * class methods of #MilterClientContextClass; #MilterClient:context-type
 * makes the client create the subclass for its connections. A class method
 * counts as a handler in the negotiation, runs after any connected handler
 * (which can still decide first), and is called without a signal emission
 * while no handler is connected, which makes a subclass the cheapest way
 * to handle many events.
 *
 * ## Strings from the network
 *
 * Everything the MTA passes on comes from an SMTP client and need not be
 * UTF-8. The string arguments of the event signals are therefore
 * annotated as file names for GObject-Introspection: bindings never fail
 * to convert them (a Python handler would otherwise be skipped, which an
 * attacker could use to get past a check). In Python, bytes that are not
 * UTF-8 arrive as surrogate escapes; `value.encode ("utf-8",
 * "surrogateescape")` gives the original bytes.
 *
 * The class methods cannot be annotated that way: PyGObject 3.42 (Debian
 * 12) cannot pass a file name to a Python method (`Unhandled type tag
 * filename`). The methods of a Python subclass (`do_header` and the
 * like) therefore get UTF-8 only, and on other bytes PyGObject skips the
 * method: the step then gets #MilterClientContext:fallback-status. Set it to
 * %MILTER_STATUS_TEMPORARY_FAILURE in such a filter, or connect handlers
 * for the events whose strings matter.
 *
 * ## Modifying the message
 *
 * The modification functions (milter_client_context_add_header() and the
 * others) work while end-of-message is handled, also when its reply was
 * deferred, and only for actions negotiated with the MTA.
 *
 * |[<!-- language="C" -->
 * static MilterStatus
 * on_end_of_message (MilterClientContext *context,
 *                    GBytes              *chunk,
 *                    gpointer             user_data)
 * {
 *   g_autoptr(GError) error = NULL;
 *
 *   if (!milter_client_context_add_header (context, "X-Filtered", "yes", &error))
 *     g_warning ("%s", error->message);
 *   return MILTER_STATUS_CONTINUE;
 * }
 *
 * static void
 * on_connection_established (MilterClient        *client,
 *                            MilterClientContext *context,
 *                            gpointer             user_data)
 * {
 *   g_signal_connect (context, "end-of-message-bytes",
 *                     G_CALLBACK (on_end_of_message), NULL);
 * }
 * ]|
 */

/* While a reply is pending, read ahead at most this much (to notice the
 * MTA closing) before pausing reads. */
#define PAUSED_READ_LIMIT (64 * 1024)
/* Stop reading while more than this waits to be written: a peer that does
 * not read our replies cannot make us buffer without bound. */
#define OUTPUT_HIGH_WATER (256 * 1024)
#define DEFAULT_MAX_HEADERS 10000
#define DEFAULT_MAX_RECIPIENTS 100000
#define DEFAULT_MAX_MESSAGE_RESULT_SIZE (16 * 1024 * 1024)

/* ---- steps ----------------------------------------------------------- */

/* The status-returning events. Each has a -response signal. */
typedef enum
{
  STEP_NEGOTIATE,
  STEP_CONNECT,
  STEP_HELO,
  STEP_ENVELOPE_FROM,
  STEP_ENVELOPE_RECIPIENT,
  STEP_DATA,
  STEP_UNKNOWN,
  STEP_HEADER,
  STEP_END_OF_HEADER,
  STEP_BODY,
  STEP_END_OF_MESSAGE,
  STEP_ABORT,
  N_STEPS
} Step;

typedef struct
{
  const gchar *name;
  MilterClientContextState state;  /* the matching _REPLIED state follows it */
  MilterStepFlags no_reply;        /* the NR_* bit, if any */
} StepInfo;

static const StepInfo step_info[N_STEPS] = {
  [STEP_NEGOTIATE] = { "negotiate", MILTER_CLIENT_CONTEXT_STATE_NEGOTIATE, 0 },
  [STEP_CONNECT] = { "connect", MILTER_CLIENT_CONTEXT_STATE_CONNECT, MILTER_STEP_NO_REPLY_CONNECT },
  [STEP_HELO] = { "helo", MILTER_CLIENT_CONTEXT_STATE_HELO, MILTER_STEP_NO_REPLY_HELO },
  [STEP_ENVELOPE_FROM] = { "envelope-from", MILTER_CLIENT_CONTEXT_STATE_ENVELOPE_FROM,
                           MILTER_STEP_NO_REPLY_ENVELOPE_FROM },
  [STEP_ENVELOPE_RECIPIENT] = { "envelope-recipient", MILTER_CLIENT_CONTEXT_STATE_ENVELOPE_RECIPIENT,
                                MILTER_STEP_NO_REPLY_ENVELOPE_RECIPIENT },
  [STEP_DATA] = { "data", MILTER_CLIENT_CONTEXT_STATE_DATA, MILTER_STEP_NO_REPLY_DATA },
  [STEP_UNKNOWN] = { "unknown", MILTER_CLIENT_CONTEXT_STATE_UNKNOWN, MILTER_STEP_NO_REPLY_UNKNOWN },
  [STEP_HEADER] = { "header", MILTER_CLIENT_CONTEXT_STATE_HEADER, MILTER_STEP_NO_REPLY_HEADER },
  [STEP_END_OF_HEADER] = { "end-of-header", MILTER_CLIENT_CONTEXT_STATE_END_OF_HEADER,
                           MILTER_STEP_NO_REPLY_END_OF_HEADER },
  [STEP_BODY] = { "body", MILTER_CLIENT_CONTEXT_STATE_BODY, MILTER_STEP_NO_REPLY_BODY },
  [STEP_END_OF_MESSAGE] = { "end-of-message", MILTER_CLIENT_CONTEXT_STATE_END_OF_MESSAGE, 0 },
  [STEP_ABORT] = { "abort", MILTER_CLIENT_CONTEXT_STATE_ABORT, 0 },
};

/* ---- command order ------------------------------------------------------ */

/* Positions in a session, for checking the order of commands. A, Q, K
 * and D are valid almost anywhere and are handled apart. */
typedef enum
{
  AT_START,
  AT_NEGOTIATE,
  AT_CONNECT,
  AT_HELO,
  AT_MAIL,
  AT_RCPT,
  AT_DATA,
  AT_HEADER,
  AT_END_OF_HEADER,
  AT_BODY,
  AT_END_OF_MESSAGE,
  AT_UNKNOWN,
  N_POSITIONS
} Position;

#define AT(p) (1u << (p))

/* What may follow what (libmilter's next_states), before steps the MTA was
 * asked to leave out are taken into account. */
static const guint32 next_positions[N_POSITIONS] = {
  [AT_START] = AT (AT_NEGOTIATE),
  [AT_NEGOTIATE] = AT (AT_CONNECT) | AT (AT_UNKNOWN),
  [AT_CONNECT] = AT (AT_HELO) | AT (AT_MAIL) | AT (AT_UNKNOWN),
  [AT_HELO] = AT (AT_HELO) | AT (AT_MAIL) | AT (AT_UNKNOWN),
  [AT_MAIL] = AT (AT_RCPT) | AT (AT_UNKNOWN),
  [AT_RCPT] = AT (AT_RCPT) | AT (AT_DATA) | AT (AT_HEADER) | AT (AT_END_OF_HEADER) |
              AT (AT_BODY) | AT (AT_END_OF_MESSAGE) | AT (AT_UNKNOWN),
  [AT_DATA] = AT (AT_HEADER) | AT (AT_END_OF_HEADER),
  [AT_HEADER] = AT (AT_HEADER) | AT (AT_END_OF_HEADER),
  [AT_END_OF_HEADER] = AT (AT_BODY) | AT (AT_END_OF_MESSAGE),
  [AT_BODY] = AT (AT_BODY) | AT (AT_END_OF_MESSAGE),
  [AT_END_OF_MESSAGE] = AT (AT_MAIL) | AT (AT_UNKNOWN),
  /* An unknown command leaves the position where it was (see
   * handle_unknown()): what may follow it is what may follow the command
   * before it. libmilter allows HELO, MAIL, RCPT, DATA and a body after
   * any unknown command, so that MAIL could be skipped. */
  [AT_UNKNOWN] = 0,
};

/* ---- macros ------------------------------------------------------------- */

/* Macro tables by the command letter their 'D' packet named, in stage
 * order: a command clears the tables of later stages, and lookups search
 * the latest stage first, as libmilter does. */
typedef enum
{
  MACROS_CONNECT,
  MACROS_HELO,
  MACROS_MAIL,
  MACROS_RCPT,
  MACROS_DATA,
  MACROS_HEADER,
  MACROS_END_OF_HEADER,
  MACROS_BODY,
  MACROS_END_OF_MESSAGE,
  MACROS_UNKNOWN,
  MACROS_OTHER,
  N_MACRO_TABLES
} MacroTable;

typedef struct
{
  gchar *pairs;     /* a copy of the packet's name\0value\0…; kept for reuse */
  gsize size;       /* 0: no macros */
  gsize capacity;   /* of pairs */
} Macros;

/* A buffer larger than this is not kept for reuse. */
#define MACROS_KEPT_CAPACITY 4096

/**
 * MilterClientContext:
 *
 * One milter session with an MTA. All fields are private.
 *
 * Since: 1.0
 */
typedef struct _MilterClientContextPrivate MilterClientContextPrivate;

struct _MilterClientContextPrivate
{
  MilterClient *client;  /* weak */
  GMainContext *main_context;

  /* I/O */
  GIOStream *stream;
  GPollableInputStream *input;
  GPollableOutputStream *output;
  GSource *source;         /* the context's own: I/O, wake-ups, timeout */
  gint fd;                 /* a socket stream's descriptor, or -1 */
  gpointer fd_tag;         /* of fd in source */
  GIOCondition fd_events;  /* what fd_tag watches */
  GSource *read_source;    /* streams without a descriptor: children of source */
  GSource *write_source;
  GIOCondition stream_events;  /* what the child sources reported */
  gboolean woken;          /* deferred work waits for source */
  gboolean dispatching;    /* in source's dispatch (it can recurse) */
  gint64 dispatch_time;    /* the main context's time when it began */
  MilterParkingLot *parking_lot;  /* MilterClient's, for fd while idle; or NULL */
  gint64 park_delay;       /* µs of idleness before fd goes there */
  gint64 park_time;        /* when source next looks at idleness, or -1 */
  MilterParkingSpace *parking_space;  /* while parked: fd there, source detached */
  gint64 deadline;         /* when source next looks at the timeout, or -1 */
  MilterDecoder *decoder;
  GByteArray *out;         /* replies not yet written */
  gsize out_offset;        /* of out, already written */
  gint64 last_activity;    /* monotonic, µs: last whole command or write */
  gboolean eof;

  /* Session */
  MilterClientContextState state;
  MilterClientContextState last_state;
  MilterStatus status;
  Position position;
  guint32 allowed[N_POSITIONS];  /* next_positions with skipped steps folded in */
  MilterOption *offer;           /* the MTA's */
  MilterOption *option;          /* negotiated */
  Step current_step;             /* the event being handled */
  gboolean in_step;              /* between an event and its reply */
  gboolean reply_pending;        /* a handler returned PROGRESS */
  gboolean responding;           /* inside the implicit -response emission */
  gboolean in_message;
  gboolean closing;              /* teardown scheduled or done */
  gboolean finished;
  GError *pending_error;         /* reported when the teardown runs */

  /* Negotiation in progress */
  MilterOption *negotiate_option;
  MilterMacrosRequests *negotiate_requests;

  /* Per message */
  MilterMessageResult *message_result;
  GHashTable *shelf;
  gchar **esmtp_parameters;
  guint64 n_headers;
  guint64 result_size;           /* bytes of headers and recipients kept */
  guint64 n_recipients;
  gchar *recipient;              /* of the RCPT being handled */
  GByteArray *replacement_body;

  /* Replies */
  gchar *reply_code;
  gchar *quarantine_reason;

  Macros macros[N_MACRO_TABLES];
  GHashTable *macros_cache;  /* for get_macros(); NULL when stale */

  gpointer private_data;
  MilterClientContextFinishedFunc finished_func;  /* the client's bookkeeping */
  gpointer finished_data;
  GDestroyNotify private_data_destroy;

  /* Settings */
  guint timeout;
  guint packet_buffer_size;
  gboolean use_bytes;
  guint max_headers;
  guint max_message_result_size;
  guint max_recipients;
  guint max_macros;
  MilterStatus fallback_status;
};

enum {
  PROP_0,
  PROP_CLIENT,
  PROP_STATE,
  PROP_LAST_STATE,
  PROP_STATUS,
  PROP_OPTION,
  PROP_MESSAGE_RESULT,
  PROP_QUARANTINE_REASON,
  PROP_TIMEOUT,
  PROP_PACKET_BUFFER_SIZE,
  PROP_USE_BYTES,
  PROP_MAX_PACKET_LENGTH,
  PROP_MAX_HEADERS,
  PROP_MAX_MESSAGE_RESULT_SIZE,
  PROP_MAX_RECIPIENTS,
  PROP_MAX_MACROS,
  PROP_N_PROCESSING_SESSIONS,
  PROP_FALLBACK_STATUS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_NEGOTIATE,
  SIGNAL_DEFINE_MACRO,
  SIGNAL_CONNECT,
  SIGNAL_HELO,
  SIGNAL_ENVELOPE_FROM,
  SIGNAL_ENVELOPE_RECIPIENT,
  SIGNAL_DATA,
  SIGNAL_UNKNOWN,
  SIGNAL_HEADER,
  SIGNAL_END_OF_HEADER,
  SIGNAL_BODY,
  SIGNAL_BODY_BYTES,
  SIGNAL_END_OF_MESSAGE,
  SIGNAL_END_OF_MESSAGE_BYTES,
  SIGNAL_ABORT,
  SIGNAL_TIMEOUT,
  SIGNAL_MESSAGE_PROCESSED,
  SIGNAL_FINISHED,
  SIGNAL_ERROR,
  N_SIGNALS
};

static guint signals[N_SIGNALS];
static guint response_signals[N_STEPS];

G_DEFINE_TYPE_WITH_PRIVATE (MilterClientContext, milter_client_context, G_TYPE_OBJECT)

/**
 * milter_client_context_error_quark:
 *
 * The quark of %MILTER_CLIENT_CONTEXT_ERROR.
 *
 * Returns: the error domain quark
 *
 * Since: 1.0
 */
G_DEFINE_QUARK (milter-client-context-error-quark, milter_client_context_error)

static void wake_up (MilterClientContext *self);
static void end_connection (MilterClientContext *self,
                            GError              *error);
static void respond (MilterClientContext *self,
                     Step                 step,
                     MilterStatus         status);
static void schedule_flush (MilterClientContext *self);
static void respond_negotiate (MilterClientContext  *self,
                               MilterOption         *option,
                               MilterMacrosRequests *requests,
                               MilterStatus          status);

/* ---- small helpers ------------------------------------------------------ */

static void
set_state (MilterClientContext     *self,
           MilterClientContextState state)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->state == state)
    return;
  priv->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
}

static gboolean
step_enabled (MilterClientContext *self,
              MilterStepFlags      flag)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  return priv->option != NULL && (milter_option_get_step (priv->option) & flag) != 0;
}

static gboolean
is_no_opinion (MilterStatus status)
{
  return status == MILTER_STATUS_DEFAULT || status == MILTER_STATUS_NOT_CHANGE;
}

/* What a step's handler may answer; PROGRESS and ABORT are not replies. */
static gboolean
is_reply_status (MilterStatus status)
{
  switch (status)
    {
    case MILTER_STATUS_DEFAULT:
    case MILTER_STATUS_NOT_CHANGE:
    case MILTER_STATUS_CONTINUE:
    case MILTER_STATUS_REJECT:
    case MILTER_STATUS_DISCARD:
    case MILTER_STATUS_ACCEPT:
    case MILTER_STATUS_TEMPORARY_FAILURE:
    case MILTER_STATUS_NO_REPLY:
    case MILTER_STATUS_SKIP:
    case MILTER_STATUS_ALL_OPTIONS:
      return TRUE;
    default:
      return FALSE;
    }
}

static gboolean
has_handler (MilterClientContext *self,
             guint                signal_id)
{
  return g_signal_has_handler_pending (self, signal_id, 0, FALSE);
}

/* Where each signal's class method is in MilterClientContextClass. */
static const guint16 class_offsets[N_SIGNALS] = {
#define OFFSET(signal, method) [signal] = G_STRUCT_OFFSET (MilterClientContextClass, method)
  OFFSET (SIGNAL_NEGOTIATE, negotiate),
  OFFSET (SIGNAL_DEFINE_MACRO, define_macro),
  OFFSET (SIGNAL_CONNECT, connect),
  OFFSET (SIGNAL_HELO, helo),
  OFFSET (SIGNAL_ENVELOPE_FROM, envelope_from),
  OFFSET (SIGNAL_ENVELOPE_RECIPIENT, envelope_recipient),
  OFFSET (SIGNAL_DATA, data),
  OFFSET (SIGNAL_UNKNOWN, unknown),
  OFFSET (SIGNAL_HEADER, header),
  OFFSET (SIGNAL_END_OF_HEADER, end_of_header),
  OFFSET (SIGNAL_BODY, body),
  OFFSET (SIGNAL_BODY_BYTES, body_bytes),
  OFFSET (SIGNAL_END_OF_MESSAGE, end_of_message),
  OFFSET (SIGNAL_END_OF_MESSAGE_BYTES, end_of_message_bytes),
  OFFSET (SIGNAL_ABORT, abort),
  OFFSET (SIGNAL_TIMEOUT, timeout),
  OFFSET (SIGNAL_MESSAGE_PROCESSED, message_processed),
  OFFSET (SIGNAL_FINISHED, finished),
  OFFSET (SIGNAL_ERROR, error),
#undef OFFSET
};

/* Where each step's -response class method is. */
static const guint16 response_offsets[N_STEPS] = {
#define OFFSET(step, method) [step] = G_STRUCT_OFFSET (MilterClientContextClass, method)
  OFFSET (STEP_NEGOTIATE, negotiate_response),
  OFFSET (STEP_CONNECT, connect_response),
  OFFSET (STEP_HELO, helo_response),
  OFFSET (STEP_ENVELOPE_FROM, envelope_from_response),
  OFFSET (STEP_ENVELOPE_RECIPIENT, envelope_recipient_response),
  OFFSET (STEP_DATA, data_response),
  OFFSET (STEP_UNKNOWN, unknown_response),
  OFFSET (STEP_HEADER, header_response),
  OFFSET (STEP_END_OF_HEADER, end_of_header_response),
  OFFSET (STEP_BODY, body_response),
  OFFSET (STEP_END_OF_MESSAGE, end_of_message_response),
  OFFSET (STEP_ABORT, abort_response),
#undef OFFSET
};

/* This class's own -response methods: what a subclass that sets one to
 * NULL gets, so that every step still sends its reply. */
static gpointer default_response_methods[N_STEPS];

typedef void (*ResponseMethod) (MilterClientContext *context,
                                MilterStatus         status);
typedef void (*NegotiateResponseMethod) (MilterClientContext  *context,
                                         MilterOption         *option,
                                         MilterMacrosRequests *macros_requests,
                                         MilterStatus          status);

/* The class method of a signal, or NULL. */
static gpointer
class_method (MilterClientContext *self,
              guint                signal_index)
{
  return G_STRUCT_MEMBER (gpointer, MILTER_CLIENT_CONTEXT_GET_CLASS (self),
                          class_offsets[signal_index]);
}

static gboolean
has_class_method (MilterClientContext *self,
                  guint                signal_index)
{
  return class_method (self, signal_index) != NULL;
}

/* An event is handled when a subclass set its class method or a handler
 * is connected: either way it is negotiated and its status counts. */
static gboolean
is_handled (MilterClientContext *self,
            guint                signal_index)
{
  return has_class_method (self, signal_index) || has_handler (self, signals[signal_index]);
}

/* Whether only the class method would run: calling it directly gives what
 * an emission would, for a fraction of the cost. */
static gboolean
only_class_method (MilterClientContext *self,
                   guint                signal_index)
{
  return has_class_method (self, signal_index) && !has_handler (self, signals[signal_index]);
}

/* A status from a class method, as the accumulator would have left it. */
static MilterStatus
accumulated (MilterStatus status)
{
  return is_no_opinion (status) ? MILTER_STATUS_DEFAULT : status;
}

/* Emits a status-returning event, or calls the class method alone. */
#define EMIT_EVENT(self, index, method, status, ...)                                 \
  G_STMT_START {                                                                      \
    if (only_class_method ((self), (index)))                                          \
      (status) = accumulated (MILTER_CLIENT_CONTEXT_GET_CLASS (self)->method ((self), \
                                                                  ##__VA_ARGS__));    \
    else                                                                              \
      g_signal_emit ((self), signals[(index)], 0, ##__VA_ARGS__, &(status));          \
  } G_STMT_END

/* ---- macros ------------------------------------------------------------- */

static MacroTable
macro_table_for (gchar command)
{
  switch (command)
    {
    case 'C': return MACROS_CONNECT;
    case 'H': return MACROS_HELO;
    case 'M': return MACROS_MAIL;
    case 'R': return MACROS_RCPT;
    case 'T': return MACROS_DATA;
    case 'L': return MACROS_HEADER;
    case 'N': return MACROS_END_OF_HEADER;
    case 'B': return MACROS_BODY;
    case 'E': return MACROS_END_OF_MESSAGE;
    case 'U': return MACROS_UNKNOWN;
    default: return MACROS_OTHER;
    }
}

static void
clear_macros_from (MilterClientContext *self,
                   MacroTable           first)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  for (guint table = first; table < N_MACRO_TABLES; table++)
    {
      Macros *macros = &priv->macros[table];

      if (macros->size == 0)
        continue;
      macros->size = 0;
      if (macros->capacity > MACROS_KEPT_CAPACITY)
        {
          g_clear_pointer (&macros->pairs, g_free);
          macros->capacity = 0;
        }
      g_clear_pointer (&priv->macros_cache, g_hash_table_unref);
    }
}

static void
free_macros (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  for (guint table = 0; table < N_MACRO_TABLES; table++)
    g_free (priv->macros[table].pairs);
}

static void
store_macros (MilterClientContext *self,
              const MilterPacket  *packet)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  Macros *macros = &priv->macros[macro_table_for (packet->macro.command)];
  gsize size = packet->macro.pairs_size;

  if (size > macros->capacity || macros->capacity > MACROS_KEPT_CAPACITY)
    {
      g_free (macros->pairs);
      macros->pairs = size > 0 ? g_malloc (size) : NULL;
      macros->capacity = size;
    }
  if (size > 0)
    memcpy (macros->pairs, packet->macro.pairs, size);
  macros->size = size;
  g_clear_pointer (&priv->macros_cache, g_hash_table_unref);
}

static const gchar *
lookup_in (const Macros *macros,
           const gchar  *name)
{
  const gchar *cursor = macros->pairs;
  const gchar *end;
  const gchar *key;

  if (macros->size == 0)  /* pairs may be NULL: no arithmetic on it */
    return NULL;
  end = cursor + macros->size;
  while ((key = milter_packet_next_string (&cursor, end)) != NULL)
    {
      const gchar *value = milter_packet_next_string (&cursor, end);

      if (strcmp (key, name) == 0)
        return value;
    }
  return NULL;
}

static const gchar *
lookup_macro (MilterClientContext *self,
              const gchar         *name)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  for (gint table = N_MACRO_TABLES - 1; table >= 0; table--)
    {
      const gchar *value = lookup_in (&priv->macros[table], name);

      if (value != NULL)
        return value;
    }
  return NULL;
}

static void
add_macros_to (GHashTable   *table,
               const Macros *macros,
               gboolean      copy)
{
  const gchar *cursor = macros->pairs;
  const gchar *end;
  const gchar *key;

  if (macros->size == 0)  /* pairs may be NULL: no arithmetic on it */
    return;
  end = cursor + macros->size;
  while ((key = milter_packet_next_string (&cursor, end)) != NULL)
    {
      const gchar *value = milter_packet_next_string (&cursor, end);

      if (copy)
        g_hash_table_insert (table, g_strdup (key), g_strdup (value));
      else
        g_hash_table_insert (table, (gpointer) key, (gpointer) value);
    }
}

/* ---- transport ------------------------------------------------------------ */

/* A socket stream is read and written with recv() and send() on its
 * descriptor, watched by the context's own source: no GPollable glue per
 * packet. Other streams (pipes, TLS, tests' in-memory ones) go through
 * GPollable, watched by child sources. */

static gboolean
has_transport (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  return priv->fd >= 0 || priv->output != NULL;
}

static gint64
current_time (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  /* The main context's time for this iteration: cheaper than the clock,
   * and read once per dispatch (a handler running a main loop of its own
   * for a while only makes the idle timeout count from a little earlier). */
  if (priv->dispatching)
    return priv->dispatch_time;
  if (priv->source != NULL && g_source_get_context (priv->source) != NULL)
    return g_source_get_time (priv->source);
  return g_get_monotonic_time ();
}

/* When the idle timeout ends the session if the MTA stays silent, or -1
 * without a timeout. */
static gint64
idle_deadline (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->timeout == 0)
    return -1;
  return priv->last_activity + (gint64) priv->timeout * G_USEC_PER_SEC;
}

/* recv() and send(): -1 without an error when the socket is not ready. */
static gssize
socket_result (gssize   n,
               GError **error)
{
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    milter_set_io_error_from_errno (error, errno);
  return n;
}

/* GPollable streams: the same, from their GError. */
static gssize
stream_result (gssize   n,
               GError  *local_error,
               GError **error)
{
  if (n < 0 && !g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    g_propagate_error (error, local_error);
  else
    g_clear_error (&local_error);
  return n;
}

/* Reads without blocking. Returns the bytes read, 0 at the end of the
 * stream, or -1: with @error set on failure, unset if nothing is there yet. */
static gssize
transport_read (MilterClientContext  *self,
                guint8               *buffer,
                gsize                 size,
                GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  GError *local_error = NULL;
  gssize n;

  if (priv->fd >= 0)
    {
      do
        n = recv (priv->fd, buffer, size, MSG_DONTWAIT);
      while (n < 0 && errno == EINTR);
      return socket_result (n, error);
    }
  n = g_pollable_input_stream_read_nonblocking (priv->input, buffer, size, NULL, &local_error);
  return stream_result (n, local_error, error);
}

/* Writes without blocking, as transport_read() reads. */
static gssize
transport_write (MilterClientContext  *self,
                 const guint8         *data,
                 gsize                 size,
                 GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  GError *local_error = NULL;
  gssize n;

  if (priv->fd >= 0)
    {
      do
        n = send (priv->fd, data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
      while (n < 0 && errno == EINTR);
      return socket_result (n, error);
    }
  n = g_pollable_output_stream_write_nonblocking (priv->output, data, size, NULL, &local_error);
  return stream_result (n, local_error, error);
}

/* ---- output --------------------------------------------------------------- */

static gsize
output_pending (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  return priv->out->len - priv->out_offset;
}

static void
compact_output (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->out_offset == 0)
    return;
  g_byte_array_remove_range (priv->out, 0, (guint) priv->out_offset);
  priv->out_offset = 0;
}

/* Writes what it can without blocking; the rest waits for the socket.
 * Called once per batch of commands, so the replies to everything one
 * read brought go out in one write. */
static void
flush_output (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  while (has_transport (self) && output_pending (self) > 0)
    {
      GError *error = NULL;
      gssize n = transport_write (self, priv->out->data + priv->out_offset,
                                  output_pending (self), &error);

      if (n < 0)
        {
          if (error == NULL)
            break;  /* the socket is full */
          if (!priv->closing)
            end_connection (self, g_error_new (MILTER_CLIENT_CONTEXT_ERROR,
                                               MILTER_CLIENT_CONTEXT_ERROR_IO,
                                               "Failed to write to the MTA: %s", error->message));
          g_error_free (error);
          /* Nobody will read it now. */
          g_byte_array_set_size (priv->out, 0);
          priv->out_offset = 0;
          return;
        }
      priv->out_offset += (gsize) n;
      priv->last_activity = current_time (self);
    }
  if (output_pending (self) == 0)
    {
      g_byte_array_set_size (priv->out, 0);
      priv->out_offset = 0;
    }
  else if (priv->out_offset > 64 * 1024)
    {
      compact_output (self);
    }
}

/* ---- watching the transport ------------------------------------------------ */

static gboolean
wants_to_read (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (!has_transport (self) || priv->closing || priv->eof)
    return FALSE;
  if (output_pending (self) > OUTPUT_HIGH_WATER)
    return FALSE;
  /* While a reply is pending, only watch for the MTA going away. */
  if (priv->reply_pending && milter_decoder_get_pending_size (priv->decoder) >= PAUSED_READ_LIMIT)
    return FALSE;
  return TRUE;
}

/* Streams without a descriptor: a pollable source reports readiness to
 * the context's source, which runs right after it (children go first). */
static gboolean
on_stream_readable (GObject  *stream,
                    gpointer  user_data)
{
  MilterClientContext *self = user_data;
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  priv->stream_events |= G_IO_IN;
  return G_SOURCE_CONTINUE;
}

static gboolean
on_stream_writable (GObject  *stream,
                    gpointer  user_data)
{
  MilterClientContext *self = user_data;
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  priv->stream_events |= G_IO_OUT;
  return G_SOURCE_CONTINUE;
}

static void
remove_child_source (MilterClientContext  *self,
                     GSource             **child)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (*child == NULL)
    return;
  g_source_remove_child_source (priv->source, *child);
  g_clear_pointer (child, g_source_unref);
}

static void
watch_stream (MilterClientContext *self,
              gboolean             read,
              gboolean             write)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (read && priv->read_source == NULL)
    {
      priv->read_source = g_pollable_input_stream_create_source (priv->input, NULL);
      g_source_set_callback (priv->read_source, G_SOURCE_FUNC (on_stream_readable), self, NULL);
      g_source_add_child_source (priv->source, priv->read_source);
    }
  else if (!read)
    {
      remove_child_source (self, &priv->read_source);
    }
  if (write && priv->write_source == NULL)
    {
      priv->write_source = g_pollable_output_stream_create_source (priv->output, NULL);
      g_source_set_callback (priv->write_source, G_SOURCE_FUNC (on_stream_writable), self, NULL);
      g_source_add_child_source (priv->source, priv->write_source);
    }
  else if (!write)
    {
      remove_child_source (self, &priv->write_source);
    }
}

/* Watches the transport for what the session waits for now. */
static void
update_watches (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  gboolean read = wants_to_read (self);
  gboolean write = has_transport (self) && output_pending (self) > 0;

  if (priv->source == NULL)
    return;
  if (priv->fd_tag != NULL)
    {
      GIOCondition events = (read ? G_IO_IN : 0) | (write ? G_IO_OUT : 0);

      /* A change wakes the main context up: only when there is one. */
      if (events != priv->fd_events)
        {
          g_source_modify_unix_fd (priv->source, priv->fd_tag, events);
          priv->fd_events = events;
        }
    }
  else if (priv->input != NULL)
    {
      watch_stream (self, read, write);
    }
}

/* ---- order of commands -------------------------------------------------- */

static gboolean
position_skipped (MilterClientContext *self,
                  Position             position)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  guint32 version = priv->option != NULL ? milter_option_get_version (priv->option) : 6;

  switch (position)
    {
    case AT_CONNECT: return step_enabled (self, MILTER_STEP_NO_CONNECT);
    case AT_HELO: return step_enabled (self, MILTER_STEP_NO_HELO);
    case AT_MAIL: return step_enabled (self, MILTER_STEP_NO_ENVELOPE_FROM);
    case AT_RCPT: return step_enabled (self, MILTER_STEP_NO_ENVELOPE_RECIPIENT);
    case AT_DATA: return version < 4 || step_enabled (self, MILTER_STEP_NO_DATA);
    case AT_HEADER: return step_enabled (self, MILTER_STEP_NO_HEADERS);
    case AT_END_OF_HEADER: return step_enabled (self, MILTER_STEP_NO_END_OF_HEADER);
    case AT_BODY: return step_enabled (self, MILTER_STEP_NO_BODY);
    case AT_UNKNOWN: return version < 3 || step_enabled (self, MILTER_STEP_NO_UNKNOWN);
    default: return FALSE;
    }
}

/* Folds in the steps the MTA leaves out: if X may follow P and X is never
 * sent, whatever may follow X may follow P (libmilter's fix_stm). */
static void
compute_allowed_positions (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  guint32 skipped = 0;
  gboolean changed = TRUE;

  for (guint position = 0; position < N_POSITIONS; position++)
    if (position_skipped (self, position))
      skipped |= AT (position);
  memcpy (priv->allowed, next_positions, sizeof priv->allowed);
  while (changed)
    {
      changed = FALSE;
      for (guint from = 0; from < N_POSITIONS; from++)
        {
          guint32 extended = priv->allowed[from];

          for (guint to = 0; to < N_POSITIONS; to++)
            if (priv->allowed[from] & skipped & AT (to))
              extended |= priv->allowed[to];
          if (extended != priv->allowed[from])
            {
              priv->allowed[from] = extended;
              changed = TRUE;
            }
        }
    }
}

static const gchar *
position_name (Position position)
{
  static const gchar *names[N_POSITIONS] = {
    "the start", "negotiation", "connect", "HELO", "MAIL", "RCPT", "DATA",
    "a header", "end-of-header", "a body chunk", "end-of-message", "an unknown command",
  };

  return names[position];
}

static void finish_message (MilterClientContext *self,
                            MilterStatus         status);
static void emit_abort (MilterClientContext *self);

/* Checks that a command may come now. What real MTAs do is tolerated: a
 * command that may follow HELO (HELO, MAIL, an unknown command) also ends
 * a message the MTA dropped without an abort (Sendmail does that after
 * an early verdict). */
static gboolean
enter_position (MilterClientContext *self,
                Position             position,
                gchar                command)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->allowed[priv->position] & AT (position))
    {
      priv->position = position;
      return TRUE;
    }
  if (priv->position > AT_NEGOTIATE && (priv->allowed[AT_HELO] & AT (position)))
    {
      if (priv->in_message)
        {
          /* The command's own macros arrived already: keep them. */
          Macros *own = &priv->macros[macro_table_for (command)];
          Macros kept = *own;

          *own = (Macros) { NULL, 0, 0 };
          emit_abort (self);
          finish_message (self, MILTER_STATUS_ABORT);
          clear_macros_from (self, macro_table_for (command));
          *own = kept;
        }
      priv->position = position;
      return TRUE;
    }
  end_connection (self, g_error_new (MILTER_CLIENT_CONTEXT_ERROR,
                                     MILTER_CLIENT_CONTEXT_ERROR_UNEXPECTED_COMMAND,
                                     "Unexpected command '%c' after %s", command,
                                     position_name (priv->position)));
  return FALSE;
}

/* ---- messages --------------------------------------------------------- */

static void
reset_message_data (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  clear_macros_from (self, MACROS_MAIL);
  g_hash_table_remove_all (priv->shelf);
  g_clear_pointer (&priv->esmtp_parameters, g_strfreev);
  g_clear_pointer (&priv->replacement_body, g_byte_array_unref);
  g_clear_pointer (&priv->recipient, g_free);
  priv->n_headers = 0;
  priv->result_size = 0;
  priv->n_recipients = 0;
}

/* Any message command opens a message if none is open: with MAIL
 * negotiated away, the first command the milter sees may be a header or
 * end-of-message. */
static void
ensure_message (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->in_message)
    return;
  priv->in_message = TRUE;
  /* Nobody else holds the last message's result: reuse it. */
  if (priv->message_result != NULL && G_OBJECT (priv->message_result)->ref_count == 1)
    {
      milter_message_result_reset (priv->message_result);
    }
  else
    {
      g_clear_object (&priv->message_result);
      priv->message_result = milter_message_result_new ();
    }
  milter_message_result_start (priv->message_result);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MESSAGE_RESULT]);
}

static void
finish_message (MilterClientContext *self,
                MilterStatus         status)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  g_autoptr(MilterMessageResult) result = NULL;

  if (!priv->in_message)
    return;
  priv->in_message = FALSE;
  result = g_object_ref (priv->message_result);
  milter_message_result_set_status (result, status);
  milter_message_result_stop (result);
  if (priv->position > AT_HELO && priv->position != AT_UNKNOWN)
    priv->position = AT_HELO;
  /* Handlers still see the message's macros and shelf. */
  g_signal_emit (self, signals[SIGNAL_MESSAGE_PROCESSED], 0, result);
  reset_message_data (self);
}

/* ---- events ----------------------------------------------------------- */

static void
begin_step (MilterClientContext *self,
            Step                 step)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  priv->current_step = step;
  priv->in_step = TRUE;
  set_state (self, step_info[step].state);
  /* Notified on change only, like every property here. */
  if (priv->last_state != step_info[step].state)
    {
      priv->last_state = step_info[step].state;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAST_STATE]);
    }
}

/* Calls a -response method, which sends the step's reply. */
static void
call_response_method (MilterClientContext *self,
                      Step                 step,
                      gpointer             method,
                      MilterStatus         status)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (step == STEP_NEGOTIATE)
    ((NegotiateResponseMethod) method) (self, priv->negotiate_option,
                                        priv->negotiate_requests, status);
  else
    ((ResponseMethod) method) (self, status);
}

/* After an event's handlers: reply now, or wait for the response. */
static void
finish_step (MilterClientContext *self,
             Step                 step,
             MilterStatus         status)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  gpointer method;

  /* Abort has no reply to defer: waiting for one would only stop the
   * session, as it is when the abort is implied by a new MAIL or the end
   * of the connection. */
  if (status == MILTER_STATUS_PROGRESS && step == STEP_ABORT)
    {
      g_message ("abort: progress makes no sense without a reply; ignored");
      status = MILTER_STATUS_DEFAULT;
    }
  if (status == MILTER_STATUS_PROGRESS)
    {
      priv->reply_pending = TRUE;
      return;
    }
  /* The -response signal, or its class method alone when no handler is
   * connected: the same for a fraction of the cost. A method a subclass
   * set to NULL stands for this class's, so that the step still replies. */
  method = G_STRUCT_MEMBER (gpointer, MILTER_CLIENT_CONTEXT_GET_CLASS (self),
                            response_offsets[step]);
  priv->responding = TRUE;
  if (has_handler (self, response_signals[step]))
    {
      if (step == STEP_NEGOTIATE)
        g_signal_emit (self, response_signals[step], 0,
                       priv->negotiate_option, priv->negotiate_requests, status);
      else
        g_signal_emit (self, response_signals[step], 0, status);
    }
  else if (method != NULL)
    {
      call_response_method (self, step, method, status);
    }
  if (method == NULL)
    call_response_method (self, step, default_response_methods[step], status);
  priv->responding = FALSE;
}

static void
emit_abort (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  MilterStatus status = MILTER_STATUS_DEFAULT;
  MilterClientContextState state = priv->state;

  begin_step (self, STEP_ABORT);
  EMIT_EVENT (self, SIGNAL_ABORT, abort, status, state);
  priv->in_step = FALSE;
  set_state (self, MILTER_CLIENT_CONTEXT_STATE_ABORT_REPLIED);
}

/* Adds amount to a tally of what the message record keeps (headers,
 * their bytes, recipients); past the limit the session ends, so an MTA
 * cannot grow it without bound. */
static gboolean
check_message_limit (MilterClientContext     *self,
                     guint64                 *tally,
                     guint64                  amount,
                     guint                    limit,
                     MilterClientContextError code,
                     const gchar             *what)
{
  *tally += amount;
  if (limit == 0 || *tally <= limit)
    return TRUE;
  end_connection (self, g_error_new (MILTER_CLIENT_CONTEXT_ERROR, code,
                                     "More than %u %s in one message", limit, what));
  return FALSE;
}

/* The bytes of headers (name, value, a NUL after each) and recipients
 * (address and NUL) the message result keeps. */
static gboolean
check_result_size (MilterClientContext *self,
                   gsize                size)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  return check_message_limit (self, &priv->result_size, size, priv->max_message_result_size,
                              MILTER_CLIENT_CONTEXT_ERROR_MESSAGE_RESULT_TOO_LARGE,
                              "bytes of headers and recipients");
}

static gchar **
collect_strings (const gchar *cursor,
                 gsize        size)
{
  const gchar *end = cursor + size;
  GPtrArray *strings;
  const gchar *string;

  if (size == 0)
    return g_new0 (gchar *, 1);  /* the common case: no parameters */
  strings = g_ptr_array_new ();

  while ((string = milter_packet_next_string (&cursor, end)) != NULL)
    g_ptr_array_add (strings, g_strdup (string));
  g_ptr_array_add (strings, NULL);
  return (gchar **) g_ptr_array_free (strings, FALSE);
}

static void
handle_negotiate (MilterClientContext *self,
                  const MilterPacket  *packet)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  MilterStatus status = MILTER_STATUS_DEFAULT;
  guint32 action = packet->negotiate.action;
  guint32 step = packet->negotiate.step;

  if (!enter_position (self, AT_NEGOTIATE, packet->command))
    return;
  /* libmilter reads zero fields as the protocol version 1 sets. */
  if (action == 0)
    action = 0x0F;
  if (step == 0)
    step = 0x3F;
  g_clear_pointer (&priv->offer, milter_option_free);
  priv->offer = milter_option_new (packet->negotiate.version, action, step);
  g_clear_pointer (&priv->negotiate_option, milter_option_free);
  priv->negotiate_option = milter_option_copy (priv->offer);
  g_clear_pointer (&priv->negotiate_requests, milter_macros_requests_free);
  priv->negotiate_requests = milter_macros_requests_new ();

  begin_step (self, STEP_NEGOTIATE);
  EMIT_EVENT (self, SIGNAL_NEGOTIATE, negotiate, status,
              priv->negotiate_option, priv->negotiate_requests);
  finish_step (self, STEP_NEGOTIATE, status);
}

static void
handle_define_macro (MilterClientContext *self,
                     const MilterPacket  *packet)
{
  store_macros (self, packet);
  /* Without handlers, emitting costs less than asking whether there are any. */
  g_signal_emit (self, signals[SIGNAL_DEFINE_MACRO], 0, (MilterCommand) packet->macro.command);
}

static void
handle_connect (MilterClientContext *self,
                const MilterPacket  *packet)
{
  MilterStatus status = MILTER_STATUS_DEFAULT;

  if (!enter_position (self, AT_CONNECT, packet->command))
    return;
  clear_macros_from (self, MACROS_HELO);
  begin_step (self, STEP_CONNECT);
  EMIT_EVENT (self, SIGNAL_CONNECT, connect, status,
              packet->connect.host, packet->connect.address);
  finish_step (self, STEP_CONNECT, status);
}

static void
handle_helo (MilterClientContext *self,
             const MilterPacket  *packet)
{
  MilterStatus status = MILTER_STATUS_DEFAULT;

  if (!enter_position (self, AT_HELO, packet->command))
    return;
  clear_macros_from (self, MACROS_MAIL);
  begin_step (self, STEP_HELO);
  EMIT_EVENT (self, SIGNAL_HELO, helo, status, packet->string);
  finish_step (self, STEP_HELO, status);
}

static void
handle_envelope_from (MilterClientContext *self,
                      const MilterPacket  *packet)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  MilterStatus status = MILTER_STATUS_DEFAULT;

  if (!enter_position (self, AT_MAIL, packet->command))
    return;
  /* A new MAIL ends an open message (see enter_position()) and starts
   * from clean message data; its own macros are already stored. */
  clear_macros_from (self, MACROS_RCPT);
  g_hash_table_remove_all (priv->shelf);
  ensure_message (self);
  milter_message_result_set_from (priv->message_result, packet->envelope.address);
  g_clear_pointer (&priv->esmtp_parameters, g_strfreev);
  priv->esmtp_parameters = collect_strings (packet->envelope.args, packet->envelope.args_size);

  begin_step (self, STEP_ENVELOPE_FROM);
  EMIT_EVENT (self, SIGNAL_ENVELOPE_FROM, envelope_from, status, packet->envelope.address);
  finish_step (self, STEP_ENVELOPE_FROM, status);
}

static void
handle_envelope_recipient (MilterClientContext *self,
                           const MilterPacket  *packet)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  MilterStatus status = MILTER_STATUS_DEFAULT;

  if (!enter_position (self, AT_RCPT, packet->command) ||
      !check_message_limit (self, &priv->n_recipients, 1, priv->max_recipients,
                            MILTER_CLIENT_CONTEXT_ERROR_TOO_MANY_RECIPIENTS, "recipients") ||
      !check_result_size (self, strlen (packet->envelope.address) + 1))
    return;
  clear_macros_from (self, MACROS_DATA);
  ensure_message (self);
  g_clear_pointer (&priv->esmtp_parameters, g_strfreev);
  priv->esmtp_parameters = collect_strings (packet->envelope.args, packet->envelope.args_size);

  g_free (priv->recipient);
  priv->recipient = g_strdup (packet->envelope.address);
  begin_step (self, STEP_ENVELOPE_RECIPIENT);
  EMIT_EVENT (self, SIGNAL_ENVELOPE_RECIPIENT, envelope_recipient, status,
              packet->envelope.address);
  finish_step (self, STEP_ENVELOPE_RECIPIENT, status);
}

static void
handle_data (MilterClientContext *self,
             const MilterPacket  *packet)
{
  MilterStatus status = MILTER_STATUS_DEFAULT;

  if (!enter_position (self, AT_DATA, packet->command))
    return;
  ensure_message (self);
  begin_step (self, STEP_DATA);
  EMIT_EVENT (self, SIGNAL_DATA, data, status);
  finish_step (self, STEP_DATA, status);
}

static void
handle_header (MilterClientContext *self,
               const MilterPacket  *packet)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  MilterStatus status = MILTER_STATUS_DEFAULT;

  if (!enter_position (self, AT_HEADER, packet->command) ||
      !check_message_limit (self, &priv->n_headers, 1, priv->max_headers,
                            MILTER_CLIENT_CONTEXT_ERROR_TOO_MANY_HEADERS, "headers") ||
      !check_result_size (self, packet->size))
    return;
  ensure_message (self);
  milter_headers_add (milter_message_result_get_headers (priv->message_result),
                      packet->header.name, packet->header.value);
  begin_step (self, STEP_HEADER);
  EMIT_EVENT (self, SIGNAL_HEADER, header, status, packet->header.name, packet->header.value);
  finish_step (self, STEP_HEADER, status);
}

static void
handle_end_of_header (MilterClientContext *self,
                      const MilterPacket  *packet)
{
  MilterStatus status = MILTER_STATUS_DEFAULT;

  if (!enter_position (self, AT_END_OF_HEADER, packet->command))
    return;
  ensure_message (self);
  begin_step (self, STEP_END_OF_HEADER);
  EMIT_EVENT (self, SIGNAL_END_OF_HEADER, end_of_header, status);
  finish_step (self, STEP_END_OF_HEADER, status);
}

/* Emits a chunk signal pair: the string form (unless use-bytes), then the
 * GBytes form if nobody decided yet. The chunk is NUL-terminated in place
 * for the string form (the decoder keeps a spare byte after every
 * payload) so a binding reading it as a string cannot run past it. */
/* The class methods of the chunk signals: body and end-of-message alike. */
typedef MilterStatus (*StringChunkMethod) (MilterClientContext *context,
                                           const gchar         *chunk,
                                           guint64              size);
typedef MilterStatus (*BytesChunkMethod) (MilterClientContext *context,
                                          GBytes              *chunk);

static MilterStatus
emit_chunk (MilterClientContext *self,
            guint                string_index,
            guint                bytes_index,
            const MilterPacket  *packet,
            gboolean             nullable)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  MilterStatus status = MILTER_STATUS_DEFAULT;

  if (!priv->use_bytes && is_handled (self, string_index))
    {
      guint8 *data = (guint8 *) packet->data;
      guint8 saved = data[packet->size];
      const gchar *chunk = nullable && packet->size == 0 ? NULL : (const gchar *) data;

      data[packet->size] = '\0';
      if (only_class_method (self, string_index))
        status = accumulated (((StringChunkMethod) class_method (self, string_index))
                              (self, chunk, packet->size));
      else
        g_signal_emit (self, signals[string_index], 0, chunk, (guint64) packet->size, &status);
      data[packet->size] = saved;
    }
  if (is_no_opinion (status) && is_handled (self, bytes_index))
    {
      g_autoptr(GBytes) bytes = NULL;

      if (!nullable || packet->size > 0)
        bytes = milter_decoder_get_payload_bytes (priv->decoder);
      if (only_class_method (self, bytes_index))
        status = accumulated (((BytesChunkMethod) class_method (self, bytes_index)) (self, bytes));
      else
        g_signal_emit (self, signals[bytes_index], 0, bytes, &status);
    }
  return status;
}

static void
handle_body (MilterClientContext *self,
             const MilterPacket  *packet)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  MilterStatus status;

  if (!enter_position (self, AT_BODY, packet->command))
    return;
  ensure_message (self);
  milter_message_result_add_body_size (priv->message_result, packet->size);
  begin_step (self, STEP_BODY);
  status = emit_chunk (self, SIGNAL_BODY, SIGNAL_BODY_BYTES, packet, FALSE);
  finish_step (self, STEP_BODY, status);
}

static void
handle_end_of_message (MilterClientContext *self,
                       const MilterPacket  *packet)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  MilterStatus status;

  if (!enter_position (self, AT_END_OF_MESSAGE, packet->command))
    return;
  ensure_message (self);
  milter_message_result_add_body_size (priv->message_result, packet->size);
  begin_step (self, STEP_END_OF_MESSAGE);
  status = emit_chunk (self, SIGNAL_END_OF_MESSAGE, SIGNAL_END_OF_MESSAGE_BYTES,
                       packet, TRUE);
  finish_step (self, STEP_END_OF_MESSAGE, status);
}

static void
handle_unknown (MilterClientContext *self,
                const MilterPacket  *packet)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  MilterStatus status = MILTER_STATUS_DEFAULT;
  Position before = priv->position;
  gboolean in_place = (priv->allowed[before] & AT (AT_UNKNOWN)) != 0;

  if (!enter_position (self, AT_UNKNOWN, packet->command))
    return;
  /* Where it came in place, the order goes on from the command before it;
   * where it ended a dropped message, from HELO. */
  priv->position = in_place ? before : AT_HELO;
  begin_step (self, STEP_UNKNOWN);
  EMIT_EVENT (self, SIGNAL_UNKNOWN, unknown, status, packet->string);
  finish_step (self, STEP_UNKNOWN, status);
}

/* 'A': tolerated anywhere after negotiation, repeated, and after
 * end-of-message (Postfix sends one after every message). It matters
 * only while a message is open and undecided. */
static void
handle_abort (MilterClientContext *self,
              const MilterPacket  *packet)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  MilterStatus status = MILTER_STATUS_DEFAULT;
  MilterClientContextState state = priv->state;

  if (priv->position == AT_START)
    {
      enter_position (self, AT_MAIL, packet->command);  /* reports the error */
      return;
    }
  if (priv->position != AT_UNKNOWN && priv->position > AT_HELO)
    priv->position = AT_HELO;
  /* A decided message is already finished: nothing to abort. */
  if (!priv->in_message)
    return;
  begin_step (self, STEP_ABORT);
  EMIT_EVENT (self, SIGNAL_ABORT, abort, status, state);
  finish_step (self, STEP_ABORT, status);
}

static void
clear_private_data (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  gpointer data = g_steal_pointer (&priv->private_data);
  GDestroyNotify destroy = g_steal_pointer (&priv->private_data_destroy);

  if (destroy != NULL && data != NULL)
    destroy (data);
}

/* Ends a message the connection's end interrupts, then announces the end
 * of the connection. */
static void
emit_finished (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->in_message)
    {
      emit_abort (self);
      finish_message (self, MILTER_STATUS_ABORT);
    }
  set_state (self, MILTER_CLIENT_CONTEXT_STATE_FINISHED);
  g_object_ref (self);  /* the finished func may drop the owner's reference */
  g_signal_emit (self, signals[SIGNAL_FINISHED], 0);
  clear_private_data (self);
  if (priv->finished_func != NULL)
    priv->finished_func (self, priv->finished_data);
  g_object_unref (self);
}

static void
handle_quit (MilterClientContext *self,
             const MilterPacket  *packet)
{
  set_state (self, MILTER_CLIENT_CONTEXT_STATE_QUIT);
  end_connection (self, NULL);
}

/* 'K': this SMTP connection ends, another follows on the same socket with
 * the same negotiated options (protocol.md §5.4). */
static void
handle_quit_new_connection (MilterClientContext *self,
                            const MilterPacket  *packet)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->position < AT_NEGOTIATE)
    {
      enter_position (self, AT_CONNECT, packet->command);  /* reports the error */
      return;
    }
  emit_finished (self);
  clear_macros_from (self, MACROS_CONNECT);
  g_clear_pointer (&priv->reply_code, g_free);
  g_clear_pointer (&priv->quarantine_reason, g_free);
  priv->position = AT_NEGOTIATE;
  set_state (self, MILTER_CLIENT_CONTEXT_STATE_NEGOTIATE_REPLIED);
}

static void
dispatch (MilterClientContext *self,
          const MilterPacket  *packet)
{
  switch (packet->command)
    {
    case 'O': handle_negotiate (self, packet); break;
    case 'D': handle_define_macro (self, packet); break;
    case 'C': handle_connect (self, packet); break;
    case 'H': handle_helo (self, packet); break;
    case 'M': handle_envelope_from (self, packet); break;
    case 'R': handle_envelope_recipient (self, packet); break;
    case 'T': handle_data (self, packet); break;
    case 'L': handle_header (self, packet); break;
    case 'N': handle_end_of_header (self, packet); break;
    case 'B': handle_body (self, packet); break;
    case 'E': handle_end_of_message (self, packet); break;
    case 'U': handle_unknown (self, packet); break;
    case 'A': handle_abort (self, packet); break;
    case 'Q': handle_quit (self, packet); break;
    case 'K': handle_quit_new_connection (self, packet); break;
    default: g_assert_not_reached ();  /* the decoder knows only these */
    }
}

/* Dispatches every complete command, until a reply is pending. */
static gboolean
process_input (MilterClientContext  *self,
               GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  gboolean progressed = FALSE;

  while (!priv->reply_pending && !priv->closing)
    {
      GError *decode_error = NULL;
      const MilterPacket *packet = milter_decoder_next (priv->decoder, &decode_error);

      if (packet == NULL)
        {
          if (decode_error != NULL)
            {
              if (error != NULL)
                *error = g_error_copy (decode_error);
              end_connection (self, decode_error);
              return FALSE;
            }
          break;
        }
      dispatch (self, packet);
      progressed = TRUE;
    }
  /* Only whole commands count as activity: a peer trickling one byte a
   * second must still run into the timeout. */
  if (progressed)
    priv->last_activity = current_time (self);
  if (milter_decoder_get_pending_size (priv->decoder) == 0)
    milter_decoder_release_buffer (priv->decoder);
  return TRUE;
}

/* ---- replies ---------------------------------------------------------- */

static gchar
reply_letter (MilterClientContext *self,
              Step                 step,
              MilterStatus         status,
              gboolean            *use_reply_code)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  *use_reply_code = FALSE;
  switch (status)
    {
    case MILTER_STATUS_ACCEPT:
      return 'a';
    case MILTER_STATUS_REJECT:
      *use_reply_code = priv->reply_code != NULL && priv->reply_code[0] == '5';
      return 'r';
    case MILTER_STATUS_TEMPORARY_FAILURE:
      *use_reply_code = priv->reply_code != NULL && priv->reply_code[0] == '4';
      return 't';
    case MILTER_STATUS_DISCARD:
      return 'd';
    case MILTER_STATUS_SKIP:
      /* Only a body chunk can be skipped, and only if the MTA knows how. */
      if (step == STEP_BODY && step_enabled (self, MILTER_STEP_SKIP))
        return 's';
      return 'c';
    default:
      /* CONTINUE, NO_REPLY, ALL_OPTIONS: respond() replaced the rest. */
      return 'c';
    }
}

static gboolean
decides_message (Step         step,
                 MilterStatus status)
{
  if (step == STEP_END_OF_MESSAGE)
    return TRUE;
  if (step < STEP_ENVELOPE_FROM || step == STEP_UNKNOWN || step == STEP_ABORT)
    return FALSE;
  switch (status)
    {
    case MILTER_STATUS_ACCEPT:
    case MILTER_STATUS_DISCARD:
      return TRUE;
    case MILTER_STATUS_REJECT:
    case MILTER_STATUS_TEMPORARY_FAILURE:
      /* A rejected recipient leaves the message open. */
      return step != STEP_ENVELOPE_RECIPIENT;
    default:
      return FALSE;
    }
}

static void
write_reply (MilterClientContext *self,
             Step                 step,
             MilterStatus         status)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  gboolean use_reply_code;
  gchar letter = reply_letter (self, step, status, &use_reply_code);

  if (use_reply_code)
    {
      milter_encoder_encode_string (priv->out, 'y', priv->reply_code);
      /* libmilter sends a reply text once; a non-matching one stays. */
      g_clear_pointer (&priv->reply_code, g_free);
    }
  else
    {
      milter_encoder_encode_empty (priv->out, letter);
    }
}

static void
flush_replacement_body (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->replacement_body == NULL)
    return;
  /* Postfix wants every 'b' packet in one contiguous run. */
  milter_encoder_encode_replace_body (priv->out, priv->replacement_body->data,
                                      priv->replacement_body->len);
  g_clear_pointer (&priv->replacement_body, g_byte_array_unref);
}

static void
record_recipient (MilterClientContext *self,
                  MilterStatus         status)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  g_autofree gchar *recipient = g_steal_pointer (&priv->recipient);

  if (recipient == NULL || priv->message_result == NULL)
    return;
  if (status == MILTER_STATUS_REJECT || status == MILTER_STATUS_TEMPORARY_FAILURE)
    milter_message_result_add_rejected_recipient (priv->message_result, recipient);
  else
    milter_message_result_add_recipient (priv->message_result, recipient);
}


/* The signals of a step's event: the string and the GBytes form. */
static const guint step_signals[N_STEPS][2] = {
  [STEP_NEGOTIATE] = { SIGNAL_NEGOTIATE, SIGNAL_NEGOTIATE },
  [STEP_CONNECT] = { SIGNAL_CONNECT, SIGNAL_CONNECT },
  [STEP_HELO] = { SIGNAL_HELO, SIGNAL_HELO },
  [STEP_ENVELOPE_FROM] = { SIGNAL_ENVELOPE_FROM, SIGNAL_ENVELOPE_FROM },
  [STEP_ENVELOPE_RECIPIENT] = { SIGNAL_ENVELOPE_RECIPIENT, SIGNAL_ENVELOPE_RECIPIENT },
  [STEP_DATA] = { SIGNAL_DATA, SIGNAL_DATA },
  [STEP_UNKNOWN] = { SIGNAL_UNKNOWN, SIGNAL_UNKNOWN },
  [STEP_HEADER] = { SIGNAL_HEADER, SIGNAL_HEADER },
  [STEP_END_OF_HEADER] = { SIGNAL_END_OF_HEADER, SIGNAL_END_OF_HEADER },
  [STEP_BODY] = { SIGNAL_BODY, SIGNAL_BODY_BYTES },
  [STEP_END_OF_MESSAGE] = { SIGNAL_END_OF_MESSAGE, SIGNAL_END_OF_MESSAGE_BYTES },
  [STEP_ABORT] = { SIGNAL_ABORT, SIGNAL_ABORT },
};

/* The status of a step whose handlers had no opinion: the fallback if
 * there were handlers (each raised or returned nothing in a binding,
 * or said "no opinion"), continue if there were none (the MTA sent the
 * event anyway, for example for message-processed). */
static MilterStatus
no_opinion_status (MilterClientContext *self,
                   Step                 step)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (is_handled (self, step_signals[step][0]) || is_handled (self, step_signals[step][1]))
    return priv->fallback_status;
  return MILTER_STATUS_CONTINUE;
}

/* The one place where a status becomes a reply. */
static void
respond (MilterClientContext *self,
         Step                 step,
         MilterStatus         status)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  gboolean no_reply = step_info[step].no_reply != 0 && step_enabled (self, step_info[step].no_reply);

  if (!is_reply_status (status))
    {
      /* A handler's bug: fail the way the filter chose to fail. */
      g_message ("%s: status %d makes no sense as a reply; answering with the fallback status",
                 step_info[step].name, status);
      status = priv->fallback_status;
    }
  if (is_no_opinion (status))
    status = no_opinion_status (self, step);
  if (no_reply)
    {
      /* The MTA reads no reply: one would desynchronise the stream. The
       * MTA never learns the verdict, so the message goes on, and what
       * the context records (status, recipients) says so too. */
      if (status != MILTER_STATUS_CONTINUE && status != MILTER_STATUS_NO_REPLY)
        g_message ("%s: dropped the verdict of a step negotiated as no-reply", step_info[step].name);
      status = MILTER_STATUS_CONTINUE;
    }
  priv->in_step = FALSE;
  milter_client_context_set_status (self, status);

  if (step == STEP_ENVELOPE_RECIPIENT)
    record_recipient (self, status);

  /* Abort has no reply on the wire. */
  if (step != STEP_ABORT && !no_reply)
    {
      if (step == STEP_END_OF_MESSAGE)
        flush_replacement_body (self);
      write_reply (self, step, status);
    }
  set_state (self, step_info[step].state + 1);

  if (step == STEP_ABORT)
    finish_message (self, MILTER_STATUS_ABORT);
  else if (priv->in_message && decides_message (step, status))
    {
      finish_message (self, step == STEP_END_OF_MESSAGE && status == MILTER_STATUS_CONTINUE ?
                      MILTER_STATUS_ACCEPT : status);
    }
}

/* ---- negotiation ------------------------------------------------------ */

typedef struct
{
  guint signal_index[2];
  MilterStepFlags no_event;
  MilterStepFlags no_reply;
  gboolean needed_for_result;
} EventSteps;

static const EventSteps event_steps[] = {
  { { SIGNAL_CONNECT, SIGNAL_CONNECT }, MILTER_STEP_NO_CONNECT, MILTER_STEP_NO_REPLY_CONNECT, FALSE },
  { { SIGNAL_HELO, SIGNAL_HELO }, MILTER_STEP_NO_HELO, MILTER_STEP_NO_REPLY_HELO, FALSE },
  { { SIGNAL_ENVELOPE_FROM, SIGNAL_ENVELOPE_FROM }, MILTER_STEP_NO_ENVELOPE_FROM,
    MILTER_STEP_NO_REPLY_ENVELOPE_FROM, TRUE },
  { { SIGNAL_ENVELOPE_RECIPIENT, SIGNAL_ENVELOPE_RECIPIENT }, MILTER_STEP_NO_ENVELOPE_RECIPIENT,
    MILTER_STEP_NO_REPLY_ENVELOPE_RECIPIENT, TRUE },
  { { SIGNAL_DATA, SIGNAL_DATA }, MILTER_STEP_NO_DATA, MILTER_STEP_NO_REPLY_DATA, FALSE },
  { { SIGNAL_HEADER, SIGNAL_HEADER }, MILTER_STEP_NO_HEADERS, MILTER_STEP_NO_REPLY_HEADER, TRUE },
  { { SIGNAL_END_OF_HEADER, SIGNAL_END_OF_HEADER }, MILTER_STEP_NO_END_OF_HEADER,
    MILTER_STEP_NO_REPLY_END_OF_HEADER, FALSE },
  { { SIGNAL_BODY, SIGNAL_BODY_BYTES }, MILTER_STEP_NO_BODY, MILTER_STEP_NO_REPLY_BODY, TRUE },
  { { SIGNAL_UNKNOWN, SIGNAL_UNKNOWN }, MILTER_STEP_NO_UNKNOWN, MILTER_STEP_NO_REPLY_UNKNOWN, FALSE },
};

/* The largest data-size extension the MTA offers that our packet limit
 * can take. */
static MilterStepFlags
accepted_data_size (MilterClientContext *self,
                    MilterStepFlags      offered)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  gsize limit = milter_decoder_get_max_packet_length (priv->decoder);

  if ((offered & MILTER_STEP_MAX_DATA_SIZE_1M) && limit >= 1048575 + 1)
    return MILTER_STEP_MAX_DATA_SIZE_1M;
  if ((offered & MILTER_STEP_MAX_DATA_SIZE_256K) && limit >= 262143 + 1)
    return MILTER_STEP_MAX_DATA_SIZE_256K;
  return MILTER_STEP_NONE;
}

/* ALL_OPTIONS: every offered action; the MTA leaves out (and waits for no
 * reply to) every event without a handler. */
static MilterOption *
all_options (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  MilterStepFlags offered = milter_option_get_step (priv->offer);
  gboolean keep_for_result = is_handled (self, SIGNAL_MESSAGE_PROCESSED);
  MilterStepFlags step = MILTER_STEP_NONE;

  for (guint i = 0; i < G_N_ELEMENTS (event_steps); i++)
    {
      const EventSteps *event = &event_steps[i];

      if (is_handled (self, event->signal_index[0]) ||
          (event->signal_index[1] != event->signal_index[0] &&
           is_handled (self, event->signal_index[1])) ||
          (keep_for_result && event->needed_for_result))
        continue;
      step |= event->no_event | event->no_reply;
    }
  step = (step | MILTER_STEP_SKIP) & offered;
  step |= accepted_data_size (self, offered);
  return milter_option_new (MIN (milter_option_get_version (priv->offer), MILTER_PROTOCOL_VERSION),
                            milter_option_get_action (priv->offer), step);
}

/* CONTINUE: the handler's option, within the offer. As libmilter does,
 * no-reply bits the MTA lacks are dropped (the context then sends
 * continue), and so are "no data"/"no unknown" for older MTAs. */
static MilterOption *
checked_option (MilterClientContext  *self,
                MilterOption         *requested,
                GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  MilterOption *offer = priv->offer;
  guint32 version = milter_option_get_version (requested);
  MilterActionFlags action = milter_option_get_action (requested);
  MilterStepFlags step = milter_option_get_step (requested);
  MilterStepFlags offered = milter_option_get_step (offer);
  MilterStepFlags droppable = MILTER_STEP_NO_REPLY_MASK | MILTER_STEP_NO_DATA | MILTER_STEP_NO_UNKNOWN;
  MilterActionFlags extra_action = action & ~milter_option_get_action (offer);
  MilterStepFlags extra_step;

  step &= ~(droppable & ~offered);
  extra_step = step & ~offered;
  if (version < 2 || version > milter_option_get_version (offer) || extra_action != 0 ||
      extra_step != 0)
    {
      g_autofree gchar *requested_text = milter_option_to_string (requested);
      g_autofree gchar *offer_text = milter_option_to_string (offer);

      g_set_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_NEGOTIATION,
                   "Negotiation asked for %s, which is not within the MTA's offer %s",
                   requested_text, offer_text);
      return NULL;
    }
  /* A larger data size than the packet limit can take is dropped: the
   * MTA then keeps to 64 KiB chunks. Bits protocol 6 does not define
   * (SMFI_INTERNAL's reserved one, SMFIP_TEST) never go back, as in
   * libmilter. */
  step = (step & MILTER_STEP_ALL) | accepted_data_size (self, step);
  return milter_option_new (MIN (version, MILTER_PROTOCOL_VERSION), action, step);
}

static void
respond_negotiate (MilterClientContext  *self,
                   MilterOption         *option,
                   MilterMacrosRequests *requests,
                   MilterStatus          status)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  g_autoptr(MilterOption) reply = NULL;
  GError *error = NULL;

  priv->in_step = FALSE;
  priv->status = status;
  switch (status)
    {
    case MILTER_STATUS_DEFAULT:
    case MILTER_STATUS_NOT_CHANGE:
    case MILTER_STATUS_ALL_OPTIONS:
      reply = all_options (self);
      break;
    case MILTER_STATUS_CONTINUE:
      reply = checked_option (self, option, &error);
      if (reply == NULL)
        {
          end_connection (self, error);
          return;
        }
      break;
    default:
      /* As libmilter: the session ends without a negotiation reply. */
      end_connection (self, NULL);
      return;
    }

  milter_encoder_encode_negotiate_reply (priv->out, reply,
                                         milter_macros_requests_is_empty (requests) ? NULL : requests);
  g_clear_pointer (&priv->option, milter_option_free);
  priv->option = g_steal_pointer (&reply);
  compute_allowed_positions (self);
  set_state (self, MILTER_CLIENT_CONTEXT_STATE_NEGOTIATE_REPLIED);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_OPTION]);
}

/* ---- -response signals -------------------------------------------------- */

/* A response is legitimate if it is our own implicit emission, or the
 * answer to a pending PROGRESS for that step. After the connection is
 * gone it is silently ignored (like libsoup's unpause); anything else is
 * a programming error. */
static gboolean
accept_response (MilterClientContext *self,
                 Step                 step)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->responding && priv->current_step == step)
    return TRUE;
  if (priv->closing || priv->finished)
    return FALSE;
  if (priv->reply_pending && priv->current_step == step)
    {
      priv->reply_pending = FALSE;
      /* Go on with the next command from the main loop, not from the
       * caller's stack. */
      wake_up (self);
      return TRUE;
    }
  g_critical ("%s-response emitted while no %s reply is pending",
              step_info[step].name, step_info[step].name);
  return FALSE;
}

static void
real_response (MilterClientContext *self,
               Step                 step,
               MilterStatus         status)
{
  if (status == MILTER_STATUS_PROGRESS)
    {
      g_critical ("%s-response: the status must be a verdict, not progress", step_info[step].name);
      return;
    }
  if (accept_response (self, step))
    respond (self, step, status);
}

/* The class methods of the -response signals: each knows its step, since
 * it may be called without an emission. */
#define DEFINE_RESPONSE(method, step)                        \
  static void                                                \
  real_##method (MilterClientContext *self,                  \
                 MilterStatus         status)                \
  {                                                          \
    real_response (self, (step), status);                    \
  }

DEFINE_RESPONSE (connect_response, STEP_CONNECT)
DEFINE_RESPONSE (helo_response, STEP_HELO)
DEFINE_RESPONSE (envelope_from_response, STEP_ENVELOPE_FROM)
DEFINE_RESPONSE (envelope_recipient_response, STEP_ENVELOPE_RECIPIENT)
DEFINE_RESPONSE (data_response, STEP_DATA)
DEFINE_RESPONSE (unknown_response, STEP_UNKNOWN)
DEFINE_RESPONSE (header_response, STEP_HEADER)
DEFINE_RESPONSE (end_of_header_response, STEP_END_OF_HEADER)
DEFINE_RESPONSE (body_response, STEP_BODY)
DEFINE_RESPONSE (end_of_message_response, STEP_END_OF_MESSAGE)
DEFINE_RESPONSE (abort_response, STEP_ABORT)
#undef DEFINE_RESPONSE

static void
real_negotiate_response (MilterClientContext  *self,
                         MilterOption         *option,
                         MilterMacrosRequests *requests,
                         MilterStatus          status)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (status == MILTER_STATUS_PROGRESS)
    {
      g_critical ("negotiate-response: the status must be a verdict, not progress");
      return;
    }
  if (accept_response (self, STEP_NEGOTIATE))
    respond_negotiate (self, option != NULL ? option : priv->negotiate_option,
                       requests != NULL ? requests : priv->negotiate_requests, status);
}

/* ---- the main loop side ----------------------------------------------- */

/* One source per context does all of its main-loop work: it watches the
 * socket (or the pollable child sources), runs deferred work when woken
 * up (ready time 0: replies are never written from a caller's stack) and
 * looks at the idle timeout (ready time = deadline). */
typedef struct
{
  GSource parent;
  MilterClientContext *context;  /* not a reference: the context owns the source */
} ContextSource;

static gboolean context_source_dispatch (GSource     *source,
                                         GSourceFunc  callback,
                                         gpointer     user_data);

#define MAX_WAKE_ROUNDS 4

static GSourceFuncs context_source_funcs = {
  NULL, NULL, context_source_dispatch, NULL, NULL, NULL
};

static void
create_source (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  priv->source = g_source_new (&context_source_funcs, sizeof (ContextSource));
  ((ContextSource *) priv->source)->context = self;
  g_source_set_static_name (priv->source, "MilterClientContext");
  /* GLib blocks a source that cannot recurse while it dispatches, which
   * takes its descriptor out of the poll set and back, waking the main
   * context up twice per dispatch: a recursion guard is cheaper. */
  g_source_set_can_recurse (priv->source, TRUE);
}

/* Attached when there is something to watch or to run: adding a
 * descriptor or a ready time to an attached source wakes the main context
 * up, attaching it with both at once does so only once. */
static void
attach_source (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->source != NULL && g_source_get_context (priv->source) == NULL)
    g_source_attach (priv->source, priv->main_context);
}

static void
destroy_source (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->source == NULL)
    return;
  g_source_destroy (priv->source);
  g_clear_pointer (&priv->source, g_source_unref);
}

/* ---- parking ------------------------------------------------------------ */

/* Whether fd may wait in the parking lot: nothing to do but wait for the
 * MTA's next command. Sessions that use streams are never parked. */
static gboolean
can_park (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  return priv->parking_lot != NULL && priv->parking_space == NULL && priv->fd_tag != NULL &&
         !priv->closing && !priv->eof && !priv->woken && !priv->reply_pending &&
         !priv->in_step && output_pending (self) == 0 &&
         milter_decoder_get_pending_size (priv->decoder) == 0;
}

/* When the source must run by itself next: at the timeout's deadline, or
 * earlier to look at idleness. Like the deadline, park_time moves only
 * when it comes: a ready time that changed on every dispatch would wake
 * the main context up once more each time. */
static gint64
next_ready_time (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->parking_space != NULL || priv->park_time < 0)
    return priv->deadline;
  if (priv->deadline >= 0 && priv->deadline < priv->park_time)
    return priv->deadline;
  return priv->park_time;
}

/* Once the connection has been idle long enough, moves fd to the parking
 * lot, with the idle timeout's deadline, and replaces the source by a new
 * one that stays detached until the lot wakes the session up. */
static void
park_if_idle (MilterClientContext *self,
              gint64               now)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->park_time < 0 || now < priv->park_time)
    return;
  if (!can_park (self))
    {
      priv->park_time = now + priv->park_delay;
      return;
    }
  if (now < priv->last_activity + priv->park_delay)
    {
      priv->park_time = priv->last_activity + priv->park_delay;
      return;
    }
  priv->parking_space = milter_parking_lot_park (priv->parking_lot, priv->fd,
                                                 idle_deadline (self), self);
  if (priv->parking_space == NULL)
    {
      priv->parking_lot = NULL;  /* not a descriptor epoll takes: never again */
      priv->park_time = -1;
      return;
    }
  g_source_remove_unix_fd (priv->source, priv->fd_tag);
  priv->fd_tag = NULL;
  priv->fd_events = 0;
  destroy_source (self);
  create_source (self);
}

/* Gives the parking space up, without watching fd again. */
static void
leave_parking_space (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->parking_space == NULL)
    return;
  milter_parking_lot_unpark (priv->parking_lot, priv->parking_space);
  priv->parking_space = NULL;
}

/* Takes fd back from the parking lot into the source, attached. */
static void
unpark (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->parking_space == NULL)
    return;
  leave_parking_space (self);
  priv->park_time = current_time (self) + priv->park_delay;
  priv->fd_events = G_IO_IN;
  priv->fd_tag = g_source_add_unix_fd (priv->source, priv->fd, G_IO_IN);
  attach_source (self);
}

void
milter_client_context_wake_parked (gpointer context)
{
  MilterClientContext *self = context;
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  /* The dispatch takes fd back and reads what came, if anything (the
   * deadline may be what woke the session). */
  priv->stream_events |= G_IO_IN;
  g_source_set_ready_time (priv->source, 0);
  attach_source (self);
}

void
milter_client_context_set_parking_lot (MilterClientContext *context,
                                       MilterParkingLot    *lot,
                                       gint64               delay)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  unpark (context);
  priv->parking_lot = lot;
  priv->park_delay = delay;
  priv->park_time = lot != NULL ? g_get_monotonic_time () + delay : -1;
  if (priv->source != NULL && !priv->woken)
    g_source_set_ready_time (priv->source, next_ready_time (context));
}

gboolean
milter_client_context_is_parked (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  return priv->parking_space != NULL;
}

/* After any work: watch what the session waits for, and run again when
 * woken up or at the deadline. Setting the ready time from the source's
 * own dispatch costs no wake-up of the main context. */
static void
settle (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->source == NULL)
    return;
  update_watches (self);
  g_source_set_ready_time (priv->source, priv->woken ? 0 : next_ready_time (self));
}

static void
close_stream (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  leave_parking_space (self);
  if (priv->fd_tag != NULL)
    {
      g_source_remove_unix_fd (priv->source, priv->fd_tag);
      priv->fd_tag = NULL;
    }
  remove_child_source (self, &priv->read_source);
  remove_child_source (self, &priv->write_source);
  priv->deadline = -1;
  priv->park_time = -1;
  /* Best effort: replies before the end (none follow 'Q'). */
  flush_output (self);
  if (priv->stream != NULL)
    g_io_stream_close (priv->stream, NULL, NULL);
  else if (priv->fd >= 0)
    close (priv->fd);  /* a bare descriptor from MilterClient */
  priv->fd = -1;
  g_clear_object (&priv->input);
  g_clear_object (&priv->output);
  g_clear_object (&priv->stream);
}

/* Emits error; an error nobody handles is logged, so that the operator
 * of a filter learns why the MTA saw the session fail. */
static void
report_error (MilterClientContext *self,
              const GError        *error)
{
  if (!is_handled (self, SIGNAL_ERROR))
    g_message ("The session ended: %s", error->message);
  g_signal_emit (self, signals[SIGNAL_ERROR], 0, error);
}

/* The teardown, always from the main loop: error, abort, finished, close. */
static void
complete_close (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  g_autoptr(GError) error = g_steal_pointer (&priv->pending_error);

  if (priv->finished)
    return;
  priv->finished = TRUE;
  priv->reply_pending = FALSE;
  if (error != NULL)
    report_error (self, error);
  emit_finished (self);
  close_stream (self);
  /* Nothing is left for the main loop to do. */
  destroy_source (self);
  milter_decoder_release_buffer (priv->decoder);
}

static void
run (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->closing)
    {
      complete_close (self);
      return;
    }
  process_input (self, NULL);
  flush_output (self);
  if (priv->closing)
    wake_up (self);
}

static void
wake_up (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->woken || priv->source == NULL)
    return;
  priv->woken = TRUE;
  /* From the source's own dispatch, the work runs before it returns:
   * changing the ready time would wake the main context up for nothing. */
  if (!priv->dispatching)
    {
      g_source_set_ready_time (priv->source, 0);
      attach_source (self);
    }
}

/* Stops reading and schedules the teardown; only the first call counts. */
static void
end_connection (MilterClientContext *self,
                GError              *error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->closing)
    {
      g_clear_error (&error);
      return;
    }
  priv->closing = TRUE;
  priv->pending_error = error;
  priv->deadline = -1;
  wake_up (self);
}

static void
handle_eof (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  priv->eof = TRUE;
  if (milter_decoder_get_pending_size (priv->decoder) > 0 && !priv->reply_pending)
    end_connection (self, g_error_new (MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_IO,
                                       "The MTA closed the connection in the middle of a packet"));
  else
    end_connection (self, NULL);
}

static void
read_ready (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  GError *error = NULL;
  gsize size;
  guint8 *area = milter_decoder_get_write_area (priv->decoder, &size);
  gssize n = transport_read (self, area, size, &error);

  if (n > 0)
    {
      milter_decoder_commit (priv->decoder, (gsize) n);
      process_input (self, NULL);
      flush_output (self);
    }
  else if (n == 0)
    {
      handle_eof (self);
    }
  else if (error != NULL)
    {
      end_connection (self, g_error_new (MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_IO,
                                         "Failed to read from the MTA: %s", error->message));
      g_error_free (error);
    }
}

static void
check_timeout (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  gint64 now = current_time (self);
  gint64 deadline;

  /* Waiting for our own deferred reply is not the MTA's idleness. */
  if (priv->reply_pending && output_pending (self) == 0)
    priv->last_activity = now;
  deadline = idle_deadline (self);
  if (now < deadline)
    {
      priv->deadline = deadline;
      return;
    }
  priv->deadline = -1;
  g_signal_emit (self, signals[SIGNAL_TIMEOUT], 0);
  end_connection (self, NULL);
}

/* A handler ran a main loop of its own: nothing can go on until it
 * returns, so stop watching (or that loop would spin) until settle(). */
static void
pause_watches (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->fd_tag != NULL && priv->fd_events != 0)
    {
      g_source_modify_unix_fd (priv->source, priv->fd_tag, 0);
      priv->fd_events = 0;
    }
  if (priv->input != NULL)
    watch_stream (self, FALSE, FALSE);
  g_source_set_ready_time (priv->source, -1);
}

static gboolean
context_source_dispatch (GSource     *source,
                         GSourceFunc  callback,
                         gpointer     user_data)
{
  MilterClientContext *self = ((ContextSource *) source)->context;
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  GIOCondition revents;

  if (priv->dispatching)
    {
      pause_watches (self);
      return G_SOURCE_CONTINUE;
    }
  g_object_ref (self);
  priv->dispatching = TRUE;
  priv->dispatch_time = g_source_get_time (source);
  unpark (self);
  revents = priv->stream_events;
  priv->stream_events = 0;
  if (priv->fd_tag != NULL)
    revents |= g_source_query_unix_fd (source, priv->fd_tag);
  if (revents & G_IO_OUT)
    {
      flush_output (self);
      if (priv->closing)
        wake_up (self);
    }
  if (!priv->closing && (revents & (G_IO_IN | G_IO_HUP | G_IO_ERR)))
    {
      if (priv->fd_tag == NULL || (priv->fd_events & G_IO_IN))
        read_ready (self);
      else
        handle_eof (self);  /* gone while we were not reading */
    }
  if (!priv->woken && priv->deadline >= 0 && priv->dispatch_time >= priv->deadline)
    check_timeout (self);
  /* Deferred work (a late reply, the teardown) runs here, on the main
   * loop's stack; a few rounds at most, then it waits for the next
   * iteration so that other sources get their turn. */
  for (guint round = 0; priv->woken && round < MAX_WAKE_ROUNDS; round++)
    {
      priv->woken = FALSE;
      run (self);
    }
  priv->dispatching = FALSE;
  park_if_idle (self, priv->dispatch_time);
  settle (self);
  g_object_unref (self);
  return G_SOURCE_CONTINUE;
}

static void
arm_timeout (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  unpark (self);  /* the lot has the old deadline; the session parks again */
  if (!has_transport (self) || priv->closing)
    priv->deadline = -1;
  else
    priv->deadline = idle_deadline (self);
  if (priv->source != NULL && !priv->woken)
    g_source_set_ready_time (priv->source, next_ready_time (self));
}

static void
schedule_flush (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->in_step && !priv->reply_pending)
    return;  /* flushed when the current batch is done */
  wake_up (self);
}

/* ---- GObject ----------------------------------------------------------- */

static void
milter_client_context_dispose (GObject *object)
{
  MilterClientContext *self = MILTER_CLIENT_CONTEXT (object);
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  /* No handler runs from here (a binding may dispose from its garbage
   * collector): a session still open closes without events. */
  /* No teardown may be scheduled from here on. */
  priv->closing = TRUE;
  close_stream (self);
  destroy_source (self);
  clear_private_data (self);
  g_clear_weak_pointer (&priv->client);
  g_clear_object (&priv->message_result);

  G_OBJECT_CLASS (milter_client_context_parent_class)->dispose (object);
}

static void
milter_client_context_finalize (GObject *object)
{
  MilterClientContext *self = MILTER_CLIENT_CONTEXT (object);
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  milter_decoder_free (priv->decoder);
  g_byte_array_unref (priv->out);
  g_clear_pointer (&priv->replacement_body, g_byte_array_unref);
  g_clear_pointer (&priv->offer, milter_option_free);
  g_clear_pointer (&priv->option, milter_option_free);
  g_clear_pointer (&priv->negotiate_option, milter_option_free);
  g_clear_pointer (&priv->negotiate_requests, milter_macros_requests_free);
  g_hash_table_unref (priv->shelf);
  g_clear_pointer (&priv->esmtp_parameters, g_strfreev);
  g_free (priv->reply_code);
  g_free (priv->quarantine_reason);
  g_free (priv->recipient);
  free_macros (self);
  g_clear_pointer (&priv->macros_cache, g_hash_table_unref);
  g_clear_error (&priv->pending_error);
  g_main_context_unref (priv->main_context);

  G_OBJECT_CLASS (milter_client_context_parent_class)->finalize (object);
}

static void
milter_client_context_get_property (GObject    *object,
                                    guint       prop_id,
                                    GValue     *value,
                                    GParamSpec *pspec)
{
  MilterClientContext *self = MILTER_CLIENT_CONTEXT (object);
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  switch (prop_id)
    {
    case PROP_CLIENT:
      g_value_set_object (value, priv->client);
      break;
    case PROP_STATE:
      g_value_set_enum (value, priv->state);
      break;
    case PROP_LAST_STATE:
      g_value_set_enum (value, priv->last_state);
      break;
    case PROP_STATUS:
      g_value_set_enum (value, priv->status);
      break;
    case PROP_OPTION:
      g_value_set_boxed (value, priv->option);
      break;
    case PROP_MESSAGE_RESULT:
      g_value_set_object (value, priv->message_result);
      break;
    case PROP_QUARANTINE_REASON:
      g_value_set_string (value, priv->quarantine_reason);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint (value, priv->timeout);
      break;
    case PROP_PACKET_BUFFER_SIZE:
      g_value_set_uint (value, priv->packet_buffer_size);
      break;
    case PROP_USE_BYTES:
      g_value_set_boolean (value, priv->use_bytes);
      break;
    case PROP_MAX_PACKET_LENGTH:
      g_value_set_uint (value, milter_client_context_get_max_packet_length (self));
      break;
    case PROP_MAX_HEADERS:
      g_value_set_uint (value, priv->max_headers);
      break;
    case PROP_MAX_MESSAGE_RESULT_SIZE:
      g_value_set_uint (value, priv->max_message_result_size);
      break;
    case PROP_MAX_RECIPIENTS:
      g_value_set_uint (value, priv->max_recipients);
      break;
    case PROP_MAX_MACROS:
      g_value_set_uint (value, milter_client_context_get_max_macros (self));
      break;
    case PROP_N_PROCESSING_SESSIONS:
      g_value_set_uint (value, milter_client_context_get_n_processing_sessions (self));
      break;
    case PROP_FALLBACK_STATUS:
      g_value_set_enum (value, priv->fallback_status);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
milter_client_context_set_property (GObject      *object,
                                    guint         prop_id,
                                    const GValue *value,
                                    GParamSpec   *pspec)
{
  MilterClientContext *self = MILTER_CLIENT_CONTEXT (object);
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  switch (prop_id)
    {
    case PROP_CLIENT:
      g_set_weak_pointer (&priv->client, g_value_get_object (value));
      break;
    case PROP_STATE:
      milter_client_context_set_state (self, g_value_get_enum (value));
      break;
    case PROP_STATUS:
      milter_client_context_set_status (self, g_value_get_enum (value));
      break;
    case PROP_OPTION:
      milter_client_context_set_option (self, g_value_get_boxed (value));
      break;
    case PROP_QUARANTINE_REASON:
      milter_client_context_set_quarantine_reason (self, g_value_get_string (value));
      break;
    case PROP_TIMEOUT:
      milter_client_context_set_timeout (self, g_value_get_uint (value));
      break;
    case PROP_PACKET_BUFFER_SIZE:
      milter_client_context_set_packet_buffer_size (self, g_value_get_uint (value));
      break;
    case PROP_USE_BYTES:
      milter_client_context_set_use_bytes (self, g_value_get_boolean (value));
      break;
    case PROP_MAX_PACKET_LENGTH:
      milter_client_context_set_max_packet_length (self, g_value_get_uint (value));
      break;
    case PROP_MAX_HEADERS:
      milter_client_context_set_max_headers (self, g_value_get_uint (value));
      break;
    case PROP_MAX_MESSAGE_RESULT_SIZE:
      milter_client_context_set_max_message_result_size (self, g_value_get_uint (value));
      break;
    case PROP_MAX_RECIPIENTS:
      milter_client_context_set_max_recipients (self, g_value_get_uint (value));
      break;
    case PROP_MAX_MACROS:
      milter_client_context_set_max_macros (self, g_value_get_uint (value));
      break;
    case PROP_FALLBACK_STATUS:
      milter_client_context_set_fallback_status (self, g_value_get_enum (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static gboolean
status_accumulator (GSignalInvocationHint *hint,
                    GValue                *return_accu,
                    const GValue          *handler_return,
                    gpointer               user_data)
{
  /* Both values are MilterStatus: read and write the enum slot directly,
   * as generated marshallers do, without a type check per handler. */
  MilterStatus status = (MilterStatus) handler_return->data[0].v_long;

  if (is_no_opinion (status))
    return TRUE;  /* no opinion: the next handler decides */
  return_accu->data[0].v_long = status;
  return FALSE;   /* the first decisive status wins */
}

/* Creates an event signal returning a MilterStatus. */
static guint
new_status_signal (const gchar        *name,
                   guint               class_offset,
                   GSignalCMarshaller  marshaller,
                   GSignalCVaMarshaller va_marshaller,
                   guint               n_params,
                   ...)
{
  va_list args;
  guint id;

  va_start (args, n_params);
  id = g_signal_new_valist (name, MILTER_TYPE_CLIENT_CONTEXT, G_SIGNAL_RUN_LAST,
                            g_signal_type_cclosure_new (MILTER_TYPE_CLIENT_CONTEXT, class_offset),
                            status_accumulator, NULL, marshaller, MILTER_TYPE_STATUS,
                            n_params, args);
  va_end (args);
  if (va_marshaller != NULL)
    g_signal_set_va_marshaller (id, MILTER_TYPE_CLIENT_CONTEXT, va_marshaller);
  return id;
}

static guint
new_response_signal (const gchar *name,
                     guint        class_offset)
{
  guint id = g_signal_new (name, MILTER_TYPE_CLIENT_CONTEXT, G_SIGNAL_RUN_LAST, class_offset,
                           NULL, NULL, _milter_marshal_VOID__ENUM, G_TYPE_NONE,
                           1, MILTER_TYPE_STATUS);

  g_signal_set_va_marshaller (id, MILTER_TYPE_CLIENT_CONTEXT, _milter_marshal_VOID__ENUMv);
  return id;
}

#define STATIC_STRING (G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE)
#define STATIC_BYTES (G_TYPE_BYTES | G_SIGNAL_TYPE_STATIC_SCOPE)

static void
install_properties (GObjectClass *object_class)
{
  GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY;
  GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  /**
   * MilterClientContext:client:
   *
   * The #MilterClient that created this context, if any.
   *
   * Since: 1.0
   */
  properties[PROP_CLIENT] =
    g_param_spec_object ("client", "Client", "The client that created the context",
                         MILTER_TYPE_CLIENT,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * MilterClientContext:state:
   *
   * Where the session is.
   *
   * Since: 1.0
   */
  properties[PROP_STATE] =
    g_param_spec_enum ("state", "State", "Where the session is",
                       MILTER_TYPE_CLIENT_CONTEXT_STATE, MILTER_CLIENT_CONTEXT_STATE_START, rw);

  /**
   * MilterClientContext:last-state:
   *
   * The last event handled (a state without `_REPLIED`).
   *
   * Since: 1.0
   */
  properties[PROP_LAST_STATE] =
    g_param_spec_enum ("last-state", "Last state", "The last event handled",
                       MILTER_TYPE_CLIENT_CONTEXT_STATE, MILTER_CLIENT_CONTEXT_STATE_START, ro);

  /**
   * MilterClientContext:status:
   *
   * The status of the last reply.
   *
   * Since: 1.0
   */
  properties[PROP_STATUS] =
    g_param_spec_enum ("status", "Status", "The status of the last reply",
                       MILTER_TYPE_STATUS, MILTER_STATUS_DEFAULT, rw);

  /**
   * MilterClientContext:option:
   *
   * The negotiated option, or %NULL before the negotiation.
   *
   * Since: 1.0
   */
  properties[PROP_OPTION] =
    g_param_spec_boxed ("option", "Option", "The negotiated option", MILTER_TYPE_OPTION, rw);

  /**
   * MilterClientContext:message-result:
   *
   * The record of the current (or last) message.
   *
   * Since: 1.0
   */
  properties[PROP_MESSAGE_RESULT] =
    g_param_spec_object ("message-result", "Message result", "The record of the current message",
                         MILTER_TYPE_MESSAGE_RESULT, ro);

  /**
   * MilterClientContext:quarantine-reason:
   *
   * The reason given to the last milter_client_context_quarantine().
   *
   * Since: 1.0
   */
  properties[PROP_QUARANTINE_REASON] =
    g_param_spec_string ("quarantine-reason", "Quarantine reason", "Why the message was quarantined",
                         NULL, rw);

  /**
   * MilterClientContext:timeout:
   *
   * Seconds the MTA may take to send its next whole command (or to read our
   * replies) before the session ends with #MilterClientContext::timeout;
   * 0 for none. A command trickling in byte by byte does not restart the
   * count. Time a handler takes to reply does not count.
   *
   * Since: 1.0
   */
  properties[PROP_TIMEOUT] =
    g_param_spec_uint ("timeout", "Timeout", "Seconds of MTA silence before the session ends",
                       0, G_MAXUINT, MILTER_CLIENT_CONTEXT_DEFAULT_TIMEOUT, rw);

  /**
   * MilterClientContext:packet-buffer-size:
   *
   * Modification packets sent while a deferred end-of-message is handled
   * are held until this many bytes wait (0: sent right away). Everything is
   * always written before the final reply.
   *
   * Since: 1.0
   */
  properties[PROP_PACKET_BUFFER_SIZE] =
    g_param_spec_uint ("packet-buffer-size", "Packet buffer size",
                       "Bytes of modifications to hold before writing", 0, G_MAXUINT, 0, rw);

  /**
   * MilterClientContext:use-bytes:
   *
   * Whether only the #GBytes forms of the chunk signals are emitted
   * (#MilterClientContext::body-bytes and
   * #MilterClientContext::end-of-message-bytes). When %FALSE, both forms
   * are emitted, the string form first.
   *
   * Since: 1.0
   */
  properties[PROP_USE_BYTES] =
    g_param_spec_boolean ("use-bytes", "Use bytes", "Whether only the GBytes chunk signals are emitted",
                          FALSE, rw);

  /**
   * MilterClientContext:max-packet-length:
   *
   * The longest packet accepted from the MTA (its length field: the
   * command byte and the data), checked before anything is allocated.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_PACKET_LENGTH] =
    g_param_spec_uint ("max-packet-length", "Maximum packet length", "The longest packet accepted",
                       1, G_MAXUINT32, MILTER_DECODER_DEFAULT_MAX_PACKET_LENGTH, rw);

  /**
   * MilterClientContext:max-headers:
   *
   * The most headers one message may have (0: no limit).
   *
   * Since: 1.0
   */
  properties[PROP_MAX_HEADERS] =
    g_param_spec_uint ("max-headers", "Maximum headers", "The most headers one message may have",
                       0, G_MAXUINT, DEFAULT_MAX_HEADERS, rw);

  /**
   * MilterClientContext:max-message-result-size:
   *
   * The most bytes of headers and recipients one message may have (0: no
   * limit): the #MilterMessageResult keeps them all. A header counts its
   * name and value with a NUL after each, a recipient its address and a
   * NUL. Together with #MilterClientContext:max-headers and
   * #MilterClientContext:max-recipients it bounds what an MTA can make a
   * session keep.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_MESSAGE_RESULT_SIZE] =
    g_param_spec_uint ("max-message-result-size", "Maximum message result size",
                       "The most bytes of headers and recipients one message may have",
                       0, G_MAXUINT, DEFAULT_MAX_MESSAGE_RESULT_SIZE, rw);

  /**
   * MilterClientContext:max-recipients:
   *
   * The most recipients (RCPT commands) one message may have (0: no
   * limit). The message result keeps each of them.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_RECIPIENTS] =
    g_param_spec_uint ("max-recipients", "Maximum recipients",
                       "The most recipients one message may have",
                       0, G_MAXUINT, DEFAULT_MAX_RECIPIENTS, rw);

  /**
   * MilterClientContext:max-macros:
   *
   * The most macros one macro packet may define.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_MACROS] =
    g_param_spec_uint ("max-macros", "Maximum macros", "The most macros in one packet",
                       0, G_MAXUINT, MILTER_DECODER_DEFAULT_MAX_MACROS, rw);

  /**
   * MilterClientContext:n-processing-sessions:
   *
   * How many sessions the context's client serves now (1 or 0 for a
   * context without client).
   *
   * Since: 1.0
   */
  properties[PROP_N_PROCESSING_SESSIONS] =
    g_param_spec_uint ("n-processing-sessions", "Processing sessions", "Sessions served now",
                       0, G_MAXUINT, 0, ro);

  /**
   * MilterClientContext:fallback-status:
   *
   * The reply when the handlers of an event have no opinion: none returned
   * anything but %MILTER_STATUS_DEFAULT or %MILTER_STATUS_NOT_CHANGE. An
   * event with no handler at all (the MTA may send one anyway) gets
   * %MILTER_STATUS_CONTINUE. A
   * handler in a language binding that raises an exception or returns
   * nothing yields %MILTER_STATUS_DEFAULT (the exception is logged by the
   * binding), so this is also what such a failure leads to. The default,
   * %MILTER_STATUS_CONTINUE, lets mail through as milter manager's
   * bindings did; %MILTER_STATUS_TEMPORARY_FAILURE makes the MTA retry
   * later instead. Negotiation is not affected.
   *
   * Since: 1.0
   */
  properties[PROP_FALLBACK_STATUS] =
    g_param_spec_enum ("fallback-status", "Fallback status", "The reply when no handler has an opinion",
                       MILTER_TYPE_STATUS, MILTER_STATUS_CONTINUE, rw);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
install_event_signals (void)
{
  /**
   * MilterClientContext::negotiate:
   * @context: the context
   * @option: the MTA's offer, which a handler may edit into the request
   * @macros_requests: the macros to ask for, empty at first
   *
   * The MTA opens the session. Return %MILTER_STATUS_ALL_OPTIONS (or
   * nothing) to take every offered action and leave out the events that
   * have no handler, %MILTER_STATUS_CONTINUE to request @option as
   * edited, or %MILTER_STATUS_REJECT to end the session. Macros set in
   * @macros_requests are requested in any case.
   *
   * Returns: a #MilterStatus
   *
   * Since: 1.0
   */
  signals[SIGNAL_NEGOTIATE] =
    new_status_signal ("negotiate", G_STRUCT_OFFSET (MilterClientContextClass, negotiate),
                       _milter_marshal_ENUM__BOXED_BOXED,
                       _milter_marshal_ENUM__BOXED_BOXEDv, 2,
                       MILTER_TYPE_OPTION | G_SIGNAL_TYPE_STATIC_SCOPE,
                       MILTER_TYPE_MACROS_REQUESTS | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * MilterClientContext::define-macro:
   * @context: the context
   * @command: the command the macros belong to
   *
   * The MTA sent macros for @command; read them with
   * milter_client_context_get_macro() or milter_client_context_get_macros().
   *
   * Since: 1.0
   */
  signals[SIGNAL_DEFINE_MACRO] =
    g_signal_new ("define-macro", MILTER_TYPE_CLIENT_CONTEXT, G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (MilterClientContextClass, define_macro), NULL, NULL,
                  _milter_marshal_VOID__ENUM, G_TYPE_NONE, 1, MILTER_TYPE_COMMAND);
  g_signal_set_va_marshaller (signals[SIGNAL_DEFINE_MACRO], MILTER_TYPE_CLIENT_CONTEXT,
                              _milter_marshal_VOID__ENUMv);

  /**
   * MilterClientContext::connect:
   * @context: the context
   * @host_name: (type filename): the SMTP client's host name, or
   *   `[address]` when it has none
   * @address: (nullable): the SMTP client's address: a #GInetSocketAddress,
   *   a #GUnixSocketAddress, or %NULL when the MTA does not know it (also
   *   when it sends one that does not parse, as Postfix sends `unknown`
   *   for a client XCLIENT gave as `[UNAVAILABLE]`)
   *
   * An SMTP client connected to the MTA (xxfi_connect). %MILTER_STATUS_REJECT
   * and %MILTER_STATUS_TEMPORARY_FAILURE refuse the connection,
   * %MILTER_STATUS_ACCEPT accepts it without further filtering.
   *
   * Returns: a #MilterStatus
   *
   * Since: 1.0
   */
  signals[SIGNAL_CONNECT] =
    new_status_signal ("connect", G_STRUCT_OFFSET (MilterClientContextClass, connect),
                       _milter_marshal_ENUM__STRING_OBJECT,
                       _milter_marshal_ENUM__STRING_OBJECTv, 2,
                       STATIC_STRING, G_TYPE_SOCKET_ADDRESS);

  /**
   * MilterClientContext::helo:
   * @context: the context
   * @fqdn: (type filename): the name given with HELO or EHLO
   *
   * The SMTP client said HELO or EHLO (xxfi_helo); it may say it again.
   *
   * Returns: a #MilterStatus
   *
   * Since: 1.0
   */
  signals[SIGNAL_HELO] =
    new_status_signal ("helo", G_STRUCT_OFFSET (MilterClientContextClass, helo),
                       _milter_marshal_ENUM__STRING, _milter_marshal_ENUM__STRINGv, 1,
                       STATIC_STRING);

  /**
   * MilterClientContext::envelope-from:
   * @context: the context
   * @from: (type filename): the sender in angle brackets (`<>` for the
   *   null sender)
   *
   * MAIL FROM: a message starts (xxfi_envfrom). ESMTP parameters are in
   * milter_client_context_get_esmtp_parameters(). %MILTER_STATUS_REJECT
   * rejects the sender; %MILTER_STATUS_ACCEPT and
   * %MILTER_STATUS_DISCARD decide the whole message.
   *
   * Returns: a #MilterStatus
   *
   * Since: 1.0
   */
  signals[SIGNAL_ENVELOPE_FROM] =
    new_status_signal ("envelope-from", G_STRUCT_OFFSET (MilterClientContextClass, envelope_from),
                       _milter_marshal_ENUM__STRING, _milter_marshal_ENUM__STRINGv,
                       1, STATIC_STRING);

  /**
   * MilterClientContext::envelope-recipient:
   * @context: the context
   * @recipient: (type filename): the recipient in angle brackets
   *
   * RCPT TO (xxfi_envrcpt). %MILTER_STATUS_REJECT and
   * %MILTER_STATUS_TEMPORARY_FAILURE refuse this recipient only; the
   * message goes on.
   *
   * Returns: a #MilterStatus
   *
   * Since: 1.0
   */
  signals[SIGNAL_ENVELOPE_RECIPIENT] =
    new_status_signal ("envelope-recipient", G_STRUCT_OFFSET (MilterClientContextClass, envelope_recipient),
                       _milter_marshal_ENUM__STRING,
                       _milter_marshal_ENUM__STRINGv, 1, STATIC_STRING);

  /**
   * MilterClientContext::data:
   * @context: the context
   *
   * DATA (xxfi_data; protocol version 4 and later).
   *
   * Returns: a #MilterStatus
   *
   * Since: 1.0
   */
  signals[SIGNAL_DATA] =
    new_status_signal ("data", G_STRUCT_OFFSET (MilterClientContextClass, data),
                       _milter_marshal_ENUM__VOID, _milter_marshal_ENUM__VOIDv, 0);

  /**
   * MilterClientContext::unknown:
   * @context: the context
   * @command: (type filename): the whole SMTP command line
   *
   * An SMTP command the MTA does not know (xxfi_unknown). The MTA rejects
   * it whatever the status.
   *
   * Returns: a #MilterStatus
   *
   * Since: 1.0
   */
  signals[SIGNAL_UNKNOWN] =
    new_status_signal ("unknown", G_STRUCT_OFFSET (MilterClientContextClass, unknown),
                       _milter_marshal_ENUM__STRING, _milter_marshal_ENUM__STRINGv, 1,
                       STATIC_STRING);

  /**
   * MilterClientContext::header:
   * @context: the context
   * @name: (type filename): the header name
   * @value: (type filename): the value, without the line break at its
   *   end; folded lines are joined by "\n". Unless
   *   %MILTER_STEP_HEADER_LEADING_SPACE was negotiated, the MTA removed one
   *   space after the colon. Header values need not be UTF-8: bindings see
   *   the value as a file name (Python: a str in which bytes that are not
   *   UTF-8 are kept as surrogate escapes; value.encode("utf-8",
   *   "surrogateescape") gives the bytes back).
   *
   * One header of the message (xxfi_header).
   *
   * Returns: a #MilterStatus
   *
   * Since: 1.0
   */
  signals[SIGNAL_HEADER] =
    new_status_signal ("header", G_STRUCT_OFFSET (MilterClientContextClass, header),
                       _milter_marshal_ENUM__STRING_STRING,
                       _milter_marshal_ENUM__STRING_STRINGv, 2, STATIC_STRING, STATIC_STRING);

  /**
   * MilterClientContext::end-of-header:
   * @context: the context
   *
   * All headers were sent (xxfi_eoh).
   *
   * Returns: a #MilterStatus
   *
   * Since: 1.0
   */
  signals[SIGNAL_END_OF_HEADER] =
    new_status_signal ("end-of-header", G_STRUCT_OFFSET (MilterClientContextClass, end_of_header),
                       _milter_marshal_ENUM__VOID, _milter_marshal_ENUM__VOIDv, 0);

  /**
   * MilterClientContext::body:
   * @context: the context
   * @chunk: (type filename): a body chunk (CRLF line ends); it may
   *   contain NUL bytes, so use @size
   * @size: the size of @chunk
   *
   * A body chunk of at most 65535 bytes (xxfi_body), for C. Bindings should
   * use #MilterClientContext::body-bytes. %MILTER_STATUS_SKIP asks the MTA
   * for no further chunks.
   *
   * Returns: a #MilterStatus
   *
   * Since: 1.0
   */
  signals[SIGNAL_BODY] =
    new_status_signal ("body", G_STRUCT_OFFSET (MilterClientContextClass, body),
                       _milter_marshal_ENUM__STRING_UINT64,
                       _milter_marshal_ENUM__STRING_UINT64v, 2, STATIC_STRING, G_TYPE_UINT64);

  /**
   * MilterClientContext::body-bytes:
   * @context: the context
   * @chunk: a body chunk (CRLF line ends), NUL bytes included
   *
   * A body chunk as #GBytes, shared with the read buffer (no copy). Emitted
   * after #MilterClientContext::body if that left the decision open.
   *
   * Returns: a #MilterStatus
   *
   * Since: 1.0
   */
  signals[SIGNAL_BODY_BYTES] =
    new_status_signal ("body-bytes", G_STRUCT_OFFSET (MilterClientContextClass, body_bytes),
                       _milter_marshal_ENUM__BOXED, _milter_marshal_ENUM__BOXEDv, 1,
                       STATIC_BYTES);

  /**
   * MilterClientContext::end-of-message:
   * @context: the context
   * @chunk: (type filename) (nullable): a last body chunk, rarely sent
   * @size: the size of @chunk
   *
   * The whole message was sent (xxfi_eom): the only time to modify it.
   * %MILTER_STATUS_CONTINUE accepts it.
   *
   * Returns: a #MilterStatus
   *
   * Since: 1.0
   */
  signals[SIGNAL_END_OF_MESSAGE] =
    new_status_signal ("end-of-message", G_STRUCT_OFFSET (MilterClientContextClass, end_of_message),
                       _milter_marshal_ENUM__STRING_UINT64,
                       _milter_marshal_ENUM__STRING_UINT64v, 2, STATIC_STRING, G_TYPE_UINT64);

  /**
   * MilterClientContext::end-of-message-bytes:
   * @context: the context
   * @chunk: (nullable): a last body chunk, rarely sent
   *
   * #MilterClientContext::end-of-message with the chunk as #GBytes.
   *
   * Returns: a #MilterStatus
   *
   * Since: 1.0
   */
  signals[SIGNAL_END_OF_MESSAGE_BYTES] =
    new_status_signal ("end-of-message-bytes", G_STRUCT_OFFSET (MilterClientContextClass, end_of_message_bytes),
                       _milter_marshal_ENUM__BOXED,
                       _milter_marshal_ENUM__BOXEDv, 1, STATIC_BYTES);

  /**
   * MilterClientContext::abort:
   * @context: the context
   * @state: the state the message was in
   *
   * The MTA abandoned the current message (xxfi_abort), or the connection
   * ended in the middle of it. Not emitted for a message the milter
   * already decided. Free per-message resources here; per-connection ones
   * in #MilterClientContext::finished.
   *
   * Returns: a #MilterStatus; no reply is sent, and
   *   %MILTER_STATUS_PROGRESS is ignored (logged) since there is no reply
   *   to defer
   *
   * Since: 1.0
   */
  signals[SIGNAL_ABORT] =
    new_status_signal ("abort", G_STRUCT_OFFSET (MilterClientContextClass, abort),
                       _milter_marshal_ENUM__ENUM, _milter_marshal_ENUM__ENUMv, 1,
                       MILTER_TYPE_CLIENT_CONTEXT_STATE);
}

static void
install_response_signals (void)
{
  for (guint step = 0; step < N_STEPS; step++)
    {
      g_autofree gchar *name = g_strconcat (step_info[step].name, "-response", NULL);

      if (step == STEP_NEGOTIATE)
        {
          response_signals[step] =
            g_signal_new (name, MILTER_TYPE_CLIENT_CONTEXT, G_SIGNAL_RUN_LAST,
                          response_offsets[step], NULL, NULL,
                          _milter_marshal_VOID__BOXED_BOXED_ENUM, G_TYPE_NONE, 3,
                          MILTER_TYPE_OPTION | G_SIGNAL_TYPE_STATIC_SCOPE,
                          MILTER_TYPE_MACROS_REQUESTS | G_SIGNAL_TYPE_STATIC_SCOPE,
                          MILTER_TYPE_STATUS);
          g_signal_set_va_marshaller (response_signals[step], MILTER_TYPE_CLIENT_CONTEXT,
                                      _milter_marshal_VOID__BOXED_BOXED_ENUMv);
          continue;
        }
      response_signals[step] = new_response_signal (name, response_offsets[step]);
    }

  /**
   * MilterClientContext::negotiate-response:
   * @context: the context
   * @option: (nullable): the option to reply with (for
   *   %MILTER_STATUS_CONTINUE); %NULL for the one the handlers edited
   * @macros_requests: (nullable): the macros to request; %NULL for the
   *   handlers' requests
   * @status: the verdict
   *
   * Emitted with the negotiation's status; its default handler writes the
   * reply. Emit it yourself after returning %MILTER_STATUS_PROGRESS from
   * #MilterClientContext::negotiate.
   *
   * Since: 1.0
   */

  /**
   * MilterClientContext::connect-response:
   * @context: the context
   * @status: the verdict
   *
   * Emitted with the status of #MilterClientContext::connect; its default
   * handler writes the reply. After %MILTER_STATUS_PROGRESS, emit it
   * yourself (or call milter_client_context_reply()).
   *
   * Since: 1.0
   */

  /**
   * MilterClientContext::helo-response:
   * @context: the context
   * @status: the verdict
   *
   * Emitted with the status of #MilterClientContext::helo; its default
   * handler writes the reply.
   *
   * Since: 1.0
   */

  /**
   * MilterClientContext::envelope-from-response:
   * @context: the context
   * @status: the verdict
   *
   * Emitted with the status of #MilterClientContext::envelope-from; its
   * default handler writes the reply.
   *
   * Since: 1.0
   */

  /**
   * MilterClientContext::envelope-recipient-response:
   * @context: the context
   * @status: the verdict
   *
   * Emitted with the status of #MilterClientContext::envelope-recipient;
   * its default handler writes the reply.
   *
   * Since: 1.0
   */

  /**
   * MilterClientContext::data-response:
   * @context: the context
   * @status: the verdict
   *
   * Emitted with the status of #MilterClientContext::data; its default
   * handler writes the reply.
   *
   * Since: 1.0
   */

  /**
   * MilterClientContext::unknown-response:
   * @context: the context
   * @status: the verdict
   *
   * Emitted with the status of #MilterClientContext::unknown; its default
   * handler writes the reply.
   *
   * Since: 1.0
   */

  /**
   * MilterClientContext::header-response:
   * @context: the context
   * @status: the verdict
   *
   * Emitted with the status of #MilterClientContext::header; its default
   * handler writes the reply.
   *
   * Since: 1.0
   */

  /**
   * MilterClientContext::end-of-header-response:
   * @context: the context
   * @status: the verdict
   *
   * Emitted with the status of #MilterClientContext::end-of-header; its
   * default handler writes the reply.
   *
   * Since: 1.0
   */

  /**
   * MilterClientContext::body-response:
   * @context: the context
   * @status: the verdict
   *
   * Emitted with the status of #MilterClientContext::body and
   * #MilterClientContext::body-bytes; its default handler writes the reply.
   *
   * Since: 1.0
   */

  /**
   * MilterClientContext::end-of-message-response:
   * @context: the context
   * @status: the verdict
   *
   * Emitted with the status of #MilterClientContext::end-of-message and
   * #MilterClientContext::end-of-message-bytes; its default handler writes
   * the pending modifications, then the reply.
   *
   * Since: 1.0
   */

  /**
   * MilterClientContext::abort-response:
   * @context: the context
   * @status: the status
   *
   * Emitted with the status of #MilterClientContext::abort. Nothing is
   * written: the MTA expects no reply to an abort.
   *
   * Since: 1.0
   */
}

static void
install_other_signals (void)
{
  /**
   * MilterClientContext::timeout:
   * @context: the context
   *
   * The MTA was silent for #MilterClientContext:timeout seconds. The
   * session then ends: #MilterClientContext::abort if a message was open,
   * then #MilterClientContext::finished.
   *
   * Since: 1.0
   */
  signals[SIGNAL_TIMEOUT] =
    g_signal_new ("timeout", MILTER_TYPE_CLIENT_CONTEXT, G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (MilterClientContextClass, timeout), NULL, NULL,
                  NULL, G_TYPE_NONE, 0);

  /**
   * MilterClientContext::message-processed:
   * @context: the context
   * @result: what happened to the message
   *
   * A message ended: decided, accepted at end-of-message, or aborted.
   * Connecting a handler keeps the MTA sending the envelope, headers and
   * body, so @result is complete. The message's macros (such as the queue
   * ID `i`) and mail-transaction shelf are still there; they are cleared
   * right after.
   *
   * Since: 1.0
   */
  signals[SIGNAL_MESSAGE_PROCESSED] =
    g_signal_new ("message-processed", MILTER_TYPE_CLIENT_CONTEXT, G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (MilterClientContextClass, message_processed), NULL, NULL,
                  NULL, G_TYPE_NONE, 1, MILTER_TYPE_MESSAGE_RESULT);

  /**
   * MilterClientContext::finished:
   * @context: the context
   *
   * The connection ended (xxfi_close): by quit, by the MTA closing it, by
   * a timeout, an error or a shutdown (also the one of a #MilterClient
   * finalized with sessions open, which ends them from the main loop).
   * Emitted exactly once per connection, also if it ended before
   * #MilterClientContext::connect. The private data is freed right after.
   * A context whose last reference goes while its session is open closes
   * the connection without emitting anything.
   *
   * Since: 1.0
   */
  signals[SIGNAL_FINISHED] =
    g_signal_new ("finished", MILTER_TYPE_CLIENT_CONTEXT, G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (MilterClientContextClass, finished), NULL, NULL,
                  NULL, G_TYPE_NONE, 0);

  /**
   * MilterClientContext::error:
   * @context: the context
   * @error: what went wrong
   *
   * The session failed: the MTA broke the protocol (%MILTER_DECODER_ERROR,
   * %MILTER_CLIENT_CONTEXT_ERROR_UNEXPECTED_COMMAND), the connection broke
   * (%MILTER_CLIENT_CONTEXT_ERROR_IO), or a limit was passed.
   * #MilterClientContext::abort (if a message was open) and
   * #MilterClientContext::finished follow, and the connection is closed.
   * With no handler connected and no class method, the error is logged
   * (as a message of the `Milter` log domain) instead.
   *
   * Since: 1.0
   */
  signals[SIGNAL_ERROR] =
    g_signal_new ("error", MILTER_TYPE_CLIENT_CONTEXT, G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (MilterClientContextClass, error), NULL, NULL,
                  NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
milter_client_context_class_init (MilterClientContextClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = milter_client_context_dispose;
  object_class->finalize = milter_client_context_finalize;
  object_class->get_property = milter_client_context_get_property;
  object_class->set_property = milter_client_context_set_property;
  klass->negotiate_response = real_negotiate_response;
  klass->connect_response = real_connect_response;
  klass->helo_response = real_helo_response;
  klass->envelope_from_response = real_envelope_from_response;
  klass->envelope_recipient_response = real_envelope_recipient_response;
  klass->data_response = real_data_response;
  klass->unknown_response = real_unknown_response;
  klass->header_response = real_header_response;
  klass->end_of_header_response = real_end_of_header_response;
  klass->body_response = real_body_response;
  klass->end_of_message_response = real_end_of_message_response;
  klass->abort_response = real_abort_response;
  for (guint step = 0; step < N_STEPS; step++)
    default_response_methods[step] = G_STRUCT_MEMBER (gpointer, klass, response_offsets[step]);

  install_properties (object_class);
  install_event_signals ();
  install_response_signals ();
  install_other_signals ();
}

static void
milter_client_context_init (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  priv->main_context = g_main_context_ref_thread_default ();
  priv->decoder = milter_decoder_new (MILTER_DECODER_COMMANDS);
  priv->out = g_byte_array_new ();
  priv->shelf = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  priv->state = MILTER_CLIENT_CONTEXT_STATE_START;
  priv->last_state = MILTER_CLIENT_CONTEXT_STATE_START;
  priv->timeout = MILTER_CLIENT_CONTEXT_DEFAULT_TIMEOUT;
  priv->max_headers = DEFAULT_MAX_HEADERS;
  priv->max_recipients = DEFAULT_MAX_RECIPIENTS;
  priv->max_message_result_size = DEFAULT_MAX_MESSAGE_RESULT_SIZE;
  priv->max_macros = MILTER_DECODER_DEFAULT_MAX_MACROS;
  priv->fallback_status = MILTER_STATUS_CONTINUE;
  memcpy (priv->allowed, next_positions, sizeof priv->allowed);
  priv->fd = -1;
  priv->deadline = -1;
  priv->park_time = -1;
  create_source (self);
}

void
milter_client_context_set_finished_func (MilterClientContext            *context,
                                         MilterClientContextFinishedFunc func,
                                         gpointer                        user_data)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  priv->finished_func = func;
  priv->finished_data = user_data;
}

/* ---- public API: session -------------------------------------------- */

/**
 * milter_client_context_new:
 * @client: (nullable): the #MilterClient the context belongs to
 *
 * Creates a context. #MilterClient creates them for its connections;
 * create one yourself to serve a stream with milter_client_context_start()
 * or to feed bytes with milter_client_context_feed().
 *
 * Returns: (transfer full): a new #MilterClientContext
 *
 * Since: 1.0
 */
MilterClientContext *
milter_client_context_new (MilterClient *client)
{
  g_return_val_if_fail (client == NULL || MILTER_IS_CLIENT (client), NULL);

  return g_object_new (MILTER_TYPE_CLIENT_CONTEXT, "client", client, NULL);
}

/* Serves the MTA on a connected socket: read and written directly. */
static void
watch_socket (MilterClientContext *self,
              gint                 fd)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  priv->fd = fd;
  priv->last_activity = g_get_monotonic_time ();
  priv->fd_events = G_IO_IN;
  priv->fd_tag = g_source_add_unix_fd (priv->source, fd, G_IO_IN);
  arm_timeout (self);
  attach_source (self);
}

void
milter_client_context_start_socket (MilterClientContext *context,
                                    gint                 fd)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));
  g_return_if_fail (fd >= 0);
  g_return_if_fail (!has_transport (context) && !priv->finished);

  watch_socket (context, fd);
}

/**
 * milter_client_context_start:
 * @context: a #MilterClientContext
 * @stream: a connected stream to the MTA; a #GSocketConnection (read
 *   and written directly on its socket), or a stream whose input and
 *   output are pollable (#GUnixInputStream ones are)
 * @error: return location for a #GError, or %NULL
 *
 * Starts serving the MTA on @stream from the thread-default main context
 * the context was created in (for a session of a #MilterClient, the
 * client's main context). Connect the signal handlers before the main
 * loop runs again.
 *
 * Returns: %TRUE on success; %FALSE with
 *   %MILTER_CLIENT_CONTEXT_ERROR_NOT_SUPPORTED if the stream is not
 *   pollable
 *
 * Since: 1.0
 */
gboolean
milter_client_context_start (MilterClientContext  *context,
                             GIOStream            *stream,
                             GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);
  GInputStream *input;
  GOutputStream *output;

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);
  g_return_val_if_fail (G_IS_IO_STREAM (stream), FALSE);
  g_return_val_if_fail (!has_transport (context) && !priv->finished, FALSE);

  if (G_IS_SOCKET_CONNECTION (stream))
    {
      GSocket *socket = g_socket_connection_get_socket (G_SOCKET_CONNECTION (stream));

      priv->stream = g_object_ref (stream);
      watch_socket (context, g_socket_get_fd (socket));
      return TRUE;
    }
  priv->last_activity = g_get_monotonic_time ();

  input = g_io_stream_get_input_stream (stream);
  output = g_io_stream_get_output_stream (stream);
  if (!G_IS_POLLABLE_INPUT_STREAM (input) ||
      !g_pollable_input_stream_can_poll (G_POLLABLE_INPUT_STREAM (input)) ||
      !G_IS_POLLABLE_OUTPUT_STREAM (output) ||
      !g_pollable_output_stream_can_poll (G_POLLABLE_OUTPUT_STREAM (output)))
    {
      g_set_error_literal (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_NOT_SUPPORTED,
                           "The stream cannot be polled");
      return FALSE;
    }

  priv->stream = g_object_ref (stream);
  priv->input = G_POLLABLE_INPUT_STREAM (g_object_ref (input));
  priv->output = G_POLLABLE_OUTPUT_STREAM (g_object_ref (output));
  arm_timeout (context);
  update_watches (context);
  attach_source (context);
  return TRUE;
}

/**
 * milter_client_context_feed:
 * @context: a #MilterClientContext
 * @chunk: (array length=size) (element-type guint8): bytes from the MTA
 * @size: the size of @chunk
 * @error: return location for a #GError, or %NULL
 *
 * Processes bytes as if they had come from the MTA, for tests and
 * debugging. Replies go to the stream given to
 * milter_client_context_start(), if any.
 *
 * Returns: %FALSE if @chunk broke the protocol (the session then ends)
 *
 * Since: 1.0
 */
gboolean
milter_client_context_feed (MilterClientContext  *context,
                            const gchar          *chunk,
                            gsize                 size,
                            GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);
  g_return_val_if_fail (chunk != NULL || size == 0, FALSE);

  if (priv->closing)
    {
      g_set_error_literal (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_STATE,
                           "The session has ended");
      return FALSE;
    }
  g_object_ref (context);
  milter_decoder_feed (priv->decoder, (const guint8 *) chunk, size);
  if (!priv->reply_pending && !process_input (context, error))
    {
      g_object_unref (context);
      return FALSE;
    }
  flush_output (context);
  update_watches (context);
  g_object_unref (context);
  return TRUE;
}

GBytes *
milter_client_context_take_output (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);
  GBytes *bytes;

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);

  /* An output buffer never written to has no data pointer. */
  bytes = output_pending (context) == 0 ? g_bytes_new (NULL, 0)
                                        : g_bytes_new (priv->out->data + priv->out_offset,
                                                       output_pending (context));
  g_byte_array_set_size (priv->out, 0);
  priv->out_offset = 0;
  return bytes;
}

gsize
milter_client_context_get_output_size (MilterClientContext *context)
{
  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), 0);

  return output_pending (context);
}

void
milter_client_context_shutdown (MilterClientContext *context)
{
  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  end_connection (context, NULL);
}

void
milter_client_context_set_main_context (MilterClientContext *context,
                                        GMainContext        *main_context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (priv->source == NULL || g_source_get_context (priv->source) == NULL);

  if (priv->main_context == main_context)
    return;
  g_main_context_unref (priv->main_context);
  priv->main_context = g_main_context_ref (main_context);
}

/**
 * milter_client_context_get_client:
 * @context: a #MilterClientContext
 *
 * Gets the client the context belongs to.
 *
 * Returns: (transfer none) (nullable): the #MilterClient, or %NULL
 *
 * Since: 1.0
 */
MilterClient *
milter_client_context_get_client (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);

  return priv->client;
}

/**
 * milter_client_context_get_stream:
 * @context: a #MilterClientContext
 *
 * Gets the connection to the MTA, for example to read a unix socket
 * peer's credentials.
 *
 * Returns: (transfer none) (nullable): the stream given to
 *   milter_client_context_start() (for a connection #MilterClient accepted,
 *   a #GSocketConnection made on the first call), or %NULL before it or
 *   once closed
 *
 * Since: 1.0
 */
GIOStream *
milter_client_context_get_stream (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);

  /* A connection accepted by MilterClient is a bare descriptor until
   * someone asks for its stream. */
  if (priv->stream == NULL && priv->fd >= 0 && !priv->closing)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GSocket) socket = g_socket_new_from_fd (priv->fd, &error);

      if (socket == NULL)
        {
          g_warning ("Cannot wrap the connection in a GSocket: %s", error->message);
          return NULL;
        }
      priv->stream = G_IO_STREAM (g_socket_connection_factory_create_connection (socket));
    }
  return priv->stream;
}

/* ---- public API: replies --------------------------------------------- */

/**
 * milter_client_context_reply:
 * @context: a #MilterClientContext
 * @status: the verdict
 *
 * Gives the status of the event whose handler returned
 * %MILTER_STATUS_PROGRESS, by emitting its `-response` signal. For a
 * deferred negotiation, the option and macro requests the handlers edited
 * are used. Calling it after the connection ended does nothing; calling it
 * while no reply is pending is a programming error.
 *
 * Since: 1.0
 */
void
milter_client_context_reply (MilterClientContext *context,
                             MilterStatus         status)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  if (priv->closing || priv->finished)
    return;
  g_return_if_fail (priv->reply_pending);

  if (priv->current_step == STEP_NEGOTIATE)
    g_signal_emit (context, response_signals[STEP_NEGOTIATE], 0,
                   priv->negotiate_option, priv->negotiate_requests, status);
  else
    g_signal_emit (context, response_signals[priv->current_step], 0, status);
}

/**
 * milter_client_context_is_reply_pending:
 * @context: a #MilterClientContext
 *
 * Checks whether a handler returned %MILTER_STATUS_PROGRESS and the reply
 * has not been given yet.
 *
 * Returns: %TRUE while a deferred reply is awaited
 *
 * Since: 1.0
 */
gboolean
milter_client_context_is_reply_pending (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);

  return priv->reply_pending && !priv->closing;
}

/**
 * milter_client_context_progress:
 * @context: a #MilterClientContext
 * @error: return location for a #GError, or %NULL
 *
 * Tells the MTA the milter is still working (smfi_progress), so it keeps
 * waiting for the end-of-message reply. Valid, as in libmilter, only
 * while end-of-message is handled: in its handler, or while its reply is
 * deferred. Sendmail takes a keep-alive at no other event (it counts one
 * as an error of the filter).
 *
 * Returns: %TRUE if the keep-alive was queued; %FALSE with
 *   %MILTER_CLIENT_CONTEXT_ERROR_INVALID_STATE outside end-of-message
 *
 * Since: 1.0
 */
gboolean
milter_client_context_progress (MilterClientContext  *context,
                                GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);

  if (priv->closing || !priv->in_step || priv->current_step != STEP_END_OF_MESSAGE)
    {
      g_set_error_literal (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_STATE,
                           "Progress can only be reported while end-of-message is handled");
      return FALSE;
    }
  milter_encoder_encode_empty (priv->out, 'p');
  /* A keep-alive is useless unless it goes out now. */
  if (priv->reply_pending)
    wake_up (context);
  return TRUE;
}

static void
store_reply_code (MilterClientContext *self,
                  gchar               *reply)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  g_free (priv->reply_code);
  priv->reply_code = reply;
}

/**
 * milter_client_context_set_reply:
 * @context: a #MilterClientContext
 * @code: the SMTP reply code, 4xx or 5xx
 * @extended_code: (nullable): an enhanced status code such as "5.7.1"
 * @message: (nullable): the text, one line
 * @error: return location for a #GError, or %NULL
 *
 * Sets the SMTP reply the MTA sends for the next %MILTER_STATUS_REJECT (a
 * 5xx code) or %MILTER_STATUS_TEMPORARY_FAILURE (a 4xx code)
 * (smfi_setreply). `%` in @message is escaped for you. A reply whose class
 * does not match the verdict is kept for a later one; once sent, it is
 * cleared.
 *
 * Returns: %TRUE on success; %FALSE with a %MILTER_REPLY_CODE_ERROR
 *
 * Since: 1.0
 */
gboolean
milter_client_context_set_reply (MilterClientContext  *context,
                                 guint                 code,
                                 const gchar          *extended_code,
                                 const gchar          *message,
                                 GError              **error)
{
  gchar *reply;

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);

  reply = milter_reply_code_format (code, extended_code, message, error);
  if (reply == NULL)
    return FALSE;
  store_reply_code (context, reply);
  return TRUE;
}

/**
 * milter_client_context_set_multiline_reply:
 * @context: a #MilterClientContext
 * @code: the SMTP reply code, 4xx or 5xx
 * @extended_code: (nullable): an enhanced status code; "4.0.0" or "5.0.0"
 *   when %NULL
 * @lines: (array zero-terminated=1): 1 to 32 lines of text
 * @error: return location for a #GError, or %NULL
 *
 * Like milter_client_context_set_reply() with a multi-line reply
 * (smfi_setmlreply).
 *
 * Returns: %TRUE on success; %FALSE with a %MILTER_REPLY_CODE_ERROR
 *
 * Since: 1.0
 */
gboolean
milter_client_context_set_multiline_reply (MilterClientContext  *context,
                                           guint                 code,
                                           const gchar          *extended_code,
                                           const gchar * const  *lines,
                                           GError              **error)
{
  gchar *reply;

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);

  reply = milter_reply_code_format_lines (code, extended_code, lines, error);
  if (reply == NULL)
    return FALSE;
  store_reply_code (context, reply);
  return TRUE;
}

/**
 * milter_client_context_format_reply:
 * @context: a #MilterClientContext
 *
 * Gets the reply set with milter_client_context_set_reply() and not sent
 * yet, as the MTA will receive it.
 *
 * Returns: (transfer full) (nullable): the reply text, or %NULL
 *
 * Since: 1.0
 */
gchar *
milter_client_context_format_reply (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);

  return g_strdup (priv->reply_code);
}

/* ---- public API: modifications ---------------------------------------- */

static gboolean
can_modify (MilterClientContext  *self,
            MilterActionFlags     action,
            const gchar          *what,
            GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);
  GFlagsClass *flags_class;
  GFlagsValue *flag;

  if (priv->closing || !priv->in_step || priv->current_step != STEP_END_OF_MESSAGE)
    {
      g_set_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_STATE,
                   "Cannot %s: modifications are only allowed while end-of-message is handled",
                   what);
      return FALSE;
    }
  if ((milter_option_get_action (priv->option) & action) == action)
    return TRUE;
  flags_class = g_type_class_ref (MILTER_TYPE_ACTION_FLAGS);
  flag = g_flags_get_first_value (flags_class, action);
  g_set_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_ACTION,
               "Cannot %s: the action %s was not negotiated with the MTA",
               what, flag != NULL ? flag->value_nick : "?");
  g_type_class_unref (flags_class);
  return FALSE;
}

static void
modified (MilterClientContext *self)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (self);

  if (priv->packet_buffer_size == 0 || output_pending (self) >= priv->packet_buffer_size)
    schedule_flush (self);
}

/* Header names are printable ASCII without ':' (RFC 5322 ftext). */
static gboolean
check_header_name (const gchar  *name,
                   GError      **error)
{
  if (*name == '\0')
    {
      g_set_error_literal (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE,
                           "Empty header name");
      return FALSE;
    }
  for (const gchar *p = name; *p != '\0'; p++)
    if ((guchar) *p < 33 || (guchar) *p > 126 || *p == ':')
      {
        g_set_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE,
                     "Invalid character 0x%02x in header name", (guchar) *p);
        return FALSE;
      }
  return TRUE;
}

/* The longest header line the MTAs take: "under 2048 characters"
 * (protocol.md §3, RFC 5322's 998 being only a recommendation). */
#define MAX_HEADER_LINE 2047

/* A line break in a value must be a fold: "\n" then a space or tab. The
 * MTA adds the CR itself (a CR here would be doubled by Postfix). Each
 * line, the first with "Name: " before it, must fit MAX_HEADER_LINE. */
static gboolean
check_header_value (const gchar  *name,
                    const gchar  *value,
                    GError      **error)
{
  gsize line = strlen (name) + 2;

  for (const gchar *p = value;; p++)
    {
      if (*p == '\r' || (*p == '\n' && p[1] != ' ' && p[1] != '\t'))
        {
          g_set_error_literal (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE,
                               "A header value may only break a line as a fold (\"\\n\" followed by "
                               "a space or tab), without CR");
          return FALSE;
        }
      if (*p != '\n' && *p != '\0')
        {
          line++;
          continue;
        }
      if (line > MAX_HEADER_LINE)
        {
          g_set_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE,
                       "A header line of %" G_GSIZE_FORMAT " characters; lines must stay under "
                       "2048 (fold the value with \"\\n\" and a space or tab)", line);
          return FALSE;
        }
      if (*p == '\0')
        return TRUE;
      line = 0;
    }
}

static gboolean
check_line (const gchar  *what,
            const gchar  *text,
            gboolean      allow_empty,
            GError      **error)
{
  if (!allow_empty && *text == '\0')
    {
      g_set_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE,
                   "Empty %s", what);
      return FALSE;
    }
  if (strpbrk (text, "\r\n") != NULL)
    {
      g_set_error (error, MILTER_CLIENT_CONTEXT_ERROR, MILTER_CLIENT_CONTEXT_ERROR_INVALID_VALUE,
                   "Line break in the %s", what);
      return FALSE;
    }
  return TRUE;
}

/**
 * milter_client_context_add_header:
 * @context: a #MilterClientContext
 * @name: (type filename): the header name
 * @value: (type filename): the value; break long lines with "\n" followed by a space or tab,
 *   keeping each line (the first with "@name: ") under 2048 characters
 * @error: return location for a #GError, or %NULL
 *
 * Appends a header to the message (smfi_addheader). Needs
 * %MILTER_ACTION_ADD_HEADERS; only while end-of-message is handled.
 *
 * Returns: %TRUE if the request was queued
 *
 * Since: 1.0
 */
gboolean
milter_client_context_add_header (MilterClientContext  *context,
                                  const gchar          *name,
                                  const gchar          *value,
                                  GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);
  g_return_val_if_fail (name != NULL && value != NULL, FALSE);

  if (!can_modify (context, MILTER_ACTION_ADD_HEADERS, "add a header", error) ||
      !check_header_name (name, error) || !check_header_value (name, value, error))
    return FALSE;
  milter_encoder_encode_header (priv->out, 'h', name, value);
  modified (context);
  return TRUE;
}

/**
 * milter_client_context_insert_header:
 * @context: a #MilterClientContext
 * @index: the position: 0 puts the header first; past the end appends
 * @name: (type filename): the header name
 * @value: (type filename): the value
 * @error: return location for a #GError, or %NULL
 *
 * Inserts a header (smfi_insheader). Headers the MTA adds itself and does
 * not show the milter (Sendmail's and Postfix's first Received:) count in
 * the positions. Needs %MILTER_ACTION_ADD_HEADERS.
 *
 * Returns: %TRUE if the request was queued
 *
 * Since: 1.0
 */
gboolean
milter_client_context_insert_header (MilterClientContext  *context,
                                     guint32               index,
                                     const gchar          *name,
                                     const gchar          *value,
                                     GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);
  g_return_val_if_fail (name != NULL && value != NULL, FALSE);

  if (!can_modify (context, MILTER_ACTION_ADD_HEADERS, "insert a header", error) ||
      !check_header_name (name, error) || !check_header_value (name, value, error))
    return FALSE;
  milter_encoder_encode_indexed_header (priv->out, 'i', index, name, value);
  modified (context);
  return TRUE;
}

/**
 * milter_client_context_change_header:
 * @context: a #MilterClientContext
 * @name: (type filename): the header name
 * @index: which header of that name, from 1
 * @value: (type filename) (nullable): the new value; %NULL deletes the header
 * @error: return location for a #GError, or %NULL
 *
 * Changes the @index-th header called @name (smfi_chgheader). If there is
 * no such header, the MTA adds it. Deleting shifts later headers of the
 * same name in Postfix: delete from the last. Needs
 * %MILTER_ACTION_CHANGE_HEADERS.
 *
 * Returns: %TRUE if the request was queued
 *
 * Since: 1.0
 */
gboolean
milter_client_context_change_header (MilterClientContext  *context,
                                     const gchar          *name,
                                     guint32               index,
                                     const gchar          *value,
                                     GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);

  if (!can_modify (context, MILTER_ACTION_CHANGE_HEADERS,
                   value != NULL ? "change a header" : "delete a header", error) ||
      !check_header_name (name, error) || (value != NULL && !check_header_value (name, value, error)))
    return FALSE;
  milter_encoder_encode_indexed_header (priv->out, 'm', index, name, value != NULL ? value : "");
  modified (context);
  return TRUE;
}

/**
 * milter_client_context_delete_header:
 * @context: a #MilterClientContext
 * @name: (type filename): the header name
 * @index: which header of that name, from 1
 * @error: return location for a #GError, or %NULL
 *
 * Deletes the @index-th header called @name: milter_client_context_change_header()
 * with a %NULL value.
 *
 * Returns: %TRUE if the request was queued
 *
 * Since: 1.0
 */
gboolean
milter_client_context_delete_header (MilterClientContext  *context,
                                     const gchar          *name,
                                     guint32               index,
                                     GError              **error)
{
  return milter_client_context_change_header (context, name, index, NULL, error);
}

/**
 * milter_client_context_change_from:
 * @context: a #MilterClientContext
 * @from: (type filename): the new envelope sender
 * @parameters: (type filename) (nullable): ESMTP parameters, space-separated (Postfix
 *   keeps only RET and ENVID)
 * @error: return location for a #GError, or %NULL
 *
 * Changes the envelope sender (smfi_chgfrom). Needs
 * %MILTER_ACTION_CHANGE_FROM.
 *
 * Returns: %TRUE if the request was queued
 *
 * Since: 1.0
 */
gboolean
milter_client_context_change_from (MilterClientContext  *context,
                                   const gchar          *from,
                                   const gchar          *parameters,
                                   GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);
  g_return_val_if_fail (from != NULL, FALSE);

  if (!can_modify (context, MILTER_ACTION_CHANGE_FROM, "change the sender", error) ||
      !check_line ("sender", from, FALSE, error) ||
      (parameters != NULL && !check_line ("ESMTP parameters", parameters, TRUE, error)))
    return FALSE;
  milter_encoder_encode_address_with_parameters (priv->out, 'e', from, parameters);
  modified (context);
  return TRUE;
}

/**
 * milter_client_context_add_recipient:
 * @context: a #MilterClientContext
 * @recipient: (type filename): the new envelope recipient
 * @parameters: (type filename) (nullable): ESMTP parameters, space-separated (Postfix keeps
 *   only NOTIFY and ORCPT)
 * @error: return location for a #GError, or %NULL
 *
 * Adds an envelope recipient (smfi_addrcpt, or smfi_addrcpt_par with
 * @parameters). Needs %MILTER_ACTION_ADD_RECIPIENT, or
 * %MILTER_ACTION_ADD_RECIPIENT_WITH_PARAMETERS with @parameters.
 *
 * Returns: %TRUE if the request was queued
 *
 * Since: 1.0
 */
gboolean
milter_client_context_add_recipient (MilterClientContext  *context,
                                     const gchar          *recipient,
                                     const gchar          *parameters,
                                     GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);
  MilterActionFlags action = parameters != NULL ? MILTER_ACTION_ADD_RECIPIENT_WITH_PARAMETERS :
                                                  MILTER_ACTION_ADD_RECIPIENT;

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);
  g_return_val_if_fail (recipient != NULL, FALSE);

  if (!can_modify (context, action, "add a recipient", error) ||
      !check_line ("recipient", recipient, FALSE, error) ||
      (parameters != NULL && !check_line ("ESMTP parameters", parameters, TRUE, error)))
    return FALSE;
  if (parameters != NULL)
    milter_encoder_encode_address_with_parameters (priv->out, '2', recipient, parameters);
  else
    milter_encoder_encode_string (priv->out, '+', recipient);
  modified (context);
  return TRUE;
}

/**
 * milter_client_context_delete_recipient:
 * @context: a #MilterClientContext
 * @recipient: (type filename): the recipient, exactly as RCPT TO gave it (with angle
 *   brackets)
 * @error: return location for a #GError, or %NULL
 *
 * Removes an envelope recipient (smfi_delrcpt). Needs
 * %MILTER_ACTION_DELETE_RECIPIENT.
 *
 * Returns: %TRUE if the request was queued
 *
 * Since: 1.0
 */
gboolean
milter_client_context_delete_recipient (MilterClientContext  *context,
                                        const gchar          *recipient,
                                        GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);
  g_return_val_if_fail (recipient != NULL, FALSE);

  if (!can_modify (context, MILTER_ACTION_DELETE_RECIPIENT, "delete a recipient", error) ||
      !check_line ("recipient", recipient, FALSE, error))
    return FALSE;
  milter_encoder_encode_string (priv->out, '-', recipient);
  modified (context);
  return TRUE;
}

/**
 * milter_client_context_replace_body: (skip)
 * @context: a #MilterClientContext
 * @body: (array length=body_size) (element-type guint8): body bytes (CRLF
 *   line ends)
 * @body_size: the size of @body
 * @error: return location for a #GError, or %NULL
 *
 * The C form of milter_client_context_replace_body_bytes().
 *
 * Returns: %TRUE if the request was queued
 *
 * Since: 1.0
 */
gboolean
milter_client_context_replace_body (MilterClientContext  *context,
                                    const gchar          *body,
                                    gsize                 body_size,
                                    GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);
  g_return_val_if_fail (body != NULL || body_size == 0, FALSE);

  if (!can_modify (context, MILTER_ACTION_CHANGE_BODY, "replace the body", error))
    return FALSE;
  if (priv->replacement_body == NULL)
    priv->replacement_body = g_byte_array_new ();
  g_byte_array_append (priv->replacement_body, (const guint8 *) body, (guint) body_size);
  return TRUE;
}

/**
 * milter_client_context_replace_body_bytes: (rename-to milter_client_context_replace_body)
 * @context: a #MilterClientContext
 * @body: body bytes (CRLF line ends)
 * @error: return location for a #GError, or %NULL
 *
 * Replaces the message body (smfi_replacebody). Calls during one
 * end-of-message add up: the new body is everything given, in order. It
 * is sent in packets of at most 65535 bytes, all together just before the
 * final reply, as Postfix requires. Needs %MILTER_ACTION_CHANGE_BODY.
 *
 * Returns: %TRUE if the request was queued
 *
 * Since: 1.0
 */
gboolean
milter_client_context_replace_body_bytes (MilterClientContext  *context,
                                          GBytes               *body,
                                          GError              **error)
{
  gsize size;
  gconstpointer data;

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);
  g_return_val_if_fail (body != NULL, FALSE);

  data = g_bytes_get_data (body, &size);
  return milter_client_context_replace_body (context, data, size, error);
}

/**
 * milter_client_context_quarantine:
 * @context: a #MilterClientContext
 * @reason: (type filename): why, non-empty
 * @error: return location for a #GError, or %NULL
 *
 * Quarantines the message (smfi_quarantine): Postfix puts it in the hold
 * queue. Needs %MILTER_ACTION_QUARANTINE.
 *
 * Returns: %TRUE if the request was queued
 *
 * Since: 1.0
 */
gboolean
milter_client_context_quarantine (MilterClientContext  *context,
                                  const gchar          *reason,
                                  GError              **error)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);
  g_return_val_if_fail (reason != NULL, FALSE);

  if (!can_modify (context, MILTER_ACTION_QUARANTINE, "quarantine", error) ||
      !check_line ("quarantine reason", reason, FALSE, error))
    return FALSE;
  milter_encoder_encode_string (priv->out, 'q', reason);
  milter_client_context_set_quarantine_reason (context, reason);
  modified (context);
  return TRUE;
}

/* ---- public API: macros ---------------------------------------------- */

/**
 * milter_client_context_get_macro:
 * @context: a #MilterClientContext
 * @name: a macro name, with or without braces (`"{auth_authen}"`,
 *   `"auth_authen"`, `"i"`)
 *
 * Looks up a macro the MTA sent (smfi_getsymval), searching the latest
 * stage first. Message macros are forgotten when the message ends.
 *
 * Values such as `{auth_authen}` or `{mail_addr}` come from the SMTP
 * client and need not be UTF-8, so bindings see the value as a file name,
 * as the string arguments of the event signals (Python: a str with
 * surrogate escapes).
 *
 * Returns: (nullable) (type filename): the value, or %NULL
 *
 * Since: 1.0
 */
const gchar *
milter_client_context_get_macro (MilterClientContext *context,
                                 const gchar         *name)
{
  gsize length;
  const gchar *value;
  g_autofree gchar *other = NULL;

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);
  g_return_val_if_fail (name != NULL, NULL);

  value = lookup_macro (context, name);
  if (value != NULL)
    return value;
  length = strlen (name);
  if (length >= 2 && name[0] == '{' && name[length - 1] == '}')
    other = g_strndup (name + 1, length - 2);
  else
    other = g_strdup_printf ("{%s}", name);
  return lookup_macro (context, other);
}

/**
 * milter_client_context_get_macros:
 * @context: a #MilterClientContext
 *
 * Gets every macro defined now, by name as the MTA sent it (long names in
 * braces), later stages overriding earlier ones.
 *
 * For bindings the table holds UTF-8 strings (ruby-gnome cannot convert a
 * table of file names): in Python a value that is not UTF-8 makes this
 * call raise UnicodeDecodeError. Read values that come from the SMTP client
 * with milter_client_context_get_macro(), which never fails.
 *
 * Returns: (transfer none) (element-type utf8 utf8): the macros; valid
 *   until the next command
 *
 * Since: 1.0
 */
GHashTable *
milter_client_context_get_macros (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);

  if (priv->macros_cache == NULL)
    {
      priv->macros_cache = g_hash_table_new (g_str_hash, g_str_equal);
      for (guint table = 0; table < N_MACRO_TABLES; table++)
        add_macros_to (priv->macros_cache, &priv->macros[table], FALSE);
    }
  return priv->macros_cache;
}

static gint
compare_names (gconstpointer a,
               gconstpointer b)
{
  return strcmp (*(const gchar * const *) a, *(const gchar * const *) b);
}

/**
 * milter_client_context_get_macro_names:
 * @context: a #MilterClientContext
 *
 * Gets the names of every macro defined now, as the MTA sent them (long
 * names in braces). With milter_client_context_get_macro() this reads
 * macros whose values are not UTF-8 from bindings, which
 * milter_client_context_get_macros() cannot.
 *
 * Returns: (transfer full) (array zero-terminated=1) (element-type filename):
 *   the names, sorted
 *
 * Since: 1.0
 */
gchar **
milter_client_context_get_macro_names (MilterClientContext *context)
{
  GHashTable *macros;
  g_autofree gpointer *keys = NULL;
  GPtrArray *names;
  guint n;

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);

  macros = milter_client_context_get_macros (context);
  keys = g_hash_table_get_keys_as_array (macros, &n);
  names = g_ptr_array_new ();
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (names, g_strdup (keys[i]));
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);
  return (gchar **) g_ptr_array_free (names, FALSE);
}

/**
 * milter_client_context_get_command_macros:
 * @context: a #MilterClientContext
 * @command: a command, such as %MILTER_COMMAND_ENVELOPE_FROM
 *
 * Gets the macros the MTA sent for @command only (the latest 'D' packet
 * for it), for example in a #MilterClientContext::define-macro handler.
 *
 * As with milter_client_context_get_macros(), a binding gets UTF-8
 * strings: in Python a value that is not UTF-8 makes this call raise
 * UnicodeDecodeError (and PyGObject then leaks the table). Read such
 * values with milter_client_context_get_macro().
 *
 * Returns: (transfer full) (element-type utf8 utf8): the macros, by name
 *   as the MTA sent it
 *
 * Since: 1.0
 */
GHashTable *
milter_client_context_get_command_macros (MilterClientContext *context,
                                          MilterCommand        command)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);
  GHashTable *macros;

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);

  macros = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  add_macros_to (macros, &priv->macros[macro_table_for ((gchar) command)], TRUE);
  return macros;
}

/**
 * milter_client_context_get_esmtp_parameters:
 * @context: a #MilterClientContext
 *
 * Gets the ESMTP parameters of the last MAIL FROM or RCPT TO, such as
 * `SIZE=1024` (the rest of libmilter's argv). They come from the SMTP
 * client and need not be UTF-8: bindings see file names.
 *
 * Returns: (transfer none) (array zero-terminated=1) (element-type filename) (nullable):
 *   the parameters, or %NULL outside a message
 *
 * Since: 1.0
 */
const gchar * const *
milter_client_context_get_esmtp_parameters (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);

  return (const gchar * const *) priv->esmtp_parameters;
}

/* ---- public API: storage ---------------------------------------------- */

/**
 * milter_client_context_get_private_data: (skip)
 * @context: a #MilterClientContext
 *
 * Gets the data set with milter_client_context_set_private_data().
 *
 * Returns: (nullable): the data
 *
 * Since: 1.0
 */
gpointer
milter_client_context_get_private_data (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);

  return priv->private_data;
}

/**
 * milter_client_context_set_private_data: (skip)
 * @context: a #MilterClientContext
 * @data: (nullable): per-connection data
 * @destroy: (nullable): frees @data
 *
 * Attaches per-connection data (smfi_setpriv). @destroy runs exactly once
 * for each @data: when other data is set, right after
 * #MilterClientContext::finished, or when the context is destroyed.
 * Bindings can keep state on the context object instead.
 *
 * Since: 1.0
 */
void
milter_client_context_set_private_data (MilterClientContext *context,
                                        gpointer             data,
                                        GDestroyNotify       destroy)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  if (data == priv->private_data && destroy == priv->private_data_destroy)
    return;
  clear_private_data (context);
  priv->private_data = data;
  priv->private_data_destroy = destroy;
}

/**
 * milter_client_context_set_mail_transaction_shelf_value:
 * @context: a #MilterClientContext
 * @key: a key
 * @value: (nullable): a value; %NULL removes @key
 *
 * Stores a string for the current message. The shelf is emptied when the
 * message ends.
 *
 * Since: 1.0
 */
void
milter_client_context_set_mail_transaction_shelf_value (MilterClientContext *context,
                                                        const gchar         *key,
                                                        const gchar         *value)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));
  g_return_if_fail (key != NULL);

  if (value == NULL)
    g_hash_table_remove (priv->shelf, key);
  else
    g_hash_table_replace (priv->shelf, g_strdup (key), g_strdup (value));
}

/**
 * milter_client_context_get_mail_transaction_shelf_value:
 * @context: a #MilterClientContext
 * @key: a key
 *
 * Gets a string stored for the current message.
 *
 * Returns: (nullable): the value, or %NULL
 *
 * Since: 1.0
 */
const gchar *
milter_client_context_get_mail_transaction_shelf_value (MilterClientContext *context,
                                                        const gchar         *key)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);
  g_return_val_if_fail (key != NULL, NULL);

  return g_hash_table_lookup (priv->shelf, key);
}

/**
 * milter_client_context_get_mail_transaction_shelf:
 * @context: a #MilterClientContext
 *
 * Gets the storage of the current message.
 *
 * Returns: (transfer none) (element-type utf8 utf8): the shelf
 *
 * Since: 1.0
 */
GHashTable *
milter_client_context_get_mail_transaction_shelf (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);

  return priv->shelf;
}

/**
 * milter_client_context_clear_mail_transaction_shelf:
 * @context: a #MilterClientContext
 *
 * Empties the storage of the current message.
 *
 * Since: 1.0
 */
void
milter_client_context_clear_mail_transaction_shelf (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  g_hash_table_remove_all (priv->shelf);
}

/**
 * milter_client_context_mail_transaction_shelf_foreach:
 * @context: a #MilterClientContext
 * @func: (scope call): called for each entry
 * @user_data: data for @func
 *
 * Calls @func for each entry of the current message's storage.
 *
 * Since: 1.0
 */
void
milter_client_context_mail_transaction_shelf_foreach (MilterClientContext                 *context,
                                                      MilterClientMailTransactionShelfFunc func,
                                                      gpointer                             user_data)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);
  GHashTableIter iter;
  gpointer key, value;

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));
  g_return_if_fail (func != NULL);

  g_hash_table_iter_init (&iter, priv->shelf);
  while (g_hash_table_iter_next (&iter, &key, &value))
    func (key, value, user_data);
}

/**
 * milter_client_context_reset_message_related_data:
 * @context: a #MilterClientContext
 *
 * Forgets the current message's macros, shelf and ESMTP parameters. The
 * context does this itself when a message ends.
 *
 * Since: 1.0
 */
void
milter_client_context_reset_message_related_data (MilterClientContext *context)
{
  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  reset_message_data (context);
}

/* ---- public API: state and settings ------------------------------------ */

/**
 * milter_client_context_get_state:
 * @context: a #MilterClientContext
 *
 * Gets where the session is.
 *
 * Returns: the state
 *
 * Since: 1.0
 */
MilterClientContextState
milter_client_context_get_state (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), MILTER_CLIENT_CONTEXT_STATE_INVALID);

  return priv->state;
}

/**
 * milter_client_context_set_state:
 * @context: a #MilterClientContext
 * @state: a state
 *
 * Sets the state. Only for tests and special cases: the context keeps it
 * up to date itself.
 *
 * Since: 1.0
 */
void
milter_client_context_set_state (MilterClientContext     *context,
                                 MilterClientContextState state)
{
  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  set_state (context, state);
}

/**
 * milter_client_context_get_last_state:
 * @context: a #MilterClientContext
 *
 * Gets the last event handled: one of the states without `_REPLIED`.
 *
 * Returns: the state of the last event
 *
 * Since: 1.0
 */
MilterClientContextState
milter_client_context_get_last_state (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), MILTER_CLIENT_CONTEXT_STATE_INVALID);

  return priv->last_state;
}

/**
 * milter_client_context_get_status:
 * @context: a #MilterClientContext
 *
 * Gets the status of the last reply.
 *
 * Returns: the status
 *
 * Since: 1.0
 */
MilterStatus
milter_client_context_get_status (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), MILTER_STATUS_DEFAULT);

  return priv->status;
}

/**
 * milter_client_context_set_status:
 * @context: a #MilterClientContext
 * @status: a status
 *
 * Sets #MilterClientContext:status. It does not send a reply.
 *
 * Since: 1.0
 */
void
milter_client_context_set_status (MilterClientContext *context,
                                  MilterStatus         status)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  if (priv->status == status)
    return;
  priv->status = status;
  g_object_notify_by_pspec (G_OBJECT (context), properties[PROP_STATUS]);
}

/**
 * milter_client_context_get_option:
 * @context: a #MilterClientContext
 *
 * Gets what was negotiated with the MTA.
 *
 * Returns: (transfer none) (nullable): the negotiated option, or %NULL
 *   before the negotiation
 *
 * Since: 1.0
 */
MilterOption *
milter_client_context_get_option (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);

  return priv->option;
}

/**
 * milter_client_context_set_option:
 * @context: a #MilterClientContext
 * @option: (nullable): an option
 *
 * Sets the negotiated option as if the MTA had agreed to it, for tests
 * that start a session after the negotiation.
 *
 * Since: 1.0
 */
void
milter_client_context_set_option (MilterClientContext *context,
                                  MilterOption        *option)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  g_clear_pointer (&priv->option, milter_option_free);
  if (option != NULL)
    {
      priv->option = milter_option_copy (option);
      if (priv->position == AT_START)
        priv->position = AT_NEGOTIATE;
    }
  compute_allowed_positions (context);
  g_object_notify_by_pspec (G_OBJECT (context), properties[PROP_OPTION]);
}

/**
 * milter_client_context_get_message_result:
 * @context: a #MilterClientContext
 *
 * Gets the record of the current message, or of the last one until the
 * next begins.
 *
 * Returns: (transfer none) (nullable): the #MilterMessageResult, or %NULL
 *   before the first message
 *
 * Since: 1.0
 */
MilterMessageResult *
milter_client_context_get_message_result (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);

  return priv->message_result;
}

/**
 * milter_client_context_get_quarantine_reason:
 * @context: a #MilterClientContext
 *
 * Gets the reason given to the last quarantine request.
 *
 * Returns: (nullable): the reason, or %NULL
 *
 * Since: 1.0
 */
const gchar *
milter_client_context_get_quarantine_reason (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), NULL);

  return priv->quarantine_reason;
}

/**
 * milter_client_context_set_quarantine_reason:
 * @context: a #MilterClientContext
 * @reason: (nullable): a reason
 *
 * Sets #MilterClientContext:quarantine-reason. It does not quarantine;
 * use milter_client_context_quarantine().
 *
 * Since: 1.0
 */
void
milter_client_context_set_quarantine_reason (MilterClientContext *context,
                                             const gchar         *reason)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  milter_property_set_string (G_OBJECT (context), &priv->quarantine_reason, reason,
                              properties[PROP_QUARANTINE_REASON]);
}

/**
 * milter_client_context_get_timeout:
 * @context: a #MilterClientContext
 *
 * Gets #MilterClientContext:timeout.
 *
 * Returns: the timeout in seconds (0: none)
 *
 * Since: 1.0
 */
guint
milter_client_context_get_timeout (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), 0);

  return priv->timeout;
}

/**
 * milter_client_context_set_timeout:
 * @context: a #MilterClientContext
 * @timeout: seconds (0: none)
 *
 * Sets #MilterClientContext:timeout (smfi_settimeout).
 *
 * Since: 1.0
 */
void
milter_client_context_set_timeout (MilterClientContext *context,
                                   guint                timeout)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  if (priv->timeout == timeout)
    return;
  priv->timeout = timeout;
  if (has_transport (context))
    arm_timeout (context);
  g_object_notify_by_pspec (G_OBJECT (context), properties[PROP_TIMEOUT]);
}

/**
 * milter_client_context_get_packet_buffer_size:
 * @context: a #MilterClientContext
 *
 * Gets #MilterClientContext:packet-buffer-size.
 *
 * Returns: the size in bytes
 *
 * Since: 1.0
 */
guint
milter_client_context_get_packet_buffer_size (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), 0);

  return priv->packet_buffer_size;
}

/**
 * milter_client_context_set_packet_buffer_size:
 * @context: a #MilterClientContext
 * @size: bytes
 *
 * Sets #MilterClientContext:packet-buffer-size.
 *
 * Since: 1.0
 */
void
milter_client_context_set_packet_buffer_size (MilterClientContext *context,
                                              guint                size)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  milter_property_set_uint (G_OBJECT (context), &priv->packet_buffer_size, size,
                            properties[PROP_PACKET_BUFFER_SIZE]);
}

/**
 * milter_client_context_get_use_bytes:
 * @context: a #MilterClientContext
 *
 * Gets #MilterClientContext:use-bytes.
 *
 * Returns: whether only the #GBytes chunk signals are emitted
 *
 * Since: 1.0
 */
gboolean
milter_client_context_get_use_bytes (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);

  return priv->use_bytes;
}

/**
 * milter_client_context_set_use_bytes:
 * @context: a #MilterClientContext
 * @use_bytes: whether only the #GBytes chunk signals are emitted
 *
 * Sets #MilterClientContext:use-bytes.
 *
 * Since: 1.0
 */
void
milter_client_context_set_use_bytes (MilterClientContext *context,
                                     gboolean             use_bytes)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  use_bytes = !!use_bytes;
  if (priv->use_bytes == use_bytes)
    return;
  priv->use_bytes = use_bytes;
  g_object_notify_by_pspec (G_OBJECT (context), properties[PROP_USE_BYTES]);
}

/**
 * milter_client_context_get_max_packet_length:
 * @context: a #MilterClientContext
 *
 * Gets #MilterClientContext:max-packet-length.
 *
 * Returns: the limit in bytes
 *
 * Since: 1.0
 */
guint
milter_client_context_get_max_packet_length (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), 0);

  return (guint) milter_decoder_get_max_packet_length (priv->decoder);
}

/**
 * milter_client_context_set_max_packet_length:
 * @context: a #MilterClientContext
 * @length: the limit in bytes, at least 1
 *
 * Sets #MilterClientContext:max-packet-length.
 *
 * Since: 1.0
 */
void
milter_client_context_set_max_packet_length (MilterClientContext *context,
                                             guint                length)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));
  g_return_if_fail (length >= 1);

  if (milter_decoder_get_max_packet_length (priv->decoder) == length)
    return;
  milter_decoder_set_max_packet_length (priv->decoder, length);
  g_object_notify_by_pspec (G_OBJECT (context), properties[PROP_MAX_PACKET_LENGTH]);
}

/**
 * milter_client_context_get_max_headers:
 * @context: a #MilterClientContext
 *
 * Gets #MilterClientContext:max-headers.
 *
 * Returns: the limit (0: none)
 *
 * Since: 1.0
 */
guint
milter_client_context_get_max_headers (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), 0);

  return priv->max_headers;
}

/**
 * milter_client_context_set_max_headers:
 * @context: a #MilterClientContext
 * @max_headers: the limit (0: none)
 *
 * Sets #MilterClientContext:max-headers.
 *
 * Since: 1.0
 */
void
milter_client_context_set_max_headers (MilterClientContext *context,
                                       guint                max_headers)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  milter_property_set_uint (G_OBJECT (context), &priv->max_headers, max_headers,
                            properties[PROP_MAX_HEADERS]);
}

/**
 * milter_client_context_get_max_message_result_size:
 * @context: a #MilterClientContext
 *
 * Gets #MilterClientContext:max-message-result-size.
 *
 * Returns: the limit in bytes (0: none)
 *
 * Since: 1.0
 */
guint
milter_client_context_get_max_message_result_size (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), 0);

  return priv->max_message_result_size;
}

/**
 * milter_client_context_set_max_message_result_size:
 * @context: a #MilterClientContext
 * @max_size: the limit in bytes (0: none)
 *
 * Sets #MilterClientContext:max-message-result-size.
 *
 * Since: 1.0
 */
void
milter_client_context_set_max_message_result_size (MilterClientContext *context,
                                                   guint                max_size)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  milter_property_set_uint (G_OBJECT (context), &priv->max_message_result_size, max_size,
                            properties[PROP_MAX_MESSAGE_RESULT_SIZE]);
}

/**
 * milter_client_context_get_max_recipients:
 * @context: a #MilterClientContext
 *
 * Gets #MilterClientContext:max-recipients.
 *
 * Returns: the limit (0: none)
 *
 * Since: 1.0
 */
guint
milter_client_context_get_max_recipients (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), 0);

  return priv->max_recipients;
}

/**
 * milter_client_context_set_max_recipients:
 * @context: a #MilterClientContext
 * @max_recipients: the limit (0: none)
 *
 * Sets #MilterClientContext:max-recipients.
 *
 * Since: 1.0
 */
void
milter_client_context_set_max_recipients (MilterClientContext *context,
                                          guint                max_recipients)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  milter_property_set_uint (G_OBJECT (context), &priv->max_recipients, max_recipients,
                            properties[PROP_MAX_RECIPIENTS]);
}

/**
 * milter_client_context_get_max_macros:
 * @context: a #MilterClientContext
 *
 * Gets #MilterClientContext:max-macros.
 *
 * Returns: the limit
 *
 * Since: 1.0
 */
guint
milter_client_context_get_max_macros (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), 0);

  return priv->max_macros;
}

/**
 * milter_client_context_set_max_macros:
 * @context: a #MilterClientContext
 * @max_macros: the limit
 *
 * Sets #MilterClientContext:max-macros.
 *
 * Since: 1.0
 */
void
milter_client_context_set_max_macros (MilterClientContext *context,
                                      guint                max_macros)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));

  if (priv->max_macros == max_macros)
    return;
  priv->max_macros = max_macros;
  milter_decoder_set_max_macros (priv->decoder, max_macros);
  g_object_notify_by_pspec (G_OBJECT (context), properties[PROP_MAX_MACROS]);
}

/**
 * milter_client_context_get_fallback_status:
 * @context: a #MilterClientContext
 *
 * Gets #MilterClientContext:fallback-status.
 *
 * Returns: the status used when no handler has an opinion
 *
 * Since: 1.0
 */
MilterStatus
milter_client_context_get_fallback_status (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), MILTER_STATUS_CONTINUE);

  return priv->fallback_status;
}

static gboolean
is_verdict (MilterStatus status)
{
  return status == MILTER_STATUS_CONTINUE || status == MILTER_STATUS_ACCEPT ||
         status == MILTER_STATUS_REJECT || status == MILTER_STATUS_TEMPORARY_FAILURE ||
         status == MILTER_STATUS_DISCARD;
}

/**
 * milter_client_context_set_fallback_status:
 * @context: a #MilterClientContext
 * @status: %MILTER_STATUS_CONTINUE, %MILTER_STATUS_ACCEPT,
 *   %MILTER_STATUS_REJECT, %MILTER_STATUS_TEMPORARY_FAILURE or
 *   %MILTER_STATUS_DISCARD
 *
 * Sets #MilterClientContext:fallback-status.
 *
 * Since: 1.0
 */
void
milter_client_context_set_fallback_status (MilterClientContext *context,
                                           MilterStatus         status)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_if_fail (MILTER_IS_CLIENT_CONTEXT (context));
  g_return_if_fail (is_verdict (status));

  if (priv->fallback_status == status)
    return;
  priv->fallback_status = status;
  g_object_notify_by_pspec (G_OBJECT (context), properties[PROP_FALLBACK_STATUS]);
}

/**
 * milter_client_context_get_n_processing_sessions:
 * @context: a #MilterClientContext
 *
 * Gets how many sessions the context's client serves now.
 *
 * Returns: the client's session count; for a context without client, 1
 *   until it finishes, then 0
 *
 * Since: 1.0
 */
guint
milter_client_context_get_n_processing_sessions (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), 0);

  if (priv->client != NULL)
    return milter_client_get_n_processing_sessions (priv->client);
  return priv->finished ? 0 : 1;
}

/**
 * milter_client_context_is_finished:
 * @context: a #MilterClientContext
 *
 * Checks whether #MilterClientContext::finished was emitted for the
 * connection (and no new one followed on the same socket).
 *
 * Returns: %TRUE once the session ended
 *
 * Since: 1.0
 */
gboolean
milter_client_context_is_finished (MilterClientContext *context)
{
  MilterClientContextPrivate *priv = milter_client_context_get_instance_private (context);

  g_return_val_if_fail (MILTER_IS_CLIENT_CONTEXT (context), FALSE);

  return priv->finished;
}
