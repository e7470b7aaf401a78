/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MILTER_INSIDE) && !defined (MILTER_COMPILATION)
# error "Only <milter/milter.h> can be included directly."
#endif

#include <glib.h>

G_BEGIN_DECLS

/**
 * SECTION:milter-enums
 * @title: Enumerations
 * @short_description: Statuses, negotiation flags, commands and states
 * @include: milter/milter.h
 *
 * The values of #MilterActionFlags, #MilterStepFlags, #MilterCommand,
 * #MilterReply and #MilterMacroStage are the milter wire protocol's own
 * values, so they can be compared with what an MTA sends.
 *
 * |[<!-- language="C" -->
 * // In a negotiate handler: does the MTA let us replace the body, and
 * // will it leave the body out if asked?
 * gboolean can_replace = milter_option_get_action (option) & MILTER_ACTION_CHANGE_BODY;
 * gboolean can_skip_body = milter_option_get_step (option) & MILTER_STEP_NO_BODY;
 * ]|
 */

/**
 * MilterStatus:
 * @MILTER_STATUS_DEFAULT: no opinion; the next handler or the context's
 *   fallback status decides. A Python handler that returns nothing or
 *   raises yields this value, so it never causes a verdict.
 * @MILTER_STATUS_NOT_CHANGE: no opinion either; kept for compatibility
 *   with milter manager.
 * @MILTER_STATUS_CONTINUE: continue processing (at end-of-message: accept)
 * @MILTER_STATUS_REJECT: reject the connection, message or recipient
 * @MILTER_STATUS_DISCARD: accept the message and silently discard it
 * @MILTER_STATUS_ACCEPT: accept without further filtering
 * @MILTER_STATUS_TEMPORARY_FAILURE: reject with a temporary (4xx) failure
 * @MILTER_STATUS_NO_REPLY: do not reply; meaningful only for steps whose
 *   no-reply flag was negotiated (otherwise a continue is sent)
 * @MILTER_STATUS_SKIP: skip the remaining body chunks (reply to a body
 *   chunk only; a continue is sent elsewhere or when the MTA did not
 *   offer %MILTER_STEP_SKIP)
 * @MILTER_STATUS_ALL_OPTIONS: negotiate only: request every action the
 *   MTA offers and every step that has a handler
 * @MILTER_STATUS_PROGRESS: the reply is deferred; emit the matching
 *   `-response` signal (or call milter_client_context_reply()) later
 * @MILTER_STATUS_ABORT: the message was aborted (used in
 *   #MilterMessageResult; never sent)
 *
 * The result of a status-returning signal. The first handler that returns
 * a status other than %MILTER_STATUS_DEFAULT or %MILTER_STATUS_NOT_CHANGE
 * decides; if none does, %MILTER_STATUS_CONTINUE applies
 * (%MILTER_STATUS_ALL_OPTIONS for negotiation).
 *
 * Since: 1.0
 */
typedef enum {
  MILTER_STATUS_DEFAULT = 0,
  MILTER_STATUS_NOT_CHANGE,
  MILTER_STATUS_CONTINUE,
  MILTER_STATUS_REJECT,
  MILTER_STATUS_DISCARD,
  MILTER_STATUS_ACCEPT,
  MILTER_STATUS_TEMPORARY_FAILURE,
  MILTER_STATUS_NO_REPLY,
  MILTER_STATUS_SKIP,
  MILTER_STATUS_ALL_OPTIONS,
  MILTER_STATUS_PROGRESS,
  MILTER_STATUS_ABORT,
} MilterStatus;

/**
 * MilterActionFlags:
 * @MILTER_ACTION_NONE: no action
 * @MILTER_ACTION_ADD_HEADERS: add and insert headers (SMFIF_ADDHDRS)
 * @MILTER_ACTION_CHANGE_BODY: replace the body (SMFIF_CHGBODY)
 * @MILTER_ACTION_ADD_RECIPIENT: add recipients (SMFIF_ADDRCPT)
 * @MILTER_ACTION_DELETE_RECIPIENT: delete recipients (SMFIF_DELRCPT)
 * @MILTER_ACTION_CHANGE_HEADERS: change and delete headers (SMFIF_CHGHDRS)
 * @MILTER_ACTION_QUARANTINE: quarantine the message (SMFIF_QUARANTINE)
 * @MILTER_ACTION_CHANGE_FROM: change the envelope sender (SMFIF_CHGFROM, v6)
 * @MILTER_ACTION_ADD_RECIPIENT_WITH_PARAMETERS: add recipients with ESMTP
 *   parameters (SMFIF_ADDRCPT_PAR, v6)
 * @MILTER_ACTION_SET_SYMBOL_LIST: request macro lists (SMFIF_SETSYMLIST, v6)
 *
 * Message modifications a milter may request during negotiation. The
 * values are the wire bits.
 *
 * Since: 1.0
 */
