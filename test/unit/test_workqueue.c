#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kerr.h"
#include "workqueue.h"

/*
 * Timing tests check lower bounds exactly (a delayed key is never handed out
 * early) and upper bounds loosely (SLACK_MS), because the machine may be
 * busy with other work.
 */
#define SLACK_MS 250

static int64_t now_ms(void)
{
	struct timespec ts;
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static struct workqueue *new_queue(void)
{
	struct workqueue *q = NULL;
	assert_int_equal(workqueue_new(NULL, &q), 0);
	return q;
}

/* Take a key that must be ready now and check it. */
static void take(struct workqueue *q, const char *want)
{
	const char *key = NULL;
	assert_int_equal(workqueue_get(q, &key), 0);
	assert_string_equal(key, want);
	assert_int_equal(workqueue_done(q, key), 0);
}

static void options_are_checked(void **state)
{
	(void)state;
	struct workqueue *q = NULL;
	struct workqueue_opts bad = {.base_delay_ms = 100, .max_delay_ms = 10};
	assert_int_equal(workqueue_new(&bad, &q), KERR_INVAL);
	bad = (struct workqueue_opts){.base_delay_ms = -1};
	assert_int_equal(workqueue_new(&bad, &q), KERR_INVAL);
	assert_null(q);
	assert_int_equal(workqueue_new(NULL, &q), 0);
	workqueue_free(q);
	workqueue_free(NULL);
}

static void dedup_and_fifo(void **state)
{
	(void)state;
	struct workqueue *q = new_queue();
	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_add(q, "b"), 0);
	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_add(q, "c"), 0);
	assert_int_equal(workqueue_add(q, "b"), 0);
	assert_int_equal(workqueue_len(q), 3);
	take(q, "a");
	take(q, "b");
	take(q, "c");
	assert_int_equal(workqueue_len(q), 0);
	assert_int_equal(workqueue_add(q, NULL), KERR_INVAL);
	workqueue_free(q);
}

static void processing_key_is_held_back(void **state)
{
	(void)state;
	struct workqueue *q = new_queue();
	const char *key = NULL, *other = NULL;
	char copy[8];

	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_get(q, &key), 0);
	assert_string_equal(key, "a");
	strcpy(copy, "a");

	/* Added while processing: held back, not handed to another worker. */
	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_len(q), 0);
	assert_int_equal(workqueue_add(q, "b"), 0);
	assert_int_equal(workqueue_get(q, &other), 0);
	assert_string_equal(other, "b");
	assert_int_equal(workqueue_done(q, other), 0);

	/* Done re-queues it once, whatever buffer the key is passed in. */
	assert_int_equal(workqueue_done(q, copy), 0);
	assert_int_equal(workqueue_len(q), 1);
	take(q, "a");
	assert_int_equal(workqueue_len(q), 0);

	/* Not being processed. */
	assert_int_equal(workqueue_done(q, "a"), KERR_INVAL);
	assert_int_equal(workqueue_done(q, "never"), KERR_INVAL);
	workqueue_free(q);
}

static void add_after_orders_by_due_time(void **state)
{
	(void)state;
	struct workqueue *q = new_queue();
	const char *key;
	int64_t t0 = now_ms();

	assert_int_equal(workqueue_add_after(q, "slow", 120), 0);
	assert_int_equal(workqueue_add_after(q, "fast", 40), 0);
	assert_int_equal(workqueue_add_after(q, "mid", 80), 0);
	assert_int_equal(workqueue_add_after(q, "now", 0), 0);
	assert_int_equal(workqueue_add_after(q, "negative", -5), 0);
	assert_int_equal(workqueue_len(q), 2);
	take(q, "now");
	take(q, "negative");

	static const struct {
		const char *key;
		int64_t delay;
	} want[] = {{"fast", 40}, {"mid", 80}, {"slow", 120}};
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(workqueue_get(q, &key), 0);
		int64_t elapsed = now_ms() - t0;
		assert_string_equal(key, want[i].key);
		assert_true(elapsed >= want[i].delay);
		assert_true(elapsed < want[i].delay + SLACK_MS);
		assert_int_equal(workqueue_done(q, key), 0);
	}
	assert_int_equal(workqueue_len(q), 0);
	workqueue_free(q);
}

