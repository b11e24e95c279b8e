#include "scheduler.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_tree.h>

/* An allocation failure inside uthash leaves the item out of its table
 * (hh.tbl == NULL) instead of exiting the process. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "jsonb.h"
#include "kube_write.h"
#include "log.h"
#include "quantity.h"
#include "timefmt.h"

#define LOGGER "scheduler"
#define USAGE_PATH "/apis/metrics.k8s.io/v1beta1/nodes"
/* A NodeMetricsList is ~400 B per node; this allows for tens of thousands. */
#define USAGE_MAX_BODY (32u << 20)

/* A pod of ours not yet seen bound. */
struct track {
	UT_hash_handle hh;
	char *key;                  /* "ns/name"; the hash key */
	char *uid;                  /* the pod this entry is about; a new uid is a new pod */
	int32_t priority;
	int64_t created;            /* unix seconds */
	bool parked;                /* unschedulable, waiting for an event that could make room */
	/* The assumption: set from the decision until the informer shows the
	 * pod bound or deleted, or the bind fails. */
	bool assumed;
	char *node;                 /* assumed node (owned), when assumed */
	struct kresources requests; /* the pod's requests, when assumed */
	char *last_failure;         /* the last FailedScheduling message sent; NULL: none */
	unsigned last_failure_kinds; /* its sched_failure_kinds() */
	int64_t last_failure_ms;    /* when it was sent (mono_ms) */
};

/* What the pods bound or assumed to one node request; kept up to date by
 * the pod handlers and the assumptions, so that a decision costs a lookup
 * per node rather than a walk over every pod. */
struct node_sum {
	UT_hash_handle hh;
	char *name;                 /* the node; the hash key */
	struct kresources requested;
	int64_t npods;
};

struct usage_entry {
	char *name;
	struct kresources usage;
};

struct scheduler {
	char *name;
	struct kube_client *client;
	struct informer *pods, *nodes;
	struct controller *ctl;
	struct sched_weights w;
	int64_t usage_period_ms;

	/* mu guards tracks, sums and started, and is held for each whole
	 * decision (snapshot, choice, assumption) so that two workers never
	 * see the same free room. Lock order: mu, then usage_mu. */
	pthread_mutex_t mu;
	struct track *tracks;
	size_t nparked;             /* tracks with parked set */
	struct node_sum *sums;      /* by node name; only nodes with pods */
	bool sums_lost;             /* a sum could not be recorded (out of memory) */
	bool started;

	/* The latest node usage, sorted by name; replaced whole by the sampler. */
	pthread_mutex_t usage_mu;
	pthread_cond_t usage_cond;  /* wakes the sampler early to stop */
	struct usage_entry *usage;
	size_t nusage;
	int64_t usage_at_ms;        /* CLOCK_MONOTONIC ms of the sample; 0: none yet */
	atomic_int stop_sampler;
	bool sampler_running;
	pthread_t sampler;

	pthread_mutex_t ring_mu;
	struct scheduler_placement ring[SCHEDULER_RECENT_MAX];
	size_t ring_next, ring_len;