typedef enum /*< flags >*/ {
  MILTER_ACTION_NONE = 0,
  MILTER_ACTION_ADD_HEADERS = 1 << 0,
  MILTER_ACTION_CHANGE_BODY = 1 << 1,
  MILTER_ACTION_ADD_RECIPIENT = 1 << 2,
  MILTER_ACTION_DELETE_RECIPIENT = 1 << 3,
  MILTER_ACTION_CHANGE_HEADERS = 1 << 4,
  MILTER_ACTION_QUARANTINE = 1 << 5,
  MILTER_ACTION_CHANGE_FROM = 1 << 6,
  MILTER_ACTION_ADD_RECIPIENT_WITH_PARAMETERS = 1 << 7,
  MILTER_ACTION_SET_SYMBOL_LIST = 1 << 8,
} MilterActionFlags;

/**
 * MILTER_ACTION_ALL:
 *
 * Every action protocol version 6 defines (SMFI_CURR_ACTS, 0x1FF). Like
 * the masks of #MilterStepFlags, it is a plain integer, so that language
 * bindings can read it.
 *
 * Since: 1.0
 */
#define MILTER_ACTION_ALL 0x1FF

/**
 * MilterStepFlags:
 * @MILTER_STEP_NONE: no flag
 * @MILTER_STEP_NO_CONNECT: do not send connect (SMFIP_NOCONNECT)
 * @MILTER_STEP_NO_HELO: do not send HELO (SMFIP_NOHELO)
 * @MILTER_STEP_NO_ENVELOPE_FROM: do not send MAIL (SMFIP_NOMAIL)
 * @MILTER_STEP_NO_ENVELOPE_RECIPIENT: do not send RCPT (SMFIP_NORCPT)
 * @MILTER_STEP_NO_BODY: do not send body chunks (SMFIP_NOBODY)
 * @MILTER_STEP_NO_HEADERS: do not send headers (SMFIP_NOHDRS)
 * @MILTER_STEP_NO_END_OF_HEADER: do not send end-of-header (SMFIP_NOEOH)
 * @MILTER_STEP_NO_REPLY_HEADER: no reply to headers (SMFIP_NR_HDR)
 * @MILTER_STEP_NO_UNKNOWN: do not send unknown commands (SMFIP_NOUNKNOWN)
 * @MILTER_STEP_NO_DATA: do not send DATA (SMFIP_NODATA)
 * @MILTER_STEP_SKIP: the MTA understands a skip reply (SMFIP_SKIP)
 * @MILTER_STEP_ENVELOPE_RECIPIENT_REJECTED: also send rejected recipients
 *   (SMFIP_RCPT_REJ)
 * @MILTER_STEP_NO_REPLY_CONNECT: no reply to connect (SMFIP_NR_CONN)
 * @MILTER_STEP_NO_REPLY_HELO: no reply to HELO (SMFIP_NR_HELO)
 * @MILTER_STEP_NO_REPLY_ENVELOPE_FROM: no reply to MAIL (SMFIP_NR_MAIL)
 * @MILTER_STEP_NO_REPLY_ENVELOPE_RECIPIENT: no reply to RCPT (SMFIP_NR_RCPT)
 * @MILTER_STEP_NO_REPLY_DATA: no reply to DATA (SMFIP_NR_DATA)
 * @MILTER_STEP_NO_REPLY_UNKNOWN: no reply to unknown commands (SMFIP_NR_UNKN)
 * @MILTER_STEP_NO_REPLY_END_OF_HEADER: no reply to end-of-header (SMFIP_NR_EOH)
 * @MILTER_STEP_NO_REPLY_BODY: no reply to body chunks (SMFIP_NR_BODY)
 * @MILTER_STEP_HEADER_LEADING_SPACE: header values keep their leading
 *   space (SMFIP_HDR_LEADSPC)
 * @MILTER_STEP_MAX_DATA_SIZE_256K: packets of up to 256 KiB (SMFIP_MDS_256K)
 * @MILTER_STEP_MAX_DATA_SIZE_1M: packets of up to 1 MiB (SMFIP_MDS_1M)
 *
 * Protocol steps negotiated between MTA and milter. The values are the
 * wire bits.
 *
 * Since: 1.0
 */