static void add_after_keeps_the_earlier_time(void **state)
{
	(void)state;
	struct workqueue *q = new_queue();
	const char *key;

	int64_t t0 = now_ms();
	assert_int_equal(workqueue_add_after(q, "x", 5000), 0);
	assert_int_equal(workqueue_add_after(q, "x", 30), 0);
	assert_int_equal(workqueue_add_after(q, "y", 60), 0);
	assert_int_equal(workqueue_add_after(q, "y", 5000), 0);
	assert_int_equal(workqueue_len(q), 0);
	assert_int_equal(workqueue_get(q, &key), 0);
	assert_string_equal(key, "x");
	assert_true(now_ms() - t0 >= 30);
	assert_int_equal(workqueue_done(q, key), 0);
	assert_int_equal(workqueue_get(q, &key), 0);
	assert_string_equal(key, "y");
	assert_true(now_ms() - t0 >= 60);
	assert_true(now_ms() - t0 < 60 + SLACK_MS);
	assert_int_equal(workqueue_done(q, key), 0);

	/* A key that is both queued and waiting is handed out once now, then
	 * again when its delay is due (as client-go). */
	t0 = now_ms();
	assert_int_equal(workqueue_add_after(q, "z", 40), 0);
	assert_int_equal(workqueue_add(q, "z"), 0);
	take(q, "z");
	assert_int_equal(workqueue_len(q), 0);
	assert_int_equal(workqueue_get(q, &key), 0);
	assert_string_equal(key, "z");
	assert_true(now_ms() - t0 >= 40);
	assert_int_equal(workqueue_done(q, key), 0);
	workqueue_free(q);
}

/* The backoff the queue chose, as its metrics hook reports it. */
static void record_retry(void *arg, enum workqueue_metric m, int64_t ns)
{
	if (m == WORKQUEUE_METRIC_RETRY)
		*(int64_t *)arg = ns / 1000000;
}

static struct workqueue *new_recording_queue(int64_t base_ms, int64_t max_ms, int64_t *backoff_ms)
{
	struct workqueue *q = NULL;
	struct workqueue_opts o = {.base_delay_ms = base_ms,
				   .max_delay_ms = max_ms,
				   .metric = record_retry,
				   .metric_arg = backoff_ms};
	assert_int_equal(workqueue_new(&o, &q), 0);
	return q;
}

/* add_rate_limited then get: checks the key is not handed out before the
 * backoff the queue reported; returns that backoff. */
static int64_t rate_limited_round(struct workqueue *q, const char *want, const int64_t *backoff_ms)
{
	const char *key;
	int64_t t0 = now_ms();
	assert_int_equal(workqueue_add_rate_limited(q, want), 0);
	assert_int_equal(workqueue_get(q, &key), 0);
	int64_t elapsed = now_ms() - t0;
	assert_string_equal(key, want);
	assert_true(elapsed >= *backoff_ms);
	assert_true(elapsed < *backoff_ms + SLACK_MS);
	assert_int_equal(workqueue_done(q, key), 0);
	return *backoff_ms;
}

static void rate_limited_backoff_doubles_to_the_cap(void **state)
{
	(void)state;
	int64_t backoff = -1;
	struct workqueue *q = new_recording_queue(10, 40, &backoff);
	static const int64_t want[] = {10, 20, 40, 40};

	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(workqueue_num_requeues(q, "k"), i);
		assert_int_equal(rate_limited_round(q, "k", &backoff), want[i]);
	}
	assert_int_equal(workqueue_num_requeues(q, "k"), 4);
	/* Backoff is per key. */
	assert_int_equal(workqueue_num_requeues(q, "other"), 0);
	assert_int_equal(rate_limited_round(q, "other", &backoff), 10);

	assert_int_equal(workqueue_forget(q, "k"), 0);
	assert_int_equal(workqueue_num_requeues(q, "k"), 0);
	assert_int_equal(rate_limited_round(q, "k", &backoff), 10);
	assert_int_equal(workqueue_num_requeues(q, "k"), 1);
	assert_int_equal(workqueue_forget(q, "unknown"), 0);
	assert_int_equal(workqueue_num_requeues(q, "unknown"), 0);
	workqueue_free(q);
}

static void default_backoff_is_5ms_to_1000s(void **state)
{
	(void)state;
	int64_t backoff = -1;
	struct workqueue *q = new_recording_queue(0, 0, &backoff);
	assert_int_equal(rate_limited_round(q, "k", &backoff), 5);
	assert_int_equal(rate_limited_round(q, "k", &backoff), 10);

	/* Failures pile up while the key waits (the earlier due time wins),
	 * and the backoff stops at the cap instead of overflowing. */
	for (int i = 0; i < 100; i++)
		assert_int_equal(workqueue_add_rate_limited(q, "w"), 0);
	assert_int_equal(backoff, 1000000);
	assert_int_equal(workqueue_num_requeues(q, "w"), 100);
	assert_int_equal(workqueue_len(q), 0);
	workqueue_free(q);
}

