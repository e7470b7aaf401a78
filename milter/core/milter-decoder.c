/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-decoder-private.h"
#include "milter-errors.h"
#include "milter-macros-requests-private.h"

#include <gio/gunixsocketaddress.h>
#include <string.h>
#include <sys/un.h>

/* The packet decoder for both directions. It is incremental (input may be
 * split or merged anywhere), checks a packet's length against the limit
 * before anything is allocated for it, and decodes payloads in place:
 * strings point into the input buffer, and payloads can be handed out as
 * GBytes slices of it without copying.
 *
 * Buffer ownership: the decoder reads into one buffer. Once a slice has
 * been handed out (buffer_bytes set), bytes before `end` are never
 * rewritten; when room is needed the decoder moves to a fresh buffer and
 * the slices keep the old one alive. */

/* Big enough for a full body packet plus small ones, and below glibc's
 * mmap threshold so it comes cheaply from the heap. */
#define DEFAULT_CAPACITY (MILTER_CHUNK_SIZE + 5 + 1020)
/* Move data to the front rather than read less than this. */
#define MIN_READ_SIZE 4096

struct _MilterDecoder
{
  MilterDecoderDirection direction;
  gsize max_packet_length;
  guint max_macros;

  guint8 *buffer;        /* capacity + 1 bytes: a spare byte after any payload */
  gsize capacity;
  gsize start;           /* first byte not yet returned as a packet */
  gsize end;             /* end of the bytes received */
  GBytes *buffer_bytes;  /* owns buffer once a slice was handed out */

  MilterPacket packet;
  gboolean has_packet;
  gchar *padded_macros;  /* the current packet's macro list, if padded */
  GError *failure;       /* sticky: a stream cannot resynchronise */
};

MilterDecoder *
milter_decoder_new (MilterDecoderDirection direction)
{
  MilterDecoder *decoder = g_new0 (MilterDecoder, 1);

  decoder->direction = direction;
  decoder->max_packet_length = MILTER_DECODER_DEFAULT_MAX_PACKET_LENGTH;
  decoder->max_macros = MILTER_DECODER_DEFAULT_MAX_MACROS;
  return decoder;
}

static void
clear_packet (MilterDecoder *decoder)
{
  g_clear_pointer (&decoder->padded_macros, g_free);
  if (!decoder->has_packet)
    return;
  if (decoder->packet.command == 'C')
    g_clear_object (&decoder->packet.connect.address);
  decoder->has_packet = FALSE;
}

/* Read buffers of the default size are recycled through a small
 * per-thread cache: a connection gives its buffer back whenever it has
 * nothing pending (which is between every command and the next), so idle
 * connections hold none and busy ones do not allocate per read. */
#define BUFFER_CACHE_SIZE 8

typedef struct
{
  guint n_buffers;
  guint8 *memory[BUFFER_CACHE_SIZE];  /* allocations: see buffer_memory_new() */
} BufferCache;

/* Where a read buffer starts within its page
 * (MILTER_DECODER_BUFFER_PAGE_OFFSET bytes in). Linux hands a large
 * unix-socket write over as whole pages after a short head, so when the
 * buffer starts at a page boundary every page is copied to an address a few
 * bytes past the same offset in another page. On the benchmark's AMD EPYC
 * the kernel then copied at half speed (likely 4K aliasing): 1 MiB bodies
 * ran at half the rate whenever malloc happened to return a page-aligned
 * buffer. A fixed offset well inside the page avoids it. */
#define BUFFER_PAGE_SIZE 4096
#define BUFFER_PAGE_OFFSET MILTER_DECODER_BUFFER_PAGE_OFFSET

static guint8 *
buffer_memory_new (gsize size)
{
  guint8 *memory = g_aligned_alloc (1, size + BUFFER_PAGE_OFFSET, BUFFER_PAGE_SIZE);

  return memory + BUFFER_PAGE_OFFSET;
}

static void
buffer_memory_free (gpointer buffer)
{
  g_aligned_free ((guint8 *) buffer - BUFFER_PAGE_OFFSET);
}

static void
buffer_cache_free (gpointer data)
{
  BufferCache *cache = data;

  for (guint i = 0; i < cache->n_buffers; i++)
    g_aligned_free (cache->memory[i]);
  g_free (cache);
}

static GPrivate buffer_cache_key = G_PRIVATE_INIT (buffer_cache_free);

