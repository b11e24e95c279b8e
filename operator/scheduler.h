/*
 * scheduler: nimbus-scheduler, which binds the pods that ask for it.
 *
 * Contract
 * - A pod is ours while it has no spec.nodeName, spec.schedulerName is the
 *   scheduler's name (default "nimbus-scheduler"), it is not terminating and
 *   its phase is Pending. The pod handlers queue it the moment the informer
 *   shows it; a worker of the controller (controller.h: one worker per key,
 *   errors retried with per-key backoff) filters and scores the nodes
 *   (sched_score.h) and binds it to the best one through
 *   POST .../pods/{name}/binding.
 * - Never over-commit: the decision (snapshot of nodes, their pods and the
 *   assumptions, choice, and the new assumption) runs under one mutex; the
 *   bind request does not. A pod being bound is "assumed": its requests
 *   count against the chosen node at once, until the pod informer shows it
 *   bound (then the node's pods count it) or deleted, or the bind fails.
 *   A pod is counted exactly once: an assumed pod that already appears in
 *   the node's pods is not added again. Pods in phase Succeeded or Failed
 *   hold nothing. Pods bound by other schedulers count once the informer
 *   shows them: two schedulers sharing nodes can race for the same room,
 *   as with any second scheduler, and the kubelet refuses what does not fit.
 *   What each node's pods and assumptions request is kept as a running sum,
 *   updated by the pod handlers and the assumptions under the same mutex,
 *   so a decision costs a lookup per node, not a walk over the node's pods.
 * - A pod that fits nowhere stays Pending with a Warning FailedScheduling
 *   event (sent again only when its message changes) and is parked: it is
 *   retried when something could make room (a node added, or changed in
 *   allocatable, readiness, cordon, taints or labels; a pod deleted,
 *   finished or resized smaller; a bind given up), never on a timer. A successful bind records
 *   a Normal Scheduled event "Successfully assigned ns/pod to node (score N)".
 *   409 Conflict (bound meanwhile) and 404 (deleted) end the attempt quietly.
 * - Order: keys are served first come, first served (the workqueue is
 *   FIFO), except that pods released together, all pending pods at start
 *   and parked pods on a retry, are queued by spec.priority (highest
 *   first), then age (oldest first), then key.
 * - Live usage: a thread GETs /apis/metrics.k8s.io/v1beta1/nodes every
 *   usage_period_ms (metrics cannot be watched) and keeps it, with the time
 *   it arrived, for the scorer; when that fails the scorer uses requests
 *   only once the last sample is older than max_usage_age_ms. A failure is
 *   logged once, and again when the API answers.
 * - Metrics (in the registry given): nimbus_scheduler_attempts_total{result=
 *   "scheduled"|"unschedulable"|"error"}, nimbus_scheduler_e2e_duration_seconds
 *   (pod creation to bound; the creation time has 1 s resolution),
 *   nimbus_scheduler_pending_pods (ours, queued, in flight or parked), plus
 *   the controller's families with controller="scheduler".
 * - Threads: handlers run on the informers' threads and only take the
 *   mutex briefly; workers reconcile; the sampler samples. Every public
 *   function is thread-safe except new/start/stop/free, which the owner
 *   calls from one thread.
 */
#ifndef NIMBUS_SCHEDULER_H
#define NIMBUS_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller.h"
#include "informer.h"
#include "kerr.h"
#include "kube_client.h"
#include "metrics.h"
#include "sched_score.h"

#define SCHEDULER_DEFAULT_NAME "nimbus-scheduler"
/* The pod store index the scheduler reads: pods by spec.nodeName. */
#define SCHEDULER_NODE_INDEX "node"
/* Placements kept for scheduler_recent(). */
#define SCHEDULER_RECENT_MAX 256

/* A store_index_fn: one value, a pod's spec.nodeName, or none while the pod
 * is unscheduled. Register it on the pod informer's store as
 * SCHEDULER_NODE_INDEX before the informer starts. arg is unused. */
size_t scheduler_pod_node_index(const struct kobj *o, void *arg, const char **values, size_t max);

struct scheduler_options {
	const char *name;           /* schedulerName served; NULL = SCHEDULER_DEFAULT_NAME; copied */
	struct kube_client *client; /* borrowed */
	struct informer *pods;      /* kind_pod, all namespaces, with SCHEDULER_NODE_INDEX; borrowed */
	struct informer *nodes;     /* kind_node; borrowed */
	struct metrics_registry *metrics;                /* may be NULL: no scheduler metrics */
	const struct controller_metrics *controller_metrics; /* may be NULL; must outlive the scheduler */
	int workers;                /* concurrent binds; 0 = 2 */
	const struct sched_weights *weights; /* NULL = sched_weights_default(); copied */
	int64_t usage_period_ms;    /* metrics.k8s.io sampling period; 0 = 10000; < 0 = never sample */
};

/* One successful bind. */
struct scheduler_placement {
	char pod[320];      /* "namespace/name" */
	char node[256];
	int score;          /* 0..100, rounded */
	int64_t time_ms;    /* when the bind succeeded, unix milliseconds */
};

struct scheduler;

/*
 * Create the scheduler and register its handlers on both informers, so call
 * it before they start. The caller owns *out (scheduler_free). KERR_INVAL
 * when the pod store lacks SCHEDULER_NODE_INDEX or the weights are invalid;
 * KERR_NOMEM; metric registration errors (a name registered twice).
 */
int scheduler_new(struct scheduler **out, const struct scheduler_options *o, struct kerr *e);
/* Start the workers and the usage sampler, and queue every pending pod seen
 * so far. Only once both informers have synced (KERR_INVAL otherwise): a
 * partial cache would hide pods that hold room. */
int scheduler_start(struct scheduler *s, struct kerr *e);
/* Stop taking pods, let in-flight binds finish, stop the sampler. Idempotent. */
void scheduler_stop(struct scheduler *s);
/* Stop and free. The informers must be stopped first: their handlers point
 * at the scheduler. NULL-safe. */
void scheduler_free(struct scheduler *s);

/* Copy up to max of the latest placements into out, newest first; returns
 * how many. */
size_t scheduler_recent(struct scheduler *s, struct scheduler_placement *out, size_t max);
/* Pods of ours not yet seen bound (queued, in flight or parked). */
size_t scheduler_pending(struct scheduler *s);
/* The latest live usage of node from metrics.k8s.io into *out, and how
 * old that sample is in ms into *age_ms. False when there is none: no
 * sample yet, the node is not in it, or the sampler does not run here
 * (a replica that is not the leader). */
bool scheduler_node_usage(struct scheduler *s, const char *node, struct kresources *out, int64_t *age_ms);

#endif
