/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Restart after a crash, the worker's side: once serving, the connection,
 * the underlay and a sealed state memfd go to the keeper (keeper.h); a
 * worker the keeper starts after a crash gets them back and takes the
 * mount over from a record built here.
 */
#include "config.h"
#include "restart.h"
#include "handover.h"
#include "head.h"
#include "keeper.h"
#include "keeper_msg.h"
#include "takeover.h"
#include "upgrade.h"
#include "common/log.h"
#include "fscore/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_FUSE     "lazyfs-fuse"
#define NAME_UNDERLAY "lazyfs-underlay"
#define NAME_STATE    "lazyfs-state"
#define NAME_RECORD   "lazyfs-record-" /* + a record's name: kept for the next worker */
#define STATE_MAX     (64 * 1024)      /* a path and a FUSE_INIT request, in hex */

static int keeper_fd = -1;
/* Records the keeper passed back (inflight.h, nodes.h), by name; taken once. */
#define KEPT_MAX 4
static struct {
	char name[32];
	int fd;
} kept[KEPT_MAX];
static unsigned nkept;

int lz_restart_keeper_init(void)
{
	const char *v = getenv(LZ_KEEPER_ENV);
	char *end;
	long fd;

	if (v == NULL)
		return 0;
	fd = strtol(v, &end, 10);
	if (*v == '\0' || *end != '\0' || fd < 0 || fd > INT32_MAX || fcntl((int)fd, F_GETFD) < 0) {
		lz_err("%s does not name an open descriptor", LZ_KEEPER_ENV);
		return -1;
	}
	/* Not for rclone or a loader; a live upgrade passes it on itself. */
	fcntl((int)fd, F_SETFD, FD_CLOEXEC);
	keeper_fd = (int)fd;
	return 1;
}

int lz_restart_keeper_fd(void)
{
	return keeper_fd;
}

