#include "config.h"
#include "fs/options.h"
#include "unit.h"

#include <stdbool.h>
#include <string.h>

#define ARGV(...)	((char *[]){ "lazyfs", __VA_ARGS__, NULL })
#define ARGC(...)	((int)(sizeof((char *[]){ "lazyfs", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(cfg, ...) lz_config_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (cfg))

/* True when libfuse will be given "-o OPT" (each option lazyfs adds is separate). */
static bool passes_to_fuse(const struct lz_config *cfg, const char *opt)
{
	for (int i = 1; i < cfg->fuse_args.argc; i++)
		if (strcmp(cfg->fuse_args.argv[i], opt) == 0 ||
		    (strncmp(cfg->fuse_args.argv[i], "-o", 2) == 0 &&
		     strstr(cfg->fuse_args.argv[i] + 2, opt) != NULL))
			return true;
	return false;
}

static void test_defaults(void)
{
	struct lz_config cfg;

	CHECK(PARSE(&cfg, "/opt/ce") == 0);
	CHECK_STR(cfg.mountpoint, "/opt/ce");
	CHECK(cfg.source == NULL);
	CHECK(cfg.underlay == NULL);
	CHECK(cfg.open_mode == LZ_OPEN_PASSTHROUGH);
	CHECK(cfg.underlay_timeout == 60.0);
	CHECK(!cfg.foreground && !cfg.debug && !cfg.io_uring);
	CHECK(passes_to_fuse(&cfg, "ro"));
	CHECK(passes_to_fuse(&cfg, "subtype=lazyfs"));
	CHECK(passes_to_fuse(&cfg, "fsname=lazyfs"));
	lz_config_free(&cfg);
}

static void test_mount_helper_form(void)
{
	struct lz_config cfg;

	/* What mount.fuse3 runs for `mount -t fuse.lazyfs src /mnt -o ...`. */
	CHECK(PARSE(&cfg, "my,source", "/mnt", "-o", "rw,underlay=/srv/x,open_mode=cached") == 0);
	CHECK_STR(cfg.source, "my,source");
	CHECK_STR(cfg.mountpoint, "/mnt");
	CHECK_STR(cfg.underlay, "/srv/x");
	CHECK(cfg.open_mode == LZ_OPEN_CACHED);
	CHECK(passes_to_fuse(&cfg, "fsname=my\\,source"));
	/* "ro" comes after the "rw" from mount(8), so the mount stays read-only. */
	int rw = -1, ro = -1;
	for (int i = 0; i < cfg.fuse_args.argc; i++) {
		if (strstr(cfg.fuse_args.argv[i], "rw"))
			rw = i;
		if (strcmp(cfg.fuse_args.argv[i], "ro") == 0)
			ro = i;
	}
	CHECK(rw >= 0 && ro > rw);
	lz_config_free(&cfg);
}

static void test_flags(void)
{
	struct lz_config cfg;

	CHECK(PARSE(&cfg, "-d", "-o", "io_uring,underlay_timeout=0.5,max_threads=4", "/m") == 0);
	CHECK(cfg.debug && cfg.foreground && cfg.io_uring);
	CHECK(cfg.underlay_timeout == 0.5);
	CHECK(cfg.max_threads == 4);
	CHECK(passes_to_fuse(&cfg, "io_uring"));
	lz_config_free(&cfg);

	CHECK(PARSE(&cfg, "-o", "allow_other", "/m") == 0);
	CHECK(cfg.allow_other && cfg.default_permissions);
	CHECK(passes_to_fuse(&cfg, "default_permissions"));
	lz_config_free(&cfg);

	CHECK(PARSE(&cfg, "--help") == 0);
	CHECK(cfg.show_help);
	lz_config_free(&cfg);
	CHECK(PARSE(&cfg, "-V") == 0);
	CHECK(cfg.show_version);
	lz_config_free(&cfg);
}

static void test_images(void)
{
	struct lz_config cfg;

	CHECK(PARSE(&cfg, "/m") == 0);
	CHECK(cfg.images == NULL && cfg.backend == LZ_BACKEND_AUTO);
	CHECK(cfg.idle_timeout == 300.0 && cfg.image_timeout == 86400.0);
	lz_config_free(&cfg);

	CHECK(PARSE(&cfg, "-o", "images=/srv/img,backend=kernel,idle_timeout=0,image_timeout=5",
		    "/m") == 0);
	CHECK_STR(cfg.images, "/srv/img");
	CHECK(cfg.backend == LZ_BACKEND_KERNEL);
	CHECK(cfg.idle_timeout == 0.0 && cfg.image_timeout == 5.0);
	lz_config_free(&cfg);

	CHECK(PARSE(&cfg, "-o", "backend=fuse", "/m") == -1);
	CHECK(strstr(cfg.error, "backend: 'fuse'") != NULL);
	lz_config_free(&cfg);
	CHECK(PARSE(&cfg, "-o", "idle_timeout=soon", "/m") == -1);
	CHECK(strstr(cfg.error, "idle_timeout: 'soon'") != NULL);
	lz_config_free(&cfg);
	CHECK(PARSE(&cfg, "-o", "images=", "/m") == -1);
	lz_config_free(&cfg);
}