static BufferCache *
get_buffer_cache (void)
{
  BufferCache *cache = g_private_get (&buffer_cache_key);

  if (cache == NULL)
    {
      cache = g_new0 (BufferCache, 1);
      g_private_set (&buffer_cache_key, cache);
    }
  return cache;
}

/* Allocates capacity + 1 bytes: a spare byte after any payload. */
static guint8 *
buffer_alloc (gsize capacity)
{
  if (capacity == DEFAULT_CAPACITY)
    {
      BufferCache *cache = get_buffer_cache ();

      if (cache->n_buffers > 0)
        return cache->memory[--cache->n_buffers] + BUFFER_PAGE_OFFSET;
    }
  return buffer_memory_new (capacity + 1);
}

static void
buffer_free (guint8 *buffer,
             gsize   capacity)
{
  if (capacity == DEFAULT_CAPACITY)
    {
      BufferCache *cache = get_buffer_cache ();

      if (cache->n_buffers < BUFFER_CACHE_SIZE)
        {
          /* The allocation's start: leak checkers see it is held. */
          cache->memory[cache->n_buffers++] = buffer - BUFFER_PAGE_OFFSET;
          return;
        }
    }
  buffer_memory_free (buffer);
}

static void
drop_buffer (MilterDecoder *decoder)
{
  if (decoder->buffer_bytes != NULL)
    g_clear_pointer (&decoder->buffer_bytes, g_bytes_unref);
  else if (decoder->buffer != NULL)
    buffer_free (decoder->buffer, decoder->capacity);
  decoder->buffer = NULL;
  decoder->capacity = decoder->start = decoder->end = 0;
}

void
milter_decoder_free (MilterDecoder *decoder)
{
  if (decoder == NULL)
    return;
  clear_packet (decoder);
  drop_buffer (decoder);
  g_clear_error (&decoder->failure);
  g_free (decoder);
}

void
milter_decoder_set_max_packet_length (MilterDecoder *decoder,
                                      gsize          length)
{
  decoder->max_packet_length = MAX (length, 1);
}

gsize
milter_decoder_get_max_packet_length (MilterDecoder *decoder)
{
  return decoder->max_packet_length;
}

void
milter_decoder_set_max_macros (MilterDecoder *decoder,
                               guint          n_macros)
{
  decoder->max_macros = n_macros;
}

gsize
milter_decoder_get_pending_size (MilterDecoder *decoder)
{
  return decoder->end - decoder->start;
}

static guint32
read_be32 (const guint8 *p)
{
  return ((guint32) p[0] << 24) | ((guint32) p[1] << 16) | ((guint32) p[2] << 8) | p[3];
}

/* The room the packet at `start` needs in all, once its length is known. */
static gsize
needed_size (MilterDecoder *decoder)
{
  gsize pending = decoder->end - decoder->start;

  if (pending >= MILTER_PACKET_LENGTH_SIZE)
    {
      guint32 length = read_be32 (decoder->buffer + decoder->start);

      /* An invalid length is reported by _next(); do not size by it. */
      if (length >= 1 && length <= decoder->max_packet_length)
        return MILTER_PACKET_LENGTH_SIZE + length;
    }
  return MILTER_PACKET_LENGTH_SIZE + 1;
}

/* Moves the pending bytes to the front of a buffer of @capacity. */
static void
relocate (MilterDecoder *decoder,
          gsize          capacity)
{
  gsize pending = decoder->end - decoder->start;

  if (decoder->buffer != NULL && decoder->buffer_bytes == NULL && capacity == decoder->capacity)
    {
      memmove (decoder->buffer, decoder->buffer + decoder->start, pending);
    }
  else
    {
      guint8 *buffer = buffer_alloc (capacity);

      if (pending > 0)
        memcpy (buffer, decoder->buffer + decoder->start, pending);
      drop_buffer (decoder);
      decoder->buffer = buffer;
      decoder->capacity = capacity;
    }
  decoder->start = 0;
  decoder->end = pending;
}

