/*
 * Restart after a crash: the connection, the underlay and a sealed state
 * memfd left in the supervisor's descriptor store once serving, and the
 * takeover of a stored mount a new daemon is started with.
 */
#include "config.h"
#include "restart.h"
#include "core/fs.h"
#include "handover.h"
#include "common/log.h"
#include "takeover.h"
#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

#define NAME_FUSE     "lazyfs-fuse"
#define NAME_UNDERLAY "lazyfs-underlay"
#define NAME_STATE    "lazyfs-state"
#define STATE_MAX     (64 * 1024) /* a path and a FUSE_INIT request, in hex */

/*
 * FDPOLL=0 for all but the connection: the supervisor cannot poll an O_PATH
 * descriptor (and would refuse it); the connection it polls, and drops from
 * the store by itself once the mount is gone.
 */
static int store_one(int fd, const char *name, bool poll)
{
	char state[96];

	snprintf(state, sizeof(state), "FDSTORE=1\nFDNAME=%s%s", name, poll ? "" : "\nFDPOLL=0");
	return sd_pid_notify_with_fds(0, 0, state, &fd, 1);
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
	if (getenv("NOTIFY_SOCKET") == NULL)
		return;
	int state = state_memfd(up);
	if (state < 0) {
		lz_warn("restart: no state to store (%s); a crash will leave the mount unusable",
			strerror(errno));
		return;
	}
	if (store_one(fuse_fd, NAME_FUSE, true) <= 0 ||
	    store_one(underlay_fd, NAME_UNDERLAY, false) <= 0 ||
	    store_one(state, NAME_STATE, false) <= 0)
		lz_warn("restart: the supervisor's descriptor store refused the mount; a crash "
			"will leave it unusable");
	else
		lz_debug("restart: the connection is in the supervisor's descriptor store");
	close(state);
}

void lz_restart_unstore(void)
{
	static const char *const names[] = { NAME_FUSE, NAME_UNDERLAY, NAME_STATE };

	if (getenv("NOTIFY_SOCKET") == NULL)
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		sd_notifyf(0, "FDSTOREREMOVE=1\nFDNAME=%s", names[i]);
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
	lz_handover_printf(h, "fuse %d\ncontrol -1 -1 -\nsource 1 %ju\n",
			   lz_handover_add_fd(h, fuse_fd), (uintmax_t)st.st_dev);
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

struct lz_takeover *lz_restart_takeover(struct lz_upgrade *up, bool mapped, char *err,
					size_t errlen)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names), fuse_fd = -1, underlay_fd = -1, state_fd = -1;
	struct pollfd pfd;

	err[0] = '\0';
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		if (names != NULL && strcmp(names[i], NAME_FUSE) == 0)
			fuse_fd = fd;
		else if (names != NULL && strcmp(names[i], NAME_UNDERLAY) == 0)
			underlay_fd = fd;
		else if (names != NULL && strcmp(names[i], NAME_STATE) == 0)
			state_fd = fd;
	}
	for (int i = 0; names != NULL && i < n; i++)
		free(names[i]);
	free(names);
	if (fuse_fd < 0 && underlay_fd < 0 && state_fd < 0)
		return NULL;
	pfd = (struct pollfd){ .fd = fuse_fd };
	/* Unmounted while no daemon ran (POLLERR), or never stored whole: mount anew. */
	if (fuse_fd < 0 || underlay_fd < 0 || state_fd < 0 || poll(&pfd, 1, 0) != 0) {
		lz_warn("restart: the stored mount %s; mounting anew",
			fuse_fd < 0 || underlay_fd < 0 || state_fd < 0 ? "is incomplete"
								       : "has ended");
		lz_restart_unstore();
		for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++)
			if (fd == fuse_fd || fd == underlay_fd || fd == state_fd)
				close(fd);
		return NULL;
	}
	char *state = read_state(state_fd);
	struct lz_handover h = { 0 };
	close(state_fd);
	if (state == NULL) {
		snprintf(err, errlen, "the stored state cannot be read");
		close(fuse_fd);
		close(underlay_fd);
		return NULL;
	}
	int rc = build_record(&h, state, fuse_fd, underlay_fd, mapped, err, errlen);
	free(state);
	if (rc != 0) {
		if (!h.owns_fds) {
			close(fuse_fd);
			close(underlay_fd);
		}
		lz_handover_free(&h);
		return NULL;
	}
	lz_info("restart: taking the stored mount over (the daemon before ended)");
	return lz_takeover_from_record(up, &h, err, errlen);
}

#else /* no libsystemd: no supervisor's store to use */

void lz_restart_store(const struct lz_upgrade *up, int fuse_fd, int underlay_fd)
{
	(void)up;
	(void)fuse_fd;
	(void)underlay_fd;
}

void lz_restart_unstore(void)
{
}

struct lz_takeover *lz_restart_takeover(struct lz_upgrade *up, bool mapped, char *err,
					size_t errlen)
{
	(void)up;
	(void)mapped;
	if (errlen > 0)
		err[0] = '\0';
	return NULL;
}

#endif
