/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Deferred requests (defer.h). One lock guards everything here; it is never
 * held while work runs or while a reply is sent.
 *
 * A job is on d->jobs from submit until it is answered, in submission order,
 * which is deadline order (one timeout for all): the timer looks at the head
 * only. It sits in its lane's queue until a thread takes it. Whoever answers
 * a job removes it from both; a job answered while its work runs is freed by
 * the thread running it, any other by whoever answered it.
 *
 * Interrupts: libfuse calls on_interrupt with the request's own lock held,
 * from fuse_req_interrupt_func itself when the interrupt came first. A reply
 * from there frees the request under that lock, so a job is "armed" only
 * once fuse_req_interrupt_func returned, and only armed jobs are answered by
 * an interrupt; one that came earlier is answered by the arming thread.
 */
#include "config.h"
#include "defer.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/names.h"
#include "common/sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#define LANE_BUCKETS 1024
#define IDLE_EXIT_S  10
#define THREAD_STACK (512u << 10) /* lookups keep a few PATH_MAX buffers */

struct lane;

struct lz_defer_job {
	TAILQ_ENTRY(lz_defer_job) all;	  /* d->jobs, while unanswered */
	TAILQ_ENTRY(lz_defer_job) queued; /* its lane's queue, until a thread takes it */
	struct lz_defer_job *reply_next;  /* answered together, replied outside the lock */
	struct lz_defer *d;
	struct lane *lane;
	fuse_req_t req;
	lz_defer_run_fn *run;
	lz_defer_drop_fn *drop;
	void *arg;
	int64_t deadline; /* CLOCK_MONOTONIC ns; INT64_MAX: none */
	int error;	  /* the answer when not the work's */
	bool armed;	  /* fuse_req_interrupt_func returned: an interrupt may answer it */
	bool queued_in_lane, running, ran, answered, interrupted;
	bool replying; /* answered with an error being sent: the sender frees it */
};

TAILQ_HEAD(job_list, lz_defer_job);

struct lane {
	char *key;
	struct job_list jobs;
	TAILQ_ENTRY(lane) ready; /* d->ready, while it waits for a thread */
	struct lane *next;	 /* hash chain */
};

struct lz_defer {
	pthread_mutex_t lock;
	pthread_cond_t work;   /* a lane is ready, or stopping */
	pthread_cond_t timer;  /* the jobs changed, or stopping */
	pthread_cond_t change; /* resumed, or a thread ended */
	struct job_list jobs;
	TAILQ_HEAD(, lane) ready;
	unsigned threads, idle, pending;
	unsigned running;	/* jobs whose work runs now */
	unsigned claim_waiters; /* of those, done and waiting for a resume in lz_defer_claim */
	unsigned wakeups;	/* idle threads signalled for a lane that have not woken yet */
	struct lane *lanes[LANE_BUCKETS];
	double timeout;
	unsigned max_threads; /* LZ_DEFER_THREADS unless lz_defer_set_threads */
	bool paused, stopping, spawn_warned;
	bool background; /* threads niced: lz_defer_set_background */
	pthread_t timer_thread;
	struct lz_waits *counts;
};

static void cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

static struct timespec ns_to_timespec(int64_t ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / LZ_NS_PER_S),
				  .tv_nsec = (long)(ns % LZ_NS_PER_S) };
}

static struct lane **lane_slot(struct lz_defer *d, const char *key)
{
	struct lane **slot = &d->lanes[lz_hash32(key) % LANE_BUCKETS];

	while (*slot != NULL && strcmp((*slot)->key, key) != 0)
		slot = &(*slot)->next;
	return slot;
}

static void free_lane_locked(struct lz_defer *d, struct lane *lane)
{
	struct lane **slot = lane_slot(d, lane->key);

	*slot = lane->next;
	free(lane->key);
	free(lane);
}

/*
 * Marks JOB answered with ERROR (unless the work answers it) and takes it off
 * the lists; chains it on *REPLIES unless it is the work's to free.
 */
static void answer_locked(struct lz_defer *d, struct lz_defer_job *job, int error,
			  struct lz_defer_job **replies)
{
	job->answered = true;
	job->error = error;
	TAILQ_REMOVE(&d->jobs, job, all);
	d->pending--;
	atomic_fetch_sub(&d->counts->waiting, 1);
	if (job->queued_in_lane) {
		TAILQ_REMOVE(&job->lane->jobs, job, queued);
		job->queued_in_lane = false;
	}
	if (error != 0) {
		job->replying = true;
		job->reply_next = *replies;
		*replies = job;
	}
}

