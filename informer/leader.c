#include "leader.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "timefmt.h"

#define LEASES_API "/apis/coordination.k8s.io/v1"

struct leader {
	struct kube_client *client;       /* borrowed */
	char *namespace;                  /* owned */
	char *name;                       /* owned */
	char *identity;                   /* owned */
	char *path;                       /* the Lease's URL path; owned */
	char *collection;                 /* the namespace's leases URL path; owned */
	int32_t lease_s;                  /* leaseDurationSeconds we write */
	int64_t renew_ms;
	int64_t retry_ms;
	struct leader_options cb;         /* callbacks and log only; its strings are not used */

	pthread_t thread;
	bool started;
	pthread_mutex_t mu;               /* guards stopping for the waits below */
	pthread_cond_t cond;              /* signalled by leader_stop */
	bool stopping;
	atomic_bool release;              /* set by leader_stop before it signals */
	atomic_bool leading;              /* within a term */
	atomic_int_fast64_t lead_until_ms;/* monotonic end of the term unless renewed */
	int release_rc;                   /* outcome of the release; read after the join */

	/* election thread only */
	struct leader_record observed;    /* the record as last read or written */
	bool have_observed;
	int64_t observed_ms;              /* monotonic time the record last changed */
	char *last_body;                  /* the Lease as last read or written, the base of
					   * the next PUT; owned, NULL before the first read */
	char reported[LEADER_IDENTITY_MAX]; /* holder last passed to on_new_leader */
	char last_failure[128];           /* what failed last and how ("reading/-7/"), "" after a
					   * success: a repeat goes to DEBUG */
	uint64_t rng;
};

/* ---- time ----------------------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the decision ----------------------------------------------------------- */

bool leader_record_equal(const struct leader_record *a, const struct leader_record *b)
{
	return strcmp(a->holder, b->holder) == 0 && a->lease_duration_s == b->lease_duration_s &&
	       a->acquire_time_us == b->acquire_time_us && a->renew_time_us == b->renew_time_us &&
	       a->transitions == b->transitions;
}

enum leader_verdict leader_decide(const struct leader_record *r, const char *identity,
				  int64_t observed_ms, int64_t now_ms, int64_t *valid_ms)
{
	if (valid_ms)
		*valid_ms = 0;
	if (identity && identity[0] && strcmp(r->holder, identity) == 0)
		return LEADER_RENEW;
	if (!r->holder[0])
		return LEADER_ACQUIRE;
	int64_t until = observed_ms + (int64_t)r->lease_duration_s * 1000;
	if (until > now_ms) {
		if (valid_ms)
			*valid_ms = until - now_ms;
		return LEADER_WAIT;
	}
	return LEADER_ACQUIRE;
}

void leader_next_record(const struct leader_record *prev, enum leader_verdict v,
			const char *identity, int32_t lease_duration_s, int64_t now_us,
			struct leader_record *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->holder, sizeof(out->holder), "%s", identity);
	out->lease_duration_s = lease_duration_s;
	out->renew_time_us = now_us;
	out->acquire_time_us = now_us;
	if (!prev)
		return;
	if (v == LEADER_RENEW) {
		if (prev->acquire_time_us)
			out->acquire_time_us = prev->acquire_time_us;
		out->transitions = prev->transitions;
	} else {
		out->transitions = prev->transitions + 1;
	}
}

void leader_release_record(const struct leader_record *prev, int64_t now_us,
			   struct leader_record *out)
{
	memset(out, 0, sizeof(*out));
	out->lease_duration_s = 1;
	out->acquire_time_us = now_us;
	out->renew_time_us = now_us;
	out->transitions = prev->transitions;
}

/* ---- Lease JSON ---------------------------------------------------------- */

/* v's field key, or key.sub when sub is not NULL; NULL when absent or null. */
static yajl_val field(yajl_val v, const char *key, const char *sub)
{
	const char *path[] = {key, sub, NULL};
	yajl_val f = v ? yajl_tree_get(v, path, yajl_t_any) : NULL;
	return YAJL_IS_NULL(f) ? NULL : f;
}

