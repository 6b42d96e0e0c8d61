/*
 * Live upgrade, the new process's side: the record received and checked, the
 * state restored into the core, the connection attached to a session and its
 * FUSE_INIT replayed, then "ready" (or the reason it gave up) to the old one.
 */
#include "config.h"
#include "takeover.h"
#include "fscore/fs.h"
#include "handover.h"
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
	char *mountpoint;
	unsigned minor;
	unsigned char *init;
	size_t init_len;
	long fuse_index, listen_index, http_index;
	char *control_path;
};

/* The part of the kernel's FUSE request header that is read here. */
struct in_header {
	uint32_t len, opcode;
	uint64_t unique;
};
#define FUSE_INIT_OPCODE 26

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
	free(t->mountpoint);
	free(t->init);
	free(t->control_path);
	free(t);
}

/* The lines this file reads; snapshot.c reads the others. */
static int parse(struct lz_takeover *t, char *err, size_t errlen)
{
	char *text = strdup(t->h.text), *save = NULL;
	unsigned line = 0;
	bool version = false, end = false;
	int rc = 0;

	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (char *l = strtok_r(text, "\n", &save); l != NULL && rc == 0;
	     l = strtok_r(NULL, "\n", &save)) {
		char a[32], b[32], c[4096];
		bool ok = true;
		line++;
		if (end) {
			rc = -1;
		} else if (line == 1) {
			int v;
			version = sscanf(l, "version %d", &v) == 1;
			if (version && (v < LZ_RECORD_VERSION_OLDEST || v > LZ_RECORD_VERSION)) {
				snprintf(err, errlen,
					 "state record version %d, this binary reads versions %d "
					 "to %d",
					 v, LZ_RECORD_VERSION_OLDEST, LZ_RECORD_VERSION);
				free(text);
				return -1;
			}
			rc = version ? 0 : -1;
		} else if (strncmp(l, "mountpoint ", 11) == 0) {
			char *p = lz_handover_unescape(l + 11, &ok);
			rc = ok && p != NULL && p[0] == '/' && (t->mountpoint = strdup(p)) ? 0 : -1;
		} else if (sscanf(l, "minor %u", &t->minor) == 1) {
		} else if (strncmp(l, "init ", 5) == 0) {
			rc = lz_handover_unbytes(l + 5, &t->init, &t->init_len);
		} else if (sscanf(l, "fuse %ld", &t->fuse_index) == 1) {
		} else if (sscanf(l, "control %31s %31s %4095s", a, b, c) == 3) {
			char *p = lz_handover_unescape(c, &ok);
			t->listen_index = strtol(a, NULL, 10);
			t->http_index = strtol(b, NULL, 10);
			rc = ok && (p == NULL || (t->control_path = strdup(p)) != NULL) ? 0 : -1;
		} else if (strcmp(l, "end") == 0) {
			end = true;
		}
		if (rc != 0)
			snprintf(err, errlen, "state record line %u is malformed", line);
	}
	free(text);
	if (rc == 0 && !version)
		snprintf(err, errlen, "state record has no version line"), rc = -1;
	else if (rc == 0 && !end)
		snprintf(err, errlen, "state record is truncated (no end line)"), rc = -1;
	else if (rc == 0 && (t->mountpoint == NULL || t->init == NULL || t->fuse_index < 0))
		snprintf(err, errlen, "state record lacks the mountpoint, FUSE_INIT or connection"),
			rc = -1;
	else if (rc == 0 && (t->init_len < sizeof(struct in_header) ||
			     ((struct in_header *)t->init)->opcode != FUSE_INIT_OPCODE ||
			     ((struct in_header *)t->init)->len != t->init_len))
		snprintf(err, errlen, "state record's FUSE_INIT request is malformed"), rc = -1;
	return rc;
}

static struct lz_takeover *new_takeover(struct lz_upgrade *up, int sock)
{
	struct lz_takeover *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->upgrade = up;
	t->sock = sock;
	t->fuse_index = t->listen_index = t->http_index = -1;
	return t;
}

/* Parses T's record; NULL with ERR (told to the old daemon, if any). */
static struct lz_takeover *parsed(struct lz_takeover *t, char *err, size_t errlen)
{
	if (parse(t, err, errlen) != 0) {
		lz_takeover_fail(t, err);
		return NULL;
	}
	lz_upgrade_set_init(t->upgrade, t->init, t->init_len);
	lz_upgrade_set_mount(t->upgrade, t->mountpoint, t->minor);
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
	return t->mountpoint;
}

unsigned lz_takeover_minor(const struct lz_takeover *t)
{
	return t->minor;
}

void lz_takeover_control(struct lz_takeover *t, int *listen_fd, int *http_fd, const char **path)
{
	*listen_fd = lz_handover_take_fd(&t->h, t->listen_index);
	*http_fd = lz_handover_take_fd(&t->h, t->http_index);
	*path = t->control_path;
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
	int fd = lz_handover_take_fd(&t->h, t->fuse_index);

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
	struct fuse_buf buf = { .mem = malloc(t->init_len), .size = t->init_len };
	if (buf.mem == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(buf.mem, t->init, t->init_len);
	((struct in_header *)buf.mem)->unique = SYNTHETIC_UNIQUE;
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
