/* SPDX-License-Identifier: BSD-2-Clause */
/* common/caller.c (credentials from /proc status text) and common/access.c (the kernel's rule). */
#include "config.h"
#include "common/access.h"
#include "common/caller.h"
#include "unit.h"

#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

static const char status[] = "Name:\tcat\n"
			     "Umask:\t0022\n"
			     "State:\tR (running)\n"
			     "Uid:\t1000\t1001\t1002\t1003\n"
			     "Gid:\t2000\t2001\t2002\t2003\n"
			     "FDSize:\t64\n"
			     "Groups:\t10 20 30 \n"
			     "CapInh:\t0000000000000000\n"
			     "CapPrm:\t0000000000200000\n"
			     "CapEff:\t0000000000200006\n";

static int parse(const char *text, struct lz_caller *c)
{
	return lz_caller_parse(text, strlen(text), c);
}

static void test_parse(void)
{
	struct lz_caller c;
	char *many;
	size_t at;

	CHECK(lz_caller_parse(status, sizeof(status) - 1, &c) == 0);
	CHECK(c.uid[LZ_ID_REAL] == 1000 && c.uid[LZ_ID_FS] == 1003);
	CHECK(c.gid[LZ_ID_EFFECTIVE] == 2001 && c.gid[LZ_ID_FS] == 2003);
	CHECK(c.ngroups == 3 && c.groups[2] == 30);
	CHECK(c.cap_eff == 0x200006);
	CHECK(!c.init_userns);
	/* Capabilities count in the initial user namespace only. */
	CHECK(!lz_caller_capable(&c, LZ_CAP_SYS_ADMIN));
	c.init_userns = true;
	CHECK(lz_caller_capable(&c, LZ_CAP_SYS_ADMIN));
	CHECK(lz_caller_capable(&c, LZ_CAP_DAC_OVERRIDE));
	CHECK(!lz_caller_capable(&c, 0));
	CHECK(lz_caller_in_group(&c, 2003) && lz_caller_in_group(&c, 20));
	CHECK(!lz_caller_in_group(&c, 2001)); /* the filesystem gid decides, not the effective */

	CHECK(parse("Uid:\t1\t2\t3\n", &c) == -EINVAL);
	CHECK(parse("Uid:\t1 2 3 4\nGid:\t1 2 3 4\nGroups:\t\nCapEff:\t0000000000000000\n", &c) ==
		      0 &&
	      c.ngroups == 0);
	CHECK(parse("Uid:\t1 2 3 x\nGid:\t1 2 3 4\nGroups:\t\nCapEff:\t0000000000000000\n", &c) ==
	      -EINVAL);
	CHECK(parse("Uid:\t1 2 3 4\nGid:\t1 2 3 4\nGroups:\t\nCapEff:\t00000000000000zz\n", &c) ==
	      -EINVAL);
	CHECK(parse("Uid:\t1 2 3 99999999999\nGid:\t1 2 3 4\nGroups:\t\nCapEff:\t0\n", &c) ==
	      -EINVAL);

	/* More groups than are kept: unknown, so decisions fail closed. */
	many = malloc(64 * 1024);
	at = (size_t)sprintf(many, "Uid:\t1 1 1 1\nGid:\t1 1 1 1\nGroups:\t");
	for (int i = 0; i <= LZ_CALLER_GROUPS; i++)
		at += (size_t)sprintf(many + at, "%d ", i + 100);
	at += (size_t)sprintf(many + at, "\nCapEff:\t0000000000000000\n");
	CHECK(lz_caller_parse(many, at, &c) == -E2BIG);
	free(many);

	/* This very process, as the daemon reads its callers. */
	CHECK(lz_caller_read(getpid(), &c) == 0);
	CHECK(c.uid[LZ_ID_FS] == getuid() && c.gid[LZ_ID_FS] == getgid());
	CHECK(lz_caller_read(0, &c) == -ESRCH);
	CHECK(lz_caller_read(0x3fffffff, &c) == -ESRCH);
}

