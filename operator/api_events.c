#include "api_events.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "kinds.h"
#include "kube_write.h"
#include "log.h"
#include "tenant.h"

struct event {
	int64_t seq;
	char tenant[64];
	char *json; /* malloc'd message */
	size_t len;
};

struct subscriber {
	uint64_t conn;
	bool admin;
	char tenant[64];
};

struct api_events {
	pthread_mutex_t mu;
	struct informer *namespaces;
	struct httpd *httpd;       /* attached server, or NULL */
	char stream[17];
	int64_t last_seq;          /* 0: none yet */
	struct event *ring;        /* capacity slots; seq s lives at (s - 1) % capacity */
	size_t capacity, count;
	struct subscriber *subs;
	size_t nsubs, subs_cap;
	struct api_placement placements[API_EVENTS_PLACEMENTS];
	size_t nplacements, placement_head; /* head: next slot to write */
};

bool api_events_resume(int64_t since, bool same_stream, int64_t first_seq, int64_t last_seq, int64_t *from)
{
	if (since < 0) {
		*from = last_seq + 1;
		return false;
	}
	/* A seq from another stream, or one this stream never reached, tells
	 * nothing about what the client missed. */
	if (!same_stream || since > last_seq) {
		*from = first_seq;
		return true;
	}
	if (since + 1 < first_seq) {
		*from = first_seq;
		return true;
	}
	*from = since + 1;
	return false;
}

/* ---- publishing --------------------------------------------------------------- */

static bool wants(const struct subscriber *s, const char *tenant)
{
	return s->admin || strcmp(s->tenant, tenant) == 0;
}

int64_t api_events_publish(struct api_events *ev, const char *type, const char *action, const char *tenant,
			   const char *ns, const char *name, api_events_body_fn body, const void *arg)
{
	if (!tenant || !*tenant)
		return KERR_INVAL;
	struct jsonb *b = jsonb_new();
	if (!b)
		return KERR_NOMEM;
	char now[32];
	kube_now_rfc3339(now, sizeof(now));
	pthread_mutex_lock(&ev->mu);
	int64_t seq = ev->last_seq + 1;
	jsonb_obj(b);
	jsonb_kstr(b, "stream", ev->stream);
	jsonb_kint(b, "seq", seq);
	jsonb_kstr(b, "time", now);
	jsonb_kstr(b, "type", type);
	jsonb_kstr(b, "action", action);
	jsonb_kstr(b, "tenant", tenant);
	jsonb_kstr(b, "namespace", ns ? ns : "");
	jsonb_kstr(b, "name", name ? name : "");
	jsonb_key(b, "object");
	if (body) {
		body(b, arg);
	} else {
		jsonb_obj(b);
		jsonb_obj_end(b);
	}
	jsonb_obj_end(b);
	const char *out;
	size_t len;
	char *copy = NULL;
	if (jsonb_result(b, &out, &len, NULL) == 0 && (copy = malloc(len + 1))) {
		memcpy(copy, out, len);
		copy[len] = '\0';
	}
	jsonb_free(b);
	if (!copy) {
		pthread_mutex_unlock(&ev->mu);
		return KERR_NOMEM;
	}
	struct event *slot = &ev->ring[(size_t)(seq - 1) % ev->capacity];
	free(slot->json);
	slot->seq = seq;
	snprintf(slot->tenant, sizeof(slot->tenant), "%s", tenant);
	slot->json = copy;
	slot->len = len;
	if (ev->count < ev->capacity)
		ev->count++;
	ev->last_seq = seq;
	for (size_t i = 0; ev->httpd && i < ev->nsubs; i++) {
		if (wants(&ev->subs[i], tenant))
			/* A full queue closes that connection (httpd.h); its client
			 * reconnects with ?since= and catches up from the ring. */
			httpd_ws_send(ev->httpd, ev->subs[i].conn, copy, len, 0, NULL);
	}
	pthread_mutex_unlock(&ev->mu);
	return seq;
}

/* ---- subscribing -------------------------------------------------------------- */

