/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A cached listing (cache/listing_json.c) as a damaged cache leaves it: any
 * text is parsed as JSON and decoded; every entry let through can be served
 * (a name that is one path component, a size below 2^63, nanoseconds in
 * range), and what it decodes encodes and decodes again to the same entries.
 */
#include "config.h"
#include "check.h"
#include "cache/listing_json.h"

#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entry(const struct lz_rclone_entry *e)
{
	CHECK(e->name != NULL && e->name[0] != '\0' && strchr(e->name, '/') == NULL);
	CHECK(strcmp(e->name, ".") != 0 && strcmp(e->name, "..") != 0);
	CHECK(e->size <= INT64_MAX && e->mtime.tv_nsec >= 0 && e->mtime.tv_nsec < 1000000000L);
}

/* The decoded entries as the listing keeps them, written and decoded again: the same. */
static void round_trip(const struct lz_rclone_entry *e, size_t n)
{
	struct lz_source_item *items = calloc(n ? n : 1, sizeof(*items));
	size_t kept = 0, len = 0;
	char *text = NULL;

	CHECK(items != NULL);
	for (size_t i = 0; i < n; i++) {
		if (strlen(e[i].name) > NAME_MAX)
			continue; /* longer than a name: the listing drops it too */
		items[kept++] = (struct lz_source_item){ .name = e[i].name,
							 .size = e[i].size,
							 .mtime = e[i].mtime,
							 .is_dir = e[i].is_dir,
							 .hash = e[i].hash };
	}
	FILE *f = open_memstream(&text, &len);
	CHECK(f != NULL && lz_listing_json_write(f, items, kept) == 0 && fclose(f) == 0);
	json_object *array = json_tokener_parse(text);
	struct lz_rclone_entry *again;
	size_t m;
	CHECK(lz_listing_json_decode(array, &again, &m) == 0 && m == kept);
	for (size_t i = 0; i < m; i++) {
		CHECK(strcmp(again[i].name, items[i].name) == 0 && again[i].size == items[i].size);
		CHECK(again[i].mtime.tv_sec == items[i].mtime.tv_sec &&
		      again[i].mtime.tv_nsec == items[i].mtime.tv_nsec);
		CHECK(again[i].is_dir == items[i].is_dir);
		CHECK((again[i].hash == NULL) == (items[i].hash == NULL));
		CHECK(again[i].hash == NULL || strcmp(again[i].hash, items[i].hash) == 0);
	}
	lz_listing_json_free(again, m);
	json_object_put(array);
	free(text);
	free(items);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct lz_rclone_entry *entries;
	size_t n;

	CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	json_object *array = json_tokener_parse(text);
	free(text);
	if (lz_listing_json_decode(array, &entries, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			check_entry(&entries[i]);
		round_trip(entries, n);
		lz_listing_json_free(entries, n);
	}
	json_object_put(array);
	return 0;
}
