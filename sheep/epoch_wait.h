/* epoch_wait.h: where peer requests of a newer epoch wait for this node to catch up. */
#ifndef SHEEP_EPOCH_WAIT_H
#define SHEEP_EPOCH_WAIT_H

#include <stdbool.h>

struct request;
/* main thread, work fields set: true when req waits here (it goes to the I/O queue later) */
bool epoch_wait_park(struct request *req);

#endif
