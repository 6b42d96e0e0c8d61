/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lz_options_parse on any command line, split into arguments at NUL and
 * newline bytes after "lazyfs": it never crashes, reads past an argument or
 * leaks (lz_options_free runs either way), and what it accepts is a usable
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
	struct lz_options opts;
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

	if (lz_options_parse(argc, argv, &opts) == 0 && !opts.show_help && !opts.show_version) {
		bool ro = false;

		CHECK(opts.settings.mountpoint != NULL && opts.settings.cache != NULL &&
		      opts.settings.max_threads >= 1);
		CHECK(opts.settings.fetch_timeout > 0 && opts.settings.underlay_timeout >= 0 &&
		      opts.settings.idle_timeout >= 0);
		for (int i = 0; i + 1 < opts.fuse_args.argc; i++)
			ro |= strcmp(opts.fuse_args.argv[i], "-o") == 0 &&
			      strcmp(opts.fuse_args.argv[i + 1], "ro") == 0;
		CHECK(ro);
	}
	CHECK(memchr(opts.error, '\0', sizeof(opts.error)) != NULL);
	lz_options_free(&opts);
	for (int i = 1; i < argc; i++) {
		uint64_t bytes;
		lz_parse_size(argv[i], &bytes);
	}
	free(text);
	return 0;
}
