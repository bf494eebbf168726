/* json_out.c: collie's JSON printer: walks a json-c document and prints it in qemu-img's layout
 * (four-space indentation, or map's one object a line); scalars and keys go through json-c's
 * own serializer, so escaping is json-c's. */
#include <stdio.h>

#include "json_out.h"

#define JSON_SCALAR_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static void print_key(const char *key)
{
	struct json_object *k = json_object_new_string(key);
	fputs(json_object_to_json_string_ext(k, JSON_SCALAR_FLAGS), stdout);
	json_object_put(k);
}

static void print_pretty(struct json_object *v, int indent)
{
	bool first = true;
	switch (json_object_get_type(v)) {
	case json_type_object:
		if (!json_object_object_length(v)) {
			fputs("{}", stdout);
			return;
		}
		fputs("{\n", stdout);
		json_object_object_foreach(v, key, member) {
			printf("%s%*s", first ? "" : ",\n", indent + 4, "");
			print_key(key);
			fputs(": ", stdout);
			print_pretty(member, indent + 4);
			first = false;
		}
		printf("\n%*s}", indent, "");
		return;
	case json_type_array:
		if (!json_object_array_length(v)) {
			fputs("[]", stdout);
			return;
		}
		fputs("[\n", stdout);
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			printf("%s%*s", i ? ",\n" : "", indent + 4, "");
			print_pretty(json_object_array_get_idx(v, i), indent + 4);
		}
		printf("\n%*s]", indent, "");
		return;
	default:
		fputs(json_object_to_json_string_ext(v, JSON_SCALAR_FLAGS), stdout);
	}
}

void json_print(struct json_object *doc)
{
	print_pretty(doc, 0);
	fputc('\n', stdout);
	json_object_put(doc);
}

void json_print_lines(struct json_object *array)
{
	size_t n = json_object_array_length(array);
	fputc('[', stdout);
	for (size_t i = 0; i < n; i++) {
		bool first = true;
		fputs(i ? ",\n{ " : "{ ", stdout);
		json_object_object_foreach(json_object_array_get_idx(array, i), key, member) {
			fputs(first ? "" : ", ", stdout);
			print_key(key);
			fputs(": ", stdout);
			fputs(json_object_to_json_string_ext(member, JSON_SCALAR_FLAGS), stdout);
			first = false;
		}
		fputc('}', stdout);
	}
	fputs("]\n", stdout);
	json_object_put(array);
}

void json_add_str(struct json_object *o, const char *key, const char *value)
{
	json_object_object_add(o, key, json_object_new_string(value ? value : ""));
}

void json_add_u64(struct json_object *o, const char *key, uint64_t value)
{
	json_object_object_add(o, key, json_object_new_uint64(value));
}

void json_add_i64(struct json_object *o, const char *key, int64_t value)
{
	json_object_object_add(o, key, json_object_new_int64(value));
}

void json_add_bool(struct json_object *o, const char *key, bool value)
{
	json_object_object_add(o, key, json_object_new_boolean(value));
}
