#include "informer.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reflector_sm.h"
#include "timefmt.h"
#include "watch_parser.h"

enum {
	MAX_HANDLERS = 8,
	DEFAULT_PAGE_SIZE = 500,
	/* A watch that ends this soon without delivering anything is treated as
	 * a failure, so a server that closes every watch at once gets backoff,
	 * not a busy loop of reconnects. */
	SHORT_WATCH_MS = 1000,
};

struct informer {
	struct kube_client *client;       /* borrowed */
	const struct kind *kind;
	struct store *store;              /* owned */
	char *base_path;                  /* "/api/v1/pods" or "/api/v1/namespaces/x/pods"; owned */
	char *selectors;                  /* "&labelSelector=..&fieldSelector=.."; owned, may be "" */
	int page_size;
	int watch_timeout_s;              /* 0 = random per watch */
	informer_log_fn log;
	void *log_arg;
	struct informer_handlers handlers[MAX_HANDLERS];
	size_t nhandlers;

	pthread_t thread;
	bool started;
	atomic_int cancel;                /* set by informer_stop; read by the stream */
	pthread_mutex_t mu;               /* guards synced/stopped for the waiters below */
	pthread_cond_t cond;              /* signalled on sync, stop, and to cut a backoff short */
	bool synced;
	bool stopped;

	/* reflector thread only */
	struct reflector_sm sm;
	uint64_t rng;
	bool gone;                        /* a watch ERROR 410 arrived on this stream */
	bool watch_delivered;             /* the current watch delivered an event or bookmark */
	struct kerr stream_err;           /* why the current stream failed, for the log */

	atomic_uint_fast64_t n_relists, n_watches, n_events, n_errors;
};

static void logf_(struct informer *inf, enum informer_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void logf_(struct informer *inf, enum informer_log_level lvl, const char *fmt, ...)
{
	if (!inf->log)
		return;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	inf->log(inf->log_arg, lvl, inf->kind->name, buf);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Append "&name=<escaped value>" to *acc. */
static int append_param(char **acc, const char *name, const char *value)
{
	if (!value || !*value)
		return 0;
	char *esc = curl_easy_escape(NULL, value, 0);
	if (!esc)
		return KERR_NOMEM;
	size_t n = strlen(*acc) + strlen(name) + strlen(esc) + 3;
	char *s = malloc(n);
	if (!s) {
		curl_free(esc);
		return KERR_NOMEM;
	}
	snprintf(s, n, "%s&%s=%s", *acc, name, esc);
	curl_free(esc);
	free(*acc);
	*acc = s;
	return 0;
}

int informer_new(struct informer **out, struct kube_client *c, const struct kind *k,
		 const struct informer_options *opts, struct kerr *e)
{
	*out = NULL;
	struct informer_options defaults = {0};
	if (!opts)
		opts = &defaults;
	if (!c || !k)
		return kerr_set(e, KERR_INVAL, "informer_new: client and kind are required");
	if (opts->namespace && *opts->namespace && !k->namespaced)
		return kerr_set(e, KERR_INVAL, "informer for %s: a cluster-scoped kind has no namespace to restrict to",
				k->name);
	struct informer *inf = calloc(1, sizeof(*inf));
	if (!inf)
		return kerr_set(e, KERR_NOMEM, "informer for %s: out of memory", k->name);
	inf->client = c;
	inf->kind = k;
	inf->page_size = opts->page_size > 0 ? opts->page_size : DEFAULT_PAGE_SIZE;
	inf->watch_timeout_s = opts->watch_timeout_s;
	inf->log = opts->log;
	inf->log_arg = opts->log_arg;
	inf->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)inf;
	reflector_sm_init(&inf->sm, inf->rng);

	size_t n = strlen(k->path) + strlen(k->plural) + (opts->namespace ? strlen(opts->namespace) : 0) + 32;
	inf->base_path = malloc(n);
	inf->selectors = strdup("");
	if (!inf->base_path || !inf->selectors)
		goto nomem;
	if (opts->namespace && *opts->namespace)
		snprintf(inf->base_path, n, "%s/namespaces/%s/%s", k->path, opts->namespace, k->plural);
	else
		snprintf(inf->base_path, n, "%s/%s", k->path, k->plural);
	if (append_param(&inf->selectors, "labelSelector", opts->label_selector) < 0 ||
	    append_param(&inf->selectors, "fieldSelector", opts->field_selector) < 0)
		goto nomem;
	if (store_new(&inf->store) < 0)
		goto nomem;
	if (pthread_mutex_init(&inf->mu, NULL) != 0)
		goto nomem;
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0 || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&inf->cond, &ca) != 0) {
		pthread_mutex_destroy(&inf->mu);
		goto nomem;
	}
	pthread_condattr_destroy(&ca);
	*out = inf;
	return 0;
