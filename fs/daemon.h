/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * One lazyfs process and the mount it serves. It starts in one of three
 * ways: fresh (it mounts), or taking a mount over from a live upgrade's old
 * daemon or from a supervisor that kept a crashed daemon's connection; then
 * it serves until the mount ends, handing it over when asked; then it stops
 * what it started, in the order the parts need.
 */
#ifndef LAZYFS_DAEMON_H
#define LAZYFS_DAEMON_H

#include <stdbool.h>

#include "options.h"
#include "fscore/fs.h"

struct fuse_session;
struct lz_control;
struct lz_defer;
struct lz_inflight;
struct lz_nodes;
struct lz_remote;
struct lz_takeover;
struct lz_upgrade;

struct lz_daemon {
	struct lz_options opts;
	struct lz_fs fs;
	struct fuse_session *se;
	struct lz_remote *remote;     /* remote=: the cache store and fetcher */
	struct lz_upgrade *upgrade;   /* what a live upgrade needs */
	struct lz_control *control;   /* lazyfsctl's socket, or NULL */
	struct lz_takeover *takeover; /* while taking a mount over */
	bool live_upgrade; /* the takeover is a live upgrade's (pins came over), not a restart's */
	struct lz_defer *defer; /* requests that may wait on a slow store */
	/* Opens of remote objects not in the cache: their fetches (fs/open_cold.c). */
	struct lz_defer *fetches;
	struct lz_waits fetch_waits;
	struct lz_track *retired;     /* trackers closed by live upgrades that failed */
	struct lz_inflight *inflight; /* requests in flight, kept by the keeper; or NULL */
	struct lz_nodes *nodes;	      /* node ids of underlay files, kept by the keeper; or NULL */
	int revive_anchor;	      /* the underlay's root, to reopen file handles against */
	unsigned fuse_minor;	      /* the connection the FUSE tracepoints name */
	bool mounted;		      /* this process mounted (a fresh start) */
	bool taken_over;	      /* attached to a connection another process mounted */
	bool served;		      /* served that connection: the mount ends with us */
	bool handlers_set;	      /* libfuse's signal handlers */
	char why[512];		      /* told to the old daemon when a takeover fails */
};

/* start.c: everything up to serving; 0, or -1 (logged). TAKEOVER_SOCK: see takeover.h. */
int lz_daemon_start(struct lz_daemon *d, int takeover_sock);
/* serve.c: serves until the mount ends or a signal stops it; the exit status. */
int lz_daemon_serve(struct lz_daemon *d);
/*
 * serve.c: stops and frees what lz_daemon_start made (also after it failed
 * half way): true. False when work stuck on a store that does not answer
 * still uses it: nothing was freed and the process must _exit now.
 */
bool lz_daemon_stop(struct lz_daemon *d);
/* serve.c: SIGINT and SIGTERM end the loop, SIGHUP reloads. 0 or -1. */
int lz_daemon_set_signals(struct lz_daemon *d);
/* serve.c: Type=notify units: systemd starts what is ordered after us only then. */
void lz_daemon_notify(const char *state);

#endif
