/* SPDX-License-Identifier: BSD-2-Clause */
/* The per-call-site log budget: a burst, then silence, then a count of what was held back. */
#include "config.h"
#include "common/log.h"
#include "unit.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int count_lines(FILE *f, const char *needle)
{
	char line[1024];
	int n = 0;

	rewind(f);
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, needle) != NULL;
	return n;
}

int main(void)
{
	static struct lz_ratelimit rl;
	FILE *capture = tmpfile();
	int saved = dup(2);

	CHECK(capture != NULL && saved >= 0);
	if (capture == NULL)
		return 1;
	lz_log_init("test_log", false);
	dup2(fileno(capture), 2);
	for (int i = 0; i < 25; i++)
		lz_log_limited(&rl, LZ_LOG_WARN, "fetch of 'x' failed: %d", i);
	/* The window is over: the next line says how many were held back. */
	atomic_store(&rl.window, atomic_load(&rl.window) - LZ_LOG_WINDOW_S);
	lz_log_limited(&rl, LZ_LOG_WARN, "fetch of 'x' failed: %s", "again");
	lz_log_limited(&rl, LZ_LOG_DEBUG, "debug lines need -d: %d", 1);
	fflush(stderr);
	dup2(saved, 2);

	CHECK(count_lines(capture, "fetch of 'x' failed") == LZ_LOG_BURST + 1);
	CHECK(count_lines(capture, "failed: 9") == 1 && count_lines(capture, "failed: 10") == 0);
	CHECK(count_lines(capture, "failed: again (15 similar lines held back before this one)") ==
	      1);
	CHECK(count_lines(capture, "warning: ") == LZ_LOG_BURST + 1);
	CHECK(count_lines(capture, "debug lines") == 0);
	fclose(capture);
	return unit_finish("test_log");
}