nomem:
	store_free(inf->store);
	free(inf->base_path);
	free(inf->selectors);
	reflector_sm_free(&inf->sm);
	free(inf);
	return kerr_set(e, KERR_NOMEM, "informer for %s: out of memory", k->name);
}

int informer_add_handlers(struct informer *inf, const struct informer_handlers *h)
{
	if (inf->started || inf->nhandlers == MAX_HANDLERS)
		return KERR_INVAL;
	inf->handlers[inf->nhandlers++] = *h;
	return 0;
}

struct store *informer_store(struct informer *inf) { return inf->store; }
const struct kind *informer_kind(const struct informer *inf) { return inf->kind; }

/* ---- delivering changes -------------------------------------------------- */

static void notify(struct informer *inf, enum store_diff op, struct kobj *old, struct kobj *obj)
{
	for (size_t i = 0; i < inf->nhandlers; i++) {
		const struct informer_handlers *h = &inf->handlers[i];
		if (op == STORE_ADDED && h->on_add)
			h->on_add(h->arg, obj);
		else if (op == STORE_UPDATED && h->on_update)
			h->on_update(h->arg, old, obj);
		else if (op == STORE_DELETED && h->on_delete)
			h->on_delete(h->arg, old);
	}
}

static void on_relist_diff(void *arg, enum store_diff op, struct kobj *old, struct kobj *obj)
{
	notify(arg, op, old, obj);
}

/* Apply one watch event to the store, then tell the handlers. */
static int apply_event(struct informer *inf, struct watch_event *ev, struct kerr *e)
{
	struct kobj *obj = ev->obj;
	if (ev->type == WATCH_DELETED) {
		struct kobj *old = store_delete(inf->store, obj->key);
		/* The handlers see the object as the deletion event carries it:
		 * its final state, which the cached copy may predate. */
		if (old)
			notify(inf, STORE_DELETED, obj, NULL);
		kobj_unref(old);
		kobj_unref(obj);
		return 0;
	}
	struct kobj *old = NULL;
	int rc = store_upsert(inf->store, obj, &old);
	if (rc < 0) {
		kobj_unref(obj);
		return kerr_set(e, rc, "%s %s: cannot cache it: %s", inf->kind->name, ev->obj->key, kerr_strerror(rc));
	}
	notify(inf, old ? STORE_UPDATED : STORE_ADDED, old, obj);
	kobj_unref(old);
	return 0;
}

static int on_watch_event(void *ud, struct watch_event *ev, struct kerr *e)
{
	struct informer *inf = ud;
	struct reflector_input in = {.resource_version = ev->resource_version};
	struct reflector_action act;
	switch (ev->type) {
	case WATCH_ADDED:
	case WATCH_MODIFIED:
	case WATCH_DELETED: {
		/* ev->resource_version points into the object, which applying
		 * may free (a deletion): hold it until the state machine has
		 * copied the version. */
		struct kobj *hold = kobj_ref(ev->obj);
		int rc = apply_event(inf, ev, e);
		if (rc == 0) {
			atomic_fetch_add(&inf->n_events, 1);
			in.type = REFLECTOR_IN_EVENT;
			inf->watch_delivered = true;
			rc = reflector_sm_step(&inf->sm, &in, &act);
		}
		kobj_unref(hold);
		return rc;
	}
	case WATCH_BOOKMARK:
		in.type = REFLECTOR_IN_BOOKMARK;
		break;
	case WATCH_ERROR:
		if (ev->status->code == 410) {
			inf->gone = true;
			return kerr_set(e, KERR_GONE, "watch of %s: %s", inf->kind->name, ev->status->message);
		}
		return kerr_set(e, kerr_from_http(ev->status->code, ev->status->reason),
				"watch of %s: error event %ld %s: %s", inf->kind->name, ev->status->code,
				ev->status->reason, ev->status->message);
	case WATCH_LIST_ITEM:
		kobj_unref(ev->obj);
		return kerr_set(e, KERR_PARSE, "watch of %s: a list item in a watch stream", inf->kind->name);
	}
	inf->watch_delivered = true;
	return reflector_sm_step(&inf->sm, &in, &act);
}