/* An ACL in its stored form from (tag, perm, id) triples. */
static size_t acl(unsigned char *out, const unsigned (*e)[3], size_t n)
{
	uint32_t v = htole32(2);

	memcpy(out, &v, 4);
	for (size_t i = 0; i < n; i++) {
		uint16_t tag = htole16((uint16_t)e[i][0]), perm = htole16((uint16_t)e[i][1]);
		uint32_t id = htole32(e[i][2]);
		memcpy(out + 4 + i * 8, &tag, 2);
		memcpy(out + 6 + i * 8, &perm, 2);
		memcpy(out + 8 + i * 8, &id, 4);
	}
	return 4 + n * 8;
}

#define ANY UINT32_MAX

static struct lz_caller who(uid_t uid, gid_t gid, gid_t group, uint64_t caps)
{
	struct lz_caller c = { .uid = { uid, uid, uid, uid }, .gid = { gid, gid, gid, gid } };

	if (group != 0)
		c.groups[c.ngroups++] = group;
	c.cap_eff = caps;
	c.init_userns = true;
	return c;
}

static void test_modes(void)
{
	struct stat st = { .st_mode = S_IFREG | 0640, .st_uid = 0, .st_gid = 50 };
	struct lz_caller owner = who(0, 0, 0, 0), member = who(7, 9, 50, 0),
			 other = who(7, 9, 0, 0);

	CHECK(lz_may_access(&owner, &st, NULL, 0, LZ_MAY_READ));
	CHECK(!lz_may_access(&owner, &st, NULL, 0, LZ_MAY_EXEC));
	CHECK(lz_may_access(&member, &st, NULL, 0, LZ_MAY_READ));
	CHECK(!lz_may_access(&other, &st, NULL, 0, LZ_MAY_READ));
	st.st_mode = S_IFREG | 0604; /* a member gets the group's bits, not the others' */
	CHECK(!lz_may_access(&member, &st, NULL, 0, LZ_MAY_READ));
	CHECK(lz_may_access(&other, &st, NULL, 0, LZ_MAY_READ));

	/* Capabilities override: reading with either DAC capability, executing only with x. */
	st.st_mode = S_IFREG | 0600;
	other.cap_eff = 1ull << LZ_CAP_DAC_READ_SEARCH;
	CHECK(lz_may_access(&other, &st, NULL, 0, LZ_MAY_READ));
	CHECK(!lz_may_access(&other, &st, NULL, 0, LZ_MAY_READ | LZ_MAY_WRITE));
	other.cap_eff = 1ull << LZ_CAP_DAC_OVERRIDE;
	CHECK(lz_may_access(&other, &st, NULL, 0, LZ_MAY_READ | LZ_MAY_WRITE));
	CHECK(!lz_may_access(&other, &st, NULL, 0, LZ_MAY_EXEC));
	other.init_userns = false; /* a container's root */
	CHECK(!lz_may_access(&other, &st, NULL, 0, LZ_MAY_READ));
}

