/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "milter-parking-lot-private.h"

#include <errno.h>
#include <unistd.h>

#if HAVE_EPOLL
#include <sys/epoll.h>

#define MAX_EVENTS 64

struct _MilterParkingLot
{
  int epoll_fd;
  guint size;  /* descriptors parked */
};

MilterParkingLot *
milter_parking_lot_new (void)
{
  int epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
  MilterParkingLot *lot;

  if (epoll_fd < 0)
    return NULL;
  lot = g_new0 (MilterParkingLot, 1);
  lot->epoll_fd = epoll_fd;
  return lot;
}

int
milter_parking_lot_get_fd (MilterParkingLot *lot)
{
  return lot->epoll_fd;
}

gboolean
milter_parking_lot_park (MilterParkingLot *lot,
                         int               fd,
                         gpointer          data)
{
  /* One-shot: reported once, then quiet until the owner takes it back. */
  struct epoll_event event = { EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, { .ptr = data } };

  if (epoll_ctl (lot->epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0)
    return FALSE;
  lot->size++;
  return TRUE;
}

void
milter_parking_lot_unpark (MilterParkingLot *lot,
                           int               fd)
{
  g_return_if_fail (lot->size > 0);

  /* Cannot fail for a parked descriptor that is still open. */
  epoll_ctl (lot->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
  lot->size--;
}

void
milter_parking_lot_dispatch (MilterParkingLot     *lot,
                             MilterParkingLotFunc  func)
{
  struct epoll_event events[MAX_EVENTS];
  int n;

  do
    n = epoll_wait (lot->epoll_fd, events, MAX_EVENTS, 0);
  while (n < 0 && errno == EINTR);
  for (int i = 0; i < n; i++)
    func (events[i].data.ptr);
}

void
milter_parking_lot_free (MilterParkingLot *lot)
{
  if (lot == NULL)
    return;
  close (lot->epoll_fd);
  g_free (lot);
}

#else  /* !HAVE_EPOLL: no lot is ever made, nothing is ever parked */

MilterParkingLot *
milter_parking_lot_new (void)
{
  return NULL;
}

int
milter_parking_lot_get_fd (G_GNUC_UNUSED MilterParkingLot *lot)
{
  g_return_val_if_reached (-1);
}

gboolean
milter_parking_lot_park (G_GNUC_UNUSED MilterParkingLot *lot,
                         G_GNUC_UNUSED int               fd,
                         G_GNUC_UNUSED gpointer          data)
{
  g_return_val_if_reached (FALSE);
}

void
milter_parking_lot_unpark (G_GNUC_UNUSED MilterParkingLot *lot,
                           G_GNUC_UNUSED int               fd)
{
  g_return_if_reached ();
}

void
milter_parking_lot_dispatch (G_GNUC_UNUSED MilterParkingLot     *lot,
                             G_GNUC_UNUSED MilterParkingLotFunc  func)
{
  g_return_if_reached ();
}

void
milter_parking_lot_free (G_GNUC_UNUSED MilterParkingLot *lot)
{
}

#endif
