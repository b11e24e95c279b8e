#include "billing.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "jsonb.h"
#include "kinds.h"
#include "log.h"

#define LOGGER "billing"
#define METRICS_PATH "/apis/metrics.k8s.io/v1beta1/pods"
/* Rows per transaction when flushing: large enough that a backlog drains
 * fast and a pass over 10,000 pods takes two transactions, small enough
 * that one transaction stays well under a second. */
#define FLUSH_BATCH 5000
/* Deletion records are kept for pods of tenant namespaces only, and only
 * until the next sample takes them; these bound what a burst leaves. */
#define DELETIONS_MAX 100000
#define DELETION_TTL_MS (10 * 60 * 1000)
/* Closed pods' states are kept a week (they refuse overlapping rows, see
 * the migration) and purged hourly. */
#define PURGE_EVERY_MS (60 * 60 * 1000)
/* A metrics LIST that takes longer than this is abandoned for the cycle. */
#define SAMPLE_TIMEOUT_MS 60000

/* The sampler's view of one pod: its last sample. */
struct pod_state {
	UT_hash_handle hh;
	char *uid;       /* hash key; one allocation with ns and name */
	char *ns;
	char *name;
	char tenant[BILLING_TENANT_MAX];
	int64_t last_ms;
	int64_t cpu_nano;
	int64_t mem_bytes;
	uint64_t seen;   /* the cycle whose metrics last listed it */
};

/* What the informer said about a deleted pod. */
struct deletion {
	UT_hash_handle hh;
	int64_t deleted_ms;  /* deletionTimestamp; 0 when absent */
	int64_t observed_ms; /* wall clock when the informer reported it */
	char uid[];
};

/* A failure that repeats every period is logged when it starts, then at
 * most once per FAILURE_LOG_MS, and its end once. */
#define FAILURE_LOG_MS (60 * 1000)
struct failure {
	bool failing;
	int64_t logged_ms; /* CLOCK_MONOTONIC of the last line */
};

/* A buffered row; row's strings point into strs. */
struct brow {
	char *strs;
	struct billing_row row;
};

struct billing {
	struct billing_options o;

	/* The sampler thread's alone. */
	struct db *db;
	bool migrated;
	bool loaded;             /* epoch and pod states read from the database */
	int64_t epoch_ms;
	struct pod_state *pods;  /* by uid */
	uint64_t cycle;
	struct brow *ring;       /* FIFO of rows not yet committed */
	size_t ring_cap, head, len;
	bool warned_half;
	uint64_t dropped_cycle;  /* rows dropped in the current cycle */
	uint64_t dropped_total;
	uint64_t emitted;        /* rows computed since start */
	int64_t purged_ms;       /* CLOCK_MONOTONIC of the last purge; 0: none yet */
	struct failure sample_failure; /* the metrics GET */
	struct failure db_failure;     /* connecting, loading or writing */

	/* Written by the pod informer's thread, read by the sampler. */
	pthread_mutex_t del_mu;
	struct deletion *deletions;
	size_t ndeletions;

	pthread_mutex_t mu;
	pthread_cond_t cond;     /* signalled on stop; waits on CLOCK_MONOTONIC */
	bool stopping;
	bool started;
	pthread_t thread;
	atomic_int cancel;       /* ends an in-flight metrics request */

	/* NULL without a registry. */
	struct metrics_family *m_samples, *m_duration, *m_phase, *m_rows, *m_buffer, *m_dropped;
};

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The tenant of namespace ns into out, or false when it has none. */
static bool namespace_tenant(struct billing *b, const char *ns, char out[BILLING_TENANT_MAX])
{
	struct kobj *o = store_get(informer_store(b->o.namespaces), ns);
	const char *t = o ? kobj_label(o, BILLING_TENANT_LABEL) : NULL;
	bool ok = t && t[0] && strlen(t) < BILLING_TENANT_MAX;
	if (ok)
		memcpy(out, t, strlen(t) + 1);
	kobj_unref(o);
	return ok;
}

/* ---- deletions (informer thread) ------------------------------------------------ */

static void on_pod_delete(void *arg, struct kobj *obj)
{
	struct billing *b = arg;
	char tenant[BILLING_TENANT_MAX];
	size_t n = strlen(obj->uid);

	if (n == 0 || !namespace_tenant(b, obj->ns, tenant))
		return;
	pthread_mutex_lock(&b->del_mu);
	struct deletion *d;
	HASH_FIND(hh, b->deletions, obj->uid, n, d);
	if (!d && b->ndeletions < DELETIONS_MAX && (d = calloc(1, sizeof(*d) + n + 1)) != NULL) {
		memcpy(d->uid, obj->uid, n + 1);
		HASH_ADD(hh, b->deletions, uid[0], n, d);
		b->ndeletions++;
	}
	if (d) {
		d->deleted_ms = obj->deleted > 0 ? obj->deleted * 1000 : 0;
		d->observed_ms = wall_ms();
	}
	pthread_mutex_unlock(&b->del_mu);
}

/* Take (and forget) the deletion record of uid; false when there is none. */
static bool take_deletion(struct billing *b, const char *uid, int64_t *deleted_ms, int64_t *observed_ms)
{
	struct deletion *d;
	pthread_mutex_lock(&b->del_mu);
	HASH_FIND(hh, b->deletions, uid, strlen(uid), d);
	if (d) {
		*deleted_ms = d->deleted_ms;
		*observed_ms = d->observed_ms;
		HASH_DEL(b->deletions, d);
		b->ndeletions--;
		free(d);
	}
	pthread_mutex_unlock(&b->del_mu);
	return d != NULL;
}

/* Forget records nobody took: pods that were never sampled. */
static void purge_deletions(struct billing *b, int64_t now_ms)
{
	struct deletion *d, *tmp;
	pthread_mutex_lock(&b->del_mu);
	HASH_ITER(hh, b->deletions, d, tmp) {
		if (d->observed_ms < now_ms - DELETION_TTL_MS) {
			HASH_DEL(b->deletions, d);
			b->ndeletions--;
			free(d);
		}
	}
	pthread_mutex_unlock(&b->del_mu);
}

/* ---- the row buffer ----------------------------------------------------------- */

static void set_buffer_gauge(struct billing *b)
{
	if (b->m_buffer)
		metrics_gauge_set(b->m_buffer, (double)b->len, NULL, 0);
}

