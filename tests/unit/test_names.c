/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "common/mountpoint.h"
#include "common/names.h"
#include "fscore/nodeid.h"
#include "unit.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

static void test_name_check(void)
{
	char longest[NAME_MAX + 1], too_long[NAME_MAX + 2];

	memset(longest, 'a', NAME_MAX);
	longest[NAME_MAX] = '\0';
	memset(too_long, 'b', NAME_MAX + 1);
	too_long[NAME_MAX + 1] = '\0';

	CHECK(lz_name_check("gcc-15.1.0") == 0);
	CHECK(lz_name_check("café") == 0);
	CHECK(lz_name_check(".hidden") == 0);
	CHECK(lz_name_check("...") == 0);
	CHECK(lz_name_check(longest) == 0);
	CHECK(lz_name_check(too_long) == -ENAMETOOLONG);
	CHECK(lz_name_check("") == -ENOENT);
	CHECK(lz_name_check(".") == -ENOENT);
	CHECK(lz_name_check("..") == -ENOENT);
	CHECK(lz_name_check("a/b") == -ENOENT);
	CHECK(lz_name_check("/etc") == -ENOENT);
	CHECK(lz_name_check("../../etc/passwd") == -ENOENT);
}

static void test_nodeid(void)
{
	uint64_t id = lz_nodeid_make(3, 12345);

	CHECK(lz_nodeid_source(id) == 3);
	CHECK(lz_nodeid_backing_ino(id) == 12345);
	CHECK(lz_nodeid_make(1, 1) != 1); /* never the FUSE root id */
	CHECK(lz_nodeid_make(1, 7) != lz_nodeid_make(2, 7));
	CHECK(lz_nodeid_fits(LZ_NODEID_INO_MASK));
	CHECK(!lz_nodeid_fits(LZ_NODEID_INO_MASK + 1));
	CHECK(lz_nodeid_source(lz_nodeid_make(LZ_NODEID_MAX_SOURCE, 1)) == LZ_NODEID_MAX_SOURCE);
}

static bool mountinfo_has(const char *text, const char *path, const char *type)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	bool found = lz_mountinfo_has(f, path, type);
	fclose(f);
	return found;
}

static void test_mountinfo(void)
{
	const char *info =
		"22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
		"90 22 0:50 / /opt/ce rw,nosuid - fuse.lazyfs lazyfs ro,user_id=0\n"
		"91 22 0:51 / /tmp/with\\040space ro shared:7 master:1 - fuse.lazyfs src ro\n"
		"92 22 0:52 / /mnt/other ro - fuse.sshfs host:/ ro\n"
		"garbage line without separator\n";

	CHECK(mountinfo_has(info, "/opt/ce", "fuse.lazyfs"));
	CHECK(mountinfo_has(info, "/tmp/with space", "fuse.lazyfs"));
	CHECK(!mountinfo_has(info, "/mnt/other", "fuse.lazyfs"));
	CHECK(!mountinfo_has(info, "/opt", "fuse.lazyfs"));
	CHECK(!mountinfo_has(info, "/opt/ce/sub", "fuse.lazyfs"));
	CHECK(mountinfo_has(info, "/", "ext4"));
	CHECK(!mountinfo_has("", "/", "ext4"));

	char type[16];
	FILE *f = fmemopen((void *)info, strlen(info), "r");
	CHECK(lz_mountinfo_fstype(f, 0, 52, type, sizeof(type)) && strcmp(type, "fuse.sshfs") == 0);
	rewind(f);
	CHECK(lz_mountinfo_fstype(f, 254, 0, type, sizeof(type)) && strcmp(type, "ext4") == 0);
	rewind(f);
	CHECK(!lz_mountinfo_fstype(f, 0, 53, type, sizeof(type)));
	rewind(f);
	CHECK(!lz_mountinfo_fstype(f, 0, 50, type, 4)); /* "fuse.lazyfs" does not fit */
	fclose(f);
}

int main(void)
{
	test_name_check();
	test_nodeid();
	test_mountinfo();
	return unit_finish("test_names");
}
