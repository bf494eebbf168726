/* node_control.h: the LOG_LEVEL and RECOVERY_THROTTLE opcodes (node_control.c). */
#ifndef SHEEP_NODE_CONTROL_H
#define SHEEP_NODE_CONTROL_H

#include "sheepdog_proto.h"

int main_log_level(const struct sd_req *rq, struct sd_rsp *rp, void *data);
int main_recovery_throttle(const struct sd_req *rq, struct sd_rsp *rp, void *data);

#endif
