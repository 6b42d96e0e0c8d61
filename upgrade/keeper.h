/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The keeper: the process a lazyfs command leaves holding its mount. It
 * starts the worker (this program again, marked by LAZYFS_KEEPER_FD), which
 * mounts and serves; it keeps what the worker stores with it (the /dev/fuse
 * connection, the underlay, the state a takeover needs), so the mount
 * outlives the worker; and when the worker dies (a signal, an abort, an exit
 * with an error) it starts a new one that takes the same mount over, while
 * requests wait in the kernel. When the worker cannot stay up (RESTART_LIMIT
 * restarts within RESTART_WINDOW seconds) it fails open: it detaches the
 * mount, so the directory that was there before shows again, removes what
 * the workers left behind, and exits non-zero.
 *
 * It is small and boring on purpose, so it does not fail the way a worker
 * can: no FUSE request, image, cache, remote, BPF program or user input
 * reaches it; it reads only its command line and the worker's one-line
 * messages, allocates nothing while it runs, and waits in one poll loop.
 *
 * Channel (a SOCK_SEQPACKET pair; the worker's end at LAZYFS_KEEPER_FD):
 * the worker sends "store NAME" with a descriptor (SCM_RIGHTS), "unstore"
 * once it has unmounted, and "ready PID" when PID serves (a new worker
 * after a live upgrade sends it too). A worker the keeper restarts gets the
 * stored descriptors from descriptor 3 on, named in LAZYFS_RESTART_FDS
 * ("NAME:FD,..."), and LAZYFS_KEEPER_PID and LAZYFS_RESTARTS for status.
 */
#ifndef LAZYFS_KEEPER_H
#define LAZYFS_KEEPER_H

#include <stdbool.h>

#define LZ_KEEPER_ENV	   "LAZYFS_KEEPER_FD"
#define LZ_KEEPER_PID_ENV  "LAZYFS_KEEPER_PID"
#define LZ_RESTARTS_ENV	   "LAZYFS_RESTARTS"
#define LZ_RESTART_FDS_ENV "LAZYFS_RESTART_FDS"
/* Set to 1 for a worker started after one that SIGKILL ended (an operator, the OOM killer). */
#define LZ_WORKER_KILLED_ENV "LAZYFS_WORKER_KILLED"
#define LZ_KEEPER_MSG_MAX    256

struct lz_keeper_config {
	char *const *argv;	/* the command line, for every worker */
	const char *mountpoint; /* absolute */
	bool foreground;	/* else the caller returns once the mount serves */
	unsigned restart_limit; /* restarts within restart_window before failing open */
	double restart_window;	/* seconds */
};

/* Runs the keeper until the mount ends or fails open; the process's exit status. */
int lz_keeper_run(const struct lz_keeper_config *cfg);

#endif