/*
 * Replies to jobs answered under the lock. A job whose work still runs is
 * freed by its thread; the others here (their argument too, if never run).
 */
static void send_replies(struct lz_defer *d, struct lz_defer_job *replies)
{
	while (replies != NULL) {
		struct lz_defer_job *job = replies;
		replies = job->reply_next;
		fuse_reply_err(job->req, job->error);
		pthread_mutex_lock(&d->lock);
		job->replying = false;
		bool ours = !job->running;
		pthread_mutex_unlock(&d->lock);
		if (ours && !job->ran)
			job->drop(job->arg);
		if (ours)
			free(job);
	}
}

static void *work_thread(void *arg);

/* A thread for a new lane: an idle one, or a new one. */
static void find_thread_locked(struct lz_defer *d)
{
	pthread_attr_t attr;
	pthread_t thread;

	if (d->idle > d->wakeups) {
		d->wakeups++;
		pthread_cond_signal(&d->work);
		return;
	}
	if (d->threads >= d->max_threads)
		return; /* the lane waits for a thread to come free */
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	int rc = pthread_create(&thread, &attr, work_thread, d);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		if (!d->spawn_warned)
			lz_warn("cannot start a thread for deferred requests: %s", strerror(rc));
		d->spawn_warned = true;
		return;
	}
	d->threads++;
	atomic_store(&d->counts->threads, d->threads);
}

/* Queues an armed JOB in the lane of KEY (made if needed): 0 or -ENOMEM. */
static int enqueue_locked(struct lz_defer *d, struct lz_defer_job *job, const char *key)
{
	struct lane **slot = lane_slot(d, key), *lane = *slot;

	if (lane == NULL) {
		lane = calloc(1, sizeof(*lane));
		if (lane == NULL || (lane->key = strdup(key)) == NULL) {
			free(lane);
			return -ENOMEM;
		}
		TAILQ_INIT(&lane->jobs);
		*slot = lane;
		TAILQ_INSERT_TAIL(&d->ready, lane, ready);
		find_thread_locked(d);
	}
	job->lane = lane;
	job->queued_in_lane = true;
	TAILQ_INSERT_TAIL(&lane->jobs, job, queued);
	return 0;
}

static void on_interrupt(fuse_req_t req, void *data)
{
	struct lz_defer *d = data;
	struct lz_defer_job *job, *replies = NULL;

	pthread_mutex_lock(&d->lock);
	TAILQ_FOREACH(job, &d->jobs, all)
	{
		if (job->req != req)
			continue;
		job->interrupted = true;
		/* Unarmed: the arming thread answers. Paused: the new process may have it. */
		if (job->armed && !d->paused) {
			answer_locked(d, job, EINTR, &replies);
			atomic_fetch_add(&d->counts->interrupted, 1);
		}
		break;
	}
	pthread_mutex_unlock(&d->lock);
	/* Armed: libfuse holds a reference on REQ while this runs, so the reply cannot free it. */
	send_replies(d, replies);
}

int lz_defer_submit(struct lz_defer *d, const char *key, fuse_req_t req, lz_defer_run_fn *run,
		    lz_defer_drop_fn *drop, void *arg)
{
	struct lz_defer_job *job = calloc(1, sizeof(*job)), *replies = NULL;

	if (job == NULL)
		return -EAGAIN;
	*job = (struct lz_defer_job){ .d = d, .req = req, .run = run, .drop = drop, .arg = arg };
	job->deadline = d->timeout > 0 ? lz_clock_ns(CLOCK_MONOTONIC) + (int64_t)(d->timeout * 1e9)
				       : INT64_MAX;
	pthread_mutex_lock(&d->lock);
	if (d->stopping || d->pending >= LZ_DEFER_PENDING) {
		pthread_mutex_unlock(&d->lock);
		atomic_fetch_add(&d->counts->refused, 1);
		free(job);
		return -EAGAIN;
	}
	TAILQ_INSERT_TAIL(&d->jobs, job, all);
	d->pending++;
	atomic_fetch_add(&d->counts->waiting, 1);
	atomic_fetch_add(&d->counts->deferred, 1);
	if (TAILQ_FIRST(&d->jobs) == job)
		pthread_cond_signal(&d->timer);
	pthread_mutex_unlock(&d->lock);

	fuse_req_interrupt_func(req, on_interrupt, d);

	pthread_mutex_lock(&d->lock);
	job->armed = true;
	if (job->interrupted && !d->paused) {
		answer_locked(d, job, EINTR, &replies);
		atomic_fetch_add(&d->counts->interrupted, 1);
	} else if (enqueue_locked(d, job, key) != 0) {
		answer_locked(d, job, ENOMEM, &replies);
	}
	pthread_mutex_unlock(&d->lock);
	send_replies(d, replies);
	return 0;
}

