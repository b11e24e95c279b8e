#include "api.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <yajl/yajl_tree.h>

#include "api_cache.h"
#include "api_events.h"
#include "billing.h"
#include "db.h"
#include "kinds.h"
#include "kube_write.h"
#include "log.h"
#include "tenant.h"
#include "timefmt.h"

#define LOGGER "api"
/* A JSON body nested deeper than this is refused before parsing: yajl's
 * tree is freed recursively, and no request of this API nests past 3. */
#define BODY_MAX_DEPTH 16
/* How long the API waits before trying an unreachable database again, so
 * that an outage costs each request a fast 503, not a connect timeout. */
#define DB_RETRY_MS 2000
#define WS_QUEUE_MAX (API_EVENTS_DEFAULT_CAPACITY + 16)
/* Event-stream tickets remembered per replica: at most this many websocket
 * connections opened with a ticket per AUTH_TICKET_TTL_S. */
#define API_TICKETS_SEEN 4096

/* ---- routes ------------------------------------------------------------------- */

static const struct {
	const char *pattern;
	enum api_route route;
} patterns[] = {
	{"/api/v1/auth/token", API_R_TOKEN},
	{"/auth/token", API_R_TOKEN},
	{"/api/v1/tenants", API_R_TENANTS},
	{"/tenants", API_R_TENANTS},
	{"/api/v1/tenants/{id}", API_R_TENANT},
	{"/tenants/{id}", API_R_TENANT},
	{"/api/v1/tenants/{id}/keys", API_R_KEYS},
	{"/api/v1/tenants/{id}/workloads", API_R_TENANT_WORKLOADS},
	{"/api/v1/tenants/{id}/workloads/{name}", API_R_TENANT_WORKLOAD},
	{"/api/v1/workloads", API_R_WORKLOADS},
	{"/api/v1/billing/usage", API_R_USAGE},
	{"/billing/usage", API_R_USAGE},
	{"/api/v1/billing/invoice/{tenant}", API_R_INVOICE},
	{"/billing/invoice/{tenant}", API_R_INVOICE},
	{"/api/v1/scheduler", API_R_SCHEDULER},
	{"/api/v1/autoscaler", API_R_AUTOSCALER},
	{"/openapi.json", API_R_OPENAPI},
	{"/api/v1/openapi.json", API_R_OPENAPI},
	{"/api/v1/events", API_R_EVENTS},
	{"/api/v1/events/ticket", API_R_EVENTS_TICKET},
	{"/api/v1/billing/usage/history", API_R_USAGE_HISTORY},
};
#define NPATTERNS (sizeof(patterns) / sizeof(patterns[0]))

/* Compare path with pattern segment by segment; "{x}" takes one segment. */
static int match_one(const char *path, const char *pat, struct api_match *m)
{
	m->nparams = 0;
	while (*pat && *path) {
		if (*pat != '/' || *path != '/')
			return 0;
		pat++;
		path++;
		const char *pe = strchr(pat, '/'), *se = strchr(path, '/');
		size_t pl = pe ? (size_t)(pe - pat) : strlen(pat), sl = se ? (size_t)(se - path) : strlen(path);
		if (pl > 2 && pat[0] == '{' && pat[pl - 1] == '}') {
			if (sl == 0 || sl >= API_PARAM_MAX || m->nparams == 2)
				return 0;
			memcpy(m->params[m->nparams], path, sl);
			m->params[m->nparams++][sl] = '\0';
		} else if (pl != sl || memcmp(pat, path, pl) != 0) {
			return 0;
		}
		pat += pl;
		path += sl;
	}
	return !*pat && !*path;
}

int api_route_match(const char *path, struct api_match *m)
{
	for (size_t i = 0; i < NPATTERNS; i++) {
		if (match_one(path, patterns[i].pattern, m)) {
			m->route = patterns[i].route;
			m->pattern = patterns[i].pattern;
			return 1;
		}
	}
	memset(m, 0, sizeof(*m));
	return 0;
}

/* ---- problem+json ------------------------------------------------------------------ */

const char *api_status_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

int api_problem_json(int status, const char *detail, const char *field, char **out, size_t *len)
{
	*out = NULL;
	struct jsonb *b = jsonb_new();
	if (!b)
		return KERR_NOMEM;
	jsonb_obj(b);
	jsonb_kstr(b, "type", "about:blank");
	jsonb_kstr(b, "title", api_status_phrase(status));
	jsonb_kint(b, "status", status);
	jsonb_kstr(b, "detail", detail ? detail : "");
	if (field && *field)
		jsonb_kstr(b, "field", field);
	jsonb_obj_end(b);
	const char *s;
	int rc = jsonb_result(b, &s, len, NULL);
	if (rc == 0 && !(*out = malloc(*len + 1)))
		rc = KERR_NOMEM;
	if (rc == 0) {
		memcpy(*out, s, *len);
		(*out)[*len] = '\0';
	}
	jsonb_free(b);
	return rc;
}

/* ---- request bodies ---------------------------------------------------------------- */

static const char *type_name(enum api_field_type t)
{
	return t == API_FIELD_STRING ? "a string" : t == API_FIELD_INT ? "an integer" : "an object";
}

/* Deepest nesting of arrays and objects, outside strings. */
static int json_depth(const char *s, size_t len)
{
	int depth = 0, max = 0, in_str = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				max = depth;
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return max;
}

int api_object_parse(void *obj, const char *prefix, const struct api_field *fields, size_t n,
		     struct api_body *out, char *field, size_t cap, struct kerr *e)
{
	yajl_val o = obj;
	const char *pre = prefix && *prefix ? prefix : "", *dot = *pre ? "." : "";
	if (n > sizeof(out->v) / sizeof(out->v[0]))
		return kerr_set(e, KERR_INVAL, "api_object_parse: too many fields");
	if (!YAJL_IS_OBJECT(o)) {
		snprintf(field, cap, "%s", pre);
		return kerr_set(e, KERR_PARSE, "%s%smust be a JSON object", pre, *pre ? " " : "the body ");
	}
	for (size_t i = 0; i < o->u.object.len; i++) {
		const char *k = o->u.object.keys[i];
		yajl_val v = o->u.object.values[i];
		size_t j = 0;
		while (j < n && strcmp(fields[j].name, k) != 0)
			j++;
		snprintf(field, cap, "%s%s%s", pre, dot, k);
		if (j == n)
			return kerr_set(e, KERR_PARSE, "unknown field \"%s%s%s\"", pre, dot, k);
		struct api_value *x = &out->v[j];
		if (x->present)
			return kerr_set(e, KERR_PARSE, "field \"%s%s%s\" is given twice", pre, dot, k);
		if (YAJL_IS_NULL(v))
			continue;
		int ok = fields[j].type == API_FIELD_STRING   ? YAJL_IS_STRING(v)
			 : fields[j].type == API_FIELD_INT    ? YAJL_IS_INTEGER(v)
							      : YAJL_IS_OBJECT(v);
		if (!ok)
			return kerr_set(e, KERR_PARSE, "field \"%s%s%s\" must be %s", pre, dot, k, type_name(fields[j].type));
		x->present = true;
		if (fields[j].type == API_FIELD_STRING) {
			const char *str = YAJL_GET_STRING(v);
			if (!str || !(x->str = strdup(str)))
				return kerr_set(e, KERR_NOMEM, "out of memory");
		} else if (fields[j].type == API_FIELD_INT) {
			x->num = YAJL_GET_INTEGER(v);
		} else {
			x->obj = v;
		}
	}
	for (size_t j = 0; j < n; j++) {
		if (fields[j].required && !out->v[j].present) {
			snprintf(field, cap, "%s%s%s", pre, dot, fields[j].name);
			return kerr_set(e, KERR_PARSE, "field \"%s%s%s\" is required", pre, dot, fields[j].name);
		}
	}
	field[0] = '\0';
	return 0;
}

int api_body_parse(const char *body, size_t len, const struct api_field *fields, size_t n, struct api_body *out,
		   char *field, size_t cap, struct kerr *e)
{
	memset(out, 0, sizeof(*out));
	field[0] = '\0';
	if (len == 0)
		return kerr_set(e, KERR_PARSE, "the request needs a JSON object as its body");
	if (strlen(body) != len)
		return kerr_set(e, KERR_PARSE, "the body contains a NUL byte");
	if (json_depth(body, len) > BODY_MAX_DEPTH)
		return kerr_set(e, KERR_PARSE, "the body nests deeper than %d levels", BODY_MAX_DEPTH);
	char err[256];
	yajl_val t = yajl_tree_parse(body, err, sizeof(err));
	if (!t) {
		/* yajl's message spans lines and quotes the input; keep the first. */
		char *nl = strchr(err, '\n');
		if (nl)
			*nl = '\0';
		return kerr_set(e, KERR_PARSE, "the body is not valid JSON: %s", err);
	}
	out->tree = t;
	return api_object_parse(t, NULL, fields, n, out, field, cap, e);
}

void api_body_free(struct api_body *b)
{
	for (size_t i = 0; i < sizeof(b->v) / sizeof(b->v[0]); i++)
		free(b->v[i].str);
	if (b->tree)
		yajl_tree_free(b->tree);
	memset(b, 0, sizeof(*b));
}

/* ---- paging ------------------------------------------------------------------------- */

int api_page(const char *const *keys, size_t n, size_t limit, const char *cont, size_t *start, size_t *end,
	     char *next, size_t cap)
{
	char after[API_CONTINUE_MAX / 2];
	size_t i = 0;
	next[0] = '\0';
	if (cont && *cont) {
		size_t cl = strlen(cont);
		if (cl % 2 || cl / 2 >= sizeof(after))
			return KERR_PARSE;
		for (size_t k = 0; k < cl; k += 2) {
			unsigned v;
			if (!isxdigit((unsigned char)cont[k]) || !isxdigit((unsigned char)cont[k + 1]) ||
			    sscanf(cont + k, "%2x", &v) != 1 || v == 0)
				return KERR_PARSE;
			after[k / 2] = (char)v;
		}
		after[cl / 2] = '\0';
		while (i < n && strcmp(keys[i], after) <= 0)
			i++;
	}
	*start = i;
	*end = n - i > limit ? i + limit : n;
	if (*end < n && *end > i) {
		const char *last = keys[*end - 1];
		size_t ll = strlen(last);
		if (ll * 2 + 1 > cap)
			return KERR_TOO_LARGE;
		for (size_t k = 0; k < ll; k++)
			snprintf(next + 2 * k, 3, "%02x", (unsigned char)last[k]);
	}
	return 0;
}

/* ---- the server ---------------------------------------------------------------------- */

struct api {
	const struct config *cfg;
	struct kube_client *client;
	struct informer *namespaces, *crs, *pods, *nodes;
	struct scheduler *scheduler;
	struct api_events *events;
	struct auth_limiter *limiter;
	struct api_cache *cache;
	struct auth_ticket_seen *tickets; /* event-stream tickets used on this replica */
	struct metrics_family *requests, *duration;
	struct httpd *httpd;
	/* Database connections not in use. A request takes one (opening it if
	 * none is idle) and gives it back when answered, so there are at most
	 * API_WORKERS, each used by one worker at a time. Under db_lock. */
	pthread_mutex_t db_lock;
	struct db *db_idle[API_WORKERS];
	size_t db_nidle;
	int64_t db_failed_ms;      /* monotonic ms of the last failed open; 0: none */
	/* The schema and the admin credential, set up once by whichever
	 * request or start gets there first. Under setup_lock. */
	pthread_mutex_t setup_lock;
	bool schema_ready, admin_ready;
};

/* One request being answered. */
struct ctx {
	struct api *a;
	const struct httpd_request *req;
	struct httpd_response *resp;
	struct api_match m;
	struct auth_claims who;
	int status;
	struct db *db;             /* taken from a->db_idle by api_db, returned after the answer */
	bool fast;                 /* on the service thread: answer only what needs no waiting */
	bool cache_fill;           /* a 200 answer is stored in a->cache under cache_key */
	uint64_t cache_gen;        /* the cache's generation before the answer was computed */
	char cache_key[API_CACHE_KEY_MAX];
};

typedef int (*handler_fn)(struct ctx *c);

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_s(void) { return (int64_t)time(NULL); }

static void rfc3339(int64_t t, char *buf, size_t cap)
{
	if (t <= 0 || t > INT64_MAX / 1000000 || timefmt_format(t * 1000000, 0, buf, cap) < 0)
		buf[0] = '\0';
}

