/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "rclone_entry.h"
#include "common/log.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REMOTE_MAX 4096
/* Room for the ".lzrc.PID.N" sibling a copy writes first. */
#define LOCAL_PATH_MAX (PATH_MAX - 64)

static bool has_control(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

bool lz_rclone_remote_ok(const char *remote)
{
	return remote != NULL && remote[0] != '\0' && strnlen(remote, REMOTE_MAX) < REMOTE_MAX &&
	       !has_control(remote);
}

char *lz_rclone_shown_remote(const char *remote)
{
	size_t prefix = (remote[0] == ':') + strcspn(remote + (remote[0] == ':'), ",:");
	const char *p = remote + prefix;
	char quote = 0;
	char *out;

	if (*p != ',')
		return strdup(remote);
	/* Options run to the first ':' outside quotes (values with ':' or ',' are quoted). */
	for (; *p != '\0' && (quote || *p != ':'); p++) {
		if (quote ? *p == quote : (*p == '\'' || *p == '"'))
			quote = quote ? 0 : *p;
	}
	if (asprintf(&out, "%.*s,...%s", (int)prefix, remote, p) < 0)
		return NULL;
	return out;
}

static bool component_ok(const char *s, size_t len)
{
	return len > 0 && len <= NAME_MAX && !(len == 1 && s[0] == '.') &&
	       !(len == 2 && s[0] == '.' && s[1] == '.');
}

bool lz_rclone_path_ok(const char *path, bool empty_ok)
{
	if (path == NULL || strnlen(path, PATH_MAX) >= PATH_MAX || has_control(path))
		return false;
	if (path[0] == '\0')
		return empty_ok;
	for (const char *p = path;;) {
		size_t len = strcspn(p, "/");

		if (!component_ok(p, len))
			return false;
		if (p[len] == '\0')
			return true;
		p += len + 1;
	}
}

/* The code point at *S, advancing *S; -1 for bytes that are not UTF-8. */
static long next_utf8(const unsigned char **s)
{
	const unsigned char *p = *s;
	long cp;
	int more;

	if (p[0] < 0x80) {
		*s = p + 1;
		return p[0];
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		cp = p[0] & 0x1f;
		more = 1;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		cp = p[0] & 0x0f;
		more = 2;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		cp = p[0] & 0x07;
		more = 3;
	} else {
		return -1;
	}
	for (int i = 1; i <= more; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates, beyond Unicode. */
	if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*s = p + more + 1;
	return cp;
}

bool lz_rclone_local_path_ok(const char *path, char *why, size_t whylen)
{
	const unsigned char *p = (const unsigned char *)path;
	size_t len = strnlen(path, LOCAL_PATH_MAX);

	if (path[0] != '/' || len == 1 || path[len - 1] == '/') {
		snprintf(why, whylen, "the local path must be absolute and name a file");
		return false;
	}
	if (len >= LOCAL_PATH_MAX) {
		snprintf(why, whylen, "the local path is too long");
		return false;
	}
	while (*p != '\0') {
		long cp = next_utf8(&p);

		if (cp < 0) {
			snprintf(why, whylen,
				 "the local path is not valid UTF-8 (rclone would rename it)");
			return false;
		}
		/* rclone's local backend writes these differently from how it was asked to. */
		if (cp < 0x20 || cp == 0x7f || cp == 0x201b || (cp >= 0x2400 && cp <= 0x2421)) {
			snprintf(why, whylen,
				 "the local path holds U+%04lX, which rclone would rewrite", cp);
			return false;
		}
	}
	for (const char *c = path + 1;;) {
		size_t n = strcspn(c, "/");

		if ((n == 1 && c[0] == '.') || (n == 2 && strncmp(c, "..", 2) == 0) ||
		    (n == 3 && strncmp(c, "\xef\xbc\x8e", 3) == 0) ||
		    (n == 6 && strncmp(c, "\xef\xbc\x8e\xef\xbc\x8e", 6) == 0)) {
			snprintf(why, whylen,
				 "the local path has a \".\", \"..\" or fullwidth dot component");
			return false;
		}
		if (c[n] == '\0')
			return true;
		c += n + 1;
	}
}

static int digits(const char **s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*s)[i] < '0' || (*s)[i] > '9')
			return -1;
		v = v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	*out = v;
	return 0;
}

static int expect(const char **s, char c)
{
	if (**s != c)
		return -1;
	(*s)++;
	return 0;
}

