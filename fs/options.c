/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "options.h"
#include "common/netaddr.h"
#include "common/error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pwd.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	KEY_FOREGROUND,
	KEY_DEBUG,
	KEY_HELP,
	KEY_VERSION,
	KEY_IO_URING,
	KEY_ALLOW_OTHER,
	KEY_DEFAULT_PERMISSIONS,
};

#define LZ_OPT(templ, field)                                                                       \
	{                                                                                          \
		templ, offsetof(struct lz_options, field), 1                                       \
	}

static const struct fuse_opt lz_opt_spec[] = {
	LZ_OPT("underlay=%s", settings.underlay),
	LZ_OPT("open_mode=%s", open_mode_arg),
	LZ_OPT("underlay_timeout=%s", underlay_timeout_arg),
	LZ_OPT("images=%s", settings.images),
	LZ_OPT("map=%s", settings.map),
	LZ_OPT("warm=%s", settings.warm),
	LZ_OPT("remote=%s", settings.remote),
	LZ_OPT("rclone_config=%s", settings.rclone_config),
	LZ_OPT("rclone_user=%s", settings.rclone_user),
	LZ_OPT("remote_mode=%s", remote_mode_arg),
	LZ_OPT("cache=%s", settings.cache),
	LZ_OPT("metrics=%s", settings.metrics),
	LZ_OPT("metrics_remote", metrics_remote_flag), /* fuse_opt writes an int */
	LZ_OPT("cache_size=%s", cache_size_arg),
	LZ_OPT("listing_ttl=%s", listing_ttl_arg),
	LZ_OPT("fetch_timeout=%s", fetch_timeout_arg),
	LZ_OPT("stream=%s", stream_arg),
	LZ_OPT("fetch_max=%u", settings.fetch_max),
	LZ_OPT("backend=%s", backend_arg),
	LZ_OPT("trusted_owner=%s", trusted_owner_arg),
	LZ_OPT("trusted_digests=%s", settings.trusted_digests),
	LZ_OPT("image_timeout=%s", image_timeout_arg),
	LZ_OPT("idle_timeout=%s", idle_timeout_arg),
	LZ_OPT("max_threads=%u", settings.max_threads),
	LZ_OPT("max_idle_threads=%u", settings.max_idle_threads),
	LZ_OPT("backing_keep=%u", settings.backing_keep),
	LZ_OPT("restart_limit=%u", settings.restart_limit),
	LZ_OPT("restart_window=%s", restart_window_arg),
	LZ_OPT("resolve_timeout=%s", resolve_timeout_arg),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("io_uring", KEY_IO_URING),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("default_permissions", KEY_DEFAULT_PERMISSIONS),
	LZ_OPT("bpf=%s", bpf_arg),
	LZ_OPT("prefetch=%s", prefetch_arg),
	LZ_OPT("acl=%s", acl_arg),
	LZ_OPT("prefetch_max=%s", prefetch_max_arg),
	LZ_OPT("listing_max=%s", listing_max_arg),
	FUSE_OPT_END,
};

/* Says why in opts->error; -1. */
#define fail(opts, ...) (lz_seterr((opts)->error, sizeof((opts)->error), __VA_ARGS__), -1)

static int take_positional(struct lz_options *opts, const char *arg)
{
	char *copy;

	if (opts->positional_count == 2)
		return fail(
			opts,
			"unexpected argument '%s' (usage: lazyfs [options] [SOURCE] MOUNTPOINT)",
			arg);
	copy = strdup(arg);
	if (copy == NULL)
		return fail(opts, "%s", "out of memory");
	/* With two arguments the first is SOURCE (mount(8) passes one) and the second the
	 * mountpoint. */
	if (opts->positional_count == 1) {
		opts->settings.source = opts->settings.mountpoint;
		opts->settings.mountpoint = copy;
	} else {
		opts->settings.mountpoint = copy;
	}
	opts->positional_count++;
	return 0;
}

