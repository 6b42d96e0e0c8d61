/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "handover.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAGIC	     0x4f485a4cu /* "LZHO" */
#define FDS_PER_MSG  250	 /* SCM_RIGHTS takes at most 253 */
#define TEXT_PER_MSG 60000	 /* well under the socket buffer */
#define MAX_FDS	     (1u << 22)
#define MAX_TEXT     (UINT64_C(1) << 32)

struct header {
	uint32_t magic, version, nfds, pad;
	uint64_t len;
};

static bool grow(void **buf, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return true;
	size_t cap2 = *cap ? *cap : 64;
	while (cap2 < need)
		cap2 *= 2;
	void *p = realloc(*buf, cap2 * size);
	if (p == NULL)
		return false;
	*buf = p;
	*cap = cap2;
	return true;
}

int lz_handover_add_fd(struct lz_handover *h, int fd)
{
	if (fd < 0)
		return -1;
	if (!grow((void **)&h->fds, &h->fds_cap, h->nfds + 1, sizeof(int))) {
		h->failed = true;
		return -1;
	}
	h->fds[h->nfds] = fd;
	return (int)h->nfds++;
}

int lz_handover_add_made_fd(struct lz_handover *h, int fd)
{
	if (fd < 0)
		return -1;
	if (!grow((void **)&h->made, &h->made_cap, h->nmade + 1, sizeof(int))) {
		close(fd);
		h->failed = true;
		return -1;
	}
	h->made[h->nmade++] = fd;
	return lz_handover_add_fd(h, fd);
}

int lz_handover_take_fd(struct lz_handover *h, long index)
{
	if (index < 0 || (size_t)index >= h->nfds)
		return -1;
	int fd = h->fds[index];
	h->fds[index] = -1; /* taken once: a record naming it twice gets -1 the second time */
	return fd;
}

