/*
 * writer.c - the write-behind thread. See writer.h.
 *
 * Invariants: records are committed in the order they were enqueued, a
 * batch is all-or-nothing (one store transaction), and `done` only moves
 * forward, to the enqueue count covered by the last successful commit.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "weft/weft.h"
#include "client/writer.h"

enum rec_kind { REC_LOG_APPEND, REC_LOG_TRIM, REC_DOC_PUT, REC_META_PUT };

struct rec {
	struct rec *next;
	enum rec_kind kind;
	uint64_t key; /* log key (append/trim) */
	char *name;   /* meta key, or collection for docs */
	size_t name_len;
	char *id; /* document id */
	size_t id_len;
	uint8_t *val; /* value bytes */
	size_t len;
};

struct writer {
	const struct weft_alloc *alloc;
	struct weft_store *st; /* touched only by the thread */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake;    /* records queued, flush requested or stop */
	pthread_cond_t done_cv; /* a batch finished (ok or not) */
	struct rec *head;       /* queue, oldest first */
	struct rec *tail;
	uint64_t enqueued; /* records ever enqueued */
	uint64_t done;     /* records durable */
	uint64_t attempts; /* batches attempted */
	int last_err;      /* error of the last attempt, 0 if it worked */
	int flush_req;     /* a flush is waiting */
	int stop;          /* writer_stop was called */
	uint32_t interval_ms;
};

static void rec_free(const struct weft_alloc *a, struct rec *r)
{
	weft__free(a, r->name);
	weft__free(a, r->id);
	weft__free(a, r->val);
	weft__free(a, r);
}

static void deadline_in(struct timespec *ts, uint32_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static int apply_rec(struct weft_store *st, const struct rec *r)
{
	switch (r->kind) {
	case REC_LOG_APPEND:
		return st->vt->log_append(st, r->key, r->val, r->len);
	case REC_LOG_TRIM:
		return st->vt->log_trim(st, r->key);
	case REC_DOC_PUT:
		return st->vt->doc_put(st, r->name, r->name_len, r->id, r->id_len, r->val, r->len);
	case REC_META_PUT:
		return st->vt->meta_put(st, r->name, r->val, r->len);
	}
	return WEFT_EINVAL;
}

/* One store transaction for the whole list. */
static int write_batch(struct weft_store *st, const struct rec *batch)
{
	int rc = st->vt->begin(st);

	for (const struct rec *r = batch; rc == WEFT_OK && r; r = r->next)
		rc = apply_rec(st, r);
	if (rc == WEFT_OK)
		rc = st->vt->commit(st);
	if (rc != WEFT_OK)
		st->vt->rollback(st);
	return rc;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint32_t backoff = 0;
	int failures_while_stopping = 0;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct timespec ts;
		struct rec *batch, *tail;
		uint64_t covered;
		int rc;

		while (!w->head && !w->stop)
			pthread_cond_wait(&w->wake, &w->mu);
		if (!w->head)
			break;
		/* Let a group form, unless someone is waiting for it. */
		deadline_in(&ts, backoff ? backoff : w->interval_ms);
		while (!w->flush_req && !w->stop && (backoff || w->interval_ms)) {
			if (pthread_cond_timedwait(&w->wake, &w->mu, &ts) == ETIMEDOUT)
				break;
		}
		batch = w->head;
		tail = w->tail;
		covered = w->enqueued;
		w->head = w->tail = NULL;
		w->flush_req = 0;
		pthread_mutex_unlock(&w->mu);

		rc = write_batch(w->st, batch);

		pthread_mutex_lock(&w->mu);
		w->attempts++;
		w->last_err = rc;
		if (rc == WEFT_OK) {
			w->done = covered;
			backoff = 0;
			while (batch) {
				struct rec *next = batch->next;

				rec_free(w->alloc, batch);
				batch = next;
			}
		} else {
			/* Put the batch back in front, in order, and retry later. */
			tail->next = w->head;
			w->head = batch;
			if (!w->tail)
				w->tail = tail;
			backoff = backoff ? (backoff * 2 > 5000 ? 5000 : backoff * 2) : 50;
			if (w->stop && ++failures_while_stopping >= 3) {
				pthread_cond_broadcast(&w->done_cv);
				break;
			}
		}
		pthread_cond_broadcast(&w->done_cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int weft__writer_start(struct weft_store *st, const struct weft_alloc *a, uint32_t interval_ms,
                       struct writer **out)
{
	struct writer *w = weft__zalloc(a, sizeof(*w));

	if (!w)
		return WEFT_ENOMEM;
	w->alloc = a;
	w->st = st;
	w->interval_ms = interval_ms;
	pthread_mutex_init(&w->mu, NULL);
	{
		/* Timed waits on the monotonic clock: a wall clock that jumps
		 * (NTP, a user, faketime) must not stall group commits. */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&w->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_cond_init(&w->done_cv, NULL);
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		pthread_cond_destroy(&w->done_cv);
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->mu);
		weft__free(a, w);
		return WEFT_EIO;
	}
	*out = w;
	return WEFT_OK;
}

int weft__writer_stop(struct writer *w)
{
	int rc;

	if (!w)
		return WEFT_OK;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	rc = w->head ? (w->last_err ? w->last_err : WEFT_EIO) : WEFT_OK;
	while (w->head) {
		struct rec *next = w->head->next;

		rec_free(w->alloc, w->head);
		w->head = next;
	}
	pthread_cond_destroy(&w->done_cv);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->mu);
	weft__free(w->alloc, w);
	return rc;
}

static int enqueue(struct writer *w, struct rec *r)
{
	pthread_mutex_lock(&w->mu);
	if (w->tail)
		w->tail->next = r;
	else
		w->head = r;
	w->tail = r;
	w->enqueued++;
	if (r == w->head)
		pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->mu);
	return WEFT_OK;
}