static int option_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct lz_options *opts = data;

	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		return take_positional(opts, arg);
	case KEY_FOREGROUND:
		opts->settings.foreground = true;
		return 0;
	case KEY_DEBUG:
		opts->settings.debug = true;
		opts->settings.foreground = true;
		return 0;
	case KEY_HELP:
		opts->show_help = true;
		return 0;
	case KEY_VERSION:
		opts->show_version = true;
		return 0;
	case KEY_IO_URING:
		opts->settings.io_uring = true;
		return 1; /* libfuse's own option as well */
	case KEY_ALLOW_OTHER:
		opts->settings.allow_other = true;
		return 1;
	case KEY_DEFAULT_PERMISSIONS:
		opts->settings.default_permissions = true;
		return 1;
	default:
		return 1; /* left for libfuse, which rejects what it does not know */
	}
}

static int parse_timeout(struct lz_options *opts, const char *option, const char *arg, double *out)
{
	char *end;
	double value;

	errno = 0;
	value = strtod(arg, &end);
	if (errno != 0 || end == arg || *end != '\0' || !isfinite(value) || value < 0)
		return fail(opts, "%s: '%s' is not a number of seconds >= 0", option, arg);
	*out = value;
	return 0;
}

static int add_fuse_opt(struct lz_options *opts, const char *opt)
{
	if (fuse_opt_add_arg(&opts->fuse_args, "-o") == -1 ||
	    fuse_opt_add_arg(&opts->fuse_args, opt) == -1)
		return fail(opts, "%s", "out of memory");
	return 0;
}

/* Options lazyfs always passes to libfuse: a read-only mount typed fuse.lazyfs. */
static int add_mount_options(struct lz_options *opts)
{
	char *fsname_opt = NULL;
	int rc;

	if (fuse_opt_add_opt_escaped(&fsname_opt, opts->settings.source ? opts->settings.source
									: "lazyfs") == -1)
		return fail(opts, "%s", "out of memory");
	char buf[4200];
	snprintf(buf, sizeof(buf), "fsname=%s", fsname_opt);
	free(fsname_opt);
	rc = add_fuse_opt(opts, buf);
	if (rc == 0)
		rc = add_fuse_opt(opts, "subtype=lazyfs");
	/* Last, so a "rw" from mount(8) or fstab cannot undo it. */
	if (rc == 0)
		rc = add_fuse_opt(opts, "ro");
	/*
	 * The kernel checks every access against the stored modes itself: any
	 * user reaching the files is held to them although the daemon reads as
	 * root, and access(2) costs no ACCESS round trip (a compile makes
	 * thousands).
	 */
	if (rc == 0 && !opts->settings.default_permissions) {
		opts->settings.default_permissions = true;
		rc = add_fuse_opt(opts, "default_permissions");
	}
	return rc;
}

static void set_defaults(struct lz_settings *s)
{
	s->open_mode = LZ_OPEN_PASSTHROUGH;
	s->underlay_timeout = 60.0;
	s->image_timeout = 86400.0;
	s->idle_timeout = 300.0;
	s->prefetch = true;
	s->acl = true;
	s->prefetch_max = 512ull << 20;
	s->listing_max = 32ull << 20;
	s->listing_ttl = 60.0;
	s->fetch_timeout = 30.0;
	s->stream = true;
	s->fetch_max = 16;
	s->max_threads = 16;
	s->max_idle_threads = 8;
	s->backing_keep = 16384;
	s->restart_limit = 5;
	s->restart_window = 60.0;
	s->resolve_timeout = 60.0;
	s->trusted_owner = -1;
}

/*
 * metrics=ADDR:PORT: loopback unless metrics_remote says another address is
 * meant (a farm's Prometheus scraping from elsewhere). 0, or -1 with the reason.
 */
static int check_metrics(struct lz_options *opts)
{
	const char *spec = opts->settings.metrics;
	struct sockaddr_in sa;

	opts->settings.metrics_remote = opts->metrics_remote_flag != 0;
	if (spec == NULL)
		return opts->settings.metrics_remote
			       ? fail(opts, "%s", "metrics_remote: no metrics=")
			       : 0;
	if (lz_netaddr_parse(spec, &sa) != 0)
		return fail(opts, "metrics: '%s' is not ADDR:PORT (an IPv4 address and a port)",
			    spec);
	if (!lz_netaddr_is_loopback(&sa) && !opts->settings.metrics_remote)
		return fail(opts,
			    "metrics: %s is not a loopback address: every host that reaches it "
			    "would read the metrics (add -o metrics_remote if that is meant)",
			    spec);
	return 0;
}

