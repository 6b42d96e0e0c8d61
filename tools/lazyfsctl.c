/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lazyfsctl: asks the lazyfs daemon serving a mountpoint what it is doing,
 * through its control socket. See lazyfsctl(8).
 */
#include "config.h"
#include "common/mountpoint.h"
#include "common/clock.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lazyfsctl [--json] [--timeout SECONDS] MOUNTPOINT COMMAND [ENTRY]\n"
		"commands: status, stats, images, metrics, evict ENTRY, pin ENTRY, unpin ENTRY,\n"
		"          prefetch ENTRY, reload, upgrade\n");
}

/* Sends REQUEST, copies the reply to stdout; the exit status. */
static int talk(const char *path, const char *mp, const char *request, double timeout)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	double deadline = lz_clock_s(CLOCK_MONOTONIC) + timeout;
	char buf[65536];
	size_t got = 0;
	bool first = true, failed = false;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "lazyfsctl: %s: socket path too long\n", mp);
		return EXIT_UNREACHABLE;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "lazyfsctl: %s: the daemon does not listen on %s (%s)\n", mp, path,
			strerror(errno));
		return EXIT_UNREACHABLE;
	}
	if (send(fd, request, strlen(request), MSG_NOSIGNAL) < 0) {
		fprintf(stderr, "lazyfsctl: %s: %s\n", mp, strerror(errno));
		return EXIT_UNREACHABLE;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left = deadline - lz_clock_s(CLOCK_MONOTONIC);
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) == 0) {
			fprintf(stderr, "lazyfsctl: %s: the daemon did not answer within %g s\n",
				mp, timeout);
			return EXIT_UNREACHABLE;
		}
		n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
		/* The status line decides the exit code; the rest is passed through. */
		char *nl = first ? strchr(buf, '\n') : NULL;
		if (first && nl == NULL && got < sizeof(buf) - 1)
			continue;
		if (first) {
			first = false;
			failed = strncmp(buf, "ok", 2) != 0;
			if (failed) {
				fprintf(stderr, "lazyfsctl: %s: %s", mp, buf);
			} else if (nl != NULL) {
				fputs(nl + 1, stdout);
			}
		} else {
			fputs(buf, failed ? stderr : stdout);
		}
		got = 0;
	}
	close(fd);
	if (first) {
		fprintf(stderr,
			"lazyfsctl: %s: the daemon closed the connection without answering\n", mp);
		return EXIT_UNREACHABLE;
	}
	return failed ? EXIT_FAILED : 0;
}

/*
 * MP made absolute without stat()ing MP itself: on a daemon that hangs that
 * would hang us before any timeout could apply. Its parent is resolved.
 */
static int canonical(const char *mp, char *out, size_t size)
{
	char copy[PATH_MAX], parent[PATH_MAX];
	char *slash, *base;

	if (snprintf(copy, sizeof(copy), "%s", mp) >= (int)sizeof(copy)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
		copy[strlen(copy) - 1] = '\0';
	slash = strrchr(copy, '/');
	base = slash ? slash + 1 : copy;
	if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strcmp(copy, "/") == 0)
		return realpath(copy, out) != NULL && strlen(out) < size ? 0 : -1;
	if (slash == copy)
		snprintf(parent, sizeof(parent), "/");
	else if (slash != NULL)
		*slash = '\0', snprintf(parent, sizeof(parent), "%s", copy);
	else
		snprintf(parent, sizeof(parent), ".");
	char real_parent[PATH_MAX];
	if (realpath(parent, real_parent) == NULL)
		return -1;
	if (snprintf(out, size, "%s/%s", strcmp(real_parent, "/") == 0 ? "" : real_parent, base) >=
	    (int)size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char real[PATH_MAX], path[128], request[PATH_MAX + 64];
	double timeout = 5;
	bool json = false, timeout_given = false;
	char binary[PATH_MAX];
	FILE *mi;
	int c;

	while ((c = getopt_long(argc, argv, "jt:h", longopts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'j':
			json = true;
			break;
		case 't':
			timeout = strtod(optarg, &end);
			timeout_given = true;
			if (*end != '\0' || !(timeout > 0 && timeout <= 3600)) {
				fprintf(stderr,
					"lazyfsctl: --timeout: '%s' is not 0 < SECONDS <= 3600\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind < 2 || argc - optind > 3) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *mp = argv[optind], *cmd = argv[optind + 1];
	const char *arg = argc - optind == 3 ? argv[optind + 2] : NULL;
	if (strpbrk(cmd, " \n") != NULL || (arg != NULL && strchr(arg, '\n') != NULL)) {
		fprintf(stderr, "lazyfsctl: a command or entry cannot hold a newline or space\n");
		return EXIT_USAGE;
	}
	if (canonical(mp, real, sizeof(real)) != 0) {
		fprintf(stderr, "lazyfsctl: %s: %s\n", mp, strerror(errno));
		return EXIT_USAGE;
	}
	mi = fopen("/proc/self/mountinfo", "re");
	if (mi == NULL || !lz_mountinfo_has(mi, real, "fuse.lazyfs")) {
		fprintf(stderr, "lazyfsctl: %s is not a lazyfs mount\n", mp);
		if (mi != NULL)
			fclose(mi);
		return EXIT_USAGE;
	}
	fclose(mi);
	if (strcmp(cmd, "upgrade") == 0) {
		/* The daemon runs elsewhere (its directory is /): it gets an absolute path. */
		if (arg != NULL) {
			if (realpath(arg, binary) == NULL) {
				fprintf(stderr, "lazyfsctl: %s: %s\n", arg, strerror(errno));
				return EXIT_USAGE;
			}
			arg = binary;
		}
		/* The new process opens its images and map before it answers. */
		if (!timeout_given)
			timeout = 120;
	}
	lz_control_path(real, path, sizeof(path));
	snprintf(request, sizeof(request), "%s%s%s%s\n", json ? "json " : "", cmd, arg ? " " : "",
		 arg ? arg : "");
	return talk(path, mp, request, timeout);
}
