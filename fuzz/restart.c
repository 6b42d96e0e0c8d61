/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What a restart passes between processes (upgrade/keeper_msg.c): a
 * worker's message to the keeper and the descriptor list the keeper hands
 * the next worker. The input is tried as both. A message is a store exactly
 * when it reads "store NAME" with a name that fits a slot and holds no ',';
 * "ready" names a process only with a positive number written as such. An
 * item of a list let through has a descriptor of 3 or more and such a name.
 * And every name the keeper takes, written into the list as the keeper
 * writes it (with the names parsed from the input), comes back to the next
 * worker unchanged, with its descriptor.
 */
#include "config.h"
#include "check.h"
#include "upgrade/keeper_msg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ITEMS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *name)
{
	CHECK(name[0] != '\0' && strlen(name) < LZ_KEEPER_NAME_MAX && strchr(name, ',') == NULL);
}

static void message(const char *text, struct lz_kept_fd *names, size_t *n)
{
	struct lz_keeper_msg m;

	lz_keeper_msg_parse(text, &m);
	switch (m.kind) {
	case LZ_KEEPER_STORE:
		CHECK(strncmp(text, "store ", 6) == 0 && m.name == text + 6);
		check_name(m.name);
		snprintf(names[*n].name, sizeof(names[*n].name), "%s", m.name);
		names[(*n)++].fd = 3;
		break;
	case LZ_KEEPER_UNSTORE:
		CHECK(strcmp(text, "unstore") == 0);
		break;
	case LZ_KEEPER_READY: {
		char again[32];
		CHECK(strncmp(text, "ready ", 6) == 0 && m.pid >= 0);
		snprintf(again, sizeof(again), "%ld", m.pid);
		CHECK(m.pid == 0 || strcmp(again, text + 6) == 0);
		break;
	}
	case LZ_KEEPER_OTHER:
		CHECK(strncmp(text, "ready ", 6) != 0 && strcmp(text, "unstore") != 0);
		break;
	}
}

/* ITEMS written as the keeper writes them, parsed as the worker parses them: the same. */
static void round_trip(const struct lz_kept_fd *items, size_t n)
{
	char list[LZ_KEEPER_FDS_MAX] = "";
	struct lz_kept_fd back[ITEMS];
	size_t fit = 0;

	for (size_t i = 0; i < n; i++) {
		char item[LZ_KEEPER_NAME_MAX + 16];
		int len = snprintf(item, sizeof(item), ",%s:%d", items[i].name, items[i].fd);
		if (strlen(list) + (size_t)len >= sizeof(list))
			break; /* the keeper's five fixed names always fit */
		lz_keeper_fds_add(list, sizeof(list), items[i].name, items[i].fd);
		fit++;
	}
	CHECK(lz_keeper_fds_parse(list, back, ITEMS) == fit);
	for (size_t i = 0; i < fit; i++)
		CHECK(strcmp(back[i].name, items[i].name) == 0 && back[i].fd == items[i].fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lz_kept_fd items[ITEMS + 1];
	char *text = malloc(size + 1);

	CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	size_t n = lz_keeper_fds_parse(text, items, ITEMS);
	CHECK(n <= ITEMS && (n == 0 || strlen(text) < LZ_KEEPER_FDS_MAX));
	for (size_t i = 0; i < n; i++) {
		check_name(items[i].name);
		CHECK(items[i].fd >= 3);
	}
	message(text, items, &n);
	for (size_t i = 0; i < n; i++)
		items[i].fd = 3 + (int)i;
	round_trip(items, n);
	free(text);
	return 0;
}
