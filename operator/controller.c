#include "controller.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "workqueue.h"

enum { MAX_WORKERS = 1024 }; /* config.c allows as many */

struct controller {
	char *name;
	reconcile_fn reconcile;
	void *arg;
	struct workqueue *q;
	int nworkers;
	pthread_t workers[MAX_WORKERS];
	int started;
	const struct controller_metrics *m; /* may be NULL */
};

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

int controller_metrics_register(struct metrics_registry *r, struct controller_metrics *out, struct kerr *e)
{
	static const char *const labels_result[] = {"controller", "result"};
	static const char *const labels_ctl[] = {"controller"};
	int rc = metrics_counter_new(r, "nimbus_reconcile_total", "Reconciles by controller and result.", labels_result, 2,
				     &out->total, e);
	if (rc == 0)
		rc = metrics_histogram_new(r, "nimbus_reconcile_duration_seconds", "Time spent in one reconcile.",
					   labels_ctl, 1, NULL, 0, &out->duration, e);
	if (rc == 0)
		rc = metrics_gauge_new(r, "nimbus_workqueue_depth", "Keys waiting in a controller's queue.", labels_ctl,
				       1, &out->depth, e);
	return rc;
}

static void *worker(void *arg)
{
	struct controller *c = arg;
	const char *key;
	while (workqueue_get(c->q, &key) == 0) {
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		struct kerr e = {0};
		struct reconcile_result r = c->reconcile(c->arg, key, &e);
		const char *result = "done";
		switch (r.outcome) {
		case RECONCILE_DONE:
			workqueue_forget(c->q, key);
			break;
		case RECONCILE_REQUEUE_AFTER:
			workqueue_forget(c->q, key);
			workqueue_add_after(c->q, key, r.after_ms);
			result = "requeue";
			break;
		case RECONCILE_ERROR: {
			char retries[16];
			snprintf(retries, sizeof(retries), "%u", workqueue_num_requeues(c->q, key));
			log_warn(c->name, "reconcile failed; retrying with backoff", "object", key, "error",
				 e.message[0] ? e.message : kerr_strerror(e.code), "code", kerr_name(e.code),
				 "retries", retries, NULL);
			workqueue_add_rate_limited(c->q, key);
			result = "error";
			break;
		}
		}
		if (c->m) {
			metrics_counter_inc(c->m->total, METRICS_LABELS(c->name, result));
			metrics_histogram_observe(c->m->duration, seconds_since(&t0), METRICS_LABELS(c->name));
			metrics_gauge_set(c->m->depth, (double)workqueue_len(c->q), METRICS_LABELS(c->name));
		}
		workqueue_done(c->q, key);
	}
	return NULL;
}

int controller_new(struct controller **out, const struct controller_options *o, struct kerr *e)
{
	*out = NULL;
	struct controller *c = calloc(1, sizeof(*c));
	if (!c || !(c->name = strdup(o->name))) {
		free(c);
		return kerr_set(e, KERR_NOMEM, "controller %s: out of memory", o->name);
	}
	c->reconcile = o->reconcile;
	c->arg = o->arg;
	c->nworkers = o->workers > 0 ? (o->workers < MAX_WORKERS ? o->workers : MAX_WORKERS) : 2;
	/* Errors back off from 5 ms to 5 min: long enough not to hammer an
	 * apiserver that refuses, short enough that a fixed cause is noticed. */
	struct workqueue_opts qo = {.base_delay_ms = 5, .max_delay_ms = 300000};
	c->m = o->metrics;
	int rc = workqueue_new(&qo, &c->q);
	if (rc < 0) {
		workqueue_free(c->q);
		free(c->name);
		free(c);
		return kerr_set(e, rc, "controller %s: cannot create its queue", o->name);
	}
	*out = c;
	return 0;
}

int controller_start(struct controller *c, struct kerr *e)
{
	for (int i = 0; i < c->nworkers; i++) {
		if (pthread_create(&c->workers[i], NULL, worker, c) != 0) {
			workqueue_shutdown(c->q);
			for (int j = 0; j < i; j++)
				pthread_join(c->workers[j], NULL);
			return kerr_set(e, KERR_NOMEM, "controller %s: cannot start worker threads", c->name);
		}
	}
	c->started = 1;
	return 0;
}

void controller_enqueue(struct controller *c, const char *key) { workqueue_add(c->q, key); }
void controller_enqueue_after(struct controller *c, const char *key, int64_t ms) { workqueue_add_after(c->q, key, ms); }
size_t controller_queue_len(struct controller *c) { return workqueue_len(c->q); }

static void on_add(void *arg, struct kobj *o) { controller_enqueue(arg, o->key); }
static void on_update(void *arg, struct kobj *old, struct kobj *o) { (void)old; controller_enqueue(arg, o->key); }
static void on_delete(void *arg, struct kobj *o) { controller_enqueue(arg, o->key); }

struct informer_handlers controller_handlers(struct controller *c)
{
	return (struct informer_handlers){on_add, on_update, on_delete, c};
}

void controller_stop(struct controller *c)
{
	if (!c || !c->started)
		return;
	workqueue_shutdown_drain(c->q);
	for (int i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i], NULL);
	c->started = 0;
}

void controller_free(struct controller *c)
{
	if (!c)
		return;
	controller_stop(c);
	workqueue_free(c->q);
	free(c->name);
	free(c);
}