/* RFC 3339 as Go writes it: 2024-01-02T03:04:05[.frac](Z|+hh:mm). */
static int parse_time(const char *s, struct timespec *ts)
{
	struct tm tm = { 0 };
	int year, mon, day, hour, min, sec, oh = 0, om = 0, sign = 0;
	long nsec = 0;
	time_t t;

	if (digits(&s, 4, &year) || expect(&s, '-') || digits(&s, 2, &mon) || expect(&s, '-') ||
	    digits(&s, 2, &day) || expect(&s, 'T') || digits(&s, 2, &hour) || expect(&s, ':') ||
	    digits(&s, 2, &min) || expect(&s, ':') || digits(&s, 2, &sec))
		return -1;
	if (year < 1 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
	    sec > 60)
		return -1;
	if (*s == '.') {
		int n = 0;

		for (s++; *s >= '0' && *s <= '9'; s++, n++) {
			if (n < 9)
				nsec = nsec * 10 + (*s - '0');
		}
		if (n == 0)
			return -1;
		for (; n < 9; n++)
			nsec *= 10;
	}
	if (*s == 'Z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '+' ? 1 : -1;
		if (digits(&s, 2, &oh) || expect(&s, ':') || digits(&s, 2, &om) || oh > 23 ||
		    om > 59)
			return -1;
	} else {
		return -1;
	}
	if (*s != '\0')
		return -1;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec > 59 ? 59 : sec;
	t = timegm(&tm);
	ts->tv_sec = t - sign * (oh * 3600 + om * 60);
	ts->tv_nsec = nsec;
	return 0;
}

static bool member(struct json_object *obj, const char *key, enum json_type type,
		   struct json_object **out)
{
	return json_object_object_get_ex(obj, key, out) && json_object_is_type(*out, type);
}

/* A JSON string as a C string, refused if it hides a NUL. */
static const char *string_of(struct json_object *s)
{
	const char *str = json_object_get_string(s);

	return strlen(str) == (size_t)json_object_get_string_len(s) ? str : NULL;
}

static char *parse_hash(struct json_object *item, char *why, size_t whylen, bool *bad)
{
	static const struct {
		const char *name;
		size_t len;
	} kinds[] = { { "md5", 32 }, { "sha1", 40 } };
	struct json_object *hashes, *h;
	char *out;

	*bad = false;
	if (!json_object_object_get_ex(item, "Hashes", &hashes))
		return NULL;
	if (!json_object_is_type(hashes, json_type_object)) {
		snprintf(why, whylen, "Hashes is not an object");
		*bad = true;
		return NULL;
	}
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		const char *hex;

		if (!json_object_object_get_ex(hashes, kinds[k].name, &h))
			continue;
		hex = json_object_is_type(h, json_type_string) ? string_of(h) : NULL;
		if (hex != NULL && hex[0] == '\0')
			continue; /* rclone's way of saying it has none for this object */
		if (hex == NULL || strlen(hex) != kinds[k].len ||
		    strspn(hex, "0123456789abcdefABCDEF") != kinds[k].len) {
			snprintf(why, whylen, "bad %s hash", kinds[k].name);
			*bad = true;
			return NULL;
		}
		if (asprintf(&out, "%s:%s", kinds[k].name, hex) < 0) {
			snprintf(why, whylen, "out of memory");
			*bad = true;
			return NULL;
		}
		for (char *c = out; *c; c++)
			*c = (*c >= 'A' && *c <= 'F') ? (char)(*c - 'A' + 'a') : *c;
		return out;
	}
	return NULL;
}

