/*
 * kube_client against a real TLS server: fake_apiserver.py (python3 +
 * openssl), started by this program on 127.0.0.1 with its own CA and
 * client-certificate verification, serving canned apiserver responses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kube_client.h"
#include "kubeconfig.h"

#ifndef FAKE_APISERVER
#error "FAKE_APISERVER must name fake_apiserver.py"
#endif

static struct {
	char dir[64];
	pid_t pid;
	int port;
	char server[64];
	struct kube_config cfg;  /* from a kubeconfig with relative file paths */
	struct kube_client *c;   /* from cfg, with a rotating token file */
} g;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		if (d) {
			struct dirent *de;
			while ((de = readdir(d)) != NULL) {
				if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
					continue;
				char sub[512];
				snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
				rm_rf(sub);
			}
			closedir(d);
		}
		rmdir(path);
	} else {
		unlink(path);
	}
}

static int write_file(const char *name, const char *content)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", g.dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int ok = fputs(content, f) >= 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static char *read_file(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", g.dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = calloc(1, 16384);
	size_t n = buf ? fread(buf, 1, 16383, f) : 0;
	fclose(f);
	if (buf && n == 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Start the server and wait for its "READY <port>" line. */
static int start_server(void)
{
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	g.pid = fork();
	if (g.pid < 0)
		return -1;
	if (g.pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execlp("python3", "python3", FAKE_APISERVER, g.dir, (char *)NULL);
		perror("exec python3");
		_exit(127);
	}
	close(fds[1]);
	char line[128];
	size_t n = 0;
	while (n < sizeof(line) - 1) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		if (poll(&p, 1, 20000) <= 0)
			break;
		ssize_t r = read(fds[0], line + n, sizeof(line) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		line[n] = '\0';
		if (strchr(line, '\n'))
			break;
	}
	close(fds[0]);
	line[n] = '\0';
	if (sscanf(line, "READY %d", &g.port) != 1) {
		fprintf(stderr, "fake apiserver did not start (python3 and openssl are needed): got \"%s\"\n", line);
		return -1;
	}
	snprintf(g.server, sizeof(g.server), "https://127.0.0.1:%d", g.port);
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(g.dir, sizeof(g.dir), "/tmp/kube-client-tls-XXXXXX");
	if (!mkdtemp(g.dir) || start_server() != 0)
		return -1;
	char cfg[1024];
	snprintf(cfg, sizeof(cfg),
		 "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
		 "clusters: [{name: fake, cluster: {server: '%s', certificate-authority: ca.crt}}]\n"
		 "contexts: [{name: fake, context: {cluster: fake, user: admin}}]\n"
		 "users: [{name: admin, user: {client-certificate: client.crt, client-key: client.key, tokenFile: token}}]\n",
		 g.server);
	struct kerr e = { 0 };
	struct kube_client_options o = { .token_recheck_ms = -1 };
	if (write_file("token", "token-one\n") != 0 || write_file("kubeconfig", cfg) != 0)
		return -1;
	char path[256];
	snprintf(path, sizeof(path), "%s/kubeconfig", g.dir);
	if (kubeconfig_load(&g.cfg, path, NULL, &e) != 0 || kube_client_new(&g.c, &g.cfg, &o, &e) != 0) {
		fprintf(stderr, "setup: %s\n", e.message);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	kube_client_free(g.c);
	kube_config_free(&g.cfg);
	if (g.pid > 0) {
		kill(g.pid, SIGTERM);
		waitpid(g.pid, NULL, 0);
	}
	rm_rf(g.dir);
	return 0;
}

static void get_ok(void **state)
{
	(void)state;
	struct kube_response r;
	struct kerr e = { 0 };
	assert_int_equal(kube_client_request(g.c, "GET", "/api/v1/namespaces/default/pods/ok", NULL, NULL, 0, &r, &e), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(r.body);
	assert_int_equal(strlen(r.body), r.len);
	assert_non_null(strstr(r.body, "\"name\": \"ok\""));
	kube_response_free(&r);
	assert_null(r.body);
}

static void errors_carry_the_status(void **state)
{
	(void)state;
	struct kube_response r;
	struct kerr e = { 0 };
	assert_int_equal(kube_client_request(g.c, "GET", "/api/v1/namespaces/default/pods/nope", NULL, NULL, 0, &r, &e),
			 KERR_NOT_FOUND);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "NotFound"));
	assert_int_equal(e.http_status, 404);
	assert_string_equal(e.reason, "NotFound");
	assert_non_null(strstr(e.message, "pods \"nope\" not found"));
	kube_response_free(&r);

	kerr_clear(&e);
	const char *pod = "{\"metadata\":{\"name\":\"ok\"}}";
	assert_int_equal(kube_client_request(g.c, "POST", "/api/v1/namespaces/default/pods", NULL, pod, strlen(pod), &r, &e),
			 KERR_ALREADY_EXISTS);
	assert_string_equal(e.reason, "AlreadyExists");
	kube_response_free(&r);

	kerr_clear(&e);
	assert_int_equal(kube_client_request(g.c, "GET", "/boom", NULL, NULL, 0, &r, &e), KERR_SERVER);
	assert_int_equal(e.http_status, 500);
	assert_non_null(strstr(e.message, "internal kaboom"));
	kube_response_free(&r);
}

/* The echo route returns what the server received. */
static void expect_echo(const char *method, const char *ctype, const char *body, const char *want_ctype_json,
			const char *want_body_json)
{
	struct kube_response r;
	struct kerr e = { 0 };
	assert_int_equal(kube_client_request(g.c, method, "/echo?fieldManager=nimbus&force=true", ctype, body,
					     body ? strlen(body) : 0, &r, &e),
			 0);
	char want[256];
	snprintf(want, sizeof(want), "\"method\": \"%s\"", method);
	assert_non_null(strstr(r.body, want));
	assert_non_null(strstr(r.body, "\"path\": \"/echo?fieldManager=nimbus&force=true\""));
	assert_non_null(strstr(r.body, want_ctype_json));
	assert_non_null(strstr(r.body, want_body_json));
	assert_non_null(strstr(r.body, "\"user_agent\": \"" KUBE_CLIENT_DEFAULT_USER_AGENT "\""));
	assert_non_null(strstr(r.body, "\"accept\": \"application/json\""));
	kube_response_free(&r);
}

static void methods_bodies_and_headers(void **state)
{
	(void)state;
	expect_echo("GET", NULL, NULL, "\"content_type\": null", "\"body\": \"\"");
	expect_echo("POST", NULL, "{\"a\":1}", "\"content_type\": \"application/json\"", "\"body\": \"{\\\"a\\\":1}\"");
	expect_echo("PUT", NULL, "{\"b\":2}", "\"content_type\": \"application/json\"", "\"body\": \"{\\\"b\\\":2}\"");
	expect_echo("PATCH", KUBE_CONTENT_MERGE_PATCH, "{\"c\":3}", "\"content_type\": \"application/merge-patch+json\"",
		    "\"body\": \"{\\\"c\\\":3}\"");
	expect_echo("PATCH", KUBE_CONTENT_APPLY_PATCH, "kind: Pod\n", "\"content_type\": \"application/apply-patch+yaml\"",
		    "\"body\": \"kind: Pod\\n\"");
	expect_echo("DELETE", NULL, NULL, "\"method\": \"DELETE\"", "\"body\": \"\"");
	expect_echo("DELETE", NULL, "{\"propagationPolicy\":\"Foreground\"}", "\"method\": \"DELETE\"",
		    "\"body\": \"{\\\"propagationPolicy\\\":\\\"Foreground\\\"}\"");
}

static void rotated_token_is_sent(void **state)
{
	(void)state;
	struct kube_response r;
	struct kerr e = { 0 };
	assert_int_equal(kube_client_request(g.c, "GET", "/echo", NULL, NULL, 0, &r, &e), 0);
	assert_non_null(strstr(r.body, "\"authorization\": \"Bearer token-one\""));
	kube_response_free(&r);
	assert_int_equal(write_file("token", "token-two-rotated\n"), 0);
	assert_int_equal(kube_client_request(g.c, "GET", "/echo", NULL, NULL, 0, &r, &e), 0);
	assert_non_null(strstr(r.body, "\"authorization\": \"Bearer token-two-rotated\""));
	kube_response_free(&r);
}

static long connections(struct kube_client *c)
{
	struct kube_response r;
	struct kerr e = { 0 };
	assert_int_equal(kube_client_request(c, "GET", "/stats", NULL, NULL, 0, &r, &e), 0);
	const char *p = strstr(r.body, "\"connections\": ");
	assert_non_null(p);
	long n = strtol(p + strlen("\"connections\": "), NULL, 10);
	kube_response_free(&r);
	return n;
}

static void sequential_requests_reuse_one_connection(void **state)
{
	(void)state;
	struct kube_client *c;
	struct kerr e = { 0 };
	assert_int_equal(kube_client_new(&c, &g.cfg, NULL, &e), 0);
	long before = connections(c);
	for (int i = 0; i < 10; i++) {
		struct kube_response r;
		assert_int_equal(kube_client_request(c, "GET", "/echo", NULL, NULL, 0, &r, &e), 0);
		kube_response_free(&r);
	}
	assert_int_equal(connections(c), before);
	kube_client_free(c);
}

struct worker {
	int ok;
};

static void *worker_run(void *p)
{
	struct worker *w = p;
	for (int i = 0; i < 10; i++) {
		struct kube_response r;
		struct kerr e = { 0 };
		if (kube_client_request(g.c, "GET", "/api/v1/namespaces/default/pods/ok", NULL, NULL, 0, &r, &e) == 0 &&
		    r.status == 200 && r.body && strstr(r.body, "\"ok\""))
			w->ok++;
		kube_response_free(&r);
	}
	return NULL;
}

static void concurrent_requests(void **state)
{
	(void)state;
	long before = connections(g.c);
	pthread_t th[4];
	struct worker w[4] = { { 0 } };
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].ok, 10);
	}
	/* At most one new connection per concurrently busy handle. */
	assert_true(connections(g.c) - before <= 4);
}

