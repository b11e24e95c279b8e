/*
 * api: the REST API of nimbus-operator (routes, handlers, scoping), served
 * by httpd on cfg.api_addr in every replica.
 *
 * Contract
 * - Routes live under /api/v1; the seed's paths (POST /auth/token,
 *   GET/POST /tenants, GET/DELETE /tenants/{id}, GET /billing/usage,
 *   GET /billing/invoice/{tenant}) are aliases of the same handlers. The
 *   table is api_op_at(); GET /openapi.json describes exactly that table
 *   (test_api checks both ways). Other paths pass to the dashboard
 *   (static_dir) unless they start with /api/, which get 404.
 * - Authentication: every route but POST /auth/token and GET /openapi.json
 *   needs "Authorization: Bearer <token>" (auth.h). The websocket
 *   GET /api/v1/events takes the token from that header or, because
 *   browsers cannot set headers on a websocket, a single-use ticket from
 *   POST /api/v1/events/ticket offered as subprotocol "ticket.<ticket>"
 *   (next to "nimbus"). A token in the URL (?access_token=) is refused
 *   with a close reason saying so: URLs end up in logs.
 * - Scoping (auth_decide): the administrator sees and changes everything;
 *   a tenant token only its own tenant, judged by the object's tenant (a
 *   workload's is its namespace's nimbus.io/tenant label), never by the
 *   path alone. 401: no or bad token; 403: a valid token, an action its
 *   role may not take; 404: missing, or another tenant's.
 * - Reads come from the informer caches and the database (tenants, keys,
 *   billing); no request LISTs the apiserver. GET /tenants and
 *   GET /billing/usage answers may be up to API_CACHE_TTL_MS old
 *   (api_cache.h), except after a write through the same replica or a
 *   namespace change (which the event stream announces). List routes page with
 *   ?limit= (1..1000, default 100) and ?continue= (opaque, from the
 *   previous page's "continue"), ordered by key.
 * - Writes: tenants and keys go to the database (the tenant reconciler of
 *   the leader picks tenants up through NOTIFY); workloads go to the
 *   apiserver (create, scale subresource, delete). Any replica may write.
 * - Threads: handlers run on API_WORKERS httpd workers (httpd.h), never on
 *   the service thread, so a slow database, apiserver or PBKDF2 login
 *   delays neither other connections nor the event stream. Each request
 *   holds at most one database connection, from a pool of at most
 *   API_WORKERS that api owns; the websocket hooks only verify a token and
 *   subscribe, without blocking.
 * - Errors are RFC 7807 application/problem+json: {"type":"about:blank",
 *   "title":<reason phrase>,"status":N,"detail":<what and what to do>} plus
 *   "field" when one body or query field is at fault. Malformed JSON, wrong
 *   types and unknown fields are 400; a non-JSON Content-Type 415; bodies
 *   over 1 MiB 413 (httpd).
 * - CORS: only for cfg.cors_origin (exact match), never "*"; preflights
 *   from other origins get 403.
 * - POST /auth/token is rate limited per remote address (API_LOGIN_LIMIT
 *   per minute; 429 with Retry-After).
 * - Metrics: nimbus_http_requests_total{route,code} and
 *   nimbus_http_request_duration_seconds{route}, route being the
 *   pattern ("/api/v1/tenants/{id}"), "unmatched" for unknown /api/ paths.
 * - Lifecycle (owner's thread): api_new (checks JWT_SECRET and the admin
 *   password, registers the event handlers: before the informers start)
 *   -> api_start (after the caches synced: opens the database, sets up the
 *   admin credential, binds, serves) -> api_stop (before the informers
 *   stop) -> api_free (after).
 */
#ifndef NIMBUS_API_H
#define NIMBUS_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "httpd.h"
#include "informer.h"
#include "jsonb.h"
#include "kerr.h"
#include "kube_client.h"
#include "metrics.h"
#include "scheduler.h"

/* Threads answering requests, and database connections at most. A login
 * costs tens of milliseconds of PBKDF2 and a database round trip a few;
 * four keep both cores of a small node busy while one slow call holds up
 * only the requests queued behind four such. */
#define API_WORKERS 4
/* GET /tenants and GET /billing/usage answers are kept this long (per
 * route, query and caller's scope), so that a dashboard's polling or a
 * burst of reads costs one query a second: usage changes once a billing
 * period (30 s), tenants seldom, and a write through this replica drops
 * them at once. */
#define API_CACHE_TTL_MS 1000
#define API_CACHE_ENTRIES 256
/* Login attempts per remote address per minute. */
#define API_LOGIN_LIMIT 10
#define API_PAGE_DEFAULT 100
#define API_PAGE_MAX 1000

