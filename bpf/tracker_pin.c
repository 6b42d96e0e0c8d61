/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Pinning the maps, so bpftool and lazyfsctl can look at them while the
 * daemon runs. Pins are only a window: the daemon holds the maps through its
 * own fds, and removes the pins when it stops.
 */
#include "config.h"
#include "tracker_int.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define BPFFS "/sys/fs/bpf"

static const char *const pin_names[LZ_PIN_MAPS] = { "resolved", "mapped", "counters", "fuse_ops" };

static struct bpf_map *pin_map(struct lz_tracker *t, int i)
{
	struct bpf_map *maps[LZ_PIN_MAPS] = { t->skel->maps.resolved, t->skel->maps.mapped,
					      t->skel->maps.counters, t->skel->maps.fuse_ops };
	return maps[i];
}

static int ensure_bpffs(char *err, size_t errlen)
{
	struct statfs sf;

	if (statfs(BPFFS, &sf) == 0 && sf.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", BPFFS, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
		return lz_tracker_fail(err, errlen, -errno, "cannot mount bpffs on %s: %s", BPFFS,
				       strerror(errno));
	return 0;
}

/* mkdir -p, remembering what it made so close removes exactly that. */
static int make_dirs(struct lz_tracker *t, char *err, size_t errlen)
{
	char path[PATH_MAX];
	char *p;

	if (snprintf(path, sizeof(path), "%s", t->pin_dir) >= (int)sizeof(path))
		return lz_tracker_fail(err, errlen, -ENAMETOOLONG, "pin dir too long");
	for (p = path + 1;; p++) {
		if (*p != '/' && *p != 0)
			continue;
		char c = *p;
		*p = 0;
		if (mkdir(path, 0700) == 0) {
			if (t->ncreated == LZ_PIN_DEPTH ||
			    !(t->created[t->ncreated] = strdup(path)))
				return lz_tracker_fail(err, errlen, -ENOMEM, "pin dir too deep");
			t->ncreated++;
		} else if (errno != EEXIST) {
			return lz_tracker_fail(err, errlen, -errno, "mkdir %s: %s", path,
					       strerror(errno));
		}
		*p = c;
		if (!c)
			return 0;
	}
}

int lz_tracker_pin(struct lz_tracker *t, const char *pin_dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int i, rc;

	if (pin_dir[0] != '/')
		return lz_tracker_fail(err, errlen, -EINVAL, "pin dir %s is not absolute", pin_dir);
	if (strncmp(pin_dir, BPFFS "/", sizeof(BPFFS)) == 0) {
		/* The kernel refuses them (EPERM): reserved for its own files. */
		if (strchr(pin_dir + sizeof(BPFFS), '.'))
			return lz_tracker_fail(err, errlen, -EINVAL,
					       "pin dir %s: bpffs names cannot contain '.'",
					       pin_dir);
		rc = ensure_bpffs(err, errlen);
		if (rc)
			return rc;
	}
	t->pin_dir = strdup(pin_dir);
	if (!t->pin_dir)
		return lz_tracker_fail(err, errlen, -ENOMEM, "out of memory");
	rc = make_dirs(t, err, errlen);
	if (rc)
		return rc;
	if (chmod(t->pin_dir, 0700) != 0)
		return lz_tracker_fail(err, errlen, -errno, "chmod %s: %s", t->pin_dir,
				       strerror(errno));
	for (i = 0; i < LZ_PIN_MAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", t->pin_dir, pin_names[i]);
		/* A daemon that died left its pins: they name maps nobody uses. */
		if (unlink(path) != 0 && errno != ENOENT)
			return lz_tracker_fail(err, errlen, -errno, "unlink stale %s: %s", path,
					       strerror(errno));
		if (bpf_obj_pin(bpf_map__fd(pin_map(t, i)), path) != 0)
			return lz_tracker_fail(err, errlen, -errno, "pin %s: %s", path,
					       strerror(errno));
		t->pinned[i] = true;
	}
	return 0;
}

void lz_tracker_unpin(struct lz_tracker *t)
{
	char path[PATH_MAX];
	int i;

	if (t == NULL || !t->pin_dir)
		return;
	for (i = 0; i < LZ_PIN_MAPS; i++) {
		if (!t->pinned[i])
			continue;
		snprintf(path, sizeof(path), "%s/%s", t->pin_dir, pin_names[i]);
		unlink(path);
		t->pinned[i] = false;
	}
	rmdir(t->pin_dir);
	/* Parents shared with other mounts' pin dirs stay while they are not empty. */
	while (t->ncreated > 0) {
		t->ncreated--;
		rmdir(t->created[t->ncreated]);
		free(t->created[t->ncreated]);
	}
	free(t->pin_dir);
	t->pin_dir = NULL;
}
