/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Everything lazyfs reads from rclone: a reply body through the strict parser
 * every call uses (lz_rc_parse_reply), then as an operations/list,
 * operations/stat, operations/fsinfo or error reply; the loose json-c parse of
 * the same bytes, each array element or the object itself as an lsjson item;
 * and the text as a line of the child's log (lz_rcd_serving_port). Nothing
 * crashes or leaks, every entry let through is one lazyfs can serve (a valid
 * name, a known hash form), listings hold each name once, and every log line
 * a reply can cause is one line without control characters.
 */
#include "config.h"
#include "check.h"
#include "cache/rclone/rclone_entry.h"
#include "cache/rclone/rclone_rcd.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_line(void *ctx, enum lz_log_level level, const char *msg)
{
	for (const char *p = msg; *p; p++)
		CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
}

static const struct lz_rc_log log_check = { .fn = check_line };

static void check_entry(const struct lz_rclone_entry *e, bool root)
{
	size_t len = strlen(e->name);

	CHECK(root ? len == 0 : lz_rclone_path_ok(e->name, false) && !strchr(e->name, '/'));
	CHECK(e->mtime.tv_nsec >= 0 && e->mtime.tv_nsec < 1000000000L);
	CHECK(!e->is_dir || e->size == 0);
	if (e->hash != NULL) {
		size_t hex = strncmp(e->hash, "md5:", 4) == 0 ? 32 : 40;
		size_t skip = hex == 32 ? 4 : 5;
		CHECK(hex == 32 || strncmp(e->hash, "sha1:", 5) == 0);
		CHECK(strlen(e->hash) == skip + hex &&
		      strspn(e->hash + skip, "0123456789abcdef") == hex);
	}
}

/* ITEM as an lsjson item, listed and as the top directory. */
static void item(struct json_object *it)
{
	struct lz_rclone_entry e;
	char why[160];

	for (int root = 0; root < 2; root++) {
		if (lz_rclone_parse_entry(it, root, &e, why, sizeof(why)) == 0)
			check_entry(&e, root);
		else
			check_line(NULL, 0, why);
		lz_rclone_entry_clear(&e);
	}
}

/* What lz_rclone_list, lz_rclone_stat, the fsinfo probe and error replies take from OBJ. */
static void reply(struct json_object *obj)
{
	struct lz_rclone_entry *entries;
	struct json_object *it;
	size_t count;
	char why[160];

	if (lz_rclone_list_reply(obj, "dir/\n", &log_check, &entries, &count, why, sizeof(why)) ==
	    0) {
		CHECK((count == 0) == (entries == NULL));
		for (size_t i = 0; i < count; i++) {
			check_entry(&entries[i], false);
			for (size_t j = 0; j < i && count <= 512; j++)
				CHECK(strcmp(entries[i].name, entries[j].name) != 0);
		}
		lz_rclone_entries_free(entries, count);
	}
	if (json_object_object_get_ex(obj, "item", &it) && it != NULL)
		item(it);
	(void)lz_rclone_cheap_hash(obj);
	if (json_object_object_get_ex(obj, "error", &it) &&
	    json_object_is_type(it, json_type_string)) {
		char err[256];
		lz_rc_sanitize(err, sizeof(err), json_object_get_string(it));
		check_line(NULL, 0, err);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[160], *text = malloc(size + 1);
	struct json_object *obj;

	if (text == NULL)
		return 0;
	/* Exactly SIZE bytes: a read past the reply is caught. */
	obj = lz_rc_parse_reply((const char *)data, size, why, sizeof(why));
	if (obj != NULL) {
		reply(obj);
		json_object_put(obj);
	}

	memcpy(text, data, size);
	text[size] = '\0';
	obj = json_tokener_parse(text);
	if (json_object_is_type(obj, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(obj); i++)
			item(json_object_array_get_idx(obj, i));
	} else if (json_object_is_type(obj, json_type_object)) {
		item(obj);
		reply(obj);
	}
	json_object_put(obj);

	unsigned port = lz_rcd_serving_port(text);
	CHECK(port <= 65535 && (port == 0 || strstr(text, "127.0.0.1:") != NULL));
	free(text);
	return 0;
}
