/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Cached listings as JSON (listing_json.h).
 */
#include "config.h"
#include "listing_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* S as a JSON string: quotes, backslashes and control bytes escaped, other bytes as they are. */
static void write_string(FILE *f, const char *s)
{
	putc('"', f);
	for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(f, "\\%c", *c);
		else if (*c < 0x20 || *c == 0x7f)
			fprintf(f, "\\u%04x", *c);
		else
			putc(*c, f);
	}
	putc('"', f);
}

int lz_listing_json_write(FILE *f, const struct lz_source_item *items, size_t n)
{
	putc('[', f);
	for (size_t i = 0; i < n; i++) {
		const struct lz_source_item *e = &items[i];
		fputs(i ? ",{\"name\":" : "{\"name\":", f);
		write_string(f, e->name);
		fprintf(f, ",\"size\":%" PRId64 ",\"sec\":%lld,\"nsec\":%ld,\"dir\":%s",
			(int64_t)e->size, (long long)e->mtime.tv_sec, (long)e->mtime.tv_nsec,
			e->is_dir ? "true" : "false");
		if (e->hash != NULL) {
			fputs(",\"hash\":", f);
			write_string(f, e->hash);
		}
		putc('}', f);
	}
	putc(']', f);
	return ferror(f) ? -EIO : 0;
}

static bool servable(const char *name, size_t len)
{
	return len > 0 && strlen(name) == len && strchr(name, '/') == NULL &&
	       strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static int64_t int_field(json_object *o, const char *key, int64_t none)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : none;
}

/* Entry O into E; false when it is damaged (E holds nothing to free then). */
static bool decode_entry(json_object *o, struct lz_rclone_entry *e)
{
	json_object *v;

	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "name", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !servable(json_object_get_string(v), (size_t)json_object_get_string_len(v)))
		return false;
	int64_t size = int_field(o, "size", 0), nsec = int_field(o, "nsec", 0);
	if (size < 0 || nsec < 0 || nsec >= 1000000000)
		return false;
	memset(e, 0, sizeof(*e));
	e->size = (uint64_t)size;
	e->mtime.tv_sec = int_field(o, "sec", 0);
	e->mtime.tv_nsec = (long)nsec;
	e->is_dir = json_object_object_get_ex(o, "dir", &v) && json_object_get_boolean(v);
	if (json_object_object_get_ex(o, "hash", &v) && json_object_is_type(v, json_type_string) &&
	    (e->hash = strdup(json_object_get_string(v))) == NULL)
		return false;
	if ((e->name = strdup(json_object_get_string(json_object_object_get(o, "name")))) == NULL) {
		free(e->hash);
		return false;
	}
	return true;
}

int lz_listing_json_decode(json_object *array, struct lz_rclone_entry **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (array == NULL || !json_object_is_type(array, json_type_array))
		return -EIO;
	size_t count = json_object_array_length(array);
	struct lz_rclone_entry *entries = calloc(count ? count : 1, sizeof(*entries));
	if (entries == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++)
		if (decode_entry(json_object_array_get_idx(array, i), &entries[*n]))
			(*n)++;
	*out = entries;
	return 0;
}

void lz_listing_json_free(struct lz_rclone_entry *entries, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(entries[i].name);
		free(entries[i].hash);
	}
	free(entries);
}
