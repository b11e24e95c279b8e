/*
 * informer-watch: watch one kind through the informer and print each change
 * as one JSON line ({"event":"ADDED","kind":"Pod","key":"ns/name","rv":"12"}).
 *
 *   informer-watch --kind Pod [--namespace NS] [--selector LABELS] [--kubeconfig PATH]
 *                  [--exit-after-sync] [--hold-after-sync] [--dump]
 *
 * --exit-after-sync prints the synced store (with --dump, one line per
 * object: key, uid, resourceVersion) and exits: the integration tests compare
 * that against a fresh LIST. With --dump-file PATH, SIGUSR1 writes the same
 * dump of the running informer's store to PATH (atomically, via a rename).
 *
 * --hold-after-sync prints the same as --exit-after-sync, then keeps the
 * synced cache (watching, without handlers) until SIGINT or SIGTERM:
 * hack/bench/informer reads the memory of a process that caches every object.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "informer.h"
#include "kubeconfig.h"

static volatile sig_atomic_t stop_requested, dump_requested;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		dump_requested = 1;
	else
		stop_requested = 1;
}

/* One line per cached object: key uid resourceVersion. */
static int dump_store(struct store *s, FILE *f)
{
	struct kobj **objs = NULL;
	size_t n = 0;
	if (store_list(s, &objs, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s %s %s\n", objs[i]->key, objs[i]->uid, objs[i]->resource_version);
	store_list_free(objs, n);
	return 0;
}

static int dump_to_file(struct store *s, const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	int rc = dump_store(s, f);
	if (fclose(f) != 0 || rc < 0 || rename(tmp, path) != 0)
		return -1;
	return 0;
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
		   "                      [--exit-after-sync] [--hold-after-sync] [--dump] [--dump-file PATH]\n"
		   "KIND is one of:");
	for (size_t i = 0; kind_at(i); i++)
		fprintf(f, " %s", kind_at(i)->name);
	fprintf(f, "\n");
}

int main(int argc, char **argv)
{
	const char *kind_name = NULL, *ns = NULL, *selector = NULL, *kubeconfig = NULL, *dump_file = NULL;
	int exit_after_sync = 0, hold_after_sync = 0, dump = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--kind") && v) kind_name = argv[++i];
		else if (!strcmp(a, "--namespace") && v) ns = argv[++i];
		else if (!strcmp(a, "--selector") && v) selector = argv[++i];
		else if (!strcmp(a, "--kubeconfig") && v) kubeconfig = argv[++i];
		else if (!strcmp(a, "--dump-file") && v) dump_file = argv[++i];
		else if (!strcmp(a, "--exit-after-sync")) exit_after_sync = 1;
		else if (!strcmp(a, "--hold-after-sync")) hold_after_sync = 1;
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
	    (!exit_after_sync && !hold_after_sync && informer_add_handlers(inf, &h) < 0) || informer_start(inf, &e) < 0) {
		fprintf(stderr, "informer-watch: %s\n", e.message[0] ? e.message : "cannot start the informer");
		informer_free(inf);
		kube_client_free(client);
		return 1;
	}
	/* sigaction, not signal(): under strict POSIX, signal() resets the
	 * handler after the first delivery, and a second dump request would kill. */
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	int status = 0;
	while (!stop_requested && informer_wait_synced(inf, 200) == KERR_TIMEOUT)
		;
	if ((exit_after_sync || hold_after_sync) && informer_has_synced(inf)) {
		if (dump) {
			status = dump_store(informer_store(inf), stdout) < 0;
		} else {
			printf("{\"synced\":true,\"objects\":%zu}\n", store_len(informer_store(inf)));
		}
		fflush(stdout);
		while (hold_after_sync && !stop_requested) {
			struct timespec ts = {0, 50 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	} else {
		if (informer_has_synced(inf)) {
			fprintf(stderr, "{\"level\":\"info\",\"kind\":\"%s\",\"msg\":\"synced\"}\n", k->name);
		}
		while (!stop_requested) {
			if (dump_requested) {
				dump_requested = 0;
				if (!dump_file || dump_to_file(informer_store(inf), dump_file) < 0)
					fprintf(stderr, "informer-watch: cannot write the dump (--dump-file missing or unwritable)\n");
			}
			struct timespec ts = {0, 50 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	informer_free(inf);
	kube_client_free(client);
	return status;
}
