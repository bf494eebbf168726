/* image_util.h: helpers collie/image.c shares with collie/vdi_transfer.c. */
#ifndef COLLIE_IMAGE_UTIL_H
#define COLLIE_IMAGE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fmt_options;

/* qemu-style human size ("64 MiB", "1.5 GiB") */
const char *image_human_size(uint64_t val, char *buf, size_t len);
/* register the secrets of --object (repeated options arrive ','-joined); prints errors */
int image_add_objects(const char *arg);

/* --allow-local-backing: a remote image (URL, VDI) may name a backing file, data file, extent
 * or parent outside its own location (a local path, another host or protocol) */
#define IMAGE_OPT_ALLOW_LOCAL_BACKING 400
#define IMAGE_ALLOW_LOCAL_BACKING_ROW                                                                  \
	{ IMAGE_OPT_ALLOW_LOCAL_BACKING, "allow-local-backing", 0, NULL,                                 \
	  "a remote image may name local files or other hosts (backing, data file, extents)" }
/* the options every image command shares: --object secrets and --allow-local-backing */
int image_setup(const char *objects);
/* -t CACHE for targets: unsafe (default) skips fdatasync, the others flush; prints errors */
int image_cache_mode(const char *mode);
/* -o OPTS; prints errors */
int image_parse_options(const char *text, struct fmt_options **opts);
/* "    (NN.NN/100%)\r" on stdout */
void image_progress_print(void *ctx, uint64_t done, uint64_t total);
/* -S SIZE: a multiple of 512 up to 16 MiB; prints errors */
int image_parse_sparse(const char *arg, uint64_t *out);

/* after an open failed for want of a key: ask on the terminal (once), add the secret to opts */
bool image_prompt_key(struct fmt_options **opts);

#endif
