/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ceiling-milter: the benchmark's ceiling. A minimal hand-written
 * single-threaded non-blocking milter (epoll, no framework) that answers
 * continue to everything and adds one header at end-of-message: what the
 * protocol costs with no framework.
 *
 *   ceiling-milter PATH [--eom-only]
 *
 * --eom-only negotiates like a filter with only an end-of-message handler
 * (every NO_* and NR_* step the MTA offers). --no-reply asks for every
 * NR_* step but no NO_* step, and then answers only end-of-message (a test
 * of the driver's NR handling). --skip-body answers SKIP to the first body
 * chunk (a test of the driver's SKIP handling). SIGTERM/SIGINT end it.
 * Not part of the library; built by bench/run.
 *
 * Built with -DCEILING_GLIB, the same code waits on GLib's main loop
 * instead of epoll (one GSource per connection, one for the listening
 * socket and a signal pipe, as in the library): what the main loop alone
 * costs per message.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#ifdef CEILING_GLIB
#include <glib.h>
#endif

#define MAX_PACKET (1024 * 1024 + 16)
#define NO_ALL 0x000003ffu /* NOCONNECT..NODATA incl. NR_HDR, without SKIP */
#define NR_ALL 0x000ff000u /* NR_CONN..NR_BODY */
#define SKIP 0x00000400u

typedef struct {
  int fd;
  char *in;
  size_t in_len, in_cap;
  char *out;
  size_t out_len, out_off, out_cap;
  int want_out;
  unsigned long headers, body_bytes, messages;
  uint32_t steps;
  void *watch;
} Conn;

static int eom_only, no_reply, skip_body;
static int lfd;

static void watch_add (int fd, Conn *c);
static void watch_set_output (Conn *c, int want);
static void watch_remove (Conn *c);

static void
out_reserve (Conn *c, size_t n)
{
  if (c->out_len + n > c->out_cap)
    {
      size_t cap = c->out_cap ? c->out_cap * 2 : 4096;
      while (cap < c->out_len + n)
        cap *= 2;
      c->out = realloc (c->out, cap);
      if (!c->out)
        abort ();
      c->out_cap = cap;
    }
}

static void
reply (Conn *c, char cmd, const void *data, size_t n)
{
  uint32_t len = htonl ((uint32_t) n + 1);

  out_reserve (c, 5 + n);
  memcpy (c->out + c->out_len, &len, 4);
  c->out[c->out_len + 4] = cmd;
  if (n)
    memcpy (c->out + c->out_len + 5, data, n);
  c->out_len += 5 + n;
}

/* The continue for a command, unless its NR_* step was negotiated. */
static void
cont (Conn *c, uint32_t nr_bit)
{
  if (!(c->steps & nr_bit))
    reply (c, 'c', NULL, 0);
}

static void
conn_free (Conn *c)
{
  watch_remove (c);
  close (c->fd);
  free (c->in);
  free (c->out);
  free (c);
}

/* Returns 0 to go on, -1 to close. */
static int
command (Conn *c, char cmd, const char *data, size_t n)
{
  switch (cmd)
    {
    case 'O':
      {
        uint32_t v[3], offered;
        if (n < 12)
          return -1;
        memcpy (v, data, 12);
        offered = ntohl (v[2]);
        v[0] = htonl (ntohl (v[0]) < 6 ? ntohl (v[0]) : 6);
        v[1] = htonl (0x01);     /* ADDHDRS */
        c->steps = eom_only ? (offered & (NO_ALL | NR_ALL)) : no_reply ? (offered & (NR_ALL | 0x80u)) : 0;
        if (skip_body)
          c->steps = offered & SKIP;
        v[2] = htonl (c->steps);
        reply (c, 'O', v, 12);
        return 0;
      }
    case 'D':
    case 'A':
    case 'K':
      return 0;
    case 'Q':
      return -1;
    case 'M':
      c->headers = 0;
      c->body_bytes = 0;
      cont (c, 0x4000);
      return 0;
    case 'L':
      c->headers++;
      cont (c, 0x80);
      return 0;
    case 'B':
      c->body_bytes += n;
      if (skip_body && (c->steps & SKIP))
        reply (c, 's', NULL, 0);
      else
        cont (c, 0x80000);
      return 0;
    case 'C': cont (c, 0x1000); return 0;
    case 'H': cont (c, 0x2000); return 0;
    case 'R': cont (c, 0x8000); return 0;
    case 'T': cont (c, 0x10000); return 0;
    case 'N': cont (c, 0x40000); return 0;
    case 'U': cont (c, 0x20000); return 0;
    case 'E':
      {
        static const char hdr[] = "X-Bench\0ceiling";
        c->messages++;
        reply (c, 'h', hdr, sizeof hdr);
        reply (c, 'c', NULL, 0);
        return 0;
      }
    default:
      return -1;
    }
}

static int
flush_out (Conn *c)
{
  while (c->out_off < c->out_len)
    {
      ssize_t n = write (c->fd, c->out + c->out_off, c->out_len - c->out_off);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            break;
          return -1;
        }
      c->out_off += (size_t) n;
    }
  if (c->out_off == c->out_len)
    c->out_off = c->out_len = 0;
  int want = c->out_len > 0;
  if (want != c->want_out)
    {
      watch_set_output (c, want);
      c->want_out = want;
    }
  return 0;
}

static void
readable (Conn *c)
{
  for (;;)
    {
      if (c->in_cap - c->in_len < 65536 + 8)
        {
          size_t cap = c->in_cap ? c->in_cap * 2 : 16384;
          while (cap - c->in_len < 65536 + 8)
            cap *= 2;
          c->in = realloc (c->in, cap);
          if (!c->in)
            abort ();
          c->in_cap = cap;
        }
      size_t avail = c->in_cap - c->in_len;
      ssize_t n = read (c->fd, c->in + c->in_len, avail);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            break;
          conn_free (c);
          return;
        }
      if (n == 0)
        {
          conn_free (c);
          return;
        }
      c->in_len += (size_t) n;
      size_t pos = 0;
      int close_it = 0;
      while (c->in_len - pos >= 5)
        {
          uint32_t len;
          memcpy (&len, c->in + pos, 4);
          len = ntohl (len);
          if (len < 1 || len > MAX_PACKET)
            {
              close_it = 1;
              break;
            }
          if (c->in_len - pos < 4 + (size_t) len)
            break;
          if (command (c, c->in[pos + 4], c->in + pos + 5, len - 1) < 0)
            {
              close_it = 1;
              break;
            }
          pos += 4 + len;
        }
      memmove (c->in, c->in + pos, c->in_len - pos);
      c->in_len -= pos;
      if (flush_out (c) < 0 || close_it)
        {
          conn_free (c);
          return;
        }
      if ((size_t) n < avail)
        break; /* short read: drained */
    }
}