static int on_list_item(void *ud, struct watch_event *ev, struct kerr *e)
{
	struct informer *inf = ud;
	if (ev->type != WATCH_LIST_ITEM) {
		kobj_unref(ev->obj);
		return kerr_set(e, KERR_PARSE, "LIST of %s: unexpected %s", inf->kind->name,
				watch_event_type_name(ev->type));
	}
	int rc = store_replace_add(inf->store, ev->obj);
	if (rc < 0) {
		kobj_unref(ev->obj);
		return kerr_set(e, rc, "LIST of %s: cannot cache %s", inf->kind->name, kerr_strerror(rc));
	}
	return 0;
}

/* ---- the I/O of each action ---------------------------------------------- */

struct feed {
	struct watch_parser *wp;
	struct kerr *e;
};

static int feed_parser(void *arg, const char *data, size_t len)
{
	struct feed *f = arg;
	return watch_parser_feed(f->wp, data, len, f->e);
}

/* LIST one page; fills the reflector input for the outcome. */
static void do_list(struct informer *inf, const char *continue_token, struct reflector_input *in,
		    char **rv_out, char **cont_out)
{
	struct kerr *e = &inf->stream_err;
	kerr_clear(e);
	if (!continue_token && store_replace_begin(inf->store) < 0) {
		kerr_set(e, KERR_NOMEM, "LIST of %s: out of memory", inf->kind->name);
		in->type = REFLECTOR_IN_LIST_FAILED;
		return;
	}
	char *cont_esc = continue_token ? curl_easy_escape(NULL, continue_token, 0) : NULL;
	size_t n = strlen(inf->base_path) + strlen(inf->selectors) + (cont_esc ? strlen(cont_esc) : 0) + 64;
	char *path = malloc(n);
	struct watch_parser *wp = path ? watch_parser_new(inf->kind, WATCH_PARSER_LIST, on_list_item, inf, 0, e) : NULL;
	if (!path || !wp) {
		kerr_set(e, KERR_NOMEM, "LIST of %s: out of memory", inf->kind->name);
		in->type = REFLECTOR_IN_LIST_FAILED;
		goto out;
	}
	snprintf(path, n, "%s?limit=%d%s%s%s", inf->base_path, inf->page_size, inf->selectors,
		 cont_esc ? "&continue=" : "", cont_esc ? cont_esc : "");
	struct feed f = {wp, e};
	struct kube_stream_options so = {.watch = 0, .cancel = &inf->cancel};
	long status = 0;
	int rc = kube_client_stream(inf->client, path, feed_parser, &f, &so, &status, e);
	if (rc == 0)
		rc = watch_parser_finish(wp, e);
	if (rc == KERR_GONE) {
		in->type = REFLECTOR_IN_GONE;
	} else if (rc < 0) {
		in->type = REFLECTOR_IN_LIST_FAILED;
	} else {
		const struct watch_list_meta *m = watch_parser_list_meta(wp);
		*rv_out = strdup(m->resource_version);
		*cont_out = strdup(m->continue_token);
		if (!*rv_out || !*cont_out) {
			kerr_set(e, KERR_NOMEM, "LIST of %s: out of memory", inf->kind->name);
			in->type = REFLECTOR_IN_LIST_FAILED;
		} else {
			in->type = REFLECTOR_IN_LIST_PAGE;
			in->resource_version = *rv_out;
			in->continue_token = *cont_out;
		}
	}
out:
	if (in->type != REFLECTOR_IN_LIST_PAGE)
		store_replace_abort(inf->store);
	watch_parser_free(wp);
	curl_free(cont_esc);
	free(path);
}

