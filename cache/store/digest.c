/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "store_int.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define CHUNK (256 * 1024)

/* The digest HASH names when this code can check it, else NULL (the value is only compared). */
static const EVP_MD *checkable(const char *hash, const char **hex)
{
	const EVP_MD *md = NULL;
	size_t want = 0;

	if (strncmp(hash, "md5:", 4) == 0) {
		md = EVP_md5();
		want = 32;
	} else if (strncmp(hash, "sha1:", 5) == 0) {
		md = EVP_sha1();
		want = 40;
	}
	if (md == NULL)
		return NULL;
	*hex = strchr(hash, ':') + 1;
	/* Normalized already, but a wrong length must not read past the digest. */
	return strlen(*hex) == want ? md : NULL;
}

bool lz_digest_checkable(const char *hash)
{
	const char *hex;

	return checkable(hash, &hex) != NULL;
}

int lz_digest_fd(int fd, const char *hash, uint32_t *crc, char *err, size_t errlen)
{
	const char *hex = NULL;
	const EVP_MD *md = hash ? checkable(hash, &hex) : NULL;
	EVP_MD_CTX *ctx = NULL;
	uLong sum = crc32(0, NULL, 0);
	off_t off = 0;
	uint8_t *buf;
	int rc = 0;

	buf = malloc(CHUNK);
	if (buf == NULL)
		return -ENOMEM;
	if (md != NULL) {
		ctx = EVP_MD_CTX_new();
		/* A library that refuses md5 (FIPS mode) leaves the size and CRC as the checks. */
		if (ctx != NULL && EVP_DigestInit_ex(ctx, md, NULL) != 1) {
			EVP_MD_CTX_free(ctx);
			ctx = NULL;
		}
	}
	for (;;) {
		ssize_t n = pread(fd, buf, CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			lz_seterr(err, errlen, "reading the fetched file: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		sum = crc32(sum, buf, (uInt)n);
		if (ctx != NULL)
			EVP_DigestUpdate(ctx, buf, (size_t)n);
		off += n;
	}
	*crc = (uint32_t)sum;
	if (ctx != NULL) {
		unsigned char digest[EVP_MAX_MD_SIZE];
		char got[2 * EVP_MAX_MD_SIZE + 1];
		unsigned int dlen = 0;

		EVP_DigestFinal_ex(ctx, digest, &dlen);
		for (unsigned int i = 0; i < dlen; i++)
			sprintf(got + 2 * i, "%02x", digest[i]);
		if (strcmp(got, hex) != 0) {
			rc = -EIO;
			lz_seterr(err, errlen, "%.*s mismatch: expected %s, fetched %s",
				  (int)(hex - hash - 1), hash, hex, got);
		}
	}
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
}
