/* json_out.h: collie's --output=json: documents built with json-c (every scalar, string escaping
 * included, is serialized by json-c) and laid out as qemu-img lays its JSON out. */
#ifndef JSON_OUT_H
#define JSON_OUT_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

/* print doc to standard output, four-space indented, with a final newline; releases doc */
void json_print(struct json_object *doc);
/* an array as qemu-img map prints it: "[{ "k": v, ...},\n{ ...}]\n"; releases it */
void json_print_lines(struct json_object *array);

/* add a member; a NULL string becomes "" */
void json_add_str(struct json_object *o, const char *key, const char *value);
void json_add_u64(struct json_object *o, const char *key, uint64_t value);
void json_add_i64(struct json_object *o, const char *key, int64_t value);
void json_add_bool(struct json_object *o, const char *key, bool value);

#endif