	struct metrics_family *attempts, *e2e, *pending; /* NULL without a registry */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double unix_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

size_t scheduler_pod_node_index(const struct kobj *o, void *arg, const char **values, size_t max)
{
	(void)arg;
	const struct kpod *p = (const struct kpod *)o;
	if (o->kind != &kind_pod || max == 0 || !p->node_name[0])
		return 0;
	values[0] = p->node_name;
	return 1;
}

/* ---- pods of ours ------------------------------------------------------------ */

static bool is_ours(const struct scheduler *s, const struct kpod *p)
{
	return !p->node_name[0] && strcmp(p->scheduler_name, s->name) == 0 && !p->meta.deleted &&
	       (p->phase == KPOD_PENDING || p->phase == KPOD_PHASE_NONE);
}

static bool terminal(const struct kpod *p) { return p->phase == KPOD_SUCCEEDED || p->phase == KPOD_FAILED; }

/* Whether p occupies room on a node. */
static bool holds_room(const struct kpod *p) { return p->node_name[0] && !terminal(p); }

/* Add (sign 1) or take back (sign -1) one pod's requests on node. mu held. */
static void sum_add(struct scheduler *s, const char *node, const struct kresources *r, int sign)
{
	struct node_sum *n = NULL;
	HASH_FIND_STR(s->sums, node, n);
	if (!n) {
		if (sign < 0 || !(n = calloc(1, sizeof(*n))) || !(n->name = strdup(node))) {
			if (n)
				free(n);
			goto lost;
		}
		HASH_ADD_KEYPTR(hh, s->sums, n->name, strlen(n->name), n);
		if (!n->hh.tbl) {
			free(n->name);
			free(n);
			goto lost;
		}
	}
	n->requested.cpu_milli += sign * r->cpu_milli;
	n->requested.memory += sign * r->memory;
	n->npods += sign;
	if (n->npods == 0) {
		HASH_DEL(s->sums, n);
		free(n->name);
		free(n);
	}
	return;
lost:
	/* Without a true sum a decision could over-commit the node: every
	 * decision fails from now on, loudly. */
	if (!s->sums_lost)
		log_error(LOGGER, "out of memory keeping what the pods of a node request; nimbus-scheduler "
				  "binds nothing more until nimbus-operator restarts",
			  "node", node, NULL);
	s->sums_lost = true;
}

/* Count (sign 1) or uncount (sign -1) a pod the informer shows, if it holds room. mu held. */
static void sum_pod(struct scheduler *s, const struct kpod *p, int sign)
{
	if (holds_room(p))
		sum_add(s, p->node_name, &p->requests, sign);
}

static void set_parked(struct scheduler *s, struct track *t, bool parked)
{
	if (t->parked != parked)
		s->nparked += parked ? 1 : (size_t)-1;
	t->parked = parked;
}

static void count_pending(struct scheduler *s)
{
	if (s->pending)
		metrics_gauge_set(s->pending, (double)HASH_COUNT(s->tracks), NULL, 0);
}

static struct track *track_find(struct scheduler *s, const char *key)
{
	struct track *t = NULL;
	HASH_FIND_STR(s->tracks, key, t);
	return t;
}

static void forget_assumption(struct scheduler *s, struct track *t)
{
	if (t->assumed)
		sum_add(s, t->node, &t->requests, -1);
	t->assumed = false;
	free(t->node);
	t->node = NULL;
}

static void track_drop(struct scheduler *s, struct track *t)
{
	forget_assumption(s, t);
	set_parked(s, t, false);
	HASH_DEL(s->tracks, t);
	free(t->key);
	free(t->uid);
	free(t->node);
	free(t->last_failure);
	free(t);
	count_pending(s);
}

/* A new entry for p, or NULL when out of memory. */
static struct track *track_add(struct scheduler *s, const struct kpod *p)
{
	struct track *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->key = strdup(p->meta.key);
	t->uid = strdup(p->meta.uid);
	t->priority = p->priority;
	t->created = p->meta.created;
	if (t->key && t->uid) {
		HASH_ADD_KEYPTR(hh, s->tracks, t->key, strlen(t->key), t);
		if (t->hh.tbl) {
			count_pending(s);
			return t;
		}
	}
	free(t->key);
	free(t->uid);
	free(t);
	return NULL;
}

/* Highest priority first, then oldest, then by key: the order in which
 * pods released together are served. */
static int track_order(const struct track *a, const struct track *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	if (a->created != b->created)
		return a->created < b->created ? -1 : 1;
	return strcmp(a->key, b->key);
}

static int track_cmp(void *a, void *b) { return track_order(a, b); }

/* Something may have made room: queue every parked pod, best first. mu held. */
static void release_parked(struct scheduler *s)
{
	/* Pods are deleted and bound by the thousand: no walk over every
	 * pending pod when none waits for room. */
	if (!s->started || s->nparked == 0)
		return;
	HASH_SORT(s->tracks, track_cmp);
	for (struct track *t = s->tracks; t; t = t->hh.next) {
		if (t->parked) {
			set_parked(s, t, false);
			controller_enqueue(s->ctl, t->key);
		}
	}
}

/*
 * Bring the entry for key up to date with the pod as the cache shows it
 * (p == NULL: gone). Returns the entry when the pod is ours and waits for a
 * decision, else NULL; *freed tells whether an assumption was given up,
 * which makes room. mu held.
 */
static struct track *settle(struct scheduler *s, const char *key, const struct kpod *p, bool *freed)
{
	struct track *t = track_find(s, key);
	if (t && (!p || strcmp(t->uid, p->meta.uid) != 0)) {
		/* Deleted, or replaced by a new pod of the same name. */
		*freed = *freed || t->assumed;
		track_drop(s, t);
		t = NULL;
	}
	if (p && is_ours(s, p)) {
		if (!t && !(t = track_add(s, p)))
			log_error(LOGGER, "out of memory tracking a pending pod; it is scheduled without event deduplication",
				  "pod", key, NULL);
		return t && t->assumed ? NULL : t;
	}
	/* No longer ours: bound (the node's pods count it from now on),
	 * terminating or finished. An assumption stays until the pod shows
	 * bound or goes, so that a lagging watch cannot free room early. */
	if (t && (!t->assumed || p->node_name[0]))
		track_drop(s, t);
	return NULL;
}

/* Queue (or, before the start, park) a pod that is ours. mu held. */
static void want(struct scheduler *s, struct track *t, const char *key)
{
	if (!s->started) {
		if (t)
			set_parked(s, t, true);
		return;
	}
	if (t)
		set_parked(s, t, false);
	controller_enqueue(s->ctl, key);
}

static void on_pod(struct scheduler *s, const struct kpod *old, const struct kpod *p, const char *key)
{
	bool freed = false;
	pthread_mutex_lock(&s->mu);
	/* The new state first, so that a node's sum never drops to nothing
	 * between the two. settle() below ends an assumption that the pod now
	 * shows bound: the pod counts once, as assumed or as bound. */
	if (p)
		sum_pod(s, p, 1);
	if (old)
		sum_pod(s, old, -1);
	struct track *t = settle(s, key, p, &freed);
	if (p && is_ours(s, p) && (t || !track_find(s, key)))
		want(s, t, key);
	/* Gone, finished, or resized smaller in place: room on old's node. */
	if (old && holds_room(old) &&
	    (!p || !holds_room(p) || p->requests.cpu_milli < old->requests.cpu_milli ||
	     p->requests.memory < old->requests.memory))
		freed = true;
	if (freed)
		release_parked(s);
	pthread_mutex_unlock(&s->mu);
}

static void pod_add(void *arg, struct kobj *o) { on_pod(arg, NULL, (const struct kpod *)o, o->key); }

static void pod_update(void *arg, struct kobj *old, struct kobj *o)
{
	on_pod(arg, (const struct kpod *)old, (const struct kpod *)o, o->key);
}

static void pod_delete(void *arg, struct kobj *o) { on_pod(arg, (const struct kpod *)o, NULL, o->key); }

/* ---- nodes --------------------------------------------------------------------- */

/* Whether a node update can change a scheduling decision; status heartbeats
 * cannot, and must not wake every parked pod. */
static bool node_changed(const struct knode *a, const struct knode *b)
{
	if (a->allocatable.cpu_milli != b->allocatable.cpu_milli || a->allocatable.memory != b->allocatable.memory ||
	    a->allocatable.pods != b->allocatable.pods || a->unschedulable != b->unschedulable ||
	    a->ready != b->ready || a->ntaints != b->ntaints || a->meta.nlabels != b->meta.nlabels)
		return true;
	for (size_t i = 0; i < a->ntaints; i++)
		if (a->taints[i].effect != b->taints[i].effect || strcmp(a->taints[i].key, b->taints[i].key) != 0 ||
		    strcmp(a->taints[i].value, b->taints[i].value) != 0)
			return true;
	for (size_t i = 0; i < a->meta.nlabels; i++)
		if (strcmp(a->meta.labels[i].key, b->meta.labels[i].key) != 0 ||
		    strcmp(a->meta.labels[i].value, b->meta.labels[i].value) != 0)
			return true;
	return false;
}

static void node_room(struct scheduler *s)
{
	pthread_mutex_lock(&s->mu);
	release_parked(s);
	pthread_mutex_unlock(&s->mu);
}

static void node_add(void *arg, struct kobj *o)
{
	(void)o;
	node_room(arg);
}

static void node_update(void *arg, struct kobj *old, struct kobj *o)
{
	if (node_changed((const struct knode *)old, (const struct knode *)o))
		node_room(arg);
}

/* ---- the snapshot ----------------------------------------------------------------- */

struct snapshot {
	struct kobj **nodes;      /* the node cache, in its own order */
	size_t n;
	struct sched_node *sn;    /* one per node */
};

static const struct usage_entry *usage_find(const struct scheduler *s, const char *name)
{
	size_t lo = 0, hi = s->nusage;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->usage[mid].name, name);
		if (c == 0)
			return &s->usage[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void snapshot_free(struct snapshot *sn)
{
	free(sn->sn);
	store_list_free(sn->nodes, sn->n);
	memset(sn, 0, sizeof(*sn));
}

/* Nodes, what their pods and the assumptions request (the sums), and their
 * usage. sched_choose() breaks ties by name, so the order of the node
 * cache does not matter. mu held. */
static int snapshot_take(struct scheduler *s, struct snapshot *sn, struct kerr *e)
{
	memset(sn, 0, sizeof(*sn));
	if (s->sums_lost)
		return kerr_set(e, KERR_NOMEM, "the node sums were lost to an out-of-memory error; restart nimbus-operator");
	int rc = store_list(informer_store(s->nodes), &sn->nodes, &sn->n);
	if (rc < 0)
		return kerr_set(e, rc, "listing the node cache: %s", kerr_strerror(rc));
	if (sn->n == 0)
		return 0;
	if (!(sn->sn = calloc(sn->n, sizeof(*sn->sn)))) {
		snapshot_free(sn);
		return kerr_set(e, KERR_NOMEM, "out of memory taking a scheduling snapshot");
	}
	pthread_mutex_lock(&s->usage_mu);
	int64_t age = s->usage_at_ms ? mono_ms() - s->usage_at_ms : -1;
	for (size_t i = 0; i < sn->n; i++) {
		struct sched_node *n = &sn->sn[i];
		const char *name = sn->nodes[i]->name;
		n->node = (const struct knode *)sn->nodes[i];
		const struct node_sum *sum = NULL;
		HASH_FIND_STR(s->sums, name, sum);
		if (sum) {
			n->requested = sum->requested;
			n->npods = sum->npods;
		}
		const struct usage_entry *u = usage_find(s, name);
		n->usage_age_ms = u ? age : -1;
		if (u)
			n->usage = u->usage;
	}
	pthread_mutex_unlock(&s->usage_mu);
	return 0;
}

/* ---- writes ------------------------------------------------------------------------ */

static int bind(struct scheduler *s, const struct kpod *p, const char *node, struct kerr *e)
{
	char path[1024];
	int n = snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/binding", p->meta.ns, p->meta.name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return kerr_set(e, KERR_TOO_LARGE, "binding path too long for pod %s", p->meta.key);
	struct jsonb *b = jsonb_new();
	if (!b)
		return kerr_set(e, KERR_NOMEM, "out of memory binding %s", p->meta.key);
	jsonb_obj(b);
	jsonb_kstr(b, "apiVersion", "v1");
	jsonb_kstr(b, "kind", "Binding");
	jsonb_key(b, "metadata");
	jsonb_obj(b);
	jsonb_kstr(b, "name", p->meta.name);
	jsonb_kstr(b, "namespace", p->meta.ns);
	/* The uid makes the apiserver refuse (409) to bind a new pod that took
	 * the name of the one this decision was about. */
	jsonb_kstr(b, "uid", p->meta.uid);
	jsonb_obj_end(b);
	jsonb_key(b, "target");
	jsonb_obj(b);
	jsonb_kstr(b, "apiVersion", "v1");
	jsonb_kstr(b, "kind", "Node");
	jsonb_kstr(b, "name", node);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
	const char *doc;
	size_t len;
	int rc = jsonb_result(b, &doc, &len, e);
	if (rc == 0) {
		struct kube_response r;
		rc = kube_client_request(s->client, "POST", path, NULL, doc, len, &r, e);
		kube_response_free(&r);
	}
	jsonb_free(b);
	return rc;
}

static void event(struct scheduler *s, const struct kpod *p, enum kube_event_type type, const char *reason,
		  const char *message)
{
	struct kerr e = {0};
	if (kube_event(s->client, &p->meta, type, reason, message, &e) < 0)
		log_warn(LOGGER, "cannot record an event", "pod", p->meta.key, "reason", reason, "error", e.message, NULL);
}

static void attempt(struct scheduler *s, const char *result)
{
	if (s->attempts)
		metrics_counter_inc(s->attempts, METRICS_LABELS(result));
}

static void record_placement(struct scheduler *s, const struct kpod *p, const char *node, int score)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&s->ring_mu);
	struct scheduler_placement *pl = &s->ring[s->ring_next];
	snprintf(pl->pod, sizeof(pl->pod), "%s", p->meta.key);
	snprintf(pl->node, sizeof(pl->node), "%s", node);
	pl->score = score;
	pl->time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	s->ring_next = (s->ring_next + 1) % SCHEDULER_RECENT_MAX;
	if (s->ring_len < SCHEDULER_RECENT_MAX)
		s->ring_len++;
	pthread_mutex_unlock(&s->ring_mu);
}

