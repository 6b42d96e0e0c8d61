/* SPDX-License-Identifier: BSD-2-Clause */
/* What the harnesses assert about a parser's answers: a failure is a crash that names itself. */
#ifndef LAZYFS_FUZZ_CHECK_H
#define LAZYFS_FUZZ_CHECK_H

#include <sanitizer/common_interface_defs.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * Out of line, with the line as an argument, so the optimizer cannot merge
 * the failures into one: the stack trace in the log names the line. The
 * message itself shows when the input is rerun alone (scripts/fuzz closes
 * the target's stderr while fuzzing).
 */
__attribute__((noinline, noreturn, unused)) static void check_failed(const char *what,
								     const char *file, int line)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "CHECK failed at %s:%d: %s", file, line, what);
	__sanitizer_report_error_summary(msg);
	abort();
}

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			check_failed(#cond, __FILE__, __LINE__);                                   \
	} while (0)

#endif
