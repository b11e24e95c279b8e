/*
 * api_events: the live event stream of the REST API (websocket
 * GET /api/v1/events), fed by the informers.
 *
 * Contract
 * - Sources: handlers on the Namespace, ComputeRequest and Pod informers
 *   (registered by api_events_new, so before the informers start) turn
 *   changes in tenant namespaces into events: "tenant" (a namespace
 *   labelled nimbus.io/tenant appears, starts terminating, is deleted),
 *   "workload" (a ComputeRequest is added or deleted, or its phase,
 *   replicas, readiness or autoscaling decision changes), "pod" (added,
 *   deleted, or its phase, readiness or node changes) and "placement" (a
 *   pod goes from no node to a node). The API publishes "tenant" events of
 *   its own writes with api_events_publish. An object's tenant is the
 *   nimbus.io/tenant label of its namespace (from the namespace cache), not
 *   anything in the object, which tenants can edit; objects outside tenant
 *   namespaces make no events.
 * - Each event is one JSON text message:
 *   {"stream":"<id>","seq":N,"time":"<RFC 3339>","type":"workload",
 *    "action":"added|updated|deleted","tenant":"a","namespace":"nimbus-a",
 *    "name":"web","object":{...}}
 *   seq increases by one per event within a stream; stream is random per
 *   process, so a client that reconnects to another replica or after a
 *   restart can tell that its seq means nothing there.
 * - Ring: the last `capacity` events (default API_EVENTS_DEFAULT_CAPACITY)
 *   are kept. A subscriber first gets {"type":"hello","stream":..,"seq":
 *   <latest>}; with since (and the same stream, when given) it then gets
 *   every buffered event after since, in order, before any live one, and
 *   none twice. When events after since were already dropped from the ring
 *   (or since/stream are from elsewhere) it gets {"type":"reset",...} first:
 *   reload the lists, then carry on from the events that follow.
 * - Scope: an admin subscriber gets every event; a tenant subscriber only
 *   its own tenant's.
 * - Recent placements (API_EVENTS_PLACEMENTS of them) are kept apart from
 *   the ring for GET /api/v1/scheduler: every replica sees them in its pod
 *   cache, whether or not it is the one scheduling.
 * - Threads: publishing (informer threads, the API) and subscribing (the
 *   httpd service thread) are serialised by one mutex, held while messages
 *   are queued with httpd_ws_send, which never blocks. Lock order: this
 *   module's mutex, then httpd's.
 * - Lifecycle: new (before the informers start) -> attach(httpd) -> ...
 *   -> attach(NULL) before httpd_free -> free after the informers stopped.
 */
#ifndef NIMBUS_API_EVENTS_H
#define NIMBUS_API_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "httpd.h"
#include "informer.h"
#include "jsonb.h"
#include "kerr.h"

#define API_EVENTS_DEFAULT_CAPACITY 1024
#define API_EVENTS_PLACEMENTS 256

struct api_events_options {
	struct informer *namespaces;      /* kind_namespace; borrowed; required */
	struct informer *computerequests; /* kind_computerequest; borrowed; NULL: no workload events */
	struct informer *pods;            /* kind_pod; borrowed; NULL: no pod or placement events */
	size_t capacity;                  /* events kept; 0 = API_EVENTS_DEFAULT_CAPACITY */
};

struct api_events;

/* Create the stream and register its informer handlers. The caller owns
 * *out (api_events_free, after the informers are stopped). */
int api_events_new(struct api_events **out, const struct api_events_options *o, struct kerr *e);
void api_events_free(struct api_events *ev);
/* Push live events to h's websocket connections from now on (NULL: stop). */
void api_events_attach(struct api_events *ev, struct httpd *h);
/* The stream id (16 hex digits), for the hello message and clients. */
const char *api_events_stream(const struct api_events *ev);

/* Writes the value of an event's "object" key. */
typedef void (*api_events_body_fn)(struct jsonb *b, const void *arg);

/* Publish one event (tenant required; ns, name may be ""; body may be
 * NULL for an empty object). Returns its seq, or a negative KERR_*. */
int64_t api_events_publish(struct api_events *ev, const char *type, const char *action, const char *tenant,
			   const char *ns, const char *name, api_events_body_fn body, const void *arg);

/*
 * Subscribe websocket connection conn of the attached httpd: queue the
 * hello (and reset) message and the buffered events after since (since <
 * 0: none), then deliver live events matching the scope (admin: all;
 * otherwise tenant's). stream (may be NULL or "") is the stream the
 * client's since came from. KERR_CLOSED when no httpd is attached.
 */
int api_events_subscribe(struct api_events *ev, uint64_t conn, bool admin, const char *tenant, int64_t since,
			 const char *stream, struct kerr *e);
void api_events_unsubscribe(struct api_events *ev, uint64_t conn);
/* Current subscribers (for tests and metrics). */
size_t api_events_subscribers(struct api_events *ev);

struct api_placement {
	char pod[320];    /* "namespace/name" */
	char node[256];
	char tenant[64];
	char scheduler[64];
	int64_t time_ms;  /* when this process saw it, unix ms */
};

/* Copy up to max recent placements, newest first; returns how many. */
size_t api_events_placements(struct api_events *ev, struct api_placement *out, size_t max);

/* ---- pure helpers, exposed for the unit tests ---- */

/* What a subscriber that last saw since (of stream) needs: the index in
 * [first_seq, last_seq] to resume from, and whether a reset comes first.
 * first_seq is the oldest buffered seq (last_seq + 1 when none), last_seq
 * the newest (0 when none ever). *from gets the first seq to send. */
bool api_events_resume(int64_t since, bool same_stream, int64_t first_seq, int64_t last_seq, int64_t *from);

#endif
