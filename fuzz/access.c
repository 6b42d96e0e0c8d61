/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The two parsers of common/: a /proc/PID/status text (common/caller.c) and
 * a POSIX ACL as an underlay's system.posix_acl_access gives it
 * (common/access.c), from any bytes: the first byte splits the input. Nothing
 * is read past the input; a status parsed holds no more groups than are kept;
 * an ACL the rule finds malformed permits nothing.
 */
#include "config.h"
#include "check.h"
#include "common/access.h"
#include "common/caller.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void status(const uint8_t *data, size_t size)
{
	static struct lz_caller c;

	if (lz_caller_parse((const char *)data, size, &c) == 0)
		CHECK(c.ngroups <= LZ_CALLER_GROUPS);
}

static void acl(const uint8_t *data, size_t size)
{
	struct stat st = { .st_mode = S_IFREG | 0640, .st_uid = 0, .st_gid = 50 };
	struct lz_caller c = { .uid = { 7, 7, 7, 7 }, .gid = { 9, 9, 9, 9 }, .ngroups = 1 };
	/* An aligned copy of exactly SIZE bytes, so reads past it are caught. */
	void *copy = malloc(size ? size : 1);

	CHECK(copy != NULL);
	memcpy(copy, data, size);
	c.groups[0] = 50;
	for (unsigned want = 1; want < 8; want++) {
		bool ok = lz_may_access(&c, &st, copy, size, want);
		if (size > 4 && !lz_acl_valid(copy, size))
			CHECK(!ok);
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		status(data + 1, size - 1);
	else
		acl(data + 1, size - 1);
	return 0;
}
