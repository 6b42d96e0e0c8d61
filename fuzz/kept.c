/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The records the keeper keeps across a worker's crash (upgrade/nodes.c,
 * upgrade/inflight.c), as the crash may leave them: the dead worker is
 * played through the API, its memfd damaged where the input says (a crash
 * that came from a wild write may have written anywhere in it), then the
 * record is opened as the next worker opens it. The first byte picks the
 * record.
 *
 * Node record: what comes back never overruns the caller (a handle of at
 * most LZ_NODES_HANDLE_MAX bytes, a path and an image name terminated within
 * their size); an undamaged entry comes back as it was set; the image a
 * name is found under is the last source recorded with that name; the
 * record still takes new node ids unless its counts were damaged.
 *
 * In-flight record: every slot is empty once it is opened; a request is
 * answered EIO only when it was in flight at the crash (or, after a
 * SIGKILL, already poison), at most as many times as the suspects name it,
 * and a request never seen, never; the sources noted come back.
 */
#include "config.h"
#include "check.h"
#include "upgrade/inflight.h"
#include "upgrade/inflight_int.h"
#include "upgrade/nodes.h"
#include "upgrade/nodes_int.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYS	     8
#define SOURCES	     4
#define FAST_SOURCES 64 /* sources_high kept below this unless the input asks for more */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input, read front to back; zeros once it runs out. */
struct in {
	const uint8_t *p;
	size_t n;
};

static void take(struct in *in, void *out, size_t len)
{
	size_t k = len < in->n ? len : in->n;

	memcpy(out, in->p, k);
	memset((char *)out + k, 0, len - k);
	in->p += k;
	in->n -= k;
}

static uint8_t u8(struct in *in)
{
	uint8_t v;

	take(in, &v, 1);
	return v;
}

static uint32_t u32(struct in *in)
{
	uint32_t v;

	take(in, &v, sizeof(v));
	return v;
}

static uint64_t u64(struct in *in)
{
	uint64_t v;

	take(in, &v, sizeof(v));
	return v;
}

/* A string of 1 to MAX - 1 printable bytes. */
static void text(struct in *in, char *out, size_t max)
{
	size_t len = 1 + u8(in) % (max - 1);

	for (size_t i = 0; i < len; i++)
		out[i] = (char)('!' + u8(in) % 94);
	out[len] = '\0';
}

static void *map_fd(int fd, size_t *size)
{
	struct stat st;

	CHECK(fstat(fd, &st) == 0 && st.st_size > 0);
	*size = (size_t)st.st_size;
	void *p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	return p;
}

/* What the dead worker recorded, and which of it the harness damaged. */
struct key {
	uint64_t id;
	struct lz_node_record r;
	unsigned char handle[LZ_NODES_HANDLE_MAX];
	uint32_t bytes;
	int32_t type;
	char path[64];
	bool has_path, damaged, path_damaged;
};

struct source {
	unsigned number;
	char name[24];
	struct lz_image_file file;
	bool damaged;
};

struct nodes_case {
	struct key keys[KEYS];
	size_t nkeys;
	struct source sources[SOURCES];
	size_t nsources;
	struct lz_nodes_map map;
	unsigned high; /* the highest source named, as the record says after the damage */
	bool heads_damaged, map_damaged, many_sources;
};

static struct file_handle *new_handle(void)
{
	/* Exactly what a caller holds: ASan sees any byte written past it. */
	struct file_handle *h = malloc(sizeof(*h) + LZ_NODES_HANDLE_MAX);

	CHECK(h != NULL);
	return h;
}

static bool known_key(const struct nodes_case *c, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (c->keys[i].id == id)
			return true;
	return false;
}

