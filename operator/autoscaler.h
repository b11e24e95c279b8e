/*
 * autoscaler: scales ComputeRequests on live utilisation, as the
 * HorizontalPodAutoscaler scales Deployments.
 *
 * Contract
 * - One sampler thread (autoscaler_start), run on the leader only. Every
 *   period (config autoscaler_period_ms) it takes the cached
 *   ComputeRequests with spec.autoscaling (and a spec the apiserver could
 *   check, not being deleted) and, per namespace, makes ONE request,
 *   GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector=
 *   nimbus.io/computerequest (metrics cannot be watched); the samples are
 *   matched to pods by name. Everything else comes from the caches: the
 *   pods of a request are the pods of its namespace (the pod store's
 *   "namespace" index) labelled nimbus.io/computerequest=<name>, the
 *   quotas those of its namespace (the quota store's "namespace" index).
 * - The decision is autoscale_math's (see there for the algorithm). Its
 *   history (recommendations for the stabilization windows, rescales for
 *   the rate limits) is kept per request in memory, keyed by namespace/
 *   name and uid, and dropped when the request is gone or stops
 *   autoscaling; a restart begins a fresh history, seeded with the current
 *   replicas, so it never scales down at once.
 * - Writes: replicas only through the ComputeRequest's scale subresource,
 *   PATCH .../computerequests/{name}/scale with the merge patch
 *   {"metadata":{"resourceVersion":<cached>},"spec":{"replicas":N}}: the
 *   request stays the single source of truth (the workload reconciler
 *   follows spec.replicas into the Deployment), and the resourceVersion
 *   makes the write conditional, so a concurrent `kubectl scale` or edit is
 *   never overwritten with a decision made on the older size: the write
 *   fails with 409 and the request is sampled again after about a second.
 *   status.autoscaling (currentReplicas = status.replicas, desiredReplicas,
 *   currentCPUUtilizationPercentage, currentMemoryUtilizationPercentage,
 *   lastScaleTime, reason) goes through the status subresource as the merge
 *   patch {"status":{"autoscaling":{...}}}, whose keys are disjoint from the
 *   workload reconciler's, and only when it differs from what this process
 *   last wrote. Unknown utilisations are written as null (removed).
 * - Events on the ComputeRequest: Normal SuccessfulRescale "New size: N;
 *   reason: ..." per rescale; Warning QuotaLimited when the tenant's quota
 *   caps a scale-up, again only when its message changes.
 * - A failed metrics request (no metrics-server, 503) leaves replicas as
 *   they are and says why in status.autoscaling.reason; it is logged once
 *   per failure streak.
 * - Metrics (when a registry is given): nimbus_autoscaler_decisions_total
 *   {direction="up"|"down"|"none"} (one per request and sample),
 *   nimbus_autoscaler_desired_replicas{namespace,computerequest}.
 * - Threads: new/start/stop/free are for the owner's thread; the sampler
 *   reads the stores (thread-safe) and writes through the client.
 *   autoscaler_stop() wakes the sampler, cancels its metrics request and
 *   joins it (within about a second, or one short write).
 */
#ifndef NIMBUS_AUTOSCALER_H
#define NIMBUS_AUTOSCALER_H

#include <stdint.h>

#include "autoscale_math.h"
#include "informer.h"
#include "kerr.h"
#include "kube_client.h"
#include "metrics.h"

/* The pod and quota store index the autoscaler reads: store_index_namespace. */
#define AUTOSCALER_NAMESPACE_INDEX "namespace"
#define AUTOSCALER_DEFAULT_PERIOD_MS 30000

struct autoscaler_options {
	struct kube_client *client;        /* borrowed; outlives the autoscaler */
	struct informer *computerequests;  /* kind_computerequest; borrowed */
	struct informer *pods;             /* kind_pod, all namespaces, AUTOSCALER_NAMESPACE_INDEX; borrowed */
	struct informer *quotas;           /* kind_resourcequota, AUTOSCALER_NAMESPACE_INDEX; borrowed */
	struct metrics_registry *metrics;  /* may be NULL: no autoscaler metrics */
	int64_t period_ms;                 /* sampling period; 0 = AUTOSCALER_DEFAULT_PERIOD_MS */
	const struct autoscale_behavior *behavior; /* NULL = autoscale_behavior_default(); copied */
};

struct autoscaler;

/* Check the options and create the autoscaler in *out (the caller owns it;
 * autoscaler_free). KERR_INVAL when an informer is missing, of the wrong
 * kind or without its index; KERR_NOMEM; a metrics registration error. */
int autoscaler_new(struct autoscaler **out, const struct autoscaler_options *o, struct kerr *e);
/* Start the sampler thread; its first pass runs at once. */
int autoscaler_start(struct autoscaler *a, struct kerr *e);
/* Stop and join the sampler (idempotent; fine if never started). */
void autoscaler_stop(struct autoscaler *a);
/* Stop if needed and free everything. NULL-safe. */
void autoscaler_free(struct autoscaler *a);

#endif