/* Make room for one more row: grow up to the bound, else drop the oldest. */
static int ring_reserve(struct billing *b)
{
	if (b->len == b->o.buffer_rows) {
		struct brow *old = &b->ring[b->head];
		free(old->strs);
		b->head = (b->head + 1) % b->ring_cap;
		b->len--;
		b->dropped_cycle++;
	}
	if (b->len < b->ring_cap)
		return 0;
	size_t cap = b->ring_cap ? b->ring_cap * 2 : 256;
	if (cap > b->o.buffer_rows)
		cap = b->o.buffer_rows;
	struct brow *r = malloc(cap * sizeof(*r));
	if (!r)
		return KERR_NOMEM;
	for (size_t i = 0; i < b->len; i++)
		r[i] = b->ring[(b->head + i) % b->ring_cap];
	free(b->ring);
	b->ring = r;
	b->ring_cap = cap;
	b->head = 0;
	return 0;
}

static int ring_push(struct billing *b, const struct billing_row *row)
{
	const char *src[4] = {row->tenant, row->pod_uid, row->namespace, row->pod_name};
	size_t len[4], total = 0;
	for (int i = 0; i < 4; i++)
		total += (len[i] = strlen(src[i])) + 1;
	char *strs = malloc(total);
	if (!strs || ring_reserve(b) < 0) {
		free(strs);
		return KERR_NOMEM;
	}
	struct brow *slot = &b->ring[(b->head + b->len) % b->ring_cap];
	slot->strs = strs;
	slot->row = *row;
	const char **dst[4] = {&slot->row.tenant, &slot->row.pod_uid, &slot->row.namespace, &slot->row.pod_name};
	for (int i = 0; i < 4; i++) {
		memcpy(strs, src[i], len[i] + 1);
		*dst[i] = strs;
		strs += len[i] + 1;
	}
	b->len++;
	return 0;
}

static void ring_pop(struct billing *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(b->ring[b->head].strs);
		b->head = (b->head + 1) % b->ring_cap;
	}
	b->len -= n;
}

/* Queue the row for st over [a, z]; the state moves to z in memory now and
 * in the database with the row. */
static void emit(struct billing *b, struct pod_state *st, const struct billing_point *a,
		 const struct billing_point *z, bool closed)
{
	struct billing_row row = {st->tenant, st->uid, st->ns, st->name, a->t_ms, z->t_ms, {{0, 0}, {0, 0}},
				  z->cpu_nano, z->mem_bytes, closed};
	struct kerr e = {0};
	if (billing_trapezoid(a, z, &row.usage, &e) < 0) {
		log_error(LOGGER, "cannot integrate a pod's usage; the interval is skipped", "pod_uid", st->uid,
			  "error", e.message, NULL);
		return;
	}
	if (ring_push(b, &row) < 0)
		log_error(LOGGER, "out of memory buffering a usage row; that usage is lost", "pod_uid", st->uid, NULL);
	else
		b->emitted++;
}

/* ---- sampling ------------------------------------------------------------------------ */

static struct pod_state *state_new(const char *uid, const char *ns, const char *name)
{
	size_t lu = strlen(uid), ln = strlen(ns), lm = strlen(name);
	struct pod_state *st = calloc(1, sizeof(*st));
	char *s = malloc(lu + ln + lm + 3);
	if (!st || !s) {
		free(st);
		free(s);
		return NULL;
	}
	st->uid = memcpy(s, uid, lu + 1);
	st->ns = memcpy(s + lu + 1, ns, ln + 1);
	st->name = memcpy(s + lu + ln + 2, name, lm + 1);
	return st;
}

static void state_free(struct pod_state *st)
{
	free(st->uid);
	free(st);
}

static void sample_pod(struct billing *b, const struct billing_pod_sample *s)
{
	struct kobj *o = store_get(informer_store(b->o.pods), s->key);
	if (!o)
		return; /* not in the cache yet: the next sample covers it */
	const struct kpod *pod = (const struct kpod *)o;
	char tenant[BILLING_TENANT_MAX];
	int64_t start_ms = pod->start_time > 0 ? pod->start_time * 1000 : 0;
	/* A sample older than the pod is of an earlier pod of the same name. */
	if (!namespace_tenant(b, o->ns, tenant) || (start_ms > 0 && s->t_ms < start_ms) || !o->uid[0])
		goto out;
	struct pod_state *st;
	HASH_FIND_STR(b->pods, o->uid, st);
	if (!st) {
		if (!(st = state_new(o->uid, o->ns, o->name))) {
			log_error(LOGGER, "out of memory tracking a pod; it is not billed this cycle", "pod", s->key,
				  NULL);
			goto out;
		}
		/* The first interval: back to the pod's start at this rate. */
		st->last_ms = billing_first_start(start_ms, s->window_ms, b->epoch_ms, s->t_ms);
		st->cpu_nano = s->cpu_nano;
		st->mem_bytes = s->mem_bytes;
		HASH_ADD_KEYPTR(hh, b->pods, st->uid, strlen(st->uid), st);
	}
	memcpy(st->tenant, tenant, sizeof(tenant));
	st->seen = b->cycle;
	/* metrics-server refreshes at its own resolution: a sample seen before
	 * has nothing new. */
	if (s->t_ms > st->last_ms) {
		struct billing_point a = {st->last_ms, st->cpu_nano, st->mem_bytes};
		struct billing_point z = {s->t_ms, s->cpu_nano, s->mem_bytes};
		emit(b, st, &a, &z, false);
		st->last_ms = z.t_ms;
		st->cpu_nano = z.cpu_nano;
		st->mem_bytes = z.mem_bytes;
	}
out:
	kobj_unref(o);
}

/* Close the pods this cycle's metrics did not list and that are gone: not
 * in the cache any more (or another pod under the name), or finished. A
 * pod still running is only missing from metrics for now; the trapezoid
 * of its next sample spans the gap. */
static void close_vanished(struct billing *b, int64_t now_ms)
{
	struct pod_state *st, *tmp;
	HASH_ITER(hh, b->pods, st, tmp) {
		if (st->seen == b->cycle)
			continue;
		char key[512];
		snprintf(key, sizeof(key), "%s/%s", st->ns, st->name);
		struct kobj *o = store_get(informer_store(b->o.pods), key);
		const struct kpod *pod = (const struct kpod *)o;
		bool same = o && strcmp(o->uid, st->uid) == 0;
		bool running = same && pod->phase != KPOD_SUCCEEDED && pod->phase != KPOD_FAILED;
		int64_t deleted_ms = same && o->deleted > 0 ? o->deleted * 1000 : 0, observed_ms = 0;
		kobj_unref(o);
		if (running)
			continue;
		take_deletion(b, st->uid, &deleted_ms, &observed_ms);
		struct billing_point a = {st->last_ms, st->cpu_nano, st->mem_bytes};
		struct billing_point z = a;
		z.t_ms = billing_end_time(st->last_ms, now_ms, deleted_ms, observed_ms);
		emit(b, st, &a, &z, true);
		HASH_DEL(b->pods, st);
		state_free(st);
	}
}