/* ---- the reconciler ---------------------------------------------------------------- */

/* A failure whose kinds of reasons are unchanged is told again at most this
 * often: while nodes flap, the counts in the message change on every retry,
 * and an Event each time would flood the apiserver with writes. */
#define FAILURE_REPEAT_MS 60000

/* A pod that fits nowhere: park it, and tell the user when the reasons
 * changed (or only their counts, but not for FAILURE_REPEAT_MS). mu held on
 * entry, released. */
static struct reconcile_result unschedulable(struct scheduler *s, struct track *t, const struct kpod *p,
					     const struct sched_failures *f)
{
	char msg[1024];
	sched_failure_message(f, msg, sizeof(msg));
	unsigned kinds = sched_failure_kinds(f);
	int64_t now = mono_ms();
	bool tell = !t->last_failure || kinds != t->last_failure_kinds ||
		    (strcmp(t->last_failure, msg) != 0 && now - t->last_failure_ms >= FAILURE_REPEAT_MS);
	set_parked(s, t, true);
	if (tell) {
		free(t->last_failure);
		t->last_failure = strdup(msg); /* on failure the next attempt just says it again */
		t->last_failure_kinds = kinds;
		t->last_failure_ms = now;
	}
	pthread_mutex_unlock(&s->mu);
	attempt(s, "unschedulable");
	if (tell) {
		log_info(LOGGER, "pod unschedulable; parked until a node or pod change could make room", "pod",
			 p->meta.key, "reason", msg, NULL);
		event(s, p, KUBE_EVENT_WARNING, "FailedScheduling", msg);
	} else {
		log_debug(LOGGER, "pod still unschedulable", "pod", p->meta.key, "reason", msg, NULL);
	}
	return reconcile_done();
}

