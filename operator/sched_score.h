/*
 * sched_score: which nodes can take a pod, and which of them is best.
 *
 * Contract
 * - Pure functions over a snapshot the caller builds (struct sched_node):
 *   no I/O, no locks, no allocation, safe from any thread. The scheduler
 *   (scheduler.h) builds the snapshot from its caches under its decision
 *   lock; the tests build it from JSON.
 * - Filter, per node, in this order; the first failing step decides, except
 *   that every failing resource is reported (a node can lack cpu and
 *   memory at once), as kube-scheduler does:
 *   1. the node's Ready condition is True;
 *   2. the node is not cordoned (spec.unschedulable), unless the pod
 *      tolerates the taint node.kubernetes.io/unschedulable:NoSchedule;
 *   3. every NoSchedule and NoExecute taint is tolerated (PreferNoSchedule
 *      is a preference, not a filter). A toleration matches a taint when
 *      its effect is "" or equal, its key is "" or equal, and its operator
 *      is Exists, or Equal with an equal value; so {operator: Exists}
 *      with no key tolerates everything;
 *   4. spec.nodeSelector: every key/value is a label of the node; and the
 *      required node affinity: terms are ORed, a term's requirements ANDed
 *      (a term with none matches nothing), ops In, NotIn, Exists,
 *      DoesNotExist, Gt, Lt (integers); matchFields know metadata.name;
 *   5. resources: a request above 0 fits in allocatable minus what the
 *      node's pods (bound and assumed) request; the pod count stays below
 *      allocatable pods. A missing allocatable value counts as 0.
 * - Score, 0..100, for a node that passed: "most allocated" bin-packing,
 *   so the fullest node that still fits wins and empty nodes stay empty
 *   for big pods. For r in {cpu, memory}:
 *
 *     req_r   = (requested_r + pod_r) / allocatable_r      (after placing)
 *     live_r  = usage_r / allocatable_r                    (metrics.k8s.io)
 *     util_r  = w_live * live_r + (1 - w_live) * req_r
 *     score   = 100 * (w_cpu * util_cpu + w_mem * util_mem) / (w_cpu + w_mem)
 *
 *   Each ratio is clamped to [0, 1]; a resource whose allocatable is 0 or
 *   missing contributes 0. When the node's usage is missing or older than
 *   max_usage_age_ms, w_live is 0 for that node (requests only).
 *   Defaults: w_cpu = 1, w_mem = 1, w_live = 0.3, max age 60 s.
 *
 *   Worked example. Node: allocatable 4 cpu, 16Gi; its pods request 1 cpu
 *   and 4Gi; metrics say it uses 600m and 2Gi, 10 s ago. Pod: 1 cpu, 2Gi.
 *     req_cpu  = (1000 + 1000) / 4000 = 0.5     req_mem  = 6Gi / 16Gi = 0.375
 *     live_cpu = 600 / 4000           = 0.15    live_mem = 2Gi / 16Gi = 0.125
 *     util_cpu = 0.3 * 0.15  + 0.7 * 0.5   = 0.395
 *     util_mem = 0.3 * 0.125 + 0.7 * 0.375 = 0.3
 *     score    = 100 * (1 * 0.395 + 1 * 0.3) / 2 = 34.75   (reported as 35)
 *   With stale metrics: 100 * (0.5 + 0.375) / 2 = 43.75.
 *
 * - Choice: the highest score; equal scores go to the node whose name
 *   sorts first (strcmp), so the same snapshot always gives the same node.
 * - When no node passes, struct sched_failures counts the reasons and
 *   sched_failure_message() words them like kube-scheduler:
 *   "0/4 nodes are available: 3 Insufficient cpu, 1 node(s) had
 *   untolerated taint {dedicated: ml}." — reasons by count, most first,
 *   then alphabetically.
 */
#ifndef NIMBUS_SCHED_SCORE_H
#define NIMBUS_SCHED_SCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kerr.h"
#include "kinds.h"

/* The taint a cordoned node carries; tolerating it admits a pod to it. */
#define SCHED_TAINT_UNSCHEDULABLE "node.kubernetes.io/unschedulable"