struct fetch_ctx {
	struct billing_podmetrics *pm;
	struct kerr err;
};

static int fetch_data(void *arg, const char *data, size_t len)
{
	struct fetch_ctx *c = arg;
	return billing_podmetrics_feed(c->pm, data, len, &c->err);
}

/* GET the pod metrics into *samples (*n of them). */
static int fetch(struct billing *b, struct billing_pod_sample **samples, size_t *n, struct kerr *e)
{
	struct fetch_ctx c = {0};
	int rc = billing_podmetrics_new(&c.pm, e);
	if (rc < 0)
		return rc;
	struct kube_stream_options so = {.timeout_ms = SAMPLE_TIMEOUT_MS, .cancel = &b->cancel};
	long status = 0;
	rc = kube_client_stream(b->o.client, METRICS_PATH, fetch_data, &c, &so, &status, e);
	if (rc < 0 && c.err.code) {
		kerr_clear(e);
		kerr_set(e, c.err.code, "GET %s: %s", METRICS_PATH, c.err.message);
	}
	size_t skipped = 0;
	char reason[sizeof(e->message)];
	if (rc == 0)
		rc = billing_podmetrics_finish(c.pm, samples, n, &skipped, reason, sizeof(reason), e);
	if (rc == 0 && skipped > 0) {
		char count[24];
		snprintf(count, sizeof(count), "%zu", skipped);
		log_warn(LOGGER, "pod metrics items skipped", "count", count, "first_reason", reason, NULL);
	}
	billing_podmetrics_free(c.pm);
	return rc;
}

/* ---- the database side of the sampler ------------------------------------------ */

static int parse_i64(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return KERR_PARSE;
	*out = v;
	return 0;
}