static struct reconcile_result scheduler_reconcile(void *arg, const char *key, struct kerr *e)
{
	struct scheduler *s = arg;
	struct kpod *p = (struct kpod *)store_get(informer_store(s->pods), key);
	bool freed = false;
	pthread_mutex_lock(&s->mu);
	struct track *t = settle(s, key, p, &freed);
	if (freed)
		release_parked(s);
	if (!p || !is_ours(s, p) || !t) {
		/* Gone, bound, not ours, or assumed (bound and waiting for the
		 * watch); a tracking failure (out of memory) retries. */
		bool retry = p && is_ours(s, p) && !track_find(s, key);
		pthread_mutex_unlock(&s->mu);
		kobj_unref(p ? &p->meta : NULL);
		if (retry) {
			kerr_set(e, KERR_NOMEM, "out of memory tracking pod %s", key);
			return reconcile_error();
		}
		return reconcile_done();
	}

	struct snapshot sn;
	if (snapshot_take(s, &sn, e) < 0) {
		pthread_mutex_unlock(&s->mu);
		kobj_unref(&p->meta);
		attempt(s, "error");
		return reconcile_error();
	}
	double score = 0;
	struct sched_failures f;
	long best = sched_choose(p, sn.sn, sn.n, &s->w, &score, &f);
	if (best < 0) {
		struct reconcile_result r = unschedulable(s, t, p, &f);
		snapshot_free(&sn);
		kobj_unref(&p->meta);
		return r;
	}
	char node[256];
	snprintf(node, sizeof(node), "%s", sn.nodes[best]->name);
	snapshot_free(&sn);
	if (!(t->node = strdup(node))) {
		pthread_mutex_unlock(&s->mu);
		kobj_unref(&p->meta);
		kerr_set(e, KERR_NOMEM, "out of memory assuming pod %s", key);
		attempt(s, "error");
		return reconcile_error();
	}
	t->assumed = true;
	set_parked(s, t, false);
	t->requests = p->requests;
	sum_add(s, node, &t->requests, 1);
	pthread_mutex_unlock(&s->mu);

