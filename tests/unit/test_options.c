/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "fs/options.h"
#include "unit.h"

#include <stdbool.h>
#include <string.h>

#define ARGV(...)	 ((char *[]){ "lazyfs", __VA_ARGS__, NULL })
#define ARGC(...)	 ((int)(sizeof((char *[]){ "lazyfs", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(opts, ...) lz_options_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (opts))

/* True when libfuse will be given "-o OPT" (each option lazyfs adds is separate). */
static bool passes_to_fuse(const struct lz_options *opts, const char *opt)
{
	for (int i = 1; i < opts->fuse_args.argc; i++)
		if (strcmp(opts->fuse_args.argv[i], opt) == 0 ||
		    (strncmp(opts->fuse_args.argv[i], "-o", 2) == 0 &&
		     strstr(opts->fuse_args.argv[i] + 2, opt) != NULL))
			return true;
	return false;
}

static void test_defaults(void)
{
	struct lz_options opts;

	CHECK(PARSE(&opts, "/opt/ce") == 0);
	CHECK_STR(opts.settings.mountpoint, "/opt/ce");
	CHECK(opts.settings.source == NULL);
	CHECK(opts.settings.underlay == NULL);
	CHECK(opts.settings.open_mode == LZ_OPEN_PASSTHROUGH);
	CHECK(opts.settings.underlay_timeout == 60.0);
	CHECK(!opts.settings.foreground && !opts.settings.debug && !opts.settings.io_uring);
	CHECK(passes_to_fuse(&opts, "ro"));
	CHECK(passes_to_fuse(&opts, "subtype=lazyfs"));
	CHECK(passes_to_fuse(&opts, "fsname=lazyfs"));
	lz_options_free(&opts);
}

static void test_mount_helper_form(void)
{
	struct lz_options opts;

	/* What mount.fuse3 runs for `mount -t fuse.lazyfs src /mnt -o ...`. */
	CHECK(PARSE(&opts, "my,source", "/mnt", "-o", "rw,underlay=/srv/x,open_mode=cached") == 0);
	CHECK_STR(opts.settings.source, "my,source");
	CHECK_STR(opts.settings.mountpoint, "/mnt");
	CHECK_STR(opts.settings.underlay, "/srv/x");
	CHECK(opts.settings.open_mode == LZ_OPEN_CACHED);
	CHECK(passes_to_fuse(&opts, "fsname=my\\,source"));
	/* "ro" comes after the "rw" from mount(8), so the mount stays read-only. */
	int rw = -1, ro = -1;
	for (int i = 0; i < opts.fuse_args.argc; i++) {
		if (strstr(opts.fuse_args.argv[i], "rw"))
			rw = i;
		if (strcmp(opts.fuse_args.argv[i], "ro") == 0)
			ro = i;
	}
	CHECK(rw >= 0 && ro > rw);
	lz_options_free(&opts);
}

static void test_flags(void)
{
	struct lz_options opts;

	CHECK(PARSE(&opts, "-d", "-o", "io_uring,underlay_timeout=0.5,max_threads=4", "/m") == 0);
	CHECK(opts.settings.debug && opts.settings.foreground && opts.settings.io_uring);
	CHECK(opts.settings.underlay_timeout == 0.5);
	CHECK(opts.settings.max_threads == 4);
	CHECK(passes_to_fuse(&opts, "io_uring"));
	lz_options_free(&opts);

	CHECK(PARSE(&opts, "-o", "allow_other", "/m") == 0);
	CHECK(opts.settings.allow_other && opts.settings.default_permissions);
	CHECK(passes_to_fuse(&opts, "default_permissions"));
	lz_options_free(&opts);

	CHECK(PARSE(&opts, "--help") == 0);
	CHECK(opts.show_help);
	lz_options_free(&opts);
	CHECK(PARSE(&opts, "-V") == 0);
	CHECK(opts.show_version);
	lz_options_free(&opts);
}

