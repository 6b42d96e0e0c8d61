/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lz_record_decode, the reader of every cache index record and object xattr,
 * on any bytes: it never reads outside them, and what it accepts is a record
 * lz_record_encode writes back byte for byte (so nothing it lets in is beyond
 * what the store itself would write). The input is tried as it is and with
 * its CRC made right, so the checks behind the CRC get fuzzed too.
 */
#include "config.h"
#include "check.h"
#include "cache/store/store_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode(const uint8_t *buf, size_t size)
{
	char hashbuf[LZ_STORE_HASH_MAX];
	uint8_t again[LZ_RECORD_MAX];
	struct lz_record r;
	size_t n = lz_record_decode(buf, size, &r, hashbuf);

	if (n == 0)
		return;
	CHECK(n <= size && n <= LZ_RECORD_MAX);
	CHECK(r.keylen > 0 && r.keylen <= LZ_STORE_KEY_MAX);
	CHECK(r.key >= (const char *)buf && r.key + r.keylen <= (const char *)buf + n);
	CHECK(memchr(r.key, '\0', r.keylen) == NULL && r.size >= 0);
	CHECK(r.hash == hashbuf && strlen(r.hash) < LZ_STORE_HASH_MAX);
	CHECK(lz_record_encode(&r, again) == n && memcmp(again, buf, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	size_t reclen;

	decode(data, size);
	if (size < 52)
		return 0;
	/* The length field says where the CRC goes; the decoder must refuse a wrong one. */
	reclen = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 |
		 (size_t)data[3] << 24;
	if (reclen < 52 || reclen > size || (copy = malloc(size)) == NULL)
		return 0;
	memcpy(copy, data, size);
	uint32_t crc = (uint32_t)crc32(0, copy, (uInt)(reclen - 4));
	for (int i = 0; i < 4; i++)
		copy[reclen - 4 + i] = (uint8_t)(crc >> (8 * i));
	decode(copy, size);
	free(copy);
	return 0;
}
