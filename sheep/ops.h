/* ops.h: the opcode table (ops.c): the row of an opcode this sheep answers, and the class of
 * any opcode for the access check. */
#ifndef SHEEP_OPS_H
#define SHEEP_OPS_H

#include <stdint.h>

#include "request_types.h"

const struct sd_op_template *get_sd_op(uint8_t opcode);
enum sd_op_class sd_op_class(uint8_t opcode);

#endif