int lz_rclone_parse_entry(struct json_object *item, bool root, struct lz_rclone_entry *e, char *why,
			  size_t whylen)
{
	struct json_object *name, *isdir, *size, *mtime;
	const char *str;
	int64_t sz;
	bool bad;

	memset(e, 0, sizeof(*e));
	if (!json_object_is_type(item, json_type_object)) {
		snprintf(why, whylen, "not an object");
		return -1;
	}
	if (!member(item, "Name", json_type_string, &name) || (str = string_of(name)) == NULL) {
		snprintf(why, whylen, "no valid Name");
		return -1;
	}
	if (root ? str[0] != '\0'
		 : (!component_ok(str, strlen(str)) || strchr(str, '/') != NULL ||
		    has_control(str))) {
		char shown[64];

		lz_rc_sanitize(shown, sizeof(shown), str);
		snprintf(why, whylen, "unusable name '%s'", shown);
		return -1;
	}
	if (!member(item, "IsDir", json_type_boolean, &isdir)) {
		snprintf(why, whylen, "no boolean IsDir");
		return -1;
	}
	e->is_dir = json_object_get_boolean(isdir);
	/* Integers only: json-c keeps 1e3 or 1.5 as doubles. */
	if (!member(item, "Size", json_type_int, &size)) {
		snprintf(why, whylen, "no integer Size");
		return -1;
	}
	sz = json_object_get_int64(size);
	if (!e->is_dir && (sz < 0 || sz == INT64_MAX)) {
		/* -1: rclone does not know (Google Docs and the like); we cannot serve it. */
		snprintf(why, whylen, "size %lld is unusable", (long long)sz);
		return -1;
	}
	e->size = e->is_dir ? 0 : (uint64_t)sz;
	if (!member(item, "ModTime", json_type_string, &mtime) ||
	    (str = string_of(mtime)) == NULL || parse_time(str, &e->mtime) < 0) {
		snprintf(why, whylen, "no valid ModTime");
		return -1;
	}
	e->hash = parse_hash(item, why, whylen, &bad);
	if (bad)
		return -1;
	e->name = strdup(json_object_get_string(name));
	if (e->name == NULL) {
		free(e->hash);
		e->hash = NULL;
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

enum hash_kind lz_rclone_cheap_hash(struct json_object *fsinfo)
{
	struct json_object *hashes, *features, *slow;
	bool md5 = false, sha1 = false;

	if (member(fsinfo, "Features", json_type_object, &features) &&
	    member(features, "SlowHash", json_type_boolean, &slow) && json_object_get_boolean(slow))
		return HASH_NONE;
	if (!member(fsinfo, "Hashes", json_type_array, &hashes))
		return HASH_NONE;
	for (size_t i = 0; i < json_object_array_length(hashes); i++) {
		struct json_object *h = json_object_array_get_idx(hashes, i);

		if (!json_object_is_type(h, json_type_string))
			continue;
		md5 |= strcmp(json_object_get_string(h), "md5") == 0;
		sha1 |= strcmp(json_object_get_string(h), "sha1") == 0;
	}
	return md5 ? HASH_MD5 : sha1 ? HASH_SHA1 : HASH_NONE;
}

void lz_rclone_entry_clear(struct lz_rclone_entry *entry)
{
	free(entry->name);
	free(entry->hash);
	entry->name = entry->hash = NULL;
}

void lz_rclone_entries_free(struct lz_rclone_entry *entries, size_t count)
{
	if (entries == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		lz_rclone_entry_clear(&entries[i]);
	free(entries);
}

static int by_name(const void *a, const void *b, void *arg)
{
	const struct lz_rclone_entry *entries = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int c = strcmp(entries[i].name, entries[j].name);

	return c != 0 ? c : (i > j) - (i < j);
}

size_t lz_rclone_drop_duplicates(struct lz_rclone_entry *entries, size_t count,
				 const struct lz_rc_log *log, const char *dir)
{
	size_t *order, kept = 0;
	bool *drop;

	if (count < 2)
		return count;
	order = malloc(count * sizeof(*order));
	drop = calloc(count, sizeof(*drop));
	if (order == NULL || drop == NULL) {
		free(order);
		free(drop);
		return count; /* no memory to look: the caller copes with a duplicate */
	}
	for (size_t i = 0; i < count; i++)
		order[i] = i;
	qsort_r(order, count, sizeof(*order), by_name, entries);
	for (size_t i = 1; i < count; i++) {
		if (strcmp(entries[order[i]].name, entries[order[i - 1]].name) == 0) {
			char name[128], path[128];

			drop[order[i]] = true;
			lz_rc_sanitize(name, sizeof(name), entries[order[i]].name);
			lz_rc_sanitize(path, sizeof(path), dir);
			lz_rc_logf(log, LZ_LOG_WARN,
				   "rclone list of '%s': '%s' listed twice, kept the first", path,
				   name);
		}
	}
	for (size_t i = 0; i < count; i++) {
		if (drop[i])
			lz_rclone_entry_clear(&entries[i]);
		else
			entries[kept++] = entries[i];
	}
	free(order);
	free(drop);
	return kept;
}