static void test_remote(void)
{
	struct lz_config cfg;
	uint64_t size;

	CHECK(PARSE(&cfg, "-o", "remote=:http\\,url='http://127.0.0.1:1/':,remote_mode=objects",
		    "/m") == 0);
	CHECK_STR(cfg.remote, ":http,url='http://127.0.0.1:1/':");
	CHECK(cfg.remote_objects);
	CHECK_STR(cfg.cache, "/var/cache/lazyfs");
	CHECK(cfg.cache_size == 0 && cfg.listing_ttl == 60.0 && cfg.fetch_timeout == 30.0);
	lz_config_free(&cfg);

	CHECK(PARSE(&cfg, "-o", "remote=media:clips,cache=/c,cache_size=20G,listing_ttl=5", "/m") ==
	      0);
	CHECK(!cfg.remote_objects && cfg.cache_size == (UINT64_C(20) << 30));
	CHECK_STR(cfg.cache, "/c");
	lz_config_free(&cfg);

	CHECK(PARSE(&cfg, "-o", "remote=nocolon", "/m") == -1);
	CHECK(strstr(cfg.error, "not REMOTE:PATH") != NULL);
	lz_config_free(&cfg);
	CHECK(PARSE(&cfg, "-o", "remote=r:p,remote_mode=streams", "/m") == -1);
	CHECK(strstr(cfg.error, "remote_mode: 'streams'") != NULL);
	lz_config_free(&cfg);
	CHECK(PARSE(&cfg, "-o", "cache_size=lots", "/m") == -1);
	CHECK(strstr(cfg.error, "cache_size: 'lots'") != NULL);
	lz_config_free(&cfg);
	CHECK(PARSE(&cfg, "-o", "fetch_timeout=0", "/m") == -1);
	lz_config_free(&cfg);

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
	struct lz_config cfg;

	CHECK(lz_config_parse(1, (char *[]){ "lazyfs", NULL }, &cfg) == -1);
	CHECK(strstr(cfg.error, "missing MOUNTPOINT") != NULL);
	lz_config_free(&cfg);

	CHECK(PARSE(&cfg, "a", "b", "c") == -1);
	CHECK(strstr(cfg.error, "unexpected argument 'c'") != NULL);
	lz_config_free(&cfg);

	CHECK(PARSE(&cfg, "-o", "open_mode=turbo", "/m") == -1);
	CHECK(strstr(cfg.error, "open_mode: 'turbo'") != NULL);
	lz_config_free(&cfg);

	const char *bad_timeouts[] = { "-1", "abc", "1e999", "nan", "", "5s" };
	for (size_t i = 0; i < sizeof(bad_timeouts) / sizeof(bad_timeouts[0]); i++) {
		char opt[64];
		snprintf(opt, sizeof(opt), "underlay_timeout=%s", bad_timeouts[i]);
		CHECK(PARSE(&cfg, "-o", opt, "/m") == -1);
		CHECK(strstr(cfg.error, "underlay_timeout") != NULL);
		lz_config_free(&cfg);
	}

	CHECK(PARSE(&cfg, "/m") == 0 && cfg.bpf == LZ_BPF_AUTO && cfg.prefetch &&
	      cfg.prefetch_max == 512ull << 20);
	lz_config_free(&cfg);
	CHECK(PARSE(&cfg, "-o", "bpf=on,prefetch=off,prefetch_max=1G", "/m") == 0 &&
	      cfg.bpf == LZ_BPF_ON && !cfg.prefetch && cfg.prefetch_max == 1ull << 30);
	lz_config_free(&cfg);
	CHECK(PARSE(&cfg, "-o", "bpf=off", "/m") == 0 && cfg.bpf == LZ_BPF_OFF);
	lz_config_free(&cfg);
	char *bad_bpf[] = { "bpf=yes", "bpf=", "prefetch=1", "prefetch_max=lots" };
	for (size_t i = 0; i < sizeof(bad_bpf) / sizeof(bad_bpf[0]); i++) {
		CHECK(PARSE(&cfg, "-o", bad_bpf[i], "/m") == -1);
		CHECK(strncmp(cfg.error, bad_bpf[i], strcspn(bad_bpf[i], "=")) == 0);
		lz_config_free(&cfg);
	}

	CHECK(PARSE(&cfg, "-o", "underlay=", "/m") == -1);
	lz_config_free(&cfg);
	CHECK(PARSE(&cfg, "-o", "max_threads=0", "/m") == -1);
	lz_config_free(&cfg);
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
