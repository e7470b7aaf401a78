/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-signal-pipe-private.h"

#include <errno.h>
#include <glib-unix.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#define MAX_SIGNALS 8

struct _MilterSignalPipe
{
  int pipe[2];
  guint n_signals;
  int signals[MAX_SIGNALS];
  struct sigaction saved[MAX_SIGNALS];
};

/* The pipe each signal goes to; only async-signal-safe code reads it. */
static volatile sig_atomic_t pipe_for_signal[NSIG];

static void
on_signal (int signum)
{
  int saved_errno = errno;
  unsigned char byte = (unsigned char) signum;

  if (write (pipe_for_signal[signum] - 1, &byte, 1) < 0)
    {
      /* The pipe is full: signals are pending anyway. */
    }
  errno = saved_errno;
}

MilterSignalPipe *
milter_signal_pipe_new (const int  *signals,
                        guint       n_signals,
                        GError    **error)
{
  MilterSignalPipe *self;
  int fds[2];

  g_return_val_if_fail (n_signals <= MAX_SIGNALS, NULL);

  /* Out of descriptors already, say: the program's error, not a crash. */
  if (!g_unix_open_pipe (fds, FD_CLOEXEC, error))
    return NULL;
  if (!g_unix_set_fd_nonblocking (fds[0], TRUE, error) ||
      !g_unix_set_fd_nonblocking (fds[1], TRUE, error))
    {
      close (fds[0]);
      close (fds[1]);
      return NULL;
    }

  self = g_new0 (MilterSignalPipe, 1);
  self->pipe[0] = fds[0];
  self->pipe[1] = fds[1];
  for (guint i = 0; i < n_signals; i++)
    {
      struct sigaction action = { 0 };
      int signum = signals[i];

      g_return_val_if_fail (signum > 0 && signum < NSIG && pipe_for_signal[signum] == 0, self);
      /* Stored plus one: 0 means no pipe. */
      pipe_for_signal[signum] = fds[1] + 1;
      action.sa_handler = on_signal;
      action.sa_flags = SA_RESTART;
      sigemptyset (&action.sa_mask);
      sigaction (signum, &action, &self->saved[i]);
      self->signals[self->n_signals++] = signum;
    }
  return self;
}

int
milter_signal_pipe_get_fd (MilterSignalPipe *self)
{
  return self->pipe[0];
}

/* Calls func for each signal received since the last call. */
void
milter_signal_pipe_dispatch (MilterSignalPipe *self,
                             MilterSignalFunc  func,
                             gpointer          user_data)
{
  unsigned char bytes[64];
  gssize n;

  while ((n = read (self->pipe[0], bytes, sizeof bytes)) > 0)
    for (gssize i = 0; i < n; i++)
      func (bytes[i], user_data);
}

/* Blocks the pipe's signals in the calling thread; @old gets the mask to
 * restore with pthread_sigmask (SIG_SETMASK). */
void
milter_signal_pipe_block (MilterSignalPipe *self,
                          sigset_t         *old)
{
  sigset_t set;

  sigemptyset (&set);
  for (guint i = 0; i < self->n_signals; i++)
    sigaddset (&set, self->signals[i]);
  pthread_sigmask (SIG_BLOCK, &set, old);
}

void
milter_signal_pipe_free (MilterSignalPipe *self)
{
  for (guint i = 0; i < self->n_signals; i++)
    {
      sigaction (self->signals[i], &self->saved[i], NULL);
      pipe_for_signal[self->signals[i]] = 0;
    }
  close (self->pipe[0]);
  close (self->pipe[1]);
  g_free (self);
}