	int iscore = (int)lround(score);
	struct kerr be = {0};
	int rc = bind(s, p, node, &be);
	struct reconcile_result result = reconcile_done();
	if (rc < 0) {
		/* The assumption goes, if it is still this pod's: room for others. */
		pthread_mutex_lock(&s->mu);
		struct track *now = track_find(s, key);
		if (now && now->assumed && strcmp(now->uid, p->meta.uid) == 0) {
			forget_assumption(s, now);
			release_parked(s);
		}
		pthread_mutex_unlock(&s->mu);
		if (rc == KERR_CONFLICT || rc == KERR_ALREADY_EXISTS || rc == KERR_NOT_FOUND) {
			/* Bound by someone else, deleted, or replaced: the watch
			 * brings the pod's new state. */
			log_info(LOGGER, "pod bound or deleted meanwhile; nothing to do", "pod", key, "reason",
				 be.message, NULL);
		} else {
			kerr_set(e, rc, "binding %s to %s: %s", key, node, be.message);
			attempt(s, "error");
			result = reconcile_error();
		}
		kobj_unref(&p->meta);
		return result;
	}
	attempt(s, "scheduled");
	if (s->e2e) {
		double e2e = unix_seconds() - (double)p->meta.created;
		metrics_histogram_observe(s->e2e, e2e > 0 ? e2e : 0, NULL, 0);
	}
	record_placement(s, p, node, iscore);
	char score_s[16], msg[1024];
	snprintf(score_s, sizeof(score_s), "%d", iscore);
	snprintf(msg, sizeof(msg), "Successfully assigned %s to %s (score %d)", key, node, iscore);
	log_info(LOGGER, "pod scheduled", "pod", key, "node", node, "score", score_s, NULL);
	event(s, p, KUBE_EVENT_NORMAL, "Scheduled", msg);
	kobj_unref(&p->meta);
	return result;
}