/* Read the epoch (setting it the first time) and every pod's state. */
static int load_state(struct billing *b, struct kerr *e)
{
	PGresult *r = NULL;
	int rc = db_exec_params(b->db, "INSERT INTO billing_epoch (singleton) VALUES (true) ON CONFLICT DO NOTHING", 0,
				NULL, NULL, e);
	if (rc == 0)
		rc = db_exec_params(b->db,
				    "SELECT (extract(epoch FROM started_at) * 1000)::bigint FROM billing_epoch", 0,
				    NULL, &r, e);
	if (rc < 0)
		return rc;
	if (PQntuples(r) != 1 || parse_i64(PQgetvalue(r, 0, 0), &b->epoch_ms) < 0) {
		PQclear(r);
		return kerr_set(e, KERR_DB, "table billing_epoch does not hold one start time");
	}
	PQclear(r);
	rc = db_exec_params(b->db,
			    "SELECT pod_uid, tenant_id, namespace, pod_name, "
			    "(extract(epoch FROM last_sample) * 1000)::bigint, cpu_nano, memory_bytes "
			    "FROM billing_pod_state WHERE NOT closed",
			    0, NULL, &r, e);
	if (rc < 0)
		return rc;
	int rows = PQntuples(r);
	for (int i = 0; i < rows && rc == 0; i++) {
		const char *tenant = PQgetvalue(r, i, 1);
		struct pod_state *st = NULL;
		HASH_FIND_STR(b->pods, PQgetvalue(r, i, 0), st);
		if (st || strlen(tenant) >= BILLING_TENANT_MAX)
			continue;
		st = state_new(PQgetvalue(r, i, 0), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
		if (!st) {
			rc = kerr_set(e, KERR_NOMEM, "out of memory loading billing state");
			break;
		}
		memcpy(st->tenant, tenant, strlen(tenant) + 1);
		if (parse_i64(PQgetvalue(r, i, 4), &st->last_ms) < 0 || parse_i64(PQgetvalue(r, i, 5), &st->cpu_nano) < 0 ||
		    parse_i64(PQgetvalue(r, i, 6), &st->mem_bytes) < 0) {
			state_free(st);
			rc = kerr_set(e, KERR_DB, "billing_pod_state holds a value that is not a number");
			break;
		}
		HASH_ADD_KEYPTR(hh, b->pods, st->uid, strlen(st->uid), st);
	}
	PQclear(r);
	if (rc < 0) {
		struct pod_state *st, *tmp;
		HASH_ITER(hh, b->pods, st, tmp) {
			HASH_DEL(b->pods, st);
			state_free(st);
		}
		return rc;
	}
	char count[24], epoch[BILLING_TIME_MAX];
	snprintf(count, sizeof(count), "%d", rows);
	billing_format_time(b->epoch_ms, epoch, sizeof(epoch));
	log_info(LOGGER, "billing state loaded: sampling resumes where the committed rows end", "pods", count,
		 "epoch", epoch, NULL);
	return 0;
}

/* Connect, migrate and load, as far as not done yet. */
static int ensure_loaded(struct billing *b, struct kerr *e)
{
	int rc = 0;
	if (!b->db)
		rc = db_open(b->o.db, &b->db, e);
	if (rc == 0 && !b->migrated) {
		size_t n;
		const struct db_migration *m = db_migrations(&n);
		if ((rc = db_migrate(b->db, m, n, NULL, e)) == 0)
			b->migrated = true;
	}
	if (rc == 0 && !b->loaded && (rc = load_state(b, e)) == 0)
		b->loaded = true;
	return rc;
}

static bool failure_due(struct failure *f)
{
	int64_t now = mono_ms();
	if (f->failing && now - f->logged_ms < FAILURE_LOG_MS)
		return false;
	f->failing = true;
	f->logged_ms = now;
	return true;
}

static void failure_over(struct failure *f, const char *msg)
{
	if (f->failing) {
		f->failing = false;
		log_info(LOGGER, msg, NULL);
	}
}

/* Write the buffer, oldest first, until it is empty or the database fails;
 * returns the rows the database took. */
static size_t flush(struct billing *b)
{
	size_t written = 0;
	struct billing_row *batch = NULL;
	while (b->len > 0 && b->loaded) {
		size_t n = b->len < FLUSH_BATCH ? b->len : FLUSH_BATCH, inserted = 0;
		struct kerr e = {0};
		if (!batch && !(batch = malloc(FLUSH_BATCH * sizeof(*batch)))) {
			log_error(LOGGER, "out of memory writing usage rows; they stay buffered", NULL);
			break;
		}
		for (size_t i = 0; i < n; i++)
			batch[i] = b->ring[(b->head + i) % b->ring_cap].row;
		if (billing_write_rows(b->db, batch, n, &inserted, &e) < 0) {
			char rows[24];
			snprintf(rows, sizeof(rows), "%zu", b->len);
			if (failure_due(&b->db_failure))
				log_warn(LOGGER,
					 "cannot write usage rows; they stay buffered and are written when the "
					 "database answers",
					 "rows", rows, "error", e.message, NULL);
			break;
		}
		ring_pop(b, n);
		written += inserted;
		if (b->m_rows)
			metrics_counter_add(b->m_rows, (double)inserted, NULL, 0);
		failure_over(&b->db_failure, "usage rows written again: the database answers");
	}
	free(batch);
	set_buffer_gauge(b);
	return written;
}

/* Forget the states of pods closed more than a week ago, hourly. */
static void purge_closed(struct billing *b)
{
	int64_t now = mono_ms();
	struct kerr e = {0};
	if (b->db_failure.failing || (b->purged_ms && now - b->purged_ms < PURGE_EVERY_MS))
		return;
	b->purged_ms = now;
	if (db_exec_params(b->db,
			   "DELETE FROM billing_pod_state WHERE closed AND last_sample < now() - interval '7 days'", 0,
			   NULL, NULL, &e) < 0)
		log_warn(LOGGER, "cannot purge the states of pods closed a week ago; next try in an hour", "error",
			 e.message, NULL);
}

static void buffer_checks(struct billing *b)
{
	char rows[24], cap[24], dropped[24], total[24];
	snprintf(rows, sizeof(rows), "%zu", b->len);
	snprintf(cap, sizeof(cap), "%zu", b->o.buffer_rows);
	if (b->dropped_cycle > 0) {
		b->dropped_total += b->dropped_cycle;
		if (b->m_dropped)
			metrics_counter_add(b->m_dropped, (double)b->dropped_cycle, NULL, 0);
		snprintf(dropped, sizeof(dropped), "%llu", (unsigned long long)b->dropped_cycle);
		snprintf(total, sizeof(total), "%llu", (unsigned long long)b->dropped_total);
		log_error(LOGGER,
			  "billing buffer full: the oldest usage rows were dropped and their usage is lost; "
			  "bring the database back or raise the buffer",
			  "dropped", dropped, "dropped_since_start", total, "rows", rows, "capacity", cap, NULL);
		b->dropped_cycle = 0;
	}
	if (!b->warned_half && b->len * 2 > b->o.buffer_rows) {
		b->warned_half = true;
		log_warn(LOGGER, "billing buffer over half full: the database has not taken rows for a while", "rows",
			 rows, "capacity", cap, NULL);
	} else if (b->warned_half && b->len * 4 < b->o.buffer_rows) {
		b->warned_half = false;
	}
}

static void count_sample(struct billing *b, const char *result)
{
	if (b->m_samples)
		metrics_counter_inc(b->m_samples, METRICS_LABELS(result));
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void observe_phase(struct billing *b, const char *phase, int64_t ns)
{
	if (b->m_phase)
		metrics_histogram_observe(b->m_phase, (double)ns / 1e9, METRICS_LABELS(phase));
}

/* The line a pass leaves: what it did and what it cost, for people and
 * for hack/bench/billing. CPU is this thread's: parsing, attribution and
 * libpq, not the database server's. */
static void log_pass(size_t pods, size_t rows, size_t written, size_t buffered, const int64_t phase_ns[3],
		     int64_t total_ns, int64_t cpu_ns)
{
	char v[8][32];
	snprintf(v[0], sizeof(v[0]), "%zu", pods);
	snprintf(v[1], sizeof(v[1]), "%zu", rows);
	snprintf(v[2], sizeof(v[2]), "%zu", written);
	snprintf(v[3], sizeof(v[3]), "%zu", buffered);
	for (int i = 0; i < 3; i++)
		snprintf(v[4 + i], sizeof(v[4 + i]), "%.3f", (double)phase_ns[i] / 1e6);
	snprintf(v[7], sizeof(v[7]), "%.3f", (double)total_ns / 1e6);
	char cpu[32];
	snprintf(cpu, sizeof(cpu), "%.3f", (double)cpu_ns / 1e6);
	log_info(LOGGER, "billing pass", "pods", v[0], "rows", v[1], "rows_written", v[2], "rows_buffered", v[3],
		 "fetch_ms", v[4], "attribute_ms", v[5], "write_ms", v[6], "duration_ms", v[7], "cpu_ms", cpu, NULL);
}

static void cycle(struct billing *b)
{
	int64_t t0 = clock_ns(CLOCK_MONOTONIC), cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	struct kerr e = {0};

	if (!b->loaded) {
		if (ensure_loaded(b, &e) < 0) {
			if (failure_due(&b->db_failure))
				log_warn(LOGGER,
					 "billing waits for the database: nothing is integrated until its state is "
					 "loaded, and the first sample after that spans the wait",
					 "error", e.message, NULL);
			count_sample(b, "waiting_for_database");
			return;
		}
		failure_over(&b->db_failure, "billing database ready");
	}
	struct billing_pod_sample *samples = NULL;
	size_t n = 0;
	int64_t t_fetch = clock_ns(CLOCK_MONOTONIC);
	if (fetch(b, &samples, &n, &e) < 0) {
		if (e.code != KERR_CLOSED) {
			if (failure_due(&b->sample_failure))
				log_warn(LOGGER,
					 "cannot read pod metrics; usage since the last sample is billed at the next one",
					 "error", e.message, NULL);
			count_sample(b, "error");
		}
		flush(b);
		return;
	}
	failure_over(&b->sample_failure, "pod metrics readable again");
	int64_t t_attr = clock_ns(CLOCK_MONOTONIC);
	int64_t now = wall_ms();
	uint64_t emitted = b->emitted;
	b->cycle++;
	for (size_t i = 0; i < n; i++)
		sample_pod(b, &samples[i]);
	billing_samples_free(samples, n);
	close_vanished(b, now);
	purge_deletions(b, now);
	buffer_checks(b);
	count_sample(b, "ok");
	int64_t t_write = clock_ns(CLOCK_MONOTONIC);
	size_t written = flush(b);
	purge_closed(b);
	int64_t t_end = clock_ns(CLOCK_MONOTONIC);
	int64_t phase_ns[3] = {t_attr - t_fetch, t_write - t_attr, t_end - t_write};
	observe_phase(b, "fetch", phase_ns[0]);
	observe_phase(b, "attribute", phase_ns[1]);
	observe_phase(b, "write", phase_ns[2]);
	if (b->m_duration)
		metrics_histogram_observe(b->m_duration, (double)(t_end - t0) / 1e9, NULL, 0);
	log_pass(n, (size_t)(b->emitted - emitted), written, b->len, phase_ns, t_end - t0,
		 clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0);
}

static void *billing_main(void *arg)
{
	struct billing *b = arg;
	int64_t next = mono_ms();

	for (;;) {
		pthread_mutex_lock(&b->mu);
		while (!b->stopping && mono_ms() < next) {
			struct timespec until = {(time_t)(next / 1000), (long)(next % 1000) * 1000000L};
			pthread_cond_timedwait(&b->cond, &b->mu, &until);
		}
		bool stop = b->stopping;
		pthread_mutex_unlock(&b->mu);
		if (stop)
			break;
		cycle(b);
		/* Keep the cadence; after an overlong cycle, skip the missed ticks. */
		int64_t now = mono_ms();
		next += b->o.period_ms;
		if (next <= now)
			next = now + b->o.period_ms;
	}
	if (b->loaded && b->len > 0)
		flush(b);
	return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static int register_metrics(struct billing *b, struct kerr *e)
{
	static const char *const result[] = {"result"}, *const phase[] = {"phase"};
	/* A pass should take well under a tenth of the period (30 s by
	 * default); the top buckets show one that does not. */
	static const double pass_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
	enum { PASS_BUCKETS = sizeof(pass_buckets) / sizeof(pass_buckets[0]) };
	struct metrics_registry *r = b->o.metrics;
	int rc = metrics_counter_new(r, "nimbus_billing_samples_total",
				     "Billing samples of metrics.k8s.io by result (ok, error, waiting_for_database).",
				     result, 1, &b->m_samples, e);
	if (rc == 0)
		rc = metrics_histogram_new(r, "nimbus_billing_sample_duration_seconds",
					   "Time of one billing sample: metrics GET, integration and database write.",
					   NULL, 0, pass_buckets, PASS_BUCKETS, &b->m_duration, e);
	if (rc == 0)
		rc = metrics_histogram_new(r, "nimbus_billing_sample_phase_duration_seconds",
					   "Time of each phase of a billing sample: fetch (metrics GET and parse), "
					   "attribute (tenants and integration), write (database).",
					   phase, 1, pass_buckets, PASS_BUCKETS, &b->m_phase, e);
	if (rc == 0)
		rc = metrics_counter_new(r, "nimbus_billing_rows_written_total",
					 "Usage rows committed to the database (rewrites of existing rows not counted).",
					 NULL, 0, &b->m_rows, e);
	if (rc == 0)
		rc = metrics_gauge_new(r, "nimbus_billing_buffer_rows",
				       "Usage rows computed and waiting for the database.", NULL, 0, &b->m_buffer, e);
	if (rc == 0)
		rc = metrics_counter_new(r, "nimbus_billing_buffer_dropped_rows_total",
					 "Usage rows dropped because the buffer was full during a database outage: lost usage.",
					 NULL, 0, &b->m_dropped, e);
	return rc;
}

int billing_new(struct billing **out, const struct billing_options *o, struct kerr *e)
{
	if (!o->client || !o->pods || !o->namespaces || !o->db)
		return kerr_set(e, KERR_INVAL, "billing needs a client, the pod and namespace informers and a database");
	struct billing *b = calloc(1, sizeof(*b));
	if (!b)
		return kerr_set(e, KERR_NOMEM, "out of memory creating the billing sampler");
	b->o = *o;
	if (b->o.period_ms <= 0)
		b->o.period_ms = BILLING_DEFAULT_PERIOD_MS;
	if (b->o.buffer_rows == 0)
		b->o.buffer_rows = BILLING_DEFAULT_BUFFER_ROWS;
	int inited = 0;
	pthread_condattr_t ca;
	if (pthread_mutex_init(&b->mu, NULL) == 0 && ++inited && pthread_mutex_init(&b->del_mu, NULL) == 0 &&
	    ++inited && pthread_condattr_init(&ca) == 0) {
		if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&b->cond, &ca) == 0)
			inited++;
		pthread_condattr_destroy(&ca);
	}
	int rc = 0;
	if (inited < 3)
		rc = kerr_set(e, KERR_NOMEM, "cannot create the billing sampler's locks");
	else if (o->metrics)
		rc = register_metrics(b, e);
	struct informer_handlers h = {.on_delete = on_pod_delete, .arg = b};
	if (rc == 0 && informer_add_handlers(o->pods, &h) < 0)
		rc = kerr_set(e, KERR_INVAL, "cannot add the billing handler to the pod informer (started, or 8 handlers)");
	if (rc < 0) {
		if (inited >= 3)
			pthread_cond_destroy(&b->cond);
		if (inited >= 2)
			pthread_mutex_destroy(&b->del_mu);
		if (inited >= 1)
			pthread_mutex_destroy(&b->mu);
		free(b);
		return rc;
	}
	*out = b;
	return 0;
}

int billing_start(struct billing *b, struct kerr *e)
{
	if (b->started)
		return 0;
	atomic_store(&b->cancel, 0);
	b->stopping = false;
	int err = pthread_create(&b->thread, NULL, billing_main, b);
	if (err)
		return kerr_set(e, KERR_NOMEM, "cannot start the billing thread: %s", strerror(err));
	b->started = true;
	char period[24];
	snprintf(period, sizeof(period), "%lld", (long long)b->o.period_ms);
	log_info(LOGGER, "billing sampler started", "period_ms", period, NULL);
	return 0;
}

void billing_stop(struct billing *b)
{
	if (!b || !b->started)
		return;
	pthread_mutex_lock(&b->mu);
	b->stopping = true;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->mu);
	atomic_store(&b->cancel, 1);
	pthread_join(b->thread, NULL);
	b->started = false;
	if (b->len > 0) {
		char rows[24];
		snprintf(rows, sizeof(rows), "%zu", b->len);
		log_warn(LOGGER,
			 "stopping with usage rows the database has not taken; the next run bills that time "
			 "again from the last committed sample",
			 "rows", rows, NULL);
	}
}