static void set_status(struct ctx *c, int status)
{
	c->status = status;
	httpd_response_status(c->resp, status);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	size_t n = s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	}
	/* Overlong three-byte forms, UTF-16 surrogates, beyond U+10FFFF. */
	if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0) || (s[0] == 0xF0 && s[1] < 0x90) ||
	    (s[0] == 0xF4 && s[1] >= 0x90))
		return 0;
	return n;
}

/* Replace each byte that does not start valid UTF-8 with '?', in place:
 * messages quote user input (paths, names), may be cut mid-character by
 * snprintf, and yajl refuses to write invalid UTF-8. */
static void utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		size_t n = utf8_seq(p);
		if (n == 0)
			*p++ = '?';
		else
			p += n;
	}
}

static int problem(struct ctx *c, int status, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int problem(struct ctx *c, int status, const char *field, const char *fmt, ...)
{
	char detail[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	char f[128];
	snprintf(f, sizeof(f), "%s", field ? field : "");
	utf8_sanitize(detail);
	utf8_sanitize(f);
	char *body;
	size_t len;
	int rc = api_problem_json(status, detail, f, &body, &len);
	if (rc < 0)
		return rc;
	set_status(c, status);
	httpd_response_content_type(c->resp, "application/problem+json");
	httpd_response_body_take(c->resp, body, len);
	if (status == 401)
		httpd_response_header(c->resp, "WWW-Authenticate", "Bearer realm=\"nimbus-api\"");
	return 0;
}

/* Send what b built with status. */
static int reply(struct ctx *c, int status, struct jsonb *b)
{
	const char *s;
	size_t len;
	int rc = jsonb_result(b, &s, &len, NULL);
	if (rc == 0)
		rc = httpd_response_body(c->resp, s, len);
	if (rc == 0 && status == 200 && c->cache_fill &&
	    api_cache_put(c->a->cache, c->cache_key, c->cache_gen, mono_ms(), s, len) < 0)
		log_warn(LOGGER, "out of memory caching an answer", "route", c->m.pattern, NULL);
	jsonb_free(b);
	if (rc == 0)
		set_status(c, status);
	return rc;
}

static int not_found(struct ctx *c, const char *what, const char *name)
{
	return problem(c, 404, NULL, "%s %s does not exist", what, name);
}

/* The decision of auth_decide as a response; 1 if allowed. */
static int allowed(struct ctx *c, const char *object_tenant, bool admin_only, const char *what, const char *name,
		   int *rc)
{
	switch (auth_decide(&c->who, object_tenant, admin_only)) {
	case AUTH_ALLOW:
		return 1;
	case AUTH_FORBIDDEN:
		*rc = problem(c, 403, NULL, "a tenant token may not do this; it needs an admin token");
		return 0;
	case AUTH_NOT_FOUND:
	default:
		*rc = not_found(c, what, name);
		return 0;
	}
}

static void api_db_prepare(struct api *a, struct db *db);

/* A new connection, or NULL (logged) when the database cannot be reached. */
static struct db *api_db_open(struct api *a)
{
	struct db_options o;
	struct db *db = NULL;
	struct kerr e = {0};
	db_options_from_config(&o, a->cfg);
	o.application_name = "nimbus-operator-api";
	o.connect_timeout_s = 2;
	if (db_open(&o, &db, &e) < 0) {
		log_warn(LOGGER, "cannot reach the database", "error", e.message, NULL);
		return NULL;
	}
	api_db_prepare(a, db);
	return db;
}

static void api_db_put(struct api *a, struct db *db)
{
	pthread_mutex_lock(&a->db_lock);
	if (a->db_nidle < API_WORKERS) {
		a->db_idle[a->db_nidle++] = db;
		db = NULL;
	}
	pthread_mutex_unlock(&a->db_lock);
	db_close(db);
}

/* The request's database connection: an idle one, or a new one (the
 * schema and admin credential set up on first use); NULL with a 503
 * already answered when the database is unreachable. */
static struct db *api_db(struct ctx *c, int *rc)
{
	struct api *a = c->a;
	if (c->db)
		return c->db;
	pthread_mutex_lock(&a->db_lock);
	bool backoff = a->db_failed_ms && mono_ms() - a->db_failed_ms < DB_RETRY_MS;
	if (a->db_nidle)
		c->db = a->db_idle[--a->db_nidle];
	pthread_mutex_unlock(&a->db_lock);
	if (!c->db && !backoff) {
		c->db = api_db_open(a);
		pthread_mutex_lock(&a->db_lock);
		a->db_failed_ms = c->db ? 0 : mono_ms();
		pthread_mutex_unlock(&a->db_lock);
	}
	if (!c->db) {
		httpd_response_header(c->resp, "Retry-After", "2");
		*rc = problem(c, 503, NULL, "the database is unreachable; try again shortly");
	}
	return c->db;
}

/* Answer a failed database call. */
static int db_problem(struct ctx *c, const struct kerr *e)
{
	log_warn(LOGGER, "database request failed", "route", c->m.pattern, "error", e->message, NULL);
	httpd_response_header(c->resp, "Retry-After", "2");
	return problem(c, 503, NULL, "the database request failed; try again shortly");
}

/* Make sure the admin can log in. Caller holds setup_lock. */
static void admin_setup_locked(struct api *a, struct db *db)
{
	if (a->admin_ready)
		return;
	char generated[64];
	bool was_generated = false;
	struct kerr e = {0};
	if (auth_bootstrap_admin(db, a->cfg->admin_password, generated, sizeof(generated), &was_generated, &e) < 0) {
		log_error(LOGGER, "cannot set up the admin credential; logins fail until the database answers", "error",
			  e.message, NULL);
		return;
	}
	a->admin_ready = true;
	if (was_generated) {
		/* The one secret Nimbus ever writes to its log, once, at the first
		 * start against a database, so that a fresh install can log in.
		 * Only its hash is stored; set NIMBUS_ADMIN_PASSWORD to choose it
		 * instead (or to replace a lost one). */
		log_warn(LOGGER,
			 "generated the admin password: log in with POST /auth/token {\"username\":\"admin\","
			 "\"password\":...}; store it now in a password manager, it is shown only this once",
			 "user", AUTH_ADMIN_USER, "generated_credential", generated, NULL);
		OPENSSL_cleanse(generated, sizeof(generated));
	} else {
		log_info(LOGGER, a->cfg->admin_password ? "admin password set from NIMBUS_ADMIN_PASSWORD"
							 : "admin credential present in the database",
			 NULL);
	}
}

static void admin_setup(struct api *a, struct db *db)
{
	pthread_mutex_lock(&a->setup_lock);
	admin_setup_locked(a, db);
	pthread_mutex_unlock(&a->setup_lock);
}

/* A new connection: apply the schema once (idempotent; replicas
 * serialise on db_migrate's lock), then make sure the admin can log in. */
static void api_db_prepare(struct api *a, struct db *db)
{
	pthread_mutex_lock(&a->setup_lock);
	if (!a->schema_ready) {
		struct kerr e = {0};
		size_t n;
		const struct db_migration *m = db_migrations(&n);
		if (db_migrate(db, m, n, NULL, &e) < 0)
			log_error(LOGGER, "cannot apply the database schema", "error", e.message, NULL);
		else
			a->schema_ready = true;
	}
	admin_setup_locked(a, db);
	pthread_mutex_unlock(&a->setup_lock);
}

/* ---- JSON of objects ------------------------------------------------------------------ */

/* The tenant of namespace ns (its nimbus.io/tenant label) into buf. */
static bool ns_tenant(struct api *a, const char *ns, char *buf, size_t cap)
{
	struct kobj *o = store_get(informer_store(a->namespaces), ns);
	const char *t = o ? kobj_label(o, TENANT_LABEL) : NULL;
	bool ok = t && *t && snprintf(buf, cap, "%s", t) < (int)cap;
	kobj_unref(o);
	return ok;
}

/* The keys of a tenant object, without its braces. */
static void tenant_fields(struct api *a, struct jsonb *b, const struct tenant *t)
{
	char ns[TENANT_NS_MAX] = "";
	tenant_namespace_name(t->id, ns, sizeof(ns));
	struct kobj *o = *ns ? store_get(informer_store(a->namespaces), ns) : NULL;
	const struct knamespace *n = (const struct knamespace *)o;
	jsonb_kstr(b, "id", t->id);
	jsonb_kstr(b, "name", t->name);
	jsonb_kstr(b, "cpu_quota", t->cpu);
	jsonb_kstr(b, "memory_quota", t->memory);
	jsonb_kint(b, "pods_quota", t->pods);
	jsonb_kstr(b, "status", tenant_status_name(t->status));
	jsonb_kstr(b, "namespace", ns);
	jsonb_kstr(b, "namespace_phase",
		   !n ? "Absent" : (n->meta.deleted || n->phase == KNS_TERMINATING) ? "Terminating" : "Active");
	jsonb_kstr(b, "created_at", t->created_at);
	jsonb_key(b, "updated_at");
	if (*t->updated_at)
		jsonb_str(b, t->updated_at);
	else
		jsonb_null(b);
	kobj_unref(o);
}

static void tenant_json(struct api *a, struct jsonb *b, const struct tenant *t)
{
	jsonb_obj(b);
	tenant_fields(a, b, t);
	jsonb_obj_end(b);
}

static const char *cond_status(uint8_t s)
{
	return s == KCOND_TRUE ? "True" : s == KCOND_FALSE ? "False" : "Unknown";
}

static bool cr_ready(const struct kcomputerequest *cr)
{
	for (size_t i = 0; i < cr->nconditions; i++) {
		if (strcmp(cr->conditions[i].type, "Ready") == 0)
			return cr->conditions[i].status == KCOND_TRUE;
	}
	return false;
}

static void kint_or_null(struct jsonb *b, const char *key, int64_t v)
{
	jsonb_key(b, key);
	if (v >= 0)
		jsonb_int(b, v);
	else
		jsonb_null(b);
}

static void autoscaling_status_json(struct jsonb *b, const struct kcomputerequest *cr)
{
	if (!cr->has_autoscaling_status) {
		jsonb_null(b);
		return;
	}
	jsonb_obj(b);
	kint_or_null(b, "currentReplicas", cr->as_current_replicas);
	kint_or_null(b, "desiredReplicas", cr->as_desired_replicas);
	kint_or_null(b, "currentCPUUtilizationPercentage", cr->as_cpu_percent);
	kint_or_null(b, "currentMemoryUtilizationPercentage", cr->as_memory_percent);
	jsonb_key(b, "lastScaleTime");
	if (*cr->as_last_scale_time)
		jsonb_str(b, cr->as_last_scale_time);
	else
		jsonb_null(b);
	jsonb_kstr(b, "reason", cr->as_reason);
	jsonb_obj_end(b);
}

static void autoscaling_spec_json(struct jsonb *b, const struct kcomputerequest *cr)
{
	if (!cr->has_autoscaling) {
		jsonb_null(b);
		return;
	}
	jsonb_obj(b);
	kint_or_null(b, "minReplicas", cr->min_replicas);
	kint_or_null(b, "maxReplicas", cr->max_replicas);
	kint_or_null(b, "targetCPUUtilizationPercentage", cr->target_cpu_percent);
	kint_or_null(b, "targetMemoryUtilizationPercentage", cr->target_memory_percent);
	jsonb_obj_end(b);
}

static void workload_json(struct jsonb *b, const struct kcomputerequest *cr, const char *tenant)
{
	char created[32];
	rfc3339(cr->meta.created, created, sizeof(created));
	jsonb_obj(b);
	jsonb_kstr(b, "tenant", tenant);
	jsonb_kstr(b, "namespace", cr->meta.ns);
	jsonb_kstr(b, "name", cr->meta.name);
	jsonb_kstr(b, "uid", cr->meta.uid);
	jsonb_kstr(b, "created_at", created);
	jsonb_kbool(b, "deleting", cr->meta.deleted != 0);
	jsonb_kstr(b, "image", cr->image);
	jsonb_kstr(b, "cpu", cr->cpu.raw);
	jsonb_kstr(b, "memory", cr->memory.raw);
	jsonb_kint(b, "replicas", cr->replicas < 0 ? 1 : cr->replicas);
	jsonb_key(b, "autoscaling");
	autoscaling_spec_json(b, cr);
	jsonb_key(b, "status");
	jsonb_obj(b);
	jsonb_kstr(b, "phase", *cr->phase ? cr->phase : "Pending");
	jsonb_kbool(b, "ready", cr_ready(cr));
	jsonb_kint(b, "replicas", cr->status_replicas);
	jsonb_kint(b, "readyReplicas", cr->ready_replicas);
	jsonb_kint(b, "observedGeneration", cr->observed_generation);
	jsonb_key(b, "conditions");
	jsonb_arr(b);
	for (size_t i = 0; i < cr->nconditions; i++) {
		const struct kcondition *k = &cr->conditions[i];
		jsonb_obj(b);
		jsonb_kstr(b, "type", k->type);
		jsonb_kstr(b, "status", cond_status(k->status));
		jsonb_kstr(b, "reason", k->reason);
		jsonb_kstr(b, "message", k->message);
		jsonb_kstr(b, "lastTransitionTime", k->last_transition);
		jsonb_obj_end(b);
	}
	jsonb_arr_end(b);
	jsonb_key(b, "autoscaling");
	autoscaling_status_json(b, cr);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
}

/* ---- paging over lists ------------------------------------------------------------------ */

/* Read ?limit= and ?continue=; 0, or a 400 answered (returns 1). */
static int page_params(struct ctx *c, size_t *limit, char *cont, size_t cap, int *rc)
{
	char buf[32];
	*limit = API_PAGE_DEFAULT;
	int n = httpd_query_param(c->req, "limit", buf, sizeof(buf));
	if (n >= 0) {
		char *end;
		long v = strtol(buf, &end, 10);
		if (!*buf || *end || v < 1 || v > API_PAGE_MAX) {
			*rc = problem(c, 400, "limit", "limit must be an integer from 1 to %d", API_PAGE_MAX);
			return 1;
		}
		*limit = (size_t)v;
	} else if (n != KERR_NOT_FOUND) {
		*rc = problem(c, 400, "limit", "limit must be an integer from 1 to %d", API_PAGE_MAX);
		return 1;
	}
	cont[0] = '\0';
	n = httpd_query_param(c->req, "continue", cont, cap);
	if (n < 0 && n != KERR_NOT_FOUND) {
		*rc = problem(c, 400, "continue", "continue is not a token from a previous page");
		return 1;
	}
	if (n < 0)
		cont[0] = '\0';
	return 0;
}

static int cmp_kobj_key(const void *x, const void *y)
{
	return strcmp((*(struct kobj *const *)x)->key, (*(struct kobj *const *)y)->key);
}

/* Page over keys (sorted); writes "items" via item(i) and "continue". 1 and
 * a 400 answered for a bad continue. */
static int page_keys(struct ctx *c, const char *const *keys, size_t n, size_t *start, size_t *end, char *next,
		     int *rc)
{
	size_t limit;
	char cont[API_CONTINUE_MAX];
	if (page_params(c, &limit, cont, sizeof(cont), rc))
		return 1;
	int r = api_page(keys, n, limit, cont, start, end, next, API_CONTINUE_MAX);
	if (r < 0) {
		*rc = problem(c, 400, "continue", "continue is not a token from a previous page");
		return 1;
	}
	return 0;
}

static void end_list(struct jsonb *b, const char *next)
{
	jsonb_arr_end(b);
	jsonb_key(b, "continue");
	if (*next)
		jsonb_str(b, next);
	else
		jsonb_null(b);
	jsonb_obj_end(b);
}

/* ---- POST /auth/token ------------------------------------------------------------------- */

static int json_content(struct ctx *c, int *rc)
{
	const char *ct = c->req->content_type;
	if (c->req->body_len == 0 || !ct)
		return 1;
	size_t n = strcspn(ct, ";");
	while (n && ct[n - 1] == ' ')
		n--;
	if ((n == 16 && !strncasecmp(ct, "application/json", 16)) ||
	    (n > 5 && !strncasecmp(ct + n - 5, "+json", 5) && !strncasecmp(ct, "application/", 12)))
		return 1;
	*rc = problem(c, 415, NULL, "send the body as application/json");
	return 0;
}

/* Parse the body against fields; 1 and a 400 answered on failure. */
static int parse_body(struct ctx *c, const struct api_field *fields, size_t n, struct api_body *body, int *rc)
{
	char field[128];
	struct kerr e = {0};
	memset(body, 0, sizeof(*body));
	if (!json_content(c, rc))
		return 1;
	if (api_body_parse((const char *)c->req->body, c->req->body_len, fields, n, body, field, sizeof(field), &e) < 0) {
		*rc = e.code == KERR_NOMEM ? KERR_NOMEM : problem(c, 400, field, "%s", e.message);
		return 1;
	}
	return 0;
}

static int h_token(struct ctx *c)
{
	static const struct api_field fields[] = {
		{"username", API_FIELD_STRING, false}, {"password", API_FIELD_STRING, false},
		{"api_key", API_FIELD_STRING, false},  {"tenant_id", API_FIELD_STRING, false},
		{"tenant_name", API_FIELD_STRING, false},
	};
	int rc = 0;
	int64_t retry;
	if (!auth_limiter_take(c->a->limiter, c->req->remote_addr, mono_ms(), &retry)) {
		char v[24];
		snprintf(v, sizeof(v), "%lld", (long long)retry);
		httpd_response_header(c->resp, "Retry-After", v);
		return problem(c, 429, NULL, "too many login attempts from %s; try again in %lld s",
			       *c->req->remote_addr ? c->req->remote_addr : "this address", (long long)retry);
	}
	struct api_body body = {0};
	if (parse_body(c, fields, 5, &body, &rc)) {
		api_body_free(&body);
		return rc;
	}
	const char *user = body.v[0].str, *password = body.v[1].str, *key = body.v[2].str;
	struct kerr e = {0};
	struct auth_claims who;
	struct db *db;
	if (key && (user || password)) {
		rc = problem(c, 400, "api_key", "send either username and password, or api_key, not both");
	} else if (!key && !(user && password)) {
		/* The seed issued an admin token to anyone who asked with
		 * {"tenant_id":"admin"}; that body now earns a 401 that says
		 * what to send instead. */
		rc = problem(c, 401, NULL,
			     "a credential is needed: send {\"username\":\"admin\",\"password\":\"...\"} for an admin "
			     "token, or {\"api_key\":\"...\"} (the key POST /tenants returned) for a tenant token; "
			     "tenant_id and tenant_name alone are no longer accepted");
	} else if (!(db = api_db(c, &rc))) {
		/* answered */
	} else {
		admin_setup(c->a, db);
		int r = key ? auth_login_key(db, key, &who, &e) : auth_login_password(db, user, password, &who, &e);
		if (r == KERR_UNAUTHORIZED) {
			log_info(LOGGER, "login refused", "remote", c->req->remote_addr, "reason", e.message, NULL);
			rc = problem(c, 401, NULL, "%s", e.message);
		} else if (r < 0) {
			rc = db_problem(c, &e);
		} else {
			char *tok = NULL;
			if ((r = auth_token_issue(c->a->cfg->jwt_secret, &who, now_s(), &tok, &e)) < 0) {
				rc = r;
			} else {
				char exp[32];
				rfc3339(who.exp, exp, sizeof(exp));
				struct jsonb *b = jsonb_new();
				if (!b) {
					rc = KERR_NOMEM;
				} else {
					jsonb_obj(b);
					jsonb_kstr(b, "token", tok);
					jsonb_kstr(b, "token_type", "Bearer");
					jsonb_kint(b, "expires_in", AUTH_TOKEN_TTL_S);
					jsonb_kstr(b, "expires_at", exp);
					jsonb_kstr(b, "role", who.role == AUTH_ROLE_ADMIN ? "admin" : "tenant");
					jsonb_kstr(b, "tenant_id", who.tenant_id);
					jsonb_obj_end(b);
					rc = reply(c, 200, b);
				}
				OPENSSL_cleanse(tok, strlen(tok));
				free(tok);
			}
		}
	}
	api_body_free(&body);
	return rc;
}

/* ---- tenants ------------------------------------------------------------------------------- */

static int h_tenants_get(struct ctx *c)
{
	int rc = 0;
	struct db *db = api_db(c, &rc);
	if (!db)
		return rc;
	struct tenant **ts = NULL;
	size_t n = 0;
	struct kerr e = {0};
	if (c->who.role == AUTH_ROLE_ADMIN) {
		rc = tenant_list(db, &ts, &n, &e);
	} else {
		struct tenant *t = NULL;
		rc = tenant_get(db, c->who.tenant_id, &t, &e);
		if (rc == 0) {
			if (!(ts = malloc(sizeof(*ts)))) {
				tenant_free(t);
				return KERR_NOMEM;
			}
			ts[0] = t;
			n = 1;
		} else if (rc == KERR_NOT_FOUND) {
			rc = 0;
		}
	}
	if (rc < 0)
		return db_problem(c, &e);
	const char **keys = n ? malloc(n * sizeof(*keys)) : NULL;
	if (n && !keys) {
		tenant_list_free(ts, n);
		return KERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++)
		keys[i] = ts[i]->id; /* tenant_list orders by id */
	size_t start, end;
	char next[API_CONTINUE_MAX];
	if (!page_keys(c, keys, n, &start, &end, next, &rc)) {
		struct jsonb *b = jsonb_new();
		if (!b) {
			rc = KERR_NOMEM;
		} else {
			jsonb_obj(b);
			jsonb_key(b, "items");
			jsonb_arr(b);
			for (size_t i = start; i < end; i++)
				tenant_json(c->a, b, ts[i]);
			end_list(b, next);
			rc = reply(c, 200, b);
		}
	}
	free(keys);
	tenant_list_free(ts, n);
	return rc;
}

static int h_tenants_post(struct ctx *c)
{
	static const struct api_field fields[] = {
		{"name", API_FIELD_STRING, true},
		{"cpu_quota", API_FIELD_STRING, false},
		{"memory_quota", API_FIELD_STRING, false},
		{"pods_quota", API_FIELD_INT, false},
	};
	int rc = 0;
	if (!allowed(c, NULL, true, "", "", &rc))
		return rc;
	struct api_body body = {0};
	if (parse_body(c, fields, 4, &body, &rc)) {
		api_body_free(&body);
		return rc;
	}
	const char *name = body.v[0].str, *cpu = body.v[1].str, *mem = body.v[2].str;
	int64_t pods = body.v[3].present ? body.v[3].num : -1;
	struct kerr e = {0};
	struct tenant_quota q;
	struct db *db;
	if (tenant_validate_name(name, &e) < 0) {
		rc = problem(c, 400, "name", "%s", e.message);
	} else if (tenant_parse_quota(cpu, NULL, -1, &q, &e) < 0) {
		rc = problem(c, 400, "cpu_quota", "%s", e.message);
	} else if (tenant_parse_quota(NULL, mem, -1, &q, &e) < 0) {
		rc = problem(c, 400, "memory_quota", "%s", e.message);
	} else if (body.v[3].present && (pods < 0 || tenant_parse_quota(NULL, NULL, pods, &q, &e) < 0)) {
		rc = problem(c, 400, "pods_quota", "pods_quota must be an integer from 0 to %d", TENANT_PODS_MAX);
	} else if ((db = api_db(c, &rc))) {
		/* The tenant and its first key commit together: a tenant is never
		 * left without the key its creator was promised. */
		struct tenant *t = NULL;
		char key[AUTH_KEY_MAX], id[AUTH_KEY_ID_LEN + 1];
		int r = db_exec_params(db, "BEGIN", 0, NULL, NULL, &e);
		if (r == 0)
			r = tenant_create(db, name, cpu, mem, pods, &t, &e);
		if (r == 0)
			r = auth_key_create(db, name, false, key, sizeof(key), id, sizeof(id), &e);
		if (r == 0)
			r = db_exec_params(db, "COMMIT", 0, NULL, NULL, &e);
		if (r < 0) {
			struct kerr ignored = {0};
			db_exec_params(db, "ROLLBACK", 0, NULL, NULL, &ignored);
		}
		if (r == KERR_ALREADY_EXISTS) {
			rc = problem(c, 409, "name", "%s", e.message);
		} else if (r == KERR_INVAL) {
			rc = problem(c, 400, NULL, "%s", e.message);
		} else if (r < 0) {
			rc = db_problem(c, &e);
		} else {
			struct jsonb *b = jsonb_new();
			char loc[128];
			snprintf(loc, sizeof(loc), "/api/v1/tenants/%s", t->id);
			httpd_response_header(c->resp, "Location", loc);
			if (!b) {
				rc = KERR_NOMEM;
			} else {
				/* The tenant's fields at the top, as the seed answered,
				 * and the key, shown this once. */
				jsonb_obj(b);
				tenant_fields(c->a, b, t);
				jsonb_kstr(b, "api_key", key);
				jsonb_kstr(b, "api_key_id", id);
				jsonb_obj_end(b);
				rc = reply(c, 201, b);
			}
			log_info(LOGGER, "tenant created", "tenant", t->id, "by", c->who.sub, NULL);
			api_events_publish(c->a->events, "tenant", "created", t->id, "", t->id, NULL, NULL);
			OPENSSL_cleanse(key, sizeof(key));
			tenant_free(t);
		}
	}
	api_body_free(&body);
	return rc;
}

static int h_tenant_get(struct ctx *c)
{
	const char *id = c->m.params[0];
	int rc = 0;
	if (!allowed(c, id, false, "tenant", id, &rc))
		return rc;
	struct db *db = api_db(c, &rc);
	if (!db)
		return rc;
	struct tenant *t = NULL;
	struct kerr e = {0};
	int r = tenant_get(db, id, &t, &e);
	if (r == KERR_NOT_FOUND)
		return not_found(c, "tenant", id);
	if (r < 0)
		return db_problem(c, &e);
	struct jsonb *b = jsonb_new();
	if (!b) {
		tenant_free(t);
		return KERR_NOMEM;
	}
	tenant_json(c->a, b, t);
	tenant_free(t);
	return reply(c, 200, b);
}

static int h_tenant_delete(struct ctx *c)
{
	const char *id = c->m.params[0];
	int rc = 0;
	if (!allowed(c, id, true, "tenant", id, &rc))
		return rc;
	struct db *db = api_db(c, &rc);
	if (!db)
		return rc;
	struct kerr e = {0};
	struct tenant *t = NULL;
	int r = tenant_mark_deleted(db, id, &e);
	if (r == KERR_NOT_FOUND)
		return not_found(c, "tenant", id);
	if (r == 0)
		r = auth_key_revoke_all(db, id, NULL, &e);
	if (r == 0)
		r = tenant_get(db, id, &t, &e);
	if (r == KERR_NOT_FOUND) /* deleted meanwhile by the reconciler */
		return not_found(c, "tenant", id);
	if (r < 0)
		return db_problem(c, &e);
	log_info(LOGGER, "tenant marked for deletion", "tenant", id, "by", c->who.sub, NULL);
	api_events_publish(c->a->events, "tenant", "deleting", id, "", id, NULL, NULL);
	struct jsonb *b = jsonb_new();
	if (!b) {
		tenant_free(t);
		return KERR_NOMEM;
	}
	tenant_json(c->a, b, t);
	tenant_free(t);
	return reply(c, 202, b);
}

/* ---- keys ------------------------------------------------------------------------------------ */

static int h_keys_get(struct ctx *c)
{
	const char *id = c->m.params[0];
	int rc = 0;
	if (!allowed(c, id, false, "tenant", id, &rc))
		return rc;
	struct db *db = api_db(c, &rc);
	if (!db)
		return rc;
	struct kerr e = {0};
	struct tenant *t = NULL;
	int r = tenant_get(db, id, &t, &e);
	tenant_free(t);
	if (r == KERR_NOT_FOUND)
		return not_found(c, "tenant", id);
	PGresult *res = NULL;
	const char *params[1] = {id};
	if (r == 0)
		r = db_exec_params(db,
				   "SELECT id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
				   "coalesce(to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') "
				   "FROM api_credentials WHERE tenant_id = $1 AND kind = 'tenant_key' ORDER BY created_at, id",
				   1, params, &res, &e);
	if (r < 0)
		return db_problem(c, &e);
	struct jsonb *b = jsonb_new();
	if (!b) {
		PQclear(res);
		return KERR_NOMEM;
	}
	jsonb_obj(b);
	jsonb_key(b, "items");
	jsonb_arr(b);
	for (int i = 0; i < PQntuples(res); i++) {
		jsonb_obj(b);
		jsonb_kstr(b, "id", PQgetvalue(res, i, 0));
		jsonb_kstr(b, "created_at", PQgetvalue(res, i, 1));
		jsonb_key(b, "revoked_at");
		if (*PQgetvalue(res, i, 2))
			jsonb_str(b, PQgetvalue(res, i, 2));
		else
			jsonb_null(b);
		jsonb_obj_end(b);
	}
	jsonb_arr_end(b);
	jsonb_obj_end(b);
	PQclear(res);
	return reply(c, 200, b);
}

static int h_keys_post(struct ctx *c)
{
	const char *id = c->m.params[0];
	int rc = 0;
	if (!allowed(c, id, false, "tenant", id, &rc))
		return rc;
	struct db *db = api_db(c, &rc);
	if (!db)
		return rc;
	struct kerr e = {0};
	struct tenant *t = NULL;
	char key[AUTH_KEY_MAX], kid[AUTH_KEY_ID_LEN + 1];
	int r = tenant_get(db, id, &t, &e);
	if (r == 0 && t->status != TENANT_ACTIVE)
		r = KERR_NOT_FOUND;
	tenant_free(t);
	if (r == 0)
		r = auth_key_create(db, id, true, key, sizeof(key), kid, sizeof(kid), &e);
	if (r == KERR_NOT_FOUND)
		return not_found(c, "tenant", id);
	if (r < 0)
		return db_problem(c, &e);
	log_info(LOGGER, "tenant API key rotated", "tenant", id, "id", kid, "by", c->who.sub, NULL);
	struct jsonb *b = jsonb_new();
	if (b) {
		jsonb_obj(b);
		jsonb_kstr(b, "tenant_id", id);
		jsonb_kstr(b, "api_key", key);
		jsonb_kstr(b, "api_key_id", kid);
		jsonb_obj_end(b);
	}
	OPENSSL_cleanse(key, sizeof(key));
	return b ? reply(c, 201, b) : KERR_NOMEM;
}

static int h_keys_delete(struct ctx *c)
{
	const char *id = c->m.params[0];
	int rc = 0;
	if (!allowed(c, id, false, "tenant", id, &rc))
		return rc;
	struct db *db = api_db(c, &rc);
	if (!db)
		return rc;
	struct kerr e = {0};
	struct tenant *t = NULL;
	int n = 0, r = tenant_get(db, id, &t, &e);
	tenant_free(t);
	if (r == KERR_NOT_FOUND)
		return not_found(c, "tenant", id);
	if (r == 0)
		r = auth_key_revoke_all(db, id, &n, &e);
	if (r < 0)
		return db_problem(c, &e);
	log_info(LOGGER, "tenant API keys revoked", "tenant", id, "by", c->who.sub, NULL);
	struct jsonb *b = jsonb_new();
	if (!b)
		return KERR_NOMEM;
	jsonb_obj(b);
	jsonb_kstr(b, "tenant_id", id);
	jsonb_kint(b, "revoked", n);
	jsonb_obj_end(b);
	return reply(c, 200, b);
}

/* ---- workloads ---------------------------------------------------------------------------------- */

/* A workload and its tenant, sorted together. */
struct tenant_obj {
	struct kobj *o;
	char tenant[64];
};

static int cmp_tenant_obj(const void *x, const void *y)
{
	return strcmp(((const struct tenant_obj *)x)->o->key, ((const struct tenant_obj *)y)->o->key);
}

/* Workloads (ComputeRequests in tenant namespaces) visible to the caller,
 * of tenant only when it is not NULL, sorted by key. Each object's tenant
 * is its namespace's label, copied into tenants[i]. */
static int visible_workloads(struct ctx *c, const char *tenant, struct kobj ***out, char (**tenants)[64], size_t *n)
{
	struct kobj **all = NULL;
	size_t na = 0, k = 0;
	struct store *s = informer_store(c->a->crs);
	int rc;
	if (tenant) {
		char ns[TENANT_NS_MAX];
		if (tenant_namespace_name(tenant, ns, sizeof(ns)) < 0) {
			*out = NULL;
			*tenants = NULL;
			*n = 0;
			return 0;
		}
		rc = store_by_index(s, "namespace", ns, &all, &na);
	} else {
		rc = store_list(s, &all, &na);
	}
	if (rc < 0)
		return rc;
	char(*ts)[64] = na ? malloc(na * sizeof(*ts)) : NULL;
	if (na && !ts) {
		store_list_free(all, na);
		return KERR_NOMEM;
	}
	for (size_t i = 0; i < na; i++) {
		char t[64];
		if (ns_tenant(c->a, all[i]->ns, t, sizeof(t)) && (!tenant || strcmp(t, tenant) == 0) &&
		    auth_decide(&c->who, t, false) == AUTH_ALLOW) {
			all[k] = all[i];
			memcpy(ts[k], t, sizeof(t));
			k++;
		} else {
			kobj_unref(all[i]);
		}
	}
	/* Sort objects and their tenants together by key. */
	struct tenant_obj *pairs = k ? malloc(k * sizeof(*pairs)) : NULL;
	if (k && !pairs) {
		store_list_free(all, k);
		free(ts);
		return KERR_NOMEM;
	}
	for (size_t i = 0; i < k; i++) {
		pairs[i].o = all[i];
		memcpy(pairs[i].tenant, ts[i], sizeof(pairs[i].tenant));
	}
	if (k)
		qsort(pairs, k, sizeof(*pairs), cmp_tenant_obj);
	for (size_t i = 0; i < k; i++) {
		all[i] = pairs[i].o;
		memcpy(ts[i], pairs[i].tenant, sizeof(ts[i]));
	}
	free(pairs);
	*out = all;
	*tenants = ts;
	*n = k;
	return 0;
}

static int list_workloads(struct ctx *c, const char *tenant)
{
	struct kobj **objs = NULL;
	char(*ts)[64] = NULL;
	size_t n = 0;
	int rc = visible_workloads(c, tenant, &objs, &ts, &n);
	if (rc < 0)
		return rc;
	const char **keys = n ? malloc(n * sizeof(*keys)) : NULL;
	if (n && !keys) {
		store_list_free(objs, n);
		free(ts);
		return KERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++)
		keys[i] = objs[i]->key;
	size_t start, end;
	char next[API_CONTINUE_MAX];
	if (!page_keys(c, keys, n, &start, &end, next, &rc)) {
		struct jsonb *b = jsonb_new();
		if (!b) {
			rc = KERR_NOMEM;
		} else {
			jsonb_obj(b);
			jsonb_key(b, "items");
			jsonb_arr(b);
			for (size_t i = start; i < end; i++)
				workload_json(b, (const struct kcomputerequest *)objs[i], ts[i]);
			end_list(b, next);
			rc = reply(c, 200, b);
		}
	}
	free(keys);
	free(ts);
	store_list_free(objs, n);
	return rc;
}

/* ?tenant= of a list, which the caller must be allowed to read. 1 if
 * present (in tenant), 0 if absent, -1 with the refusal answered in *rc. */
static int tenant_param(struct ctx *c, char tenant[API_PARAM_MAX], int *rc)
{
	int n = httpd_query_param(c->req, "tenant", tenant, API_PARAM_MAX);
	if (n == KERR_NOT_FOUND)
		return 0;
	if (n < 0) {
		*rc = problem(c, 400, "tenant", "tenant must be a tenant id");
		return -1;
	}
	if (tenant_validate_name(tenant, NULL) < 0) {
		*rc = not_found(c, "tenant", tenant);
		return -1;
	}
	if (!allowed(c, tenant, false, "tenant", tenant, rc))
		return -1;
	return 1;
}

static int h_workloads_get(struct ctx *c)
{
	char tenant[API_PARAM_MAX];
	int rc = 0;
	int n = tenant_param(c, tenant, &rc);
	if (n < 0)
		return rc;
	return list_workloads(c, n ? tenant : NULL);
}

/* The tenant's own existence, from the database; 0, or answered. */
static int tenant_exists(struct ctx *c, const char *id, bool active, int *rc)
{
	struct db *db = api_db(c, rc);
	if (!db)
		return 1;
	struct tenant *t = NULL;
	struct kerr e = {0};
	int r = tenant_get(db, id, &t, &e);
	if (r == 0 && active && t->status != TENANT_ACTIVE)
		r = KERR_NOT_FOUND;
	tenant_free(t);
	if (r == KERR_NOT_FOUND) {
		*rc = not_found(c, "tenant", id);
		return 1;
	}
	if (r < 0) {
		*rc = db_problem(c, &e);
		return 1;
	}
	return 0;
}

static int h_tenant_workloads_get(struct ctx *c)
{
	const char *id = c->m.params[0];
	int rc = 0;
	if (!allowed(c, id, false, "tenant", id, &rc) || tenant_exists(c, id, false, &rc))
		return rc;
	return list_workloads(c, id);
}

/* The cached workload {name} of tenant {id}, if the caller may see it;
 * NULL with 404 answered otherwise. */
static struct kobj *find_workload(struct ctx *c, int *rc)
{
	const char *id = c->m.params[0], *name = c->m.params[1];
	char ns[TENANT_NS_MAX], key[TENANT_NS_MAX + API_PARAM_MAX], t[64];
	if (!allowed(c, id, false, "workload", name, rc))
		return NULL;
	struct kobj *o = NULL;
	if (tenant_namespace_name(id, ns, sizeof(ns)) == 0 &&
	    snprintf(key, sizeof(key), "%s/%s", ns, name) < (int)sizeof(key))
		o = store_get(informer_store(c->a->crs), key);
	/* The object's tenant decides, not the path: a namespace that is not
	 * (or no longer) labelled for {id} holds nothing of {id}'s. */
	if (o && (!ns_tenant(c->a, o->ns, t, sizeof(t)) || strcmp(t, id) != 0 ||
		  auth_decide(&c->who, t, false) != AUTH_ALLOW)) {
		kobj_unref(o);
		o = NULL;
	}
	if (!o)
		*rc = not_found(c, "workload", name);
	return o;
}

static int h_tenant_workload_get(struct ctx *c)
{
	int rc = 0;
	struct kobj *o = find_workload(c, &rc);
	if (!o)
		return rc;
	struct jsonb *b = jsonb_new();
	if (b)
		workload_json(b, (const struct kcomputerequest *)o, c->m.params[0]);
	kobj_unref(o);
	return b ? reply(c, 200, b) : KERR_NOMEM;
}

/* Answer a failed apiserver call. */
static int kube_problem(struct ctx *c, int code, const struct kerr *e, const char *what)
{
	switch (code) {
	case KERR_ALREADY_EXISTS:
		return problem(c, 409, "name", "%s already exists", what);
	case KERR_CONFLICT:
		return problem(c, 409, NULL, "%s changed meanwhile; try again (%s)", what, e->message);
	case KERR_INVALID:
		return problem(c, 422, NULL, "the apiserver refused %s: %s", what, e->message);
	case KERR_NOT_FOUND:
		return problem(c, 404, NULL, "%s does not exist (or its tenant namespace is not ready yet)", what);
	default:
		log_warn(LOGGER, "apiserver request failed", "route", c->m.pattern, "error", e->message, NULL);
		return problem(c, 502, NULL, "the Kubernetes apiserver did not accept the request: %s", e->message);
	}
}

/* A DNS-1123 subdomain of at most 253 characters: what Kubernetes accepts
 * as an object name, and safe in a URL path. */
static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!(islower(ch) || isdigit(ch) || ch == '-' || ch == '.'))
			return false;
	}
	return true;
}