guint8 *
milter_decoder_get_write_area (MilterDecoder *decoder,
                               gsize         *size)
{
  gsize needed = needed_size (decoder);
  gsize pending = decoder->end - decoder->start;

  /* Grow for a large packet, shrink back once it has gone, and move
   * pending bytes forward rather than read in small pieces. */
  if (decoder->buffer == NULL ||
      decoder->start + needed > decoder->capacity ||
      (decoder->capacity - decoder->end < MIN_READ_SIZE && decoder->start > 0))
    relocate (decoder, MAX (MAX (needed, DEFAULT_CAPACITY), pending));

  /* Only a caller that feeds without decoding fills the buffer up. */
  if (decoder->end == decoder->capacity)
    relocate (decoder, decoder->capacity * 2);

  *size = decoder->capacity - decoder->end;
  return decoder->buffer + decoder->end;
}

void
milter_decoder_commit (MilterDecoder *decoder,
                       gsize          size)
{
  g_return_if_fail (decoder->end + size <= decoder->capacity);

  decoder->end += size;
}

void
milter_decoder_feed (MilterDecoder *decoder,
                     const guint8  *data,
                     gsize          size)
{
  while (size > 0)
    {
      gsize room;
      guint8 *area = milter_decoder_get_write_area (decoder, &room);
      gsize n = MIN (room, size);

      memcpy (area, data, n);
      milter_decoder_commit (decoder, n);
      data += n;
      size -= n;
    }
}

void
milter_decoder_release_buffer (MilterDecoder *decoder)
{
  if (decoder->start == decoder->end && decoder->buffer != NULL)
    {
      clear_packet (decoder);
      drop_buffer (decoder);
    }
}

GBytes *
milter_decoder_get_payload_bytes (MilterDecoder *decoder)
{
  const MilterPacket *packet = &decoder->packet;

  g_return_val_if_fail (decoder->has_packet, NULL);

  if (decoder->buffer_bytes == NULL)
    decoder->buffer_bytes = g_bytes_new_with_free_func (decoder->buffer, decoder->capacity + 1,
                                                        buffer_memory_free, decoder->buffer);
  /* The buffer now belongs to the slices too: it is never rewritten
   * before `end` and never goes back to the cache. */
  return g_bytes_new_from_bytes (decoder->buffer_bytes,
                                 (gsize) (packet->data - decoder->buffer), packet->size);
}

/* ---- payload parsing ---------------------------------------------------- */

typedef struct
{
  const gchar *p;
  const gchar *end;
} Reader;

static gboolean
reader_done (const Reader *reader)
{
  return reader->p == reader->end;
}

static gboolean
read_string (Reader       *reader,
             const gchar **string)
{
  const gchar *nul = memchr (reader->p, '\0', (gsize) (reader->end - reader->p));

  if (nul == NULL)
    return FALSE;
  *string = reader->p;
  reader->p = nul + 1;
  return TRUE;
}

static gboolean
read_uint32 (Reader  *reader,
             guint32 *value)
{
  if (reader->end - reader->p < 4)
    return FALSE;
  *value = read_be32 ((const guint8 *) reader->p);
  reader->p += 4;
  return TRUE;
}

/* Counts the NUL-terminated strings filling [p, end) exactly. */
static gboolean
count_strings (const gchar *p,
               const gchar *end,
               guint       *count)
{
  Reader reader = { p, end };
  const gchar *string;

  *count = 0;
  while (!reader_done (&reader))
    {
      if (!read_string (&reader, &string))
        return FALSE;
      (*count)++;
    }
  return TRUE;
}

const gchar *
milter_packet_next_string (const gchar **cursor,
                           const gchar  *end)
{
  const gchar *string = *cursor;

  if (string >= end)
    return NULL;
  *cursor = string + strlen (string) + 1;
  return string;
}

const gchar *
milter_decoder_command_name (MilterDecoderDirection direction,
                             gchar                  command)
{
  if (direction == MILTER_DECODER_COMMANDS)
    switch (command)
      {
      case 'O': return "negotiate (O)";
      case 'D': return "define-macro (D)";
      case 'C': return "connect (C)";
      case 'H': return "helo (H)";
      case 'M': return "envelope-from (M)";
      case 'R': return "envelope-recipient (R)";
      case 'T': return "data (T)";
      case 'L': return "header (L)";
      case 'N': return "end-of-header (N)";
      case 'B': return "body (B)";
      case 'E': return "end-of-message (E)";
      case 'U': return "unknown (U)";
      case 'A': return "abort (A)";
      case 'Q': return "quit (Q)";
      case 'K': return "quit-new-connection (K)";
      default: return NULL;
      }
  switch (command)
    {
    case 'O': return "negotiate reply (O)";
    case 'c': return "continue (c)";
    case 'a': return "accept (a)";
    case 'r': return "reject (r)";
    case 't': return "temporary-failure (t)";
    case 'd': return "discard (d)";
    case 's': return "skip (s)";
    case 'p': return "progress (p)";
    case '4': return "shutdown (4)";
    case 'f': return "connection-failure (f)";
    case 'y': return "reply-code (y)";
    case 'h': return "add-header (h)";
    case 'i': return "insert-header (i)";
    case 'm': return "change-header (m)";
    case '+': return "add-recipient (+)";
    case '2': return "add-recipient-with-parameters (2)";
    case '-': return "delete-recipient (-)";
    case 'e': return "change-from (e)";
    case 'b': return "replace-body (b)";
    case 'q': return "quarantine (q)";
    default: return NULL;
    }
}

