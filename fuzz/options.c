/*
 * lz_config_parse on any command line, split into arguments at NUL and
 * newline bytes after "lazyfs": it never crashes, reads past an argument or
 * leaks (lz_config_free runs either way), and what it accepts is a usable
 * configuration that keeps the mount read-only.
 */
#include "config.h"
#include "check.h"
#include "fs/options.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS + 1], *text = malloc(size + 1);
	struct lz_config cfg;
	int argc = 0;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	argv[argc++] = "lazyfs";
	/* Every piece becomes its own argument (empty ones too), as argv can hold them. */
	for (char *p = text; argc < MAX_ARGS;) {
		size_t len = strcspn(p, "\n");
		argv[argc++] = p;
		if (p + len >= text + size)
			break;
		p[len] = '\0';
		p += len + 1;
	}
	argv[argc] = NULL;

	if (lz_config_parse(argc, argv, &cfg) == 0 && !cfg.show_help && !cfg.show_version) {
		bool ro = false;

		CHECK(cfg.mountpoint != NULL && cfg.cache != NULL && cfg.max_threads >= 1);
		CHECK(cfg.fetch_timeout > 0 && cfg.underlay_timeout >= 0 && cfg.idle_timeout >= 0);
		for (int i = 0; i + 1 < cfg.fuse_args.argc; i++)
			ro |= strcmp(cfg.fuse_args.argv[i], "-o") == 0 &&
			      strcmp(cfg.fuse_args.argv[i + 1], "ro") == 0;
		CHECK(ro);
	}
	CHECK(memchr(cfg.error, '\0', sizeof(cfg.error)) != NULL);
	lz_config_free(&cfg);
	for (int i = 1; i < argc; i++) {
		uint64_t bytes;
		lz_parse_size(argv[i], &bytes);
	}
	free(text);
	return 0;
}