typedef enum /*< flags >*/ {
  MILTER_STEP_NONE = 0,
  MILTER_STEP_NO_CONNECT = 1 << 0,
  MILTER_STEP_NO_HELO = 1 << 1,
  MILTER_STEP_NO_ENVELOPE_FROM = 1 << 2,
  MILTER_STEP_NO_ENVELOPE_RECIPIENT = 1 << 3,
  MILTER_STEP_NO_BODY = 1 << 4,
  MILTER_STEP_NO_HEADERS = 1 << 5,
  MILTER_STEP_NO_END_OF_HEADER = 1 << 6,
  MILTER_STEP_NO_REPLY_HEADER = 1 << 7,
  MILTER_STEP_NO_UNKNOWN = 1 << 8,
  MILTER_STEP_NO_DATA = 1 << 9,
  MILTER_STEP_SKIP = 1 << 10,
  MILTER_STEP_ENVELOPE_RECIPIENT_REJECTED = 1 << 11,
  MILTER_STEP_NO_REPLY_CONNECT = 1 << 12,
  MILTER_STEP_NO_REPLY_HELO = 1 << 13,
  MILTER_STEP_NO_REPLY_ENVELOPE_FROM = 1 << 14,
  MILTER_STEP_NO_REPLY_ENVELOPE_RECIPIENT = 1 << 15,
  MILTER_STEP_NO_REPLY_DATA = 1 << 16,
  MILTER_STEP_NO_REPLY_UNKNOWN = 1 << 17,
  MILTER_STEP_NO_REPLY_END_OF_HEADER = 1 << 18,
  MILTER_STEP_NO_REPLY_BODY = 1 << 19,
  MILTER_STEP_HEADER_LEADING_SPACE = 1 << 20,
  MILTER_STEP_MAX_DATA_SIZE_256K = 1 << 28,
  MILTER_STEP_MAX_DATA_SIZE_1M = 1 << 29,
} MilterStepFlags;

/**
 * MILTER_STEP_NO_EVENT_MASK:
 *
 * The "do not send" step bits (SMFIP_NO*).
 *
 * Since: 1.0
 */
#define MILTER_STEP_NO_EVENT_MASK 0x0000037F

/**
 * MILTER_STEP_NO_REPLY_MASK:
 *
 * The "will not reply" step bits (SMFIP_NR_*).
 *
 * Since: 1.0
 */
#define MILTER_STEP_NO_REPLY_MASK 0x000FF080

/**
 * MILTER_STEP_MAX_DATA_SIZE_MASK:
 *
 * The data-size step bits (SMFIP_MDS_256K, SMFIP_MDS_1M).
 *
 * Since: 1.0
 */
#define MILTER_STEP_MAX_DATA_SIZE_MASK 0x30000000

/**
 * MILTER_STEP_ALL:
 *
 * Every step bit protocol version 6 defines (SMFI_CURR_PROT, 0x1FFFFF),
 * without the data-size bits.
 *
 * Since: 1.0
 */
#define MILTER_STEP_ALL 0x1FFFFF

/**
 * MilterCommand:
 * @MILTER_COMMAND_NEGOTIATE: option negotiation ('O')
 * @MILTER_COMMAND_DEFINE_MACRO: macro definitions ('D')
 * @MILTER_COMMAND_CONNECT: SMTP connection information ('C')
 * @MILTER_COMMAND_HELO: HELO/EHLO ('H')
 * @MILTER_COMMAND_ENVELOPE_FROM: MAIL FROM ('M')
 * @MILTER_COMMAND_ENVELOPE_RECIPIENT: RCPT TO ('R')
 * @MILTER_COMMAND_DATA: DATA ('T')
 * @MILTER_COMMAND_HEADER: one header ('L')
 * @MILTER_COMMAND_END_OF_HEADER: end of headers ('N')
 * @MILTER_COMMAND_BODY: a body chunk ('B')
 * @MILTER_COMMAND_END_OF_MESSAGE: end of message ('E')
 * @MILTER_COMMAND_UNKNOWN: an unknown SMTP command ('U')
 * @MILTER_COMMAND_ABORT: abort the current message ('A')
 * @MILTER_COMMAND_QUIT: close the connection ('Q')
 * @MILTER_COMMAND_QUIT_NEW_CONNECTION: quit; a new SMTP connection follows
 *   on this socket ('K')
 *
 * Commands an MTA sends to a milter. The values are the wire letters.
 *
 * Since: 1.0
 */