static void test_acls(void)
{
	unsigned char buf[256];
	struct stat st = { .st_mode = S_IFREG | 0640, .st_uid = 0, .st_gid = 50 };
	struct lz_caller nobody = who(65534, 65534, 0, 0), member = who(7, 9, 50, 0);
	struct lz_caller named_group = who(8, 9, 77, 0), owner = who(0, 0, 0, 0);
	/* user::rw- user:65534:--- group::r-- group:77:r-- mask::r-- other::r-- */
	const unsigned deny[][3] = { { 1, 6, ANY }, { 2, 0, 65534 }, { 4, 4, ANY },
				     { 8, 4, 77 },  { 16, 4, ANY },  { 32, 4, ANY } };
	size_t len = acl(buf, deny, 6);

	st.st_mode = S_IFREG | 0644;
	CHECK(lz_acl_valid(buf, len));
	CHECK(!lz_may_access(&nobody, &st, buf, len, LZ_MAY_READ));
	CHECK(lz_may_access(&named_group, &st, buf, len, LZ_MAY_READ));
	CHECK(lz_may_access(&member, &st, buf, len, LZ_MAY_READ));
	CHECK(lz_may_access(&owner, &st, buf, len, LZ_MAY_READ | LZ_MAY_WRITE));
	/* Without group bits in the mode the kernel does not look at the ACL. */
	st.st_mode = S_IFREG | 0604;
	CHECK(lz_may_access(&nobody, &st, buf, len, LZ_MAY_READ));

	/*
	 * The mask limits a named entry: user:65534:rw- under mask::r-- reads
	 * but does not write. (The mode's group bits are the mask's.)
	 */
	const unsigned masked[][3] = {
		{ 1, 6, ANY }, { 2, 6, 65534 }, { 4, 0, ANY }, { 16, 4, ANY }, { 32, 0, ANY }
	};
	st.st_mode = S_IFREG | 0640;
	len = acl(buf, masked, 5);
	CHECK(lz_acl_valid(buf, len));
	CHECK(lz_may_access(&nobody, &st, buf, len, LZ_MAY_READ));
	CHECK(!lz_may_access(&nobody, &st, buf, len, LZ_MAY_READ | LZ_MAY_WRITE));

	/*
	 * Group entries that match without granting deny, though the others'
	 * entry would grant: group::--- group:77:--- mask::r-- other::r--.
	 */
	const unsigned group_denies[][3] = {
		{ 1, 6, ANY }, { 4, 0, ANY }, { 8, 0, 77 }, { 16, 4, ANY }, { 32, 4, ANY }
	};
	st.st_mode = S_IFREG | 0644;
	len = acl(buf, group_denies, 5);
	CHECK(lz_acl_valid(buf, len));
	CHECK(!lz_may_access(&member, &st, buf, len, LZ_MAY_READ));
	CHECK(!lz_may_access(&named_group, &st, buf, len, LZ_MAY_READ));
	CHECK(lz_may_access(&nobody, &st, buf, len, LZ_MAY_READ));

	/* Malformed: out of order, no mask with named entries, unknown tag, bad version,
	 * perm bits. */
	const unsigned order[][3] = { { 4, 4, ANY }, { 1, 6, ANY }, { 32, 4, ANY } };
	const unsigned nomask[][3] = { { 1, 6, ANY }, { 2, 4, 5 }, { 4, 4, ANY }, { 32, 4, ANY } };
	const unsigned tag[][3] = { { 1, 6, ANY }, { 4, 4, ANY }, { 64, 4, ANY }, { 32, 4, ANY } };
	const unsigned perm[][3] = { { 1, 6, ANY }, { 4, 12, ANY }, { 32, 4, ANY } };
	st.st_mode = S_IFREG | 0644;
	CHECK(!lz_acl_valid(buf, acl(buf, order, 3)));
	CHECK(!lz_acl_valid(buf, acl(buf, nomask, 4)));
	CHECK(!lz_acl_valid(buf, acl(buf, tag, 4)));
	CHECK(!lz_acl_valid(buf, acl(buf, perm, 3)));
	CHECK(!lz_may_access(&nobody, &st, buf, acl(buf, perm, 3), LZ_MAY_READ));
	len = acl(buf, group_denies, 5);
	buf[0] = 1;
	CHECK(!lz_acl_valid(buf, len));
	CHECK(!lz_acl_valid(buf, 7));
	/* A header alone is no ACL: the modes decide. */
	len = acl(buf, group_denies, 0);
	CHECK(lz_may_access(&nobody, &st, buf, len, LZ_MAY_READ));
}

int main(void)
{
	test_parse();
	test_modes();
	test_acls();
	return unit_finish("test_access");
}