typedef struct
{
  MilterDecoder *decoder;
  MilterPacket *packet;
  const gchar *name;
  GError **error;
} ParseContext;

static gboolean G_GNUC_PRINTF (3, 4)
parse_fail (ParseContext      *ctx,
            MilterDecoderError code,
            const gchar       *format,
            ...)
{
  g_autofree gchar *reason = NULL;
  va_list args;

  va_start (args, format);
  reason = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (ctx->error, MILTER_DECODER_ERROR, code,
               "Malformed %s packet: %s", ctx->name, reason);
  return FALSE;
}

static gboolean
expect_empty (ParseContext *ctx)
{
  if (ctx->packet->size != 0)
    return parse_fail (ctx, MILTER_DECODER_ERROR_EXTRA_DATA,
                       "%" G_GSIZE_FORMAT " data bytes where none are allowed",
                       ctx->packet->size);
  return TRUE;
}

static gboolean
expect_end (ParseContext *ctx,
            const Reader *reader)
{
  if (!reader_done (reader))
    return parse_fail (ctx, MILTER_DECODER_ERROR_EXTRA_DATA,
                       "%" G_GSIZE_FORMAT " bytes after the last field",
                       (gsize) (reader->end - reader->p));
  return TRUE;
}

/* Reads one required string, reporting a missing or unterminated one. */
static gboolean
expect_string (ParseContext *ctx,
               Reader       *reader,
               const gchar  *what,
               const gchar **string)
{
  if (reader_done (reader))
    return parse_fail (ctx, MILTER_DECODER_ERROR_MISSING_VALUE, "no %s", what);
  if (!read_string (reader, string))
    return parse_fail (ctx, MILTER_DECODER_ERROR_MISSING_TERMINATOR,
                       "the %s is not NUL-terminated", what);
  return TRUE;
}

static gboolean
parse_negotiate (ParseContext *ctx,
                 Reader       *reader)
{
  MilterPacket *packet = ctx->packet;

  if (packet->size < 12)
    return parse_fail (ctx, MILTER_DECODER_ERROR_SHORT_PAYLOAD,
                       "%" G_GSIZE_FORMAT " bytes, at least 12 needed", packet->size);
  read_uint32 (reader, &packet->negotiate.version);
  read_uint32 (reader, &packet->negotiate.action);
  read_uint32 (reader, &packet->negotiate.step);
  if (packet->negotiate.version < 2)
    return parse_fail (ctx, MILTER_DECODER_ERROR_INVALID_VERSION,
                       "protocol version %u is below 2", packet->negotiate.version);

  packet->negotiate.symbols = (const guint8 *) reader->p;
  packet->negotiate.symbols_size = (gsize) (reader->end - reader->p);
  /* An MTA's offer may carry future fields, which are ignored; a reply's
   * tail is the macro lists: (uint32 stage, "names\0")*. */
  if (ctx->decoder->direction == MILTER_DECODER_COMMANDS)
    return TRUE;
  while (!reader_done (reader))
    {
      guint32 stage;
      const gchar *list;

      if (!read_uint32 (reader, &stage))
        return parse_fail (ctx, MILTER_DECODER_ERROR_SHORT_PAYLOAD,
                           "a macro list's stage number is cut short");
      if (stage >= MILTER_MACRO_STAGE_COUNT)
        return parse_fail (ctx, MILTER_DECODER_ERROR_INVALID_MACRO_STAGE,
                           "macro list for unknown stage %u", stage);
      if (!expect_string (ctx, reader, "macro list", &list))
        return FALSE;
    }
  return TRUE;
}

