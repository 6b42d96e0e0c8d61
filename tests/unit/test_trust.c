/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The trust rule for kernel mounts: owners and modes of files read in place
 * (and of their directory), digests of fetched copies, and the digests file's
 * bad lines refused with FILE:LINE.
 */
#include "config.h"
#include "images/trust.h"
#include "unit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static struct stat owned(uid_t uid, mode_t mode)
{
	struct stat st = { .st_uid = uid, .st_mode = S_IFREG | mode };

	return st;
}

static void test_owners(void)
{
	char why[96], err[256];
	struct stat root = owned(0, 0644), dir = owned(0, 0755);
	struct stat user = owned(1000, 0644), group_w = owned(0, 0664), other_w = owned(0, 0646);

	CHECK(lz_trust_file(NULL, &root, &dir, why, sizeof(why)));
	CHECK_STR(why, "root's");
	CHECK(!lz_trust_file(NULL, &user, &dir, why, sizeof(why)));
	CHECK_STR(why, "untrusted: the file owned by uid 1000");
	CHECK(!lz_trust_file(NULL, &group_w, NULL, why, sizeof(why)));
	CHECK_STR(why, "untrusted: the file writable by its group");
	CHECK(!lz_trust_file(NULL, &other_w, NULL, why, sizeof(why)));
	struct stat open_dir = owned(0, 01777);
	CHECK(!lz_trust_file(NULL, &root, &open_dir, why, sizeof(why)));
	CHECK_STR(why, "untrusted: its directory writable by others");
	struct lz_trust *t = lz_trust_new(1000, NULL, err, sizeof(err));
	CHECK(t != NULL && lz_trust_file(t, &user, &dir, why, sizeof(why)));
	CHECK_STR(why, "the trusted owner's");
	struct stat other_user = owned(1001, 0644);
	CHECK(!lz_trust_file(t, &other_user, &dir, why, sizeof(why)));
	lz_trust_free(t);
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

static void test_digests(const char *dir)
{
	char *digests = xasprintf("%s/digests", dir), *copy = xasprintf("%s/copy", dir);
	char why[96], err[512];
	/* printf 'abc' | sha256sum */
	const char *abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	char *text = xasprintf("# toolchains\n%s  gcc.sqfs\n%s *clang.sqfs\n\n", abc, abc);

	write_file(digests, text);
	write_file(copy, "abc");
	struct lz_trust *t = lz_trust_new(LZ_TRUST_NO_OWNER, digests, err, sizeof(err));
	CHECK(t != NULL && lz_trust_digests(t) == 2);
	int fd = open(copy, O_RDONLY);
	CHECK(lz_trust_copy(t, "gcc.sqfs", fd, why, sizeof(why)));
	CHECK_STR(why, "trusted digest");
	CHECK(lz_trust_copy(t, "clang.sqfs", fd, why, sizeof(why)));
	CHECK(!lz_trust_copy(t, "other.sqfs", fd, why, sizeof(why)));
	CHECK_STR(why, "untrusted: a remote image without a trusted digest");
	CHECK(!lz_trust_copy(NULL, "gcc.sqfs", fd, why, sizeof(why)));
	close(fd);
	write_file(copy, "abd");
	fd = open(copy, O_RDONLY);
	CHECK(!lz_trust_copy(t, "gcc.sqfs", fd, why, sizeof(why)));
	CHECK_STR(why, "untrusted: its SHA-256 is not the trusted digest");
	close(fd);
	lz_trust_free(t);

	static const char *const bad[] = {
		"abc  gcc.sqfs\n", /* short digest */
		"zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  a\n",
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad a\n",
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  a/b\n",
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  ..\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *two = xasprintf("%s  ok.sqfs\n%s", abc, bad[i]);
		write_file(digests, two);
		CHECK(lz_trust_new(LZ_TRUST_NO_OWNER, digests, err, sizeof(err)) == NULL);
		CHECK(strstr(err, "digests:2: ") != NULL);
		free(two);
	}
	char *twice = xasprintf("%s  a.sqfs\n%s  a.sqfs\n", abc, abc);
	write_file(digests, twice);
	CHECK(lz_trust_new(LZ_TRUST_NO_OWNER, digests, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "listed twice") != NULL);
	CHECK(lz_trust_new(LZ_TRUST_NO_OWNER, "/nonexistent/digests", err, sizeof(err)) == NULL);
	unlink(digests);
	unlink(copy);
	free(twice);
	free(text);
	free(digests);
	free(copy);
}

int main(void)
{
	char dir[] = "/tmp/test_trust.XXXXXX";

	if (mkdtemp(dir) == NULL)
		return 1;
	test_owners();
	test_digests(dir);
	rmdir(dir);
	return unit_finish("test_trust");
}
