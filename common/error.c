/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

void lz_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/* One line, whatever a key or a fetcher's message held. */
	for (char *p = err; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}