static gboolean
parse_macro (ParseContext *ctx,
             Reader       *reader)
{
  MilterPacket *packet = ctx->packet;
  guint n_strings;

  if (reader_done (reader))
    return parse_fail (ctx, MILTER_DECODER_ERROR_MISSING_VALUE,
                       "no command letter");
  packet->macro.command = *reader->p++;
  packet->macro.pairs = reader->p;
  packet->macro.pairs_size = (gsize) (reader->end - reader->p);
  if (!count_strings (reader->p, reader->end, &n_strings))
    return parse_fail (ctx, MILTER_DECODER_ERROR_MISSING_TERMINATOR,
                       "the last macro string is not NUL-terminated");
  packet->macro.n_pairs = n_strings / 2 + n_strings % 2;
  if (packet->macro.n_pairs > ctx->decoder->max_macros)
    return parse_fail (ctx, MILTER_DECODER_ERROR_TOO_MANY_MACROS,
                       "%u macros, more than the limit of %u",
                       packet->macro.n_pairs, ctx->decoder->max_macros);
  if (n_strings % 2 != 0)
    {
      /* A name without a value: the value is empty, as other milter
       * implementations read it (protocol.md §8.6). */
      gchar *padded = g_malloc (packet->macro.pairs_size + 1);

      memcpy (padded, packet->macro.pairs, packet->macro.pairs_size);
      padded[packet->macro.pairs_size] = '\0';
      ctx->decoder->padded_macros = padded;
      packet->macro.pairs = padded;
      packet->macro.pairs_size++;
    }
  return TRUE;
}

static GSocketAddress *
parse_inet_address (const gchar    *text,
                    GSocketFamily   family,
                    guint16         port)
{
  g_autofree gchar *stripped = NULL;
  g_autoptr(GInetAddress) address = NULL;
  gsize length;

  /* Sendmail writes "IPv6:addr"; some write "[addr]". */
  if (family == G_SOCKET_FAMILY_IPV6 && g_ascii_strncasecmp (text, "IPv6:", 5) == 0)
    text += 5;
  length = strlen (text);
  if (length >= 2 && text[0] == '[' && text[length - 1] == ']')
    text = stripped = g_strndup (text + 1, length - 2);

  address = g_inet_address_new_from_string (text);
  if (address == NULL || g_inet_address_get_family (address) != family)
    return NULL;
  return g_inet_socket_address_new (address, port);
}

/* An address that does not parse for its family reaches the handlers as
 * NULL, as one the MTA does not know: Postfix sends family '4' with
 * "unknown" for a client that XCLIENT gave as [UNAVAILABLE], and
 * libmilter lets such a session go on. */
static void
parse_connect_address (MilterPacket *packet)
{
  const gchar *text = packet->connect.address_text;

  switch (packet->connect.family)
    {
    case '4':
    case '6':
      packet->connect.address =
        parse_inet_address (text,
                            packet->connect.family == '4' ? G_SOCKET_FAMILY_IPV4 : G_SOCKET_FAMILY_IPV6,
                            packet->connect.port);
      break;
    case 'L':
      if (*text != '\0' && strlen (text) < sizeof (((struct sockaddr_un *) NULL)->sun_path))
        packet->connect.address = g_unix_socket_address_new (text);
      break;
    default:
      g_assert_not_reached ();
    }
}

static gboolean
parse_connect (ParseContext *ctx,
               Reader       *reader)
{
  MilterPacket *packet = ctx->packet;
  gchar family;

  if (!expect_string (ctx, reader, "host name", &packet->connect.host))
    return FALSE;
  if (reader_done (reader))
    return parse_fail (ctx, MILTER_DECODER_ERROR_SHORT_PAYLOAD, "no address family");
  family = *reader->p++;
  packet->connect.family = family;
  packet->connect.port = 0;
  packet->connect.address_text = NULL;
  packet->connect.address = NULL;

  if (family == 'U')
    return expect_end (ctx, reader);
  if (family != '4' && family != '6' && family != 'L')
    return parse_fail (ctx, MILTER_DECODER_ERROR_INVALID_FAMILY,
                       "unknown address family 0x%02x", (guchar) family);
  if (reader->end - reader->p < 2)
    return parse_fail (ctx, MILTER_DECODER_ERROR_SHORT_PAYLOAD, "the port is cut short");
  packet->connect.port = (guint16) (((guint8) reader->p[0] << 8) | (guint8) reader->p[1]);
  reader->p += 2;
  if (!expect_string (ctx, reader, "address", &packet->connect.address_text) ||
      !expect_end (ctx, reader))
    return FALSE;
  parse_connect_address (packet);
  return TRUE;
}