bool lz_defer_claim(struct lz_defer_job *job)
{
	struct lz_defer *d = job->d;
	struct lz_defer_job *none = NULL;
	bool mine;

	pthread_mutex_lock(&d->lock);
	if (d->paused && !d->stopping && !job->answered) {
		d->claim_waiters++;
		pthread_cond_broadcast(&d->change); /* one fewer to wait for in lz_defer_pause */
		while (d->paused && !d->stopping && !job->answered)
			pthread_cond_wait(&d->change, &d->lock);
		d->claim_waiters--;
	}
	mine = !job->answered;
	if (mine)
		answer_locked(d, job, 0, &none);
	pthread_mutex_unlock(&d->lock);
	return mine;
}

/* Runs JOB, taken off its lane, without the lock; frees it unless a sender does. */
static void run_job_locked(struct lz_defer *d, struct lz_defer_job *job)
{
	struct lz_defer_job *replies = NULL;

	TAILQ_REMOVE(&job->lane->jobs, job, queued);
	job->queued_in_lane = false;
	job->running = true;
	d->running++;
	pthread_mutex_unlock(&d->lock);
	job->run(job, job->req, job->arg);
	pthread_mutex_lock(&d->lock);
	job->running = false;
	if (--d->running == 0)
		pthread_cond_broadcast(&d->change);
	job->ran = true;
	if (!job->answered) /* the work neither claimed it nor was it answered */
		answer_locked(d, job, EIO, &replies);
	bool ours = !job->replying;
	pthread_mutex_unlock(&d->lock);
	send_replies(d, replies);
	if (ours)
		free(job);
	pthread_mutex_lock(&d->lock);
}