/* ---- live usage ---------------------------------------------------------------------- */

struct body {
	char *buf;
	size_t len, cap;
};

static int body_append(void *arg, const char *data, size_t len)
{
	struct body *b = arg;
	if (b->len + len + 1 > USAGE_MAX_BODY)
		return KERR_TOO_LARGE;
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap < b->len + len + 1)
			cap *= 2;
		char *nb = realloc(b->buf, cap);
		if (!nb)
			return KERR_NOMEM;
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	b->buf[b->len] = '\0';
	return 0;
}

static void usage_free(struct usage_entry *u, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(u[i].name);
	free(u);
}

static int usage_cmp(const void *a, const void *b)
{
	return strcmp(((const struct usage_entry *)a)->name, ((const struct usage_entry *)b)->name);
}

/* Parse a NodeMetricsList into a sorted array (*out, owned by the caller).
 * Items with a value that does not parse are skipped. */
static int usage_parse(const char *json, struct usage_entry **out, size_t *nout, struct kerr *e)
{
	*out = NULL;
	*nout = 0;
	char err[256] = "";
	yajl_val root = yajl_tree_parse(json, err, sizeof(err));
	if (!root)
		return kerr_set(e, KERR_PARSE, "%s is not JSON: %s", USAGE_PATH, err);
	yajl_val items = yajl_tree_get(root, (const char *[]){"items", NULL}, yajl_t_array);
	size_t n = items ? YAJL_GET_ARRAY(items)->len : 0;
	struct usage_entry *u = n ? calloc(n, sizeof(*u)) : NULL;
	if (n && !u) {
		yajl_tree_free(root);
		return kerr_set(e, KERR_NOMEM, "out of memory reading node usage");
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		yajl_val it = YAJL_GET_ARRAY(items)->values[i];
		const char *name = YAJL_GET_STRING(yajl_tree_get(it, (const char *[]){"metadata", "name", NULL}, yajl_t_string));
		const char *cpu = YAJL_GET_STRING(yajl_tree_get(it, (const char *[]){"usage", "cpu", NULL}, yajl_t_string));
		const char *mem = YAJL_GET_STRING(yajl_tree_get(it, (const char *[]){"usage", "memory", NULL}, yajl_t_string));
		struct kresources r;
		if (!name || !cpu || !mem || quantity_parse_milli(cpu, strlen(cpu), &r.cpu_milli, NULL) < 0 ||
		    quantity_parse_value(mem, strlen(mem), &r.memory, NULL) < 0)
			continue;
		if (!(u[k].name = strdup(name))) {
			usage_free(u, k);
			yajl_tree_free(root);
			return kerr_set(e, KERR_NOMEM, "out of memory reading node usage");
		}
		u[k++].usage = r;
	}
	yajl_tree_free(root);
	if (k)
		qsort(u, k, sizeof(*u), usage_cmp);
	*out = u;
	*nout = k;
	return 0;
}

static int sample(struct scheduler *s, struct kerr *e)
{
	struct body b = {0};
	struct kube_stream_options so = {.timeout_ms = 30000, .cancel = &s->stop_sampler};
	int rc = kube_client_stream(s->client, USAGE_PATH, body_append, &b, &so, NULL, e);
	if (rc == 0 && !b.buf)
		rc = kerr_set(e, KERR_PARSE, "%s answered with an empty body", USAGE_PATH);
	struct usage_entry *u = NULL;
	size_t n = 0;
	if (rc == 0)
		rc = usage_parse(b.buf, &u, &n, e);
	free(b.buf);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&s->usage_mu);
	struct usage_entry *old = s->usage;
	size_t nold = s->nusage;
	s->usage = u;
	s->nusage = n;
	s->usage_at_ms = mono_ms();
	pthread_mutex_unlock(&s->usage_mu);
	usage_free(old, nold);
	return 0;
}

