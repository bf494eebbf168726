/* ops.h: the opcode table (ops.c): an opcode's row, and its class for the access check. */
#ifndef SHEEP_OPS_H
#define SHEEP_OPS_H

#include <stdint.h>

#include "request_types.h"

const struct sd_op_template *get_sd_op(uint8_t opcode);
enum sd_op_class sd_op_class(uint8_t opcode);

#endif
