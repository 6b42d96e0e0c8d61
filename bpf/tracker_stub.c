/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The tracker when configured with --disable-bpf: the same API, so the daemon
 * links it either way and treats it as a tracker that cannot load.
 */
#include "config.h"
#include "tracker.h"

#include <errno.h>
#include <stdio.h>

int lz_tracker_open(const struct lz_tracker_config *cfg, struct lz_tracker **out, char *err,
		    size_t errlen)
{
	*out = NULL;
	if (errlen)
		snprintf(err, errlen, "built without eBPF support (configure --disable-bpf)");
	return -ENOTSUP;
}

int lz_tracker_start(struct lz_tracker *t)
{
	return -ENOTSUP;
}

int lz_tracker_set_state(struct lz_tracker *t, const char *key, enum lz_tracker_state st)
{
	return -ENOTSUP;
}

int lz_tracker_forget(struct lz_tracker *t, const char *key)
{
	return -ENOTSUP;
}

int lz_tracker_forget_under(struct lz_tracker *t, const char *key)
{
	return -ENOTSUP;
}

int lz_tracker_add_mapped(struct lz_tracker *t, const char *relpath)
{
	return -ENOTSUP;
}

int lz_tracker_clear_mapped(struct lz_tracker *t)
{
	return -ENOTSUP;
}

int lz_tracker_set_fuse_connection(struct lz_tracker *t, unsigned minor)
{
	return -ENOTSUP;
}

int lz_tracker_stats(struct lz_tracker *t, struct lz_tracker_stats *out)
{
	return -ENOTSUP;
}

void lz_tracker_close(struct lz_tracker *t)
{
}

void lz_tracker_unpin(struct lz_tracker *t)
{
}