struct sink {
	int calls;
	double first_at;
	char data[4096];
	size_t len;
	int stop_with;
};

static int sink_data(void *arg, const char *data, size_t len)
{
	struct sink *s = arg;
	if (s->calls++ == 0)
		s->first_at = now_s();
	if (s->len + len < sizeof(s->data)) {
		memcpy(s->data + s->len, data, len);
		s->len += len;
		s->data[s->len] = '\0';
	}
	return s->stop_with;
}

static void stream_hands_over_chunks_as_they_arrive(void **state)
{
	(void)state;
	struct sink s = { 0 };
	struct kerr e = { 0 };
	long status = -1;
	double t0 = now_s();
	assert_int_equal(kube_client_stream(g.c, "/stream", sink_data, &s, NULL, &status, &e), 0);
	double end = now_s();
	assert_int_equal(status, 200);
	assert_string_equal(s.data, "{\"type\":\"ADDED\",\"object\":{\"n\":0}}\n"
				    "{\"type\":\"ADDED\",\"object\":{\"n\":1}}\n"
				    "{\"type\":\"ADDED\",\"object\":{\"n\":2}}\n");
	assert_true(s.calls >= 3);
	/* The server spreads the chunks over ~0.45 s: the first one must come
	 * well before the end, or the body was buffered. */
	assert_true(end - t0 >= 0.4);
	assert_true(end - s.first_at >= 0.25);
}

