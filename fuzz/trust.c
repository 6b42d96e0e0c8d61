/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The trusted digests file (images/trust.c), as an administrator might get it
 * wrong: a file is loaded whole or refused with FILE:LINE and a reason, never
 * half; a loaded file never holds more digests than it has lines, and a copy
 * is never trusted for a name it does not list.
 */
#include "config.h"
#include "check.h"
#include "images/trust.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512], why[96];

	if (path[0] == '\0') {
		char dir[] = "/tmp/fuzz_trust.XXXXXX";
		CHECK(mkdtemp(dir) != NULL);
		snprintf(path, sizeof(path), "%s/digests", dir);
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && write(fd, data, size) == (ssize_t)size);
	close(fd);
	err[0] = '\0';
	struct lz_trust *t = lz_trust_new(LZ_TRUST_NO_OWNER, path, err, sizeof(err));
	if (t == NULL) {
		CHECK(strncmp(err, path, strlen(path)) == 0 && strchr(err, '\n') == NULL);
		return 0;
	}
	size_t lines = 0;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	CHECK(lz_trust_digests(t) <= lines + 1);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	/* '/' is in no listed name: such a name is never trusted. */
	CHECK(!lz_trust_copy(t, "a/b", fd, why, sizeof(why)));
	close(fd);
	lz_trust_free(t);
	return 0;
}