static int parse_int32(yajl_val v, const char *field, int32_t *out, struct kerr *e)
{
	if (!v)
		return 0;
	if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < INT32_MIN || YAJL_GET_INTEGER(v) > INT32_MAX)
		return kerr_set(e, KERR_PARSE, "Lease spec.%s: expected a 32-bit integer", field);
	*out = (int32_t)YAJL_GET_INTEGER(v);
	return 0;
}

static int parse_time(yajl_val v, const char *field, int64_t *out, struct kerr *e)
{
	if (!v)
		return 0;
	const char *text = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
	if (!text || timefmt_parse(text, strlen(text), out) < 0)
		return kerr_set(e, KERR_PARSE, "Lease spec.%s: expected a time such as \"2006-01-02T15:04:05.000000Z\", got %.40s",
				field, text ? text : "a non-string");
	return 0;
}

/* Parse json, which must be an object whose kind, if given, is Lease. */
static int parse_lease(const char *json, yajl_val *out, struct kerr *e)
{
	char err[256];
	*out = NULL;
	yajl_val v = json ? yajl_tree_parse(json, err, sizeof(err)) : NULL;
	if (!v)
		return kerr_set(e, KERR_PARSE, "Lease: malformed JSON: %s", json ? err : "no body");
	if (!YAJL_IS_OBJECT(v)) {
		yajl_tree_free(v);
		return kerr_set(e, KERR_PARSE, "Lease: expected a JSON object");
	}
	yajl_val kind = field(v, "kind", NULL);
	if (kind && (!YAJL_IS_STRING(kind) || strcmp(kind->u.string, "Lease") != 0)) {
		int rc = kerr_set(e, KERR_PARSE, "expected a Lease, got kind %.60s",
				  YAJL_IS_STRING(kind) ? YAJL_GET_STRING(kind) : "(not a string)");
		yajl_tree_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

int leader_record_parse(const char *json, struct leader_record *out, struct kerr *e)
{
	memset(out, 0, sizeof(*out));
	yajl_val v;
	int rc = parse_lease(json, &v, e);
	if (rc < 0)
		return rc;
	yajl_val spec = field(v, "spec", NULL);
	if (spec && !YAJL_IS_OBJECT(spec)) {
		rc = kerr_set(e, KERR_PARSE, "Lease spec: expected an object");
		goto out;
	}
	yajl_val holder = field(spec, "holderIdentity", NULL);
	if (holder && !YAJL_IS_STRING(holder)) {
		rc = kerr_set(e, KERR_PARSE, "Lease spec.holderIdentity: expected a string");
		goto out;
	}
	if (holder)
		snprintf(out->holder, sizeof(out->holder), "%s", holder->u.string);
	rc = parse_int32(field(spec, "leaseDurationSeconds", NULL), "leaseDurationSeconds", &out->lease_duration_s, e);
	if (rc == 0)
		rc = parse_int32(field(spec, "leaseTransitions", NULL), "leaseTransitions", &out->transitions, e);
	if (rc == 0)
		rc = parse_time(field(spec, "acquireTime", NULL), "acquireTime", &out->acquire_time_us, e);
	if (rc == 0)
		rc = parse_time(field(spec, "renewTime", NULL), "renewTime", &out->renew_time_us, e);
out:
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	yajl_tree_free(v);
	return rc;
}

/* A generator whose first failure sticks, so a body is built without a check
 * after every call and checked once at the end. */
struct gen {
	yajl_gen g;
	yajl_gen_status st;
};

static void g_str(struct gen *g, const char *s)
{
	if (g->st == yajl_gen_status_ok)
		g->st = yajl_gen_string(g->g, (const unsigned char *)s, strlen(s));
}

static void g_int(struct gen *g, long long v)
{
	if (g->st == yajl_gen_status_ok)
		g->st = yajl_gen_integer(g->g, v);
}

static void g_map(struct gen *g, bool open)
{
	if (g->st == yajl_gen_status_ok)
		g->st = open ? yajl_gen_map_open(g->g) : yajl_gen_map_close(g->g);
}

static void g_time(struct gen *g, const char *key, int64_t us)
{
	char buf[TIMEFMT_MAX_LEN + 1];
	if (!us)
		return;
	/* MicroTime: always UTC with 6 digits, as client-go writes it. */
	if (timefmt_format(us, 6, buf, sizeof(buf)) < 0) {
		g->st = yajl_gen_invalid_number;
		return;
	}
	g_str(g, key);
	g_str(g, buf);
}

/* Copy a parsed value as it was. */
static void g_value(struct gen *g, yajl_val v)
{
	if (g->st != yajl_gen_status_ok)
		return;
	switch (v->type) {
	case yajl_t_string:
		g_str(g, v->u.string);
		break;
	case yajl_t_number:
		/* The raw text, so that large and fractional numbers survive exactly. */
		g->st = yajl_gen_number(g->g, v->u.number.r, strlen(v->u.number.r));
		break;
	case yajl_t_object:
		g_map(g, true);
		for (size_t i = 0; i < v->u.object.len; i++) {
			g_str(g, v->u.object.keys[i]);
			g_value(g, v->u.object.values[i]);
		}
		g_map(g, false);
		break;
	case yajl_t_array:
		g->st = yajl_gen_array_open(g->g);
		for (size_t i = 0; i < v->u.array.len; i++)
			g_value(g, v->u.array.values[i]);
		if (g->st == yajl_gen_status_ok)
			g->st = yajl_gen_array_close(g->g);
		break;
	case yajl_t_true:
	case yajl_t_false:
		g->st = yajl_gen_bool(g->g, v->type == yajl_t_true);
		break;
	default:
		g->st = yajl_gen_null(g->g);
		break;
	}
}

static const char *const record_keys[] = {"holderIdentity", "leaseDurationSeconds", "acquireTime",
					  "renewTime", "leaseTransitions"};

static bool is_record_key(const char *k)
{
	for (size_t i = 0; i < sizeof(record_keys) / sizeof(record_keys[0]); i++)
		if (strcmp(k, record_keys[i]) == 0)
			return true;
	return false;
}

/* The spec object: r's fields, then any other fields of old (may be NULL). */
static void g_spec(struct gen *g, const struct leader_record *r, yajl_val old)
{
	g_map(g, true);
	g_str(g, "holderIdentity");
	g_str(g, r->holder);
	g_str(g, "leaseDurationSeconds");
	g_int(g, r->lease_duration_s);
	g_time(g, "acquireTime", r->acquire_time_us);
	g_time(g, "renewTime", r->renew_time_us);
	g_str(g, "leaseTransitions");
	g_int(g, r->transitions);
	for (size_t i = 0; YAJL_IS_OBJECT(old) && i < old->u.object.len; i++) {
		if (is_record_key(old->u.object.keys[i]))
			continue;
		g_str(g, old->u.object.keys[i]);
		g_value(g, old->u.object.values[i]);
	}
	g_map(g, false);
}

static int g_begin(struct gen *g, struct kerr *e)
{
	g->st = yajl_gen_status_ok;
	g->g = yajl_gen_alloc(NULL);
	if (!g->g)
		return kerr_set(e, KERR_NOMEM, "Lease body: out of memory");
	/* Identities come from the environment: refuse bytes the apiserver
	 * would reject as invalid UTF-8, with a clear message here. */
	yajl_gen_config(g->g, yajl_gen_validate_utf8, 1);
	return 0;
}

static int g_end(struct gen *g, char **out, struct kerr *e)
{
	const unsigned char *buf;
	size_t len;
	int rc = 0;
	*out = NULL;
	if (g->st == yajl_gen_status_ok)
		g->st = yajl_gen_get_buf(g->g, &buf, &len);
	if (g->st == yajl_gen_invalid_string)
		rc = kerr_set(e, KERR_INVAL, "Lease body: a string (the identity?) is not valid UTF-8");
	else if (g->st == yajl_gen_invalid_number)
		rc = kerr_set(e, KERR_INVAL, "Lease body: a time is outside the years 0000..9999");
	else if (g->st != yajl_gen_status_ok)
		rc = kerr_set(e, KERR_NOMEM, "Lease body: cannot generate JSON (yajl status %d)", (int)g->st);
	else if (!(*out = malloc(len + 1)))
		rc = kerr_set(e, KERR_NOMEM, "Lease body: out of memory");
	else {
		memcpy(*out, buf, len);
		(*out)[len] = '\0';
	}
	yajl_gen_free(g->g);
	return rc;
}

int leader_create_body(const char *namespace, const char *name, const struct leader_record *r,
		       char **out, struct kerr *e)
{
	struct gen g;
	*out = NULL;
	int rc = g_begin(&g, e);
	if (rc < 0)
		return rc;
	g_map(&g, true);
	g_str(&g, "apiVersion");
	g_str(&g, "coordination.k8s.io/v1");
	g_str(&g, "kind");
	g_str(&g, "Lease");
	g_str(&g, "metadata");
	g_map(&g, true);
	g_str(&g, "name");
	g_str(&g, name);
	g_str(&g, "namespace");
	g_str(&g, namespace);
	g_map(&g, false);
	g_str(&g, "spec");
	g_spec(&g, r, NULL);
	g_map(&g, false);
	return g_end(&g, out, e);
}

int leader_update_body(const char *prev, const struct leader_record *r, char **out, struct kerr *e)
{
	*out = NULL;
	yajl_val v;
	int rc = parse_lease(prev, &v, e);
	if (rc < 0)
		return rc;
	yajl_val rv = field(v, "metadata", "resourceVersion");
	if (!YAJL_IS_STRING(rv) || !rv->u.string[0]) {
		yajl_tree_free(v);
		return kerr_set(e, KERR_PARSE, "Lease: no metadata.resourceVersion to make the update conditional on");
	}
	struct gen g;
	if ((rc = g_begin(&g, e)) < 0) {
		yajl_tree_free(v);
		return rc;
	}
	bool had_spec = false;
	g_map(&g, true);
	for (size_t i = 0; i < v->u.object.len; i++) {
		const char *k = v->u.object.keys[i];
		g_str(&g, k);
		if (strcmp(k, "spec") == 0) {
			g_spec(&g, r, v->u.object.values[i]);
			had_spec = true;
		} else {
			g_value(&g, v->u.object.values[i]);
		}
	}
	if (!had_spec) {
		g_str(&g, "spec");
		g_spec(&g, r, NULL);
	}
	g_map(&g, false);
	rc = g_end(&g, out, e);
	yajl_tree_free(v);
	return rc;
}

/* ---- the election --------------------------------------------------------- */

static void logf_(struct leader *le, enum informer_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void logf_(struct leader *le, enum informer_log_level lvl, const char *fmt, ...)
{
	if (!le->cb.log)
		return;
	char buf[1536];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	le->cb.log(le->cb.log_arg, lvl, "Lease", buf);
}

/* One request. On 2xx, *resp takes the body (the caller frees it); ce gets
 * the client's error otherwise. */
static int call(struct leader *le, const char *method, const char *path, const char *body, char **resp,
		struct kerr *ce)
{
	struct kube_response r;
	*resp = NULL;
	kerr_clear(ce);
	int rc = kube_client_request(le->client, method, path, NULL, body, body ? strlen(body) : 0, &r, ce);
	if (rc == 0) {
		*resp = r.body;
		r.body = NULL;
		if (!*resp)
			rc = kerr_set(ce, KERR_PARSE, "%s %s: empty response", method, path);
	}
	kube_response_free(&r);
	return rc;
}

/* Log a failed step with what to do about it; returns rc. The same failure
 * again (an apiserver that stays down) goes to DEBUG. "Same" is the step, the
 * code and the apiserver's reason, not the text, which can carry timings. */
static int failure(struct leader *le, const char *doing, int rc, const struct kerr *ce)
{
	char hint[320] = "";
	if (rc == KERR_FORBIDDEN)
		snprintf(hint, sizeof(hint),
			 "; leader election needs get, create and update on leases (apiGroup coordination.k8s.io) in namespace %s",
			 le->namespace);
	else if (rc == KERR_NOT_FOUND) /* only a POST gets it: a PUT creates a missing Lease */
		snprintf(hint, sizeof(hint), "; namespace %s must exist: create it or elect in another namespace",
			 le->namespace);
	else if (rc == KERR_INVALID)
		snprintf(hint, sizeof(hint), "; check the lease name and the identity");
	char key[sizeof(le->last_failure)];
	snprintf(key, sizeof(key), "%s/%d/%s", doing, rc, ce->reason);
	bool again = strcmp(key, le->last_failure) == 0;
	logf_(le, again ? INFORMER_LOG_DEBUG : INFORMER_LOG_WARN, "lease %s/%s: %s failed: %s%s; retrying every %lld ms",
	      le->namespace, le->name, doing, ce->message[0] ? ce->message : kerr_strerror(rc), hint,
	      (long long)le->retry_ms);
	memcpy(le->last_failure, key, sizeof(key));
	return rc;
}

static void succeeded(struct leader *le)
{
	if (le->last_failure[0])
		logf_(le, INFORMER_LOG_INFO, "lease %s/%s: requests succeed again", le->namespace, le->name);
	le->last_failure[0] = '\0';
}

/* Note a record just read or written, with the document it came in (taken). */
static void observe(struct leader *le, const struct leader_record *rec, char *body)
{
	free(le->last_body);
	le->last_body = body;
	if (!le->have_observed || !leader_record_equal(rec, &le->observed)) {
		le->observed = *rec;
		le->observed_ms = mono_ms();
		le->have_observed = true;
	}
	if (!rec->holder[0]) {
		/* Released: whoever takes it next is news, even the last holder. */
		le->reported[0] = '\0';
	} else if (strcmp(rec->holder, le->reported) != 0) {
		memcpy(le->reported, rec->holder, sizeof(le->reported));
		if (strcmp(rec->holder, le->identity) != 0)
			logf_(le, INFORMER_LOG_INFO, "lease %s/%s is held by %s", le->namespace, le->name, rec->holder);
		if (le->cb.on_new_leader)
			le->cb.on_new_leader(le->cb.arg, rec->holder);
	}
}

/* Adopt a write's response (taken) as the observed record. */
static int adopt(struct leader *le, char *resp, struct kerr *ce)
{
	struct leader_record rec;
	int rc = leader_record_parse(resp, &rec, ce);
	if (rc < 0) {
		free(resp);
		return rc;
	}
	observe(le, &rec, resp);
	return 0;
}

/* PUT want onto the Lease as last read. */
static int put(struct leader *le, const struct leader_record *want, struct kerr *ce)
{
	char *body = NULL, *resp = NULL;
	int rc = leader_update_body(le->last_body, want, &body, ce);
	if (rc == 0)
		rc = call(le, "PUT", le->path, body, &resp, ce);
	free(body);
	if (rc < 0)
		return rc;
	return adopt(le, resp, ce);
}

/*
 * One attempt, as client-go's tryAcquireOrRenew. Returns 1 when we hold the
 * lease now, 0 when another replica does (or just won a race for it), or a
 * negative code for a failed request (logged).
 */
static int try_acquire_or_renew(struct leader *le)
{
	struct kerr ce = {0};
	struct leader_record want;
	int64_t now_us = wall_us();
	int rc;

	/* Fast path: a leader renews the Lease as it last wrote it, without a
	 * GET; a 409 means it changed since, so read it and decide again. (A
	 * deleted Lease is simply created again: Leases allow create on update,
	 * and creation is atomic, so a candidate's POST then gets 409.) */
	if (atomic_load(&le->leading) && le->last_body) {
		leader_next_record(&le->observed, LEADER_RENEW, le->identity, le->lease_s, now_us, &want);
		rc = put(le, &want, &ce);
		if (rc == 0) {
			succeeded(le);
			return 1;
		}
		if (rc != KERR_CONFLICT)
			return failure(le, "renewing", rc, &ce);
		logf_(le, INFORMER_LOG_DEBUG, "lease %s/%s changed since our last renewal; reading it", le->namespace,
		      le->name);
	}

	char *resp = NULL;
	rc = call(le, "GET", le->path, NULL, &resp, &ce);
	if (rc == KERR_NOT_FOUND) {
		char *body = NULL;
		leader_next_record(NULL, LEADER_ACQUIRE, le->identity, le->lease_s, now_us, &want);
		kerr_clear(&ce);
		rc = leader_create_body(le->namespace, le->name, &want, &body, &ce);
		if (rc == 0)
			rc = call(le, "POST", le->collection, body, &resp, &ce);
		free(body);
		if (rc == KERR_ALREADY_EXISTS) {
			logf_(le, INFORMER_LOG_DEBUG, "lease %s/%s: another replica created it first", le->namespace,
			      le->name);
			return 0;
		}
		if (rc < 0)
			return failure(le, "creating", rc, &ce);
		if ((rc = adopt(le, resp, &ce)) < 0)
			return failure(le, "creating", rc, &ce);
		succeeded(le);
		return 1;
	}
	if (rc < 0)
		return failure(le, "reading", rc, &ce);
	struct leader_record rec;
	if ((rc = leader_record_parse(resp, &rec, &ce)) < 0) {
		free(resp);
		return failure(le, "reading", rc, &ce);
	}
	observe(le, &rec, resp);
	succeeded(le);

	int64_t valid_ms;
	enum leader_verdict v = leader_decide(&le->observed, le->identity, le->observed_ms, mono_ms(), &valid_ms);
	if (v == LEADER_WAIT) {
		logf_(le, INFORMER_LOG_DEBUG, "lease %s/%s is held by %s for up to %lld ms more", le->namespace,
		      le->name, le->observed.holder, (long long)valid_ms);
		return 0;
	}
	leader_next_record(&le->observed, v, le->identity, le->lease_s, now_us, &want);
	rc = put(le, &want, &ce);
	if (rc == KERR_CONFLICT && v == LEADER_ACQUIRE) {
		logf_(le, INFORMER_LOG_DEBUG, "lease %s/%s: another replica took it first", le->namespace, le->name);
		return 0;
	}
	if (rc < 0)
		return failure(le, v == LEADER_ACQUIRE ? "acquiring" : "renewing", rc, &ce);
	succeeded(le);
	return 1;
}

/* Wait ms or until stopped; true when stopped. */
static bool wait_ms(struct leader *le, int64_t ms)
{
	struct timespec ts = timefmt_deadline(ms);
	pthread_mutex_lock(&le->mu);
	while (!le->stopping && pthread_cond_timedwait(&le->cond, &le->mu, &ts) == 0)
		;
	bool stopped = le->stopping;
	pthread_mutex_unlock(&le->mu);
	return stopped;
}

static bool stopping(struct leader *le)
{
	pthread_mutex_lock(&le->mu);
	bool s = le->stopping;
	pthread_mutex_unlock(&le->mu);
	return s;
}

/* Try until we hold the lease (true) or are stopped (false). */
static bool campaign(struct leader *le)
{
	while (!stopping(le)) {
		int64_t started = mono_ms();
		if (try_acquire_or_renew(le) == 1) {
			if (stopping(le))
				return false;
			atomic_store(&le->lead_until_ms, started + le->renew_ms);
			return true;
		}
		/* retry_period plus up to 20% so that candidates spread out. */
		le->rng = le->rng * 6364136223846793005ULL + 1442695040888963407ULL;
		int64_t jitter = (int64_t)((le->rng >> 33) % (uint64_t)(le->retry_ms / 5 + 1));
		if (wait_ms(le, le->retry_ms + jitter))
			return false;
	}
	return false;
}

/* One term, from after the acquisition to its end. */
static void lead(struct leader *le)
{
	logf_(le, INFORMER_LOG_INFO, "lease %s/%s acquired by %s (transition %d): leading", le->namespace, le->name,
	      le->identity, le->observed.transitions);
	if (le->cb.on_started_leading)
		le->cb.on_started_leading(le->cb.arg);
	/* leader_is_leader() turns true only after the callback, so whatever
	 * acts on it acts inside the term the callback opened. */
	atomic_store(&le->leading, true);
	while (!wait_ms(le, le->retry_ms)) {
		int64_t started = mono_ms();
		int rc = try_acquire_or_renew(le);
		/* The deadline is checked before the result: once it has passed,
		 * leader_is_leader() has said false, and a term does not resume. */
		if (mono_ms() >= atomic_load(&le->lead_until_ms)) {
			logf_(le, INFORMER_LOG_ERROR,
			      "lease %s/%s: not renewed for %lld ms (the renew deadline): stopped leading; another replica may take over",
			      le->namespace, le->name, (long long)le->renew_ms);
			break;
		}
		if (rc == 1) {
			atomic_store(&le->lead_until_ms, started + le->renew_ms);
		} else if (rc == 0) {
			logf_(le, INFORMER_LOG_WARN, "lease %s/%s was taken over by %s: stopped leading", le->namespace,
			      le->name, le->observed.holder[0] ? le->observed.holder : "another replica");
			break;
		}
	}
	atomic_store(&le->leading, false);
	if (le->cb.on_stopped_leading)
		le->cb.on_stopped_leading(le->cb.arg);
}

/* Give the lease up if it still names us, so the next leader need not wait
 * for it to expire. As client-go, only when we last saw ourselves holding it:
 * a replica that never led has nothing to give up. */
static int release(struct leader *le)
{
	struct kerr ce = {0};
	struct leader_record rec, rel;
	char *resp = NULL, *body = NULL;
	if (!le->have_observed || strcmp(le->observed.holder, le->identity) != 0)
		return 0;
	int rc = call(le, "GET", le->path, NULL, &resp, &ce);
	if (rc == KERR_NOT_FOUND)
		return 0;
	if (rc == 0)
		rc = leader_record_parse(resp, &rec, &ce);
	if (rc == 0 && strcmp(rec.holder, le->identity) != 0) {
		free(resp);
		return 0;
	}
	if (rc == 0) {
		leader_release_record(&rec, wall_us(), &rel);
		rc = leader_update_body(resp, &rel, &body, &ce);
	}
	free(resp);
	resp = NULL;
	if (rc == 0)
		rc = call(le, "PUT", le->path, body, &resp, &ce);
	free(body);
	free(resp);
	if (rc < 0) {
		logf_(le, INFORMER_LOG_WARN, "lease %s/%s: cannot release it: %s; the next leader takes over when it expires (%d s)",
		      le->namespace, le->name, ce.message[0] ? ce.message : kerr_strerror(rc), le->lease_s);
		return rc;
	}
	logf_(le, INFORMER_LOG_INFO, "lease %s/%s released by %s", le->namespace, le->name, le->identity);
	return 0;
}

static void *run(void *arg)
{
	struct leader *le = arg;
	while (campaign(le)) {
		lead(le);
		if (stopping(le))
			break;
	}
	if (atomic_load(&le->release))
		le->release_rc = release(le);
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------ */

/* [a-z0-9]([-a-z0-9.]*[a-z0-9])? up to max, without '.' when dots is false:
 * the names the apiserver accepts, which then need no escaping in a path. */
static bool dns_name(const char *s, size_t max, bool dots)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && !((c == '-' || (dots && c == '.')) && i > 0 && i + 1 < n))
			return false;
	}
	return true;
}

int leader_new(struct leader **out, struct kube_client *c, const struct leader_options *opts,
	       struct kerr *e)
{
	*out = NULL;
	if (!c || !opts)
		return kerr_set(e, KERR_INVAL, "leader_new: a client and options are required");
	if (!dns_name(opts->namespace, 63, false))
		return kerr_set(e, KERR_INVAL, "leader election: namespace \"%s\" is not a valid namespace name",
				opts->namespace ? opts->namespace : "");
	if (!dns_name(opts->name, 253, true))
		return kerr_set(e, KERR_INVAL,
				"leader election: lease name \"%s\" must be lowercase letters, digits, '-' and '.' (a DNS subdomain)",
				opts->name ? opts->name : "");
	long lease_ms = opts->lease_duration_ms ? opts->lease_duration_ms : LEADER_DEFAULT_LEASE_DURATION_MS;
	long renew_ms = opts->renew_deadline_ms ? opts->renew_deadline_ms : LEADER_DEFAULT_RENEW_DEADLINE_MS;
	long retry_ms = opts->retry_period_ms ? opts->retry_period_ms : LEADER_DEFAULT_RETRY_PERIOD_MS;
	long lease_s = lease_ms / 1000;
	if (lease_s < 1 || lease_s > INT32_MAX || renew_ms <= 0 || retry_ms <= 0)
		return kerr_set(e, KERR_INVAL, "leader election: lease duration must be at least 1000 ms and the renew deadline and retry period positive");
	if (renew_ms >= lease_s * 1000)
		return kerr_set(e, KERR_INVAL,
				"leader election: renew deadline %ld ms must be below the lease duration (%ld s): the leader must stop before others may take over",
				renew_ms, lease_s);
	if ((int64_t)renew_ms * 5 <= (int64_t)retry_ms * 6)
		return kerr_set(e, KERR_INVAL,
				"leader election: renew deadline %ld ms must exceed 1.2 x the retry period %ld ms, or one slow retry ends the term",
				renew_ms, retry_ms);

	char host[256];
	char ident[LEADER_IDENTITY_MAX + 32];
	if (opts->identity && opts->identity[0]) {
		snprintf(ident, sizeof(ident), "%s", opts->identity);
	} else {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "unknown");
		host[sizeof(host) - 1] = '\0';
		snprintf(ident, sizeof(ident), "%s_%ld", host, (long)getpid());
	}
	if (strlen(ident) >= LEADER_IDENTITY_MAX)
		return kerr_set(e, KERR_INVAL, "leader election: identity \"%.40s...\" is longer than %d bytes",
				ident, LEADER_IDENTITY_MAX - 1);
	/* Refuse an identity the apiserver would reject, now rather than at
	 * each attempt. */
	struct leader_record probe;
	char *body = NULL;
	leader_next_record(NULL, LEADER_ACQUIRE, ident, (int32_t)lease_s, wall_us(), &probe);
	int rc = leader_create_body(opts->namespace, opts->name, &probe, &body, e);
	free(body);
	if (rc < 0)
		return rc;

	struct leader *le = calloc(1, sizeof(*le));
	if (!le)
		return kerr_set(e, KERR_NOMEM, "leader election: out of memory");
	le->client = c;
	le->lease_s = (int32_t)lease_s;
	le->renew_ms = renew_ms;
	le->retry_ms = retry_ms;
	le->cb = *opts;
	le->cb.namespace = le->cb.name = le->cb.identity = NULL;
	le->rng = (uint64_t)wall_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)le;
	size_t plen = strlen(LEASES_API) + strlen(opts->namespace) + strlen(opts->name) + 32;
	le->namespace = strdup(opts->namespace);
	le->name = strdup(opts->name);
	le->identity = strdup(ident);
	le->path = malloc(plen);
	le->collection = malloc(plen);
	if (!le->namespace || !le->name || !le->identity || !le->path || !le->collection)
		goto nomem;
	snprintf(le->collection, plen, "%s/namespaces/%s/leases", LEASES_API, le->namespace);
	snprintf(le->path, plen, "%s/%s", le->collection, le->name);
	if (pthread_mutex_init(&le->mu, NULL) != 0)
		goto nomem;
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0) {
		pthread_mutex_destroy(&le->mu);
		goto nomem;
	}
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 || pthread_cond_init(&le->cond, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		pthread_mutex_destroy(&le->mu);
		goto nomem;
	}
	pthread_condattr_destroy(&ca);
	*out = le;
	return 0;