static int h_tenant_workloads_post(struct ctx *c)
{
	static const struct api_field fields[] = {
		{"name", API_FIELD_STRING, true},    {"image", API_FIELD_STRING, true},
		{"cpu", API_FIELD_STRING, true},     {"memory", API_FIELD_STRING, true},
		{"replicas", API_FIELD_INT, false},  {"autoscaling", API_FIELD_OBJECT, false},
	};
	static const struct api_field as_fields[] = {
		{"minReplicas", API_FIELD_INT, false},
		{"maxReplicas", API_FIELD_INT, false},
		{"targetCPUUtilizationPercentage", API_FIELD_INT, false},
		{"targetMemoryUtilizationPercentage", API_FIELD_INT, false},
	};
	const char *id = c->m.params[0];
	int rc = 0;
	if (!allowed(c, id, false, "tenant", id, &rc))
		return rc;
	struct api_body body = {0}, as = {0};
	char field[128];
	struct kerr e = {0};
	if (parse_body(c, fields, 6, &body, &rc)) {
		api_body_free(&body);
		return rc;
	}
	if (body.v[5].present &&
	    api_object_parse(body.v[5].obj, "autoscaling", as_fields, 4, &as, field, sizeof(field), &e) < 0) {
		rc = problem(c, 400, field, "%s", e.message);
		goto out;
	}
	const char *name = body.v[0].str;
	if (!valid_name(name) || strlen(name) > 56) {
		/* 56: the Deployment is nimbus-<name>, at most 63. */
		rc = problem(c, 400, "name", "name must be lower-case letters, digits, '-' and '.', starting and "
					     "ending with a letter or digit, at most 56 characters");
		goto out;
	}
	if (body.v[4].present && (body.v[4].num < 0 || body.v[4].num > 1000)) {
		rc = problem(c, 400, "replicas", "replicas must be from 0 to 1000");
		goto out;
	}
	if (tenant_exists(c, id, true, &rc))
		goto out;
	char ns[TENANT_NS_MAX], path[512];
	tenant_namespace_name(id, ns, sizeof(ns));
	struct jsonb *b = jsonb_new();
	if (!b) {
		rc = KERR_NOMEM;
		goto out;
	}
	jsonb_obj(b);
	jsonb_kstr(b, "apiVersion", "nimbus.io/v1");
	jsonb_kstr(b, "kind", "ComputeRequest");
	jsonb_key(b, "metadata");
	jsonb_obj(b);
	jsonb_kstr(b, "name", name);
	jsonb_kstr(b, "namespace", ns);
	jsonb_obj_end(b);
	jsonb_key(b, "spec");
	jsonb_obj(b);
	jsonb_kstr(b, "tenantId", id);
	jsonb_kstr(b, "image", body.v[1].str);
	jsonb_kstr(b, "cpu", body.v[2].str);
	jsonb_kstr(b, "memory", body.v[3].str);
	if (body.v[4].present)
		jsonb_kint(b, "replicas", body.v[4].num);
	if (body.v[5].present) {
		jsonb_key(b, "autoscaling");
		jsonb_obj(b);
		for (size_t i = 0; i < 4; i++) {
			if (as.v[i].present)
				jsonb_kint(b, as_fields[i].name, as.v[i].num);
		}
		jsonb_obj_end(b);
	}
	jsonb_obj_end(b);
	jsonb_obj_end(b);
	const char *doc;
	size_t len;
	if ((rc = jsonb_result(b, &doc, &len, &e)) < 0) {
		jsonb_free(b);
		goto out;
	}
	snprintf(path, sizeof(path), "/apis/nimbus.io/v1/namespaces/%s/computerequests", ns);
	struct kube_response r;
	int kr = kube_client_request(c->a->client, "POST", path, NULL, doc, len, &r, &e);
	jsonb_free(b);
	if (kr < 0) {
		char what[320];
		snprintf(what, sizeof(what), "workload %s", name);
		rc = kube_problem(c, kr, &e, what);
	} else {
		struct kobj *o = NULL;
		struct kerr de = {0};
		if (kind_decode_json(&kind_computerequest, r.body, r.len, &o, &de) < 0) {
			rc = problem(c, 502, NULL, "the apiserver's answer could not be read: %s", de.message);
		} else {
			char loc[400];
			snprintf(loc, sizeof(loc), "/api/v1/tenants/%s/workloads/%s", id, name);
			httpd_response_header(c->resp, "Location", loc);
			struct jsonb *out = jsonb_new();
			if (out)
				workload_json(out, (const struct kcomputerequest *)o, id);
			rc = out ? reply(c, 201, out) : KERR_NOMEM;
			log_info(LOGGER, "workload created", "tenant", id, "workload", name, "by", c->who.sub, NULL);
		}
		kobj_unref(o);
	}
	kube_response_free(&r);
out:
	api_body_free(&as);
	api_body_free(&body);
	return rc;
}