typedef enum {
  MILTER_COMMAND_NEGOTIATE = 'O',
  MILTER_COMMAND_DEFINE_MACRO = 'D',
  MILTER_COMMAND_CONNECT = 'C',
  MILTER_COMMAND_HELO = 'H',
  MILTER_COMMAND_ENVELOPE_FROM = 'M',
  MILTER_COMMAND_ENVELOPE_RECIPIENT = 'R',
  MILTER_COMMAND_DATA = 'T',
  MILTER_COMMAND_HEADER = 'L',
  MILTER_COMMAND_END_OF_HEADER = 'N',
  MILTER_COMMAND_BODY = 'B',
  MILTER_COMMAND_END_OF_MESSAGE = 'E',
  MILTER_COMMAND_UNKNOWN = 'U',
  MILTER_COMMAND_ABORT = 'A',
  MILTER_COMMAND_QUIT = 'Q',
  MILTER_COMMAND_QUIT_NEW_CONNECTION = 'K',
} MilterCommand;

/**
 * MilterReply:
 * @MILTER_REPLY_NEGOTIATE: the negotiation reply ('O')
 * @MILTER_REPLY_CONTINUE: continue ('c')
 * @MILTER_REPLY_ACCEPT: accept ('a')
 * @MILTER_REPLY_REJECT: reject ('r')
 * @MILTER_REPLY_TEMPORARY_FAILURE: temporary failure ('t')
 * @MILTER_REPLY_DISCARD: discard ('d')
 * @MILTER_REPLY_REPLY_CODE: reject or tempfail with an SMTP reply ('y')
 * @MILTER_REPLY_SKIP: skip the rest of the body ('s')
 * @MILTER_REPLY_PROGRESS: still working, keep waiting ('p')
 * @MILTER_REPLY_SHUTDOWN: 421 and close the SMTP session ('4')
 * @MILTER_REPLY_CONNECTION_FAILURE: connection failure ('f'; no MTA acts on it)
 * @MILTER_REPLY_SET_SYMBOL_LIST: macro list ('l'; never a packet of its own)
 * @MILTER_REPLY_ADD_HEADER: add a header ('h')
 * @MILTER_REPLY_INSERT_HEADER: insert a header ('i')
 * @MILTER_REPLY_CHANGE_HEADER: change or delete a header ('m')
 * @MILTER_REPLY_ADD_RECIPIENT: add a recipient ('+')
 * @MILTER_REPLY_ADD_RECIPIENT_WITH_PARAMETERS: add a recipient with ESMTP
 *   parameters ('2')
 * @MILTER_REPLY_DELETE_RECIPIENT: delete a recipient ('-')
 * @MILTER_REPLY_CHANGE_FROM: change the envelope sender ('e')
 * @MILTER_REPLY_REPLACE_BODY: a chunk of the replacement body ('b')
 * @MILTER_REPLY_QUARANTINE: quarantine the message ('q')
 *
 * Replies and modification requests a milter sends to the MTA. The values
 * are the wire letters.
 *
 * Since: 1.0
 */
typedef enum {
  MILTER_REPLY_NEGOTIATE = 'O',
  MILTER_REPLY_CONTINUE = 'c',
  MILTER_REPLY_ACCEPT = 'a',
  MILTER_REPLY_REJECT = 'r',
  MILTER_REPLY_TEMPORARY_FAILURE = 't',
  MILTER_REPLY_DISCARD = 'd',
  MILTER_REPLY_REPLY_CODE = 'y',
  MILTER_REPLY_SKIP = 's',
  MILTER_REPLY_PROGRESS = 'p',
  MILTER_REPLY_SHUTDOWN = '4',
  MILTER_REPLY_CONNECTION_FAILURE = 'f',
  MILTER_REPLY_SET_SYMBOL_LIST = 'l',
  MILTER_REPLY_ADD_HEADER = 'h',
  MILTER_REPLY_INSERT_HEADER = 'i',
  MILTER_REPLY_CHANGE_HEADER = 'm',
  MILTER_REPLY_ADD_RECIPIENT = '+',
  MILTER_REPLY_ADD_RECIPIENT_WITH_PARAMETERS = '2',
  MILTER_REPLY_DELETE_RECIPIENT = '-',
  MILTER_REPLY_CHANGE_FROM = 'e',
  MILTER_REPLY_REPLACE_BODY = 'b',
  MILTER_REPLY_QUARANTINE = 'q',
} MilterReply;