static int send_control(struct api_events *ev, uint64_t conn, const char *type, const char *message, struct kerr *e)
{
	struct jsonb *b = jsonb_new();
	if (!b)
		return kerr_set(e, KERR_NOMEM, "out of memory");
	jsonb_obj(b);
	jsonb_kstr(b, "type", type);
	jsonb_kstr(b, "stream", ev->stream);
	jsonb_kint(b, "seq", ev->last_seq);
	if (message)
		jsonb_kstr(b, "message", message);
	jsonb_obj_end(b);
	const char *out;
	size_t len;
	int rc = jsonb_result(b, &out, &len, e);
	if (rc == 0)
		rc = httpd_ws_send(ev->httpd, conn, out, len, 0, e);
	jsonb_free(b);
	return rc;
}

int api_events_subscribe(struct api_events *ev, uint64_t conn, bool admin, const char *tenant, int64_t since,
			 const char *stream, struct kerr *e)
{
	pthread_mutex_lock(&ev->mu);
	int rc = 0;
	if (!ev->httpd) {
		rc = kerr_set(e, KERR_CLOSED, "the event stream is not attached to a server");
		goto out;
	}
	if (ev->nsubs == ev->subs_cap) {
		size_t cap = ev->subs_cap ? ev->subs_cap * 2 : 16;
		struct subscriber *s = realloc(ev->subs, cap * sizeof(*s));
		if (!s) {
			rc = kerr_set(e, KERR_NOMEM, "out of memory for a subscriber");
			goto out;
		}
		ev->subs = s;
		ev->subs_cap = cap;
	}
	int64_t first = ev->last_seq - (int64_t)ev->count + 1, from;
	bool same = !stream || !*stream || strcmp(stream, ev->stream) == 0;
	bool reset = api_events_resume(since, same, first, ev->last_seq, &from);
	if ((rc = send_control(ev, conn, "hello", NULL, e)) < 0)
		goto out;
	if (reset && (rc = send_control(ev, conn, "reset",
					"events since your last seq are no longer buffered here; reload the lists, "
					"then apply the events that follow",
					e)) < 0)
		goto out;
	for (int64_t s = from; s <= ev->last_seq; s++) {
		const struct event *x = &ev->ring[(size_t)(s - 1) % ev->capacity];
		if ((admin || strcmp(x->tenant, tenant) == 0) &&
		    (rc = httpd_ws_send(ev->httpd, conn, x->json, x->len, 0, e)) < 0)
			goto out;
	}
	struct subscriber *sub = &ev->subs[ev->nsubs++];
	sub->conn = conn;
	sub->admin = admin;
	snprintf(sub->tenant, sizeof(sub->tenant), "%s", tenant ? tenant : "");
out:
	pthread_mutex_unlock(&ev->mu);
	return rc;
}

void api_events_unsubscribe(struct api_events *ev, uint64_t conn)
{
	pthread_mutex_lock(&ev->mu);
	for (size_t i = 0; i < ev->nsubs; i++) {
		if (ev->subs[i].conn == conn) {
			ev->subs[i] = ev->subs[--ev->nsubs];
			break;
		}
	}
	pthread_mutex_unlock(&ev->mu);
}

size_t api_events_subscribers(struct api_events *ev)
{
	pthread_mutex_lock(&ev->mu);
	size_t n = ev->nsubs;
	pthread_mutex_unlock(&ev->mu);
	return n;
}

size_t api_events_placements(struct api_events *ev, struct api_placement *out, size_t max)
{
	pthread_mutex_lock(&ev->mu);
	size_t n = 0;
	for (; n < max && n < ev->nplacements; n++) {
		size_t i = (ev->placement_head + API_EVENTS_PLACEMENTS - 1 - n) % API_EVENTS_PLACEMENTS;
		out[n] = ev->placements[i];
	}
	pthread_mutex_unlock(&ev->mu);
	return n;
}

/* ---- informer handlers ---------------------------------------------------------- */

/* The tenant of namespace ns, from the namespace cache, into buf; false
 * when ns is not a tenant namespace. */
static bool ns_tenant(struct api_events *ev, const char *ns, char *buf, size_t cap)
{
	struct kobj *o = store_get(informer_store(ev->namespaces), ns);
	const char *t = o ? kobj_label(o, TENANT_LABEL) : NULL;
	bool ok = t && *t && snprintf(buf, cap, "%s", t) < (int)cap;
	kobj_unref(o);
	return ok;
}

static const char *ns_phase(const struct knamespace *n)
{
	if (n->meta.deleted || n->phase == KNS_TERMINATING)
		return "terminating";
	return "active";
}