static void do_watch(struct informer *inf, const char *rv, struct reflector_input *in)
{
	struct kerr *e = &inf->stream_err;
	kerr_clear(e);
	inf->gone = false;
	inf->watch_delivered = false;
	int timeout = inf->watch_timeout_s;
	if (timeout <= 0) {
		inf->rng = inf->rng * 6364136223846793005ull + 1442695040888963407ull;
		timeout = 300 + (int)((inf->rng >> 33) % 300);
	}
	atomic_fetch_add(&inf->n_watches, 1);
	size_t n = strlen(inf->base_path) + strlen(inf->selectors) + strlen(rv) + 96;
	char *path = malloc(n);
	struct watch_parser *wp = path ? watch_parser_new(inf->kind, WATCH_PARSER_WATCH, on_watch_event, inf, 0, e) : NULL;
	if (!path || !wp) {
		kerr_set(e, KERR_NOMEM, "WATCH of %s: out of memory", inf->kind->name);
		in->type = REFLECTOR_IN_WATCH_FAILED;
		goto out;
	}
	snprintf(path, n, "%s?watch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%d%s",
		 inf->base_path, rv, timeout, inf->selectors);
	struct feed f = {wp, e};
	struct kube_stream_options so = {.watch = 1, .cancel = &inf->cancel};
	long status = 0;
	int64_t started = now_ms();
	struct reflector_input opened = {.type = REFLECTOR_IN_WATCH_OPENED};
	struct reflector_action act;
	reflector_sm_step(&inf->sm, &opened, &act);
	int rc = kube_client_stream(inf->client, path, feed_parser, &f, &so, &status, e);
	if (rc == 0)
		rc = watch_parser_finish(wp, e);
	if (rc == KERR_GONE || inf->gone)
		in->type = REFLECTOR_IN_GONE;
	else if (rc < 0)
		in->type = REFLECTOR_IN_WATCH_FAILED;
	else if (!inf->watch_delivered && now_ms() - started < SHORT_WATCH_MS) {
		kerr_set(e, KERR_CLOSED, "WATCH of %s: the server closed the stream at once", inf->kind->name);
		in->type = REFLECTOR_IN_WATCH_FAILED;
	} else
		in->type = REFLECTOR_IN_WATCH_ENDED;
out:
	watch_parser_free(wp);
	free(path);
}

/* Sleep up to ms, waking early when stopped. */
static void sleep_ms(struct informer *inf, uint32_t ms)
{
	struct timespec ts = timefmt_deadline(ms);
	pthread_mutex_lock(&inf->mu);
	while (!inf->stopped && pthread_cond_timedwait(&inf->cond, &inf->mu, &ts) == 0)
		;
	pthread_mutex_unlock(&inf->mu);
}

static void set_synced(struct informer *inf)
{
	pthread_mutex_lock(&inf->mu);
	if (!inf->synced) {
		inf->synced = true;
		pthread_cond_broadcast(&inf->cond);
	}
	pthread_mutex_unlock(&inf->mu);
}