static int h_tenant_workload_patch(struct ctx *c)
{
	static const struct api_field fields[] = {{"replicas", API_FIELD_INT, true}};
	int rc = 0;
	struct kobj *o = find_workload(c, &rc);
	if (!o)
		return rc;
	struct api_body body = {0};
	struct kerr e = {0};
	/* application/json or application/merge-patch+json: both parse the same. */
	if (parse_body(c, fields, 1, &body, &rc))
		goto out;
	int64_t n = body.v[0].num;
	if (n < 0 || n > 1000) {
		rc = problem(c, 400, "replicas", "replicas must be from 0 to 1000");
		goto out;
	}
	char path[600], patch[96];
	snprintf(path, sizeof(path), "/apis/nimbus.io/v1/namespaces/%s/computerequests/%s/scale", o->ns, o->name);
	int len = snprintf(patch, sizeof(patch), "{\"spec\":{\"replicas\":%lld}}", (long long)n);
	struct kube_response r;
	int kr = kube_client_request(c->a->client, "PATCH", path, KUBE_CONTENT_MERGE_PATCH, patch, (size_t)len, &r, &e);
	kube_response_free(&r);
	if (kr < 0) {
		char what[320];
		snprintf(what, sizeof(what), "workload %s", o->name);
		rc = kube_problem(c, kr, &e, what);
		goto out;
	}
	log_info(LOGGER, "workload scaled", "tenant", c->m.params[0], "workload", o->name, "by", c->who.sub, NULL);
	struct jsonb *b = jsonb_new();
	if (!b) {
		rc = KERR_NOMEM;
		goto out;
	}
	jsonb_obj(b);
	jsonb_kstr(b, "tenant", c->m.params[0]);
	jsonb_kstr(b, "namespace", o->ns);
	jsonb_kstr(b, "name", o->name);
	jsonb_kint(b, "replicas", n);
	jsonb_obj_end(b);
	rc = reply(c, 200, b);
out:
	api_body_free(&body);
	kobj_unref(o);
	return rc;
}

