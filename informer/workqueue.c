#include "workqueue.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An allocation failure inside uthash leaves the item out of its table
 * (hh.tbl == NULL) instead of exiting the process. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "kerr.h"

#define WQ_NS_PER_MS INT64_C(1000000)
#define WQ_DEFAULT_BASE_MS INT64_C(5)
#define WQ_DEFAULT_MAX_MS INT64_C(1000000)
/* Longer delays are clamped (to ~146 years), so that now + delay and the
 * doubling of the backoff cannot overflow an int64_t of nanoseconds. */
#define WQ_MAX_DELAY_MS (INT64_MAX / 2 / WQ_NS_PER_MS)
#define WQ_NOT_WAITING SIZE_MAX

/*
 * Everything the queue knows about one key, in one allocation, so that the
 * dirty set, the processing set, the delay heap and the backoff counters of
 * client-go cost one hash lookup and no extra copies of the key.
 */
struct wq_item {
	UT_hash_handle hh;    /* in workqueue.items, keyed by key */
	struct wq_item *next; /* in the FIFO while queued */
	int64_t dirty_ns;     /* when it last became dirty (latency metric) */
	int64_t taken_ns;     /* when a worker took it (work metric) */
	int64_t ready_ns;     /* while waiting: when it is due */
	size_t heap_pos;      /* index in workqueue.heap, or WQ_NOT_WAITING */
	unsigned requeues;    /* rate-limited adds since the last forget */
	bool dirty;           /* needs processing (client-go's dirty set) */
	bool processing;      /* held by a worker (client-go's processing set) */
	char key[];
};

/*
 * Invariants, whenever mu is free:
 * - an item is in the FIFO iff dirty && !processing, and then exactly once;
 *   so a key waiting to be taken is taken once however often it was added;
 * - a processing item is held by exactly one worker and is not in the FIFO:
 *   an add marks it dirty only, and workqueue_done queues it again;
 * - heap holds exactly the waiting items (heap_pos != WQ_NOT_WAITING), as a
 *   min-heap on ready_ns;
 * - an item exists only while it is dirty, processing, waiting or has
 *   requeues > 0; then it is freed.
 *
 * Delays need no timer thread: a worker in workqueue_get sleeps on cond
 * until the earliest due time at most, and moves due items to the FIFO
 * itself. A due item matters only to a worker taking items, so nothing is
 * late; there is no thread to start, stop or join, and a queue with no
 * worker costs nothing.
 */
struct workqueue {
	pthread_mutex_t mu;
	/* On CLOCK_MONOTONIC. Signalled when an item enters the FIFO;
	 * broadcast when the earliest due time moves earlier (sleepers must
	 * shorten their wait), at shutdown, and when the last processing item
	 * is done during shutdown (for workqueue_shutdown_drain). */
	pthread_cond_t cond;
	struct wq_item *items;
	struct wq_item *head, *tail; /* the FIFO */
	size_t nqueued;
	size_t nprocessing;
	struct wq_item **heap;
	size_t nheap, heap_cap;
	bool shutting_down;
	int64_t base_ns, max_ns; /* backoff: base * 2^requeues, at most max */
	workqueue_metric_fn metric;
	void *metric_arg;
};

