/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The settings of one lazyfs mount, validated: what the layers below the
 * FUSE glue read (fs/options.c fills it from the command line). Strings are
 * owned by whoever filled it; nothing here changes while the mount serves.
 */
#ifndef LAZYFS_SETTINGS_H
#define LAZYFS_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

enum lz_open_mode { LZ_OPEN_PASSTHROUGH, LZ_OPEN_CACHED };
enum lz_backend { LZ_BACKEND_AUTO, LZ_BACKEND_KERNEL, LZ_BACKEND_SQUASHFUSE };
enum lz_bpf_mode { LZ_BPF_AUTO, LZ_BPF_ON, LZ_BPF_OFF };

struct lz_settings {
	char *source; /* accepted for mount(8), otherwise unused */
	char *mountpoint;
	char *underlay; /* NULL: the mountpoint's own contents */
	enum lz_open_mode open_mode;
	double underlay_timeout; /* entry, attr and negative-entry timeout */
	char *images;		 /* directory of N.sqfs images, or NULL */
	char *map;		 /* map file of nested image paths, or NULL */
	char *warm;	      /* entries pinned in the background once the mount serves, or NULL */
	char *remote;	      /* rclone remote (REMOTE:PATH), or NULL */
	char *rclone_config;  /* rclone's config file for the remote, or NULL */
	char *rclone_user;    /* the user the rclone child runs as (a root daemon's), or NULL */
	bool remote_objects;  /* remote_mode=objects; else the remote holds N.sqfs images */
	char *cache;	      /* local cache directory */
	char *metrics;	      /* loopback ADDR:PORT for Prometheus, or NULL */
	bool metrics_remote;  /* metrics may listen on a non-loopback address */
	uint64_t cache_size;  /* bytes; 0 = 90 % of the free space at start */
	double listing_ttl;   /* how long a remote listing is trusted */
	double fetch_timeout; /* the longest wait for a remote without progress */
	bool stream;	      /* stream=on: cold remote objects are read while fetched */
	unsigned fetch_max;   /* cold object opens fetching at once (fs/open_cold.c) */
	enum lz_backend backend;
	long trusted_owner;    /* uid whose image files the kernel may mount besides root's; -1 */
	char *trusted_digests; /* SHA-256 digests of remote images the kernel may mount, or NULL */
	enum lz_bpf_mode bpf;
	bool prefetch;		/* record images' working sets and prefetch them */
	uint64_t prefetch_max;	/* bytes prefetched per image resolve */
	uint64_t listing_max;	/* bytes of union listings kept for open directories */
	double image_timeout;	/* kernel cache timeout inside images (immutable) */
	double idle_timeout;	/* close images unused this long; 0 = never */
	double resolve_timeout; /* lookups waiting on an image longer get EIO; 0 = no bound */
	unsigned max_threads;
	unsigned max_idle_threads;
	unsigned backing_keep;	/* passthrough backing ids kept after the last close */
	unsigned restart_limit; /* worker restarts within restart_window before failing open */
	double restart_window;
	bool foreground;
	bool debug;
	bool io_uring;
	bool allow_other;
	bool default_permissions;
	bool acl; /* have the kernel enforce POSIX ACLs (FUSE_POSIX_ACL) */
};

#endif
