/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Live upgrade, the new process's side: the record received and checked, the
 * state restored into the core, the connection attached to a session and its
 * FUSE_INIT replayed, then "ready" (or the reason it gave up) to the old one.
 */
#include "config.h"
#include "takeover.h"
#include "fscore/fs.h"
#include "handover.h"
#include "head.h"
#include "common/log.h"
#include "snapshot.h"
#include "upgrade.h"

#define FUSE_USE_VERSION 317
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

/* Waiting for the old daemon to stop serving and capture its state. */
#define RECEIVE_TIMEOUT_MS 60000
#define BYE_TIMEOUT_MS	   5000

/*
 * The replayed FUSE_INIT's reply is written to the connection too; with a
 * unique id the kernel never issued it matches no request and is dropped
 * (ENOENT, which libfuse ignores as it does for interrupted requests).
 */
#define SYNTHETIC_UNIQUE (UINT64_C(0x7ffffffffffffffe))

struct lz_takeover {
	struct lz_upgrade *upgrade; /* told the FUSE_INIT and the mount */
	int sock;
	struct lz_handover h;
	struct lz_head head; /* what the record's head lines say */
};

int lz_takeover_sock_from_env(void)
{
	const char *v = getenv(LZ_TAKEOVER_ENV);
	char *end;
	long fd;

	if (v == NULL)
		return -1;
	fd = strtol(v, &end, 10);
	unsetenv(LZ_TAKEOVER_ENV); /* not inherited by rclone or a later upgrade */
	if (*v == '\0' || *end != '\0' || fd < 0 || fd > INT32_MAX || fcntl((int)fd, F_GETFD) < 0) {
		lz_err("%s does not name an open descriptor", LZ_TAKEOVER_ENV);
		return -2;
	}
	fcntl((int)fd, F_SETFD, FD_CLOEXEC);
	return (int)fd;
}

static void free_takeover(struct lz_takeover *t)
{
	if (t == NULL)
		return;
	if (t->sock >= 0)
		close(t->sock);
	lz_handover_free(&t->h);
	lz_head_free(&t->head);
	free(t);
}

static struct lz_takeover *new_takeover(struct lz_upgrade *up, int sock)
{
	struct lz_takeover *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->upgrade = up;
	t->sock = sock;
	t->head = (struct lz_head){ .fuse_index = -1, .listen_index = -1, .http_index = -1 };
	return t;
}

/* Parses T's record; NULL with ERR (told to the old daemon, if any). */
static struct lz_takeover *parsed(struct lz_takeover *t, char *err, size_t errlen)
{
	if (lz_head_parse(t->h.text, &t->head, err, errlen) != 0) {
		lz_takeover_fail(t, err);
		return NULL;
	}
	lz_upgrade_set_init(t->upgrade, t->head.init, t->head.init_len);
	lz_upgrade_set_mount(t->upgrade, t->head.mountpoint, t->head.minor);
	return t;
}

struct lz_takeover *lz_takeover_receive(struct lz_upgrade *up, int sock, char *err, size_t errlen)
{
	struct lz_takeover *t = new_takeover(up, sock);

	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		lz_handover_say(sock, "error out of memory");
		close(sock);
		return NULL;
	}
	if (lz_handover_recv(sock, &t->h, RECEIVE_TIMEOUT_MS, err, errlen) != 0) {
		lz_takeover_fail(t, err);
		return NULL;
	}
	return parsed(t, err, errlen);
}

struct lz_takeover *lz_takeover_from_record(struct lz_upgrade *up, struct lz_handover *h, char *err,
					    size_t errlen)
{
	struct lz_takeover *t = new_takeover(up, -1);

	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		lz_handover_free(h);
		return NULL;
	}
	t->h = *h;
	memset(h, 0, sizeof(*h));
	return parsed(t, err, errlen);
}

const char *lz_takeover_mountpoint(const struct lz_takeover *t)
{
	return t->head.mountpoint;
}

unsigned lz_takeover_minor(const struct lz_takeover *t)
{
	return t->head.minor;
}

void lz_takeover_control(struct lz_takeover *t, int *listen_fd, int *http_fd, const char **path)
{
	*listen_fd = lz_handover_take_fd(&t->h, t->head.listen_index);
	*http_fd = lz_handover_take_fd(&t->h, t->head.http_index);
	*path = t->head.control_path;
}

int lz_takeover_restore(struct lz_takeover *t, struct lz_fs *fs, char *err, size_t errlen)
{
	if (lz_snapshot_restore(fs, &t->h, err, errlen) != 0)
		return -1;
	fs->root = lz_inode_find(fs->inodes, LZ_ROOT_ID);
	return 0;
}

int lz_takeover_attach(struct lz_takeover *t, struct fuse_session *se, char *err, size_t errlen)
{
	char dev[32];
	int fd = lz_handover_take_fd(&t->h, t->head.fuse_index);

	if (fd < 0) {
		snprintf(err, errlen, "the /dev/fuse descriptor is missing");
		return -1;
	}
	/* libfuse's way to serve a connection someone else mounted: no mount(2) here. */
	snprintf(dev, sizeof(dev), "/dev/fd/%d", fd);
	if (fuse_session_mount(se, dev) != 0) {
		close(fd);
		snprintf(err, errlen, "libfuse refused the /dev/fuse descriptor");
		return -1;
	}
	struct fuse_buf buf = { .mem = malloc(t->head.init_len), .size = t->head.init_len };
	if (buf.mem == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(buf.mem, t->head.init, t->head.init_len);
	((struct lz_fuse_in_header *)buf.mem)->unique = SYNTHETIC_UNIQUE;
	fuse_session_process_buf(se, &buf);
	free(buf.mem);
	if (fuse_session_exited(se)) {
		snprintf(err, errlen, "libfuse did not accept the replayed FUSE_INIT");
		return -1;
	}
	return 0;
}

void lz_takeover_ready(struct lz_takeover *t)
{
	char line[64], bye[16];

	if (t->sock >= 0) {
		snprintf(line, sizeof(line), "ready %d", (int)getpid());
		lz_handover_say(t->sock, line);
		/* The old daemon names us to systemd first (NotifyAccess=main). */
		lz_handover_hear(t->sock, bye, sizeof(bye), BYE_TIMEOUT_MS);
	}
	free_takeover(t);
}

void lz_takeover_fail(struct lz_takeover *t, const char *reason)
{
	char line[600];

	if (t->sock >= 0) {
		snprintf(line, sizeof(line), "error %s", reason);
		lz_handover_say(t->sock, line);
	}
	free_takeover(t);
}

void lz_takeover_unmount(int fuse_fd, const char *mountpoint)
{
	struct pollfd pfd = { .fd = fuse_fd, .events = 0 };

	/* As libfuse does: POLLERR means the kernel ended the connection (umount, abort). */
	if (fuse_fd >= 0 && poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR))
		return;
	if (mountpoint != NULL && umount2(mountpoint, MNT_DETACH) != 0)
		lz_warn("cannot unmount %s: %s", mountpoint, strerror(errno));
}