static void test_images(void)
{
	struct lz_options opts;

	CHECK(PARSE(&opts, "/m") == 0);
	CHECK(opts.settings.images == NULL && opts.settings.backend == LZ_BACKEND_AUTO);
	CHECK(opts.settings.idle_timeout == 300.0 && opts.settings.image_timeout == 86400.0);
	lz_options_free(&opts);

	CHECK(PARSE(&opts, "-o", "images=/srv/img,backend=kernel,idle_timeout=0,image_timeout=5",
		    "/m") == 0);
	CHECK_STR(opts.settings.images, "/srv/img");
	CHECK(opts.settings.backend == LZ_BACKEND_KERNEL);
	CHECK(opts.settings.idle_timeout == 0.0 && opts.settings.image_timeout == 5.0);
	lz_options_free(&opts);

	CHECK(PARSE(&opts, "-o", "backend=fuse", "/m") == -1);
	CHECK(strstr(opts.error, "backend: 'fuse'") != NULL);
	lz_options_free(&opts);
	CHECK(PARSE(&opts, "-o", "idle_timeout=soon", "/m") == -1);
	CHECK(strstr(opts.error, "idle_timeout: 'soon'") != NULL);
	lz_options_free(&opts);
	CHECK(PARSE(&opts, "-o", "images=", "/m") == -1);
	lz_options_free(&opts);
}

static void test_remote(void)
{
	struct lz_options opts;
	uint64_t size;

	CHECK(PARSE(&opts, "-o", "remote=:http\\,url='http://127.0.0.1:1/':,remote_mode=objects",
		    "/m") == 0);
	CHECK_STR(opts.settings.remote, ":http,url='http://127.0.0.1:1/':");
	CHECK(opts.settings.remote_objects);
	CHECK_STR(opts.settings.cache, "/var/cache/lazyfs");
	CHECK(opts.settings.cache_size == 0 && opts.settings.listing_ttl == 60.0 &&
	      opts.settings.fetch_timeout == 30.0);
	lz_options_free(&opts);

	CHECK(PARSE(&opts, "-o", "remote=media:clips,cache=/c,cache_size=20G,listing_ttl=5",
		    "/m") == 0);
	CHECK(!opts.settings.remote_objects && opts.settings.cache_size == (UINT64_C(20) << 30));
	CHECK_STR(opts.settings.cache, "/c");
	lz_options_free(&opts);

	CHECK(PARSE(&opts, "-o", "remote=nocolon", "/m") == -1);
	CHECK(strstr(opts.error, "not REMOTE:PATH") != NULL);
	lz_options_free(&opts);
	CHECK(PARSE(&opts, "-o", "remote=r:p,remote_mode=streams", "/m") == -1);
	CHECK(strstr(opts.error, "remote_mode: 'streams'") != NULL);
	lz_options_free(&opts);
	CHECK(PARSE(&opts, "-o", "cache_size=lots", "/m") == -1);
	CHECK(strstr(opts.error, "cache_size: 'lots'") != NULL);
	lz_options_free(&opts);
	CHECK(PARSE(&opts, "-o", "fetch_timeout=0", "/m") == -1);
	lz_options_free(&opts);

	/* Secrets never on the command line: a config file names them. */
	static char *const secret[] = {
		"remote=:s3\\,provider=AWS\\,secret_access_key=abc:bucket",
		"remote=:http\\,url='http://h:1/'\\,pass=z:",
		"remote=:azureblob\\,account=a\\,key=k:c",
		"remote=myremote\\,token={}:p",
		"remote=:s3\\,Secret_Access_Key=abc:b", /* any case */
	};
	for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++) {
		CHECK(PARSE(&opts, "-o", secret[i], "/m") == -1);
		CHECK(strstr(opts.error, "is a secret") != NULL &&
		      strstr(opts.error, "rclone_config=FILE") != NULL);
		lz_options_free(&opts);
	}
	CHECK(PARSE(&opts, "-o", "remote=:s3\\,provider=AWS\\,secret_access_key=abc:b", "/m") ==
	      -1);
	CHECK(strstr(opts.error, "'secret_access_key=' is a secret") != NULL);
	CHECK(strstr(opts.error, "abc") == NULL); /* the secret itself is never repeated */
	lz_options_free(&opts);
	static char *const fine[] = {
		"remote=:http\\,url='http://h/?pass=x\\,y:z':", /* quoted: part of the url */
		"remote=:sftp\\,host=h\\,user=u\\,key_file=/root/.ssh/id:dir", /* a path, not a key
										*/
		"remote=media:clips/pass=1,rclone_config=/etc/lazyfs/rclone.conf",
	};
	for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
		CHECK(PARSE(&opts, "-o", fine[i], "/m") == 0);
		lz_options_free(&opts);
	}
	CHECK(PARSE(&opts, "-o", "remote=media:clips,rclone_config=/etc/r.conf", "/m") == 0);
	CHECK_STR(opts.settings.rclone_config, "/etc/r.conf");
	lz_options_free(&opts);

	CHECK(lz_parse_size("4096", &size) == 0 && size == 4096);
	CHECK(lz_parse_size("512M", &size) == 0 && size == (UINT64_C(512) << 20));
	CHECK(lz_parse_size("3k", &size) == 0 && size == 3072);
	CHECK(lz_parse_size("2T", &size) == 0 && size == (UINT64_C(2) << 40));
	CHECK(lz_parse_size("", &size) == -1);
	CHECK(lz_parse_size("-1G", &size) == -1);
	CHECK(lz_parse_size("1.5G", &size) == -1);
	CHECK(lz_parse_size("1GB", &size) == -1);
	CHECK(lz_parse_size("99999999999999999999", &size) == -1);
	CHECK(lz_parse_size("17179869184G", &size) == -1);
}

