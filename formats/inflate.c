/* inflate.c: one zlib stream inflated into a buffer in a single step (see inflate.h). */
#include <errno.h>
#include <zlib.h>

#include "inflate.h"

int fmt_inflate(int window_bits, const void *src, size_t slen, void *dst, size_t dlen, size_t *out)
{
	z_stream z = { 0 };
	int ret;

	*out = 0;
	z.next_in = (Bytef *)src;
	z.avail_in = slen;
	z.next_out = dst;
	z.avail_out = dlen;
	if (inflateInit2(&z, window_bits) != Z_OK)
		return -ENOMEM;
	ret = inflate(&z, Z_FINISH);
	*out = dlen - z.avail_out;
	inflateEnd(&z);
	if (ret == Z_STREAM_END)
		return 0;
	if ((ret == Z_BUF_ERROR || ret == Z_OK) && z.avail_out == 0)
		return 1;
	return ret == Z_MEM_ERROR ? -ENOMEM : -EIO;
}
