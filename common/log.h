/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Logging: stderr while in the foreground (with sd-daemon priority prefixes,
 * "<3>", when stderr is the journal's stream: `journalctl -p err` finds
 * errors), syslog once daemonized.
 */
#ifndef LAZYFS_LOG_H
#define LAZYFS_LOG_H

#include <stdbool.h>

enum lz_log_level { LZ_LOG_ERR, LZ_LOG_WARN, LZ_LOG_INFO, LZ_LOG_DEBUG };

/*
 * Where a lower layer (the cache, the fetcher) sends what it has to say, so
 * its owner decides how (rate-limited, with a prefix). Called from any thread.
 */
typedef void lz_log_fn(void *ctx, enum lz_log_level level, const char *msg);

void lz_log_init(const char *ident, bool debug);
void lz_log_to_syslog(void);
void lz_log(enum lz_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * One call site's budget: at most LZ_LOG_BURST lines per LZ_LOG_WINDOW_S
 * seconds; what is held back is counted and said with the next line let
 * through. A fetch that fails on every open, or an eviction storm, cannot
 * flood the journal.
 */
#define LZ_LOG_BURST	10
#define LZ_LOG_WINDOW_S 60
struct lz_ratelimit {
	_Atomic long long window; /* CLOCK_MONOTONIC second the window started */
	_Atomic unsigned count, suppressed;
};
void lz_log_limited(struct lz_ratelimit *rl, enum lz_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define LZ_LOG_LIMITED(level, ...)                                                                 \
	do {                                                                                       \
		static struct lz_ratelimit lz_rl_;                                                 \
		lz_log_limited(&lz_rl_, level, __VA_ARGS__);                                       \
	} while (0)

#define lz_err(...)   lz_log(LZ_LOG_ERR, __VA_ARGS__)
#define lz_warn(...)  lz_log(LZ_LOG_WARN, __VA_ARGS__)
#define lz_info(...)  lz_log(LZ_LOG_INFO, __VA_ARGS__)
#define lz_debug(...) lz_log(LZ_LOG_DEBUG, __VA_ARGS__)

#endif