static void stream_error_status_is_not_streamed(void **state)
{
	(void)state;
	struct sink s = { 0 };
	struct kerr e = { 0 };
	long status = 0;
	struct kube_stream_options o = { .watch = 1 };
	assert_int_equal(kube_client_stream(g.c, "/gone", sink_data, &s, &o, &status, &e), KERR_GONE);
	assert_int_equal(status, 410);
	assert_int_equal(s.calls, 0);
	assert_string_equal(e.reason, "Expired");
	assert_non_null(strstr(e.message, "too old resource version"));
	kerr_clear(&e);
	assert_int_equal(kube_client_stream(g.c, "/forbidden", sink_data, &s, &o, &status, &e), KERR_FORBIDDEN);
	assert_int_equal(s.calls, 0);
	assert_int_equal(e.http_status, 403);
}

static void stalled_stream_times_out(void **state)
{
	(void)state;
	struct sink s = { 0 };
	struct kerr e = { 0 };
	struct kube_stream_options o = { .watch = 1, .stall_s = 1 };
	double t0 = now_s();
	assert_int_equal(kube_client_stream(g.c, "/stall", sink_data, &s, &o, NULL, &e), KERR_TIMEOUT);
	double took = now_s() - t0;
	assert_int_equal(s.calls, 1);
	assert_non_null(strstr(e.message, "stalled"));
	assert_true(took >= 0.9 && took < 4.0);
}