void billing_free(struct billing *b)
{
	if (!b)
		return;
	billing_stop(b);
	struct pod_state *st, *stmp;
	HASH_ITER(hh, b->pods, st, stmp) {
		HASH_DEL(b->pods, st);
		state_free(st);
	}
	struct deletion *d, *dtmp;
	HASH_ITER(hh, b->deletions, d, dtmp) {
		HASH_DEL(b->deletions, d);
		free(d);
	}
	if (b->len > 0)
		ring_pop(b, b->len);
	free(b->ring);
	db_close(b->db);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->del_mu);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

/* ---- the database --------------------------------------------------------------------- */

static int check_row(const struct billing_row *r, struct kerr *e)
{
	if (!r->tenant[0] || !r->pod_uid[0] || r->end_ms < r->start_ms || r->end_cpu_nano < 0 || r->end_mem_bytes < 0)
		return kerr_set(e, KERR_INVAL, "usage row for pod %.64s is invalid (empty tenant or uid, or it ends "
					       "before it starts)",
				r->pod_uid);
	return 0;
}

/* Append r to the JSON array of a chunk. */
static int chunk_add(struct jsonb *j, const struct billing_row *r, struct kerr *e)
{
	char start[BILLING_TIME_MAX], end[BILLING_TIME_MAX], cpu[BILLING_DEC_MAX], mem[BILLING_DEC_MAX];
	if (billing_format_time(r->start_ms, start, sizeof(start)) < 0 ||
	    billing_format_time(r->end_ms, end, sizeof(end)) < 0 ||
	    billing_dec_format(r->usage.cpu_milli_seconds, cpu, sizeof(cpu)) < 0 ||
	    billing_dec_format(r->usage.memory_byte_seconds, mem, sizeof(mem)) < 0)
		return kerr_set(e, KERR_INVAL, "usage row for pod %.64s does not format", r->pod_uid);
	jsonb_obj(j);
	jsonb_kstr(j, "tenant_id", r->tenant);
	jsonb_kstr(j, "pod_uid", r->pod_uid);
	jsonb_kstr(j, "namespace", r->namespace);
	jsonb_kstr(j, "pod_name", r->pod_name);
	jsonb_kstr(j, "window_start", start);
	jsonb_kstr(j, "window_end", end);
	/* Exact decimals travel as strings: a JSON number would be read as
	 * numeric too, but nothing on the way may turn it into a double. */
	jsonb_kstr(j, "cpu", cpu);
	jsonb_kstr(j, "mem", mem);
	jsonb_key(j, "cpu_nano");
	jsonb_int(j, r->end_cpu_nano);
	jsonb_key(j, "memory_bytes");
	jsonb_int(j, r->end_mem_bytes);
	jsonb_key(j, "closed");
	jsonb_bool(j, r->closed);
	jsonb_obj_end(j);
	return 0;
}