/* trusted_owner=USER or UID: 0, or -1 with the reason. */
static int parse_owner(struct lz_options *opts)
{
	const char *arg = opts->trusted_owner_arg;
	struct passwd *pw;
	char *end;

	if (arg == NULL)
		return 0;
	errno = 0;
	unsigned long uid = strtoul(arg, &end, 10);
	if (*arg != '\0' && *end == '\0' && errno == 0 && uid < (unsigned long)INT32_MAX) {
		opts->settings.trusted_owner = (long)uid;
		return 0;
	}
	pw = getpwnam(arg);
	if (pw == NULL)
		return fail(opts, "trusted_owner: '%s' is no user name or uid", arg);
	opts->settings.trusted_owner = (long)pw->pw_uid;
	return 0;
}

/* The modes, timeouts and sizes of the raw strings: 0, or -1 with the reason. */
static int parse_values(struct lz_options *opts)
{
	if (opts->open_mode_arg != NULL) {
		if (strcmp(opts->open_mode_arg, "passthrough") == 0)
			opts->settings.open_mode = LZ_OPEN_PASSTHROUGH;
		else if (strcmp(opts->open_mode_arg, "cached") == 0)
			opts->settings.open_mode = LZ_OPEN_CACHED;
		else
			return fail(opts, "open_mode: '%s' is not passthrough or cached",
				    opts->open_mode_arg);
	}
	const struct {
		const char *option;
		const char *arg;
		double *value;
	} timeouts[] = {
		{ "underlay_timeout", opts->underlay_timeout_arg,
		  &opts->settings.underlay_timeout },
		{ "image_timeout", opts->image_timeout_arg, &opts->settings.image_timeout },
		{ "idle_timeout", opts->idle_timeout_arg, &opts->settings.idle_timeout },
		{ "listing_ttl", opts->listing_ttl_arg, &opts->settings.listing_ttl },
		{ "fetch_timeout", opts->fetch_timeout_arg, &opts->settings.fetch_timeout },
		{ "restart_window", opts->restart_window_arg, &opts->settings.restart_window },
		{ "resolve_timeout", opts->resolve_timeout_arg, &opts->settings.resolve_timeout },
	};
	for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++)
		if (timeouts[i].arg != NULL &&
		    parse_timeout(opts, timeouts[i].option, timeouts[i].arg, timeouts[i].value) !=
			    0)
			return -1;
	if (opts->backend_arg != NULL) {
		if (strcmp(opts->backend_arg, "auto") == 0)
			opts->settings.backend = LZ_BACKEND_AUTO;
		else if (strcmp(opts->backend_arg, "kernel") == 0)
			opts->settings.backend = LZ_BACKEND_KERNEL;
		else if (strcmp(opts->backend_arg, "squashfuse") == 0)
			opts->settings.backend = LZ_BACKEND_SQUASHFUSE;
		else
			return fail(opts, "backend: '%s' is not auto, kernel or squashfuse",
				    opts->backend_arg);
	}
	if (opts->bpf_arg != NULL) {
		if (strcmp(opts->bpf_arg, "auto") == 0)
			opts->settings.bpf = LZ_BPF_AUTO;
		else if (strcmp(opts->bpf_arg, "on") == 0)
			opts->settings.bpf = LZ_BPF_ON;
		else if (strcmp(opts->bpf_arg, "off") == 0)
			opts->settings.bpf = LZ_BPF_OFF;
		else
			return fail(opts, "bpf: '%s' is not auto, on or off", opts->bpf_arg);
	}
	if (opts->prefetch_arg != NULL) {
		if (strcmp(opts->prefetch_arg, "on") == 0)
			opts->settings.prefetch = true;
		else if (strcmp(opts->prefetch_arg, "off") == 0)
			opts->settings.prefetch = false;
		else
			return fail(opts, "prefetch: '%s' is not on or off", opts->prefetch_arg);
	}
	if (opts->stream_arg != NULL) {
		if (strcmp(opts->stream_arg, "on") == 0)
			opts->settings.stream = true;
		else if (strcmp(opts->stream_arg, "off") == 0)
			opts->settings.stream = false;
		else
			return fail(opts, "stream: '%s' is not on or off", opts->stream_arg);
	}
	if (opts->acl_arg != NULL) {
		if (strcmp(opts->acl_arg, "on") == 0)
			opts->settings.acl = true;
		else if (strcmp(opts->acl_arg, "off") == 0)
			opts->settings.acl = false;
		else
			return fail(opts, "acl: '%s' is not on or off", opts->acl_arg);
	}
	if (opts->prefetch_max_arg != NULL &&
	    lz_parse_size(opts->prefetch_max_arg, &opts->settings.prefetch_max) != 0)
		return fail(opts, "prefetch_max: '%s' is not a size (like 256M)",
			    opts->prefetch_max_arg);
	if (opts->listing_max_arg != NULL &&
	    lz_parse_size(opts->listing_max_arg, &opts->settings.listing_max) != 0)
		return fail(opts, "listing_max: '%s' is not a size (like 32M)",
			    opts->listing_max_arg);
	return 0;
}

