/* Logging: stderr while in the foreground, syslog once daemonized. */
#ifndef LAZYFS_LOG_H
#define LAZYFS_LOG_H

#include <stdbool.h>

enum lz_log_level { LZ_LOG_ERR, LZ_LOG_WARN, LZ_LOG_INFO, LZ_LOG_DEBUG };

void lz_log_init(const char *ident, bool debug);
void lz_log_to_syslog(void);
void lz_log(enum lz_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define lz_err(...)   lz_log(LZ_LOG_ERR, __VA_ARGS__)
#define lz_warn(...)  lz_log(LZ_LOG_WARN, __VA_ARGS__)
#define lz_info(...)  lz_log(LZ_LOG_INFO, __VA_ARGS__)
#define lz_debug(...) lz_log(LZ_LOG_DEBUG, __VA_ARGS__)

#endif