nomem:
	free(le->namespace);
	free(le->name);
	free(le->identity);
	free(le->path);
	free(le->collection);
	free(le);
	return kerr_set(e, KERR_NOMEM, "leader election: out of memory");
}

const char *leader_identity(const struct leader *le) { return le->identity; }

int leader_start(struct leader *le, struct kerr *e)
{
	if (le->started || le->stopping)
		return kerr_set(e, KERR_INVAL, "leader election for lease %s/%s: already started", le->namespace,
				le->name);
	if (pthread_create(&le->thread, NULL, run, le) != 0)
		return kerr_set(e, KERR_NOMEM, "leader election for lease %s/%s: cannot start its thread",
				le->namespace, le->name);
	le->started = true;
	return 0;
}

bool leader_is_leader(struct leader *le)
{
	return atomic_load(&le->leading) && mono_ms() < atomic_load(&le->lead_until_ms);
}

int leader_stop(struct leader *le, bool release_lease)
{
	if (!le)
		return 0;
	if (!le->started)
		return le->release_rc;
	atomic_store(&le->release, release_lease);
	pthread_mutex_lock(&le->mu);
	le->stopping = true;
	pthread_cond_broadcast(&le->cond);
	pthread_mutex_unlock(&le->mu);
	pthread_join(le->thread, NULL);
	le->started = false;
	return le->release_rc;
}

void leader_free(struct leader *le)
{
	if (!le)
		return;
	leader_stop(le, false);
	pthread_cond_destroy(&le->cond);
	pthread_mutex_destroy(&le->mu);
	free(le->last_body);
	free(le->namespace);
	free(le->name);
	free(le->identity);
	free(le->path);
	free(le->collection);
	free(le);
}