static int64_t wq_now(void)
{
	struct timespec ts;
	/* workqueue_new checked that CLOCK_MONOTONIC works. */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int wq_lock(struct workqueue *q)
{
	/* A default mutex fails only on misuse, such as a call from the
	 * metrics hook. */
	return pthread_mutex_lock(&q->mu) == 0 ? 0 : KERR_INVAL;
}

static void wq_unlock(struct workqueue *q)
{
	/* Unlocking a mutex this thread holds cannot fail. */
	(void)pthread_mutex_unlock(&q->mu);
}

static void wq_wake(struct workqueue *q, bool all)
{
	/* Signalling an initialized condition variable cannot fail. */
	if (all)
		(void)pthread_cond_broadcast(&q->cond);
	else
		(void)pthread_cond_signal(&q->cond);
}

static void wq_metric(struct workqueue *q, enum workqueue_metric m, int64_t ns)
{
	if (q->metric)
		q->metric(q->metric_arg, m, ns);
}

static int64_t wq_ms_to_ns(int64_t ms)
{
	return (ms < WQ_MAX_DELAY_MS ? ms : WQ_MAX_DELAY_MS) * WQ_NS_PER_MS;
}

static void wq_heap_set(struct workqueue *q, size_t pos, struct wq_item *it)
{
	q->heap[pos] = it;
	it->heap_pos = pos;
}

static void wq_heap_up(struct workqueue *q, size_t pos)
{
	struct wq_item *it = q->heap[pos];
	while (pos > 0) {
		size_t parent = (pos - 1) / 2;
		if (q->heap[parent]->ready_ns <= it->ready_ns)
			break;
		wq_heap_set(q, pos, q->heap[parent]);
		pos = parent;
	}
	wq_heap_set(q, pos, it);
}

static void wq_heap_down(struct workqueue *q, size_t pos)
{
	struct wq_item *it = q->heap[pos];
	for (;;) {
		size_t c = 2 * pos + 1;
		if (c >= q->nheap)
			break;
		if (c + 1 < q->nheap && q->heap[c + 1]->ready_ns < q->heap[c]->ready_ns)
			c++;
		if (it->ready_ns <= q->heap[c]->ready_ns)
			break;
		wq_heap_set(q, pos, q->heap[c]);
		pos = c;
	}
	wq_heap_set(q, pos, it);
}

static int wq_heap_push(struct workqueue *q, struct wq_item *it)
{
	if (q->nheap == q->heap_cap) {
		size_t cap = q->heap_cap ? q->heap_cap * 2 : 16;
		struct wq_item **h = realloc(q->heap, cap * sizeof(*h));
		if (!h)
			return KERR_NOMEM;
		q->heap = h;
		q->heap_cap = cap;
	}
	wq_heap_set(q, q->nheap++, it);
	wq_heap_up(q, q->nheap - 1);
	return 0;
}

static struct wq_item *wq_heap_pop(struct workqueue *q)
{
	struct wq_item *it = q->heap[0];
	if (--q->nheap > 0) {
		wq_heap_set(q, 0, q->heap[q->nheap]);
		wq_heap_down(q, 0);
	}
	it->heap_pos = WQ_NOT_WAITING;
	return it;
}

static struct wq_item *wq_item_find(struct workqueue *q, const char *key)
{
	struct wq_item *it;
	HASH_FIND_STR(q->items, key, it);
	return it;
}

/* The item of key, created if need be; NULL when out of memory. */
static struct wq_item *wq_item_get(struct workqueue *q, const char *key)
{
	struct wq_item *it = wq_item_find(q, key);
	if (it)
		return it;
	size_t len = strlen(key);
	it = calloc(1, sizeof(*it) + len + 1);
	if (!it)
		return NULL;
	memcpy(it->key, key, len + 1);
	it->heap_pos = WQ_NOT_WAITING;
	HASH_ADD_KEYPTR(hh, q->items, it->key, len, it);
	if (!it->hh.tbl) {
		free(it);
		return NULL;
	}
	return it;
}

/* Free it if no state refers to it any more. */
static void wq_item_release(struct workqueue *q, struct wq_item *it)
{
	if (it->dirty || it->processing || it->heap_pos != WQ_NOT_WAITING || it->requeues > 0)
		return;
	HASH_DEL(q->items, it);
	free(it);
}

static void wq_fifo_push(struct workqueue *q, struct wq_item *it)
{
	it->next = NULL;
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->nqueued++;
	wq_wake(q, false);
}

/* client-go's Add: skip a dirty key, hold back a processing one. */
static void wq_add_locked(struct workqueue *q, struct wq_item *it, int64_t now)
{
	if (it->dirty)
		return;
	it->dirty = true;
	it->dirty_ns = now;
	wq_metric(q, WORKQUEUE_METRIC_ADD, 0);
	if (!it->processing)
		wq_fifo_push(q, it);
}

/* Move the items that are due to the FIFO. */
static void wq_promote(struct workqueue *q, int64_t now)
{
	while (q->nheap > 0 && q->heap[0]->ready_ns <= now)
		wq_add_locked(q, wq_heap_pop(q), now);
}

/* client-go's AddAfter: now if delay_ns <= 0, else wait; a key already
 * waiting keeps the earlier of its two due times. */
static int wq_schedule(struct workqueue *q, struct wq_item *it, int64_t delay_ns, int64_t now)
{
	if (delay_ns <= 0) {
		wq_add_locked(q, it, now);
		return 0;
	}
	int64_t ready = now + delay_ns;
	if (it->heap_pos != WQ_NOT_WAITING) {
		if (ready >= it->ready_ns)
			return 0;
		it->ready_ns = ready;
		wq_heap_up(q, it->heap_pos);
	} else {
		it->ready_ns = ready;
		int rc = wq_heap_push(q, it);
		if (rc)
			return rc;
	}
	if (q->heap[0] == it)
		wq_wake(q, true);
	return 0;
}

static int64_t wq_backoff(const struct workqueue *q, unsigned requeues)
{
	int64_t d = q->base_ns;
	/* Stop doubling at the cap: d < max_ns <= INT64_MAX / 2 never overflows. */
	for (unsigned i = 0; i < requeues && d < q->max_ns; i++)
		d *= 2;
	return d < q->max_ns ? d : q->max_ns;
}

int workqueue_new(const struct workqueue_opts *opts, struct workqueue **out)
{
	struct workqueue_opts o = {0};
	struct timespec ts;
	pthread_condattr_t attr;

	if (opts)
		o = *opts;
	if (o.base_delay_ms == 0)
		o.base_delay_ms = WQ_DEFAULT_BASE_MS;
	if (o.max_delay_ms == 0)
		o.max_delay_ms = WQ_DEFAULT_MAX_MS;
	if (o.base_delay_ms < 0 || o.max_delay_ms < o.base_delay_ms)
		return KERR_INVAL;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return KERR_CONFIG;

	struct workqueue *q = calloc(1, sizeof(*q));
	if (!q)
		return KERR_NOMEM;
	q->base_ns = wq_ms_to_ns(o.base_delay_ms);
	q->max_ns = wq_ms_to_ns(o.max_delay_ms);
	q->metric = o.metric;
	q->metric_arg = o.metric_arg;

	if (pthread_mutex_init(&q->mu, NULL) != 0)
		goto err;
	if (pthread_condattr_init(&attr) != 0)
		goto err_mu;
	if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&q->cond, &attr) != 0) {
		pthread_condattr_destroy(&attr);
		goto err_mu;
	}
	pthread_condattr_destroy(&attr);
	*out = q;
	return 0;

