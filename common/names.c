/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "names.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

int lz_name_check(const char *name)
{
	size_t len = strnlen(name, NAME_MAX + 1);

	if (len == 0)
		return -ENOENT;
	if (len > NAME_MAX)
		return -ENAMETOOLONG;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -ENOENT;
	if (memchr(name, '/', len) != NULL)
		return -ENOENT;
	return 0;
}

uint32_t lz_hash32(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

uint64_t lz_hash64(const char *s, uint64_t h)
{
	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * UINT64_C(1099511628211);
	return h;
}
