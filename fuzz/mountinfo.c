/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * /proc/self/mountinfo as the daemon reads it (common/mountpoint.c), from any
 * bytes: lookups by path and by device never read past a line, a type found
 * is a NUL-terminated word within its buffer, and a mount found by path has
 * the type asked for.
 */
#include "config.h"
#include "check.h"
#include "common/mountpoint.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned devs[][2] = { { 0, 0 }, { 8, 1 }, { 0, 42 }, { 259, 3 } };
	char type[16];
	unsigned major, minor;

	if (size == 0)
		return 0;
	for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
		FILE *f = fmemopen((void *)data, size, "r");
		CHECK(f != NULL);
		memset(type, 'x', sizeof(type));
		if (lz_mountinfo_fstype(f, devs[i][0], devs[i][1], type, sizeof(type)))
			CHECK(memchr(type, '\0', sizeof(type)) != NULL &&
			      strchr(type, ' ') == NULL);
		fclose(f);
	}
	FILE *f = fmemopen((void *)data, size, "r");
	CHECK(f != NULL);
	lz_mountinfo_has(f, "/mnt", "fuse.lazyfs");
	rewind(f);
	lz_mountinfo_find(f, "/", "ext4", true, &major, &minor);
	fclose(f);
	return 0;
}
