/*
 * probes: the operator's health and metrics endpoints.
 *
 * Contract
 * - Two servers (httpd.h), each on its own thread so that a slow scrape
 *   never delays a liveness probe: GET /healthz and /readyz on the health
 *   address, GET /metrics on the metrics address (a zero port disables one).
 * - /healthz answers 200 "ok" while the process serves requests.
 * - /readyz answers 200 when ready(arg) says so, else 503 with its reason
 *   ("caches not synced", "database unreachable"): the kubelet and Helm
 *   hold traffic until then.
 * - /metrics renders the registry, after refreshing the informer families
 *   (nimbus_informer_objects, nimbus_informer_synced,
 *   nimbus_informer_relists_total, nimbus_informer_watches_total,
 *   nimbus_informer_events_total, nimbus_informer_errors_total by kind).
 * - probes_free() stops both servers and joins their threads.
 */
#ifndef NIMBUS_PROBES_H
#define NIMBUS_PROBES_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "informer.h"
#include "kerr.h"
#include "metrics.h"

/* Ready? When not, write why into why (cap bytes). Any thread. */
typedef bool (*probes_ready_fn)(void *arg, char *why, size_t cap);

struct probes_options {
	struct config_addr health_addr;
	struct config_addr metrics_addr;
	struct metrics_registry *metrics;    /* borrowed; must outlive the probes */
	struct informer *const *informers;   /* borrowed; for the cache metrics */
	size_t ninformers;
	probes_ready_fn ready;
	void *ready_arg;
};

struct probes;

/* Register the informer families, bind both addresses and start serving. */
int probes_start(struct probes **out, const struct probes_options *o, struct kerr *e);
void probes_free(struct probes *p);

#endif