struct api_options {
	const struct config *cfg;           /* borrowed, outlives the api: api_addr, api_tls_*,
					     * cors_origin, dashboard_dir, jwt_secret,
					     * admin_password, DB_* */
	struct kube_client *client;         /* borrowed */
	struct informer *namespaces;        /* kind_namespace; borrowed */
	struct informer *computerequests;   /* kind_computerequest with the "namespace" index; borrowed */
	struct informer *pods;              /* kind_pod with SCHEDULER_NODE_INDEX; borrowed */
	struct informer *nodes;             /* kind_node; borrowed */
	struct scheduler *scheduler;        /* may be NULL (scheduler disabled): no scores or live usage */
	struct metrics_registry *metrics;   /* may be NULL */
};

struct api;

/* Check the secret (KERR_CONFIG saying how to make one) and the admin
 * password, register metrics and the event handlers. The caller owns
 * *out (api_free). */
int api_new(struct api **out, const struct api_options *o, struct kerr *e);
/* Open the database (a failure is logged and retried on requests), make
 * sure the admin can log in (a generated password is logged once, as a
 * WARN line), bind cfg.api_addr and serve on a thread. KERR_IO when the
 * address cannot be bound, KERR_TLS for a bad certificate. */
int api_start(struct api *a, struct kerr *e);
/* The bound port (after api_start), for tests with port 0. */
int api_port(const struct api *a);
/* Stop serving and close every connection. Idempotent. */
void api_stop(struct api *a);
/* Stop and free; the informers must be stopped. NULL-safe. */
void api_free(struct api *a);

/* ---- pure pieces, exposed for the unit tests ---- */

enum api_route {
	API_R_TOKEN,
	API_R_TENANTS,
	API_R_TENANT,
	API_R_KEYS,
	API_R_TENANT_WORKLOADS,
	API_R_TENANT_WORKLOAD,
	API_R_WORKLOADS,
	API_R_USAGE,
	API_R_INVOICE,
	API_R_SCHEDULER,
	API_R_AUTOSCALER,
	API_R_OPENAPI,
	API_R_EVENTS,
	API_R_EVENTS_TICKET,
	API_R_USAGE_HISTORY,
	API_R_COUNT
};

#define API_PARAM_MAX 256

/* A path matched against the route patterns. */
struct api_match {
	enum api_route route;
	const char *pattern;               /* the matching pattern, static */
	char params[2][API_PARAM_MAX];     /* {id}/{tenant}, then {name}, in order */
	size_t nparams;
};

/* Match path against the patterns: 1 with *m set, 0 when no pattern
 * matches (also for a parameter segment that is empty or longer than
 * API_PARAM_MAX - 1 bytes). */
int api_route_match(const char *path, struct api_match *m);

/* One (method, pattern) the API serves. */
struct api_op_info {
	const char *method;
	const char *pattern;
	bool public;        /* no token needed */
};
/* The i-th operation, or NULL past the end. */
const struct api_op_info *api_op_at(size_t i);
/* The OpenAPI 3 document served at /openapi.json (static, NUL-terminated). */
const char *api_openapi_json(size_t *len);

/* An RFC 7807 body for status into *out (malloc'd, caller frees): title is
 * the status's reason phrase; field (may be NULL) names the offending
 * field. */
int api_problem_json(int status, const char *detail, const char *field, char **out, size_t *len);
const char *api_status_phrase(int status);

/* One field of a JSON request body. */
enum api_field_type { API_FIELD_STRING, API_FIELD_INT, API_FIELD_OBJECT };
struct api_field {
	const char *name;
	enum api_field_type type;
	bool required;
};
/* The parsed value of a field; present false when absent (or null). */
struct api_value {
	bool present;
	char *str;         /* API_FIELD_STRING: malloc'd */
	int64_t num;       /* API_FIELD_INT */
	void *obj;         /* API_FIELD_OBJECT: a yajl_val owned by the parse */
};
struct api_body {
	void *tree;        /* yajl_val, freed by api_body_free */
	struct api_value v[8];
};
/* Parse body (len bytes, NUL after them) as a JSON object whose keys are
 * among fields (at most 8), with their types. On failure 400-class detail
 * in e->message and the field at fault in field (cap bytes; "" when the
 * whole body is at fault): KERR_PARSE. Free with api_body_free in every
 * case. */
int api_body_parse(const char *body, size_t len, const struct api_field *fields, size_t n, struct api_body *out,
		   char *field, size_t cap, struct kerr *e);
/* Check the keys and types of a nested object (obj from api_value.obj)
 * the same way, filling out->v (out->tree stays NULL). prefix names the
 * object in field ("autoscaling.minReplicas"). */
int api_object_parse(void *obj, const char *prefix, const struct api_field *fields, size_t n,
		     struct api_body *out, char *field, size_t cap, struct kerr *e);
void api_body_free(struct api_body *b);

/* Room for a continue token: the last key of a page in hex. */
#define API_CONTINUE_MAX 1024
/* Paging over n keys sorted ascending: the page starts after the key
 * encoded in cont (NULL or "": at 0) and holds at most limit keys;
 * [*start, *end) is the page, next (cap >= API_CONTINUE_MAX) the token of
 * the following page or "" at the end. KERR_PARSE for a malformed cont. */
int api_page(const char *const *keys, size_t n, size_t limit, const char *cont, size_t *start, size_t *end,
	     char *next, size_t cap);

#endif
