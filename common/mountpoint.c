/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "names.h"
#include "mountpoint.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *out = s;

	while (*s != '\0') {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

/*
 * Splits a mountinfo LINE (changed in place): "id parent major:minor root
 * mountpoint options [optional...] - fstype source ...". False when it is not one.
 */
static bool parse_line(char *line, unsigned *major, unsigned *minor, char **mnt, char **type)
{
	char *save = NULL, *field, *dev = NULL;
	int index = 0;
	char *sep = strstr(line, " - ");

	if (sep == NULL)
		return false;
	*sep = '\0';
	*mnt = NULL;
	for (field = strtok_r(line, " ", &save); field != NULL;
	     field = strtok_r(NULL, " ", &save), index++) {
		if (index == 2)
			dev = field;
		if (index == 4)
			*mnt = field;
	}
	*type = strtok_r(sep + 3, " ", &save);
	if (*mnt == NULL || *type == NULL || dev == NULL || sscanf(dev, "%u:%u", major, minor) != 2)
		return false;
	unescape_octal(*mnt);
	return true;
}

bool lz_mountinfo_fstype(FILE *mountinfo, unsigned major, unsigned minor, char *fstype, size_t len)
{
	char *line = NULL, *mnt, *type;
	size_t cap = 0;
	unsigned maj, min;
	bool found = false;

	while (!found && getline(&line, &cap, mountinfo) != -1)
		if (parse_line(line, &maj, &min, &mnt, &type) && maj == major && min == minor)
			found = (size_t)snprintf(fstype, len, "%s", type) < len;
	free(line);
	return found;
}

bool lz_mountinfo_find(FILE *mountinfo, const char *path, const char *fstype, bool last,
		       unsigned *major, unsigned *minor)
{
	char *line = NULL, *mnt, *type;
	size_t cap = 0;
	bool found = false;

	while ((last || !found) && getline(&line, &cap, mountinfo) != -1) {
		unsigned maj = 0, min = 0;
		if (!parse_line(line, &maj, &min, &mnt, &type) || strcmp(mnt, path) != 0 ||
		    (fstype != NULL && strcmp(type, fstype) != 0))
			continue;
		found = true;
		if (major != NULL)
			*major = maj;
		if (minor != NULL)
			*minor = min;
	}
	free(line);
	return found;
}

bool lz_mountinfo_has(FILE *mountinfo, const char *path, const char *fstype)
{
	return lz_mountinfo_find(mountinfo, path, fstype, false, NULL, NULL);
}

void lz_escape_mountpoint(const char *mountpoint, char *out, size_t size)
{
	size_t o = 0;

	if (size == 0)
		return;
	for (const char *c = mountpoint + 1; *c != '\0' && o + 5 < size; c++) {
		if (*c == '/')
			out[o++] = '-';
		else if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			 (*c >= '0' && *c <= '9') || *c == '_')
			out[o++] = *c;
		else
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", (unsigned char)*c);
	}
	if (o == 0 && size > 1)
		out[o++] = '-';
	out[o] = '\0';
}

void lz_control_path(const char *mountpoint, char *out, size_t size)
{
	char name[256];

	lz_escape_mountpoint(mountpoint, name, sizeof(name));
	/* A socket path has 107 bytes: long mountpoints go by a hash. */
	if (strlen(name) > 80) {
		uint64_t h = lz_hash64(mountpoint, UINT64_C(14695981039346656037));
		snprintf(name, sizeof(name), "h%016llx", (unsigned long long)h);
	}
	snprintf(out, size, "%s/%s.sock", LZ_CONTROL_DIR, name);
}

int lz_mountpoint_check(const char *mountpoint, char *err, size_t errlen)
{
	char real[PATH_MAX];
	struct stat st;
	FILE *mountinfo;
	bool taken;

	if (stat(mountpoint, &st) == -1) {
		snprintf(err, errlen, "mountpoint %s: %s", mountpoint, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "mountpoint %s is not a directory", mountpoint);
		return -1;
	}
	if (realpath(mountpoint, real) == NULL) {
		snprintf(err, errlen, "mountpoint %s: %s", mountpoint, strerror(errno));
		return -1;
	}
	mountinfo = fopen("/proc/self/mountinfo", "re");
	if (mountinfo == NULL)
		return 0; /* nothing to compare with; the mount itself will tell */
	taken = lz_mountinfo_has(mountinfo, real, "fuse.lazyfs");
	fclose(mountinfo);
	if (taken) {
		snprintf(err, errlen, "%s is already a lazyfs mount (unmount it first)", real);
		return -1;
	}
	return 0;
}
