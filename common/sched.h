/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The daemon answers two kinds of work on the same CPUs: requests it answers
 * at once from memory (a warm open takes tens of microseconds) and work
 * behind cold data (fetching objects, checking and publishing them, the
 * rclone child). Under a burst of the second kind the first must not queue
 * behind it, so every thread doing fetch-side work runs niced, by
 * LZ_BACKGROUND_NICE above the daemon's main thread: it yields a busy CPU to
 * the request threads and loses nothing while one is idle.
 *
 * lz_sched_background sets the calling thread only (Linux keeps a nice value
 * per thread) to the nice value of MAIN's main thread (the daemon: getpid()
 * from its own threads, the parent's pid from a forked child) plus
 * LZ_BACKGROUND_NICE, at most 19: from the main thread's value, so a thread
 * started by a niced one is not niced twice. Async-signal-safe, so a forked
 * child may call it before exec. Failures are ignored: a priority is a
 * preference.
 */
#ifndef LAZYFS_SCHED_H
#define LAZYFS_SCHED_H

#include <sys/types.h>

#define LZ_BACKGROUND_NICE 10

void lz_sched_background(pid_t main);

#endif