static void record_nodes(struct lz_nodes *n, struct in *in, struct nodes_case *c)
{
	c->nkeys = 1 + u8(in) % KEYS;
	for (size_t i = 0; i < c->nkeys; i++) {
		struct key *k = &c->keys[i];
		k->id = 2 + (u64(in) >> 1); /* 0 and 1 are the table's own */
		while (known_key(c, i, k->id))
			k->id++;
		k->r = (struct lz_node_record){ 1 + u8(in), u8(in) };
		k->bytes = u8(in) % (LZ_NODES_HANDLE_MAX + 1);
		k->type = (int32_t)u32(in);
		take(in, k->handle, k->bytes);
		struct file_handle *h = new_handle();
		h->handle_bytes = k->bytes;
		h->handle_type = k->type;
		memcpy(h->f_handle, k->handle, k->bytes);
		lz_nodes_set(n, k->id, &k->r, h);
		free(h);
		if ((k->has_path = u8(in) & 1)) {
			text(in, k->path, sizeof(k->path));
			lz_nodes_set_path(n, k->id, k->path);
		}
	}
	c->nsources = u8(in) % (SOURCES + 1);
	for (size_t i = 0; i < c->nsources; i++) {
		struct source *s = &c->sources[i];
		s->number = 1 + u8(in) % 8;
		if (s->number > c->high)
			c->high = s->number;
		text(in, s->name, sizeof(s->name));
		take(in, &s->file, sizeof(s->file));
		lz_nodes_set_source(n, s->number, s->name, &s->file);
		/* Only the last naming of a number counts; named alike again, its file stays. */
		for (size_t j = 0; j < i; j++) {
			if (c->sources[j].number != s->number)
				continue;
			if (strcmp(c->sources[j].name, s->name) == 0)
				s->file = c->sources[j].file;
			c->sources[j].number = 0;
		}
	}
	take(in, &c->map, sizeof(c->map));
	lz_nodes_note_map(n, &c->map);
}

/* Damages the record in its memfd as the input says. */
static void damage_nodes(int fd, struct in *in, struct nodes_case *c)
{
	size_t size;
	struct lz_nodes_region *r = map_fd(fd, &size);
	struct lz_slots records = { &r->records_head, (unsigned char *)r->records,
				    sizeof(struct lz_nodes_rec), LZ_NODES_MAX };
	uint8_t what = u8(in);

	CHECK(size == sizeof(*r));
	if ((c->heads_damaged = what & 1)) {
		take(in, &r->records_head, sizeof(r->records_head));
		take(in, &r->paths_head, sizeof(r->paths_head));
	}
	if (what & 2) {
		/* Rarely: a high mark past every source costs a page a source to read. */
		c->many_sources = (what & 0x34) == 0x34;
		r->sources_high = u32(in);
		if (!c->many_sources)
			r->sources_high %= FAST_SOURCES;
		c->high = r->sources_high;
	}
	if ((c->map_damaged = what & 8)) {
		r->map_noted = u32(in);
		take(in, &r->map, sizeof(r->map));
	}
	for (size_t i = 0; i < c->nkeys; i++) {
		struct key *k = &c->keys[i];
		struct lz_nodes_rec *rec = lz_slots_find(&records, k->id);
		if (rec != NULL && (k->damaged = u8(in) & 1))
			take(in, (char *)rec + sizeof(rec->nodeid),
			     sizeof(*rec) - sizeof(rec->nodeid));
		if (k->has_path && (k->path_damaged = u8(in) & 1)) {
			struct lz_slots paths = { &r->paths_head, (unsigned char *)r->paths,
						  sizeof(struct lz_nodes_path_rec),
						  LZ_NODES_PATHS };
			struct lz_nodes_path_rec *p = lz_slots_find(&paths, k->id);
			if (p != NULL)
				memset(p->path, 'x', sizeof(p->path)); /* no NUL left */
		}
	}
	for (size_t i = 0; i < c->nsources; i++) {
		struct source *s = &c->sources[i];
		if (s->number != 0 && (s->damaged = u8(in) & 1)) {
			memset(r->source_image[s->number].name, 'y', LZ_NODES_NAME_MAX);
			take(in, &r->source_image[s->number].file, sizeof(s->file));
		}
	}
	munmap(r, size);
}

/* The last source of the record named NAME, looked through one by one. */
static unsigned last_source(struct lz_nodes *n, const char *name, unsigned high)
{
	char got[LZ_NODES_NAME_MAX];
	struct lz_image_file file;
	unsigned last = 0;

	for (unsigned s = 1; s <= high && s < LZ_NODES_SOURCES; s++)
		if (lz_nodes_source_image(n, s, got, &file) && strcmp(got, name) == 0)
			last = s;
	return last;
}

