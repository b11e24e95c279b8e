/*
 * workqueue: a queue of string keys for controllers, with the semantics of
 * client-go's util/workqueue (queue, delaying queue, rate-limiting queue).
 *
 * Contract
 * - Keys, not objects: a worker takes a key and reads the current state
 *   from the cache. The queue keeps its own copies of the keys.
 * - A key added several times before a worker takes it is handed out once.
 * - A key is handed to one worker at a time: adding a key that a worker is
 *   processing marks it dirty and holds it back; workqueue_done puts it back
 *   in the queue, so the change that arrived meanwhile is not lost.
 * - Keys are handed out in the order they were first added (FIFO).
 * - workqueue_add_after makes a key available after a delay (if the key is
 *   already waiting, the earlier time wins); workqueue_add_rate_limited does
 *   so with a per-key exponential backoff, base * 2^requeues capped at max,
 *   until workqueue_forget. The delays need no thread of their own: the
 *   workers waiting in workqueue_get also wait for the next due time.
 * - After workqueue_shutdown, adds are refused (KERR_CLOSED), delayed keys
 *   are dropped, and workqueue_get hands out what is still queued and then
 *   returns KERR_CLOSED.
 * - All functions are thread-safe; time is CLOCK_MONOTONIC.
 * - Errors: 0 or a negative KERR_* code (kerr.h).
 */
#ifndef NIMBUS_WORKQUEUE_H
#define NIMBUS_WORKQUEUE_H

#include <stddef.h>
#include <stdint.h>

struct workqueue;

enum workqueue_metric {
	WORKQUEUE_METRIC_ADD,     /* a key became dirty; ns = 0 */
	WORKQUEUE_METRIC_LATENCY, /* a key was taken; ns = time since it became dirty */
	WORKQUEUE_METRIC_WORK,    /* a key was done; ns = time since it was taken */
	WORKQUEUE_METRIC_RETRY,   /* workqueue_add_rate_limited; ns = the backoff delay */
};

/*
 * Metrics hook, called with the queue's lock held by whichever thread caused
 * the event: it must be quick (atomic counters, a histogram bucket) and must
 * not call into the queue.
 */
typedef void (*workqueue_metric_fn)(void *arg, enum workqueue_metric m, int64_t ns);

struct workqueue_opts {
	int64_t base_delay_ms;      /* first rate-limited delay; 0 = 5 ms (client-go's default) */
	int64_t max_delay_ms;       /* backoff cap; 0 = 1000 s (client-go's default) */
	workqueue_metric_fn metric; /* NULL = no metrics */
	void *metric_arg;
};

/* Create a queue in *out; opts may be NULL for the defaults. KERR_INVAL if a
 * delay is negative or base > max. Free it with workqueue_free. */
int workqueue_new(const struct workqueue_opts *opts, struct workqueue **out);
/* Free the queue and every key it holds. Only once no thread uses it any
 * more (after shutdown and joining the workers). NULL-safe. */
void workqueue_free(struct workqueue *q);

/* Queue key (copied) now. KERR_CLOSED after shutdown. */
int workqueue_add(struct workqueue *q, const char *key);
/* Queue key after delay_ms (<= 0: now, as workqueue_add). */
int workqueue_add_after(struct workqueue *q, const char *key, int64_t delay_ms);
/* Queue key after its backoff, then double the backoff for next time. */
int workqueue_add_rate_limited(struct workqueue *q, const char *key);
/* Reset key's backoff (call when it was processed successfully). */
int workqueue_forget(struct workqueue *q, const char *key);
/* How many times key was rate-limited since it was last forgotten. */
unsigned workqueue_num_requeues(struct workqueue *q, const char *key);

/*
 * Block until a key is ready, then hand it to the caller: *key stays valid
 * and owned by the queue until the caller passes it to workqueue_done.
 * Returns KERR_CLOSED once the queue is shut down and empty.
 */
int workqueue_get(struct workqueue *q, const char **key);
/* Finish processing key (from workqueue_get; it is invalid afterwards).
 * KERR_INVAL if key is not being processed. */
int workqueue_done(struct workqueue *q, const char *key);

/* Refuse further adds, drop delayed keys and wake the workers. */
int workqueue_shutdown(struct workqueue *q);
/* As workqueue_shutdown, then wait until no key is being processed. */
int workqueue_shutdown_drain(struct workqueue *q);
/* Number of keys ready to be taken (a depth metric). */
size_t workqueue_len(struct workqueue *q);

#endif
