/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A takeover record as a new process receives it (upgrade/handover.c) and
 * reads its head (upgrade/head.c). The framing runs on a real socket pair:
 * a header (its magic, version, descriptor count and length made right or
 * not, as the first input byte says), descriptors in batches, the text in
 * chunks, then the sender gone. A record received is what its header
 * announced (descriptors and text, no NUL; with a header made right, all
 * that was sent) and each descriptor is taken once; received
 * or refused, no descriptor is left open after lz_handover_free. The same
 * text's head: a head let through has a version this binary reads, an
 * absolute mountpoint, a FUSE_INIT whose header says its length, and
 * descriptor indexes an int holds; written again as upgrade.c writes it, it
 * parses to the same; a refusal is one line. Any string escaped by
 * lz_handover_string, and any bytes by lz_handover_bytes, decode to
 * themselves; a field that decodes holds no NUL and decodes the same after
 * escaping again.
 */
#include "config.h"
#include "check.h"
#include "upgrade/handover.h"
#include "upgrade/head.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAGIC 0x4f485a4cu /* handover.c's */
#define HEAD  27	  /* flags, descriptors a message, text chunk, the 24-byte header */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct header {
	uint32_t magic, version, nfds, pad;
	uint64_t len;
};

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	CHECK(d != NULL);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static void send_msg(int sock, const void *buf, size_t len, int fd, size_t nfds)
{
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[8];

	if (nfds > 0) {
		for (size_t i = 0; i < nfds; i++)
			fds[i] = fd;
		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	CHECK(sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)len);
}

/* The framing: sends what DATA says and receives it. */
static void framing(const uint8_t *data, const char *text, size_t len)
{
	static int null_fd = -1;
	uint8_t flags = data[0];
	size_t per_msg = 1 + data[1] % 4, chunk = ((size_t)data[2] + 1) * 256;
	size_t msgs = (flags >> 3) & 7, sent_fds = msgs * per_msg;
	struct header hd;
	struct lz_handover h;
	char err[256] = "";
	int pair[2];

	if (null_fd < 0)
		CHECK((null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
	memcpy(&hd, data + 3, sizeof(hd));
	if (flags & 1)
		hd.magic = MAGIC, hd.version = LZ_HANDOVER_VERSION;
	if (flags & 2)
		hd.nfds = (uint32_t)sent_fds;
	if (flags & 4)
		hd.len = len;
	int before = open_fds();
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) == 0);
	send_msg(pair[0], &hd, sizeof(hd), -1, 0);
	for (size_t i = 0; i < msgs; i++)
		send_msg(pair[0], "F", 1, null_fd, per_msg);
	for (size_t off = 0; off < len; off += chunk)
		send_msg(pair[0], text + off, len - off < chunk ? len - off : chunk, -1, 0);
	close(pair[0]);
	int rc = lz_handover_recv(pair[1], &h, 0, err, sizeof(err));
	if (rc == 0) {
		CHECK(hd.magic == MAGIC && hd.version == LZ_HANDOVER_VERSION && h.owns_fds);
		CHECK(h.nfds == hd.nfds && h.len == hd.len && strlen(h.text) == h.len);
		/* Sent as announced: received whole. (Else what was read is what was announced.) */
		CHECK((flags & 7) != 7 ||
		      (h.nfds == sent_fds && h.len == len && memcmp(h.text, text, len) == 0));
		CHECK(lz_handover_take_fd(&h, -1) < 0 && lz_handover_take_fd(&h, (long)h.nfds) < 0);
		for (size_t i = 0; i < h.nfds; i++) {
			int fd = lz_handover_take_fd(&h, (long)i);
			CHECK(fd >= 0 && lz_handover_take_fd(&h, (long)i) < 0);
			if (i % 2 == 0)
				close(fd); /* taken: the caller's; the others go back to the record
					    */
			else
				h.fds[i] = fd;
		}
	} else {
		CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
	}
	lz_handover_free(&h);
	close(pair[1]);
	CHECK(open_fds() == before);
}