/* Whether parameter KEY (up to '=') of an rclone connection string names a secret. */
static bool secret_key(const char *key, size_t len)
{
	static const char *const parts[] = { "secret",	    "pass",    "token",
					     "credentials", "sas_url", "private_key" };
	static const char *const whole[] = { "key", "account_key", "api_key", "client_key" };
	char k[64];

	if (len >= sizeof(k))
		return false;
	for (size_t i = 0; i < len; i++)
		k[i] = (char)tolower((unsigned char)key[i]);
	k[len] = '\0';
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (strstr(k, parts[i]) != NULL)
			return true;
	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++)
		if (strcmp(k, whole[i]) == 0)
			return true;
	return false;
}

/*
 * The first parameter of REMOTE's connection string (":s3,k=v,k2='v':path",
 * "name,k=v:path") that names a secret, its name *LEN bytes long; or NULL.
 * Quoted values may hold ',' and ':' (a doubled quote stands for itself), as
 * rclone reads them.
 */
static const char *inline_secret(const char *remote, size_t *len)
{
	const char *p = remote + (remote[0] == ':');

	p += strcspn(p, ",:");
	while (*p == ',') {
		const char *key = ++p;
		size_t klen = strcspn(key, "=,:");
		*len = klen;
		if (secret_key(key, klen))
			return key;
		p = key + klen;
		if (*p != '=')
			continue;
		p++;
		if (*p == '\'' || *p == '"') {
			char q = *p++;
			while (*p != '\0' && !(*p == q && p[1] != q))
				p += *p == q ? 2 : 1;
			p += *p == q;
		}
		p += strcspn(p, ",:");
	}
	return NULL;
}

