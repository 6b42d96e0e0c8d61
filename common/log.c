/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "log.h"
#include "clock.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>

static const char *log_ident = "lazyfs";
static bool log_debug;
static bool log_syslog;
static bool log_journal;

/*
 * Whether stderr is the journal's stream: systemd says so in JOURNAL_STREAM
 * ("DEV:INO" of the stream it gave), which a child we run inherits though
 * its stderr goes elsewhere, so the descriptor itself must match.
 */
static bool stderr_is_journal(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	return v != NULL && sscanf(v, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
	       (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void lz_log_init(const char *ident, bool debug)
{
	log_ident = ident;
	log_debug = debug;
	log_journal = stderr_is_journal();
}

void lz_log_to_syslog(void)
{
	openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = true;
}

/* (The format attribute lets clang's -Wformat-nonliteral see FMT is checked by the callers.) */
__attribute__((format(printf, 3, 0))) static void log_v(enum lz_log_level level, const char *suffix,
							const char *fmt, va_list ap)
{
	static const int syslog_priority[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
	/* One write per line keeps lines from different threads whole. */
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_syslog)
		syslog(syslog_priority[level], "%s%s", line, suffix);
	else if (log_journal) /* "<3>": the journal takes the priority and names us itself */
		fprintf(stderr, "<%d>%s%s%s\n", syslog_priority[level], prefix[level], line,
			suffix);
	else
		fprintf(stderr, "%s: %s%s%s\n", log_ident, prefix[level], line, suffix);
}

void lz_log(enum lz_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level == LZ_LOG_DEBUG && !log_debug)
		return;
	va_start(ap, fmt);
	log_v(level, "", fmt, ap);
	va_end(ap);
}

void lz_log_limited(struct lz_ratelimit *rl, enum lz_log_level level, const char *fmt, ...)
{
	char suffix[80] = "";
	long long now, start;
	va_list ap;

	if (level == LZ_LOG_DEBUG && !log_debug)
		return;
	now = (long long)lz_clock_s(CLOCK_MONOTONIC);
	start = atomic_load(&rl->window);
	if (now - start >= LZ_LOG_WINDOW_S &&
	    atomic_compare_exchange_strong(&rl->window, &start, now))
		atomic_store(&rl->count, 0);
	if (atomic_fetch_add(&rl->count, 1) >= LZ_LOG_BURST) {
		atomic_fetch_add(&rl->suppressed, 1);
		return;
	}
	unsigned held = atomic_exchange(&rl->suppressed, 0);
	if (held > 0)
		snprintf(suffix, sizeof(suffix), " (%u similar lines held back before this one)",
			 held);
	va_start(ap, fmt);
	log_v(level, suffix, fmt, ap);
	va_end(ap);
}