static int h_tenant_workload_delete(struct ctx *c)
{
	int rc = 0;
	struct kobj *o = find_workload(c, &rc);
	if (!o)
		return rc;
	char path[600];
	struct kerr e = {0};
	snprintf(path, sizeof(path), "/apis/nimbus.io/v1/namespaces/%s/computerequests/%s", o->ns, o->name);
	int kr = kube_delete(c->a->client, path, &e);
	if (kr < 0) {
		char what[320];
		snprintf(what, sizeof(what), "workload %s", o->name);
		rc = kube_problem(c, kr, &e, what);
	} else {
		log_info(LOGGER, "workload deleted", "tenant", c->m.params[0], "workload", o->name, "by", c->who.sub, NULL);
		struct jsonb *b = jsonb_new();
		if (!b) {
			rc = KERR_NOMEM;
		} else {
			jsonb_obj(b);
			jsonb_kstr(b, "tenant", c->m.params[0]);
			jsonb_kstr(b, "namespace", o->ns);
			jsonb_kstr(b, "name", o->name);
			jsonb_kstr(b, "status", "deleting");
			jsonb_obj_end(b);
			rc = reply(c, 202, b);
		}
	}
	kobj_unref(o);
	return rc;
}

/* ---- scheduler and autoscaler views -------------------------------------------------------------- */