static void check_key(struct lz_nodes *n, const struct key *k)
{
	struct file_handle *h = new_handle();
	char *path = malloc(LZ_NODES_PATH_MAX);
	struct lz_node_record r;

	CHECK(path != NULL);
	bool got = lz_nodes_get(n, k->id, &r, h);
	CHECK(!got || h->handle_bytes <= LZ_NODES_HANDLE_MAX);
	/* A probe never looks at the counts: an undamaged entry is found whatever they say. */
	CHECK(k->damaged || (got && r.nlookup == k->r.nlookup && r.map_index == k->r.map_index));
	CHECK(k->damaged || (h->handle_bytes == k->bytes && h->handle_type == k->type &&
			     memcmp(h->f_handle, k->handle, k->bytes) == 0));
	got = lz_nodes_get_path(n, k->id, path);
	CHECK(!got || memchr(path, '\0', LZ_NODES_PATH_MAX) != NULL);
	CHECK(!k->has_path || k->path_damaged || (got && strcmp(path, k->path) == 0));
	free(path);
	free(h);
}

/* Which image each source held, and by name the last source of each. */
static void check_sources(struct lz_nodes *n, const struct nodes_case *c)
{
	char name[LZ_NODES_NAME_MAX];
	struct lz_image_file file;

	for (size_t i = 0; i < c->nsources; i++) {
		const struct source *s = &c->sources[i];
		if (s->number == 0)
			continue;
		bool got = lz_nodes_source_image(n, s->number, name, &file);
		CHECK(!got || memchr(name, '\0', sizeof(name)) != NULL);
		CHECK(s->damaged || (got && strcmp(name, s->name) == 0 &&
				     memcmp(&file, &s->file, sizeof(file)) == 0));
		if (got && !c->many_sources)
			CHECK(lz_nodes_image_source(n, name) == last_source(n, name, c->high));
	}
	lz_nodes_clear_sources(n);
	for (size_t i = 0; i < c->nsources; i++)
		CHECK(lz_nodes_image_source(n, c->sources[i].name) == 0);
}

static void nodes(struct in *in)
{
	struct nodes_case c = { 0 };
	struct lz_nodes *n = lz_nodes_open(-1);
	struct lz_nodes_map map;

	CHECK(n != NULL && !lz_nodes_kept(n));
	record_nodes(n, in, &c);
	int kept = fcntl(lz_nodes_fd(n), F_DUPFD_CLOEXEC, 0);
	CHECK(kept >= 0);
	lz_nodes_close(n); /* the crash */
	damage_nodes(kept, in, &c);
	n = lz_nodes_open(kept);
	CHECK(n != NULL && lz_nodes_kept(n));
	for (size_t i = 0; i < c.nkeys; i++)
		check_key(n, &c.keys[i]);
	check_sources(n, &c);
	bool noted = lz_nodes_noted_map(n, &map);
	CHECK(c.map_damaged || (noted && memcmp(&map, &c.map, sizeof(map)) == 0));
	/* The next worker records on. */
	struct key fresh = { .id = 1, .r = { 1, 0 } };
	while (known_key(&c, c.nkeys, ++fresh.id))
		;
	struct file_handle *h = new_handle();
	h->handle_bytes = 0;
	h->handle_type = 0;
	lz_nodes_set(n, fresh.id, &fresh.r, h);
	CHECK(c.heads_damaged || lz_nodes_get(n, fresh.id, &fresh.r, h));
	free(h);
	lz_nodes_close(n);
}

/* What the dead worker left in flight, and the suspects, as damaged. */
struct inflight_case {
	uint64_t sigs[8];
	size_t nsigs;
	uint32_t sources;
	uint64_t slots[LZ_INFLIGHT_SLOTS];
	struct lz_inflight_suspect suspects[LZ_INFLIGHT_SUSPECTS];
	bool killed;
};

static uint64_t a_sig(struct in *in, const struct inflight_case *c)
{
	uint8_t how = u8(in);
	uint64_t sig = c->nsigs > 0 && how & 1 ? c->sigs[(how >> 1) % c->nsigs] : u64(in);

	return sig != 0 ? sig : 1; /* 0 is a free slot: never a signature */
}

static void damage_inflight(int fd, struct in *in, struct inflight_case *c)
{
	size_t size;
	struct lz_inflight_region *r = map_fd(fd, &size);
	uint8_t what = u8(in);

	CHECK(size == sizeof(*r));
	if (what & 1)
		atomic_store(&r->sources, u32(in));
	size_t n = u8(in) % (LZ_INFLIGHT_SUSPECTS + 1);
	for (size_t i = 0; i < n; i++) {
		struct lz_inflight_suspect *s = &r->suspects[u8(in) % LZ_INFLIGHT_SUSPECTS];
		s->sig = u8(in) & 1 ? 0 : a_sig(in, c);
		s->crashes = u8(in) % 4;
		s->strikes = u8(in) % 3;
		if (s->crashes == 3)
			s->crashes = u32(in);
	}
	for (size_t i = 0, slots = u8(in) % 8; i < slots; i++)
		atomic_store(&r->slots[u32(in) % LZ_INFLIGHT_SLOTS], a_sig(in, c));
	c->sources = atomic_load(&r->sources);
	for (size_t i = 0; i < LZ_INFLIGHT_SLOTS; i++)
		c->slots[i] = atomic_load(&r->slots[i]);
	memcpy(c->suspects, r->suspects, sizeof(c->suspects));
	munmap(r, size);
}