/* One readiness report: c is NULL for the listening socket. */
static void
on_event (Conn *c, int in, int out)
{
  if (c == NULL)
    {
      for (;;)
        {
          int fd = accept4 (lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0)
            break;
          c = calloc (1, sizeof *c);
          c->fd = fd;
          watch_add (fd, c);
        }
      return;
    }
  if (out && flush_out (c) < 0)
    {
      conn_free (c);
      return;
    }
  if (in)
    readable (c);
}

#ifndef CEILING_GLIB
static volatile sig_atomic_t stop;
static int epfd;

static void
on_signal (int sig)
{
  (void) sig;
  stop = 1;
}

static void
watch_add (int fd, Conn *c)
{
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
  epoll_ctl (epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void
watch_set_output (Conn *c, int want)
{
  struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
  epoll_ctl (epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
watch_remove (Conn *c)
{
  epoll_ctl (epfd, EPOLL_CTL_DEL, c->fd, NULL);
}

static int
run_loop (void)
{
  struct sigaction act = { .sa_handler = on_signal };
  struct epoll_event evs[256];

  sigaction (SIGTERM, &act, NULL);
  sigaction (SIGINT, &act, NULL);
  epfd = epoll_create1 (EPOLL_CLOEXEC);
  watch_add (lfd, NULL);
  while (!stop)
    {
      int n = epoll_wait (epfd, evs, 256, -1);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          perror ("epoll_wait");
          return 1;
        }
      for (int i = 0; i < n; i++)
        on_event (evs[i].data.ptr, evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR),
                  evs[i].events & EPOLLOUT);
    }
  return 0;
}
#else
typedef struct {
  GSource parent;
  Conn *conn;
  gpointer tag;
  gpointer signal_tag;  /* the listening socket's source: the signal pipe too */
} FdSource;

static GMainLoop *loop;
static int signal_pipe[2];

static void
on_signal (int sig)
{
  char byte = (char) sig;

  if (write (signal_pipe[1], &byte, 1) < 0)
    abort ();
}

static gboolean
fd_source_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  FdSource *self = (FdSource *) source;
  GIOCondition revents = g_source_query_unix_fd (source, self->tag);

  if (self->signal_tag != NULL && g_source_query_unix_fd (source, self->signal_tag) != 0)
    g_main_loop_quit (loop);
  on_event (self->conn, (revents & (G_IO_IN | G_IO_HUP | G_IO_ERR)) != 0, (revents & G_IO_OUT) != 0);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs fd_source_funcs = { NULL, NULL, fd_source_dispatch, NULL, NULL, NULL };

static void
watch_add (int fd, Conn *c)
{
  GSource *source = g_source_new (&fd_source_funcs, sizeof (FdSource));

  ((FdSource *) source)->conn = c;
  ((FdSource *) source)->tag = g_source_add_unix_fd (source, fd, G_IO_IN);
  /* GLib blocks a source that cannot recurse while it dispatches, which
   * wakes the main context up once more per dispatch: the library does
   * the same. */
  g_source_set_can_recurse (source, TRUE);
  if (c == NULL)
    ((FdSource *) source)->signal_tag = g_source_add_unix_fd (source, signal_pipe[0], G_IO_IN);
  g_source_attach (source, NULL);
  if (c != NULL)
    c->watch = source;
}

static void
watch_set_output (Conn *c, int want)
{
  FdSource *source = c->watch;

  g_source_modify_unix_fd (c->watch, source->tag, G_IO_IN | (want ? G_IO_OUT : 0));
}

static void
watch_remove (Conn *c)
{
  g_source_destroy (c->watch);
  g_source_unref (c->watch);
}

static int
run_loop (void)
{
  struct sigaction act = { .sa_handler = on_signal };

  loop = g_main_loop_new (NULL, FALSE);
  /* As in the library: a pipe the signal handler writes to, watched by
   * the listening socket's source. */
  if (pipe (signal_pipe) < 0)
    abort ();
  sigaction (SIGTERM, &act, NULL);
  sigaction (SIGINT, &act, NULL);
  watch_add (lfd, NULL);
  g_main_loop_run (loop);
  return 0;
}
#endif

int
main (int argc, char **argv)
{
  const char *path = NULL;
  struct sockaddr_un sa = { .sun_family = AF_UNIX };

  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "--eom-only") == 0)
      eom_only = 1;
    else if (strcmp (argv[i], "--no-reply") == 0)
      no_reply = 1;
    else if (strcmp (argv[i], "--skip-body") == 0)
      skip_body = 1;
    else
      path = argv[i];
  if (!path)
    {
      fprintf (stderr, "usage: ceiling-milter PATH [--eom-only | --no-reply | --skip-body]\n");
      return 2;
    }
  signal (SIGPIPE, SIG_IGN);

  lfd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  strncpy (sa.sun_path, path, sizeof sa.sun_path - 1);
  unlink (path);
  if (bind (lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen (lfd, 4096) < 0)
    {
      perror ("bind/listen");
      return 1;
    }
  int rc = run_loop ();
  unlink (path);
  return rc;
}
