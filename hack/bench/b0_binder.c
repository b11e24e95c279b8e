/*
 * b0-binder: the B0 peer of hack/bench/scheduler, a trivial scheduler that
 * marks the physical limit of the apiserver it runs against.
 *
 *   b0-binder [--scheduler-name NAME] [--workers N] [--kubeconfig PATH]
 *
 * It watches the pending pods that ask for NAME (default "b0") through the
 * informer library, with the field selector
 * spec.schedulerName=NAME,spec.nodeName= so that the apiserver sends it
 * nothing else, and binds each to the next node of the node list, round
 * robin: no filter, no score, no events. N worker threads (default 8) POST
 * the bindings through one unthrottled client (no client-side rate limit).
 * The node list is the node cache, sorted by name, taken once when both
 * caches have synced; then it prints {"ready":true,"nodes":N} on stdout.
 * A 409 or 404 (bound or deleted meanwhile) ends the attempt; other errors
 * retry with backoff. SIGINT or SIGTERM stops it.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "informer.h"
#include "kubeconfig.h"
#include "workqueue.h"

#define MAX_WORKERS 64

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

struct b0 {
	struct kube_client *client;
	struct informer *pods;
	struct workqueue *q;
	char **nodes; /* sorted names */
	size_t nnodes;
	atomic_size_t next;
	atomic_ulong bound, failed;
};

static void queue_pod(struct b0 *b, const struct kobj *o)
{
	const struct kpod *p = (const struct kpod *)o;
	if (!p->node_name[0] && !o->deleted)
		workqueue_add(b->q, o->key);
}

static void on_add(void *arg, struct kobj *o) { queue_pod(arg, o); }
static void on_update(void *arg, struct kobj *old, struct kobj *o) { (void)old; queue_pod(arg, o); }

static void on_log(void *arg, enum informer_log_level level, const char *kind, const char *msg)
{
	(void)arg;
	static const char *const names[] = {"debug", "info", "warn", "error"};
	if (level >= INFORMER_LOG_INFO)
		fprintf(stderr, "b0-binder: %s %s: %s\n", names[level], kind, msg);
}

/* 0 when bound or nothing to do; < 0 to retry. */
static int bind_one(struct b0 *b, const char *key)
{
	if (stop_requested)
		return 0;
	struct kobj *o = store_get(informer_store(b->pods), key);
	if (!o)
		return 0; /* bound (it left the field selector) or deleted */
	const struct kpod *p = (const struct kpod *)o;
	if (p->node_name[0] || o->deleted) {
		kobj_unref(o);
		return 0;
	}
	const char *node = b->nodes[atomic_fetch_add(&b->next, 1) % b->nnodes];
	char path[1024], body[2048];
	int n1 = snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/binding", o->ns, o->name);
	int n2 = snprintf(body, sizeof(body),
			  "{\"apiVersion\":\"v1\",\"kind\":\"Binding\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\","
			  "\"uid\":\"%s\"},\"target\":{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"name\":\"%s\"}}",
			  o->name, o->ns, o->uid, node);
	kobj_unref(o);
	if (n1 < 0 || (size_t)n1 >= sizeof(path) || n2 < 0 || (size_t)n2 >= sizeof(body)) {
		fprintf(stderr, "b0-binder: names of %s too long; skipped\n", key);
		return 0;
	}
	struct kube_response r;
	struct kerr e = {0};
	int rc = kube_client_request(b->client, "POST", path, NULL, body, (size_t)n2, &r, &e);
	kube_response_free(&r);
	if (rc == 0) {
		atomic_fetch_add(&b->bound, 1);
		return 0;
	}
	if (rc == KERR_CONFLICT || rc == KERR_NOT_FOUND || rc == KERR_ALREADY_EXISTS)
		return 0;
	atomic_fetch_add(&b->failed, 1);
	fprintf(stderr, "b0-binder: binding %s to %s: %s (retrying)\n", key, node, e.message);
	return rc;
}

static void *worker(void *arg)
{
	struct b0 *b = arg;
	const char *key;
	while (workqueue_get(b->q, &key) == 0) {
		if (bind_one(b, key) < 0) {
			workqueue_add_rate_limited(b->q, key);
		} else {
			workqueue_forget(b->q, key);
		}
		workqueue_done(b->q, key);
	}
	return NULL;
}

static int name_cmp(const void *a, const void *c)
{
	return strcmp(*(char *const *)a, *(char *const *)c);
}

