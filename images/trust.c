/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The trust rule for kernel mounts (trust.h): owners for files read in
 * place, SHA-256 digests from a local file for fetched copies.
 */
#include "config.h"
#include "trust.h"
#include "common/names.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHA256_LEN 32

struct digest {
	char *name;
	unsigned char sha256[SHA256_LEN];
};

struct lz_trust {
	uid_t owner;
	struct digest *digests; /* sorted by name */
	size_t count;
};

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct digest *)a)->name, ((const struct digest *)b)->name);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* "HEX  NAME" or "HEX *NAME" into D; a reason, or NULL when it is good. */
static const char *parse_digest(char *line, struct digest *d)
{
	size_t len = strcspn(line, "\n");

	line[len] = '\0';
	for (int i = 0; i < SHA256_LEN; i++) {
		int hi = hexval(line[2 * i]), lo = hi < 0 ? -1 : hexval(line[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return "not a SHA-256 in hex (64 digits)";
		d->sha256[i] = (unsigned char)(hi << 4 | lo);
	}
	const char *rest = line + 2 * SHA256_LEN;
	if (rest[0] != ' ' || (rest[1] != ' ' && rest[1] != '*'))
		return "the digest is not followed by two spaces (or \" *\") and a name";
	if (lz_name_check(rest + 2) != 0)
		return "the name is not an object name at the remote's top";
	d->name = strdup(rest + 2);
	return d->name != NULL ? NULL : "out of memory";
}

static int load(struct lz_trust *t, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0, n = 0, lineno = 0;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) > 0) {
		lineno++;
		if (line[strspn(line, " \t")] == '#' || line[strspn(line, " \t\n")] == '\0')
			continue;
		if (n == t->count) {
			size_t more = n ? n * 2 : 64;
			struct digest *p = realloc(t->digests, more * sizeof(*p));
			if (p == NULL)
				break;
			t->digests = p;
			t->count = more;
		}
		const char *bad = parse_digest(line, &t->digests[n]);
		if (bad != NULL) {
			snprintf(err, errlen, "%s:%zu: %s", path, lineno, bad);
			t->count = n;
			free(line);
			fclose(f);
			return -1;
		}
		n++;
	}
	free(line);
	fclose(f);
	t->count = n;
	if (n > 1)
		qsort(t->digests, n, sizeof(*t->digests), by_name);
	for (size_t i = 1; i < n; i++)
		if (strcmp(t->digests[i - 1].name, t->digests[i].name) == 0) {
			snprintf(err, errlen, "%s: '%s' is listed twice", path, t->digests[i].name);
			return -1;
		}
	return 0;
}

struct lz_trust *lz_trust_new(uid_t owner, const char *digests, char *err, size_t errlen)
{
	struct lz_trust *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->owner = owner;
	if (digests != NULL && load(t, digests, err, errlen) != 0) {
		lz_trust_free(t);
		return NULL;
	}
	return t;
}

void lz_trust_free(struct lz_trust *trust)
{
	if (trust == NULL)
		return;
	for (size_t i = 0; i < trust->count; i++)
		free(trust->digests[i].name);
	free(trust->digests);
	free(trust);
}

size_t lz_trust_digests(const struct lz_trust *trust)
{
	return trust != NULL ? trust->count : 0;
}

/* Whether ST's owner may be trusted and nobody else may write it; WHY says why not. */
static bool owned_safely(const struct lz_trust *t, const struct stat *st, const char *what,
			 char *why, size_t whylen)
{
	uid_t owner = t != NULL ? t->owner : LZ_TRUST_NO_OWNER;

	if (st->st_uid != 0 && st->st_uid != owner) {
		snprintf(why, whylen, "untrusted: %s owned by uid %u", what, (unsigned)st->st_uid);
		return false;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, whylen, "untrusted: %s writable by %s", what,
			 st->st_mode & S_IWOTH ? "others" : "its group");
		return false;
	}
	return true;
}

bool lz_trust_file(const struct lz_trust *trust, const struct stat *st, const struct stat *dir,
		   char *why, size_t whylen)
{
	if (!owned_safely(trust, st, "the file", why, whylen) ||
	    (dir != NULL && !owned_safely(trust, dir, "its directory", why, whylen)))
		return false;
	snprintf(why, whylen, st->st_uid == 0 ? "root's" : "the trusted owner's");
	return true;
}

/* The SHA-256 of everything FD holds (read from its start). 0 or -errno. */
static int sha256_of(int fd, unsigned char out[SHA256_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	static const size_t chunk = 1 << 20;
	char *buf = malloc(chunk);
	off_t off = 0;
	ssize_t n = 0;
	int rc = ctx != NULL && buf != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1
			 ? 0
			 : -ENOMEM;

	while (rc == 0 && (n = pread(fd, buf, chunk, off)) > 0) {
		off += n;
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
			rc = -EIO;
	}
	if (rc == 0 && n < 0)
		rc = -errno;
	if (rc == 0 && EVP_DigestFinal_ex(ctx, out, NULL) != 1)
		rc = -EIO;
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
}

bool lz_trust_copy(const struct lz_trust *trust, const char *name, int fd, char *why, size_t whylen)
{
	struct digest key = { .name = (char *)name }, *d = NULL;
	unsigned char got[SHA256_LEN];

	if (trust != NULL && trust->count > 0)
		d = bsearch(&key, trust->digests, trust->count, sizeof(*d), by_name);
	if (d == NULL) {
		snprintf(why, whylen, "untrusted: a remote image without a trusted digest");
		return false;
	}
	if (sha256_of(fd, got) != 0 || memcmp(got, d->sha256, SHA256_LEN) != 0) {
		snprintf(why, whylen, "untrusted: its SHA-256 is not the trusted digest");
		return false;
	}
	snprintf(why, whylen, "trusted digest");
	return true;
}
