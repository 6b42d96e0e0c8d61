/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The one clock of lazyfs. Ages, timeouts, rates and deadlines use
 * CLOCK_MONOTONIC (a stepped wall clock must not expire an image or a fetch);
 * CLOCK_REALTIME only for what is shown or stored (a start time, a cache
 * record's stamp) and for the timed waits that measure against it
 * (sem_timedwait, pthread_cond_timedwait on a default condition).
 */
#ifndef LAZYFS_CLOCK_H
#define LAZYFS_CLOCK_H

#include <stdint.h>
#include <time.h>

#define LZ_NS_PER_S 1000000000LL

/* CLOCK in nanoseconds. */
static inline int64_t lz_clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * LZ_NS_PER_S + ts.tv_nsec;
}

/* CLOCK in seconds, with the fraction; (long long) of it is the whole seconds. */
static inline double lz_clock_s(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The time on CLOCK SECONDS from now: the deadline of a timed wait. */
static inline struct timespec lz_clock_after(clockid_t clock, double seconds)
{
	int64_t at = lz_clock_ns(clock) + (int64_t)(seconds * 1e9);

	return (struct timespec){ .tv_sec = (time_t)(at / LZ_NS_PER_S),
				  .tv_nsec = (long)(at % LZ_NS_PER_S) };
}

#endif