/* The paths and limits, and the cache's default: 0, or -1 with the reason. */
static int check_paths(struct lz_options *opts)
{
	if (opts->settings.images != NULL && opts->settings.images[0] == '\0')
		return fail(opts, "%s", "images: empty path");
	if (opts->settings.map != NULL && opts->settings.map[0] == '\0')
		return fail(opts, "%s", "map: empty path");
	if (opts->settings.remote != NULL && strchr(opts->settings.remote, ':') == NULL)
		return fail(opts, "remote: '%s' is not REMOTE:PATH (an rclone remote)",
			    opts->settings.remote);
	size_t secret_len = 0;
	const char *secret =
		opts->settings.remote ? inline_secret(opts->settings.remote, &secret_len) : NULL;
	if (secret != NULL)
		return fail(
			opts,
			"remote: '%.*s=' is a secret, which the command line would show every "
			"local user (/proc/PID/cmdline): define the remote in a root-only rclone "
			"config file and name it with -o rclone_config=FILE",
			(int)secret_len, secret);
	if (opts->settings.rclone_config != NULL && opts->settings.rclone_config[0] == '\0')
		return fail(opts, "%s", "rclone_config: empty path");
	if (opts->settings.rclone_user != NULL && opts->settings.rclone_user[0] == '\0')
		return fail(opts, "%s", "rclone_user: empty name");
	if (check_metrics(opts) != 0)
		return -1;
	if (opts->remote_mode_arg != NULL) {
		if (strcmp(opts->remote_mode_arg, "objects") == 0)
			opts->settings.remote_objects = true;
		else if (strcmp(opts->remote_mode_arg, "images") != 0)
			return fail(opts, "remote_mode: '%s' is not images or objects",
				    opts->remote_mode_arg);
	}
	if (opts->cache_size_arg != NULL &&
	    lz_parse_size(opts->cache_size_arg, &opts->settings.cache_size) != 0)
		return fail(opts, "cache_size: '%s' is not a size (like 512M or 20G)",
			    opts->cache_size_arg);
	if (opts->settings.fetch_timeout <= 0)
		return fail(opts, "%s", "fetch_timeout: must be more than 0");
	if (opts->settings.fetch_max == 0 || opts->settings.fetch_max > 256)
		return fail(opts, "fetch_max: %u is not 1 to 256", opts->settings.fetch_max);
	if (opts->settings.trusted_digests != NULL && opts->settings.trusted_digests[0] == '\0')
		return fail(opts, "%s", "trusted_digests: empty path");
	if (parse_owner(opts) != 0)
		return -1;
	if (opts->settings.cache == NULL &&
	    (opts->settings.cache = strdup("/var/cache/lazyfs")) == NULL)
		return fail(opts, "%s", "out of memory");
	if (opts->settings.underlay != NULL && opts->settings.underlay[0] == '\0')
		return fail(opts, "%s", "underlay: empty path");
	if (opts->settings.max_threads == 0)
		return fail(opts, "%s", "max_threads: must be at least 1");
	if (opts->settings.backing_keep > 1u << 20)
		return fail(opts, "backing_keep: %u is more than 1048576",
			    opts->settings.backing_keep);
	return 0;
}

int lz_options_parse(int argc, char **argv, struct lz_options *opts)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);

	memset(opts, 0, sizeof(*opts));
	set_defaults(&opts->settings);

	if (fuse_opt_parse(&args, opts, lz_opt_spec, option_proc) == -1) {
		opts->fuse_args = args;
		if (opts->error[0] == '\0')
			lz_seterr(opts->error, sizeof(opts->error), "invalid options");
		return -1;
	}
	opts->fuse_args = args;
	if (opts->show_help || opts->show_version)
		return 0;
	if (opts->settings.mountpoint == NULL)
		return fail(opts, "%s",
			    "missing MOUNTPOINT (usage: lazyfs [options] [SOURCE] MOUNTPOINT)");
	if (parse_values(opts) != 0 || check_paths(opts) != 0)
		return -1;
	return add_mount_options(opts);
}

void lz_options_free(struct lz_options *opts)
{
	fuse_opt_free_args(&opts->fuse_args);
	free(opts->settings.source);
	free(opts->settings.mountpoint);
	free(opts->settings.underlay);
	free(opts->open_mode_arg);
	free(opts->underlay_timeout_arg);
	free(opts->image_timeout_arg);
	free(opts->idle_timeout_arg);
	free(opts->backend_arg);
	free(opts->trusted_owner_arg);
	free(opts->settings.trusted_digests);
	free(opts->bpf_arg);
	free(opts->prefetch_arg);
	free(opts->stream_arg);
	free(opts->acl_arg);
	free(opts->prefetch_max_arg);
	free(opts->listing_max_arg);
	free(opts->settings.images);
	free(opts->settings.map);
	free(opts->settings.remote);
	free(opts->settings.rclone_config);
	free(opts->settings.rclone_user);
	free(opts->settings.warm);
	free(opts->remote_mode_arg);
	free(opts->settings.cache);
	free(opts->settings.metrics);
	free(opts->cache_size_arg);
	free(opts->listing_ttl_arg);
	free(opts->fetch_timeout_arg);
	free(opts->restart_window_arg);
	free(opts->resolve_timeout_arg);
	memset(opts, 0, sizeof(*opts));
}