/**
 * MilterMacroStage:
 * @MILTER_MACRO_STAGE_CONNECT: macros sent with connect
 * @MILTER_MACRO_STAGE_HELO: macros sent with HELO
 * @MILTER_MACRO_STAGE_ENVELOPE_FROM: macros sent with MAIL FROM
 * @MILTER_MACRO_STAGE_ENVELOPE_RECIPIENT: macros sent with RCPT TO
 * @MILTER_MACRO_STAGE_DATA: macros sent with DATA
 * @MILTER_MACRO_STAGE_END_OF_MESSAGE: macros sent with end-of-message
 * @MILTER_MACRO_STAGE_END_OF_HEADER: macros sent with end-of-header
 *
 * The stages for which a milter can request macros. The values are the wire
 * numbers (SMFIM_*); note that end-of-message (5) comes before end-of-header (6).
 *
 * Since: 1.0
 */
typedef enum {
  MILTER_MACRO_STAGE_CONNECT = 0,
  MILTER_MACRO_STAGE_HELO = 1,
  MILTER_MACRO_STAGE_ENVELOPE_FROM = 2,
  MILTER_MACRO_STAGE_ENVELOPE_RECIPIENT = 3,
  MILTER_MACRO_STAGE_DATA = 4,
  MILTER_MACRO_STAGE_END_OF_MESSAGE = 5,
  MILTER_MACRO_STAGE_END_OF_HEADER = 6,
} MilterMacroStage;

/**
 * MILTER_MACRO_STAGE_COUNT:
 *
 * The number of #MilterMacroStage values.
 *
 * Since: 1.0
 */
#define MILTER_MACRO_STAGE_COUNT 7

/**
 * MilterClientContextState:
 * @MILTER_CLIENT_CONTEXT_STATE_INVALID: invalid state
 * @MILTER_CLIENT_CONTEXT_STATE_START: just started
 * @MILTER_CLIENT_CONTEXT_STATE_NEGOTIATE: negotiating
 * @MILTER_CLIENT_CONTEXT_STATE_NEGOTIATE_REPLIED: negotiation replied
 * @MILTER_CLIENT_CONTEXT_STATE_CONNECT: processing connect
 * @MILTER_CLIENT_CONTEXT_STATE_CONNECT_REPLIED: connect replied
 * @MILTER_CLIENT_CONTEXT_STATE_HELO: processing HELO
 * @MILTER_CLIENT_CONTEXT_STATE_HELO_REPLIED: HELO replied
 * @MILTER_CLIENT_CONTEXT_STATE_ENVELOPE_FROM: processing MAIL FROM
 * @MILTER_CLIENT_CONTEXT_STATE_ENVELOPE_FROM_REPLIED: MAIL FROM replied
 * @MILTER_CLIENT_CONTEXT_STATE_ENVELOPE_RECIPIENT: processing RCPT TO
 * @MILTER_CLIENT_CONTEXT_STATE_ENVELOPE_RECIPIENT_REPLIED: RCPT TO replied
 * @MILTER_CLIENT_CONTEXT_STATE_DATA: processing DATA
 * @MILTER_CLIENT_CONTEXT_STATE_DATA_REPLIED: DATA replied
 * @MILTER_CLIENT_CONTEXT_STATE_UNKNOWN: processing an unknown SMTP command
 * @MILTER_CLIENT_CONTEXT_STATE_UNKNOWN_REPLIED: unknown command replied
 * @MILTER_CLIENT_CONTEXT_STATE_HEADER: processing a header
 * @MILTER_CLIENT_CONTEXT_STATE_HEADER_REPLIED: header replied
 * @MILTER_CLIENT_CONTEXT_STATE_END_OF_HEADER: processing end-of-header
 * @MILTER_CLIENT_CONTEXT_STATE_END_OF_HEADER_REPLIED: end-of-header replied
 * @MILTER_CLIENT_CONTEXT_STATE_BODY: processing a body chunk
 * @MILTER_CLIENT_CONTEXT_STATE_BODY_REPLIED: body chunk replied
 * @MILTER_CLIENT_CONTEXT_STATE_END_OF_MESSAGE: processing end-of-message
 * @MILTER_CLIENT_CONTEXT_STATE_END_OF_MESSAGE_REPLIED: end-of-message replied
 * @MILTER_CLIENT_CONTEXT_STATE_QUIT: quitting
 * @MILTER_CLIENT_CONTEXT_STATE_QUIT_REPLIED: quit done
 * @MILTER_CLIENT_CONTEXT_STATE_ABORT: aborting the message
 * @MILTER_CLIENT_CONTEXT_STATE_ABORT_REPLIED: message aborted
 * @MILTER_CLIENT_CONTEXT_STATE_FINISHED: the connection is finished
 *
 * Where a #MilterClientContext is in its session.
 *
 * Since: 1.0
 */
