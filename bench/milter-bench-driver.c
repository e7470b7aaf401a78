/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* milter-bench-driver: a load generator that plays the MTA like Postfix.
 *
 * Single-threaded, epoll, non-blocking unix-socket connections, packets
 * precomputed once per negotiated option. Per connection: OPTNEG (version
 * 6, actions 0x1FF, steps 0x1FFFFF); D+C, D+H; per message D+M, D+R, D+T,
 * (D+L)*N, D+N, (D+B)*k, D+E, then A (Postfix aborts after every
 * message); Q at the end. It honours the negotiated reply like Postfix
 * (milter8.c): the macros of C/H/M/R/T are sent even for a step the milter
 * asked not to get; headers, end-of-header and body (and their macros) are
 * left out entirely under NO_HDRS/NO_EOH/NO_BODY; no reply is awaited for
 * a step whose NR_* bit was negotiated (its packets are coalesced with the
 * next ones, as Postfix's buffered stream does); SKIP after a body chunk
 * skips the remaining chunks; any number of modification and progress
 * packets precede the final end-of-message reply.
 *
 * Output: messages/s, p50/p99 latency per message (from writing its MAIL
 * command to the final end-of-message reply), errors.
 *
 * Not part of the library; built by bench/run.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* SMFIP_* step bits (protocol.md 4.2) */
#define NOCONNECT 0x00000001u
#define NOHELO 0x00000002u
#define NOMAIL 0x00000004u
#define NORCPT 0x00000008u
#define NOBODY 0x00000010u
#define NOHDRS 0x00000020u
#define NOEOH 0x00000040u
#define NR_HDR 0x00000080u
#define NODATA 0x00000200u
#define SKIP 0x00000400u
#define NR_CONN 0x00001000u
#define NR_HELO 0x00002000u
#define NR_MAIL 0x00004000u
#define NR_RCPT 0x00008000u
#define NR_DATA 0x00010000u
#define NR_EOH 0x00040000u
#define NR_BODY 0x00080000u

#define CHUNK 65535

enum { REPLY_NONE, REPLY_ONE, REPLY_EOM };
enum { SEG_MAIL = 1, SEG_BODY = 2, SEG_LAST_OF_CONN_START = 4 };

typedef struct {
  size_t off, len;  /* in plan->bytes */
  uint8_t reply;
  uint8_t flags;
  uint32_t skip_to; /* for SEG_BODY: the segment after the last body chunk */
} Seg;

typedef struct {
  uint32_t version, steps;
  int msgs;
  char *bytes;
  size_t n_bytes, cap_bytes;
  Seg *segs;
  size_t n_segs, cap_segs;
  size_t pending_from; /* start of bytes not yet cut into a segment */
  size_t idle_seg;     /* idle mode: park before this segment */
} Plan;

enum { C_FREE, C_NEGOTIATING, C_RUNNING, C_PARKED };

typedef struct {
  int fd;
  int state;
  Plan *plan;
  size_t seg;
  size_t woff;        /* bytes of the current segment written */
  int want_out;       /* EPOLLOUT registered */
  char *rbuf;
  size_t rlen, rcap;
  int msgs_left;      /* messages assigned and not finished */
  int header_added;
  struct timespec t_mail;
} Conn;

/* options */
static const char *opt_socket;
static long opt_total = 1000;
static int opt_conc = 1;
static int opt_per_conn = 1;
static int opt_headers = 10;
static long opt_body = 4096;
static int opt_json;
static int opt_idle;
static int opt_timeout = 60;
static int opt_macros = 1;

/* results */
static long n_started_msgs, n_done_msgs, n_ok, n_errors, n_no_header, n_conn_errors;
static long n_conns_opened, n_replies;
static double *lat_us;
static long n_lat;
static char first_error[256];

static Plan *plans[8];
static int n_plans;
static int epfd;
static Conn *conns;
static int n_active;
static char *body_data;

static void
die (const char *what)
{
  perror (what);
  exit (2);
}

static void
note_error (const char *fmt, const char *detail)
{
  if (first_error[0] == '\0')
    snprintf (first_error, sizeof first_error, fmt, detail);
}

static double
ts_diff_us (const struct timespec *a, const struct timespec *b)
{
  return (b->tv_sec - a->tv_sec) * 1e6 + (b->tv_nsec - a->tv_nsec) / 1e3;
}

/* ---- packet building ---------------------------------------------- */

static void
plan_reserve (Plan *p, size_t n)
{
  if (p->n_bytes + n > p->cap_bytes)
    {
      size_t cap = p->cap_bytes ? p->cap_bytes : 65536;
      while (cap < p->n_bytes + n)
        cap *= 2;
      p->bytes = realloc (p->bytes, cap);
      if (!p->bytes)
        die ("realloc");
      p->cap_bytes = cap;
    }
}

static void
put (Plan *p, const void *data, size_t n)
{
  plan_reserve (p, n);
  memcpy (p->bytes + p->n_bytes, data, n);
  p->n_bytes += n;
}

/* Starts a packet; returns the offset of its length field. */
static size_t
pkt_begin (Plan *p, char cmd)
{
  size_t at = p->n_bytes;
  uint32_t zero = 0;

  put (p, &zero, 4);
  put (p, &cmd, 1);
  return at;
}

static void
pkt_end (Plan *p, size_t at)
{
  uint32_t len = htonl ((uint32_t) (p->n_bytes - at - 4));
  memcpy (p->bytes + at, &len, 4);
}

static void
put_str (Plan *p, const char *s)
{
  put (p, s, strlen (s) + 1);
}

/* A D packet: cmd code, then name/value pairs (NULL-terminated list). */
static void
macro_pkt (Plan *p, char code, const char *const *pairs)
{
  size_t at = pkt_begin (p, 'D');
  put (p, &code, 1);
  if (opt_macros)
    for (; pairs && pairs[0]; pairs += 2)
      {
        put_str (p, pairs[0]);
        put_str (p, pairs[1]);
      }
  pkt_end (p, at);
}

static void
cut (Plan *p, int reply, int flags)
{
  Seg *s;

  if (p->n_segs == p->cap_segs)
    {
      p->cap_segs = p->cap_segs ? p->cap_segs * 2 : 64;
      p->segs = realloc (p->segs, p->cap_segs * sizeof *p->segs);
      if (!p->segs)
        die ("realloc");
    }
  s = &p->segs[p->n_segs++];
  s->off = p->pending_from;
  s->len = p->n_bytes - p->pending_from;
  s->reply = reply;
  s->flags = flags;
  s->skip_to = 0;
  p->pending_from = p->n_bytes;
}

/* After a packet: cut a segment if a reply is awaited. MAIL flags the
 * segment that holds the MAIL command (for the latency clock). */
static int pending_flags;

static void
after (Plan *p, int expects_reply, int flags)
{
  pending_flags |= flags;
  if (expects_reply)
    {
      cut (p, REPLY_ONE, pending_flags);
      pending_flags = 0;
    }
}

static const char *const conn_macros[] = {
  "j", "mx.bench.example", "{daemon_name}", "mx.bench.example", "{daemon_addr}", "127.0.0.1",
  "v", "Postfix 3.7.11", "_", "client.bench.example [192.0.2.10]", NULL
};
static const char *const mail_macros[] = {
  "{mail_addr}", "sender@bench.example", "{mail_host}", "bench.example", "{mail_mailer}", "smtp", NULL
};
static const char *const rcpt_macros[] = {
  "i", "4XyZ1b2C3dz", "{rcpt_addr}", "rcpt@bench.example", "{rcpt_host}", "bench.example",
  "{rcpt_mailer}", "smtp", NULL
};
static const char *const queue_id_macro[] = { "i", "4XyZ1b2C3dz", NULL };

static void
build_message (Plan *p)
{
  uint32_t st = p->steps;
  size_t at;
  char name[32], value[128];

  /* MAIL */
  macro_pkt (p, 'M', mail_macros);
  pending_flags |= SEG_MAIL;
  if (!(st & NOMAIL))
    {
      at = pkt_begin (p, 'M');
      put_str (p, "<sender@bench.example>");
      put_str (p, "SIZE=4321");
      put_str (p, "BODY=8BITMIME");
      pkt_end (p, at);
      after (p, !(st & NR_MAIL), 0);
    }
  /* RCPT */
  macro_pkt (p, 'R', rcpt_macros);
  if (!(st & NORCPT))
    {
      at = pkt_begin (p, 'R');
      put_str (p, "<rcpt@bench.example>");
      pkt_end (p, at);
      after (p, !(st & NR_RCPT), 0);
    }
  /* DATA (v4+) */
  if (p->version >= 4)
    {
      macro_pkt (p, 'T', queue_id_macro);
      if (!(st & NODATA))
        {
          at = pkt_begin (p, 'T');
          pkt_end (p, at);
          after (p, !(st & NR_DATA), 0);
        }
    }
  /* headers: Postfix does not even call its header routine under NOHDRS */
  if (!(st & NOHDRS))
    for (int i = 0; i < opt_headers; i++)
      {
        macro_pkt (p, 'L', queue_id_macro);
        at = pkt_begin (p, 'L');
        switch (i)
          {
          case 0: put_str (p, "From"); put_str (p, "Sender <sender@bench.example>"); break;
          case 1: put_str (p, "To"); put_str (p, "Recipient <rcpt@bench.example>"); break;
          case 2: put_str (p, "Subject"); put_str (p, "Benchmark message for milter-glib"); break;
          case 3: put_str (p, "Date"); put_str (p, "Mon, 1 Jan 2024 00:00:00 +0000"); break;
          case 4: put_str (p, "Message-ID"); put_str (p, "<bench.1234567890@bench.example>"); break;
          default:
            snprintf (name, sizeof name, "X-Bench-%d", i);
            snprintf (value, sizeof value, "value number %d of a benchmark header, some text", i);
            put_str (p, name);
            put_str (p, value);
          }
        pkt_end (p, at);
        after (p, !(st & NR_HDR), 0);
      }
  if (!(st & NOEOH))
    {
      macro_pkt (p, 'N', queue_id_macro);
      at = pkt_begin (p, 'N');
      pkt_end (p, at);
      after (p, !(st & NR_EOH), 0);
    }
  size_t first_body_seg = p->n_segs;
  int body_cut = 0;
  if (!(st & NOBODY))
    for (long off = 0; off < opt_body; off += CHUNK)
      {
        long n = opt_body - off < CHUNK ? opt_body - off : CHUNK;
        macro_pkt (p, 'B', queue_id_macro);
        at = pkt_begin (p, 'B');
        put (p, body_data + off, (size_t) n);
        pkt_end (p, at);
        if (!(st & NR_BODY))
          {
            cut (p, REPLY_ONE, pending_flags | SEG_BODY);
            pending_flags = 0;
            body_cut = 1;
          }
      }
  macro_pkt (p, 'E', queue_id_macro);
  at = pkt_begin (p, 'E');
  pkt_end (p, at);
  cut (p, REPLY_EOM, pending_flags);
  pending_flags = 0;
  if (body_cut)
    for (size_t i = first_body_seg; i < p->n_segs - 1; i++)
      if (p->segs[i].flags & SEG_BODY)
        p->segs[i].skip_to = (uint32_t) (p->n_segs - 1);
  /* Postfix sends ABORT after every message; it travels with what follows. */
  at = pkt_begin (p, 'A');
  pkt_end (p, at);
  /* skip_to is the E segment, which starts with the D for E: the skipped
   * chunks (each its own segment) and their macros are never sent. */
}

static Plan *
build_plan (uint32_t version, uint32_t steps, int msgs)
{
  Plan *p = calloc (1, sizeof *p);
  size_t at;

  p->version = version;
  p->steps = steps;
  p->msgs = msgs;
  pending_flags = 0;

  macro_pkt (p, 'C', conn_macros);
  if (!(steps & NOCONNECT))
    {
      at = pkt_begin (p, 'C');
      put_str (p, "client.bench.example");
      put (p, "4", 1);
      uint16_t port = htons (54321);
      put (p, &port, 2);
      put_str (p, "192.0.2.10");
      pkt_end (p, at);
      after (p, !(steps & NR_CONN), 0);
    }
  macro_pkt (p, 'H', NULL);
  if (!(steps & NOHELO))
    {
      at = pkt_begin (p, 'H');
      put_str (p, "client.bench.example");
      pkt_end (p, at);
      after (p, !(steps & NR_HELO), 0);
    }
  p->idle_seg = p->n_segs; /* idle mode parks here (segments so far answered) */
  for (int m = 0; m < msgs; m++)
    build_message (p);
  at = pkt_begin (p, 'Q');
  pkt_end (p, at);
  cut (p, REPLY_NONE, pending_flags);
  pending_flags = 0;
  return p;
}

static Plan *
get_plan (uint32_t version, uint32_t steps, int msgs)
{
  for (int i = 0; i < n_plans; i++)
    if (plans[i]->version == version && plans[i]->steps == steps && plans[i]->msgs == msgs)
      return plans[i];
  if (n_plans == (int) (sizeof plans / sizeof plans[0]))
    {
      fprintf (stderr, "too many different negotiations\n");
      exit (2);
    }
  return plans[n_plans++] = build_plan (version, steps, msgs);
}

/* ---- connections --------------------------------------------------- */

static void
epoll_set (Conn *c, int want_out)
{
  struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c };

  if (c->want_out != want_out)
    {
      if (epoll_ctl (epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die ("epoll_ctl");
      c->want_out = want_out;
    }
}

static void
conn_close (Conn *c, int failed)
{
  if (failed)
    {
      n_conn_errors++;
      n_errors += c->msgs_left;
      n_done_msgs += c->msgs_left;
    }
  close (c->fd); /* also leaves the epoll set */
  c->fd = -1;
  c->state = C_FREE;
  c->rlen = 0;
  n_active--;
}

/* Writes what is left of the current segment; returns -1 on error. */
static int
flush_seg (Conn *c)
{
  Seg *s = &c->plan->segs[c->seg];

  while (c->woff < s->len)
    {
      ssize_t n = write (c->fd, c->plan->bytes + s->off + c->woff, s->len - c->woff);
      if (n < 0)
        {
          if (errno == EAGAIN)
            {
              epoll_set (c, 1);
              return 0;
            }
          if (errno == EINTR)
            continue;
          note_error ("write: %s", strerror (errno));
          return -1;
        }
      c->woff += (size_t) n;
    }
  epoll_set (c, 0);
  return 0;
}

/* Starts segment i (or finishes the connection). */
static int
start_seg (Conn *c, size_t i)
{
  c->seg = i;
  c->woff = 0;
  if (opt_idle && i == c->plan->idle_seg && c->state == C_RUNNING)
    {
      c->state = C_PARKED;
      return 0;
    }
  Seg *s = &c->plan->segs[i];
  if (s->flags & SEG_MAIL)
    {
      clock_gettime (CLOCK_MONOTONIC, &c->t_mail);
      c->header_added = 0;
    }
  if (flush_seg (c) < 0)
    return -1;
  if (s->reply == REPLY_NONE && c->woff == s->len)
    {
      /* the quit segment, completely written */
      conn_close (c, 0);
      return 1;
    }
  return 0;
}

static int
conn_open (Conn *c, int msgs)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

  if (fd < 0)
    die ("socket");
  strncpy (sa.sun_path, opt_socket, sizeof sa.sun_path - 1);
  if (connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0)
    {
      int e = errno;
      close (fd);
      if (e == EAGAIN)
        return 1; /* backlog full: retry later */
      note_error ("connect: %s", strerror (e));
      return -1;
    }
  c->fd = fd;
  c->state = C_NEGOTIATING;
  c->plan = NULL;
  c->want_out = 0;
  c->rlen = 0;
  c->msgs_left = msgs;
  n_active++;
  n_conns_opened++;
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
  if (epoll_ctl (epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    die ("epoll_ctl");
  /* OPTNEG: version 6, actions 0x1FF, steps 0x1FFFFF */
  static const unsigned char optneg[17] = {
    0, 0, 0, 13, 'O', 0, 0, 0, 6, 0, 0, 0x01, 0xff, 0, 0x1f, 0xff, 0xff
  };
  ssize_t n = write (fd, optneg, sizeof optneg);
  if (n != (ssize_t) sizeof optneg)
    {
      note_error ("write optneg: %s", n < 0 ? strerror (errno) : "short");
      conn_close (c, 1);
      return 0;
    }
  return 0;
}

static int
is_modification (char r)
{
  return strchr ("himq+-2eb", r) != NULL && r != '\0';
}

/* Handles one reply packet; returns -1 to drop the connection, 1 if the
 * connection is gone (closed normally). */
static int
handle_reply (Conn *c, char cmd, const unsigned char *data, uint32_t len)
{
  n_replies++;
  if (c->state == C_NEGOTIATING)
    {
      if (cmd != 'O' || len < 12)
        {
          char d[2] = { cmd, 0 };
          note_error ("bad negotiation reply '%s'", d);
          return -1;
        }
      uint32_t v, a, s;
      memcpy (&v, data, 4);
      memcpy (&a, data + 4, 4);
      memcpy (&s, data + 8, 4);
      v = ntohl (v);
      a = ntohl (a);
      s = ntohl (s);
      if (v < 2 || v > 6 || (a & ~0x1ffu))
        {
          note_error ("negotiation reply out of the offer%s", "");
          return -1;
        }
      c->plan = get_plan (v, s, opt_idle ? 0 : c->msgs_left);
      c->state = C_RUNNING;
      return start_seg (c, 0);
    }
  if (c->state != C_RUNNING)
    {
      note_error ("unexpected reply while not waiting%s", "");
      return -1;
    }
  Seg *s = &c->plan->segs[c->seg];
  if (c->woff < s->len || s->reply == REPLY_NONE)
    {
      char d[2] = { cmd, 0 };
      note_error ("reply '%s' before the command was sent", d);
      return -1;
    }
  if (cmd == 'p')
    return 0;
  if (s->reply == REPLY_ONE)
    {
      if (cmd == 'c')
        return start_seg (c, c->seg + 1);
      if (cmd == 's' && (s->flags & SEG_BODY))
        return start_seg (c, s->skip_to);
      char d[2] = { cmd, 0 };
      note_error ("unexpected reply '%s' to a command", d);
      return -1;
    }
  /* end of message */
  if (is_modification (cmd))
    {
      if (cmd == 'h')
        c->header_added = 1;
      return 0;
    }
  if (cmd == 'c' || cmd == 'a')
    {
      struct timespec now;
      clock_gettime (CLOCK_MONOTONIC, &now);
      if (n_lat < opt_total)
        lat_us[n_lat++] = ts_diff_us (&c->t_mail, &now);
      n_ok++;
      if (!c->header_added)
        n_no_header++;
    }
  else
    {
      char d[2] = { cmd, 0 };
      note_error ("end-of-message verdict '%s'", d);
      n_errors++;
    }
  n_done_msgs++;
  c->msgs_left--;
  return start_seg (c, c->seg + 1);
}

static void
conn_readable (Conn *c)
{
  for (;;)
    {
      if (c->rcap - c->rlen < 4096)
        {
          c->rcap = c->rcap ? c->rcap * 2 : 8192;
          c->rbuf = realloc (c->rbuf, c->rcap);
          if (!c->rbuf)
            die ("realloc");
        }
      ssize_t n = read (c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
      if (n < 0)
        {
          if (errno == EAGAIN)
            break;
          if (errno == EINTR)
            continue;
          note_error ("read: %s", strerror (errno));
          conn_close (c, 1);
          return;
        }
      if (n == 0)
        {
          note_error ("the milter closed the connection%s", "");
          conn_close (c, 1);
          return;
        }
      c->rlen += (size_t) n;
      size_t pos = 0;
      while (c->rlen - pos >= 5)
        {
          uint32_t len;
          memcpy (&len, c->rbuf + pos, 4);
          len = ntohl (len);
          if (len < 1 || len > 64 * 1024 * 1024)
            {
              note_error ("bad reply length%s", "");
              conn_close (c, 1);
              return;
            }
          if (c->rlen - pos < 4 + (size_t) len)
            break;
          int r = handle_reply (c, c->rbuf[pos + 4], (unsigned char *) c->rbuf + pos + 5, len - 1);
          pos += 4 + len;
          if (r < 0)
            {
              conn_close (c, 1);
              return;
            }
          if (r > 0)
            return; /* closed normally */
        }
      memmove (c->rbuf, c->rbuf + pos, c->rlen - pos);
      c->rlen -= pos;
      if ((size_t) n < 4096)
        break; /* most likely drained; epoll tells us otherwise */
    }
}

static void
conn_writable (Conn *c)
{
  if (c->state != C_RUNNING)
    return;
  Seg *s = &c->plan->segs[c->seg];
  if (flush_seg (c) < 0)
    {
      conn_close (c, 1);
      return;
    }
  if (s->reply == REPLY_NONE && c->woff == s->len)
    conn_close (c, 0);
}

/* ---- main ------------------------------------------------------------ */

static void
usage (void)
{
  fprintf (stderr,
           "usage: milter-bench-driver -s PATH [-n TOTAL] [-c CONCURRENCY] [-m PER_CONN]\n"
           "         [-H HEADERS] [-b BODY_BYTES] [--json] [--idle N] [--timeout S] [--no-macros]\n"
           "  -s, --socket PATH        the milter's unix socket\n"
           "  -n, --messages N         messages in all (rounded up to a multiple of -m)\n"
           "  -c, --concurrency N      connections open at once\n"
           "  -m, --per-connection N   messages per connection\n"
           "  -H, --headers N          headers per message\n"
           "  -b, --body BYTES         body size (sent in chunks of at most 65535)\n"
           "      --idle N             open N connections (negotiate, connect, helo), print\n"
           "                           READY, hold them until stdin closes, then quit\n"
           "      --json               one JSON object on stdout\n");
  exit (2);
}

static double
percentile (double *v, long n, double q)
{
  if (n == 0)
    return 0;
  long i = (long) (q * (n - 1) + 0.5);
  return v[i];
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "socket", required_argument, NULL, 's' },
    { "messages", required_argument, NULL, 'n' },
    { "concurrency", required_argument, NULL, 'c' },
    { "per-connection", required_argument, NULL, 'm' },
    { "headers", required_argument, NULL, 'H' },
    { "body", required_argument, NULL, 'b' },
    { "json", no_argument, NULL, 'j' },
    { "idle", required_argument, NULL, 'i' },
    { "timeout", required_argument, NULL, 't' },
    { "no-macros", no_argument, NULL, 'M' },
    { NULL, 0, NULL, 0 }
  };
  int ch;

  while ((ch = getopt_long (argc, argv, "s:n:c:m:H:b:", longopts, NULL)) != -1)
    switch (ch)
      {
      case 's': opt_socket = optarg; break;
      case 'n': opt_total = atol (optarg); break;
      case 'c': opt_conc = atoi (optarg); break;
      case 'm': opt_per_conn = atoi (optarg); break;
      case 'H': opt_headers = atoi (optarg); break;
      case 'b': opt_body = atol (optarg); break;
      case 'j': opt_json = 1; break;
      case 'i': opt_idle = atoi (optarg); break;
      case 't': opt_timeout = atoi (optarg); break;
      case 'M': opt_macros = 0; break;
      default: usage ();
      }
  if (!opt_socket || opt_conc < 1 || opt_per_conn < 1 || opt_total < 1 || opt_headers < 0 ||
      opt_body < 0)
    usage ();
  signal (SIGPIPE, SIG_IGN);
  if (opt_idle)
    {
      opt_conc = opt_idle;
      opt_per_conn = 1;
      opt_total = opt_idle;
    }
  opt_total = (opt_total + opt_per_conn - 1) / opt_per_conn * opt_per_conn;

  /* A body of 76-character lines and CRLF. */
  body_data = malloc ((size_t) opt_body + 1);
  for (long i = 0; i < opt_body; i++)
    {
      long col = i % 78;
      body_data[i] = col == 76 ? '\r' : col == 77 ? '\n' : (char) ('a' + (i / 78 + col) % 26);
    }
  lat_us = calloc ((size_t) opt_total, sizeof *lat_us);
  conns = calloc ((size_t) opt_conc, sizeof *conns);
  for (int i = 0; i < opt_conc; i++)
    conns[i].fd = -1;
  epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (epfd < 0)
    die ("epoll_create1");
  if (opt_idle)
    {
      struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
      epoll_ctl (epfd, EPOLL_CTL_ADD, 0, &ev);
    }

  struct timespec t0, t1, last_progress;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  last_progress = t0;
  long progress_mark = -1;
  int ready_said = 0, quitting = 0;
  struct epoll_event evs[256];

  for (;;)
    {
      /* keep opt_conc connections busy */
      int backlog_full = 0;
      int opening = 0;
      for (int i = 0; i < opt_conc && n_started_msgs < opt_total && !quitting; i++)
        if (conns[i].state == C_FREE)
          {
            if (opt_idle)
              {
                /* open gradually: at most 64 unanswered at once */
                int negotiating = 0;
                for (int j = 0; j < opt_conc; j++)
                  negotiating += conns[j].state == C_NEGOTIATING || (conns[j].state == C_RUNNING);
                if (negotiating + opening >= 64)
                  break;
              }
            int r = conn_open (&conns[i], opt_per_conn);
            if (r > 0)
              {
                backlog_full = 1;
                break;
              }
            if (r < 0)
              {
                n_conn_errors++;
                n_errors += opt_per_conn;
                n_done_msgs += opt_per_conn;
              }
            n_started_msgs += opt_per_conn;
            opening++;
          }
      if (opt_idle)
        {
          int parked = 0;
          for (int j = 0; j < opt_conc; j++)
            parked += conns[j].state == C_PARKED;
          if (!ready_said && n_started_msgs >= opt_total && parked + n_conn_errors >= opt_idle)
            {
              printf ("READY %d\n", parked);
              fflush (stdout);
              ready_said = 1;
            }
          if (quitting && n_active == 0)
            break;
        }
      else if (n_done_msgs >= opt_total && n_active == 0)
        break;

      int n = epoll_wait (epfd, evs, 256, backlog_full ? 1 : 1000);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          die ("epoll_wait");
        }
      for (int i = 0; i < n; i++)
        {
          Conn *c = evs[i].data.ptr;
          if (c == NULL)
            {
              /* stdin closed or readable: quit the idle connections */
              char buf[64];
              if (read (0, buf, sizeof buf) <= 0)
                {
                  epoll_ctl (epfd, EPOLL_CTL_DEL, 0, NULL);
                  quitting = 1;
                  for (int j = 0; j < opt_conc; j++)
                    if (conns[j].state == C_PARKED)
                      {
                        static const unsigned char quit[5] = { 0, 0, 0, 1, 'Q' };
                        if (write (conns[j].fd, quit, 5) < 0)
                          { /* ignore */ }
                        conn_close (&conns[j], 0);
                      }
                    else if (conns[j].state != C_FREE)
                      conn_close (&conns[j], 1);
                }
              continue;
            }
          if (c->state == C_FREE)
            continue;
          if (evs[i].events & EPOLLOUT)
            conn_writable (c);
          if (c->state != C_FREE && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            conn_readable (c);
        }
      /* stall detection */
      clock_gettime (CLOCK_MONOTONIC, &t1);
      if (n_replies != progress_mark || (opt_idle && ready_said))
        {
          progress_mark = n_replies;
          last_progress = t1;
        }
      else if (t1.tv_sec - last_progress.tv_sec > opt_timeout)
        {
          note_error ("no progress for %s seconds", "timeout");
          for (int j = 0; j < opt_conc; j++)
            if (conns[j].state != C_FREE)
              conn_close (&conns[j], 1);
          n_done_msgs = opt_total;
          break;
        }
    }
  clock_gettime (CLOCK_MONOTONIC, &t1);
  double secs = ts_diff_us (&t0, &t1) / 1e6;

  qsort (lat_us, (size_t) n_lat, sizeof *lat_us, cmp_double);
  double p50 = percentile (lat_us, n_lat, 0.50), p99 = percentile (lat_us, n_lat, 0.99);
  double rate = n_ok / secs;
  if (opt_json)
    printf ("{\"messages\": %ld, \"ok\": %ld, \"errors\": %ld, \"no_header\": %ld, "
            "\"connection_errors\": %ld, \"connections\": %ld, \"seconds\": %.6f, "
            "\"msgs_per_s\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"first_error\": \"%s\"}\n",
            opt_total, n_ok, n_errors, n_no_header, n_conn_errors, n_conns_opened, secs, rate, p50,
            p99, first_error);
  else if (!opt_idle)
    {
      printf ("%ld messages (%ld ok, %ld errors, %ld without the added header) over %ld connections "
              "in %.3f s\n",
              opt_total, n_ok, n_errors, n_no_header, n_conns_opened, secs);
      printf ("%.1f messages/s; latency p50 %.1f us, p99 %.1f us\n", rate, p50, p99);
      if (first_error[0])
        printf ("first error: %s\n", first_error);
    }
  return n_errors || n_no_header || n_conn_errors ? 1 : 0;
}
