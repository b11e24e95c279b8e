/*
 * informer-watch: watch one kind through the informer and print each change
 * as one JSON line ({"event":"ADDED","kind":"Pod","key":"ns/name","rv":"12"}).
 *
 *   informer-watch --kind Pod [--namespace NS] [--selector LABELS] [--kubeconfig PATH]
 *                  [--exit-after-sync] [--dump]
 *
 * --exit-after-sync prints the synced store (with --dump, one line per
 * object: key, uid, resourceVersion) and exits: the integration tests compare
 * that against a fresh LIST.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "informer.h"
#include "kubeconfig.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void print_event(const char *type, const struct kobj *o)
{
	printf("{\"event\":\"%s\",\"kind\":\"%s\",\"key\":\"%s\",\"uid\":\"%s\",\"rv\":\"%s\"}\n", type, o->kind->name,
	       o->key, o->uid, o->resource_version);
	fflush(stdout);
}

static void on_add(void *arg, struct kobj *o) { (void)arg; print_event("ADDED", o); }
static void on_update(void *arg, struct kobj *old, struct kobj *o) { (void)arg; (void)old; print_event("MODIFIED", o); }
static void on_delete(void *arg, struct kobj *o) { (void)arg; print_event("DELETED", o); }

static void on_log(void *arg, enum informer_log_level level, const char *kind, const char *msg)
{
	(void)arg;
	static const char *const names[] = {"debug", "info", "warn", "error"};
	fprintf(stderr, "{\"level\":\"%s\",\"kind\":\"%s\",\"msg\":\"%s\"}\n", names[level], kind, msg);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: informer-watch --kind KIND [--namespace NS] [--selector LABELS] [--kubeconfig PATH]\n"
		   "                      [--exit-after-sync] [--dump]\n"
		   "KIND is one of:");
	for (size_t i = 0; kind_at(i); i++)
		fprintf(f, " %s", kind_at(i)->name);
	fprintf(f, "\n");
}

int main(int argc, char **argv)
{
	const char *kind_name = NULL, *ns = NULL, *selector = NULL, *kubeconfig = NULL;
	int exit_after_sync = 0, dump = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--kind") && v) kind_name = argv[++i];
		else if (!strcmp(a, "--namespace") && v) ns = argv[++i];
		else if (!strcmp(a, "--selector") && v) selector = argv[++i];
		else if (!strcmp(a, "--kubeconfig") && v) kubeconfig = argv[++i];
		else if (!strcmp(a, "--exit-after-sync")) exit_after_sync = 1;
		else if (!strcmp(a, "--dump")) dump = 1;
		else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
		else { fprintf(stderr, "informer-watch: unknown or incomplete option '%s'\n", a); usage(stderr); return 2; }
	}
	const struct kind *k = kind_name ? kind_by_name(kind_name) : NULL;
	if (!k) {
		fprintf(stderr, "informer-watch: --kind is required and must name a known kind\n");
		usage(stderr);
		return 2;
	}
	struct kerr e = {0};
	struct kube_config cfg;
	int rc = kubeconfig ? kubeconfig_load(&cfg, kubeconfig, NULL, &e) : kubeconfig_load_default(&cfg, NULL, &e);
	if (rc < 0) {
		fprintf(stderr, "informer-watch: %s\n", e.message);
		return 1;
	}
	struct kube_client *client = NULL;
	rc = kube_client_new(&client, &cfg, NULL, &e);
	kube_config_free(&cfg);
	if (rc < 0) {
		fprintf(stderr, "informer-watch: %s\n", e.message);
		return 1;
	}
	struct informer *inf = NULL;
	struct informer_options opts = {.namespace = ns, .label_selector = selector, .log = on_log};
	struct informer_handlers h = {on_add, on_update, on_delete, NULL};
	if (informer_new(&inf, client, k, &opts, &e) < 0 ||
	    (!exit_after_sync && informer_add_handlers(inf, &h) < 0) || informer_start(inf, &e) < 0) {
		fprintf(stderr, "informer-watch: %s\n", e.message[0] ? e.message : "cannot start the informer");
		informer_free(inf);
		kube_client_free(client);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	int status = 0;
	while (!stop_requested && informer_wait_synced(inf, 200) == KERR_TIMEOUT)
		;
	if (exit_after_sync && informer_has_synced(inf)) {
		struct kobj **objs = NULL;
		size_t n = 0;
		if (store_list(informer_store(inf), &objs, &n) < 0) {
			fprintf(stderr, "informer-watch: out of memory listing the store\n");
			status = 1;
		} else {
			if (dump)
				for (size_t i = 0; i < n; i++)
					printf("%s %s %s\n", objs[i]->key, objs[i]->uid, objs[i]->resource_version);
			else
				printf("{\"synced\":true,\"objects\":%zu}\n", n);
			store_list_free(objs, n);
		}
	} else {
		while (!stop_requested)
			pause();
	}
	informer_free(inf);
	kube_client_free(client);
	return status;
}
