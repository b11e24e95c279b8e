/*
 * leader-demo: join a leader election on a Lease and report it as JSON lines
 * on stdout, each with the wall-clock time "t" in unix seconds:
 *
 *   {"t":1700000000.123456,"identity":"a","event":"new_leader","leader":"b"}
 *   {"t":...,"identity":"a","event":"started_leading"}
 *   {"t":...,"identity":"a","event":"acting"}         every --tick-ms while leader_is_leader()
 *   {"t":...,"identity":"a","event":"stopped_leading"}
 *   {"t":...,"identity":"a","event":"exiting","release":0}
 *
 *   leader-demo --namespace NS --lease NAME [--identity ID] [--kubeconfig PATH]
 *               [--lease-duration-ms N] [--renew-deadline-ms N] [--retry-period-ms N]
 *               [--tick-ms N]
 *
 * SIGTERM or SIGINT stops the election and releases the lease, so another
 * replica takes over at once; SIGKILL leaves it to expire. Logs go to stderr,
 * one JSON object a line with the same "t". The integration tests run two or
 * three of these.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kubeconfig.h"
#include "leader.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* s as a JSON string body: quotes, backslashes and control bytes escaped. */
static void put_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static const char *identity;

/* One event line. The leader's thread and the main thread both print, so
 * the line is written under the stream's lock and flushed at once. */
static void emit(const char *event, const char *key, const char *value, int num)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	flockfile(stdout);
	printf("{\"t\":%lld.%06ld,\"identity\":", (long long)ts.tv_sec, ts.tv_nsec / 1000);
	put_json_string(stdout, identity);
	printf(",\"event\":\"%s\"", event);
	if (key && value) {
		printf(",\"%s\":", key);
		put_json_string(stdout, value);
	} else if (key) {
		printf(",\"%s\":%d", key, num);
	}
	printf("}\n");
	fflush(stdout);
	funlockfile(stdout);
}

static void on_started(void *arg) { (void)arg; emit("started_leading", NULL, NULL, 0); }
static void on_stopped(void *arg) { (void)arg; emit("stopped_leading", NULL, NULL, 0); }
static void on_new_leader(void *arg, const char *who) { (void)arg; emit("new_leader", "leader", who, 0); }

static void on_log(void *arg, enum informer_log_level level, const char *kind, const char *msg)
{
	(void)arg;
	static const char *const names[] = {"debug", "info", "warn", "error"};
	if (level == INFORMER_LOG_DEBUG)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	flockfile(stderr);
	fprintf(stderr, "{\"t\":%lld.%06ld,\"level\":\"%s\",\"kind\":\"%s\",\"msg\":", (long long)ts.tv_sec,
		ts.tv_nsec / 1000, names[level], kind);
	put_json_string(stderr, msg);
	fprintf(stderr, "}\n");
	funlockfile(stderr);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: leader-demo --namespace NS --lease NAME [--identity ID] [--kubeconfig PATH]\n"
		   "                   [--lease-duration-ms N] [--renew-deadline-ms N] [--retry-period-ms N] [--tick-ms N]\n");
}

/* A positive number of milliseconds, or -1. */
static long parse_ms(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	return *s && !*end && v > 0 ? v : -1;
}

int main(int argc, char **argv)
{
	struct leader_options opts = {.on_started_leading = on_started, .on_stopped_leading = on_stopped,
				      .on_new_leader = on_new_leader, .log = on_log};
	const char *kubeconfig = NULL;
	long tick_ms = 100;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		long *ms = NULL;
		if (!strcmp(a, "--namespace") && v) opts.namespace = argv[++i];
		else if (!strcmp(a, "--lease") && v) opts.name = argv[++i];
		else if (!strcmp(a, "--identity") && v) opts.identity = argv[++i];
		else if (!strcmp(a, "--kubeconfig") && v) kubeconfig = argv[++i];
		else if (!strcmp(a, "--lease-duration-ms") && v) ms = &opts.lease_duration_ms;
		else if (!strcmp(a, "--renew-deadline-ms") && v) ms = &opts.renew_deadline_ms;
		else if (!strcmp(a, "--retry-period-ms") && v) ms = &opts.retry_period_ms;
		else if (!strcmp(a, "--tick-ms") && v) ms = &tick_ms;
		else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
		else { fprintf(stderr, "leader-demo: unknown or incomplete option '%s'\n", a); usage(stderr); return 2; }
		if (ms && (*ms = parse_ms(argv[++i])) < 0) {
			fprintf(stderr, "leader-demo: %s needs a positive number of milliseconds, got '%s'\n", a, argv[i]);
			return 2;
		}
	}
	if (!opts.namespace || !opts.name) {
		fprintf(stderr, "leader-demo: --namespace and --lease are required\n");
		usage(stderr);
		return 2;
	}

	struct kerr e = {0};
	struct kube_config cfg;
	int rc = kubeconfig ? kubeconfig_load(&cfg, kubeconfig, NULL, &e) : kubeconfig_load_default(&cfg, NULL, &e);
	if (rc < 0) {
		fprintf(stderr, "leader-demo: %s\n", e.message);
		return 1;
	}
	/* Requests no longer than the renew deadline, so that a hung apiserver
	 * cannot keep the election thread from ending a term on time. */
	struct kube_client_options co = {
		.timeout_ms = opts.renew_deadline_ms ? opts.renew_deadline_ms : LEADER_DEFAULT_RENEW_DEADLINE_MS,
	};
	struct kube_client *client = NULL;
	rc = kube_client_new(&client, &cfg, &co, &e);
	kube_config_free(&cfg);
	if (rc < 0) {
		fprintf(stderr, "leader-demo: %s\n", e.message);
		return 1;
	}
	struct leader *le = NULL;
	if (leader_new(&le, client, &opts, &e) < 0) {
		fprintf(stderr, "leader-demo: %s\n", e.message);
		kube_client_free(client);
		return 1;
	}
	identity = leader_identity(le);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (leader_start(le, &e) < 0) {
		fprintf(stderr, "leader-demo: %s\n", e.message);
		leader_free(le);
		kube_client_free(client);
		return 1;
	}
	struct timespec tick = {tick_ms / 1000, (tick_ms % 1000) * 1000000};
	while (!stop_requested) {
		if (leader_is_leader(le))
			emit("acting", NULL, NULL, 0);
		nanosleep(&tick, NULL);
	}
	rc = leader_stop(le, true);
	emit("exiting", "release", NULL, rc);
	leader_free(le);
	kube_client_free(client);
	return rc < 0;
}
