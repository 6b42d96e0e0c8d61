/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Pins that outlive the process, and images kept warm from the start.
 *
 * A pin (lazyfsctl pin, or warm=FILE) resolves an entry and keeps it: an
 * image is never expired, an object never evicted. Each entry pinned through
 * lz_pin_entry is noted in this mount's pin file (CACHE/pins/MOUNT, MOUNT the
 * mountpoint escaped as a systemd unit name; one entry per line, rewritten
 * whole at each change), so pins survive restarts. When a mount starts, and
 * when a crashed worker is replaced, a thread pins again every entry of that
 * file and of warm=FILE, one after the other, once the mount serves: nothing
 * waits for it. A live upgrade hands its pins over itself and skips it.
 */
#ifndef LAZYFS_PINS_H
#define LAZYFS_PINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lz_fs;
struct lz_pins;

/*
 * Reads warm=FILE (WARM, or NULL) and the pin file of FS's mount. NULL with a
 * one-line reason in ERR ("FILE:LINE: reason" for a bad line) when WARM cannot
 * be read or has a bad line, or the pin directory cannot be made.
 */
struct lz_pins *lz_pins_open(struct lz_fs *fs, const char *warm, char *err, size_t errlen);
/* Starts pinning the listed entries in the background. 0 or -errno. */
int lz_pins_start(struct lz_pins *pins);
/*
 * Stops the thread: true when it ended within WAIT_S seconds (a resolve
 * stuck on a store that does not answer may not end: what it uses is then
 * left to the process's exit). NULL is fine.
 */
bool lz_pins_stop(struct lz_pins *pins, double wait_s);
/* Frees PINS, stopped. NULL is fine. */
void lz_pins_free(struct lz_pins *pins);

/*
 * Pins (PIN) or unpins ENTRY ("gcc-12", "arm/gcc-12", an object's path),
 * resolving it first, and notes it in the pin file (an entry leaves it when
 * its last pin goes). 0; -ENOENT when there is nothing to resolve there or it
 * failed, -EINVAL when unpinning what is not pinned, -errno.
 */
int lz_pin_entry(struct lz_fs *fs, const char *entry, bool pin);

struct lz_pins_stats {
	uint64_t listed; /* entries to pin at start: warm=FILE and the pin file */
	uint64_t pinned; /* of them pinned so far */
	uint64_t failed; /* of them that could not be resolved */
	bool running;	 /* the thread is still at it */
};
void lz_pins_stats(struct lz_pins *pins, struct lz_pins_stats *out);

#endif
