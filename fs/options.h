/* Command line and -o options of lazyfs, parsed into one configuration. */
#ifndef LAZYFS_OPTIONS_H
#define LAZYFS_OPTIONS_H

#define FUSE_USE_VERSION 317
#include <fuse_opt.h>
#include <stdbool.h>
#include <stdint.h>

enum lz_open_mode { LZ_OPEN_PASSTHROUGH, LZ_OPEN_CACHED };
enum lz_backend { LZ_BACKEND_AUTO, LZ_BACKEND_KERNEL, LZ_BACKEND_SQUASHFUSE };
enum lz_bpf_mode { LZ_BPF_AUTO, LZ_BPF_ON, LZ_BPF_OFF };

struct lz_config {
	char *source; /* accepted for mount(8), otherwise unused */
	char *mountpoint;
	char *underlay; /* NULL: the mountpoint's own contents */
	enum lz_open_mode open_mode;
	double underlay_timeout; /* entry, attr and negative-entry timeout */
	char *images;		 /* directory of N.sqfs images, or NULL */
	char *map;		 /* map file of nested image paths, or NULL */
	char *remote;		 /* rclone remote (REMOTE:PATH), or NULL */
	bool remote_objects;	 /* remote_mode=objects; else the remote holds N.sqfs images */
	char *cache;		 /* local cache directory */
	char *metrics;		 /* loopback ADDR:PORT for Prometheus, or NULL */
	uint64_t cache_size;	 /* bytes; 0 = 90 % of the free space at start */
	double listing_ttl;	 /* how long a remote listing is trusted */
	double fetch_timeout;	 /* the longest wait for a remote without progress */
	enum lz_backend backend;
	enum lz_bpf_mode bpf;
	bool prefetch;	       /* record images' working sets and prefetch them */
	uint64_t prefetch_max; /* bytes prefetched per image resolve */
	double image_timeout;  /* kernel cache timeout inside images (immutable) */
	double idle_timeout;   /* close images unused this long; 0 = never */
	unsigned max_threads;
	unsigned max_idle_threads;
	unsigned backing_keep; /* passthrough backing ids kept after the last close */
	bool foreground;
	bool debug;
	bool io_uring;
	bool allow_other;
	bool default_permissions;
	bool show_help;
	bool show_version;
	/* What libfuse gets: its own options plus those lazyfs adds (ro, fsname, ...). */
	struct fuse_args fuse_args;
	/* Raw strings while parsing; validated into the fields above. */
	char *open_mode_arg;
	char *underlay_timeout_arg;
	char *image_timeout_arg;
	char *idle_timeout_arg;
	char *backend_arg;
	char *bpf_arg;
	char *prefetch_arg;
	char *prefetch_max_arg;
	char *remote_mode_arg;
	char *cache_size_arg;
	char *listing_ttl_arg;
	char *fetch_timeout_arg;
	unsigned positional_count;
	char error[256];
};

/*
 * Parses ARGV into CFG. Returns 0, or -1 with a one-line reason in cfg->error.
 * lz_config_free must be called either way.
 */
int lz_config_parse(int argc, char **argv, struct lz_config *cfg);
void lz_config_free(struct lz_config *cfg);
void lz_config_usage(const char *progname);
/* "10G", "512M", "4096": bytes into *OUT; -1 when malformed or too large. */
int lz_parse_size(const char *text, uint64_t *out);

#endif