/*
 * Write one chunk (a JSON array of rows of distinct pods) in one
 * statement, with the rules of billing_write_rows: a usage row only if it
 * starts at or after its pod's committed last sample (the state rows are
 * locked, so that two writers cannot both pass the check); the state
 * follows only a row that continues it (checked against the locked state
 * in the SELECT: a per-row subquery in ON CONFLICT's WHERE would scan the
 * batch once per pod, seconds for 5,000), and only forwards (or to closed
 * at the same time). Distinct pods, because ON CONFLICT DO UPDATE may touch
 * a row once per statement; every CTE sees the states as they were before
 * the statement, as the checks want.
 */
static int write_chunk(struct db *db, struct jsonb *j, size_t *inserted, struct kerr *e)
{
	jsonb_arr_end(j);
	const char *json;
	size_t len;
	if (jsonb_result(j, &json, &len, e) < 0)
		return kerr_set(e, KERR_NOMEM, "cannot encode usage rows: %s", e->message);
	const char *v[] = {json};
	PGresult *res = NULL;
	int rc = db_exec_params(
		db,
		"WITH batch AS (SELECT * FROM json_to_recordset($1::json) AS r(tenant_id text, pod_uid text, "
		"namespace text, pod_name text, window_start timestamptz, window_end timestamptz, cpu numeric, "
		"mem numeric, cpu_nano bigint, memory_bytes bigint, closed boolean)), "
		"prior AS (SELECT s.pod_uid, s.last_sample FROM billing_pod_state s JOIN batch b "
		"ON s.pod_uid = b.pod_uid FOR UPDATE OF s), "
		"usage AS (INSERT INTO billing_usage (tenant_id, pod_uid, window_start, window_end, "
		"cpu_milli_seconds, memory_byte_seconds) "
		"SELECT b.tenant_id, b.pod_uid, b.window_start, b.window_end, b.cpu, b.mem FROM batch b "
		"WHERE b.window_end > b.window_start AND NOT EXISTS (SELECT 1 FROM prior p "
		"WHERE p.pod_uid = b.pod_uid AND p.last_sample > b.window_start) "
		"ON CONFLICT DO NOTHING RETURNING 1), "
		"state AS (INSERT INTO billing_pod_state AS s (pod_uid, tenant_id, namespace, pod_name, last_sample, "
		"cpu_nano, memory_bytes, closed) "
		"SELECT b.pod_uid, b.tenant_id, b.namespace, b.pod_name, b.window_end, b.cpu_nano, b.memory_bytes, "
		"b.closed FROM batch b LEFT JOIN prior p ON p.pod_uid = b.pod_uid "
		"WHERE p.last_sample IS NULL OR p.last_sample <= b.window_start "
		"ON CONFLICT (pod_uid) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, "
		"namespace = EXCLUDED.namespace, pod_name = EXCLUDED.pod_name, "
		"last_sample = EXCLUDED.last_sample, cpu_nano = EXCLUDED.cpu_nano, "
		"memory_bytes = EXCLUDED.memory_bytes, closed = EXCLUDED.closed, updated_at = now() "
		"WHERE s.last_sample < EXCLUDED.last_sample OR (EXCLUDED.closed AND NOT s.closed) RETURNING 1) "
		"SELECT (SELECT count(*) FROM usage), (SELECT count(*) FROM state)",
		1, v, &res, e);
	jsonb_reset(j);
	jsonb_arr(j);
	if (rc < 0)
		return rc;
	*inserted += (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

/* A pod already in the current chunk. */
struct chunk_pod {
	UT_hash_handle hh;
	const char *uid;
};

int billing_write_rows(struct db *db, const struct billing_row *rows, size_t n, size_t *inserted, struct kerr *e)
{
	size_t ins = 0;
	int rc = 0;

	if (inserted)
		*inserted = 0;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((rc = check_row(&rows[i], e)) < 0)
			return rc;
	struct chunk_pod *pods = calloc(n, sizeof(*pods)), *set = NULL;
	struct jsonb *j = jsonb_new();
	if (!pods || !j) {
		free(pods);
		jsonb_free(j);
		return kerr_set(e, KERR_NOMEM, "out of memory writing %zu usage rows", n);
	}
	jsonb_arr(j);
	rc = db_exec_params(db, "BEGIN", 0, NULL, NULL, e);
	/* Rows go in order; a pod's second row starts a new chunk, so each
	 * statement sees the state its predecessor left. */
	size_t in_chunk = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *uid = rows[i].pod_uid;
		struct chunk_pod *p;
		HASH_FIND_STR(set, uid, p);
		if (p) {
			HASH_CLEAR(hh, set);
			rc = write_chunk(db, j, &ins, e);
			in_chunk = 0;
		}
		if (rc == 0 && (rc = chunk_add(j, &rows[i], e)) == 0) {
			pods[i].uid = uid;
			HASH_ADD_KEYPTR(hh, set, uid, strlen(uid), &pods[i]);
			in_chunk++;
		}
	}
	if (rc == 0 && in_chunk > 0)
		rc = write_chunk(db, j, &ins, e);
	HASH_CLEAR(hh, set);
	free(pods);
	jsonb_free(j);
	if (rc == 0)
		rc = db_exec_params(db, "COMMIT", 0, NULL, NULL, e);
	if (rc < 0) {
		/* After a server error the transaction must be ended; after a lost
		 * connection this call only clears the db module's note of it. */
		db_exec_params(db, "ROLLBACK", 0, NULL, NULL, NULL);
		return rc;
	}
	if (inserted)
		*inserted = ins;
	return 0;
}

int billing_usage(struct db *db, struct billing_tenant_usage **out, size_t *n, struct kerr *e)
{
	PGresult *r = NULL;
	*out = NULL;
	*n = 0;
	int rc = db_exec_params(db,
				"SELECT tenant_id, round(sum(cpu_milli_seconds), 6)::text, "
				"round(sum(memory_byte_seconds) / 1048576, 6)::text, "
				"(extract(epoch FROM min(window_start)) * 1000)::bigint, "
				"(extract(epoch FROM max(window_end)) * 1000)::bigint "
				"FROM billing_usage GROUP BY tenant_id ORDER BY tenant_id",
				0, NULL, &r, e);
	if (rc < 0)
		return rc;
	int rows = PQntuples(r);
	struct billing_tenant_usage *u = rows ? calloc((size_t)rows, sizeof(*u)) : NULL;
	if (rows && !u) {
		PQclear(r);
		return kerr_set(e, KERR_NOMEM, "out of memory reading usage");
	}
	for (int i = 0; i < rows; i++) {
		const char *t = PQgetvalue(r, i, 0);
		if (strlen(t) >= BILLING_TENANT_MAX || billing_dec_parse(PQgetvalue(r, i, 1), &u[i].cpu_milli_seconds, e) < 0 ||
		    billing_dec_parse(PQgetvalue(r, i, 2), &u[i].memory_mb_seconds, e) < 0 ||
		    parse_i64(PQgetvalue(r, i, 3), &u[i].since_ms) < 0 || parse_i64(PQgetvalue(r, i, 4), &u[i].until_ms) < 0) {
			rc = kerr_set(e, KERR_DB, "billing_usage holds a row that cannot be read (tenant '%.64s')", t);
			break;
		}
		memcpy(u[i].tenant, t, strlen(t) + 1);
	}
	PQclear(r);
	if (rc < 0) {
		free(u);
		return rc;
	}
	*out = u;
	*n = (size_t)rows;
	return 0;
}

int billing_usage_history(struct db *db, const char *tenant, int64_t from_ms, int64_t to_ms, int64_t step_s,
			  struct billing_usage_point **out, size_t *n, struct kerr *e)
{
	*out = NULL;
	*n = 0;
	if (to_ms <= from_ms || step_s < 1)
		return kerr_set(e, KERR_INVAL, "billing_usage_history: empty range or step below 1 s");
	char from_s[BILLING_TIME_MAX], to_s[BILLING_TIME_MAX], step[32];
	if (billing_format_time(from_ms, from_s, sizeof(from_s)) < 0 || billing_format_time(to_ms, to_s, sizeof(to_s)) < 0)
		return kerr_set(e, KERR_INVAL, "billing_usage_history: time out of range");
	snprintf(step, sizeof(step), "%lld", (long long)step_s);
	const char *v[] = {tenant ? tenant : "", from_s, to_s, step};
	PGresult *r = NULL;
	int rc = db_exec_params(db,
				"SELECT tenant_id, floor(extract(epoch FROM window_end - $2::timestamptz) / $4::bigint)::bigint, "
				"round(sum(cpu_milli_seconds), 6)::text, round(sum(memory_byte_seconds) / 1048576, 6)::text "
				"FROM billing_usage WHERE ($1 = '' OR tenant_id = $1) "
				"AND window_end >= $2::timestamptz AND window_end < $3::timestamptz "
				"GROUP BY 1, 2 ORDER BY 1, 2",
				4, v, &r, e);
	if (rc < 0)
		return rc;
	int rows = PQntuples(r);
	struct billing_usage_point *u = rows ? calloc((size_t)rows, sizeof(*u)) : NULL;
	if (rows && !u) {
		PQclear(r);
		return kerr_set(e, KERR_NOMEM, "out of memory reading the usage history");
	}
	for (int i = 0; i < rows; i++) {
		const char *t = PQgetvalue(r, i, 0);
		if (strlen(t) >= BILLING_TENANT_MAX || parse_i64(PQgetvalue(r, i, 1), &u[i].bucket) < 0 ||
		    billing_dec_parse(PQgetvalue(r, i, 2), &u[i].cpu_milli_seconds, e) < 0 ||
		    billing_dec_parse(PQgetvalue(r, i, 3), &u[i].memory_mb_seconds, e) < 0) {
			rc = kerr_set(e, KERR_DB, "billing_usage holds a row that cannot be read (tenant '%.64s')", t);
			break;
		}
		memcpy(u[i].tenant, t, strlen(t) + 1);
	}
	PQclear(r);
	if (rc < 0) {
		free(u);
		return rc;
	}
	*out = u;
	*n = (size_t)rows;
	return 0;
}

/* The stored invoice of (tenant, start, end) into out (whose tenant and
 * period are set); KERR_NOT_FOUND when none is stored. */
static int load_invoice(struct db *db, const char *tenant, const char *start, const char *end,
			struct billing_invoice *out, struct kerr *e)
{
	const char *v[] = {tenant, start, end};
	PGresult *r = NULL;
	int rc = db_exec_params(db,
				"SELECT currency, minor_digits, cpu_milli_seconds::text, memory_byte_seconds::text, "
				"cpu_price_micro, memory_price_micro, cpu_amount_minor, memory_amount_minor, "
				"total_minor, (extract(epoch FROM issued_at) * 1000)::bigint "
				"FROM invoices WHERE tenant_id = $1 AND period_start = $2 AND period_end = $3",
				3, v, &r, e);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return KERR_NOT_FOUND;
	}
	struct billing_prices p = {0};
	int64_t digits = 0, amount[BILLING_ITEM_COUNT] = {0}, total = 0;
	snprintf(p.currency, sizeof(p.currency), "%s", PQgetvalue(r, 0, 0));
	if (parse_i64(PQgetvalue(r, 0, 1), &digits) < 0 ||
	    billing_dec_parse(PQgetvalue(r, 0, 2), &out->cpu_milli_seconds, NULL) < 0 ||
	    billing_dec_parse(PQgetvalue(r, 0, 3), &out->memory_byte_seconds, NULL) < 0 ||
	    parse_i64(PQgetvalue(r, 0, 4), &p.cpu_core_hour_micro) < 0 ||
	    parse_i64(PQgetvalue(r, 0, 5), &p.memory_gib_hour_micro) < 0 ||
	    parse_i64(PQgetvalue(r, 0, 6), &amount[BILLING_ITEM_CPU]) < 0 ||
	    parse_i64(PQgetvalue(r, 0, 7), &amount[BILLING_ITEM_MEMORY]) < 0 || parse_i64(PQgetvalue(r, 0, 8), &total) < 0 ||
	    parse_i64(PQgetvalue(r, 0, 9), &out->issued_at_ms) < 0)
		rc = kerr_set(e, KERR_DB, "the stored invoice of tenant '%.64s' for %s..%s cannot be read", tenant, start,
			      end);
	PQclear(r);
	if (rc == 0)
		rc = billing_charge(out->cpu_milli_seconds, out->memory_byte_seconds, &p, &out->charges, e);
	if (rc < 0)
		return rc;
	/* The stored amounts are the invoice, whatever this version of the
	 * rounding would say today. */
	struct billing_charges *c = &out->charges;
	c->minor_digits = (int)digits;
	for (int i = 0; i < BILLING_ITEM_COUNT; i++) {
		c->lines[i].amount_minor = amount[i];
		billing_format_minor(amount[i], c->minor_digits, c->lines[i].amount, sizeof(c->lines[i].amount));
	}
	c->total_minor = total;
	billing_format_minor(total, c->minor_digits, c->total, sizeof(c->total));
	out->issued = true;
	return 0;
}

