/*
 * controller: a workqueue, worker threads and a reconcile function.
 *
 * Contract
 * - A reconciler is level-triggered and idempotent: reconcile(key) reads
 *   the caches, computes what should exist and makes the smallest write.
 *   It never assumes it saw every event. Its result says what comes next:
 *   done (forget the key's backoff), requeue after a delay (a condition
 *   that time resolves, e.g. waiting for a namespace to terminate), or an
 *   error (requeue with per-key exponential backoff, 5 ms doubling to
 *   5 min, and log it).
 * - Keys come from informer handlers (controller_handlers() enqueues the
 *   object's own key; other mappings call controller_enqueue()) and from
 *   anywhere else (a database notification). A key queued many times while
 *   waiting is reconciled once; one key is never reconciled by two workers
 *   at once (workqueue.h).
 * - Metrics: nimbus_reconcile_total{controller,result},
 *   nimbus_reconcile_duration_seconds{controller} and
 *   nimbus_workqueue_depth{controller} in the registry given.
 * - controller_stop() stops taking keys, lets in-flight reconciles finish
 *   and joins the workers. Thread-safe: enqueue from any thread.
 */
#ifndef NIMBUS_CONTROLLER_H
#define NIMBUS_CONTROLLER_H

#include <stdint.h>

#include "informer.h"
#include "kerr.h"
#include "metrics.h"

enum reconcile_outcome { RECONCILE_DONE, RECONCILE_REQUEUE_AFTER, RECONCILE_ERROR };

struct reconcile_result {
	enum reconcile_outcome outcome;
	int64_t after_ms; /* RECONCILE_REQUEUE_AFTER */
};

/* Reconcile key; on RECONCILE_ERROR, e says why (logged by the controller). */
typedef struct reconcile_result (*reconcile_fn)(void *arg, const char *key, struct kerr *e);

/* The families every controller reports into; registered once per registry. */
struct controller_metrics {
	struct metrics_family *total, *duration, *depth;
};
int controller_metrics_register(struct metrics_registry *r, struct controller_metrics *out, struct kerr *e);

struct controller_options {
	const char *name;   /* "workload": log and metric label; copied */
	int workers;        /* 0 = 2 */
	reconcile_fn reconcile;
	void *arg;
	const struct controller_metrics *metrics; /* may be NULL; must outlive the controller */
};

struct controller;

int controller_new(struct controller **out, const struct controller_options *o, struct kerr *e);
int controller_start(struct controller *c, struct kerr *e);
/* Queue key for reconciliation (copied). */
void controller_enqueue(struct controller *c, const char *key);
void controller_enqueue_after(struct controller *c, const char *key, int64_t ms);
/* Handlers that enqueue the object's key on add, update and delete. */
struct informer_handlers controller_handlers(struct controller *c);
/* Keys waiting (not in flight). */
size_t controller_queue_len(struct controller *c);
void controller_stop(struct controller *c);
void controller_free(struct controller *c);

static inline struct reconcile_result reconcile_done(void) { return (struct reconcile_result){RECONCILE_DONE, 0}; }
static inline struct reconcile_result reconcile_after(int64_t ms) { return (struct reconcile_result){RECONCILE_REQUEUE_AFTER, ms}; }
static inline struct reconcile_result reconcile_error(void) { return (struct reconcile_result){RECONCILE_ERROR, 0}; }

#endif