struct getter {
	struct workqueue *q;
	int rc;
	atomic_bool returned;
};

static void *blocking_get(void *arg)
{
	struct getter *g = arg;
	const char *key;
	g->rc = workqueue_get(g->q, &key);
	atomic_store(&g->returned, true);
	return NULL;
}

static void shutdown_wakes_getters_and_drops_delayed_keys(void **state)
{
	(void)state;
	struct workqueue *q = new_queue();
	struct getter g[2] = {{.q = q}, {.q = q}};
	pthread_t t[2];

	assert_int_equal(workqueue_add_after(q, "later", 60000), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, blocking_get, &g[i]), 0);
	sleep_ms(30);
	assert_false(atomic_load(&g[0].returned));
	assert_false(atomic_load(&g[1].returned));

	int64_t t0 = now_ms();
	assert_int_equal(workqueue_shutdown(q), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(g[i].rc, KERR_CLOSED);
	}
	assert_true(now_ms() - t0 < SLACK_MS);
	assert_int_equal(workqueue_add(q, "x"), KERR_CLOSED);
	assert_int_equal(workqueue_add_after(q, "x", 10), KERR_CLOSED);
	assert_int_equal(workqueue_add_rate_limited(q, "x"), KERR_CLOSED);
	assert_int_equal(workqueue_num_requeues(q, "x"), 0);
	assert_int_equal(workqueue_len(q), 0);
	workqueue_free(q);
}

static void shutdown_hands_out_what_is_queued(void **state)
{
	(void)state;
	struct workqueue *q = new_queue();
	const char *key;
	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_add(q, "b"), 0);
	assert_int_equal(workqueue_shutdown(q), 0);
	take(q, "a");
	take(q, "b");
	assert_int_equal(workqueue_get(q, &key), KERR_CLOSED);
	workqueue_free(q);
}

struct slow_worker {
	struct workqueue *q;
	atomic_int taken;
	atomic_bool first_done;
	int processed;
};

static void *slow_work(void *arg)
{
	struct slow_worker *w = arg;
	const char *key;
	while (workqueue_get(w->q, &key) == 0) {
		atomic_fetch_add(&w->taken, 1);
		sleep_ms(80);
		w->processed++;
		atomic_store(&w->first_done, true);
		if (workqueue_done(w->q, key) != 0)
			break;
	}
	return NULL;
}

static void shutdown_drain_waits_for_processing(void **state)
{
	(void)state;
	struct slow_worker w = {.q = new_queue()};
	pthread_t t;

	assert_int_equal(workqueue_add(w.q, "k"), 0);
	assert_int_equal(pthread_create(&t, NULL, slow_work, &w), 0);
	while (atomic_load(&w.taken) == 0)
		sleep_ms(1);
	/* Dirtied while processing: it is processed again even though the
	 * queue shuts down meanwhile. */
	assert_int_equal(workqueue_add(w.q, "k"), 0);
	assert_int_equal(workqueue_shutdown_drain(w.q), 0);
	assert_true(atomic_load(&w.first_done));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.processed, 2);
	workqueue_free(w.q);
}

/* ---- several workers under stress --------------------------------------- */

#define STRESS_KEYS 16
#define STRESS_WORKERS 4
#define STRESS_ADDS 20000

struct stress {
	struct workqueue *q;
	atomic_int inflight[STRESS_KEYS];
	atomic_int version[STRESS_KEYS];   /* bumped by the producer before each add */
	atomic_int processed[STRESS_KEYS]; /* latest version a worker saw */
	atomic_int violations;
	atomic_int gets;
};

static int stress_index(const char *key)
{
	return atoi(key + 1);
}

static void *stress_producer(void *arg)
{
	struct stress *st = arg;
	char key[8];
	unsigned seed = 7;
	for (int i = 0; i < STRESS_ADDS; i++) {
		seed = seed * 1103515245 + 12345;
		int k = (int)((seed >> 8) % STRESS_KEYS);
		snprintf(key, sizeof(key), "k%d", k);
		atomic_fetch_add(&st->version[k], 1);
		if (workqueue_add(st->q, key) != 0)
			atomic_fetch_add(&st->violations, 1);
	}
	return NULL;
}

