/*
 * autoscale_math: what the autoscaler decides, as the HorizontalPodAutoscaler
 * (autoscaling/v2, kube-controller-manager) decides it. Pure: no I/O, no
 * clock (the caller passes now), no global state.
 *
 * Contract
 * - Per metric (cpu, memory), following the HPA's replica calculator:
 *   - Pods are grouped. Ignored: being deleted, or phase Failed or
 *     Succeeded; they count for nothing. Unready: phase Pending, and for
 *     cpu only also pods whose Ready condition is not True (the HPA also
 *     treats a cpu sample taken within one metric window of a readiness
 *     change as unready; the cache keeps no transition time, so that
 *     refinement is left out). Missing: no sample from metrics.k8s.io.
 *     Ready: everything else.
 *   - utilization = sum(usage) * 100 / sum(requests) over the ready pods,
 *     in whole percent (truncated, as the HPA); ratio = utilization /
 *     target. No ready pod, or a ready pod without a request, makes the
 *     metric invalid.
 *   - With no missing pods and no unready ones (or unready ones but
 *     ratio <= 1): within tolerance (|utilization - target| <= tolerance ×
 *     target, both edges included) the current replicas, otherwise
 *     ceil(ratio × ready pods), which is ceil(current × ratio) when every
 *     replica is ready and reporting. The ceiling is taken in integers
 *     (the HPA's float64 turns 77/70 × 10 into 12).
 *   - Otherwise the ratio is recomputed with missing pods counted at 100 %
 *     of their request when ratio < 1 (scale-down) and 0 % when ratio > 1
 *     (scale-up), and, when ratio > 1, unready pods at 0 %: unknowns damp a
 *     change, never drive one. The result is ceil(new ratio * pods
 *     counted), unless the new ratio is within tolerance or points the
 *     other way, or the count would move against the ratio: then the
 *     current replicas, and `held` says the unknowns held a change back.
 * - Across metrics: the highest recommendation. When every metric is
 *   invalid, or one is and the others would scale down, nothing changes
 *   (the HPA will not scale down on partial information).
 * - Special cases first, as the HPA: current replicas 0 with minReplicas
 *   > 0 means autoscaling is off; current above max or below min goes
 *   straight to the bound. (The ComputeRequest CRD keeps spec.replicas
 *   within min..max, so these arise only for inputs from elsewhere.)
 * - Stabilization: every recommendation is kept with its time. The result
 *   is the current replicas moved no further up than the lowest
 *   recommendation within the scale-up window (default 0 s: none) and no
 *   further down than the highest within the scale-down window (default
 *   300 s). A history seen for the first time is seeded with the current
 *   replicas, so a restarted operator does not scale down at once.
 * - Rate limits, from the replica changes of the last period: scale-up to at
 *   most max(start × (1 + up_percent/100) rounded up, start + up_pods) per
 *   up period, scale-down to at least start × (1 - down_percent/100) per
 *   down period (HPA defaults: 100 % or 4 pods per 15 s up, 100 % per 15 s
 *   down), where start is the replica count at the beginning of the period.
 *   Then clamped to [min, max].
 * - Tenant quota: the result never grows past what the namespace's
 *   ResourceQuotas leave room for: for every hard limit on requests.cpu,
 *   requests.memory, limits.cpu, limits.memory and pods, replicas × per-
 *   replica cost ≤ hard − (used − what this workload's own pods account
 *   for). Nimbus pods request what they are limited to, so one per-replica
 *   cpu and memory serves both. The cap only stops growth (a scale-down or
 *   a hold never makes a quota worse), and wins over minReplicas, since the
 *   apiserver would refuse the pods anyway. quota_limited and
 *   quota_message say so.
 * - Memory: struct autoscale_history owns its arrays (autoscale_history_
 *   free releases them); it holds one entry per decision within the longest
 *   window and one per rescale within the longest period. Everything else is
 *   caller-owned; nothing returned points into the inputs.
 * - Errors: 0 or KERR_NOMEM (history growth), with a message.
 */
#ifndef NIMBUS_AUTOSCALE_MATH_H
#define NIMBUS_AUTOSCALE_MATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kerr.h"
#include "kinds.h"

enum autoscale_resource { AUTOSCALE_CPU, AUTOSCALE_MEMORY, AUTOSCALE_NRESOURCES };

/* "cpu" or "memory". */
const char *autoscale_resource_name(enum autoscale_resource r);

/* One pod of the workload, as the caches and metrics.k8s.io see it. */
struct autoscale_pod {
	bool ignored;      /* being deleted, or phase Failed or Succeeded */
	bool pending;      /* phase Pending */
	bool ready;        /* condition Ready is True */
	bool has_metrics;  /* metrics.k8s.io reported a sample for it */
	int64_t usage[AUTOSCALE_NRESOURCES];    /* cpu in milli-cores, memory in bytes; when has_metrics */
	int64_t requests[AUTOSCALE_NRESOURCES]; /* cpu in milli-cores, memory in bytes */
};