void lz_handover_printf(struct lz_handover *h, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !grow((void **)&h->text, &h->cap, h->len + (size_t)n + 1, 1)) {
		h->failed = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(h->text + h->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	h->len += (size_t)n;
}

void lz_handover_string(struct lz_handover *h, const char *s)
{
	if (s == NULL) {
		lz_handover_printf(h, " -");
		return;
	}
	lz_handover_printf(h, " =");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p <= ' ' || *p == '%' || *p >= 0x7f)
			lz_handover_printf(h, "%%%02x", *p);
		else
			lz_handover_printf(h, "%c", *p);
	}
}

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *lz_handover_unescape(char *field, bool *ok)
{
	char *out;

	if (field == NULL || strcmp(field, "-") == 0) {
		*ok = field != NULL;
		return NULL;
	}
	if (field[0] != '=') {
		*ok = false;
		return NULL;
	}
	out = field;
	for (char *p = field + 1; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '%') {
			int hi = hex(p[1]), lo = hi < 0 ? -1 : hex(p[2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			*out++ = (char)(hi * 16 + lo);
			p += 2;
		} else if (c <= ' ' || c >= 0x7f) {
			goto bad; /* lz_handover_string escapes it: never raw */
		} else {
			*out++ = *p;
		}
	}
	*out = '\0';
	*ok = true;
	return field;
bad:
	*ok = false;
	return NULL;
}

int lz_handover_split(char *rest, char **f, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *t = strtok_r(rest, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
		if (n == max)
			return max + 1;
		f[n++] = t;
	}
	return n;
}

/*
 * Whether S is a decimal number as printf writes one: digits, after a '-'
 * when SIGNED. (strtoll alone would also skip leading white space and take
 * a '+', and strtoull a '-': "\t-1" read as 2^64 - 1.)
 */
static bool decimal(const char *s, bool sign)
{
	s += sign && *s == '-';
	return *s != '\0' && s[strspn(s, "0123456789")] == '\0';
}

bool lz_handover_num(const char *s, long long min, long long max, long long *out)
{
	char *end;

	if (!decimal(s, true))
		return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool lz_handover_unum(const char *s, uint64_t *out)
{
	char *end;

	if (!decimal(s, false))
		return false;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno == 0 && end != s && *end == '\0';
}

void lz_handover_bytes(struct lz_handover *h, const void *bytes, size_t n)
{
	lz_handover_printf(h, " ");
	for (size_t i = 0; i < n; i++)
		lz_handover_printf(h, "%02x", ((const unsigned char *)bytes)[i]);
}

int lz_handover_unbytes(const char *field, unsigned char **out, size_t *len)
{
	size_t n = strlen(field) / 2;

	if (n == 0 || field[2 * n] != '\0' || (*out = malloc(n)) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hex(field[2 * i]), lo = hex(field[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			free(*out);
			*out = NULL;
			return -1;
		}
		(*out)[i] = (unsigned char)(hi * 16 + lo);
	}
	*len = n;
	return 0;
}

void lz_handover_free(struct lz_handover *h)
{
	if (h->owns_fds)
		for (size_t i = 0; i < h->nfds; i++)
			if (h->fds[i] >= 0)
				close(h->fds[i]);
	for (size_t i = 0; i < h->nmade; i++)
		close(h->made[i]);
	free(h->made);
	free(h->fds);
	free(h->text);
	memset(h, 0, sizeof(*h));
}

static int send_msg(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
	union {
		char buf[CMSG_SPACE(FDS_PER_MSG * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds > 0) {
		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		return n == (ssize_t)len ? 0 : -1;
	}
}

int lz_handover_send(int sock, const struct lz_handover *h, char *err, size_t errlen)
{
	struct header hd = { .magic = MAGIC,
			     .version = LZ_HANDOVER_VERSION,
			     .nfds = (uint32_t)h->nfds,
			     .len = h->len };
	const char one = 'F';

	if (h->failed) {
		snprintf(err, errlen, "out of memory building the state record");
		return -1;
	}
	if (send_msg(sock, &hd, sizeof(hd), NULL, 0) != 0)
		goto fail;
	for (size_t i = 0; i < h->nfds; i += FDS_PER_MSG) {
		size_t n = h->nfds - i < FDS_PER_MSG ? h->nfds - i : FDS_PER_MSG;
		if (send_msg(sock, &one, 1, h->fds + i, n) != 0)
			goto fail;
	}
	for (size_t off = 0; off < h->len; off += TEXT_PER_MSG) {
		size_t n = h->len - off < TEXT_PER_MSG ? h->len - off : TEXT_PER_MSG;
		if (send_msg(sock, h->text + off, n, NULL, 0) != 0)
			goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "sending the state to the new process: %s", strerror(errno));
	return -1;
}

static int wait_readable(int sock, int timeout_ms)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	int rc;

	do
		rc = poll(&pfd, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		errno = ETIMEDOUT;
	return rc > 0 ? 0 : -1;
}

/* One message into BUF; its descriptors appended to H. The length, 0 at EOF, or -1. */
static ssize_t recv_msg(int sock, void *buf, size_t size, struct lz_handover *h, int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(FDS_PER_MSG * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = control.buf,
			      .msg_controllen = sizeof(control.buf) };
	ssize_t n;

	if (wait_readable(sock, timeout_ms) != 0)
		return -1;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[FDS_PER_MSG + 3];
		memcpy(fds, CMSG_DATA(c), count * sizeof(int));
		for (size_t i = 0; i < count; i++)
			if (h == NULL || lz_handover_add_fd(h, fds[i]) < 0)
				close(fds[i]);
	}
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}

/*
 * The text of a record, LEN bytes announced, into H. Its buffer grows with
 * what arrives (a sender's message is at most TEXT_PER_MSG), never to what
 * a header merely announces: a bad one asked for 4 GiB at once. 0, or -1
 * with ERR.
 */
static int recv_text(int sock, struct lz_handover *h, uint64_t len, int timeout_ms, char *err,
		     size_t errlen)
{
	if (!grow((void **)&h->text, &h->cap, 1, 1))
		goto oom;
	while (h->len < len) {
		uint64_t left = len - h->len;
		size_t want = left < TEXT_PER_MSG ? (size_t)left : TEXT_PER_MSG;
		if (!grow((void **)&h->text, &h->cap, h->len + want + 1, 1))
			goto oom;
		size_t room = h->cap - 1 - h->len < left ? h->cap - 1 - h->len : (size_t)left;
		ssize_t n = recv_msg(sock, h->text + h->len, room, NULL, timeout_ms);
		if (n <= 0) {
			snprintf(err, errlen, "state record truncated at %zu of %llu bytes (%s)",
				 h->len, (unsigned long long)len,
				 n < 0 ? strerror(errno) : "the daemon went away");
			return -1;
		}
		h->len += (size_t)n;
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory for the state record");
	return -1;
}

int lz_handover_recv(int sock, struct lz_handover *h, int timeout_ms, char *err, size_t errlen)
{
	struct header hd;
	ssize_t n;
	char byte;

	memset(h, 0, sizeof(*h));
	h->owns_fds = true;
	n = recv_msg(sock, &hd, sizeof(hd), NULL, timeout_ms);
	if (n != (ssize_t)sizeof(hd) || hd.magic != MAGIC) {
		snprintf(err, errlen, "no state record from the running daemon (%s)",
			 n < 0 ? strerror(errno) : "bad header");
		return -1;
	}
	if (hd.version != LZ_HANDOVER_VERSION) {
		snprintf(err, errlen, "state record version %u, this binary reads version %u",
			 hd.version, LZ_HANDOVER_VERSION);
		return -1;
	}
	if (hd.nfds > MAX_FDS || hd.len > MAX_TEXT) {
		snprintf(err, errlen, "state record too large (%u descriptors, %llu bytes)",
			 hd.nfds, (unsigned long long)hd.len);
		return -1;
	}
	while (h->nfds < hd.nfds) {
		size_t before = h->nfds;
		n = recv_msg(sock, &byte, 1, h, timeout_ms);
		if (n != 1 || h->nfds == before || h->failed) {
			snprintf(err, errlen, "state record: %zu of %u descriptors arrived (%s)",
				 h->nfds, hd.nfds, n < 0 ? strerror(errno) : "short message");
			return -1;
		}
	}
	if (h->nfds != hd.nfds) {
		snprintf(err, errlen, "state record: %zu descriptors, %u announced", h->nfds,
			 hd.nfds);
		return -1;
	}
	if (recv_text(sock, h, hd.len, timeout_ms, err, errlen) != 0)
		return -1;
	h->text[h->len] = '\0';
	if (strlen(h->text) != h->len) {
		snprintf(err, errlen, "state record holds a NUL byte");
		return -1;
	}
	return 0;
}

int lz_handover_say(int sock, const char *line)
{
	return send_msg(sock, line, strlen(line), NULL, 0);
}

int lz_handover_hear(int sock, char *line, size_t size, int timeout_ms)
{
	ssize_t n = recv_msg(sock, line, size - 1, NULL, timeout_ms);

	if (n <= 0) {
		if (n == 0)
			errno = 0;
		return -1;
	}
	line[n] = '\0';
	return 0;
}