static bool was_in_flight(const struct inflight_case *c, uint64_t sig)
{
	for (size_t i = 0; i < LZ_INFLIGHT_SLOTS; i++)
		if (c->slots[i] == sig)
			return true;
	return false;
}

/* How many suspects named SIG, and how many of those were poison already. */
static unsigned suspects_of(const struct inflight_case *c, uint64_t sig, unsigned *poison)
{
	unsigned n = 0;

	*poison = 0;
	for (size_t i = 0; i < LZ_INFLIGHT_SUSPECTS; i++) {
		const struct lz_inflight_suspect *s = &c->suspects[i];
		if (s->sig != sig)
			continue;
		n++;
		*poison += s->crashes >= (s->strikes > 0 ? 1u : LZ_INFLIGHT_POISON_AFTER);
	}
	return n;
}

/* SIG asked for until it is served: the times it was answered EIO, within what allows it. */
static unsigned ask(struct lz_inflight *f, const struct inflight_case *c, uint64_t sig)
{
	unsigned poison_before, named = suspects_of(c, sig, &poison_before), eio = 0;

	for (unsigned i = 0; i <= named; i++) {
		int slot = lz_inflight_enter(f, sig);
		if (slot != LZ_INFLIGHT_POISON) {
			lz_inflight_leave(f, slot);
			break;
		}
		eio++;
	}
	CHECK(eio <= named);
	CHECK(eio == 0 || (c->killed ? eio <= poison_before : was_in_flight(c, sig)));
	return eio;
}

static void inflight(struct in *in)
{
	struct inflight_case c = { 0 };
	struct lz_inflight *f = lz_inflight_open(-1, false);

	CHECK(f != NULL && lz_inflight_sources(f) == 0);
	c.nsigs = 1 + u8(in) % 8;
	for (size_t i = 0; i < c.nsigs; i++) {
		c.sigs[i] = a_sig(in, &c);
		int slot = lz_inflight_enter(f, c.sigs[i]);
		CHECK(slot >= 0);
		if (u8(in) & 1)
			lz_inflight_leave(f, slot); /* answered before the crash */
	}
	lz_inflight_note_sources(f, u32(in));
	int kept = fcntl(lz_inflight_fd(f), F_DUPFD_CLOEXEC, 0);
	CHECK(kept >= 0);
	lz_inflight_close(f); /* the crash */
	damage_inflight(kept, in, &c);
	c.killed = u8(in) & 1;
	f = lz_inflight_open(kept, c.killed);
	CHECK(f != NULL && lz_inflight_sources(f) == c.sources);
	/* Judged: nothing is in flight for the new worker. */
	size_t size;
	struct lz_inflight_region *r = map_fd(lz_inflight_fd(f), &size);
	for (size_t i = 0; i < LZ_INFLIGHT_SLOTS; i++)
		CHECK(atomic_load(&r->slots[i]) == 0);
	munmap(r, size);
	unsigned long long eio = 0;
	for (size_t i = 0; i < LZ_INFLIGHT_SLOTS; i++)
		if (c.slots[i] != 0)
			eio += ask(f, &c, c.slots[i]);
	for (size_t i = 0; i < LZ_INFLIGHT_SUSPECTS; i++)
		if (c.suspects[i].sig != 0)
			eio += ask(f, &c, c.suspects[i].sig);
	/* A request never seen is served. */
	uint64_t unseen = 2;
	while (was_in_flight(&c, unseen) || suspects_of(&c, unseen, &(unsigned){ 0 }) > 0)
		unseen++;
	int slot = lz_inflight_enter(f, unseen);
	CHECK(slot != LZ_INFLIGHT_POISON);
	lz_inflight_leave(f, slot);
	CHECK(lz_inflight_poisoned(f) == eio);
	lz_inflight_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };

	if (size == 0)
		return 0;
	if (u8(&in) & 1)
		inflight(&in);
	else
		nodes(&in);
	return 0;
}