static void ns_body(struct jsonb *b, const void *arg)
{
	const struct knamespace *n = arg;
	jsonb_obj(b);
	jsonb_kstr(b, "namespace", n->meta.name);
	jsonb_kstr(b, "phase", ns_phase(n));
	jsonb_obj_end(b);
}

static void ns_event(struct api_events *ev, const char *action, const struct knamespace *n)
{
	const char *t = kobj_label(&n->meta, TENANT_LABEL);
	if (t && *t)
		api_events_publish(ev, "tenant", action, t, n->meta.name, t, ns_body, n);
}

static void on_ns_add(void *arg, struct kobj *o) { ns_event(arg, "added", (const struct knamespace *)o); }
static void on_ns_delete(void *arg, struct kobj *o) { ns_event(arg, "deleted", (const struct knamespace *)o); }
static void on_ns_update(void *arg, struct kobj *old, struct kobj *o)
{
	const struct knamespace *a = (const void *)old, *b = (const void *)o;
	const char *ta = kobj_label(old, TENANT_LABEL), *tb = kobj_label(o, TENANT_LABEL);
	if (strcmp(ns_phase(a), ns_phase(b)) != 0 || !ta != !tb || (ta && strcmp(ta, tb) != 0))
		ns_event(arg, "updated", b);
}

static void cr_body(struct jsonb *b, const void *arg)
{
	const struct kcomputerequest *c = arg;
	jsonb_obj(b);
	jsonb_kstr(b, "image", c->image);
	jsonb_kstr(b, "cpu", c->cpu.raw);
	jsonb_kstr(b, "memory", c->memory.raw);
	jsonb_kint(b, "replicas", c->replicas < 0 ? 1 : c->replicas);
	jsonb_kstr(b, "phase", c->phase);
	jsonb_kint(b, "statusReplicas", c->status_replicas);
	jsonb_kint(b, "readyReplicas", c->ready_replicas);
	if (c->as_desired_replicas >= 0)
		jsonb_kint(b, "desiredReplicas", c->as_desired_replicas);
	jsonb_obj_end(b);
}

static void cr_event(struct api_events *ev, const char *action, const struct kcomputerequest *c)
{
	char t[64];
	if (ns_tenant(ev, c->meta.ns, t, sizeof(t)))
		api_events_publish(ev, "workload", action, t, c->meta.ns, c->meta.name, cr_body, c);
}

static void on_cr_add(void *arg, struct kobj *o) { cr_event(arg, "added", (const struct kcomputerequest *)o); }
static void on_cr_delete(void *arg, struct kobj *o) { cr_event(arg, "deleted", (const struct kcomputerequest *)o); }
static void on_cr_update(void *arg, struct kobj *old, struct kobj *o)
{
	const struct kcomputerequest *a = (const void *)old, *b = (const void *)o;
	if (strcmp(a->phase, b->phase) != 0 || a->replicas != b->replicas || a->status_replicas != b->status_replicas ||
	    a->ready_replicas != b->ready_replicas || a->as_desired_replicas != b->as_desired_replicas ||
	    strcmp(a->image, b->image) != 0 || (!a->meta.deleted) != (!b->meta.deleted))
		cr_event(arg, "updated", b);
}

static const char *pod_phase(const struct kpod *p)
{
	static const char *const names[] = {"", "Pending", "Running", "Succeeded", "Failed", "Unknown"};
	return p->phase < sizeof(names) / sizeof(names[0]) ? names[p->phase] : "";
}

static void pod_body(struct jsonb *b, const void *arg)
{
	const struct kpod *p = arg;
	jsonb_obj(b);
	jsonb_kstr(b, "phase", pod_phase(p));
	jsonb_kbool(b, "ready", p->ready == KCOND_TRUE);
	jsonb_kstr(b, "node", p->node_name);
	jsonb_kstr(b, "scheduler", p->scheduler_name);
	jsonb_obj_end(b);
}