static gboolean
parse_one_string (ParseContext *ctx,
                  Reader       *reader,
                  const gchar  *what)
{
  return expect_string (ctx, reader, what, &ctx->packet->string) &&
         expect_end (ctx, reader);
}

/* An address followed by ESMTP parameters: at least one string; with
 * max_args >= 0, at most that many parameters. */
static gboolean
parse_envelope (ParseContext *ctx,
                Reader       *reader,
                const gchar  *what,
                gint          max_args)
{
  MilterPacket *packet = ctx->packet;

  if (!expect_string (ctx, reader, what, &packet->envelope.address))
    return FALSE;
  packet->envelope.args = reader->p;
  packet->envelope.args_size = (gsize) (reader->end - reader->p);
  if (!count_strings (reader->p, reader->end, &packet->envelope.n_args))
    return parse_fail (ctx, MILTER_DECODER_ERROR_MISSING_TERMINATOR,
                       "an ESMTP parameter is not NUL-terminated");
  if (max_args >= 0 && packet->envelope.n_args > (guint) max_args)
    return parse_fail (ctx, MILTER_DECODER_ERROR_EXTRA_DATA,
                       "%u parameter strings, at most %d allowed",
                       packet->envelope.n_args, max_args);
  return TRUE;
}

static gboolean
parse_header (ParseContext *ctx,
              Reader       *reader,
              gboolean      with_index)
{
  MilterPacket *packet = ctx->packet;

  packet->header.index = 0;
  if (with_index && !read_uint32 (reader, &packet->header.index))
    return parse_fail (ctx, MILTER_DECODER_ERROR_SHORT_PAYLOAD, "the header index is cut short");
  return expect_string (ctx, reader, "header name", &packet->header.name) &&
         expect_string (ctx, reader, "header value", &packet->header.value) &&
         expect_end (ctx, reader);
}

static gboolean
parse_nonempty_data (ParseContext *ctx)
{
  if (ctx->packet->size == 0)
    return parse_fail (ctx, MILTER_DECODER_ERROR_MISSING_VALUE, "no data");
  return TRUE;
}

static gboolean
parse_command (ParseContext *ctx,
               Reader       *reader)
{
  switch (ctx->packet->command)
    {
    case 'O': return parse_negotiate (ctx, reader);
    case 'D': return parse_macro (ctx, reader);
    case 'C': return parse_connect (ctx, reader);
    case 'H': return parse_one_string (ctx, reader, "HELO name");
    case 'M': return parse_envelope (ctx, reader, "sender", -1);
    case 'R': return parse_envelope (ctx, reader, "recipient", -1);
    case 'L': return parse_header (ctx, reader, FALSE);
    case 'B': return parse_nonempty_data (ctx);
    case 'E': return TRUE;
    case 'U': return parse_one_string (ctx, reader, "SMTP command");
    case 'T': case 'N': case 'A': case 'Q': case 'K':
      return expect_empty (ctx);
    default:
      g_assert_not_reached ();
    }
}

static gboolean
parse_reply (ParseContext *ctx,
             Reader       *reader)
{
  MilterPacket *packet = ctx->packet;

  switch (packet->command)
    {
    case 'O': return parse_negotiate (ctx, reader);
    case 'c': case 'a': case 'r': case 't': case 'd': case 's': case 'p': case '4':
      return expect_empty (ctx);
    case 'f': return TRUE;
    case 'y':
      if (!parse_one_string (ctx, reader, "reply text"))
        return FALSE;
      if (*packet->string == '\0')
        return parse_fail (ctx, MILTER_DECODER_ERROR_MISSING_VALUE, "an empty reply text");
      return TRUE;
    case 'h': return parse_header (ctx, reader, FALSE);
    case 'i': case 'm': return parse_header (ctx, reader, TRUE);
    case '+': case '-': return parse_one_string (ctx, reader, "recipient");
    case '2': return parse_envelope (ctx, reader, "recipient", 1);
    case 'e': return parse_envelope (ctx, reader, "sender", 1);
    case 'b': return TRUE;
    case 'q':
      if (!parse_one_string (ctx, reader, "quarantine reason"))
        return FALSE;
      if (*packet->string == '\0')
        return parse_fail (ctx, MILTER_DECODER_ERROR_MISSING_VALUE, "an empty quarantine reason");
      return TRUE;
    default:
      g_assert_not_reached ();
    }
}