/* One metric's recommendation. */
struct autoscale_metric {
	bool valid;           /* false: no usable sample; message says why */
	int64_t replicas;     /* recommended replicas when valid */
	int64_t utilization;  /* percent of requests used by the ready pods; -1 when invalid */
	size_t unready;       /* pods pending or (cpu) not Ready */
	size_t missing;       /* pods without a sample */
	bool held;            /* missing or unready pods held back the change the ready pods ask for */
	char message[160];    /* why invalid; "" when valid */
};

/* The recommendation for resource r with target percent target (> 0) and
 * tolerance tolerance (0.1 for the HPA's default), given the scale's
 * current replicas. */
void autoscale_metric_replicas(const struct autoscale_pod *pods, size_t npods, enum autoscale_resource r,
			       int64_t target, double tolerance, int64_t current, struct autoscale_metric *out);

/* How fast and how eagerly to follow recommendations. Times in ms. */
struct autoscale_behavior {
	double tolerance;             /* default 0.1 */
	int64_t up_window_ms;         /* scale-up stabilization window; default 0 */
	int64_t down_window_ms;       /* scale-down stabilization window; default 300000 */
	int64_t up_percent;           /* growth per up period in percent; 0 = no percent policy; default 100 */
	int64_t up_pods;              /* growth per up period in pods; 0 = no pods policy; default 4 */
	int64_t up_period_ms;         /* default 15000 */
	int64_t down_percent;         /* shrinkage per down period in percent (1-100); default 100 */
	int64_t down_period_ms;       /* default 15000 */
};

/* The HPA's defaults, as listed above. */
struct autoscale_behavior autoscale_behavior_default(void);

/* A namespace's ResourceQuota: hard and status.used, -1 where absent. */
struct autoscale_quota {
	const char *name;
	struct kquota_values hard;
	struct kquota_values used;
};

struct autoscale_input {
	int64_t current;      /* spec.replicas, as the scale subresource reports it */
	int64_t min_replicas; /* >= 1 */
	int64_t max_replicas; /* >= min_replicas */
	int64_t target[AUTOSCALE_NRESOURCES]; /* utilization target in percent; 0: not a metric */
	const struct autoscale_pod *pods;
	size_t npods;
	/* Quota: what one replica costs (requests and limits alike) and what
	 * this workload's pods already account for in the quotas' used. */
	int64_t replica_cpu_milli;
	int64_t replica_memory;
	struct kquota_values own;
	const struct autoscale_quota *quotas;
	size_t nquotas;
};

enum autoscale_direction { AUTOSCALE_NONE, AUTOSCALE_UP, AUTOSCALE_DOWN };

/* "none", "up" or "down": the metric label. */
const char *autoscale_direction_name(enum autoscale_direction d);

struct autoscale_decision {
	int64_t desired;        /* replicas to set */
	int64_t recommendation; /* the metrics' recommendation before stabilization, rate, bounds and
				 * quota; -1 when none was made (a special case, or no valid metric) */
	int64_t utilization[AUTOSCALE_NRESOURCES]; /* percent; -1 when unknown or not a metric */
	enum autoscale_direction direction;        /* desired against current */
	bool metrics_ok;        /* false: no valid metric (or partial ones refusing a scale-down) */
	bool quota_limited;     /* the quota cap lowered desired */
	char reason[512];       /* for people: "cpu utilization 95% above target 70%", ... */
	char quota_message[320];/* what the quota allows, when quota_limited; else "". It names the
				 * quota, resource and amounts but not the wanted size, so it changes
				 * only when the cap does. */
};

/* Decisions and rescales of one workload over time. Zero it (or use
 * AUTOSCALE_HISTORY_INIT) before first use; free with
 * autoscale_history_free(). The fields are the module's. */
struct autoscale_history {
	struct autoscale_sample { int64_t at_ms, value; } *recs, *scales;
	size_t nrecs, caprecs, nscales, capscales;
	bool seeded;
};
#define AUTOSCALE_HISTORY_INIT {0}

void autoscale_history_free(struct autoscale_history *h);

/*
 * Decide the replicas of one workload at time now_ms (any monotonic
 * clock, the same for every call on h), recording the recommendation in
 * h. b NULL means the defaults. Returns 0, or KERR_NOMEM with out zeroed
 * but for desired = current.
 */
int autoscale_decide(const struct autoscale_input *in, const struct autoscale_behavior *b,
		     struct autoscale_history *h, int64_t now_ms, struct autoscale_decision *out, struct kerr *e);

/* Record that the workload was rescaled from `from` to `to` at now_ms (call
 * after the write succeeded), for the rate limits. KERR_NOMEM possible. */
int autoscale_history_scaled(struct autoscale_history *h, int64_t now_ms, int64_t from, int64_t to,
			     struct kerr *e);

#endif
