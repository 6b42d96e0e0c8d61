/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "store_int.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <zlib.h>

/*
 * A record, little-endian whatever the host, so that a cache directory
 * outlives the build that wrote it:
 *   0 u32 length of the whole record     4 u8 version (1)   5 u8 flags (0)
 *   6 u16 key length                     8 u32 slot        12 u64 size
 *  20 i64 mtime seconds                 28 u32 mtime nanoseconds
 *  32 u32 CRC32 of the content          36 i64 last access (ns)
 *  44 u16 hash length                   46 u16 zero
 *  48 hash bytes, key bytes, then u32 CRC32 of everything before it.
 */
#define FIXED	       48
#define RECORD_VERSION 1

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int lz_hash_normalize(const char *in, char *out, size_t size)
{
	size_t len = strlen(in), colon, i;
	bool hex = true;

	if (len == 0) {
		out[0] = '\0';
		return 0;
	}
	if (len >= size || len >= LZ_STORE_HASH_MAX)
		return -EINVAL;
	colon = strcspn(in, ":");
	if (colon == 0 || colon > 15 || colon + 1 >= len)
		return -EINVAL;
	for (i = 0; i < colon; i++) {
		if (!isalnum((unsigned char)in[i]))
			return -EINVAL;
		out[i] = (char)tolower((unsigned char)in[i]);
	}
	out[colon] = ':';
	/* Values are hex for most remotes, base64 for a few: case matters only there. */
	for (i = colon + 1; i < len; i++) {
		if (!isalnum((unsigned char)in[i]) && strchr("+/=_-", in[i]) == NULL)
			return -EINVAL;
		hex = hex && isxdigit((unsigned char)in[i]);
	}
	for (i = colon + 1; i < len; i++)
		out[i] = hex ? (char)tolower((unsigned char)in[i]) : in[i];
	out[len] = '\0';
	/* The ones checked at fill must be well formed, or they could never match. */
	if ((strncmp(out, "md5:", 4) == 0 && (len != 4 + 32 || !hex)) ||
	    (strncmp(out, "sha1:", 5) == 0 && (len != 5 + 40 || !hex)))
		return -EINVAL;
	return 0;
}

size_t lz_record_encode(const struct lz_record *r, uint8_t *buf)
{
	size_t hashlen = strlen(r->hash);
	size_t len = FIXED + hashlen + r->keylen + 4;

	put32(buf, (uint32_t)len);
	buf[4] = RECORD_VERSION;
	buf[5] = 0;
	put16(buf + 6, (uint16_t)r->keylen);
	put32(buf + 8, r->slot);
	put64(buf + 12, (uint64_t)r->size);
	put64(buf + 20, (uint64_t)r->mtime.tv_sec);
	put32(buf + 28, (uint32_t)r->mtime.tv_nsec);
	put32(buf + 32, r->crc);
	put64(buf + 36, (uint64_t)r->atime);
	put16(buf + 44, (uint16_t)hashlen);
	put16(buf + 46, 0);
	memcpy(buf + FIXED, r->hash, hashlen);
	memcpy(buf + FIXED + hashlen, r->key, r->keylen);
	put32(buf + len - 4, (uint32_t)crc32(0, buf, (uInt)(len - 4)));
	return len;
}

size_t lz_record_decode(const uint8_t *buf, size_t len, struct lz_record *r, char *hashbuf)
{
	size_t reclen, keylen, hashlen;
	char norm[LZ_STORE_HASH_MAX];

	if (len < FIXED + 4)
		return 0;
	reclen = get32(buf);
	keylen = get16(buf + 6);
	hashlen = get16(buf + 44);
	if (reclen > len || buf[4] != RECORD_VERSION || buf[5] != 0 || get16(buf + 46) != 0 ||
	    keylen == 0 || keylen > LZ_STORE_KEY_MAX || hashlen >= LZ_STORE_HASH_MAX ||
	    reclen != FIXED + hashlen + keylen + 4)
		return 0;
	if (crc32(0, buf, (uInt)(reclen - 4)) != get32(buf + reclen - 4))
		return 0;
	r->keylen = keylen;
	r->key = (const char *)buf + FIXED + hashlen;
	r->slot = get32(buf + 8);
	r->size = (int64_t)get64(buf + 12);
	r->mtime.tv_sec = (time_t)get64(buf + 20);
	r->mtime.tv_nsec = get32(buf + 28);
	r->crc = get32(buf + 32);
	r->atime = (int64_t)get64(buf + 36);
	memcpy(hashbuf, buf + FIXED, hashlen);
	hashbuf[hashlen] = '\0';
	r->hash = hashbuf;
	/* A CRC only catches accidents: still refuse what this code would never write. */
	if (r->size < 0 || r->mtime.tv_nsec >= 1000000000L || memchr(r->key, '\0', keylen) ||
	    strlen(hashbuf) != hashlen || lz_hash_normalize(hashbuf, norm, sizeof(norm)) != 0 ||
	    strcmp(norm, hashbuf) != 0)
		return 0;
	return reclen;
}