typedef enum {
  MILTER_CLIENT_CONTEXT_STATE_INVALID,
  MILTER_CLIENT_CONTEXT_STATE_START,
  MILTER_CLIENT_CONTEXT_STATE_NEGOTIATE,
  MILTER_CLIENT_CONTEXT_STATE_NEGOTIATE_REPLIED,
  MILTER_CLIENT_CONTEXT_STATE_CONNECT,
  MILTER_CLIENT_CONTEXT_STATE_CONNECT_REPLIED,
  MILTER_CLIENT_CONTEXT_STATE_HELO,
  MILTER_CLIENT_CONTEXT_STATE_HELO_REPLIED,
  MILTER_CLIENT_CONTEXT_STATE_ENVELOPE_FROM,
  MILTER_CLIENT_CONTEXT_STATE_ENVELOPE_FROM_REPLIED,
  MILTER_CLIENT_CONTEXT_STATE_ENVELOPE_RECIPIENT,
  MILTER_CLIENT_CONTEXT_STATE_ENVELOPE_RECIPIENT_REPLIED,
  MILTER_CLIENT_CONTEXT_STATE_DATA,
  MILTER_CLIENT_CONTEXT_STATE_DATA_REPLIED,
  MILTER_CLIENT_CONTEXT_STATE_UNKNOWN,
  MILTER_CLIENT_CONTEXT_STATE_UNKNOWN_REPLIED,
  MILTER_CLIENT_CONTEXT_STATE_HEADER,
  MILTER_CLIENT_CONTEXT_STATE_HEADER_REPLIED,
  MILTER_CLIENT_CONTEXT_STATE_END_OF_HEADER,
  MILTER_CLIENT_CONTEXT_STATE_END_OF_HEADER_REPLIED,
  MILTER_CLIENT_CONTEXT_STATE_BODY,
  MILTER_CLIENT_CONTEXT_STATE_BODY_REPLIED,
  MILTER_CLIENT_CONTEXT_STATE_END_OF_MESSAGE,
  MILTER_CLIENT_CONTEXT_STATE_END_OF_MESSAGE_REPLIED,
  MILTER_CLIENT_CONTEXT_STATE_QUIT,
  MILTER_CLIENT_CONTEXT_STATE_QUIT_REPLIED,
  MILTER_CLIENT_CONTEXT_STATE_ABORT,
  MILTER_CLIENT_CONTEXT_STATE_ABORT_REPLIED,
  MILTER_CLIENT_CONTEXT_STATE_FINISHED,
} MilterClientContextState;

/**
 * MILTER_CLIENT_CONTEXT_STATE_IN_MESSAGE_PROCESSING:
 * @state: a #MilterClientContextState
 *
 * Whether @state lies between MAIL FROM and the end-of-message reply.
 *
 * Returns: %TRUE while a message is being processed
 *
 * Since: 1.0
 */
#define MILTER_CLIENT_CONTEXT_STATE_IN_MESSAGE_PROCESSING(state) \
  ((state) >= MILTER_CLIENT_CONTEXT_STATE_ENVELOPE_FROM && \
   (state) <= MILTER_CLIENT_CONTEXT_STATE_END_OF_MESSAGE)

G_END_DECLS
