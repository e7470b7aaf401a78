/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Where idle connections wait: one epoll descriptor for all of them, which
 * MilterClient's source watches in place of each connection's own. GLib's
 * main loop polls every descriptor of every source on each iteration, so
 * hundreds of idle connections would otherwise slow down the busy ones. */
typedef struct _MilterParkingLot MilterParkingLot;

/* Called in the main loop for each parked descriptor that became readable
 * (or hung up); the descriptor is then no longer watched until parked
 * again. */
typedef void (*MilterParkingLotFunc) (gpointer data);

/* NULL if the system refuses an epoll descriptor: nothing is parked then. */
MilterParkingLot *milter_parking_lot_new      (void);
int               milter_parking_lot_get_fd   (MilterParkingLot     *lot);
/* Watches @fd for input; @data is handed to the dispatch function. FALSE
 * (with errno set) if @fd cannot be watched this way. */
gboolean          milter_parking_lot_park     (MilterParkingLot     *lot,
                                               int                   fd,
                                               gpointer              data);
/* Stops watching @fd, which must have been parked. */
void              milter_parking_lot_unpark   (MilterParkingLot     *lot,
                                               int                   fd);
void              milter_parking_lot_dispatch (MilterParkingLot     *lot,
                                               MilterParkingLotFunc  func);
void              milter_parking_lot_free     (MilterParkingLot     *lot);

G_END_DECLS