static void receiver_stops_the_stream(void **state)
{
	(void)state;
	struct sink s = { .stop_with = KERR_PARSE };
	struct kerr e = { 0 };
	double t0 = now_s();
	assert_int_equal(kube_client_stream(g.c, "/stream", sink_data, &s, NULL, NULL, &e), KERR_PARSE);
	assert_int_equal(s.calls, 1);
	assert_true(now_s() - t0 < 0.3);
	assert_non_null(strstr(e.message, "stopped by the receiver"));

	struct sink s2 = { .stop_with = 1 };
	kerr_clear(&e);
	assert_int_equal(kube_client_stream(g.c, "/stream", sink_data, &s2, NULL, NULL, &e), KERR_CLOSED);
	assert_int_equal(s2.calls, 1);
}

struct canceller {
	atomic_int *flag;
};

static void *cancel_later(void *p)
{
	struct canceller *c = p;
	struct timespec ts = { 0, 200 * 1000000 };
	nanosleep(&ts, NULL);
	atomic_store(c->flag, 1);
	return NULL;
}

static void cancel_flag_ends_an_idle_stream(void **state)
{
	(void)state;
	atomic_int flag = 0;
	struct canceller cc = { &flag };
	struct sink s = { 0 };
	struct kerr e = { 0 };
	struct kube_stream_options o = { .watch = 1, .stall_s = -1, .cancel = &flag };
	pthread_t th;
	double t0 = now_s();
	assert_int_equal(pthread_create(&th, NULL, cancel_later, &cc), 0);
	assert_int_equal(kube_client_stream(g.c, "/stall", sink_data, &s, &o, NULL, &e), KERR_CLOSED);
	double took = now_s() - t0;
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(s.calls, 1);
	assert_true(took >= 0.15 && took < 2.0);
	assert_non_null(strstr(e.message, "cancelled"));
}

static void request_timeout(void **state)
{
	(void)state;
	struct kube_client *c;
	struct kerr e = { 0 };
	struct kube_client_options o = { .timeout_ms = 300 };
	assert_int_equal(kube_client_new(&c, &g.cfg, &o, &e), 0);
	struct kube_response r;
	double t0 = now_s();
	assert_int_equal(kube_client_request(c, "GET", "/slow", NULL, NULL, 0, &r, &e), KERR_TIMEOUT);
	assert_true(now_s() - t0 < 1.5);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(e.message, g.server));
	assert_non_null(strstr(e.message, "timed out"));
	kube_response_free(&r);
	kube_client_free(c);
}

struct metric {
	int calls;
	char verb[16];
	char tmpl[128];
	long status;
	double seconds;
};

static void record_metric(void *arg, const char *verb, const char *tmpl, long status, double seconds)
{
	struct metric *m = arg;
	m->calls++;
	snprintf(m->verb, sizeof(m->verb), "%s", verb);
	snprintf(m->tmpl, sizeof(m->tmpl), "%s", tmpl);
	m->status = status;
	m->seconds = seconds;
}

static void rate_limit_and_metrics(void **state)
{
	(void)state;
	struct metric m = { 0 };
	struct kube_client *c;
	struct kerr e = { 0 };
	struct kube_client_options o = { .qps = 20, .burst = 1, .metrics = record_metric, .metrics_arg = &m,
					 .user_agent = "tester/9" };
	assert_int_equal(kube_client_new(&c, &g.cfg, &o, &e), 0);
	struct kube_response r;
	double t0 = now_s();
	for (int i = 0; i < 5; i++) {
		assert_int_equal(kube_client_request(c, "GET", "/echo", NULL, NULL, 0, &r, &e), 0);
		if (i == 0)
			assert_non_null(strstr(r.body, "\"user_agent\": \"tester/9\""));
		kube_response_free(&r);
	}
	/* burst 1 at 20 qps: four waits of 50 ms. */
	assert_true(now_s() - t0 >= 0.19);
	assert_int_equal(m.calls, 5);
	assert_string_equal(m.tmpl, "/echo");

	assert_int_equal(kube_client_request(c, "GET", "/api/v1/namespaces/default/pods/nope", NULL, NULL, 0, &r, &e),
			 KERR_NOT_FOUND);
	kube_response_free(&r);
	assert_int_equal(m.calls, 6);
	assert_string_equal(m.verb, "GET");
	assert_string_equal(m.tmpl, "/api/v1/namespaces/{namespace}/pods/{name}");
	assert_int_equal(m.status, 404);
	assert_true(m.seconds > 0 && m.seconds < 5);

	/* Watches skip the bucket: at 20 qps these five would take >= 200 ms. */
	struct kube_stream_options w = { .watch = 1 };
	struct sink s = { 0 };
	t0 = now_s();
	for (int i = 0; i < 5; i++)
		assert_int_equal(kube_client_stream(c, "/gone?watch=1", sink_data, &s, &w, NULL, NULL), KERR_GONE);
	assert_true(now_s() - t0 < 0.15);
	assert_string_equal(m.verb, "WATCH");
	assert_string_equal(m.tmpl, "/gone");
	assert_int_equal(m.status, 410);
	kube_client_free(c);
}