static void *run(void *arg)
{
	struct informer *inf = arg;
	struct reflector_input in = {.type = REFLECTOR_IN_START};
	struct reflector_action act;
	char *rv = NULL, *cont = NULL;
	for (;;) {
		if (atomic_load(&inf->cancel))
			in = (struct reflector_input){.type = REFLECTOR_IN_STOP};
		int rc = reflector_sm_step(&inf->sm, &in, &act);
		free(rv);
		free(cont);
		rv = cont = NULL;
		if (rc < 0) {
			/* Only out of memory gets here: the driver feeds valid inputs. */
			logf_(inf, INFORMER_LOG_ERROR, "reflector step failed (%s); relisting in 1s", kerr_strerror(rc));
			atomic_fetch_add(&inf->n_errors, 1);
			sleep_ms(inf, 1000);
			reflector_sm_free(&inf->sm);
			reflector_sm_init(&inf->sm, inf->rng);
			in = (struct reflector_input){.type = REFLECTOR_IN_START};
			continue;
		}
		memset(&in, 0, sizeof(in));
		switch (act.type) {
		case REFLECTOR_DO_STOP:
			return NULL;
		case REFLECTOR_DO_NOTHING:
			/* Only stream inputs (inside do_watch) yield this; none reach here. */
			in.type = REFLECTOR_IN_WATCH_ENDED;
			break;
		case REFLECTOR_DO_LIST:
			if (!act.continue_token && atomic_fetch_add(&inf->n_relists, 1) > 0)
				logf_(inf, INFORMER_LOG_INFO, "relisting %s", inf->base_path);
			do_list(inf, act.continue_token, &in, &rv, &cont);
			break;
		case REFLECTOR_DO_COMMIT: {
			if (store_replace_commit(inf->store, on_relist_diff, inf) < 0) {
				logf_(inf, INFORMER_LOG_ERROR, "cannot commit the LIST of %s", inf->kind->name);
				store_replace_abort(inf->store);
				in.type = REFLECTOR_IN_LIST_FAILED;
				break;
			}
			set_synced(inf);
			rc = reflector_sm_step(&inf->sm, NULL, &act);
			if (rc < 0 || act.type != REFLECTOR_DO_WATCH) {
				in.type = REFLECTOR_IN_START;
				break;
			}
			do_watch(inf, act.resource_version, &in);
			break;
		}
		case REFLECTOR_DO_WATCH:
			do_watch(inf, act.resource_version, &in);
			break;
		case REFLECTOR_DO_SLEEP:
			logf_(inf, INFORMER_LOG_WARN, "%s; retrying in %u ms", inf->stream_err.message, act.sleep_ms);
			sleep_ms(inf, act.sleep_ms);
			in.type = REFLECTOR_IN_BACKOFF_DONE;
			break;
		}
		if (atomic_load(&inf->cancel))
			continue;
		if (in.type == REFLECTOR_IN_LIST_FAILED || in.type == REFLECTOR_IN_WATCH_FAILED)
			atomic_fetch_add(&inf->n_errors, 1);
		if (in.type == REFLECTOR_IN_GONE)
			logf_(inf, INFORMER_LOG_INFO, "%s: resourceVersion too old (410 Gone), relisting",
			      inf->kind->name);
	}
}

int informer_start(struct informer *inf, struct kerr *e)
{
	if (inf->started)
		return kerr_set(e, KERR_INVAL, "informer for %s already started", inf->kind->name);
	if (pthread_create(&inf->thread, NULL, run, inf) != 0)
		return kerr_set(e, KERR_NOMEM, "informer for %s: cannot start its thread", inf->kind->name);
	inf->started = true;
	return 0;
}

bool informer_has_synced(struct informer *inf)
{
	pthread_mutex_lock(&inf->mu);
	bool s = inf->synced;
	pthread_mutex_unlock(&inf->mu);
	return s;
}

int informer_wait_synced(struct informer *inf, long timeout_ms)
{
	struct timespec ts = timefmt_deadline(timeout_ms >= 0 ? timeout_ms : 0);
	int rc = 0;
	pthread_mutex_lock(&inf->mu);
	while (!inf->synced && !inf->stopped) {
		int w = timeout_ms >= 0 ? pthread_cond_timedwait(&inf->cond, &inf->mu, &ts)
					: pthread_cond_wait(&inf->cond, &inf->mu);
		if (w != 0 && !inf->synced) {
			rc = KERR_TIMEOUT;
			break;
		}
	}
	if (!inf->synced && inf->stopped)
		rc = KERR_CLOSED;
	pthread_mutex_unlock(&inf->mu);
	return rc;
}

void informer_stats(struct informer *inf, struct informer_stats *out)
{
	out->relists = atomic_load(&inf->n_relists);
	out->watches = atomic_load(&inf->n_watches);
	out->events = atomic_load(&inf->n_events);
	out->errors = atomic_load(&inf->n_errors);
	out->objects = store_len(inf->store);
	out->synced = informer_has_synced(inf);
}

void informer_stop(struct informer *inf)
{
	if (!inf || !inf->started)
		return;
	atomic_store(&inf->cancel, 1);
	pthread_mutex_lock(&inf->mu);
	inf->stopped = true;
	pthread_cond_broadcast(&inf->cond);
	pthread_mutex_unlock(&inf->mu);
	pthread_join(inf->thread, NULL);
	inf->started = false;
}

void informer_free(struct informer *inf)
{
	if (!inf)
		return;
	informer_stop(inf);
	store_free(inf->store);
	reflector_sm_free(&inf->sm);
	pthread_cond_destroy(&inf->cond);
	pthread_mutex_destroy(&inf->mu);
	free(inf->base_path);
	free(inf->selectors);
	free(inf);
}
