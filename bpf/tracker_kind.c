/* SPDX-License-Identifier: BSD-2-Clause */
/* Shared by the tracker and its --disable-bpf stub: names for log lines. */
#include "config.h"
#include "tracker.h"

const char *lz_tracker_kind_name(enum lz_tracker_kind kind)
{
	static const char *const names[] = { "openat",	 "openat2", "execve",
					     "execveat", "fstatat", "statx" };

	return (unsigned)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "?";
}