static int h_scheduler(struct ctx *c)
{
	int rc = 0;
	if (!allowed(c, NULL, true, "", "", &rc))
		return rc;
	struct kobj **nodes = NULL;
	size_t nn = 0;
	if ((rc = store_list(informer_store(c->a->nodes), &nodes, &nn)) < 0)
		return rc;
	if (nn)
		qsort(nodes, nn, sizeof(*nodes), cmp_kobj_key);
	struct jsonb *b = jsonb_new();
	if (!b) {
		store_list_free(nodes, nn);
		return KERR_NOMEM;
	}
	jsonb_obj(b);
	jsonb_kstr(b, "scheduler", SCHEDULER_DEFAULT_NAME);
	jsonb_kint(b, "pending", c->a->scheduler ? (int64_t)scheduler_pending(c->a->scheduler) : 0);
	jsonb_key(b, "nodes");
	jsonb_arr(b);
	for (size_t i = 0; i < nn; i++) {
		const struct knode *n = (const struct knode *)nodes[i];
		struct kobj **pods = NULL;
		size_t np = 0, running = 0;
		struct kresources req = {0, 0};
		if (store_by_index(informer_store(c->a->pods), SCHEDULER_NODE_INDEX, n->meta.name, &pods, &np) == 0) {
			for (size_t k = 0; k < np; k++) {
				const struct kpod *p = (const struct kpod *)pods[k];
				/* Finished pods hold nothing, as the scheduler counts. */
				if (p->phase == KPOD_SUCCEEDED || p->phase == KPOD_FAILED)
					continue;
				req.cpu_milli += p->requests.cpu_milli;
				req.memory += p->requests.memory;
				running++;
			}
			store_list_free(pods, np);
		}
		jsonb_obj(b);
		jsonb_kstr(b, "name", n->meta.name);
		jsonb_kbool(b, "ready", n->ready == KCOND_TRUE);
		jsonb_kbool(b, "unschedulable", n->unschedulable);
		jsonb_kint(b, "pods", (int64_t)running);
		jsonb_key(b, "allocatable");
		jsonb_obj(b);
		kint_or_null(b, "cpu_milli", n->allocatable.cpu_milli);
		kint_or_null(b, "memory_bytes", n->allocatable.memory);
		kint_or_null(b, "pods", n->allocatable.pods);
		jsonb_obj_end(b);
		jsonb_key(b, "requested");
		jsonb_obj(b);
		jsonb_kint(b, "cpu_milli", req.cpu_milli);
		jsonb_kint(b, "memory_bytes", req.memory);
		jsonb_obj_end(b);
		jsonb_key(b, "requested_fraction");
		jsonb_obj(b);
		jsonb_key(b, "cpu");
		if (n->allocatable.cpu_milli > 0)
			jsonb_double(b, (double)req.cpu_milli / (double)n->allocatable.cpu_milli);
		else
			jsonb_null(b);
		jsonb_key(b, "memory");
		if (n->allocatable.memory > 0)
			jsonb_double(b, (double)req.memory / (double)n->allocatable.memory);
		else
			jsonb_null(b);
		jsonb_obj_end(b);
		struct kresources use;
		int64_t age;
		jsonb_key(b, "usage");
		if (c->a->scheduler && scheduler_node_usage(c->a->scheduler, n->meta.name, &use, &age)) {
			jsonb_obj(b);
			jsonb_kint(b, "cpu_milli", use.cpu_milli);
			jsonb_kint(b, "memory_bytes", use.memory);
			jsonb_kint(b, "age_ms", age);
			jsonb_key(b, "cpu_fraction");
			if (n->allocatable.cpu_milli > 0)
				jsonb_double(b, (double)use.cpu_milli / (double)n->allocatable.cpu_milli);
			else
				jsonb_null(b);
			jsonb_obj_end(b);
		} else {
			jsonb_null(b);
		}
		jsonb_obj_end(b);
	}
	jsonb_arr_end(b);
	store_list_free(nodes, nn);

	enum { NRECENT = 50 };
	struct api_placement *pl = malloc(NRECENT * sizeof(*pl));
	struct scheduler_placement *sp = malloc(SCHEDULER_RECENT_MAX * sizeof(*sp));
	if (!pl || !sp) {
		free(pl);
		free(sp);
		jsonb_free(b);
		return KERR_NOMEM;
	}
	size_t npl = api_events_placements(c->a->events, pl, NRECENT);
	size_t nsp = c->a->scheduler ? scheduler_recent(c->a->scheduler, sp, SCHEDULER_RECENT_MAX) : 0;
	jsonb_key(b, "recent_placements");
	jsonb_arr(b);
	for (size_t i = 0; i < npl; i++) {
		char when[32];
		rfc3339(pl[i].time_ms / 1000, when, sizeof(when));
		jsonb_obj(b);
		jsonb_kstr(b, "pod", pl[i].pod);
		jsonb_kstr(b, "node", pl[i].node);
		jsonb_kstr(b, "tenant", pl[i].tenant);
		jsonb_kstr(b, "scheduler", pl[i].scheduler);
		jsonb_kstr(b, "time", when);
		/* The score is known only to the replica that bound the pod. */
		jsonb_key(b, "score");
		size_t k = 0;
		while (k < nsp && (strcmp(sp[k].pod, pl[i].pod) != 0 || strcmp(sp[k].node, pl[i].node) != 0))
			k++;
		if (k < nsp)
			jsonb_int(b, sp[k].score);
		else
			jsonb_null(b);
		jsonb_obj_end(b);
	}
	jsonb_arr_end(b);
	jsonb_obj_end(b);
	free(pl);
	free(sp);
	return reply(c, 200, b);
}

static int h_autoscaler(struct ctx *c)
{
	struct kobj **objs = NULL;
	char(*ts)[64] = NULL;
	size_t n = 0, k = 0;
	int rc = visible_workloads(c, NULL, &objs, &ts, &n);
	if (rc < 0)
		return rc;
	const char **keys = n ? malloc(n * sizeof(*keys)) : NULL;
	size_t *idx = n ? malloc(n * sizeof(*idx)) : NULL;
	if (n && (!keys || !idx)) {
		rc = KERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (((const struct kcomputerequest *)objs[i])->has_autoscaling) {
			keys[k] = objs[i]->key;
			idx[k++] = i;
		}
	}
	size_t start, end;
	char next[API_CONTINUE_MAX];
	if (page_keys(c, keys, k, &start, &end, next, &rc))
		goto out;
	struct jsonb *b = jsonb_new();
	if (!b) {
		rc = KERR_NOMEM;
		goto out;
	}
	jsonb_obj(b);
	jsonb_key(b, "items");
	jsonb_arr(b);
	for (size_t i = start; i < end; i++) {
		const struct kcomputerequest *cr = (const struct kcomputerequest *)objs[idx[i]];
		jsonb_obj(b);
		jsonb_kstr(b, "tenant", ts[idx[i]]);
		jsonb_kstr(b, "namespace", cr->meta.ns);
		jsonb_kstr(b, "name", cr->meta.name);
		jsonb_kint(b, "replicas", cr->replicas < 0 ? 1 : cr->replicas);
		jsonb_key(b, "spec");
		autoscaling_spec_json(b, cr);
		jsonb_key(b, "status");
		autoscaling_status_json(b, cr);
		jsonb_obj_end(b);
	}
	end_list(b, next);
	rc = reply(c, 200, b);
out:
	free(keys);
	free(idx);
	free(ts);
	store_list_free(objs, n);
	return rc;
}

static int h_openapi(struct ctx *c)
{
	size_t len;
	const char *doc = api_openapi_json(&len);
	set_status(c, 200);
	return httpd_response_body(c->resp, doc, len);
}

/* The websocket route answers plain GETs with how to connect. */
static int h_events_http(struct ctx *c)
{
	return problem(c, 400, NULL, "GET /api/v1/events is a websocket: connect with Upgrade: websocket and "
				     "Authorization: Bearer <token>, or (from a browser) with the subprotocols "
				     "\"nimbus\" and \"ticket.<ticket>\" from POST /api/v1/events/ticket; "
				     "optionally ?since=<seq>&stream=<id>");
}

/* A ticket for the event stream, for browsers (see auth.h). */
static int h_events_ticket(struct ctx *c)
{
	char ticket[AUTH_TICKET_MAX], exp_s[32];
	int64_t exp;
	struct kerr e = {0};
	int rc = auth_ticket_issue(c->a->cfg->jwt_secret, &c->who, now_s(), ticket, sizeof(ticket), &exp, &e);
	if (rc < 0)
		return problem(c, 400, NULL, "%s", e.message);
	rfc3339(exp, exp_s, sizeof(exp_s));
	struct jsonb *b = jsonb_new();
	if (!b)
		return KERR_NOMEM;
	jsonb_obj(b);
	jsonb_kstr(b, "ticket", ticket);
	jsonb_kint(b, "expires_in", exp - now_s());
	jsonb_kstr(b, "expires_at", exp_s);
	jsonb_obj_end(b);
	return reply(c, 200, b);
}

/* ---- billing ----------------------------------------------------------------------------------- */

static void time_ms_json(struct jsonb *b, const char *key, int64_t ms)
{
	char buf[BILLING_TIME_MAX];
	jsonb_key(b, key);
	if (ms > 0 && billing_format_time(ms, buf, sizeof(buf)) > 0)
		jsonb_str(b, buf);
	else
		jsonb_null(b);
}

static void dec_json(struct jsonb *b, const char *key, struct billing_dec v)
{
	char buf[BILLING_DEC_MAX];
	jsonb_kstr(b, key, billing_dec_format(v, buf, sizeof(buf)) > 0 ? buf : "0.000000");
}

static int h_usage(struct ctx *c)
{
	int rc = 0;
	struct db *db = api_db(c, &rc);
	if (!db)
		return rc;
	struct billing_tenant_usage *u = NULL;
	size_t n = 0;
	struct kerr e = {0};
	if (billing_usage(db, &u, &n, &e) < 0)
		return db_problem(c, &e);
	struct jsonb *b = jsonb_new();
	if (!b) {
		free(u);
		return KERR_NOMEM;
	}
	jsonb_obj(b);
	jsonb_key(b, "items");
	jsonb_arr(b);
	for (size_t i = 0; i < n; i++) {
		if (auth_decide(&c->who, u[i].tenant, false) != AUTH_ALLOW)
			continue;
		jsonb_obj(b);
		jsonb_kstr(b, "tenant_id", u[i].tenant);
		dec_json(b, "CPUMilliSeconds", u[i].cpu_milli_seconds);
		dec_json(b, "MemoryMBSeconds", u[i].memory_mb_seconds);
		time_ms_json(b, "since", u[i].since_ms);
		time_ms_json(b, "until", u[i].until_ms);
		jsonb_obj_end(b);
	}
	jsonb_arr_end(b);
	jsonb_obj_end(b);
	free(u);
	return reply(c, 200, b);
}

/* ?name= as a time: RFC 3339, or a date (midnight UTC). 1 if present, 0 if
 * absent, -1 with a 400 answered. */
static int time_param(struct ctx *c, const char *name, int64_t *ms, int *rc)
{
	char v[64], full[80];
	int n = httpd_query_param(c->req, name, v, sizeof(v));
	if (n == KERR_NOT_FOUND)
		return 0;
	struct kerr e = {0};
	const char *s = v;
	if (n == 10) {
		snprintf(full, sizeof(full), "%sT00:00:00Z", v);
		s = full;
	}
	if (n < 0 || billing_parse_time(s, strlen(s), ms, &e) < 0) {
		*rc = problem(c, 400, name, "%s must be a date (2026-11-01) or an RFC 3339 time (2026-11-01T00:00:00Z)",
			      name);
		return -1;
	}
	return 1;
}

/* Buckets one history answer may hold: a day by the minute. */
#define HISTORY_MAX_BUCKETS 1440
#define HISTORY_DEFAULT_RANGE_S 3600
#define HISTORY_DEFAULT_STEP_S 60

/* ?step= as seconds: "90", "90s", "5m", "1h". 1 if present, 0 if absent,
 * -1 with a 400 answered. */
static int step_param(struct ctx *c, int64_t *step_s, int *rc)
{
	char v[32];
	int n = httpd_query_param(c->req, "step", v, sizeof(v));
	if (n == KERR_NOT_FOUND)
		return 0;
	char *end = v;
	long long x = n > 0 && v[0] >= '0' && v[0] <= '9' ? strtoll(v, &end, 10) : 0;
	int64_t unit = !strcmp(end, "") || !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") ? 3600 : 0;
	if (n <= 0 || x < 1 || x > 366LL * 24 * 3600 || !unit) {
		*rc = problem(c, 400, "step", "step must be a whole number of seconds, minutes or hours (60, 60s, 5m, 1h)");
		return -1;
	}
	*step_s = (int64_t)x * unit;
	return 1;
}

