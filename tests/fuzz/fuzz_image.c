/* fuzz_image.c: libFuzzer harness for one image driver (FUZZ_DRIVER, set at compile time): the
 * input bytes are an image in a memory store; open it, ask for info, snapshots and a check, walk
 * the block status and read every allocated byte (capped, so huge virtual disks stay quick).
 * A writable driver then opens a private copy read-write and writes at the start, the middle
 * and the last byte (damaged metadata must fail those writes cleanly, never crash). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

#ifndef FUZZ_DRIVER
#error "build with -DFUZZ_DRIVER='\"name\"'"
#endif

#define FUZZ_READ_CAP   (64u << 20)   /* bytes read per input */
#define FUZZ_STEP_CAP   100000        /* block status calls per input */
#define FUZZ_CHUNK      (1u << 20)

static void fuzz_emit(void *ctx, const char *key, const char *value)
{
	(void)ctx;
	/* touch the strings so a dangling pointer shows up under ASan */
	volatile size_t n = strlen(key) + strlen(value);
	(void)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *buf;
	struct fmt_image *img = NULL;
	uint64_t off = 0, read_total = 0;
	int steps = 0;

	if (!buf && !(buf = malloc(FUZZ_CHUNK)))
		return 0;
	if (fmt_store_mem_register("fuzz.img", data, size))
		return 0;
	if (fmt_image_open("mem:fuzz.img", FUZZ_DRIVER, 0, NULL, &img))
		goto out;
	if (img->drv->info)
		img->drv->info(img, fuzz_emit, NULL);
	if (img->drv->snapshots) {
		struct fmt_snapshot *snaps = NULL;
		int nr = 0;
		if (!img->drv->snapshots(img, &snaps, &nr))
			for (int i = 0; i < nr; i++)
				fuzz_emit(NULL, snaps[i].id, snaps[i].name);
		free(snaps);
	}
	if (img->drv->check) {
		struct fmt_check_result r;
		memset(&r, 0, sizeof(r));
		img->drv->check(img, &r);
	}
	while (off < img->virtual_size && steps++ < FUZZ_STEP_CAP && read_total < FUZZ_READ_CAP) {
		unsigned bits;
		uint64_t run;
		if (fmt_image_block_status_deep(img, off, img->virtual_size - off, &bits, &run, NULL))
			break;
		if (!(bits & FMT_BS_ZERO)) {
			uint64_t n = run < FUZZ_CHUNK ? run : FUZZ_CHUNK;
			if (fmt_image_read(img, buf, n, off))
				break;
			read_total += n;
			run = n;
		}
		off += run;
	}
	/* the last byte, whatever the map says */
	if (img->virtual_size)
		fmt_image_read(img, buf, 1, img->virtual_size - 1);
	if ((img->drv->flags & FMT_DRV_WRITE) && img->drv->write) {
		uint64_t vs = img->virtual_size;
		fmt_image_close(img);
		img = NULL;
		if (fmt_image_open("mem:fuzz.img", FUZZ_DRIVER, FMT_OPEN_RDWR | FMT_OPEN_NO_BACKING, NULL, &img))
			goto out;
		memset(buf, 0x5a, 4096);
		uint64_t at[3] = { 0, vs / 2 & ~511ULL, vs ? vs - 1 : 0 };
		for (int i = 0; i < 3 && vs; i++) {
			size_t n = vs - at[i] < 4096 ? vs - at[i] : 4096;
			if (fmt_image_write(img, buf, n, at[i]))
				break;
			fmt_image_read(img, buf + 4096, n, at[i]);
		}
		if (img->drv->flush)
			img->drv->flush(img);
	}
out:
	fmt_image_close(img);
	fmt_store_mem_unregister("fuzz.img");
	return 0;
}