int lz_parse_size(const char *text, uint64_t *out)
{
	char *end;
	unsigned long long value;
	unsigned shift = 0;

	if (text[0] < '0' || text[0] > '9')
		return -1;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case 'K':
	case 'k':
		shift = 10;
		end++;
		break;
	case 'M':
	case 'm':
		shift = 20;
		end++;
		break;
	case 'G':
	case 'g':
		shift = 30;
		end++;
		break;
	case 'T':
	case 't':
		shift = 40;
		end++;
		break;
	default:
		break;
	}
	if (*end != '\0' || value > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)value << shift;
	return 0;
}

void lz_options_usage(const char *progname)
{
	printf("usage: %s [-f] [-d] [-o OPT[,OPT...]] [SOURCE] MOUNTPOINT\n"
	       "\n"
	       "lazyfs options:\n"
	       "    -f                     stay in the foreground\n"
	       "    -d                     debug logging (implies -f)\n"
	       "    -o underlay=DIR        directory shown where no image exists\n"
	       "                           (default: the mountpoint's own contents)\n"
	       "    -o open_mode=MODE      passthrough (default) or cached\n"
	       "    -o underlay_timeout=S  kernel cache timeout for underlay entries (60)\n"
	       "    -o images=DIR          entry N is the squashfs image DIR/N.sqfs (.img, "
	       ".squashfs)\n"
	       "    -o map=FILE            lines 'relative/path /abs/image.sqfs': nested images\n"
	       "    -o warm=FILE           entries (one per line) pinned once the mount serves\n"
	       "    -o backend=B           auto (default), kernel or squashfuse\n"
	       "    -o rclone_config=FILE  rclone's config file (named remotes, their secrets)\n"
	       "    -o rclone_user=USER    the rclone child's user, owner of its downloads "
	       "(_lazyfs)\n"
	       "    -o trusted_owner=USER  image files of USER may be kernel-mounted too (root's "
	       "are)\n"
	       "    -o trusted_digests=F   SHA-256 digests (sha256sum format) of remote images "
	       "the\n"
	       "                           kernel may mount\n"
	       "    -o remote=REMOTE:PATH  an rclone remote holding images (or objects)\n"
	       "    -o remote_mode=M       images (default: N.sqfs files) or objects (plain "
	       "files)\n"
	       "    -o cache=DIR           local cache (/var/cache/lazyfs)\n"
	       "    -o cache_size=SIZE     cache quota, e.g. 20G (90 %% of the free space)\n"
	       "    -o listing_ttl=S       how long a remote listing is trusted (60)\n"
	       "    -o fetch_timeout=S     give up on a remote this long without progress (30)\n"
	       "    -o stream=on|off       read cold remote objects while they are fetched (on);\n"
	       "                           off: every byte checked before the first is served\n"
	       "    -o fetch_max=N         objects fetched at once, off the worker threads (16)\n"
	       "    -o idle_timeout=S      close images unused this long, 0 = never (300)\n"
	       "    -o resolve_timeout=S   answer EIO to lookups of an image that has not\n"
	       "                           resolved this long, 0 = wait (60)\n"
	       "    -o image_timeout=S     kernel cache timeout inside images (86400)\n"
	       "    -o bpf=MODE            eBPF open tracker: auto (default), on or off\n"
	       "    -o prefetch=on|off     prefetch images' recorded working sets (on)\n"
	       "    -o prefetch_max=SIZE   bytes prefetched per image use (512M)\n"
	       "    -o listing_max=SIZE    memory kept for listings of open directories (32M)\n"
	       "    -o backing_keep=N      passthrough files kept registered after their\n"
	       "                           last close, for faster reopening (16384; 0: none)\n"
	       "    -o restart_limit=N     restarts of a crashed worker within restart_window\n"
	       "                           before the mount fails open (5)\n"
	       "    -o restart_window=S    seconds (60)\n"
	       "    -o metrics=ADDR:PORT   Prometheus metrics over HTTP on a loopback address\n"
	       "    -o metrics_remote      allow metrics= on a non-loopback address\n"
	       "    -o io_uring            use FUSE-over-io_uring when the kernel allows it\n"
	       "    -o max_threads=N       worker threads (16)\n"
	       "    -o allow_other         let other users in (modes are always enforced)\n"
	       "    -o acl=on|off          have the kernel enforce the underlay's POSIX ACLs "
	       "(on)\n"
	       "\n"
	       "See lazyfs(8) for every option.\n",
	       progname);
}
