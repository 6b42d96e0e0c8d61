/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "sched.h"

#include <errno.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NICE_MAX 19

void lz_sched_background(pid_t main)
{
	errno = 0;
	int base = getpriority(PRIO_PROCESS, (id_t)main);
	if (errno != 0)
		return;
	int nice = base + LZ_BACKGROUND_NICE < NICE_MAX ? base + LZ_BACKGROUND_NICE : NICE_MAX;
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}