/* One message to the keeper, with descriptor FD unless it is -1. 0 or -1. */
static int tell(const char *text, int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = (void *)text, .iov_len = strlen(text) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (keeper_fd < 0)
		return -1;
	if (fd >= 0) {
		memset(ctl, 0, sizeof(ctl));
		msg.msg_control = ctl;
		msg.msg_controllen = sizeof(ctl);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(keeper_fd, &msg, MSG_NOSIGNAL) == (ssize_t)iov.iov_len ? 0 : -1;
}

/* The record's first lines, in a sealed memfd; -1 if unknown. */
static int state_memfd(const struct lz_upgrade *up)
{
	struct lz_handover h = { 0 };
	int fd = -1;

	lz_handover_printf(&h, "version %d\n", LZ_RECORD_VERSION_OLDEST);
	if (lz_upgrade_mount_lines(up, &h) == 0 && !h.failed &&
	    (fd = memfd_create(NAME_STATE, MFD_CLOEXEC | MFD_ALLOW_SEALING)) >= 0) {
		if (write(fd, h.text, h.len) != (ssize_t)h.len ||
		    fcntl(fd, F_ADD_SEALS,
			  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
			close(fd);
			fd = -1;
		}
	}
	lz_handover_free(&h);
	return fd;
}

void lz_restart_store(const struct lz_upgrade *up, int fuse_fd, int underlay_fd)
{
	if (keeper_fd < 0)
		return;
	int state = state_memfd(up);
	if (state < 0) {
		lz_warn("restart: no state to store (%s); a crash will leave the mount unusable",
			strerror(errno));
		return;
	}
	if (tell("store " NAME_FUSE, fuse_fd) != 0 ||
	    tell("store " NAME_UNDERLAY, underlay_fd) != 0 || tell("store " NAME_STATE, state) != 0)
		lz_warn("restart: the keeper did not take the mount (%s); a crash will leave it "
			"unusable",
			strerror(errno));
	else
		lz_debug("restart: the connection is with the keeper");
	close(state);
}

void lz_restart_keep_record(const char *name, int fd)
{
	char line[64];

	snprintf(line, sizeof(line), "store " NAME_RECORD "%s", name);
	if (keeper_fd >= 0 && fd >= 0 && tell(line, fd) != 0)
		lz_warn("restart: the keeper did not take the %s record: %s", name,
			strerror(errno));
}

int lz_restart_kept_record(const char *name)
{
	for (unsigned i = 0; i < nkept; i++)
		if (kept[i].fd >= 0 && strcmp(kept[i].name, name) == 0) {
			int fd = kept[i].fd;
			kept[i].fd = -1;
			return fd;
		}
	return -1;
}

bool lz_restart_after_sigkill(void)
{
	const char *v = getenv(LZ_WORKER_KILLED_ENV);

	return v != NULL && strcmp(v, "1") == 0;
}

void lz_restart_ready(void)
{
	char line[64];

	snprintf(line, sizeof(line), "ready %d", (int)getpid());
	if (keeper_fd >= 0 && tell(line, -1) != 0)
		lz_warn("restart: cannot tell the keeper this process serves: %s", strerror(errno));
}

void lz_restart_unstore(void)
{
	tell("unstore", -1);
}

/* The memfd's text, NUL-terminated; NULL if unreadable. */
static char *read_state(int fd)
{
	char *text = malloc(STATE_MAX + 1);
	ssize_t n = text != NULL ? pread(fd, text, STATE_MAX, 0) : -1;

	if (n <= 0) {
		free(text);
		return NULL;
	}
	text[n] = '\0';
	return text;
}

/* The whole record: the stored lines, then the connection and the root on the underlay. */
static int build_record(struct lz_handover *h, const char *state, int fuse_fd, int underlay_fd,
			bool mapped, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(underlay_fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "the stored underlay is not a directory");
		return -1;
	}
	h->owns_fds = true;
	lz_handover_printf(h, "%s", state);
	lz_head_write_fds(h, lz_handover_add_fd(h, fuse_fd), -1, -1, NULL);
	lz_handover_printf(h, "source 1 %ju\n", (uintmax_t)st.st_dev);
	lz_handover_printf(h, "inode %d %d %u 1 %d -1 0 0 - -1 0", LZ_ROOT_ID, (int)LZ_INODE_FD,
			   (unsigned)(st.st_mode & S_IFMT), lz_handover_add_fd(h, underlay_fd));
	lz_handover_string(h, mapped ? "" : NULL);
	lz_handover_printf(h, "\nend\n");
	if (h->failed) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* The descriptors the keeper passed ("NAME:FD,..."); false when none were. */
static bool passed_fds(int *fuse_fd, int *underlay_fd, int *state_fd)
{
	const char *v = getenv(LZ_RESTART_FDS_ENV);
	struct lz_kept_fd items[16];
	size_t n;

	*fuse_fd = *underlay_fd = *state_fd = -1;
	if (v == NULL || strlen(v) >= LZ_KEEPER_FDS_MAX)
		return false;
	n = lz_keeper_fds_parse(v, items, sizeof(items) / sizeof(items[0]));
	unsetenv(LZ_RESTART_FDS_ENV); /* not for a later upgrade's process (V goes with it) */
	for (size_t i = 0; i < n; i++) {
		const char *name = items[i].name;
		int fd = items[i].fd;
		if (fcntl(fd, F_GETFD) < 0)
			continue;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (strcmp(name, NAME_FUSE) == 0)
			*fuse_fd = fd;
		else if (strcmp(name, NAME_UNDERLAY) == 0)
			*underlay_fd = fd;
		else if (strcmp(name, NAME_STATE) == 0)
			*state_fd = fd;
		else if (strncmp(name, NAME_RECORD, strlen(NAME_RECORD)) == 0 && nkept < KEPT_MAX) {
			snprintf(kept[nkept].name, sizeof(kept[nkept].name), "%s",
				 name + strlen(NAME_RECORD));
			kept[nkept++].fd = fd;
		}
	}
	return *fuse_fd >= 0 || *underlay_fd >= 0 || *state_fd >= 0;
}

static void close_all(int a, int b, int c)
{
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	if (c >= 0)
		close(c);
}

struct lz_takeover *lz_restart_takeover(struct lz_upgrade *up, bool mapped, char *err,
					size_t errlen)
{
	int fuse_fd, underlay_fd, state_fd;
	struct lz_handover h = { 0 };
	struct pollfd pfd;

	err[0] = '\0';
	if (!passed_fds(&fuse_fd, &underlay_fd, &state_fd))
		return NULL;
	pfd = (struct pollfd){ .fd = fuse_fd };
	if (fuse_fd < 0 || underlay_fd < 0 || state_fd < 0 || poll(&pfd, 1, 0) != 0) {
		snprintf(err, errlen, "the kept mount %s",
			 fuse_fd < 0 || underlay_fd < 0 || state_fd < 0 ? "is incomplete"
									: "has ended");
		close_all(fuse_fd, underlay_fd, state_fd);
		return NULL;
	}
	char *state = read_state(state_fd);
	close(state_fd);
	if (state == NULL) {
		snprintf(err, errlen, "the kept state cannot be read");
		close_all(fuse_fd, underlay_fd, -1);
		return NULL;
	}
	int rc = build_record(&h, state, fuse_fd, underlay_fd, mapped, err, errlen);
	free(state);
	if (rc != 0) {
		if (!h.owns_fds)
			close_all(fuse_fd, underlay_fd, -1);
		lz_handover_free(&h);
		return NULL;
	}
	lz_info("restart: taking the kept mount over (the worker before ended)");
	return lz_takeover_from_record(up, &h, err, errlen);
}
