/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-parking-lot-private.h"

#include <errno.h>
#include <unistd.h>

#if HAVE_EPOLL
#include <sys/epoll.h>

#define MAX_EVENTS 64

struct _MilterParkingSpace
{
  int fd;
  gint64 deadline;  /* -1: none, or already reported */
  gpointer data;
  guint index;      /* in the lot's spaces */
};

struct _MilterParkingLot
{
  GSource *source;   /* not a reference: its owner owns the lot too */
  gpointer tag;      /* of epoll_fd in source, while spaces are taken */
  int epoll_fd;
  GPtrArray *spaces;
  gint64 next_deadline;  /* the earliest, or -1; may be early, never late */
};

MilterParkingLot *
milter_parking_lot_new (GSource *source)
{
  int epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
  MilterParkingLot *lot;

  if (epoll_fd < 0)
    return NULL;
  lot = g_new0 (MilterParkingLot, 1);
  lot->source = source;
  lot->epoll_fd = epoll_fd;
  lot->spaces = g_ptr_array_new ();
  lot->next_deadline = -1;
  return lot;
}

static void
set_next_deadline (MilterParkingLot *lot,
                   gint64            deadline)
{
  lot->next_deadline = deadline;
  g_source_set_ready_time (lot->source, deadline);
}

MilterParkingSpace *
milter_parking_lot_park (MilterParkingLot *lot,
                         int               fd,
                         gint64            deadline,
                         gpointer          data)
{
  MilterParkingSpace *space = g_new0 (MilterParkingSpace, 1);
  /* One-shot: reported once, then quiet until unparked. */
  struct epoll_event event = { EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, { .ptr = space } };

  if (epoll_ctl (lot->epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0)
    {
      int saved_errno = errno;

      g_free (space);
      errno = saved_errno;
      return NULL;
    }
  space->fd = fd;
  space->deadline = deadline;
  space->data = data;
  space->index = lot->spaces->len;
  g_ptr_array_add (lot->spaces, space);
  /* An empty lot costs the main loop nothing: no descriptor to poll. */
  if (lot->tag == NULL)
    lot->tag = g_source_add_unix_fd (lot->source, lot->epoll_fd, G_IO_IN);
  if (deadline >= 0 && (lot->next_deadline < 0 || deadline < lot->next_deadline))
    set_next_deadline (lot, deadline);
  return space;
}

void
milter_parking_lot_unpark (MilterParkingLot   *lot,
                           MilterParkingSpace *space)
{
  MilterParkingSpace *last;

  g_return_if_fail (space->index < lot->spaces->len &&
                    g_ptr_array_index (lot->spaces, space->index) == space);

  /* Cannot fail for a parked descriptor that is still open. */
  epoll_ctl (lot->epoll_fd, EPOLL_CTL_DEL, space->fd, NULL);
  last = g_ptr_array_index (lot->spaces, lot->spaces->len - 1);
  last->index = space->index;
  g_ptr_array_remove_index_fast (lot->spaces, space->index);
  g_free (space);
  if (lot->spaces->len == 0)
    {
      g_source_remove_unix_fd (lot->source, lot->tag);
      lot->tag = NULL;
    }
}

/* Reports the spaces whose deadline came, and finds the next one: a
 * walk over all of them, but only when a deadline comes (idle timeouts
 * are long). */
static void
report_deadlines (MilterParkingLot     *lot,
                  gint64                now,
                  MilterParkingLotFunc  func)
{
  g_autoptr(GPtrArray) due = g_ptr_array_new ();
  gint64 next = -1;

  for (guint i = 0; i < lot->spaces->len; i++)
    {
      MilterParkingSpace *space = g_ptr_array_index (lot->spaces, i);

      if (space->deadline < 0)
        continue;
      if (space->deadline <= now)
        {
          space->deadline = -1;
          g_ptr_array_add (due, space->data);
        }
      else if (next < 0 || space->deadline < next)
        {
          next = space->deadline;
        }
    }
  set_next_deadline (lot, next);
  for (guint i = 0; i < due->len; i++)
    func (g_ptr_array_index (due, i));
}

void
milter_parking_lot_dispatch (MilterParkingLot     *lot,
                             gint64                now,
                             MilterParkingLotFunc  func)
{
  if (lot->tag != NULL && g_source_query_unix_fd (lot->source, lot->tag) != 0)
    {
      struct epoll_event events[MAX_EVENTS];
      int n;

      do
        n = epoll_wait (lot->epoll_fd, events, MAX_EVENTS, 0);
      while (n < 0 && errno == EINTR);
      for (int i = 0; i < n; i++)
        {
          MilterParkingSpace *space = events[i].data.ptr;

          space->deadline = -1;  /* reported */
          func (space->data);
        }
    }
  if (lot->next_deadline >= 0 && lot->next_deadline <= now)
    report_deadlines (lot, now, func);
}

void
milter_parking_lot_free (MilterParkingLot *lot)
{
  if (lot == NULL)
    return;
  g_warn_if_fail (lot->spaces->len == 0);
  if (!g_source_is_destroyed (lot->source))
    {
      if (lot->tag != NULL)
        g_source_remove_unix_fd (lot->source, lot->tag);
      g_source_set_ready_time (lot->source, -1);
    }
  close (lot->epoll_fd);
  g_ptr_array_unref (lot->spaces);
  g_free (lot);
}

#else  /* !HAVE_EPOLL: no lot is ever made, nothing is ever parked */

MilterParkingLot *
milter_parking_lot_new (G_GNUC_UNUSED GSource *source)
{
  return NULL;
}

MilterParkingSpace *
milter_parking_lot_park (G_GNUC_UNUSED MilterParkingLot *lot,
                         G_GNUC_UNUSED int               fd,
                         G_GNUC_UNUSED gint64            deadline,
                         G_GNUC_UNUSED gpointer          data)
{
  g_return_val_if_reached (NULL);
}

void
milter_parking_lot_unpark (G_GNUC_UNUSED MilterParkingLot   *lot,
                           G_GNUC_UNUSED MilterParkingSpace *space)
{
  g_return_if_reached ();
}

void
milter_parking_lot_dispatch (G_GNUC_UNUSED MilterParkingLot     *lot,
                             G_GNUC_UNUSED gint64                now,
                             G_GNUC_UNUSED MilterParkingLotFunc  func)
{
  g_return_if_reached ();
}

void
milter_parking_lot_free (G_GNUC_UNUSED MilterParkingLot *lot)
{
}

#endif