static int h_usage_history(struct ctx *c)
{
	char tenant[API_PARAM_MAX];
	int rc = 0;
	int n = tenant_param(c, tenant, &rc);
	if (n < 0)
		return rc;
	const char *only = n ? tenant : c->who.role == AUTH_ROLE_ADMIN ? NULL : c->who.tenant_id;
	int64_t from = 0, to = 0, step = HISTORY_DEFAULT_STEP_S;
	int hf = time_param(c, "from", &from, &rc), ht = 0;
	if (hf < 0 || (ht = time_param(c, "to", &to, &rc)) < 0 || step_param(c, &step, &rc) < 0)
		return rc;
	if (!ht)
		to = now_s() * 1000;
	if (!hf)
		from = to - HISTORY_DEFAULT_RANGE_S * 1000;
	if (to <= from)
		return problem(c, 400, "to", "to must be after from");
	if (from <= 0)
		return problem(c, 400, "from", "from must be after 1970-01-01");
	int64_t buckets = (to - from + step * 1000 - 1) / (step * 1000);
	if (buckets > HISTORY_MAX_BUCKETS)
		return problem(c, 400, "step",
			       "from..to in steps of %lld s makes %lld points; at most %d are served: use a step of at "
			       "least %lld s or a shorter range",
			       (long long)step, (long long)buckets, HISTORY_MAX_BUCKETS,
			       (long long)((to - from + HISTORY_MAX_BUCKETS * 1000LL - 1) / (HISTORY_MAX_BUCKETS * 1000LL)));
	struct db *db = api_db(c, &rc);
	if (!db)
		return rc;
	struct billing_usage_point *u = NULL;
	size_t np = 0;
	struct kerr e = {0};
	if (billing_usage_history(db, only, from, to, step, &u, &np, &e) < 0)
		return db_problem(c, &e);
	struct jsonb *b = jsonb_new();
	if (!b) {
		free(u);
		return KERR_NOMEM;
	}
	jsonb_obj(b);
	time_ms_json(b, "from", from);
	time_ms_json(b, "to", to);
	jsonb_kint(b, "step_seconds", step);
	jsonb_key(b, "items");
	jsonb_arr(b);
	/* Scoped by the query (only): a tenant's rows are its own. */
	for (size_t i = 0; i < np; i++) {
		if (i == 0 || strcmp(u[i].tenant, u[i - 1].tenant) != 0) {
			jsonb_obj(b);
			jsonb_kstr(b, "tenant_id", u[i].tenant);
			jsonb_key(b, "points");
			jsonb_arr(b);
		}
		jsonb_obj(b);
		time_ms_json(b, "time", from + u[i].bucket * step * 1000);
		dec_json(b, "CPUMilliSeconds", u[i].cpu_milli_seconds);
		dec_json(b, "MemoryMBSeconds", u[i].memory_mb_seconds);
		jsonb_obj_end(b);
		if (i + 1 == np || strcmp(u[i].tenant, u[i + 1].tenant) != 0) {
			jsonb_arr_end(b);
			jsonb_obj_end(b);
		}
	}
	jsonb_arr_end(b);
	jsonb_obj_end(b);
	free(u);
	return reply(c, 200, b);
}

static int h_invoice(struct ctx *c)
{
	const char *tenant = c->m.params[0];
	int rc = 0;
	if (!allowed(c, tenant, false, "tenant", tenant, &rc))
		return rc;
	int64_t from = 0, to = 0;
	int hf = time_param(c, "from", &from, &rc), ht;
	if (hf < 0 || (ht = time_param(c, "to", &to, &rc)) < 0)
		return rc;
	if (hf != ht)
		return problem(c, 400, hf ? "to" : "from", "give both from and to, or neither (the current month)");
	if (hf && to <= from)
		return problem(c, 400, "to", "to must be after from");
	struct db *db = api_db(c, &rc);
	if (!db)
		return rc;
	/* A tenant that is gone can still have invoices: 404 only for a name
	 * that was never billed and is not a tenant either. */
	struct billing_prices prices;
	struct billing_invoice inv;
	struct kerr e = {0};
	billing_prices_from_config(&prices, c->a->cfg);
	int r = billing_invoice(db, tenant, from, to, &prices, &inv, &e);
	if (r == KERR_INVAL)
		return problem(c, 400, NULL, "%s", e.message);
	if (r < 0)
		return db_problem(c, &e);
	if (billing_dec_cmp(inv.cpu_milli_seconds, billing_dec_from_int(0)) == 0 &&
	    billing_dec_cmp(inv.memory_byte_seconds, billing_dec_from_int(0)) == 0 && !inv.issued) {
		struct tenant *t = NULL;
		r = tenant_get(db, tenant, &t, &e);
		tenant_free(t);
		if (r == KERR_NOT_FOUND)
			return not_found(c, "tenant", tenant);
		if (r < 0)
			return db_problem(c, &e);
	}
	struct jsonb *b = jsonb_new();
	if (!b)
		return KERR_NOMEM;
	jsonb_obj(b);
	jsonb_kstr(b, "tenant_id", inv.tenant);
	time_ms_json(b, "period_start", inv.period_start_ms);
	time_ms_json(b, "period_end", inv.period_end_ms);
	jsonb_kstr(b, "currency", inv.charges.currency);
	dec_json(b, "cpu_milli_seconds", inv.cpu_milli_seconds);
	dec_json(b, "memory_byte_seconds", inv.memory_byte_seconds);
	jsonb_key(b, "lines");
	jsonb_arr(b);
	for (int i = 0; i < BILLING_ITEM_COUNT; i++) {
		const struct billing_line *l = &inv.charges.lines[i];
		jsonb_obj(b);
		jsonb_kstr(b, "item", l->item);
		jsonb_kstr(b, "unit", l->unit);
		jsonb_kstr(b, "quantity", l->quantity);
		jsonb_kstr(b, "unit_price", l->unit_price);
		jsonb_kstr(b, "amount", l->amount);
		jsonb_kint(b, "amount_minor", l->amount_minor);
		jsonb_obj_end(b);
	}
	jsonb_arr_end(b);
	jsonb_kstr(b, "total", inv.charges.total);
	jsonb_kint(b, "total_minor", inv.charges.total_minor);
	jsonb_kbool(b, "issued", inv.issued);
	time_ms_json(b, "issued_at", inv.issued ? inv.issued_at_ms : 0);
	jsonb_obj_end(b);
	return reply(c, 200, b);
}

/* ---- operations ------------------------------------------------------------------------------- */

struct op {
	struct api_op_info info;
	enum api_route route;
	handler_fn fn;
};

#define OP(m, p, r, f) {{m, p, false}, r, f}
#define PUBLIC_OP(m, p, r, f) {{m, p, true}, r, f}

static const struct op ops[] = {
	PUBLIC_OP("POST", "/api/v1/auth/token", API_R_TOKEN, h_token),
	PUBLIC_OP("POST", "/auth/token", API_R_TOKEN, h_token),
	OP("GET", "/api/v1/tenants", API_R_TENANTS, h_tenants_get),
	OP("GET", "/tenants", API_R_TENANTS, h_tenants_get),
	OP("POST", "/api/v1/tenants", API_R_TENANTS, h_tenants_post),
	OP("POST", "/tenants", API_R_TENANTS, h_tenants_post),
	OP("GET", "/api/v1/tenants/{id}", API_R_TENANT, h_tenant_get),
	OP("GET", "/tenants/{id}", API_R_TENANT, h_tenant_get),
	OP("DELETE", "/api/v1/tenants/{id}", API_R_TENANT, h_tenant_delete),
	OP("DELETE", "/tenants/{id}", API_R_TENANT, h_tenant_delete),
	OP("GET", "/api/v1/tenants/{id}/keys", API_R_KEYS, h_keys_get),
	OP("POST", "/api/v1/tenants/{id}/keys", API_R_KEYS, h_keys_post),
	OP("DELETE", "/api/v1/tenants/{id}/keys", API_R_KEYS, h_keys_delete),
	OP("GET", "/api/v1/tenants/{id}/workloads", API_R_TENANT_WORKLOADS, h_tenant_workloads_get),
	OP("POST", "/api/v1/tenants/{id}/workloads", API_R_TENANT_WORKLOADS, h_tenant_workloads_post),
	OP("GET", "/api/v1/tenants/{id}/workloads/{name}", API_R_TENANT_WORKLOAD, h_tenant_workload_get),
	OP("PATCH", "/api/v1/tenants/{id}/workloads/{name}", API_R_TENANT_WORKLOAD, h_tenant_workload_patch),
	OP("DELETE", "/api/v1/tenants/{id}/workloads/{name}", API_R_TENANT_WORKLOAD, h_tenant_workload_delete),
	OP("GET", "/api/v1/workloads", API_R_WORKLOADS, h_workloads_get),
	OP("GET", "/api/v1/billing/usage", API_R_USAGE, h_usage),
	OP("GET", "/billing/usage", API_R_USAGE, h_usage),
	OP("GET", "/api/v1/billing/invoice/{tenant}", API_R_INVOICE, h_invoice),
	OP("GET", "/billing/invoice/{tenant}", API_R_INVOICE, h_invoice),
	OP("GET", "/api/v1/scheduler", API_R_SCHEDULER, h_scheduler),
	OP("GET", "/api/v1/autoscaler", API_R_AUTOSCALER, h_autoscaler),
	PUBLIC_OP("GET", "/openapi.json", API_R_OPENAPI, h_openapi),
	PUBLIC_OP("GET", "/api/v1/openapi.json", API_R_OPENAPI, h_openapi),
	OP("GET", "/api/v1/events", API_R_EVENTS, h_events_http),
	OP("POST", "/api/v1/events/ticket", API_R_EVENTS_TICKET, h_events_ticket),
	OP("GET", "/api/v1/billing/usage/history", API_R_USAGE_HISTORY, h_usage_history),
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

const struct api_op_info *api_op_at(size_t i) { return i < NOPS ? &ops[i].info : NULL; }

/* ---- the router --------------------------------------------------------------------------------- */

static bool cors_allowed(const struct api *a, const char *origin)
{
	return origin && a->cfg->cors_origin && strcmp(origin, a->cfg->cors_origin) == 0;
}

/* "GET, POST" of the ops on pattern into buf. */
static void allow_list(const char *pattern, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < NOPS; i++) {
		if (strcmp(ops[i].info.pattern, pattern) == 0 && n < cap)
			n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", ops[i].info.method);
	}
	if (n < cap)
		snprintf(buf + n, cap - n, "%sOPTIONS", n ? ", " : "");
}

