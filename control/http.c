/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The metrics listener's thread: one poll loop over the listener, a stop
 * event and up to HTTP_CLIENTS non-blocking clients, each closed when its
 * answer is written or its deadline passes, whichever comes first. A client
 * that sends one byte a second, or never reads its answer, costs one slot
 * for HTTP_DEADLINE_S and nothing else.
 */
#include "config.h"
#include "http.h"
#include "http_parse.h"
#include "report.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/netaddr.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQUEST_MAX 4096

struct client {
	int fd; /* -1: a free slot */
	int64_t deadline_ns;
	char in[REQUEST_MAX];
	size_t in_len;
	char *out; /* the answer, once the request line is in */
	size_t out_len, out_off;
};

struct lz_http {
	struct lz_fs *fs;
	int listen_fd, stop_fd;
	pthread_t thread;
	struct client clients[HTTP_CLIENTS];
};

int lz_http_listen(const char *spec, bool any_address)
{
	struct sockaddr_in sa;
	int fd, one = 1;

	if (lz_netaddr_parse(spec, &sa) != 0 || (!any_address && !lz_netaddr_is_loopback(&sa)))
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
		lz_warn("metrics listener %s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void drop(struct client *c)
{
	close(c->fd);
	free(c->out);
	c->fd = -1;
	c->out = NULL;
}

/* The answer to the request line in C->in: the metrics, or a 404. */
static void answer(struct lz_http *h, struct client *c, bool metrics)
{
	static const char not_found[] = "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
					"Content-Length: 20\r\n\r\nonly /metrics here.\n";
	char *body = NULL;
	size_t body_len = 0;
	FILE *out;

	c->out_off = 0;
	if (!metrics) {
		c->out = strdup(not_found);
		c->out_len = c->out != NULL ? sizeof(not_found) - 1 : 0;
		return;
	}
	out = open_memstream(&body, &body_len);
	if (out == NULL)
		return;
	lz_report_metrics(h->fs, out);
	fclose(out);
	char head[160];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
			 "Content-Length: %zu\r\n\r\n",
			 body_len);
	c->out = malloc((size_t)n + body_len);
	if (c->out != NULL) {
		memcpy(c->out, head, (size_t)n);
		memcpy(c->out + n, body, body_len);
		c->out_len = (size_t)n + body_len;
	}
	free(body);
}

/* Reads what C sent; false when C is done with (closed, or its request too long). */
static bool on_readable(struct lz_http *h, struct client *c)
{
	ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		return false;
	c->in_len += (size_t)n;
	switch (lz_http_judge(c->in, c->in_len, sizeof(c->in))) {
	case LZ_HTTP_MORE:
		return true;
	case LZ_HTTP_TOO_LONG:
		return false;
	case LZ_HTTP_METRICS:
		answer(h, c, true);
		break;
	case LZ_HTTP_NOT_FOUND:
		answer(h, c, false);
		break;
	}
	return c->out != NULL;
}

/* Writes what fits; false when the answer is out (or the client gone). */
static bool on_writable(struct client *c)
{
	ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	c->out_off += (size_t)n;
	return c->out_off < c->out_len;
}

/* Takes every waiting connection: into a free slot, or closed at once when all are taken. */
static void accept_all(struct lz_http *h)
{
	int fd;

	while ((fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		struct client *c = NULL;
		for (size_t i = 0; i < HTTP_CLIENTS && c == NULL; i++)
			if (h->clients[i].fd < 0)
				c = &h->clients[i];
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->in_len = 0;
		c->out = NULL;
		c->deadline_ns = lz_clock_ns(CLOCK_MONOTONIC) + HTTP_DEADLINE_S * LZ_NS_PER_S;
	}
}

/* One round: serves what is ready, drops what is late. False when told to stop. */
static bool serve_round(struct lz_http *h)
{
	struct pollfd pfd[2 + HTTP_CLIENTS];
	int64_t now = lz_clock_ns(CLOCK_MONOTONIC), first = now + HTTP_DEADLINE_S * LZ_NS_PER_S;

	pfd[0] = (struct pollfd){ .fd = h->stop_fd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = h->listen_fd, .events = POLLIN };
	for (size_t i = 0; i < HTTP_CLIENTS; i++) {
		struct client *c = &h->clients[i];
		pfd[2 + i] = (struct pollfd){ .fd = c->fd, .events = c->out ? POLLOUT : POLLIN };
		if (c->fd >= 0 && c->deadline_ns < first)
			first = c->deadline_ns;
	}
	int wait_ms = first > now ? (int)((first - now) / 1000000) + 1 : 0;
	if (poll(pfd, 2 + HTTP_CLIENTS, wait_ms) < 0 && errno != EINTR)
		return false;
	if (pfd[0].revents != 0)
		return false;
	now = lz_clock_ns(CLOCK_MONOTONIC);
	for (size_t i = 0; i < HTTP_CLIENTS; i++) {
		struct client *c = &h->clients[i];
		short ev = pfd[2 + i].revents;
		bool more = c->fd >= 0 && now < c->deadline_ns;
		if (more && ev != 0)
			more = (ev & (POLLERR | POLLHUP)) == 0 &&
			       (c->out != NULL ? on_writable(c) : on_readable(h, c));
		if (c->fd >= 0 && !more)
			drop(c);
	}
	if (pfd[1].revents & POLLIN)
		accept_all(h);
	return true;
}

static void *http_main(void *arg)
{
	struct lz_http *h = arg;

	while (serve_round(h))
		;
	for (size_t i = 0; i < HTTP_CLIENTS; i++)
		if (h->clients[i].fd >= 0)
			drop(&h->clients[i]);
	return NULL;
}

struct lz_http *lz_http_start(struct lz_fs *fs, int listen_fd)
{
	struct lz_http *h = calloc(1, sizeof(*h));
	sigset_t all, old;

	if (h == NULL) {
		close(listen_fd);
		return NULL;
	}
	h->fs = fs;
	h->listen_fd = listen_fd;
	h->stop_fd = eventfd(0, EFD_CLOEXEC);
	for (size_t i = 0; i < HTTP_CLIENTS; i++)
		h->clients[i].fd = -1;
	/* An inherited listener (a live upgrade) may be blocking: accept must not wait. */
	int flags = fcntl(listen_fd, F_GETFL);
	if (flags >= 0)
		fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = h->stop_fd < 0 ? -1 : pthread_create(&h->thread, NULL, http_main, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		if (h->stop_fd >= 0)
			close(h->stop_fd);
		close(listen_fd);
		free(h);
		return NULL;
	}
	return h;
}

void lz_http_stop(struct lz_http *h)
{
	uint64_t one = 1;

	if (h == NULL)
		return;
	if (write(h->stop_fd, &one, sizeof(one)) == sizeof(one))
		pthread_join(h->thread, NULL);
	close(h->stop_fd);
	close(h->listen_fd);
	free(h);
}

int lz_http_fd(const struct lz_http *h)
{
	return h != NULL ? h->listen_fd : -1;
}