static void *sampler_main(void *arg)
{
	struct scheduler *s = arg;
	bool failing = false;
	while (!atomic_load(&s->stop_sampler)) {
		struct kerr e = {0};
		if (sample(s, &e) < 0) {
			if (!failing && !atomic_load(&s->stop_sampler))
				log_warn(LOGGER, "cannot read node usage from metrics.k8s.io; scoring by requests only "
						 "until it answers (is metrics-server installed?)",
					 "error", e.message, "code", kerr_name(e.code), NULL);
			failing = true;
		} else if (failing) {
			log_info(LOGGER, "node usage from metrics.k8s.io available again", NULL);
			failing = false;
		}
		struct timespec until = timefmt_deadline(s->usage_period_ms);
		pthread_mutex_lock(&s->usage_mu);
		while (!atomic_load(&s->stop_sampler) && pthread_cond_timedwait(&s->usage_cond, &s->usage_mu, &until) == 0)
			;
		pthread_mutex_unlock(&s->usage_mu);
	}
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static const double e2e_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900};

static int register_metrics(struct scheduler *s, struct metrics_registry *r, struct kerr *e)
{
	static const char *const result[] = {"result"};
	int rc = metrics_counter_new(r, "nimbus_scheduler_attempts_total",
				     "Scheduling attempts by result (scheduled, unschedulable, error).", result, 1,
				     &s->attempts, e);
	if (rc == 0)
		rc = metrics_histogram_new(r, "nimbus_scheduler_e2e_duration_seconds",
					   "Time from a pod's creation to its binding by nimbus-scheduler.", NULL, 0,
					   e2e_buckets, sizeof(e2e_buckets) / sizeof(e2e_buckets[0]), &s->e2e, e);
	if (rc == 0)
		rc = metrics_gauge_new(r, "nimbus_scheduler_pending_pods",
				       "Pods waiting for nimbus-scheduler: queued, being bound or parked.", NULL, 0,
				       &s->pending, e);
	return rc;
}

int scheduler_new(struct scheduler **out, const struct scheduler_options *o, struct kerr *e)
{
	*out = NULL;
	if (!o->client || !o->pods || !o->nodes || informer_kind(o->pods) != &kind_pod ||
	    informer_kind(o->nodes) != &kind_node)
		return kerr_set(e, KERR_INVAL, "scheduler: needs a client, a Pod informer and a Node informer");
	struct kobj **probe = NULL;
	size_t nprobe = 0;
	int rc = store_by_index(informer_store(o->pods), SCHEDULER_NODE_INDEX, "", &probe, &nprobe);
	store_list_free(probe, nprobe);
	if (rc == KERR_NOT_FOUND)
		return kerr_set(e, KERR_INVAL, "scheduler: the pod store has no \"%s\" index; register "
					       "scheduler_pod_node_index before starting the informer",
				SCHEDULER_NODE_INDEX);
	struct sched_weights w = o->weights ? *o->weights : sched_weights_default();
	if ((rc = sched_weights_check(&w, e)) < 0)
		return rc;

	struct scheduler *s = calloc(1, sizeof(*s));
	if (!s)
		return kerr_set(e, KERR_NOMEM, "scheduler: out of memory");
	s->client = o->client;
	s->pods = o->pods;
	s->nodes = o->nodes;
	s->w = w;
	s->usage_period_ms = o->usage_period_ms ? o->usage_period_ms : 10000;
	if (!(s->name = strdup(o->name ? o->name : SCHEDULER_DEFAULT_NAME))) {
		free(s);
		return kerr_set(e, KERR_NOMEM, "scheduler: out of memory");
	}
	pthread_condattr_t ca;
	int inited = 0;
	if (pthread_mutex_init(&s->mu, NULL) == 0 && ++inited && pthread_mutex_init(&s->usage_mu, NULL) == 0 &&
	    ++inited && pthread_mutex_init(&s->ring_mu, NULL) == 0 && ++inited && pthread_condattr_init(&ca) == 0) {
		if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&s->usage_cond, &ca) == 0)
			inited++;
		pthread_condattr_destroy(&ca);
	}
	if (inited < 4) {
		if (inited > 2)
			pthread_mutex_destroy(&s->ring_mu);
		if (inited > 1)
			pthread_mutex_destroy(&s->usage_mu);
		if (inited > 0)
			pthread_mutex_destroy(&s->mu);
		free(s->name);
		free(s);
		return kerr_set(e, KERR_NOMEM, "scheduler: cannot create its locks");
	}
	*out = s;
	if (o->metrics && (rc = register_metrics(s, o->metrics, e)) < 0)
		goto err;
	struct controller_options co = {"scheduler", o->workers, scheduler_reconcile, s, o->controller_metrics};
	if ((rc = controller_new(&s->ctl, &co, e)) < 0)
		goto err;
	struct informer_handlers ph = {pod_add, pod_update, pod_delete, s};
	struct informer_handlers nh = {node_add, node_update, NULL, s};
	if (informer_add_handlers(o->pods, &ph) < 0 || informer_add_handlers(o->nodes, &nh) < 0) {
		rc = kerr_set(e, KERR_INVAL, "scheduler: cannot add informer handlers (informer started, or 8 already)");
		goto err;
	}
	return 0;