static int take_nodes(struct b0 *b, struct informer *nodes)
{
	struct kobj **objs = NULL;
	size_t n = 0;
	if (store_list(informer_store(nodes), &objs, &n) < 0)
		return -1;
	b->nodes = n ? calloc(n, sizeof(*b->nodes)) : NULL;
	for (size_t i = 0; b->nodes && i < n; i++) {
		if (!(b->nodes[i] = strdup(objs[i]->name)))
			break;
		b->nnodes++;
	}
	store_list_free(objs, n);
	if (b->nnodes != n || n == 0)
		return -1;
	qsort(b->nodes, b->nnodes, sizeof(*b->nodes), name_cmp);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: b0-binder [--scheduler-name NAME] [--workers N] [--kubeconfig PATH]\n");
}

int main(int argc, char **argv)
{
	const char *name = "b0", *kubeconfig = NULL;
	int workers = 8;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--scheduler-name") && v) name = argv[++i];
		else if (!strcmp(a, "--workers") && v) workers = atoi(argv[++i]);
		else if (!strcmp(a, "--kubeconfig") && v) kubeconfig = argv[++i];
		else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
		else { fprintf(stderr, "b0-binder: unknown or incomplete option '%s'\n", a); usage(stderr); return 2; }
	}
	if (workers < 1 || workers > MAX_WORKERS || !name[0] || strlen(name) > 200) {
		fprintf(stderr, "b0-binder: --workers must be 1..%d and --scheduler-name 1..200 characters\n", MAX_WORKERS);
		return 2;
	}
	struct kerr e = {0};
	struct kube_config cfg;
	int rc = kubeconfig ? kubeconfig_load(&cfg, kubeconfig, NULL, &e) : kubeconfig_load_default(&cfg, NULL, &e);
	if (rc < 0) {
		fprintf(stderr, "b0-binder: %s\n", e.message);
		return 1;
	}
	struct b0 b = {0};
	struct kube_client_options co = {.qps = -1, .max_idle_handles = workers + 4, .user_agent = "nimbus-bench-b0/0.1"};
	rc = kube_client_new(&b.client, &cfg, &co, &e);
	kube_config_free(&cfg);
	if (rc < 0) {
		fprintf(stderr, "b0-binder: %s\n", e.message);
		return 1;
	}
	char selector[512];
	snprintf(selector, sizeof(selector), "spec.schedulerName=%s,spec.nodeName=", name);
	struct informer *nodes = NULL;
	struct informer_options po = {.field_selector = selector, .log = on_log};
	struct informer_options no = {.log = on_log};
	struct informer_handlers h = {on_add, on_update, NULL, &b};
	pthread_t th[MAX_WORKERS];
	int started = 0, status = 1;
	if (workqueue_new(NULL, &b.q) < 0 || informer_new(&b.pods, b.client, &kind_pod, &po, &e) < 0 ||
	    informer_new(&nodes, b.client, &kind_node, &no, &e) < 0 || informer_add_handlers(b.pods, &h) < 0 ||
	    informer_start(nodes, &e) < 0) {
		fprintf(stderr, "b0-binder: cannot start: %s\n", e.message[0] ? e.message : "out of memory");
		goto out;
	}
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!stop_requested && informer_wait_synced(nodes, 200) == KERR_TIMEOUT)
		;
	if (stop_requested)
		goto out;
	if (take_nodes(&b, nodes) < 0) {
		fprintf(stderr, "b0-binder: no nodes to bind to (or out of memory)\n");
		goto out;
	}
	/* The node list is fixed from here on: the pods' handlers may start. */
	for (; started < workers; started++)
		if (pthread_create(&th[started], NULL, worker, &b) != 0)
			break;
	if (started == 0 || informer_start(b.pods, &e) < 0) {
		fprintf(stderr, "b0-binder: cannot start the workers or the pod informer: %s\n", e.message);
		goto out;
	}
	while (!stop_requested && informer_wait_synced(b.pods, 200) == KERR_TIMEOUT)
		;
	printf("{\"ready\":true,\"nodes\":%zu,\"workers\":%d}\n", b.nnodes, started);
	fflush(stdout);
	while (!stop_requested) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "b0-binder: stopping; %lu pods bound, %lu failed attempts\n", atomic_load(&b.bound),
		atomic_load(&b.failed));
	status = 0;
out:
	if (b.q)
		workqueue_shutdown(b.q);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	informer_free(b.pods);
	informer_free(nodes);
	workqueue_free(b.q);
	for (size_t i = 0; i < b.nnodes; i++)
		free(b.nodes[i]);
	free(b.nodes);
	kube_client_free(b.client);
	return status;
}