static int dispatch(struct ctx *c)
{
	const struct httpd_request *req = c->req;
	char allow[96];
	allow_list(c->m.pattern, allow, sizeof(allow));
	if (strcmp(req->method, "OPTIONS") == 0) {
		if (req->origin && !cors_allowed(c->a, req->origin))
			return problem(c, 403, NULL, "cross-origin requests are allowed only from the configured dashboard "
						     "origin (--cors-origin)");
		httpd_response_header(c->resp, "Allow", allow);
		if (req->origin) {
			httpd_response_header(c->resp, "Access-Control-Allow-Methods", allow);
			httpd_response_header(c->resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
			httpd_response_header(c->resp, "Access-Control-Max-Age", "600");
		}
		set_status(c, 204);
		return 0;
	}
	const struct op *op = NULL;
	const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
	for (size_t i = 0; i < NOPS && !op; i++) {
		if (strcmp(ops[i].info.pattern, c->m.pattern) == 0 && strcmp(ops[i].info.method, method) == 0)
			op = &ops[i];
	}
	if (!op) {
		httpd_response_header(c->resp, "Allow", allow);
		return problem(c, 405, NULL, "%s is not served on %s; use %s", req->method, c->m.pattern, allow);
	}
	if (!op->info.public) {
		const char *tok;
		struct kerr e = {0};
		if (auth_bearer(req->authorization, &tok, &e) < 0 ||
		    auth_token_verify(c->a->cfg->jwt_secret, tok, now_s(), &c->who, &e) < 0)
			return problem(c, 401, NULL, "%s", e.message);
	}
	/* A name that cannot be a tenant or an object cannot exist: answer 404
	 * here rather than send it to the database or the apiserver. */
	for (size_t i = 0; i < c->m.nparams; i++) {
		const char *v = c->m.params[i];
		bool is_tenant = i == 0 && c->m.route != API_R_EVENTS;
		if (is_tenant ? tenant_validate_name(v, NULL) < 0 : !valid_name(v))
			return not_found(c, is_tenant ? "tenant" : "workload", v);
	}
	if (strcmp(method, "GET") == 0 && (op->route == API_R_TENANTS || op->route == API_R_USAGE)) {
		/* Keyed by the caller's scope as well, so that a tenant never
		 * gets an answer computed for another scope. */
		int n = snprintf(c->cache_key, sizeof(c->cache_key), "%d?%s|%d|%s", (int)op->route, req->query,
				 (int)c->who.role, c->who.tenant_id);
		if (n > 0 && (size_t)n < sizeof(c->cache_key)) {
			char *body;
			size_t len;
			/* The service thread does not take on a recomputation. */
			int hit = api_cache_get(c->a->cache, c->cache_key, mono_ms(), !c->fast, &body, &len);
			if (hit < 0)
				return hit;
			if (hit) {
				httpd_response_body_take(c->resp, body, len);
				set_status(c, 200);
				return 0;
			}
			c->cache_gen = api_cache_generation(c->a->cache);
			c->cache_fill = true;
		}
	}
	if (c->fast && op->route != API_R_OPENAPI)
		return HTTPD_DEFER;
	return op->fn(c);
}

/* fast: on the service thread (httpd's fast_router), answering refusals,
 * the OpenAPI document and cache hits, and deferring the rest to the
 * workers, which run it all again with fast false. */
static int route(struct api *a, const struct httpd_request *req, struct httpd_response *resp, bool fast)
{
	struct ctx c = {.a = a, .req = req, .resp = resp, .status = 200, .fast = fast};
	bool api_path = strncmp(req->path, "/api/", 5) == 0 || strcmp(req->path, "/api") == 0;
	if (!api_route_match(req->path, &c.m)) {
		if (!api_path)
			return HTTPD_PASS;
		c.m.pattern = "unmatched";
	}
	int64_t t0 = mono_ms();
	if (cors_allowed(a, req->origin)) {
		httpd_response_header(resp, "Access-Control-Allow-Origin", req->origin);
		httpd_response_header(resp, "Vary", "Origin");
	}
	int rc = strcmp(c.m.pattern, "unmatched") == 0 ? problem(&c, 404, NULL, "no API route %s", req->path)
						       : dispatch(&c);
	if (rc == HTTPD_DEFER)
		return rc;
	if (rc < 0)
		c.status = 500;
	/* A write through this replica may change what cached reads answered;
	 * other replicas' writes show within API_CACHE_TTL_MS. */
	if (c.status < 400 && c.m.route != API_R_TOKEN && strcmp(req->method, "GET") && strcmp(req->method, "HEAD") &&
	    strcmp(req->method, "OPTIONS"))
		api_cache_invalidate(a->cache);
	char code[8];
	snprintf(code, sizeof(code), "%d", c.status);
	if (a->requests)
		metrics_counter_inc(a->requests, METRICS_LABELS(c.m.pattern, code));
	if (a->duration)
		metrics_histogram_observe(a->duration, (double)(mono_ms() - t0) / 1000.0, METRICS_LABELS(c.m.pattern));
	if (c.db)
		api_db_put(a, c.db);
	return rc;
}

static int router(void *user, const struct httpd_request *req, struct httpd_response *resp)
{
	return route(user, req, resp, false);
}

static int fast_router(void *user, const struct httpd_request *req, struct httpd_response *resp)
{
	return route(user, req, resp, true);
}

/* ---- websocket ----------------------------------------------------------------------------------- */

static int ws_origin_ok(void *user, const char *origin, const char *host)
{
	struct api *a = user;
	if (!origin || cors_allowed(a, origin))
		return 1;
	const char *o = !strncasecmp(origin, "http://", 7) ? origin + 7 : !strncasecmp(origin, "https://", 8) ? origin + 8 : NULL;
	return o && host && !strcasecmp(o, host);
}

/* The "ticket.<ticket>" entry of a Sec-WebSocket-Protocol list into out;
 * false when there is none (or it does not fit). */
static bool ws_ticket_of(const char *protocols, char *out, size_t cap)
{
	for (const char *p = protocols; p && *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		size_t n = strcspn(p, ", \t");
		if (n > 7 && strncmp(p, "ticket.", 7) == 0) {
			if (n - 7 >= cap)
				return false;
			memcpy(out, p + 7, n - 7);
			out[n - 7] = '\0';
			return true;
		}
		p += n;
	}
	return false;
}

static int ws_refuse(const char *remote, const char *why, const char *detail, const char **reason)
{
	log_info(LOGGER, "event stream refused", "remote", remote, "reason", detail ? detail : why, NULL);
	*reason = why;
	return 1;
}

/* Credentials: the Authorization header (programs), or a ticket offered as
 * a subprotocol (browsers, which cannot set headers on a websocket). A
 * token in the URL is refused, so that none ends up in access logs. */
static int ws_on_open(void *user, uint64_t conn, const struct httpd_request *req, const char **reason)
{
	struct api *a = user;
	char scratch[AUTH_TICKET_MAX], since_s[32], stream[32];
	const char *tok = NULL;
	struct kerr e = {0};
	struct auth_claims who;
	int64_t now = now_s();
	if (httpd_query_param(req, "access_token", scratch, sizeof(scratch)) != KERR_NOT_FOUND)
		return ws_refuse(req->remote_addr,
				 "a token in the URL is refused: send Authorization: Bearer, or a ticket "
				 "(POST /api/v1/events/ticket)",
				 NULL, reason);
	if (req->authorization) {
		if (auth_bearer(req->authorization, &tok, &e) < 0 ||
		    auth_token_verify(a->cfg->jwt_secret, tok, now, &who, &e) < 0)
			return ws_refuse(req->remote_addr, "the token was refused (expired or invalid): log in again",
					 e.message, reason);
	} else if (ws_ticket_of(req->ws_protocols, scratch, sizeof(scratch))) {
		if (auth_ticket_verify(a->cfg->jwt_secret, scratch, now, &who, &e) < 0 ||
		    auth_ticket_seen_claim(a->tickets, scratch, who.exp, now, &e) < 0)
			return ws_refuse(req->remote_addr,
					 "the ticket was refused (expired, used or forged): get a new one from "
					 "POST /api/v1/events/ticket",
					 e.message, reason);
	} else {
		return ws_refuse(req->remote_addr,
				 "no credential: send Authorization: Bearer <token>, or offer the subprotocols "
				 "nimbus and ticket.<ticket>",
				 NULL, reason);
	}
	int64_t since = -1;
	if (httpd_query_param(req, "since", since_s, sizeof(since_s)) >= 0) {
		char *end;
		long long v = strtoll(since_s, &end, 10);
		if (!*since_s || *end || v < 0)
			return ws_refuse(req->remote_addr, "since must be a sequence number (an integer >= 0)", NULL,
					 reason);
		since = v;
	}
	if (httpd_query_param(req, "stream", stream, sizeof(stream)) < 0)
		stream[0] = '\0';
	if (api_events_subscribe(a->events, conn, who.role == AUTH_ROLE_ADMIN, who.tenant_id, since, stream, &e) < 0) {
		log_warn(LOGGER, "cannot subscribe to the event stream", "error", e.message, NULL);
		*reason = "the server cannot subscribe this connection; try again";
		return 1;
	}
	return 0;
}

static void ws_on_close(void *user, uint64_t conn)
{
	struct api *a = user;
	api_events_unsubscribe(a->events, conn);
}

static void httpd_log(void *user, const char *msg)
{
	(void)user;
	log_warn(LOGGER, msg, NULL);
}

/* ---- lifecycle ------------------------------------------------------------------------------------ */

/* GET /tenants shows each tenant's namespace phase. A namespace change is
 * also a "tenant" event, on which the dashboard reads the list again: that
 * read must not get an answer cached before the change. Registered before
 * the event stream's handlers, so the cache is cleared before the event
 * goes out. */
static void ns_changed(void *arg, struct kobj *o)
{
	(void)o;
	api_cache_invalidate(((struct api *)arg)->cache);
}

static void ns_updated(void *arg, struct kobj *old, struct kobj *o)
{
	(void)old;
	ns_changed(arg, o);
}

static int watch_namespaces(struct api *a, struct kerr *e)
{
	struct informer_handlers h = {.on_add = ns_changed, .on_update = ns_updated, .on_delete = ns_changed, .arg = a};
	if (informer_add_handlers(a->namespaces, &h) < 0)
		return kerr_set(e, KERR_NOMEM, "api: cannot register the namespace handlers");
	return 0;
}

int api_new(struct api **out, const struct api_options *o, struct kerr *e)
{
	*out = NULL;
	int rc = auth_check_secret(o->cfg->jwt_secret, e);
	if (rc < 0)
		return rc;
	if (o->cfg->admin_password && strlen(o->cfg->admin_password) < AUTH_PASSWORD_MIN)
		return kerr_set(e, KERR_CONFIG, "NIMBUS_ADMIN_PASSWORD is shorter than %d characters; choose a longer one, "
						"e.g. `openssl rand -base64 24`",
				AUTH_PASSWORD_MIN);
	struct api *a = calloc(1, sizeof(*a));
	if (!a)
		return kerr_set(e, KERR_NOMEM, "api: out of memory");
	if (pthread_mutex_init(&a->db_lock, NULL)) {
		free(a);
		return kerr_set(e, KERR_NOMEM, "api: cannot create a mutex");
	}
	if (pthread_mutex_init(&a->setup_lock, NULL)) {
		pthread_mutex_destroy(&a->db_lock);
		free(a);
		return kerr_set(e, KERR_NOMEM, "api: cannot create a mutex");
	}
	a->cfg = o->cfg;
	a->client = o->client;
	a->namespaces = o->namespaces;
	a->crs = o->computerequests;
	a->pods = o->pods;
	a->nodes = o->nodes;
	a->scheduler = o->scheduler;
	static const char *const route_code[] = {"route", "code"}, *const route[] = {"route"};
	struct api_events_options eo = {.namespaces = o->namespaces, .computerequests = o->computerequests,
					.pods = o->pods};
	if ((rc = auth_limiter_new(&a->limiter, API_LOGIN_LIMIT, 60 * 1000, 4096, e)) < 0 ||
	    (rc = api_cache_new(&a->cache, API_CACHE_ENTRIES, API_CACHE_TTL_MS, e)) < 0 ||
	    (rc = watch_namespaces(a, e)) < 0 ||
	    (rc = auth_ticket_seen_new(&a->tickets, API_TICKETS_SEEN, e)) < 0 ||
	    (o->metrics &&
	     ((rc = metrics_counter_new(o->metrics, "nimbus_http_requests_total", "API requests by route and status code.",
					route_code, 2, &a->requests, e)) < 0 ||
	      (rc = metrics_histogram_new(o->metrics, "nimbus_http_request_duration_seconds",
					  "Time to answer an API request, by route.", route, 1, NULL, 0, &a->duration,
					  e)) < 0)) ||
	    (rc = api_events_new(&a->events, &eo, e)) < 0) {
		api_free(a);
		return rc;
	}
	*out = a;
	return 0;
}

int api_start(struct api *a, struct kerr *e)
{
	/* At start rather than at the first request, so that a generated admin
	 * password is logged at once. */
	struct db *db = api_db_open(a);
	if (db)
		api_db_put(a, db);
	else
		log_error(LOGGER, "cannot reach the database; tenant routes and logins answer 503 until it is up", NULL);
	char addr[300];
	const struct config_addr *ca = &a->cfg->api_addr;
	snprintf(addr, sizeof(addr), strchr(ca->host, ':') ? "[%s]:%u" : "%s:%u", *ca->host ? ca->host : "0.0.0.0",
		 (unsigned)ca->port);
	struct httpd_opts ho = {
		.addr = addr,
		.tls_cert = a->cfg->api_tls_cert,
		.tls_key = a->cfg->api_tls_key,
		.router = router,
		.router_user = a,
		.workers = API_WORKERS,
		.fast_router = fast_router,
		.static_dir = a->cfg->dashboard_dir,
		.log = httpd_log,
		.ws = {.path = "/api/v1/events", .origin_ok = ws_origin_ok, .on_open = ws_on_open,
		       .on_close = ws_on_close, .user = a, .queue_max = WS_QUEUE_MAX},
	};
	int rc = httpd_new(&a->httpd, &ho, e);
	if (rc < 0)
		return rc;
	api_events_attach(a->events, a->httpd);
	if ((rc = httpd_start(a->httpd, e)) < 0)
		return rc;
	char port[8];
	snprintf(port, sizeof(port), "%d", httpd_port(a->httpd));
	log_info(LOGGER, "serving the REST API", "address", addr, "port", port, "tls", a->cfg->api_tls_cert ? "on" : "off",
		 NULL);
	return 0;
}

int api_port(const struct api *a) { return a->httpd ? httpd_port(a->httpd) : 0; }

void api_stop(struct api *a)
{
	if (!a || !a->httpd)
		return;
	api_events_attach(a->events, NULL);
	httpd_free(a->httpd);
	a->httpd = NULL;
}

void api_free(struct api *a)
{
	if (!a)
		return;
	api_stop(a);
	api_events_free(a->events);
	auth_limiter_free(a->limiter);
	api_cache_free(a->cache);
	auth_ticket_seen_free(a->tickets);
	for (size_t i = 0; i < a->db_nidle; i++)
		db_close(a->db_idle[i]);
	pthread_mutex_destroy(&a->setup_lock);
	pthread_mutex_destroy(&a->db_lock);
	free(a);
}

/* operator/openapi.json, embedded at build time (cmake/embed_text.cmake). */
extern const char api_openapi_doc[];
extern const size_t api_openapi_doc_len;

const char *api_openapi_json(size_t *len)
{
	*len = api_openapi_doc_len;
	return api_openapi_doc;
}