int billing_invoice(struct db *db, const char *tenant, int64_t period_start_ms, int64_t period_end_ms,
		    const struct billing_prices *p, struct billing_invoice *out, struct kerr *e)
{
	char start[BILLING_TIME_MAX], end[BILLING_TIME_MAX];
	int64_t now = wall_ms();
	int rc;

	memset(out, 0, sizeof(*out));
	if (!tenant || !tenant[0] || strlen(tenant) >= BILLING_TENANT_MAX)
		return kerr_set(e, KERR_INVAL, "an invoice needs a tenant id of 1 to %d characters",
				BILLING_TENANT_MAX - 1);
	if (period_start_ms == 0 && period_end_ms == 0)
		billing_month_bounds(now, &period_start_ms, &period_end_ms);
	if (period_end_ms <= period_start_ms || billing_format_time(period_start_ms, start, sizeof(start)) < 0 ||
	    billing_format_time(period_end_ms, end, sizeof(end)) < 0)
		return kerr_set(e, KERR_INVAL, "an invoice period must end after it starts");
	memcpy(out->tenant, tenant, strlen(tenant) + 1);
	out->period_start_ms = period_start_ms;
	out->period_end_ms = period_end_ms;
	bool closed = period_end_ms <= now - BILLING_INVOICE_SETTLE_MS;
	if (closed && (rc = load_invoice(db, tenant, start, end, out, e)) != KERR_NOT_FOUND)
		return rc;

	const char *v[] = {tenant, start, end};
	PGresult *r = NULL;
	rc = db_exec_params(db,
			    "SELECT coalesce(sum(cpu_milli_seconds), 0)::text, coalesce(sum(memory_byte_seconds), 0)::text "
			    "FROM billing_usage WHERE tenant_id = $1 AND window_end >= $2 AND window_end < $3",
			    3, v, &r, e);
	if (rc < 0)
		return rc;
	if (billing_dec_parse(PQgetvalue(r, 0, 0), &out->cpu_milli_seconds, e) < 0 ||
	    billing_dec_parse(PQgetvalue(r, 0, 1), &out->memory_byte_seconds, e) < 0)
		rc = e ? e->code : KERR_DB;
	PQclear(r);
	if (rc == 0)
		rc = billing_charge(out->cpu_milli_seconds, out->memory_byte_seconds, p, &out->charges, e);
	if (rc < 0 || !closed)
		return rc;

	char cpu[BILLING_DEC_MAX], mem[BILLING_DEC_MAX], digits[8], cpu_price[24], mem_price[24], cpu_amt[24],
		mem_amt[24], total[24];
	const struct billing_charges *c = &out->charges;
	billing_dec_format(out->cpu_milli_seconds, cpu, sizeof(cpu));
	billing_dec_format(out->memory_byte_seconds, mem, sizeof(mem));
	snprintf(digits, sizeof(digits), "%d", c->minor_digits);
	snprintf(cpu_price, sizeof(cpu_price), "%lld", (long long)p->cpu_core_hour_micro);
	snprintf(mem_price, sizeof(mem_price), "%lld", (long long)p->memory_gib_hour_micro);
	snprintf(cpu_amt, sizeof(cpu_amt), "%lld", (long long)c->lines[BILLING_ITEM_CPU].amount_minor);
	snprintf(mem_amt, sizeof(mem_amt), "%lld", (long long)c->lines[BILLING_ITEM_MEMORY].amount_minor);
	snprintf(total, sizeof(total), "%lld", (long long)c->total_minor);
	const char *iv[] = {tenant, start, end, c->currency, digits, cpu, mem, cpu_price, mem_price, cpu_amt, mem_amt,
			    total};
	/* A concurrent caller may issue the same invoice: the first insert
	 * wins, and both return what is stored. */
	rc = db_exec_params(db,
			    "INSERT INTO invoices (tenant_id, period_start, period_end, currency, minor_digits, "
			    "cpu_milli_seconds, memory_byte_seconds, cpu_price_micro, memory_price_micro, "
			    "cpu_amount_minor, memory_amount_minor, total_minor) "
			    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
			    12, iv, NULL, e);
	if (rc == 0)
		rc = load_invoice(db, tenant, start, end, out, e);
	if (rc == KERR_NOT_FOUND)
		rc = kerr_set(e, KERR_DB, "the invoice of tenant '%.64s' was stored but cannot be read back", tenant);
	return rc;
}

void billing_prices_from_config(struct billing_prices *p, const struct config *cfg)
{
	p->cpu_core_hour_micro = cfg->price_cpu_core_hour_micro;
	p->memory_gib_hour_micro = cfg->price_memory_gib_hour_micro;
	memcpy(p->currency, cfg->currency, sizeof(p->currency));
}
