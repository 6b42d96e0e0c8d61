#include "config.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

static const char *log_ident = "lazyfs";
static bool log_debug;
static bool log_syslog;

void lz_log_init(const char *ident, bool debug)
{
	log_ident = ident;
	log_debug = debug;
}

void lz_log_to_syslog(void)
{
	openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = true;
}

void lz_log(enum lz_log_level level, const char *fmt, ...)
{
	static const int syslog_priority[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
	va_list ap;

	if (level == LZ_LOG_DEBUG && !log_debug)
		return;
	va_start(ap, fmt);
	if (log_syslog) {
		vsyslog(syslog_priority[level], fmt, ap);
	} else {
		/* One fprintf per line keeps lines from different threads whole. */
		char line[1024];
		vsnprintf(line, sizeof(line), fmt, ap);
		fprintf(stderr, "%s: %s%s\n", log_ident, prefix[level], line);
	}
	va_end(ap);
}