/* Runs the lanes that wait for a thread; ends after IDLE_EXIT_S with none. */
static void *work_thread(void *arg)
{
	struct lz_defer *d = arg;

	if (d->background)
		lz_sched_background(getpid());
	pthread_mutex_lock(&d->lock);
	for (;;) {
		/*
		 * Paused: nothing starts, so no work reaches the core's services while
		 * a live upgrade takes them down (queued requests go to the new process).
		 */
		struct lane *lane = d->paused ? NULL : TAILQ_FIRST(&d->ready);
		if (lane == NULL) {
			if (d->stopping)
				break;
			struct timespec until = ns_to_timespec(lz_clock_ns(CLOCK_MONOTONIC) +
							       IDLE_EXIT_S * LZ_NS_PER_S);
			d->idle++;
			int rc = pthread_cond_timedwait(&d->work, &d->lock, &until);
			d->idle--;
			if (d->wakeups > 0)
				d->wakeups--;
			if (rc == ETIMEDOUT && TAILQ_EMPTY(&d->ready))
				break;
			continue;
		}
		TAILQ_REMOVE(&d->ready, lane, ready);
		struct lz_defer_job *job;
		while (!d->paused && (job = TAILQ_FIRST(&lane->jobs)) != NULL)
			run_job_locked(d, job);
		if (TAILQ_EMPTY(&lane->jobs))
			free_lane_locked(d, lane);
		else /* paused: the rest waits for lz_defer_resume */
			TAILQ_INSERT_HEAD(&d->ready, lane, ready);
	}
	d->threads--;
	atomic_store(&d->counts->threads, d->threads);
	pthread_cond_broadcast(&d->change);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* Answers EIO whatever waited past its deadline; sleeps until the next one. */
static void *timer_thread(void *arg)
{
	struct lz_defer *d = arg;

	pthread_mutex_lock(&d->lock);
	while (!d->stopping) {
		struct lz_defer_job *head = TAILQ_FIRST(&d->jobs), *replies = NULL;
		int64_t now = lz_clock_ns(CLOCK_MONOTONIC);
		while (!d->paused && head != NULL && head->armed && head->deadline <= now) {
			answer_locked(d, head, EIO, &replies);
			atomic_fetch_add(&d->counts->timed_out, 1);
			head = TAILQ_FIRST(&d->jobs);
		}
		if (replies != NULL) {
			pthread_mutex_unlock(&d->lock);
			send_replies(d, replies);
			pthread_mutex_lock(&d->lock);
			continue;
		}
		if (d->paused || head == NULL || head->deadline == INT64_MAX) {
			pthread_cond_wait(&d->timer, &d->lock);
		} else {
			/* An unarmed head is armed within microseconds: look again soon. */
			int64_t at = head->armed ? head->deadline : now + 1000000;
			struct timespec until = ns_to_timespec(at);
			pthread_cond_timedwait(&d->timer, &d->lock, &until);
		}
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

struct lz_defer *lz_defer_new(double timeout, struct lz_waits *counts)
{
	struct lz_defer *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	pthread_mutex_init(&d->lock, NULL);
	cond_init_monotonic(&d->work);
	cond_init_monotonic(&d->timer);
	cond_init_monotonic(&d->change);
	TAILQ_INIT(&d->jobs);
	TAILQ_INIT(&d->ready);
	d->timeout = timeout;
	d->max_threads = LZ_DEFER_THREADS;
	d->counts = counts;
	if (pthread_create(&d->timer_thread, NULL, timer_thread, d) != 0) {
		free(d);
		return NULL;
	}
	return d;
}

void lz_defer_set_background(struct lz_defer *d)
{
	d->background = true;
}

void lz_defer_set_threads(struct lz_defer *d, unsigned max)
{
	pthread_mutex_lock(&d->lock);
	d->max_threads = max < 1 ? 1 : max > LZ_DEFER_THREADS ? LZ_DEFER_THREADS : max;
	pthread_mutex_unlock(&d->lock);
}

bool lz_defer_pause(struct lz_defer *d, double wait_s)
{
	struct timespec until = lz_clock_after(CLOCK_MONOTONIC, wait_s);
	bool quiet;

	pthread_mutex_lock(&d->lock);
	d->paused = true;
	/* Work that finishes now waits in lz_defer_claim; work stuck on a store goes on waiting. */
	while (d->running > d->claim_waiters &&
	       pthread_cond_timedwait(&d->change, &d->lock, &until) != ETIMEDOUT)
		;
	quiet = d->running == d->claim_waiters;
	pthread_mutex_unlock(&d->lock);
	return quiet;
}

void lz_defer_resume(struct lz_defer *d)
{
	struct lz_defer_job *job, *next, *replies = NULL;

	pthread_mutex_lock(&d->lock);
	d->paused = false;
	/* Interrupts that came while paused are answered now. */
	for (job = TAILQ_FIRST(&d->jobs); job != NULL; job = next) {
		next = TAILQ_NEXT(job, all);
		if (job->armed && job->interrupted) {
			answer_locked(d, job, EINTR, &replies);
			atomic_fetch_add(&d->counts->interrupted, 1);
		}
	}
	pthread_cond_broadcast(&d->change);
	pthread_cond_broadcast(&d->timer);
	pthread_cond_broadcast(&d->work); /* lanes that waited while paused */
	pthread_mutex_unlock(&d->lock);
	send_replies(d, replies);
}

bool lz_defer_stop(struct lz_defer *d, double wait_s)
{
	struct lz_defer_job *replies = NULL;
	struct timespec until = lz_clock_after(CLOCK_MONOTONIC, wait_s);
	bool ended;

	if (d == NULL)
		return true;
	pthread_mutex_lock(&d->lock);
	d->stopping = true;
	d->paused = false;
	/* The FUSE loop has ended: no job is being submitted, all are armed. */
	while (!TAILQ_EMPTY(&d->jobs))
		answer_locked(d, TAILQ_FIRST(&d->jobs), EIO, &replies);
	pthread_cond_broadcast(&d->work);
	pthread_cond_broadcast(&d->timer);
	pthread_cond_broadcast(&d->change);
	pthread_mutex_unlock(&d->lock);
	send_replies(d, replies);
	pthread_join(d->timer_thread, NULL);

	pthread_mutex_lock(&d->lock);
	while (d->threads > 0 && pthread_cond_timedwait(&d->change, &d->lock, &until) != ETIMEDOUT)
		;
	ended = d->threads == 0;
	pthread_mutex_unlock(&d->lock);
	if (!ended) {
		lz_warn("%u deferred requests still run (a store does not answer); not waiting",
			d->threads);
		return false;
	}
	/* Lanes no thread came for (none could start): their jobs were answered above. */
	for (unsigned b = 0; b < LANE_BUCKETS; b++)
		while (d->lanes[b] != NULL)
			free_lane_locked(d, d->lanes[b]);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->work);
	pthread_cond_destroy(&d->timer);
	pthread_cond_destroy(&d->change);
	free(d);
	return true;
}