/* Why a node was filtered out; a node's verdict is a bitmask of 1u << reason. */
enum sched_reason {
	SCHED_NOT_READY,           /* "node(s) were not ready" */
	SCHED_UNSCHEDULABLE,       /* "node(s) were unschedulable" */
	SCHED_TAINT,               /* "node(s) had untolerated taint {key: value}" */
	SCHED_AFFINITY,            /* "node(s) didn't match Pod's node affinity/selector" */
	SCHED_INSUFFICIENT_CPU,    /* "Insufficient cpu" */
	SCHED_INSUFFICIENT_MEMORY, /* "Insufficient memory" */
	SCHED_TOO_MANY_PODS,       /* "Too many pods" */
	SCHED_REASON_COUNT
};

/* One node as the scheduler sees it at decision time. */
struct sched_node {
	const struct knode *node;    /* borrowed for the call */
	struct kresources requested; /* requests of the non-terminal pods bound or assumed to it */
	int64_t npods;               /* how many such pods */
	struct kresources usage;     /* live usage from metrics.k8s.io */
	int64_t usage_age_ms;        /* how old usage is; < 0 when the node has none */
};

struct sched_weights {
	double cpu;                  /* >= 0; default 1 */
	double memory;               /* >= 0; default 1; cpu + memory > 0 */
	double live;                 /* 0..1: share of live usage in util_r; default 0.3 */
	int64_t max_usage_age_ms;    /* usage older than this is ignored; default 60000 */
};

/* The defaults above. */
struct sched_weights sched_weights_default(void);
/* 0, or KERR_INVAL with a message naming the bad weight. */
int sched_weights_check(const struct sched_weights *w, struct kerr *e);

/* ---- filter ---------------------------------------------------------------- */

/* Whether toleration t matches taint (the rule in the contract, step 3). */
bool sched_toleration_matches(const struct ktoleration *t, const struct ktaint *taint);
/* Whether one of the pod's tolerations matches taint. */
bool sched_tolerated(const struct kpod *p, const struct ktaint *taint);
/* Whether one requirement holds for value (NULL: the label or field is
 * absent). Gt/Lt need exactly one integer value and an integer label. */
bool sched_requirement_matches(const struct kselector_req *r, const char *value);
/* Whether node n satisfies the pod's nodeSelector and required affinity. */
bool sched_affinity_matches(const struct kpod *p, const struct knode *n);
/*
 * Filter one node: 0 when the pod can go there, else the reasons (bitmask
 * of 1u << enum sched_reason). With SCHED_TAINT, *taint (may be NULL)
 * receives the first untolerated taint, borrowed from the node.
 */
unsigned sched_filter(const struct kpod *p, const struct sched_node *n, const struct ktaint **taint);

/* ---- score ----------------------------------------------------------------- */

/* The score (0..100, unrounded) of a node that passed the filter. */
double sched_score(const struct kpod *p, const struct sched_node *n, const struct sched_weights *w);

/* ---- failures -------------------------------------------------------------- */

/* Distinct untolerated taints worded separately; more are counted together
 * as "node(s) had untolerated taints". */
#define SCHED_MAX_TAINT_REASONS 8

struct sched_failures {
	size_t nodes;                        /* nodes considered */
	size_t count[SCHED_REASON_COUNT];    /* nodes that failed for each reason */
	size_t ntaints;
	struct {
		char text[192];              /* "{key: value}" */
		size_t count;
	} taints[SCHED_MAX_TAINT_REASONS];
	size_t other_taints;                 /* beyond SCHED_MAX_TAINT_REASONS */
};

/* Count one node's verdict (from sched_filter) into f, which starts zeroed. */
void sched_failures_add(struct sched_failures *f, unsigned reasons, const struct ktaint *taint);
/* The message for f into buf (always NUL-terminated, cut to fit). */
void sched_failure_message(const struct sched_failures *f, char *buf, size_t cap);
/* Which reasons f holds, one bit per enum sched_reason (0 with no nodes at
 * all): two failures with the same kinds differ only in their counts, which
 * change on every retry while nodes come and go. */
unsigned sched_failure_kinds(const struct sched_failures *f);

/* ---- choice ---------------------------------------------------------------- */

/*
 * Filter and score nodes[0..n) for p. Returns the index of the chosen node
 * with *score set, or -1 when none passes. f (may be NULL) is zeroed and
 * receives every node's failures either way.
 */
long sched_choose(const struct kpod *p, const struct sched_node *nodes, size_t n, const struct sched_weights *w,
		  double *score, struct sched_failures *f);

#endif
