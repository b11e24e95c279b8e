/*
 * workload: the ComputeRequest reconciler.
 *
 * Contract
 * - Key: "namespace/name" of a ComputeRequest. The reconciler reads the
 *   ComputeRequest, Deployment, Namespace and ResourceQuota caches, and:
 *   - refuses (condition Degraded, phase Degraded, a Warning event) a
 *     request whose spec the apiserver could not check (validation_error),
 *     that lives outside its tenant's namespace nimbus-<tenantId>, whose
 *     tenant does not exist, or whose replicas × requests exceed the
 *     tenant's quota, saying in the message what to fix;
 *   - otherwise makes the Deployment nimbus-<name> in the same namespace
 *     (owner reference to the ComputeRequest, so garbage collection
 *     deletes it with the request; requests = limits = the spec's cpu and
 *     memory; the tenant label; spec.podAnnotations; the spec's
 *     schedulerName, default nimbus-scheduler): creates it when the cache
 *     has none, server-side applies it when it differs from the cache in a
 *     field Nimbus owns, so an edit or deletion of the Deployment is undone
 *     at once;
 *   - writes status (observedGeneration, replicas, readyReplicas, selector,
 *     phase, conditions Ready/Progressing/Degraded) through the status
 *     subresource when it differs from the cached status, keeping each
 *     condition's lastTransitionTime while its status holds. The reconcile
 *     that creates the Deployment writes no status: the new Deployment's
 *     watch events bring the key back (see workload_deployment_unobserved).
 *   - records Events (DeploymentCreated, DeploymentUpdated,
 *     DeploymentFailed, the Degraded reason) through the event recorder, so
 *     that they never hold up a reconcile.
 * - The critical path of a new request is therefore one write: the
 *   Deployment's create (hack/bench/reconcile measures it).
 * - Level-triggered and idempotent: a restart re-derives everything from
 *   the caches and writes only what differs.
 * - The pure functions below are what the reconciler decides, exposed for
 *   unit tests.
 */
#ifndef NIMBUS_WORKLOAD_H
#define NIMBUS_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "controller.h"
#include "event_recorder.h"
#include "informer.h"
#include "jsonb.h"
#include "kinds.h"
#include "kube_client.h"

#define WORKLOAD_TENANT_LABEL "nimbus.io/tenant"
#define WORKLOAD_CR_LABEL "nimbus.io/computerequest"
#define WORKLOAD_DEFAULT_SCHEDULER "nimbus-scheduler"

/* The caches, client and controller the reconciler works with; all
 * borrowed. The ComputeRequest and ResourceQuota stores need the
 * "namespace" index (store_index_namespace). */
struct workload_deps {
	struct kube_client *client;
	struct event_recorder *events;
	struct informer *computerequests, *deployments, *namespaces, *quotas;
	struct controller *controller;
};

/*
 * A Deployment created within WORKLOAD_UNOBSERVED_WINDOW_S seconds of now
 * (unix seconds) that the Deployment controller has not observed yet: its
 * status says nothing so far, and the controller's first status update,
 * usually milliseconds away, brings the request's key back. The reconciler
 * writes the request's status then, not now: a status written now would be
 * replaced at once and cost a second status write per request, the
 * costliest write it makes (about 17 ms of apiserver CPU). It looks again
 * after WORKLOAD_UNOBSERVED_RECHECK_MS in case that update never comes.
 */
#define WORKLOAD_UNOBSERVED_WINDOW_S 2
#define WORKLOAD_UNOBSERVED_RECHECK_MS 1500
bool workload_deployment_unobserved(const struct kdeployment *d, int64_t now);

/* A reconcile_fn for controller.h; arg is a struct workload_deps. */
struct reconcile_result workload_reconcile(void *arg, const char *key, struct kerr *e);

/* Informer handlers that map Deployments (by controller owner), Namespaces
 * and ResourceQuotas (by namespace) to the ComputeRequests they affect. */
struct informer_handlers workload_deployment_handlers(struct workload_deps *d);
struct informer_handlers workload_namespace_handlers(struct workload_deps *d);

/* ---- decisions (pure) ---------------------------------------------------- */

/* Why a request cannot run: reason is a CamelCase word for the condition and
 * the event, message says what to fix. reason[0] == 0 when it can run. */
struct workload_problem {
	char reason[32];
	char message[512];
};

/* Check the request against its tenant: ns is the tenant namespace from the
 * cache (NULL if absent), quotas the ResourceQuotas in it. */
void workload_check(const struct kcomputerequest *cr, const struct knamespace *ns,
		    const struct kresourcequota *const *quotas, size_t nquotas, struct workload_problem *out);
/* "nimbus-<name>" into buf. */
void workload_deployment_name(const char *cr_name, char *buf, size_t cap);
/* The Deployment to apply for cr, as an apply document. */
void workload_build_deployment(const struct kcomputerequest *cr, struct jsonb *b);
/* True when the cached Deployment differs from what cr asks for in a field
 * Nimbus owns; *what names the first difference. */
bool workload_deployment_drifted(const struct kcomputerequest *cr, const struct kdeployment *d, const char **what);

enum { WORKLOAD_NCONDITIONS = 3 };

struct workload_status {
	int64_t observed_generation, replicas, ready_replicas;
	const char *phase; /* static string */
	char selector[320];
	char deployment[300];
	struct {
		const char *type;   /* static string */
		uint8_t status;     /* enum kcond */
		char reason[32];
		char message[512];
		char last_transition[32];
	} conditions[WORKLOAD_NCONDITIONS];
};

/* The status cr should have, given its Deployment (NULL if none yet) and
 * its problem; now is RFC 3339 for conditions that change. */
void workload_compute_status(const struct kcomputerequest *cr, const struct kdeployment *d,
			     const struct workload_problem *p, const char *now, struct workload_status *out);
/* True when cr's cached status already says st. */
bool workload_status_current(const struct kcomputerequest *cr, const struct workload_status *st);
/* {"status":{...}} as a merge patch. */
void workload_build_status(const struct workload_status *st, struct jsonb *b);

#endif