/* A client for g.server with some of cfg's TLS material swapped. */
static int try_client(const char *ca_file, int with_cert, int insecure, struct kerr *e)
{
	struct kube_config k = { .server = g.server, .insecure = insecure, .origin = "test config" };
	char *ca = ca_file ? read_file(ca_file) : NULL;
	if (ca) {
		k.ca_pem = ca;
		k.ca_pem_len = strlen(ca);
	}
	if (with_cert) {
		k.cert_pem = g.cfg.cert_pem;
		k.cert_pem_len = g.cfg.cert_pem_len;
		k.key_pem = g.cfg.key_pem;
		k.key_pem_len = g.cfg.key_pem_len;
	}
	struct kube_client *c;
	int rc = kube_client_new(&c, &k, NULL, e);
	free(ca);
	if (rc)
		return rc;
	struct kube_response r;
	rc = kube_client_request(c, "GET", "/api/v1/namespaces/default/pods/ok", NULL, NULL, 0, &r, e);
	kube_response_free(&r);
	kube_client_free(c);
	return rc;
}

static void tls_failures(void **state)
{
	(void)state;
	struct kerr e = { 0 };
	assert_int_equal(try_client("ca.crt", 1, 0, &e), 0);

	assert_int_equal(try_client("other-ca.crt", 1, 0, &e), KERR_TLS);
	assert_non_null(strstr(e.message, g.server));
	assert_non_null(strstr(e.message, "certificate-authority"));

	kerr_clear(&e);
	/* No CA: the system store, which does not know the test CA. */
	assert_int_equal(try_client(NULL, 1, 0, &e), KERR_TLS);

	kerr_clear(&e);
	/* Usually the TLS alert is read (KERR_TLS); now and then the server's
	 * close wins the race with our request and the alert is lost. */
	int rc = try_client("ca.crt", 0, 0, &e);
	assert_true(rc == KERR_TLS || rc == KERR_CONNECT);
	assert_non_null(strstr(e.message, "check client-certificate and client-key in test config"));

	kerr_clear(&e);
	assert_int_equal(try_client(NULL, 1, 1, &e), 0);
}

static void connection_refused(void **state)
{
	(void)state;
	/* A port that was free a moment ago and has no listener now. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	close(fd);
	char url[64];
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", ntohs(a.sin_port));
	struct kube_config k = { .server = url, .origin = "kubeconfig /nowhere (context \"x\")" };
	struct kube_client *c;
	struct kerr e = { 0 };
	assert_int_equal(kube_client_new(&c, &k, NULL, &e), 0);
	struct kube_response r;
	assert_int_equal(kube_client_request(c, "GET", "/version", NULL, NULL, 0, &r, &e), KERR_CONNECT);
	assert_non_null(strstr(e.message, url));
	assert_non_null(strstr(e.message, "is the apiserver running"));
	assert_non_null(strstr(e.message, "kubeconfig /nowhere"));
	kube_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(get_ok),
		cmocka_unit_test(errors_carry_the_status),
		cmocka_unit_test(methods_bodies_and_headers),
		cmocka_unit_test(rotated_token_is_sent),
		cmocka_unit_test(sequential_requests_reuse_one_connection),
		cmocka_unit_test(concurrent_requests),
		cmocka_unit_test(stream_hands_over_chunks_as_they_arrive),
		cmocka_unit_test(stream_error_status_is_not_streamed),
		cmocka_unit_test(stalled_stream_times_out),
		cmocka_unit_test(receiver_stops_the_stream),
		cmocka_unit_test(cancel_flag_ends_an_idle_stream),
		cmocka_unit_test(request_timeout),
		cmocka_unit_test(rate_limit_and_metrics),
		cmocka_unit_test(tls_failures),
		cmocka_unit_test(connection_refused),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
