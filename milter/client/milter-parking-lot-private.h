/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Where idle connections wait: their descriptors in one epoll set and
 * their deadlines in one list, both watched by one source (MilterClient's)
 * in place of a source per connection. GLib's main loop looks at every
 * attached source and polls every descriptor on each iteration, so
 * hundreds of idle connections would otherwise slow the busy ones down. */
typedef struct _MilterParkingLot MilterParkingLot;
typedef struct _MilterParkingSpace MilterParkingSpace;

/* Called in the main loop for a parked connection whose descriptor became
 * readable (or hung up) or whose deadline came; it is not called again for
 * that space. */
typedef void (*MilterParkingLotFunc) (gpointer data);

/* Watches @source: adds the epoll descriptor to it and keeps its ready
 * time at the earliest deadline. NULL if the system refuses an epoll
 * descriptor: nothing is parked then. */
MilterParkingLot   *milter_parking_lot_new      (GSource              *source);
/* Parks @fd until input comes or @deadline (monotonic µs, -1: none)
 * passes; NULL (with errno set) if @fd cannot be watched this way. */
MilterParkingSpace *milter_parking_lot_park     (MilterParkingLot     *lot,
                                                 int                   fd,
                                                 gint64                deadline,
                                                 gpointer              data);
/* Stops watching the space's descriptor and frees the space. */
void                milter_parking_lot_unpark   (MilterParkingLot     *lot,
                                                 MilterParkingSpace   *space);
/* From @source's dispatch: calls @func for each space whose descriptor is
 * ready or whose deadline is at or before @now. */
void                milter_parking_lot_dispatch (MilterParkingLot     *lot,
                                                 gint64                now,
                                                 MilterParkingLotFunc  func);
/* The spaces must all have been unparked. */
void                milter_parking_lot_free     (MilterParkingLot     *lot);

G_END_DECLS
