/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "jobs.h"
#include "common/clock.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum job_state { JOB_FREE, JOB_RUNNING, JOB_DONE, JOB_FAILED };

struct job {
	struct lz_jobs *jobs;
	enum job_state state;
	char what[16];
	char *arg;
	lz_job_fn *fn;
	void *ctx;
	double started, ended; /* CLOCK_MONOTONIC seconds */
	char msg[LZ_JOB_MSG];
	pthread_t thread;
	bool joinable;
	unsigned long seq; /* order of starting, for keeping the last ended ones */
};

struct lz_jobs {
	pthread_mutex_t lock;
	pthread_cond_t ended;
	struct job slots[LZ_JOBS_RUNNING + LZ_JOBS_KEPT];
	unsigned long seq;
};

struct lz_jobs *lz_jobs_new(void)
{
	struct lz_jobs *jobs = calloc(1, sizeof(*jobs));

	if (jobs == NULL)
		return NULL;
	pthread_mutex_init(&jobs->lock, NULL);
	pthread_cond_init(&jobs->ended, NULL);
	return jobs;
}

void lz_jobs_free(struct lz_jobs *jobs)
{
	if (jobs == NULL)
		return;
	for (size_t i = 0; i < sizeof(jobs->slots) / sizeof(jobs->slots[0]); i++) {
		struct job *j = &jobs->slots[i];
		if (j->joinable)
			pthread_join(j->thread, NULL);
		free(j->arg);
	}
	pthread_mutex_destroy(&jobs->lock);
	pthread_cond_destroy(&jobs->ended);
	free(jobs);
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	char msg[LZ_JOB_MSG] = "";
	int rc = j->fn(j->ctx, j->arg, msg, sizeof(msg));

	pthread_mutex_lock(&j->jobs->lock);
	snprintf(j->msg, sizeof(j->msg), "%s", msg);
	j->state = rc == 0 ? JOB_DONE : JOB_FAILED;
	j->ended = lz_clock_s(CLOCK_MONOTONIC);
	pthread_cond_broadcast(&j->jobs->ended);
	pthread_mutex_unlock(&j->jobs->lock);
	return NULL;
}

/* Under the lock: a slot for a new job (a free one, else the oldest ended), or NULL. */
static struct job *take_slot(struct lz_jobs *jobs)
{
	struct job *best = NULL;
	unsigned running = 0;

	for (size_t i = 0; i < sizeof(jobs->slots) / sizeof(jobs->slots[0]); i++) {
		struct job *j = &jobs->slots[i];
		if (j->state == JOB_RUNNING)
			running++;
		else if (best == NULL || j->state == JOB_FREE ||
			 (best->state != JOB_FREE && j->seq < best->seq))
			best = j;
	}
	if (running >= LZ_JOBS_RUNNING || best == NULL)
		return NULL;
	if (best->joinable)
		pthread_join(best->thread, NULL); /* ended: returns at once */
	best->joinable = false;
	free(best->arg);
	best->arg = NULL;
	return best;
}

/* Under the lock: starts J; 0, or -errno. */
static int start(struct lz_jobs *jobs, struct job *j)
{
	sigset_t all, old;
	int rc;

	j->jobs = jobs;
	j->state = JOB_RUNNING;
	j->started = lz_clock_s(CLOCK_MONOTONIC);
	j->seq = ++jobs->seq;
	j->msg[0] = '\0';
	/* Signals go to the main thread: a job must not take SIGTERM or SIGHUP. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&j->thread, NULL, job_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	j->joinable = rc == 0;
	if (rc != 0)
		j->state = JOB_FREE;
	return -rc;
}

int lz_jobs_run(struct lz_jobs *jobs, const char *what, lz_job_fn *fn, void *ctx, const char *arg,
		unsigned wait_ms, char *msg, size_t size)
{
	struct timespec until = lz_clock_after(CLOCK_REALTIME, wait_ms / 1000.0);
	struct job *j;
	int rc;

	pthread_mutex_lock(&jobs->lock);
	j = take_slot(jobs);
	if (j == NULL) {
		pthread_mutex_unlock(&jobs->lock);
		snprintf(msg, size, "busy: %d pins or prefetches are running; try again later",
			 LZ_JOBS_RUNNING);
		return -1;
	}
	snprintf(j->what, sizeof(j->what), "%s", what);
	j->arg = strdup(arg);
	j->fn = fn;
	j->ctx = ctx;
	if (j->arg == NULL || start(jobs, j) != 0) {
		j->state = JOB_FREE;
		pthread_mutex_unlock(&jobs->lock);
		snprintf(msg, size, "cannot start the %s of %s", what, arg);
		return -1;
	}
	while (j->state == JOB_RUNNING &&
	       pthread_cond_timedwait(&jobs->ended, &jobs->lock, &until) == 0)
		;
	if (j->state == JOB_RUNNING) {
		snprintf(msg, size, "%s: %s goes on in the background (lazyfsctl status shows it)",
			 arg, what);
		rc = 1;
	} else {
		snprintf(msg, size, "%s", j->msg);
		rc = j->state == JOB_DONE ? 0 : -1;
	}
	pthread_mutex_unlock(&jobs->lock);
	return rc;
}

struct json_object *lz_jobs_report(struct lz_jobs *jobs)
{
	static const char *const states[] = { "free", "running", "done", "failed" };
	struct json_object *list = json_object_new_array();
	double now = lz_clock_s(CLOCK_MONOTONIC);

	pthread_mutex_lock(&jobs->lock);
	for (size_t i = 0; i < sizeof(jobs->slots) / sizeof(jobs->slots[0]); i++) {
		const struct job *j = &jobs->slots[i];
		if (j->state == JOB_FREE)
			continue;
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "what", json_object_new_string(j->what));
		json_object_object_add(o, "entry", json_object_new_string(j->arg ? j->arg : ""));
		json_object_object_add(o, "state", json_object_new_string(states[j->state]));
		json_object_object_add(
			o, "seconds",
			json_object_new_double((j->state == JOB_RUNNING ? now : j->ended) -
					       j->started));
		if (j->state != JOB_RUNNING)
			json_object_object_add(o, "message", json_object_new_string(j->msg));
		json_object_array_add(list, o);
	}
	pthread_mutex_unlock(&jobs->lock);
	return list;
}
