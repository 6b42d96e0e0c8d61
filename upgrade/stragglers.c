/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "stragglers.h"
#include "upgrade.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <linux/fuse.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Room for the largest request the kernel sends (FUSE_MAX_MAX_PAGES, and a header). */
#define REQUEST_MAX ((256 + 2) * 4096)

/* Requests the kernel expects no answer to. */
static bool unanswered(uint32_t opcode)
{
	return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT;
}

/* Answers one request read from FD with EIO: false when the connection ended. */
static bool answer_one(int fd, char *buf)
{
	ssize_t n = read(fd, buf, REQUEST_MAX);
	struct fuse_in_header in;

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ||
		       errno == ENOENT; /* ENOENT: interrupted */
	if ((size_t)n < sizeof(in))
		return true;
	memcpy(&in, buf, sizeof(in));
	if (!unanswered(in.opcode)) {
		struct fuse_out_header out = { .len = sizeof(out),
					       .error = -EIO,
					       .unique = in.unique };
		if (write(fd, &out, sizeof(out)) < 0 && errno == ENODEV)
			return false;
	}
	return true;
}

void lz_answer_stragglers(int fuse_fd, double seconds)
{
	char *buf = malloc(REQUEST_MAX);
	double end = lz_clock_s(CLOCK_MONOTONIC) + seconds;
	unsigned answered = 0;

	if (buf == NULL)
		return;
	/* What the dead worker had read comes back to be answered too. */
	lz_upgrade_resend(fuse_fd);
	for (double now; (now = lz_clock_s(CLOCK_MONOTONIC)) < end;) {
		struct pollfd p = { .fd = fuse_fd, .events = POLLIN };
		int ready = poll(&p, 1, (int)((end - now) * 1000) + 1);
		if (ready < 0 && errno != EINTR)
			break;
		if (ready <= 0)
			continue;
		if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
			break; /* the connection ended: nobody can send more */
		if (!answer_one(fuse_fd, buf))
			break;
		answered++;
	}
	if (answered > 0)
		lz_info("keeper: answered %u request(s) left on the detached mount with EIO",
			answered);
	free(buf);
}