err:
	scheduler_free(s);
	*out = NULL;
	return rc;
}

int scheduler_start(struct scheduler *s, struct kerr *e)
{
	if (!informer_has_synced(s->pods) || !informer_has_synced(s->nodes))
		return kerr_set(e, KERR_INVAL, "scheduler: start it once the pod and node caches have synced");
	int rc = controller_start(s->ctl, e);
	if (rc < 0)
		return rc;
	if (s->usage_period_ms > 0) {
		atomic_store(&s->stop_sampler, 0);
		if (pthread_create(&s->sampler, NULL, sampler_main, s) != 0) {
			controller_stop(s->ctl);
			return kerr_set(e, KERR_NOMEM, "scheduler: cannot start the usage sampler thread");
		}
		s->sampler_running = true;
	}
	pthread_mutex_lock(&s->mu);
	s->started = true;
	release_parked(s);
	size_t n = HASH_COUNT(s->tracks);
	pthread_mutex_unlock(&s->mu);
	char pending[24];
	snprintf(pending, sizeof(pending), "%zu", n);
	log_info(LOGGER, "scheduler started", "schedulerName", s->name, "pending", pending, NULL);
	return 0;
}

void scheduler_stop(struct scheduler *s)
{
	if (!s)
		return;
	controller_stop(s->ctl);
	if (s->sampler_running) {
		pthread_mutex_lock(&s->usage_mu);
		atomic_store(&s->stop_sampler, 1);
		pthread_cond_broadcast(&s->usage_cond);
		pthread_mutex_unlock(&s->usage_mu);
		pthread_join(s->sampler, NULL);
		s->sampler_running = false;
	}
}

void scheduler_free(struct scheduler *s)
{
	if (!s)
		return;
	scheduler_stop(s);
	controller_free(s->ctl);
	struct track *t, *tmp;
	HASH_ITER(hh, s->tracks, t, tmp) {
		HASH_DEL(s->tracks, t);
		free(t->key);
		free(t->uid);
		free(t->node);
		free(t->last_failure);
		free(t);
	}
	struct node_sum *n, *ntmp;
	HASH_ITER(hh, s->sums, n, ntmp) {
		HASH_DEL(s->sums, n);
		free(n->name);
		free(n);
	}
	usage_free(s->usage, s->nusage);
	pthread_cond_destroy(&s->usage_cond);
	pthread_mutex_destroy(&s->ring_mu);
	pthread_mutex_destroy(&s->usage_mu);
	pthread_mutex_destroy(&s->mu);
	free(s->name);
	free(s);
}

size_t scheduler_recent(struct scheduler *s, struct scheduler_placement *out, size_t max)
{
	pthread_mutex_lock(&s->ring_mu);
	size_t n = s->ring_len < max ? s->ring_len : max;
	for (size_t i = 0; i < n; i++)
		out[i] = s->ring[(s->ring_next + SCHEDULER_RECENT_MAX - 1 - i) % SCHEDULER_RECENT_MAX];
	pthread_mutex_unlock(&s->ring_mu);
	return n;
}

size_t scheduler_pending(struct scheduler *s)
{
	pthread_mutex_lock(&s->mu);
	size_t n = HASH_COUNT(s->tracks);
	pthread_mutex_unlock(&s->mu);
	return n;
}

bool scheduler_node_usage(struct scheduler *s, const char *node, struct kresources *out, int64_t *age_ms)
{
	pthread_mutex_lock(&s->usage_mu);
	const struct usage_entry *u = s->usage_at_ms ? usage_find(s, node) : NULL;
	if (u) {
		*out = u->usage;
		*age_ms = mono_ms() - s->usage_at_ms;
	}
	pthread_mutex_unlock(&s->usage_mu);
	return u != NULL;
}