static void *stress_worker(void *arg)
{
	struct stress *st = arg;
	const char *key;
	while (workqueue_get(st->q, &key) == 0) {
		int k = stress_index(key);
		if (atomic_fetch_add(&st->inflight[k], 1) != 0)
			atomic_fetch_add(&st->violations, 1);
		atomic_store(&st->processed[k], atomic_load(&st->version[k]));
		atomic_fetch_add(&st->gets, 1);
		sched_yield();
		atomic_fetch_sub(&st->inflight[k], 1);
		if (workqueue_done(st->q, key) != 0)
			atomic_fetch_add(&st->violations, 1);
	}
	return NULL;
}

static void workers_never_share_a_key(void **state)
{
	(void)state;
	static struct stress st;
	pthread_t workers[STRESS_WORKERS], producer;

	memset(&st, 0, sizeof(st));
	st.q = new_queue();
	for (int i = 0; i < STRESS_WORKERS; i++)
		assert_int_equal(pthread_create(&workers[i], NULL, stress_worker, &st), 0);
	assert_int_equal(pthread_create(&producer, NULL, stress_producer, &st), 0);
	assert_int_equal(pthread_join(producer, NULL), 0);
	assert_int_equal(workqueue_shutdown_drain(st.q), 0);
	for (int i = 0; i < STRESS_WORKERS; i++)
		assert_int_equal(pthread_join(workers[i], NULL), 0);

	assert_int_equal(atomic_load(&st.violations), 0);
	/* Dedup worked (fewer gets than adds), and no add was lost: every
	 * key's last change was seen by a get that came after it. */
	assert_true(atomic_load(&st.gets) <= STRESS_ADDS);
	assert_true(atomic_load(&st.gets) >= STRESS_KEYS);
	for (int k = 0; k < STRESS_KEYS; k++)
		assert_int_equal(atomic_load(&st.processed[k]), atomic_load(&st.version[k]));
	assert_int_equal(workqueue_len(st.q), 0);
	workqueue_free(st.q);
}

/* ---- metrics hook ------------------------------------------------------- */

struct counts {
	int n[4];
	int64_t last[4];
};

static void count_metric(void *arg, enum workqueue_metric m, int64_t ns)
{
	struct counts *c = arg;
	c->n[m]++;
	c->last[m] = ns;
}

static void metrics_hook_sees_adds_latency_and_work(void **state)
{
	(void)state;
	struct counts c = {0};
	struct workqueue_opts o = {.base_delay_ms = 20, .metric = count_metric, .metric_arg = &c};
	struct workqueue *q = NULL;
	const char *key;

	assert_int_equal(workqueue_new(&o, &q), 0);
	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(workqueue_add(q, "a"), 0);
	assert_int_equal(c.n[WORKQUEUE_METRIC_ADD], 1);
	sleep_ms(20);
	assert_int_equal(workqueue_get(q, &key), 0);
	assert_int_equal(c.n[WORKQUEUE_METRIC_LATENCY], 1);
	assert_true(c.last[WORKQUEUE_METRIC_LATENCY] >= INT64_C(20000000));
	sleep_ms(10);
	assert_int_equal(workqueue_done(q, key), 0);
	assert_int_equal(c.n[WORKQUEUE_METRIC_WORK], 1);
	assert_true(c.last[WORKQUEUE_METRIC_WORK] >= INT64_C(10000000));

	assert_int_equal(workqueue_add_rate_limited(q, "b"), 0);
	assert_int_equal(c.n[WORKQUEUE_METRIC_RETRY], 1);
	assert_int_equal(c.last[WORKQUEUE_METRIC_RETRY], INT64_C(20000000));
	/* The delayed key counts as added when it is due. */
	assert_int_equal(c.n[WORKQUEUE_METRIC_ADD], 1);
	assert_int_equal(workqueue_get(q, &key), 0);
	assert_int_equal(c.n[WORKQUEUE_METRIC_ADD], 2);
	assert_int_equal(workqueue_done(q, key), 0);
	workqueue_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(options_are_checked),
		cmocka_unit_test(dedup_and_fifo),
		cmocka_unit_test(processing_key_is_held_back),
		cmocka_unit_test(add_after_orders_by_due_time),
		cmocka_unit_test(add_after_keeps_the_earlier_time),
		cmocka_unit_test(rate_limited_backoff_doubles_to_the_cap),
		cmocka_unit_test(default_backoff_is_5ms_to_1000s),
		cmocka_unit_test(shutdown_wakes_getters_and_drops_delayed_keys),
		cmocka_unit_test(shutdown_hands_out_what_is_queued),
		cmocka_unit_test(shutdown_drain_waits_for_processing),
		cmocka_unit_test(workers_never_share_a_key),
		cmocka_unit_test(metrics_hook_sees_adds_latency_and_work),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
