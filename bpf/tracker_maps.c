/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the daemon tells the programs (key states, mapped sub-paths, the FUSE
 * connection) and reads back (counters). Every call is one or a few bpf()
 * syscalls on map fds, which the kernel serializes: no lock is needed.
 */
#include "config.h"
#include "tracker_int.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int key_of(const char *s, struct lz_key *k)
{
	size_t len = s ? strlen(s) : 0;

	if (!len)
		return -EINVAL;
	if (len > LZ_TRACKER_KEY_MAX)
		return -ENAMETOOLONG;
	memset(k, 0, sizeof(*k));
	memcpy(k->s, s, len);
	return 0;
}

int lz_tracker_set_state(struct lz_tracker *t, const char *key, enum lz_tracker_state st)
{
	struct lz_key k;
	__u32 v = st;
	int rc;

	if (st != LZ_TRACKER_PENDING && st != LZ_TRACKER_RESOLVED && st != LZ_TRACKER_ABSENT)
		return -EINVAL;
	rc = key_of(key, &k);
	if (rc)
		return rc;
	rc = bpf_map_update_elem(bpf_map__fd(t->skel->maps.resolved), &k, &v, BPF_ANY);
	return rc ? -errno : 0;
}

int lz_tracker_forget(struct lz_tracker *t, const char *key)
{
	struct lz_key k;
	int rc;

	rc = key_of(key, &k);
	if (rc)
		return rc;
	rc = bpf_map_delete_elem(bpf_map__fd(t->skel->maps.resolved), &k);
	return rc ? -errno : 0;
}

int lz_tracker_forget_under(struct lz_tracker *t, const char *key)
{
	int fd = bpf_map__fd(t->skel->maps.resolved);
	size_t len = key ? strlen(key) : 0, n = 0, cap = 0;
	struct lz_key k, next, *found = NULL;
	int rc = key_of(key, &k);

	if (rc)
		return rc;
	/* Collected first: deleting while walking a hash map may restart the walk. */
	for (void *at = NULL; bpf_map_get_next_key(fd, at, &next) == 0; at = &k) {
		k = next;
		if (strncmp(next.s, key, len) != 0 || (next.s[len] != '\0' && next.s[len] != '/'))
			continue;
		if (n == cap) {
			struct lz_key *more =
				realloc(found, (cap = cap ? cap * 2 : 64) * sizeof(*more));
			if (more == NULL)
				break;
			found = more;
		}
		found[n++] = next;
	}
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(fd, &found[i]);
	free(found);
	return 0;
}

int lz_tracker_add_mapped(struct lz_tracker *t, const char *relpath)
{
	int fd = bpf_map__fd(t->skel->maps.mapped);
	size_t len = relpath ? strlen(relpath) : 0;
	struct lz_lpm_key k;
	__u32 v = len;

	if (!len || relpath[0] == '/' || relpath[len - 1] == '/')
		return -EINVAL;
	if (len > LZ_TRACKER_KEY_MAX)
		return -ENAMETOOLONG;
	/* "a/b/c/" matches what is below it, "a/b/c\0" the path itself. */
	memset(&k, 0, sizeof(k));
	memcpy(k.data, relpath, len);
	k.prefixlen = (len + 1) * 8;
	k.data[len] = '/';
	if (bpf_map_update_elem(fd, &k, &v, BPF_ANY) != 0)
		return -errno;
	k.data[len] = 0;
	if (bpf_map_update_elem(fd, &k, &v, BPF_ANY) != 0)
		return -errno;
	__atomic_store_n(&t->skel->bss->have_mapped, 1, __ATOMIC_RELAXED);
	return 0;
}

int lz_tracker_clear_mapped(struct lz_tracker *t)
{
	int fd = bpf_map__fd(t->skel->maps.mapped);
	struct lz_lpm_key k;

	__atomic_store_n(&t->skel->bss->have_mapped, 0, __ATOMIC_RELAXED);
	/* Deleting the first key each time: iterating while deleting would skip some. */
	while (bpf_map_get_next_key(fd, NULL, &k) == 0)
		if (bpf_map_delete_elem(fd, &k) != 0)
			return -errno;
	return errno == ENOENT ? 0 : -errno;
}

int lz_tracker_set_fuse_connection(struct lz_tracker *t, unsigned minor)
{
	/* Anonymous superblock devices have major 0: their dev_t is the minor. */
	if (minor >= (1U << 20))
		return -EINVAL;
	if (!t->fuse_available && minor)
		return -ENOTSUP;
	__atomic_store_n(&t->skel->bss->fuse_dev, minor, __ATOMIC_RELAXED);
	return 0;
}

static void add_op(struct lz_tracker_fuse_op *to, const struct lz_fuse_op *o)
{
	int b;

	to->count += o->count;
	to->ended += o->ended;
	to->errors += o->errors;
	to->total_ns += o->total_ns;
	for (b = 0; b < LZ_LAT_BUCKETS; b++)
		to->hist[b] += o->hist[b];
}

int lz_tracker_stats(struct lz_tracker *t, struct lz_tracker_stats *out)
{
	int ncpu = libbpf_num_possible_cpus(), rc = 0, cpu;
	struct lz_counters *c = NULL;
	struct lz_fuse_op *o = NULL;
	__u32 zero = 0, slot;

	memset(out, 0, sizeof(*out));
	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	c = calloc(ncpu, sizeof(*c));
	o = calloc(ncpu, sizeof(*o));
	if (!c || !o) {
		rc = -ENOMEM;
		goto out;
	}
	if (bpf_map_lookup_elem(bpf_map__fd(t->skel->maps.counters), &zero, c) != 0) {
		rc = -errno;
		goto out;
	}
	for (cpu = 0; cpu < ncpu; cpu++) {
		out->hits += c[cpu].hits;
		out->suppressed += c[cpu].suppressed;
		out->events += c[cpu].events;
		out->lost += c[cpu].lost;
		out->too_long += c[cpu].too_long;
		out->skipped += c[cpu].skipped;
	}
	out->fuse_available = t->fuse_available;
	out->fuse_connection = __atomic_load_n(&t->skel->bss->fuse_dev, __ATOMIC_RELAXED);
	for (slot = 0; slot <= LZ_FUSE_OPS; slot++) {
		if (bpf_map_lookup_elem(bpf_map__fd(t->skel->maps.fuse_ops), &slot, o) != 0) {
			rc = -errno;
			goto out;
		}
		for (cpu = 0; cpu < ncpu; cpu++) {
			add_op(&out->fuse_ops[slot], &o[cpu]);
			add_op(&out->fuse_all, &o[cpu]);
		}
	}
out:
	free(c);
	free(o);
	return rc;
}