static void test_errors(void)
{
	struct lz_options opts;

	CHECK(lz_options_parse(1, (char *[]){ "lazyfs", NULL }, &opts) == -1);
	CHECK(strstr(opts.error, "missing MOUNTPOINT") != NULL);
	lz_options_free(&opts);

	CHECK(PARSE(&opts, "a", "b", "c") == -1);
	CHECK(strstr(opts.error, "unexpected argument 'c'") != NULL);
	lz_options_free(&opts);

	CHECK(PARSE(&opts, "-o", "open_mode=turbo", "/m") == -1);
	CHECK(strstr(opts.error, "open_mode: 'turbo'") != NULL);
	lz_options_free(&opts);

	const char *bad_timeouts[] = { "-1", "abc", "1e999", "nan", "", "5s" };
	for (size_t i = 0; i < sizeof(bad_timeouts) / sizeof(bad_timeouts[0]); i++) {
		char opt[64];
		snprintf(opt, sizeof(opt), "underlay_timeout=%s", bad_timeouts[i]);
		CHECK(PARSE(&opts, "-o", opt, "/m") == -1);
		CHECK(strstr(opts.error, "underlay_timeout") != NULL);
		lz_options_free(&opts);
	}

	CHECK(PARSE(&opts, "/m") == 0 && opts.settings.bpf == LZ_BPF_AUTO &&
	      opts.settings.prefetch && opts.settings.prefetch_max == 512ull << 20);
	lz_options_free(&opts);
	CHECK(PARSE(&opts, "-o", "bpf=on,prefetch=off,prefetch_max=1G", "/m") == 0 &&
	      opts.settings.bpf == LZ_BPF_ON && !opts.settings.prefetch &&
	      opts.settings.prefetch_max == 1ull << 30);
	lz_options_free(&opts);
	CHECK(PARSE(&opts, "-o", "bpf=off", "/m") == 0 && opts.settings.bpf == LZ_BPF_OFF);
	lz_options_free(&opts);
	/* ACLs are enforced unless told otherwise. */
	CHECK(PARSE(&opts, "/m") == 0 && opts.settings.acl);
	lz_options_free(&opts);
	CHECK(PARSE(&opts, "-o", "acl=off", "/m") == 0 && !opts.settings.acl);
	lz_options_free(&opts);
	CHECK(PARSE(&opts, "-o", "acl=off,acl=on", "/m") == 0 && opts.settings.acl);
	lz_options_free(&opts);
	char *bad_bpf[] = {
		"bpf=yes", "bpf=", "prefetch=1", "prefetch_max=lots", "acl=yes", "acl="
	};
	for (size_t i = 0; i < sizeof(bad_bpf) / sizeof(bad_bpf[0]); i++) {
		CHECK(PARSE(&opts, "-o", bad_bpf[i], "/m") == -1);
		CHECK(strncmp(opts.error, bad_bpf[i], strcspn(bad_bpf[i], "=")) == 0);
		lz_options_free(&opts);
	}

	CHECK(PARSE(&opts, "-o", "underlay=", "/m") == -1);
	lz_options_free(&opts);
	CHECK(PARSE(&opts, "-o", "max_threads=0", "/m") == -1);
	lz_options_free(&opts);
}

int main(void)
{
	test_defaults();
	test_mount_helper_form();
	test_flags();
	test_errors();
	test_images();
	test_remote();
	return unit_finish("test_options");
}