static const MilterPacket *
fail (MilterDecoder *decoder,
      GError        *failure,
      GError       **error)
{
  decoder->failure = failure;
  g_propagate_error (error, g_error_copy (failure));
  return NULL;
}

const MilterPacket *
milter_decoder_next (MilterDecoder  *decoder,
                     GError        **error)
{
  MilterPacket *packet = &decoder->packet;
  GError *failure = NULL;
  ParseContext ctx = { decoder, packet, NULL, &failure };
  Reader reader;
  guint32 length;
  gchar command;

  if (decoder->failure != NULL)
    {
      g_propagate_error (error, g_error_copy (decoder->failure));
      return NULL;
    }
  clear_packet (decoder);
  if (decoder->end - decoder->start < MILTER_PACKET_LENGTH_SIZE)
    return NULL;

  length = read_be32 (decoder->buffer + decoder->start);
  if (length == 0)
    return fail (decoder, g_error_new (MILTER_DECODER_ERROR, MILTER_DECODER_ERROR_ZERO_LENGTH,
                                       "Malformed packet: length 0"), error);
  if (length > decoder->max_packet_length)
    return fail (decoder, g_error_new (MILTER_DECODER_ERROR, MILTER_DECODER_ERROR_TOO_LONG,
                                       "Packet of %u bytes exceeds the limit of %" G_GSIZE_FORMAT,
                                       length, decoder->max_packet_length), error);
  if (decoder->end - decoder->start < MILTER_PACKET_LENGTH_SIZE + 1)
    return NULL;

  command = (gchar) decoder->buffer[decoder->start + MILTER_PACKET_LENGTH_SIZE];
  ctx.name = milter_decoder_command_name (decoder->direction, command);
  if (ctx.name == NULL)
    return fail (decoder, g_error_new (MILTER_DECODER_ERROR, MILTER_DECODER_ERROR_UNKNOWN_COMMAND,
                                       "Unknown %s 0x%02x%s%c%s",
                                       decoder->direction == MILTER_DECODER_COMMANDS ?
                                       "command" : "reply",
                                       (guchar) command,
                                       g_ascii_isprint (command) ? " (" : "",
                                       g_ascii_isprint (command) ? command : ' ',
                                       g_ascii_isprint (command) ? ")" : ""), error);
  if (decoder->end - decoder->start < MILTER_PACKET_LENGTH_SIZE + (gsize) length)
    return NULL;

  memset (packet, 0, sizeof *packet);
  packet->command = command;
  packet->data = decoder->buffer + decoder->start + MILTER_PACKET_LENGTH_SIZE + 1;
  packet->size = length - 1;
  decoder->start += MILTER_PACKET_LENGTH_SIZE + length;
  decoder->has_packet = TRUE;

  reader.p = (const gchar *) packet->data;
  reader.end = reader.p + packet->size;
  if (!(decoder->direction == MILTER_DECODER_COMMANDS ?
        parse_command (&ctx, &reader) : parse_reply (&ctx, &reader)))
    {
      clear_packet (decoder);
      return fail (decoder, failure, error);
    }
  return packet;
}

MilterMacrosRequests *
milter_packet_get_macros_requests (const MilterPacket *packet)
{
  MilterMacrosRequests *requests;
  Reader reader;

  g_return_val_if_fail (packet->command == 'O', NULL);

  if (packet->negotiate.symbols_size == 0)
    return NULL;
  requests = milter_macros_requests_new ();
  reader.p = (const gchar *) packet->negotiate.symbols;
  reader.end = reader.p + packet->negotiate.symbols_size;
  while (!reader_done (&reader))
    {
      guint32 stage;
      const gchar *list;

      if (!read_uint32 (&reader, &stage) || !read_string (&reader, &list) ||
          stage >= MILTER_MACRO_STAGE_COUNT)
        break;  /* only an MTA's unvalidated offer gets here */
      milter_macros_requests_set_wire_list (requests, stage, list);
    }
  return requests;
}