static struct rec *rec_new(struct writer *w, enum rec_kind kind, const void *val, size_t len)
{
	struct rec *r = weft__zalloc(w->alloc, sizeof(*r));

	if (!r)
		return NULL;
	r->kind = kind;
	if (val) {
		r->val = weft__malloc(w->alloc, len);
		if (!r->val) {
			weft__free(w->alloc, r);
			return NULL;
		}
		memcpy(r->val, val, len);
		r->len = len;
	}
	return r;
}

int weft__writer_log_append(struct writer *w, uint64_t key, const void *val, size_t len)
{
	struct rec *r = rec_new(w, REC_LOG_APPEND, val, len);

	if (!r)
		return WEFT_ENOMEM;
	r->key = key;
	return enqueue(w, r);
}

int weft__writer_log_trim(struct writer *w, uint64_t upto)
{
	struct rec *r = rec_new(w, REC_LOG_TRIM, NULL, 0);

	if (!r)
		return WEFT_ENOMEM;
	r->key = upto;
	return enqueue(w, r);
}

int weft__writer_doc_put(struct writer *w, const char *coll, size_t coll_len, const char *id,
                         size_t id_len, const void *val, size_t len)
{
	struct rec *r = rec_new(w, REC_DOC_PUT, val, len);

	if (!r)
		return WEFT_ENOMEM;
	r->name = weft__strndup(w->alloc, coll, coll_len);
	r->id = weft__strndup(w->alloc, id, id_len);
	if (!r->name || !r->id) {
		rec_free(w->alloc, r);
		return WEFT_ENOMEM;
	}
	r->name_len = coll_len;
	r->id_len = id_len;
	return enqueue(w, r);
}

int weft__writer_meta_put(struct writer *w, const char *key, const void *val, size_t len)
{
	struct rec *r = rec_new(w, REC_META_PUT, val, len);

	if (!r)
		return WEFT_ENOMEM;
	r->name = weft__strndup(w->alloc, key, strlen(key));
	if (!r->name) {
		rec_free(w->alloc, r);
		return WEFT_ENOMEM;
	}
	return enqueue(w, r);
}

int weft__writer_flush(struct writer *w)
{
	uint64_t target, attempts;
	int rc = WEFT_OK;

	pthread_mutex_lock(&w->mu);
	target = w->enqueued;
	attempts = w->attempts;
	w->flush_req = 1;
	pthread_cond_signal(&w->wake);
	while (w->done < target) {
		/* An attempt that started after our request failed: report it.
		 * attempts + 1 may be a batch already in flight, so wait for
		 * the one after it. */
		if (w->attempts >= attempts + 2 && w->last_err) {
			rc = w->last_err;
			break;
		}
		pthread_cond_wait(&w->done_cv, &w->mu);
		if (w->done < target && !w->head && w->last_err == WEFT_OK)
			continue;
		if (w->done < target) {
			w->flush_req = 1;
			pthread_cond_signal(&w->wake);
		}
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}