err_mu:
	pthread_mutex_destroy(&q->mu);
err:
	free(q);
	return KERR_NOMEM;
}

void workqueue_free(struct workqueue *q)
{
	if (!q)
		return;
	struct wq_item *it, *tmp;
	HASH_ITER(hh, q->items, it, tmp) {
		HASH_DEL(q->items, it);
		free(it);
	}
	free(q->heap);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

int workqueue_add(struct workqueue *q, const char *key)
{
	return workqueue_add_after(q, key, 0);
}

int workqueue_add_after(struct workqueue *q, const char *key, int64_t delay_ms)
{
	if (!key)
		return KERR_INVAL;
	int rc = wq_lock(q);
	if (rc)
		return rc;
	if (q->shutting_down) {
		rc = KERR_CLOSED;
		goto out;
	}
	struct wq_item *it = wq_item_get(q, key);
	if (!it) {
		rc = KERR_NOMEM;
		goto out;
	}
	rc = wq_schedule(q, it, wq_ms_to_ns(delay_ms), wq_now());
	wq_item_release(q, it);
out:
	wq_unlock(q);
	return rc;
}

int workqueue_add_rate_limited(struct workqueue *q, const char *key)
{
	if (!key)
		return KERR_INVAL;
	int rc = wq_lock(q);
	if (rc)
		return rc;
	if (q->shutting_down) {
		rc = KERR_CLOSED;
		goto out;
	}
	struct wq_item *it = wq_item_get(q, key);
	if (!it) {
		rc = KERR_NOMEM;
		goto out;
	}
	int64_t delay = wq_backoff(q, it->requeues);
	rc = wq_schedule(q, it, delay, wq_now());
	if (rc == 0) {
		if (it->requeues < UINT_MAX)
			it->requeues++;
		wq_metric(q, WORKQUEUE_METRIC_RETRY, delay);
	}
	wq_item_release(q, it);
out:
	wq_unlock(q);
	return rc;
}

int workqueue_forget(struct workqueue *q, const char *key)
{
	if (!key)
		return KERR_INVAL;
	int rc = wq_lock(q);
	if (rc)
		return rc;
	struct wq_item *it = wq_item_find(q, key);
	if (it) {
		it->requeues = 0;
		wq_item_release(q, it);
	}
	wq_unlock(q);
	return 0;
}

unsigned workqueue_num_requeues(struct workqueue *q, const char *key)
{
	unsigned n = 0;
	if (!key || wq_lock(q) != 0)
		return 0;
	struct wq_item *it = wq_item_find(q, key);
	if (it)
		n = it->requeues;
	wq_unlock(q);
	return n;
}

int workqueue_get(struct workqueue *q, const char **key)
{
	int64_t now;
	int rc = wq_lock(q);
	if (rc)
		return rc;
	for (;;) {
		now = wq_now();
		wq_promote(q, now);
		if (q->head)
			break;
		if (q->shutting_down) {
			rc = KERR_CLOSED;
			goto out;
		}
		if (q->nheap > 0) {
			int64_t due = q->heap[0]->ready_ns;
			struct timespec ts = {
				.tv_sec = (time_t)(due / 1000000000),
				.tv_nsec = (long)(due % 1000000000),
			};
			int err = pthread_cond_timedwait(&q->cond, &q->mu, &ts);
			if (err != 0 && err != ETIMEDOUT) {
				rc = KERR_INVAL;
				goto out;
			}
		} else if (pthread_cond_wait(&q->cond, &q->mu) != 0) {
			rc = KERR_INVAL;
			goto out;
		}
	}

	struct wq_item *it = q->head;
	q->head = it->next;
	if (!q->head)
		q->tail = NULL;
	it->next = NULL;
	q->nqueued--;
	it->dirty = false;
	it->processing = true;
	q->nprocessing++;
	it->taken_ns = now;
	wq_metric(q, WORKQUEUE_METRIC_LATENCY, now - it->dirty_ns);
	*key = it->key;
out:
	wq_unlock(q);
	return rc;
}

int workqueue_done(struct workqueue *q, const char *key)
{
	if (!key)
		return KERR_INVAL;
	int rc = wq_lock(q);
	if (rc)
		return rc;
	struct wq_item *it = wq_item_find(q, key);
	if (!it || !it->processing) {
		rc = KERR_INVAL;
		goto out;
	}
	wq_metric(q, WORKQUEUE_METRIC_WORK, wq_now() - it->taken_ns);
	it->processing = false;
	q->nprocessing--;
	if (it->dirty)
		wq_fifo_push(q, it);
	if (q->nprocessing == 0 && q->shutting_down)
		wq_wake(q, true);
	wq_item_release(q, it);
out:
	wq_unlock(q);
	return rc;
}

static void wq_shutdown_locked(struct workqueue *q)
{
	q->shutting_down = true;
	/* As client-go's delaying queue, whose loop stops at shutdown: a
	 * delayed key could never be added any more. */
	for (size_t i = 0; i < q->nheap; i++) {
		struct wq_item *it = q->heap[i];
		it->heap_pos = WQ_NOT_WAITING;
		wq_item_release(q, it);
	}
	q->nheap = 0;
	wq_wake(q, true);
}

int workqueue_shutdown(struct workqueue *q)
{
	int rc = wq_lock(q);
	if (rc)
		return rc;
	wq_shutdown_locked(q);
	wq_unlock(q);
	return 0;
}

int workqueue_shutdown_drain(struct workqueue *q)
{
	int rc = wq_lock(q);
	if (rc)
		return rc;
	wq_shutdown_locked(q);
	while (q->nprocessing > 0) {
		if (pthread_cond_wait(&q->cond, &q->mu) != 0) {
			rc = KERR_INVAL;
			break;
		}
	}
	wq_unlock(q);
	return rc;
}

size_t workqueue_len(struct workqueue *q)
{
	if (wq_lock(q) != 0)
		return 0;
	wq_promote(q, wq_now());
	size_t n = q->nqueued;
	wq_unlock(q);
	return n;
}
