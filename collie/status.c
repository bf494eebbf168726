/* status.c: collie's exit statuses: one table from the sheep's SD_RES_* results and one from
 * local errno values to the EXIT_* codes of collie.h (as sheepdog's dog). Every failing command
 * returns exit_status() of what went wrong, or a specific EXIT_* for its own checks. */
#include <errno.h>

#include "collie.h"
#include "sheepdog_proto.h"
#include "util.h"

/* results not listed here are EXIT_FAILED: the command itself failed */
static const unsigned char sd_res_status[] = {
	[SD_RES_SUCCESS]         = EXIT_OK,
	[SD_RES_NO_OBJ]          = EXIT_MISSING,
	[SD_RES_VDI_EXIST]       = EXIT_EXISTS,
	[SD_RES_SYSTEM_ERROR]    = EXIT_SYSFAIL,
	[SD_RES_NO_VDI]          = EXIT_MISSING,
	[SD_RES_NO_BASE_VDI]     = EXIT_MISSING,
	[SD_RES_NO_TAG]          = EXIT_MISSING,
	[SD_RES_STARTUP]         = EXIT_SYSFAIL,
	[SD_RES_SHUTDOWN]        = EXIT_SYSFAIL,
	[SD_RES_NO_MEM]          = EXIT_SYSFAIL,
	[SD_RES_FULL_VDI]        = EXIT_FULL,
	[SD_RES_VER_MISMATCH]    = EXIT_SYSFAIL,
	[SD_RES_NO_SPACE]        = EXIT_FULL,
	[SD_RES_WAIT_FOR_FORMAT] = EXIT_SYSFAIL,
	[SD_RES_WAIT_FOR_JOIN]   = EXIT_SYSFAIL,
	[SD_RES_JOIN_FAILED]     = EXIT_SYSFAIL,
	[SD_RES_HALT]            = EXIT_SYSFAIL,
};

/* local failures (files, images, this host); errno values not listed are EXIT_FAILED */
static const struct {
	int err;
	unsigned char status;
} errno_status[] = {
	{ ECONNREFUSED, EXIT_SYSFAIL }, { ECONNRESET, EXIT_SYSFAIL }, { ECONNABORTED, EXIT_SYSFAIL },
	{ ETIMEDOUT, EXIT_SYSFAIL },    { EHOSTUNREACH, EXIT_SYSFAIL }, { ENETUNREACH, EXIT_SYSFAIL },
	{ EHOSTDOWN, EXIT_SYSFAIL },    { EPIPE, EXIT_SYSFAIL },        { EADDRNOTAVAIL, EXIT_SYSFAIL },
	{ ENOMEM, EXIT_SYSFAIL },       { EMFILE, EXIT_SYSFAIL },       { ENFILE, EXIT_SYSFAIL },
	{ ENOSPC, EXIT_FULL },          { EDQUOT, EXIT_FULL },          { EEXIST, EXIT_EXISTS },
	{ ENOENT, EXIT_MISSING },
};

int errno_exit_status(int err)
{
	if (err < 0)
		err = -err;
	for (size_t i = 0; i < ARRAY_SIZE(errno_status); i++)
		if (errno_status[i].err == err)
			return errno_status[i].status;
	return err ? EXIT_FAILED : EXIT_OK;
}

int exit_status(int res)
{
	/* a request that did not complete: the sheep could not be reached (an address that does not
	 * resolve is -EINVAL, a connection lost mid-request -EIO), or this host ran out of memory */
	if (res == -EACCES || res == -EPERM)
		return EXIT_FAILED;   /* reached, but the key was refused: the command failed */
	if (res < 0)
		return EXIT_SYSFAIL;
	if ((size_t)res < ARRAY_SIZE(sd_res_status) && (res == SD_RES_SUCCESS || sd_res_status[res]))
		return sd_res_status[res];
	return EXIT_FAILED;
}