static void placement(struct api_events *ev, const char *tenant, const struct kpod *p)
{
	struct api_placement pl = {0};
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(pl.pod, sizeof(pl.pod), "%s/%s", p->meta.ns, p->meta.name);
	snprintf(pl.node, sizeof(pl.node), "%s", p->node_name);
	snprintf(pl.tenant, sizeof(pl.tenant), "%s", tenant);
	snprintf(pl.scheduler, sizeof(pl.scheduler), "%s", p->scheduler_name);
	pl.time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	pthread_mutex_lock(&ev->mu);
	ev->placements[ev->placement_head] = pl;
	ev->placement_head = (ev->placement_head + 1) % API_EVENTS_PLACEMENTS;
	if (ev->nplacements < API_EVENTS_PLACEMENTS)
		ev->nplacements++;
	pthread_mutex_unlock(&ev->mu);
	api_events_publish(ev, "placement", "bound", tenant, p->meta.ns, p->meta.name, pod_body, p);
}

static void on_pod_add(void *arg, struct kobj *o)
{
	char t[64];
	if (ns_tenant(arg, o->ns, t, sizeof(t)))
		api_events_publish(arg, "pod", "added", t, o->ns, o->name, pod_body, o);
}

static void on_pod_delete(void *arg, struct kobj *o)
{
	char t[64];
	if (ns_tenant(arg, o->ns, t, sizeof(t)))
		api_events_publish(arg, "pod", "deleted", t, o->ns, o->name, pod_body, o);
}

static void on_pod_update(void *arg, struct kobj *old, struct kobj *o)
{
	const struct kpod *a = (const void *)old, *b = (const void *)o;
	char t[64];
	if (!ns_tenant(arg, o->ns, t, sizeof(t)))
		return;
	if (!*a->node_name && *b->node_name)
		placement(arg, t, b);
	if (a->phase != b->phase || a->ready != b->ready || strcmp(a->node_name, b->node_name) != 0)
		api_events_publish(arg, "pod", "updated", t, o->ns, o->name, pod_body, b);
}

/* ---- lifecycle ------------------------------------------------------------------ */

int api_events_new(struct api_events **out, const struct api_events_options *o, struct kerr *e)
{
	*out = NULL;
	if (!o->namespaces)
		return kerr_set(e, KERR_INVAL, "api_events: the namespace informer is required");
	struct api_events *ev = calloc(1, sizeof(*ev));
	if (!ev)
		return kerr_set(e, KERR_NOMEM, "api_events: out of memory");
	ev->capacity = o->capacity ? o->capacity : API_EVENTS_DEFAULT_CAPACITY;
	ev->namespaces = o->namespaces;
	unsigned char id[8];
	if (!(ev->ring = calloc(ev->capacity, sizeof(*ev->ring))) || pthread_mutex_init(&ev->mu, NULL) != 0) {
		free(ev->ring);
		free(ev);
		return kerr_set(e, KERR_NOMEM, "api_events: out of memory");
	}
	if (RAND_bytes(id, sizeof(id)) != 1) {
		api_events_free(ev);
		return kerr_set(e, KERR_IO, "api_events: the system random generator failed");
	}
	for (size_t i = 0; i < sizeof(id); i++)
		snprintf(ev->stream + 2 * i, 3, "%02x", id[i]);
	struct informer_handlers nh = {on_ns_add, on_ns_update, on_ns_delete, ev};
	struct informer_handlers ch = {on_cr_add, on_cr_update, on_cr_delete, ev};
	struct informer_handlers ph = {on_pod_add, on_pod_update, on_pod_delete, ev};
	if (informer_add_handlers(o->namespaces, &nh) < 0 ||
	    (o->computerequests && informer_add_handlers(o->computerequests, &ch) < 0) ||
	    (o->pods && informer_add_handlers(o->pods, &ph) < 0)) {
		api_events_free(ev);
		return kerr_set(e, KERR_INVAL, "api_events: cannot add informer handlers (started, or 8 already)");
	}
	*out = ev;
	return 0;
}

void api_events_attach(struct api_events *ev, struct httpd *h)
{
	pthread_mutex_lock(&ev->mu);
	ev->httpd = h;
	if (!h)
		ev->nsubs = 0;
	pthread_mutex_unlock(&ev->mu);
}

const char *api_events_stream(const struct api_events *ev) { return ev->stream; }

void api_events_free(struct api_events *ev)
{
	if (!ev)
		return;
	for (size_t i = 0; i < ev->capacity; i++)
		free(ev->ring[i].json);
	free(ev->ring);
	free(ev->subs);
	pthread_mutex_destroy(&ev->mu);
	free(ev);
}