/* The head, and written again as upgrade.c writes it, the same head. */
static void head(const char *text)
{
	struct lz_head a, b;
	char err[600] = "";

	if (lz_head_parse(text, &a, err, sizeof(err)) != 0) {
		CHECK(strncmp(err, "state record", 12) == 0 && strchr(err, '\n') == NULL);
		lz_head_free(&a);
		return;
	}
	const struct lz_fuse_in_header *in = (const struct lz_fuse_in_header *)a.init;
	CHECK(a.version >= LZ_RECORD_VERSION_OLDEST && a.version <= LZ_RECORD_VERSION);
	CHECK(a.mountpoint != NULL && a.mountpoint[0] == '/');
	CHECK(a.init_len >= sizeof(*in) && in->len == a.init_len &&
	      in->opcode == LZ_FUSE_INIT_OPCODE);
	CHECK(a.fuse_index >= 0 && a.fuse_index <= INT_MAX);
	CHECK(a.listen_index >= -1 && a.listen_index <= INT_MAX);
	CHECK(a.http_index >= -1 && a.http_index <= INT_MAX);

	struct lz_handover w = { 0 };
	lz_handover_printf(&w, "version %d\n", a.version);
	lz_head_write_mount(&w, a.mountpoint, a.minor, a.init, a.init_len);
	lz_head_write_fds(&w, (int)a.fuse_index, (int)a.listen_index, (int)a.http_index,
			  a.control_path);
	lz_handover_printf(&w, "end\n");
	CHECK(!w.failed && lz_head_parse(w.text, &b, err, sizeof(err)) == 0);
	CHECK(b.version == a.version && strcmp(b.mountpoint, a.mountpoint) == 0);
	CHECK(b.minor == a.minor && b.init_len == a.init_len);
	CHECK(memcmp(b.init, a.init, a.init_len) == 0);
	CHECK(b.fuse_index == a.fuse_index && b.listen_index == a.listen_index);
	CHECK(b.http_index == a.http_index);
	CHECK((a.control_path == NULL) == (b.control_path == NULL));
	CHECK(a.control_path == NULL || strcmp(a.control_path, b.control_path) == 0);
	lz_head_free(&a);
	lz_head_free(&b);
	lz_handover_free(&w);
}

/* Escaped and decoded again: S itself; its bytes too. */
static void escapes(const char *s, const uint8_t *bytes, size_t n)
{
	struct lz_handover w = { 0 };
	unsigned char *raw = NULL;
	size_t raw_len = 0;
	bool ok;

	lz_handover_string(&w, s);
	CHECK(!w.failed && w.text[0] == ' ' && w.text[1] == '=');
	for (const char *c = w.text + 1; *c != '\0'; c++)
		CHECK(*c > ' ' && *c < 0x7f);
	char *field = strdup(w.text + 1);
	CHECK(field != NULL);
	char *back = lz_handover_unescape(field, &ok);
	CHECK(ok && back != NULL && strcmp(back, s) == 0);
	free(field);
	lz_handover_free(&w);
	if (n == 0)
		return;
	lz_handover_bytes(&w, bytes, n);
	CHECK(!w.failed && lz_handover_unbytes(w.text + 1, &raw, &raw_len) == 0);
	CHECK(raw_len == n && memcmp(raw, bytes, n) == 0);
	free(raw);
	lz_handover_free(&w);
}

/* Each word of TEXT as a field: one that decodes holds no NUL and decodes alike once escaped. */
static void fields(char *text)
{
	char *save = NULL;

	for (char *t = strtok_r(text, " \n", &save); t != NULL; t = strtok_r(NULL, " \n", &save)) {
		size_t len = strlen(t);
		bool ok;
		char *s = lz_handover_unescape(t, &ok);
		if (!ok || s == NULL)
			continue;
		CHECK(strlen(s) < len);
		char *copy = strdup(s);
		CHECK(copy != NULL);
		escapes(copy, NULL, 0);
		free(copy);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HEAD)
		return 0;
	size_t len = size - HEAD;
	char *text = malloc(len + 1);
	CHECK(text != NULL);
	memcpy(text, data + HEAD, len);
	text[len] = '\0';
	framing(data, text, len);
	head(text);
	escapes(text, data + HEAD, len);
	fields(text);
	free(text);
	return 0;
}
