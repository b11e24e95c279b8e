/*
 * httpd on 127.0.0.1 (kernel-chosen ports): routes with GET and POST
 * bodies, the body limit, security headers, static files with the
 * index.html fallback and traversal refusal, 50 concurrent requests with
 * curl multi, HTTPS with a certificate made here, websockets with a raw
 * client (handshake, push, receive, origin, slow consumer), timeouts and
 * httpd_stop from another thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "httpd.h"
#include "kerr.h"

#define WS_PATH "/api/v1/events"
#define INDEX_HTML "<!doctype html><title>nimbus</title>\n"
#define APP_JS "console.log('nimbus');\n"

static struct {
	char dir[64];       /* temp dir: static/, tls files */
	char static_dir[96];
	struct httpd *h;
	int port;
	char base[64];      /* http://127.0.0.1:PORT */

	pthread_mutex_t mu; /* guards the websocket records below */
	pthread_cond_t cv;
	uint64_t opened[16];
	int n_opened;
	uint64_t closed[16];
	int n_closed;
	char last_msg[256];
	int n_msgs;
	char last_auth[128];
	char last_query[128];
	char last_protocols[128];
	int n_log;
	int slow_entered;   /* /api/slow handlers that started */
	int slow_open;      /* /api/slow handlers may return */
} g = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the application under test ------------------------------------------ */

/* strcasestr is a GNU extension. */
static const char *ci_strstr(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; hay && *hay; hay++)
		if (!strncasecmp(hay, needle, n))
			return hay;
	return NULL;
}

static int starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static int router(void *user, const struct httpd_request *req, struct httpd_response *resp)
{
	char buf[1024], name[64];
	(void)user;

	if (!strcmp(req->path, "/api/hello") && !strcmp(req->method, "GET")) {
		int n = httpd_query_param(req, "name", name, sizeof(name));

		snprintf(buf, sizeof(buf), "{\"hello\":\"%s\",\"query\":\"%s\"}", n >= 0 ? name : "-",
			 req->query);
		httpd_response_header(resp, "X-Test", "1");
		return httpd_response_body(resp, buf, strlen(buf));
	}
	if (!strcmp(req->path, "/api/echo")) {
		/* Hand the body back through the ownership-taking setter. */
		void *copy = malloc(req->body_len ? req->body_len : 1);

		if (!copy)
			return KERR_NOMEM;
		memcpy(copy, req->body, req->body_len);
		httpd_response_status(resp, 201);
		if (req->content_type &&
		    httpd_response_content_type(resp, req->content_type))
			return KERR_INVAL;
		snprintf(buf, sizeof(buf), "%s %zu", req->method, req->body_len);
		httpd_response_header(resp, "X-Echo", buf);
		httpd_response_body_take(resp, copy, req->body_len);
		return 0;
	}
	if (!strcmp(req->path, "/api/request")) {
		snprintf(buf, sizeof(buf), "%s|%s|%s|%s|%s|%s|%s", req->method, req->query,
			 req->authorization ? req->authorization : "-",
			 req->content_type ? req->content_type : "-", req->origin ? req->origin : "-",
			 req->accept ? req->accept : "-", req->remote_addr);
		httpd_response_content_type(resp, "text/plain");
		return httpd_response_body(resp, buf, strlen(buf));
	}
	if (!strcmp(req->path, "/api/setters")) {
		/* What the response setters refuse, reported to the test. */
		snprintf(buf, sizeof(buf), "%d %d %d %d %d %d",
			 httpd_response_header(resp, "Content-Length", "5"),
			 httpd_response_header(resp, "Bad Name", "x"),
			 httpd_response_header(resp, "X-Split", "a\r\nInjected: yes"),
			 httpd_response_content_type(resp, "text/plain\r\nX: y"),
			 httpd_response_header(resp, "Server", "apache"),
			 httpd_response_header(resp, "X-Fine", "ok\tok"));
		httpd_response_content_type(resp, "text/plain");
		return httpd_response_body(resp, buf, strlen(buf));
	}
	if (!strcmp(req->path, "/api/nocontent")) {
		httpd_response_status(resp, 204);
		return httpd_response_body(resp, "ignored", 7);
	}
	if (!strcmp(req->path, "/api/fail"))
		return KERR_DB;
	if (!strcmp(req->path, "/api/slow")) {
		/* Blocks its worker, as a handler waiting on a database does,
		 * until the test opens the gate. */
		pthread_mutex_lock(&g.mu);
		g.slow_entered++;
		pthread_cond_broadcast(&g.cv);
		while (!g.slow_open)
			pthread_cond_wait(&g.cv, &g.mu);
		pthread_mutex_unlock(&g.mu);
		return httpd_response_body(resp, "{\"slow\":true}", 13);
	}
	if (starts_with(req->path, "/api/")) {
		httpd_response_status(resp, 404);
		return httpd_response_body(resp, "{\"error\":\"no route\"}", 20);
	}
	return HTTPD_PASS;
}

/* Tried first on the service thread: answers /api/fast itself and defers
 * everything else to the workers. */
static int fast_router(void *user, const struct httpd_request *req, struct httpd_response *resp)
{
	(void)user;
	if (!strcmp(req->path, "/api/fast"))
		return httpd_response_body(resp, "{\"fast\":true}", 13);
	httpd_response_header(resp, "X-Dropped", "the workers start afresh");
	return HTTPD_DEFER;
}

static void test_log(void *user, const char *msg)
{
	(void)user;
	(void)msg;
	pthread_mutex_lock(&g.mu);
	g.n_log++;
	pthread_mutex_unlock(&g.mu);
}

static int ws_origin_ok(void *user, const char *origin, const char *host)
{
	(void)user;
	(void)host;
	return !origin || !strcmp(origin, "https://dashboard.example");
}

static int ws_on_open(void *user, uint64_t conn, const struct httpd_request *req, const char **reason)
{
	(void)user;
	pthread_mutex_lock(&g.mu);
	if (g.n_opened < 16)
		g.opened[g.n_opened++] = conn;
	snprintf(g.last_auth, sizeof(g.last_auth), "%s",
		 req->authorization ? req->authorization : "-");
	snprintf(g.last_query, sizeof(g.last_query), "%s", req->query);
	snprintf(g.last_protocols, sizeof(g.last_protocols), "%s", req->ws_protocols ? req->ws_protocols : "-");
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	/* A token in the query decides: "deny" is refused after the upgrade. */
	if (!strstr(req->query, "token=deny"))
		return 0;
	*reason = "denied by the test";
	return -1;
}

static void ws_on_message(void *user, uint64_t conn, const void *data, size_t len, int binary)
{
	(void)user;
	(void)conn;
	pthread_mutex_lock(&g.mu);
	snprintf(g.last_msg, sizeof(g.last_msg), "%s:%.*s", binary ? "bin" : "text", (int)len,
		 (const char *)data);
	g.n_msgs++;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
}

static void ws_on_close(void *user, uint64_t conn)
{
	(void)user;
	pthread_mutex_lock(&g.mu);
	if (g.n_closed < 16)
		g.closed[g.n_closed++] = conn;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
}

/* Wait until *counter >= want (under g.mu), at most secs. */
static int wait_count(int *counter, int want, double secs)
{
	struct timespec dl;
	int ok;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += (time_t)secs + 1;
	pthread_mutex_lock(&g.mu);
	while (*counter < want)
		if (pthread_cond_timedwait(&g.cv, &g.mu, &dl) == ETIMEDOUT)
			break;
	ok = *counter >= want;
	pthread_mutex_unlock(&g.mu);
	return ok;
}

/* ---- files ------------------------------------------------------------- */

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		struct dirent *de;

		while (d && (de = readdir(d)) != NULL) {
			char sub[512];

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			rm_rf(sub);
		}
		if (d)
			closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

/* ---- HTTP client ------------------------------------------------------- */

struct resp {
	long status;
	char *body;
	size_t len;
	char *hdrs;
	size_t hlen;
	double http_version;
};

static size_t grow(char **buf, size_t *len, const void *data, size_t n)
{
	char *b = realloc(*buf, *len + n + 1);

	if (!b)
		return 0;
	memcpy(b + *len, data, n);
	*len += n;
	b[*len] = '\0';
	*buf = b;
	return n;
}

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
	struct resp *r = user;

	return grow(&r->body, &r->len, data, size * n);
}

static size_t on_header(char *data, size_t size, size_t n, void *user)
{
	struct resp *r = user;

	return grow(&r->hdrs, &r->hlen, data, size * n);
}

static void resp_free(struct resp *r)
{
	free(r->body);
	free(r->hdrs);
	memset(r, 0, sizeof(*r));
}

/* Value of response header name (case-insensitive), or NULL; copied into
 * out. Looks at the last header block (after any 100 Continue). */
static const char *header(const struct resp *r, const char *name, char *out, size_t outlen)
{
	const char *block = r->hdrs, *p, *next;
	size_t nl = strlen(name);

	if (!block)
		return NULL;
	for (p = block; (next = strstr(p, "\r\n\r\n")) && next[4]; p = next + 4)
		block = next + 4;
	for (p = block; *p; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : p + strlen(p)) {
		if (!strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *v = p + nl + 1, *end = strstr(v, "\r\n");

			while (*v == ' ')
				v++;
			snprintf(out, outlen, "%.*s", (int)(end ? end - v : (long)strlen(v)), v);
			return out;
		}
	}
	return NULL;
}

static CURL *easy(const char *method, const char *path, const void *body, size_t blen,
		  struct curl_slist *hdrs, struct resp *r)
{
	char url[512];
	CURL *c = curl_easy_init();

	assert_non_null(c);
	snprintf(url, sizeof(url), "%s%s", g.base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	if (hdrs)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (!strcmp(method, "HEAD")) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET")) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	return c;
}

static CURLcode perform(CURL *c, struct resp *r)
{
	CURLcode rc = curl_easy_perform(c);

	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	return rc;
}

/* One request on a fresh handle; returns the curl result. */
static CURLcode http(const char *method, const char *path, const void *body, size_t blen,
		     struct curl_slist *hdrs, struct resp *r)
{
	CURL *c = easy(method, path, body, blen, hdrs, r);
	CURLcode rc = perform(c, r);

	curl_easy_cleanup(c);
	return rc;
}

/* ---- fixture ----------------------------------------------------------- */

static struct httpd_opts base_opts(void)
{
	struct httpd_opts o = {
		.addr = "127.0.0.1:0",
		.router = router,
		.static_dir = g.static_dir,
		.log = test_log,
		.workers = 2,
		.fast_router = fast_router,
		.ws = {
			.path = WS_PATH,
			.origin_ok = ws_origin_ok,
			.on_open = ws_on_open,
			.on_message = ws_on_message,
			.on_close = ws_on_close,
			.queue_max = 8,
		},
	};
	return o;
}

static int setup(void **state)
{
	struct httpd_opts o;
	struct kerr e = { 0 };
	char path[256];
	(void)state;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(g.dir, sizeof(g.dir), "/tmp/nimbus-httpd-XXXXXX");
	if (!mkdtemp(g.dir))
		return -1;
	snprintf(g.static_dir, sizeof(g.static_dir), "%s/static", g.dir);
	mkdir(g.static_dir, 0755);
	snprintf(path, sizeof(path), "%s/index.html", g.static_dir);
	write_file(path, INDEX_HTML, strlen(INDEX_HTML));
	snprintf(path, sizeof(path), "%s/app.js", g.static_dir);
	write_file(path, APP_JS, strlen(APP_JS));
	snprintf(path, sizeof(path), "%s/.secret", g.static_dir);
	write_file(path, "secret", 6);
	snprintf(path, sizeof(path), "%s/assets", g.static_dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/assets/logo.svg", g.static_dir);
	write_file(path, "<svg/>", 6);
	snprintf(path, sizeof(path), "%s/passwd", g.static_dir);
	if (symlink("/etc/passwd", path))
		return -1;
	snprintf(path, sizeof(path), "%s/outside", g.dir);
	write_file(path, "outside", 7);

	o = base_opts();
	if (httpd_new(&g.h, &o, &e)) {
		fprintf(stderr, "httpd_new: %s\n", e.message);
		return -1;
	}
	g.port = httpd_port(g.h);
	snprintf(g.base, sizeof(g.base), "http://127.0.0.1:%d", g.port);
	if (httpd_start(g.h, &e)) {
		fprintf(stderr, "httpd_start: %s\n", e.message);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	httpd_free(g.h);
	g.h = NULL;
	rm_rf(g.dir);
	curl_global_cleanup();
	return 0;
}

/* ---- routes ------------------------------------------------------------ */

static void get_route_with_query_and_security_headers(void **state)
{
	struct resp r = { 0 };
	char v[256];
	(void)state;

	assert_int_equal(http("GET", "/api/hello?name=a%20b%26c&x=1+2&flag", NULL, 0, NULL, &r),
			 CURLE_OK);
	assert_int_equal(r.status, 200);
	/* Values decoded for the handler, and the query re-encoded
	 * unambiguously ('&' inside a value stays escaped). */
	assert_string_equal(r.body, "{\"hello\":\"a b&c\",\"query\":\"name=a%20b%26c&x=1%202&flag\"}");
	assert_string_equal(header(&r, "Content-Type", v, sizeof(v)), "application/json");
	assert_string_equal(header(&r, "X-Content-Type-Options", v, sizeof(v)), "nosniff");
	assert_string_equal(header(&r, "X-Frame-Options", v, sizeof(v)), "DENY");
	assert_string_equal(header(&r, "Cache-Control", v, sizeof(v)), "no-store");
	assert_string_equal(header(&r, "Server", v, sizeof(v)), "nimbus");
	assert_string_equal(header(&r, "X-Test", v, sizeof(v)), "1");
	assert_null(ci_strstr(r.hdrs, "libwebsockets"));
	resp_free(&r);
}

static void request_fields_reach_the_router(void **state)
{
	struct curl_slist *h = NULL;
	struct resp r = { 0 };
	(void)state;

	h = curl_slist_append(h, "Authorization: Bearer abc.def");
	h = curl_slist_append(h, "Origin: https://dashboard.example");
	h = curl_slist_append(h, "Accept: application/json");
	h = curl_slist_append(h, "Content-Type: application/merge-patch+json");
	assert_int_equal(http("PATCH", "/api/request?a=1", "{}", 2, h, &r), CURLE_OK);
	curl_slist_free_all(h);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "PATCH|a=1|Bearer abc.def|application/merge-patch+json|"
				    "https://dashboard.example|application/json|127.0.0.1");
	resp_free(&r);
}

static void post_bodies_small_large_empty_and_absent(void **state)
{
	size_t big = 900 * 1024;
	unsigned char *body = malloc(big);
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
	struct resp r = { 0 };
	char v[64];
	(void)state;

	assert_non_null(body);
	/* Small. */
	assert_int_equal(http("POST", "/api/echo", "{\"a\":1}", 7, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 201);
	assert_string_equal(r.body, "{\"a\":1}");
	assert_string_equal(header(&r, "X-Echo", v, sizeof(v)), "POST 7");
	resp_free(&r);

	/* 900 KiB: arrives in many reads and leaves in many writes. */
	for (size_t i = 0; i < big; i++)
		body[i] = (unsigned char)(i * 7919 + (i >> 11));
	assert_int_equal(http("PUT", "/api/echo", body, big, h, &r), CURLE_OK);
	assert_int_equal(r.status, 201);
	assert_int_equal(r.len, big);
	assert_memory_equal(r.body, body, big);
	assert_string_equal(header(&r, "Content-Type", v, sizeof(v)), "application/octet-stream");
	resp_free(&r);

	/* Expect: 100-continue is answered (curl would otherwise wait for
	 * the timeout below before sending the body). */
	{
		struct curl_slist *ex = curl_slist_append(NULL, "Expect: 100-continue");
		CURL *c = easy("POST", "/api/echo", body, 64 * 1024, ex, &r);
		double t0 = now_s();

		curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 5000L);
		assert_int_equal(perform(c, &r), CURLE_OK);
		assert_true(now_s() - t0 < 2.5);
		assert_int_equal(r.status, 201);
		assert_int_equal(r.len, 64 * 1024);
		assert_non_null(strstr(r.hdrs, "100 Continue"));
		curl_easy_cleanup(c);
		curl_slist_free_all(ex);
		resp_free(&r);
	}

	/* Content-Length: 0. */
	assert_int_equal(http("POST", "/api/echo", "", 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 201);
	assert_int_equal(r.len, 0);
	assert_string_equal(header(&r, "X-Echo", v, sizeof(v)), "POST 0");
	resp_free(&r);

	/* No Content-Length at all: an empty body, and the connection closes. */
	assert_int_equal(http("POST", "/api/echo", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 201);
	assert_string_equal(header(&r, "X-Echo", v, sizeof(v)), "POST 0");
	assert_string_equal(header(&r, "Connection", v, sizeof(v)), "close");
	resp_free(&r);

	curl_slist_free_all(h);
	free(body);
}

static void keep_alive_reuses_the_connection(void **state)
{
	struct resp r = { 0 };
	char url[128];
	long conns = -1;
	CURL *c;
	(void)state;

	/* GET, POST, GET on one handle: one connection, three transactions. */
	c = easy("GET", "/api/hello", NULL, 0, NULL, &r);
	assert_int_equal(perform(c, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	snprintf(url, sizeof(url), "%s/api/echo", g.base);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x");
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)1);
	assert_int_equal(perform(c, &r), CURLE_OK);
	assert_int_equal(r.status, 201);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
	assert_int_equal(conns, 0);
	resp_free(&r);
	snprintf(url, sizeof(url), "%s/api/hello", g.base);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	assert_int_equal(perform(c, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
	assert_int_equal(conns, 0);
	curl_easy_cleanup(c);
	resp_free(&r);
}

static void router_404_500_and_setters(void **state)
{
	struct resp r = { 0 };
	char v[64];
	(void)state;

	assert_int_equal(http("GET", "/api/nope", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 404);
	assert_string_equal(r.body, "{\"error\":\"no route\"}");
	assert_string_equal(header(&r, "X-Content-Type-Options", v, sizeof(v)), "nosniff");
	resp_free(&r);

	assert_int_equal(http("GET", "/api/fail", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 500);
	assert_string_equal(r.body, "{\"error\":\"internal error\"}\n");
	resp_free(&r);

	/* A passed non-GET is a 404 (static files are for GET/HEAD). */
	assert_int_equal(http("DELETE", "/index.html", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 404);
	resp_free(&r);

	assert_int_equal(http("GET", "/api/setters", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "-2 -2 -2 -2 -2 0"); /* KERR_INVAL x5, then accepted */
	assert_string_equal(header(&r, "X-Fine", v, sizeof(v)), "ok\tok");
	assert_null(header(&r, "Injected", v, sizeof(v)));
	resp_free(&r);

	assert_int_equal(http("GET", "/api/nocontent", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 204);
	assert_int_equal(r.len, 0);
	assert_null(header(&r, "Content-Length", v, sizeof(v)));
	resp_free(&r);
}

static void oversized_body_gets_413(void **state)
{
	size_t big = 2 * 1024 * 1024;
	char *body = calloc(1, big);
	struct curl_slist *no_expect = curl_slist_append(NULL, "Expect:");
	struct resp r = { 0 };
	char v[64];
	(void)state;

	assert_non_null(body);
	/* curl sends Expect: 100-continue for this size and gets 413 first. */
	assert_int_equal(http("POST", "/api/echo", body, big, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 413);
	assert_non_null(strstr(r.body, "larger than 1048576 bytes"));
	assert_string_equal(header(&r, "Connection", v, sizeof(v)), "close");
	resp_free(&r);

	/* Without Expect the body is already on its way: the 413 still
	 * arrives (httpd drains instead of resetting the connection). */
	assert_int_equal(http("POST", "/api/echo", body, big, no_expect, &r), CURLE_OK);
	assert_int_equal(r.status, 413);
	resp_free(&r);

	/* The server is fine afterwards. */
	assert_int_equal(http("GET", "/api/hello", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	curl_slist_free_all(no_expect);
	free(body);
}

/* ---- static files ------------------------------------------------------ */

static void static_files_and_spa_fallback(void **state)
{
	struct resp r = { 0 };
	char v[128];
	(void)state;

	assert_int_equal(http("GET", "/", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, INDEX_HTML);
	assert_string_equal(header(&r, "Content-Type", v, sizeof(v)), "text/html; charset=utf-8");
	assert_string_equal(header(&r, "Cache-Control", v, sizeof(v)), "no-cache");
	assert_string_equal(header(&r, "X-Content-Type-Options", v, sizeof(v)), "nosniff");
	resp_free(&r);

	assert_int_equal(http("GET", "/app.js", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, APP_JS);
	assert_string_equal(header(&r, "Content-Type", v, sizeof(v)),
			    "text/javascript; charset=utf-8");
	resp_free(&r);

	assert_int_equal(http("GET", "/assets/logo.svg", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(header(&r, "Content-Type", v, sizeof(v)), "image/svg+xml");
	resp_free(&r);

	/* HEAD: the length, no body. */
	assert_int_equal(http("HEAD", "/app.js", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	snprintf(v, sizeof(v), "%zu", strlen(APP_JS));
	{
		char cl[32];

		assert_string_equal(header(&r, "Content-Length", cl, sizeof(cl)), v);
	}
	resp_free(&r);

	/* Client-side routes get index.html; a missing asset is a 404. */
	assert_int_equal(http("GET", "/tenants/42/workloads", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, INDEX_HTML);
	resp_free(&r);
	assert_int_equal(http("GET", "/assets/missing.js", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 404);
	resp_free(&r);
	/* A directory without index.html falls back too. */
	assert_int_equal(http("GET", "/assets/", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, INDEX_HTML);
	resp_free(&r);
}

static void static_refuses_traversal_dotfiles_and_escaping_links(void **state)
{
	static const char *const attempts[] = {
		"/../etc/passwd",
		"/%2e%2e/%2e%2e/etc/passwd",
		"/..%2f..%2f..%2fetc%2fpasswd",
		"/assets/../../outside",
		"/%2e%2e/outside",
		"/.%2e/outside",
		"/passwd",          /* symlink to /etc/passwd inside the root */
		"/.secret",
		"/assets/%2e%2e/.secret",
		"//etc/passwd",
	};
	(void)state;

	for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
		struct resp r = { 0 };
		CURLcode rc = http("GET", attempts[i], NULL, 0, NULL, &r);

		if (rc == CURLE_OK && r.body) {
			if (strstr(r.body, "root:") || strstr(r.body, "outside") ||
			    strstr(r.body, "secret")) {
				fail_msg("%s leaked: %ld %s", attempts[i], r.status, r.body);
			}
			/* Either refused, or the harmless SPA fallback. */
			if (r.status == 200)
				assert_string_equal(r.body, INDEX_HTML);
			else
				assert_true(r.status == 404 || r.status == 403 || r.status == 400);
		}
		resp_free(&r);
	}
}

/* ---- concurrency ------------------------------------------------------- */

static void fifty_concurrent_requests(void **state)
{
	enum { N = 50 };
	struct resp r[N];
	CURL *c[N];
	CURLM *m = curl_multi_init();
	int running = 1;
	char path[64], want[128];
	(void)state;

	memset(r, 0, sizeof(r));
	assert_non_null(m);
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)N);
	for (int i = 0; i < N; i++) {
		if (i % 5 == 4) {
			c[i] = easy("POST", "/api/echo", "abcdefghij", 10, NULL, &r[i]);
		} else {
			snprintf(path, sizeof(path), "/api/hello?name=n%d", i);
			c[i] = easy("GET", path, NULL, 0, NULL, &r[i]);
		}
		curl_easy_setopt(c[i], CURLOPT_FRESH_CONNECT, 1L);
		assert_int_equal(curl_multi_add_handle(m, c[i]), CURLM_OK);
	}
	while (running) {
		assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
		if (running)
			assert_int_equal(curl_multi_poll(m, NULL, 0, 1000, NULL), CURLM_OK);
	}
	for (int i = 0; i < N; i++) {
		curl_easy_getinfo(c[i], CURLINFO_RESPONSE_CODE, &r[i].status);
		if (i % 5 == 4) {
			assert_int_equal(r[i].status, 201);
			assert_string_equal(r[i].body, "abcdefghij");
		} else {
			assert_int_equal(r[i].status, 200);
			snprintf(want, sizeof(want), "{\"hello\":\"n%d\",\"query\":\"name=n%d\"}", i, i);
			assert_string_equal(r[i].body, want);
		}
		curl_multi_remove_handle(m, c[i]);
		curl_easy_cleanup(c[i]);
		resp_free(&r[i]);
	}
	curl_multi_cleanup(m);
}

/* ---- websockets -------------------------------------------------------- */

static int tcp_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void send_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static int recv_all(int fd, void *data, size_t len)
{
	char *p = data;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Send an upgrade request and read the response head (byte by byte, so no
 * frame bytes are consumed). Returns the status; head gets the headers. */
/* extra: more header lines, each ending in CRLF, or NULL. */
static int ws_handshake_with(int fd, const char *target, const char *origin, const char *extra,
			     char *head, size_t headlen)
{
	char req[1024];
	size_t n = 0;
	int status = 0;

	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
		 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		 "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer ws-token\r\n%s%s%s%s\r\n",
		 target, g.port, origin ? "Origin: " : "", origin ? origin : "", origin ? "\r\n" : "",
		 extra ? extra : "");
	send_all(fd, req, strlen(req));
	while (n + 1 < headlen) {
		if (recv(fd, head + n, 1, 0) != 1)
			break;
		n++;
		head[n] = '\0';
		if (n >= 4 && !memcmp(head + n - 4, "\r\n\r\n", 4))
			break;
	}
	head[n] = '\0';
	/* lws answers refusals made before it knows the version as HTTP/1.0. */
	sscanf(head, "HTTP/1.%*d %d", &status);
	return status;
}

static int ws_handshake(int fd, const char *target, const char *origin, char *head, size_t headlen)
{
	return ws_handshake_with(fd, target, origin, NULL, head, headlen);
}

/* Read one frame; returns the opcode, payload in buf (NUL-terminated,
 * truncated to buflen), *len the full payload length; -1 on error. */
static int ws_read_frame(int fd, char *buf, size_t buflen, size_t *len)
{
	unsigned char h[2], ext[8];
	uint64_t n;
	size_t got = 0;

	if (recv_all(fd, h, 2))
		return -1;
	n = h[1] & 0x7f;
	if (n == 126) {
		if (recv_all(fd, ext, 2))
			return -1;
		n = ((uint64_t)ext[0] << 8) | ext[1];
	} else if (n == 127) {
		if (recv_all(fd, ext, 8))
			return -1;
		n = 0;
		for (int i = 0; i < 8; i++)
			n = (n << 8) | ext[i];
	}
	*len = (size_t)n;
	while (n) {
		char tmp[4096];
		size_t take = n < sizeof(tmp) ? (size_t)n : sizeof(tmp);

		if (recv_all(fd, tmp, take))
			return -1;
		if (got + 1 < buflen) {
			size_t keep = take < buflen - 1 - got ? take : buflen - 1 - got;

			memcpy(buf + got, tmp, keep);
			got += keep;
		}
		n -= take;
	}
	buf[got] = '\0';
	return h[0] & 0x0f;
}

/* Send a masked text frame (client frames must be masked). */
static void ws_send_text(int fd, const char *text)
{
	unsigned char f[256];
	const unsigned char mask[4] = { 0x12, 0x34, 0x56, 0x78 };
	size_t n = strlen(text);

	assert_true(n < 126);
	f[0] = 0x81;
	f[1] = (unsigned char)(0x80 | n);
	memcpy(f + 2, mask, 4);
	for (size_t i = 0; i < n; i++)
		f[6 + i] = (unsigned char)text[i] ^ mask[i % 4];
	send_all(fd, f, 6 + n);
}

static uint64_t last_opened(void)
{
	uint64_t id;

	pthread_mutex_lock(&g.mu);
	id = g.n_opened ? g.opened[g.n_opened - 1] : 0;
	pthread_mutex_unlock(&g.mu);
	return id;
}

static void websocket_push_and_receive(void **state)
{
	struct kerr e = { 0 };
	char head[2048], buf[256];
	size_t len;
	int fd, opens, msgs, closes;
	uint64_t id;
	(void)state;

	pthread_mutex_lock(&g.mu);
	opens = g.n_opened;
	msgs = g.n_msgs;
	closes = g.n_closed;
	pthread_mutex_unlock(&g.mu);

	fd = tcp_connect(g.port);
	assert_int_equal(ws_handshake(fd, WS_PATH "?since=5", NULL, head, sizeof(head)), 101);
	assert_non_null(strstr(head, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")); /* RFC 6455's example */
	assert_true(wait_count(&g.n_opened, opens + 1, 2));
	id = last_opened();
	pthread_mutex_lock(&g.mu);
	assert_string_equal(g.last_auth, "Bearer ws-token");
	assert_string_equal(g.last_query, "since=5");
	pthread_mutex_unlock(&g.mu);

	/* Pushed from this (non-service) thread. */
	assert_int_equal(httpd_ws_send(g.h, id, "{\"type\":\"ADDED\"}", 16, 0, &e), 0);
	assert_int_equal(ws_read_frame(fd, buf, sizeof(buf), &len), 1);
	assert_string_equal(buf, "{\"type\":\"ADDED\"}");
	assert_int_equal(httpd_ws_broadcast(g.h, "all", 3, 0, &e), 1);
	assert_int_equal(ws_read_frame(fd, buf, sizeof(buf), &len), 1);
	assert_string_equal(buf, "all");

	ws_send_text(fd, "hello server");
	assert_true(wait_count(&g.n_msgs, msgs + 1, 2));
	pthread_mutex_lock(&g.mu);
	assert_string_equal(g.last_msg, "text:hello server");
	pthread_mutex_unlock(&g.mu);

	/* Unknown ids and oversized messages are refused. */
	assert_int_equal(httpd_ws_send(g.h, id + 1000, "x", 1, 0, NULL), KERR_NOT_FOUND);
	{
		size_t big = 64 * 1024 + 1;
		char *m = calloc(1, big);

		assert_int_equal(httpd_ws_send(g.h, id, m, big, 1, &e), KERR_TOO_LARGE);
		free(m);
	}
	close(fd);
	assert_true(wait_count(&g.n_closed, closes + 1, 3));
	assert_int_equal(httpd_ws_send(g.h, id, "x", 1, 0, NULL), KERR_NOT_FOUND);
}

static void websocket_refusals(void **state)
{
	char head[2048], buf[64];
	size_t len;
	int fd, opens, closes;
	(void)state;

	/* Wrong path, foreign origin: HTTP refusals before any upgrade. */
	fd = tcp_connect(g.port);
	assert_int_equal(ws_handshake(fd, "/api/v1/other", NULL, head, sizeof(head)), 404);
	close(fd);
	fd = tcp_connect(g.port);
	assert_int_equal(ws_handshake(fd, WS_PATH, "https://evil.example", head, sizeof(head)), 403);
	assert_non_null(ci_strstr(head, "x-content-type-options: nosniff"));
	close(fd);
	/* The allowed origin passes. */
	pthread_mutex_lock(&g.mu);
	opens = g.n_opened;
	closes = g.n_closed;
	pthread_mutex_unlock(&g.mu);
	fd = tcp_connect(g.port);
	assert_int_equal(ws_handshake(fd, WS_PATH, "https://dashboard.example", head, sizeof(head)),
			 101);
	assert_true(wait_count(&g.n_opened, opens + 1, 2));
	close(fd);
	assert_true(wait_count(&g.n_closed, closes + 1, 3));

	/* on_open refuses: the connection is closed with 1008 and on_close is
	 * not called for it. */
	pthread_mutex_lock(&g.mu);
	closes = g.n_closed;
	pthread_mutex_unlock(&g.mu);
	fd = tcp_connect(g.port);
	assert_int_equal(ws_handshake(fd, WS_PATH "?token=deny", NULL, head, sizeof(head)), 101);
	assert_int_equal(ws_read_frame(fd, buf, sizeof(buf), &len), 8);
	assert_true(len >= 2);
	assert_int_equal(((unsigned char)buf[0] << 8) | (unsigned char)buf[1], 1008);
	assert_string_equal(buf + 2, "denied by the test");
	close(fd);
	sleep_ms(200);
	pthread_mutex_lock(&g.mu);
	assert_int_equal(g.n_closed, closes);
	pthread_mutex_unlock(&g.mu);

	/* A subprotocol list naming "nimbus" first: answered "nimbus", and
	 * on_open sees the whole list (where a credential can travel). */
	fd = tcp_connect(g.port);
	assert_int_equal(ws_handshake_with(fd, WS_PATH, NULL, "Sec-WebSocket-Protocol: nimbus, ticket.abc\r\n", head,
					   sizeof(head)),
			 101);
	assert_non_null(ci_strstr(head, "sec-websocket-protocol: nimbus\r\n"));
	assert_true(wait_count(&g.n_opened, opens + 3, 2));
	pthread_mutex_lock(&g.mu);
	assert_string_equal(g.last_protocols, "nimbus, ticket.abc");
	pthread_mutex_unlock(&g.mu);
	close(fd);
}

static void websocket_slow_consumer_is_dropped(void **state)
{
	char head[2048], buf[64];
	char *msg = malloc(60 * 1024);
	struct kerr e = { 0 };
	size_t len;
	int fd, opens, rc = 0, pushes = 0, op, ok = 0;
	uint64_t id;
	double t0;
	(void)state;

	assert_non_null(msg);
	memset(msg, 'x', 60 * 1024);
	pthread_mutex_lock(&g.mu);
	opens = g.n_opened;
	pthread_mutex_unlock(&g.mu);
	fd = tcp_connect(g.port);
	assert_int_equal(ws_handshake(fd, WS_PATH, NULL, head, sizeof(head)), 101);
	assert_true(wait_count(&g.n_opened, opens + 1, 2));
	id = last_opened();

	/* The client reads nothing: the socket fills, then the queue (8), and
	 * a push is refused instead of blocking. */
	t0 = now_s();
	while (pushes < 2000 && now_s() - t0 < 10) {
		rc = httpd_ws_send(g.h, id, msg, 60 * 1024, 0, &e);
		if (rc)
			break;
		pushes++;
		sleep_ms(1);
	}
	assert_int_equal(rc, KERR_TOO_MANY_REQUESTS);
	assert_non_null(strstr(e.message, "too slow"));
	/* Now read: the buffered messages, then a close frame with 1008. */
	for (int i = 0; i < pushes + 2; i++) {
		op = ws_read_frame(fd, buf, sizeof(buf), &len);
		if (op == 8) {
			assert_int_equal(((unsigned char)buf[0] << 8) | (unsigned char)buf[1], 1008);
			ok = 1;
			break;
		}
		if (op < 0)
			break;
		assert_int_equal(op, 1);
		assert_int_equal(len, 60 * 1024);
	}
	assert_true(ok);
	close(fd);
	free(msg);
}

/* ---- raw HTTP/1.x ------------------------------------------------------- */

/* Send req on a new connection and read until the server closes it. */
static char *raw_exchange(const char *req)
{
	char *out = NULL;
	size_t len = 0;
	char buf[4096];
	ssize_t n;
	int fd = tcp_connect(g.port);

	send_all(fd, req, strlen(req));
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		assert_int_equal(grow(&out, &len, buf, (size_t)n), (size_t)n);
	assert_int_equal(n, 0); /* closed by the server, not timed out */
	close(fd);
	return out ? out : strdup("");
}

static void raw_pipelining_http10_chunked_and_bad_length(void **state)
{
	char *out;
	const char *p1, *p2;
	(void)state;

	out = raw_exchange("GET /api/hello?name=p1 HTTP/1.1\r\nHost: x\r\n\r\n"
			   "GET /api/hello?name=p2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	p1 = strstr(out, "\"hello\":\"p1\"");
	p2 = strstr(out, "\"hello\":\"p2\"");
	assert_non_null(p1);
	assert_non_null(p2);
	assert_true(p1 < p2);
	free(out);

	out = raw_exchange("GET /api/hello?name=old HTTP/1.0\r\n\r\n");
	assert_true(starts_with(out, "HTTP/1.0 200"));
	assert_non_null(strstr(out, "\"hello\":\"old\""));
	free(out);

	out = raw_exchange("POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
			   "5\r\nhello\r\n0\r\n\r\n");
	assert_true(starts_with(out, "HTTP/1.1 411"));
	free(out);

	out = raw_exchange("POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n");
	assert_true(starts_with(out, "HTTP/1.1 400"));
	free(out);
}

/* ---- workers ------------------------------------------------------------ */

struct slow_call {
	pthread_t thread;
	struct resp r;
	CURLcode rc;
	int done; /* under g.mu */
};

static void *slow_call_run(void *arg)
{
	struct slow_call *sc = arg;

	sc->rc = http("GET", "/api/slow", NULL, 0, NULL, &sc->r);
	pthread_mutex_lock(&g.mu);
	sc->done = 1;
	pthread_mutex_unlock(&g.mu);
	return NULL;
}

static void slow_gate(int open)
{
	pthread_mutex_lock(&g.mu);
	g.slow_open = open;
	if (open)
		pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
}

static int slow_entered(void)
{
	int n;

	pthread_mutex_lock(&g.mu);
	n = g.slow_entered;
	pthread_mutex_unlock(&g.mu);
	return n;
}

/* A handler blocked on its worker holds up neither other requests, nor
 * static files, nor websocket pushes; its own answer arrives once it
 * returns. */
static void slow_handler_stalls_no_other_connection(void **state)
{
	struct slow_call sc, sc2;
	struct kerr e = { 0 };
	struct resp r = { 0 };
	char head[2048], buf[64];
	size_t len;
	int fd, entered, done;
	uint64_t id;
	(void)state;

	memset(&sc, 0, sizeof(sc));
	slow_gate(0);
	entered = slow_entered();
	fd = tcp_connect(g.port);
	pthread_mutex_lock(&g.mu);
	int opens = g.n_opened;
	pthread_mutex_unlock(&g.mu);
	assert_int_equal(ws_handshake(fd, WS_PATH, NULL, head, sizeof(head)), 101);
	assert_true(wait_count(&g.n_opened, opens + 1, 2));
	id = last_opened();

	assert_int_equal(pthread_create(&sc.thread, NULL, slow_call_run, &sc), 0);
	assert_true(wait_count(&g.slow_entered, entered + 1, 5));

	assert_int_equal(http("GET", "/api/hello?name=fast", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	assert_int_equal(http("GET", "/app.js", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	assert_int_equal(httpd_ws_send(g.h, id, "during", 6, 0, &e), 0);
	assert_int_equal(ws_read_frame(fd, buf, sizeof(buf), &len), 1);
	assert_string_equal(buf, "during");
	/* With both workers blocked, the fast router still answers. */
	memset(&sc2, 0, sizeof(sc2));
	assert_int_equal(pthread_create(&sc2.thread, NULL, slow_call_run, &sc2), 0);
	assert_true(wait_count(&g.slow_entered, entered + 2, 5));
	assert_int_equal(http("GET", "/api/fast", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"fast\":true}");
	resp_free(&r);
	pthread_mutex_lock(&g.mu);
	done = sc.done + sc2.done;
	pthread_mutex_unlock(&g.mu);
	assert_int_equal(done, 0); /* all of that while the slow ones waited */

	slow_gate(1);
	assert_int_equal(pthread_join(sc2.thread, NULL), 0);
	assert_int_equal(sc2.r.status, 200);
	assert_null(header(&sc2.r, "X-Dropped", head, sizeof(head))); /* deferred with a fresh response */
	resp_free(&sc2.r);
	assert_int_equal(pthread_join(sc.thread, NULL), 0);
	assert_int_equal(sc.rc, CURLE_OK);
	assert_int_equal(sc.r.status, 200);
	assert_string_equal(sc.r.body, "{\"slow\":true}");
	resp_free(&sc.r);
	close(fd);
}

/* Handlers that outlive the idle timeout: their connections are closed
 * (lws does not read from a connection whose answer is pending, so a
 * client's own hang-up is seen only when the answer is written). The one
 * running finishes into nothing, the one still queued never runs, and
 * nothing leaks or is used after free (the ASan build runs this). */
static void handler_past_the_timeout_loses_its_connection(void **state)
{
	static const char req[] = "GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\n";
	struct httpd_opts o = base_opts();
	struct httpd *h = NULL;
	struct kerr e = { 0 };
	char buf[64];
	int fds[2], entered;
	(void)state;

	o.workers = 1;
	o.idle_timeout_s = 1;
	o.static_dir = NULL;
	o.ws.path = NULL;
	assert_int_equal(httpd_new(&h, &o, &e), 0);
	assert_int_equal(httpd_start(h, &e), 0);
	slow_gate(0);
	entered = slow_entered();
	/* The first takes the one worker; the second waits in the queue. */
	for (int i = 0; i < 2; i++) {
		fds[i] = tcp_connect(httpd_port(h));
		send_all(fds[i], req, sizeof(req) - 1);
		if (i == 0)
			assert_true(wait_count(&g.slow_entered, entered + 1, 5));
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(recv(fds[i], buf, sizeof(buf), 0), 0); /* closed, no answer */
		close(fds[i]);
	}
	slow_gate(1);
	httpd_free(h); /* joins the worker once the slow handler returns */
	assert_int_equal(slow_entered(), entered + 1);
}

/* ---- lifecycle, errors, timeouts, TLS ---------------------------------- */

struct runner {
	struct httpd *h;
	int rc;
	double returned;
};

static void *run_it(void *arg)
{
	struct runner *r = arg;

	r->rc = httpd_run(r->h, NULL);
	r->returned = now_s();
	return NULL;
}

static void stop_from_another_thread_ends_run_promptly(void **state)
{
	struct httpd_opts o = base_opts();
	struct runner rn = { 0 };
	struct kerr e = { 0 };
	struct resp r = { 0 };
	pthread_t t;
	double stopped;
	char saved[64];
	(void)state;

	o.static_dir = NULL;
	o.workers = 0; /* the router on the service thread */
	assert_int_equal(httpd_new(&rn.h, &o, &e), 0);
	assert_int_equal(pthread_create(&t, NULL, run_it, &rn), 0);
	/* It serves... */
	snprintf(saved, sizeof(saved), "%s", g.base);
	snprintf(g.base, sizeof(g.base), "http://127.0.0.1:%d", httpd_port(rn.h));
	assert_int_equal(http("GET", "/api/hello", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	/* ... a passed GET without a static directory is a 404 ... */
	assert_int_equal(http("GET", "/index.html", NULL, 0, NULL, &r), CURLE_OK);
	assert_int_equal(r.status, 404);
	resp_free(&r);
	snprintf(g.base, sizeof(g.base), "%s", saved);
	/* ... while idle in poll, stop wakes it. */
	sleep_ms(100);
	stopped = now_s();
	httpd_stop(rn.h);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(rn.rc, 0);
	assert_true(rn.returned - stopped < 0.5);
	assert_int_equal(httpd_ws_broadcast(rn.h, "x", 1, 0, &e), KERR_CLOSED);
	assert_int_equal(httpd_run(rn.h, NULL), KERR_INVAL);
	httpd_free(rn.h);
}

static void bind_and_option_errors(void **state)
{
	struct httpd_opts o = base_opts();
	struct httpd *h = NULL;
	struct kerr e = { 0 };
	char addr[64];
	(void)state;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", g.port);
	o.addr = addr;
	assert_int_equal(httpd_new(&h, &o, &e), KERR_IO);
	assert_null(h);
	assert_non_null(strstr(e.message, addr));
	assert_non_null(strstr(e.message, "already in use"));
	assert_non_null(strstr(e.message, "another port"));

	static const char *const bad[] = { "127.0.0.1", "nohost.example:80", ":8080",
					   "127.0.0.1:65536", "[::1]", "::1:80" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		kerr_clear(&e);
		o.addr = bad[i];
		assert_int_equal(httpd_new(&h, &o, &e), KERR_CONFIG);
		assert_non_null(strstr(e.message, bad[i]));
	}
	kerr_clear(&e);
	o.addr = "127.0.0.1:0";
	o.static_dir = "/nonexistent/dir";
	assert_int_equal(httpd_new(&h, &o, &e), KERR_CONFIG);
	o.static_dir = NULL;
	o.workers = HTTPD_MAX_WORKERS + 1;
	kerr_clear(&e);
	assert_int_equal(httpd_new(&h, &o, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "workers"));
	o.workers = 2;
	o.tls_cert = "/nonexistent/cert.pem";
	assert_int_equal(httpd_new(&h, &o, &e), KERR_CONFIG); /* key missing */
	kerr_clear(&e);
	o.tls_key = "/nonexistent/key.pem";
	assert_int_equal(httpd_new(&h, &o, &e), KERR_TLS);
	assert_non_null(strstr(e.message, "/nonexistent/cert.pem"));
	/* IPv6 loopback binds when the host has it. */
	o.tls_cert = o.tls_key = NULL;
	o.addr = "[::1]:0";
	kerr_clear(&e);
	if (httpd_new(&h, &o, &e) == 0) {
		assert_true(httpd_port(h) > 0);
		httpd_free(h);
	}
}

static void idle_timeout_closes_stalled_clients_and_pings_websockets(void **state)
{
	struct httpd_opts o = base_opts();
	struct httpd *h = NULL;
	struct kerr e = { 0 };
	char c;
	int fd;
	double t0, took;
	(void)state;

	o.idle_timeout_s = 1;
	o.ws.origin_ok = NULL;
	assert_int_equal(httpd_new(&h, &o, &e), 0);
	assert_int_equal(httpd_start(h, &e), 0);
	fd = tcp_connect(httpd_port(h));
	send_all(fd, "GET /api/hello HTTP/1.1\r\nHost: x\r\n", 34); /* never finished */
	t0 = now_s();
	assert_true(recv(fd, &c, 1, 0) <= 0);
	took = now_s() - t0;
	assert_true(took >= 0.5 && took < 4);
	close(fd);

	/* Without origin_ok only the same origin may upgrade; a silent
	 * websocket is pinged after the idle timeout. */
	{
		char head[2048], buf[64], origin[64];
		size_t len;
		int port = g.port, op;

		g.port = httpd_port(h);
		fd = tcp_connect(g.port);
		assert_int_equal(ws_handshake(fd, WS_PATH, "https://dashboard.example", head,
					      sizeof(head)), 403);
		close(fd);
		snprintf(origin, sizeof(origin), "http://127.0.0.1:%d", g.port);
		fd = tcp_connect(g.port);
		assert_int_equal(ws_handshake(fd, WS_PATH, origin, head, sizeof(head)), 101);
		g.port = port;
		t0 = now_s();
		op = ws_read_frame(fd, buf, sizeof(buf), &len);
		assert_int_equal(op, 9);
		took = now_s() - t0;
		assert_true(took >= 0.5 && took < 4);
		close(fd);
	}
	httpd_free(h);
}

static int make_cert(const char *cert_path, const char *key_path)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	X509_NAME *name;
	FILE *f;
	int ok = 0;

	if (!pkey || !x)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1,
				   -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
	if (!ext)
		goto out;
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
	if (!ext)
		goto out;
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!X509_sign(x, pkey, EVP_sha256()))
		goto out;
	f = fopen(key_path, "w");
	if (!f || !PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL))
		goto out;
	fclose(f);
	f = fopen(cert_path, "w");
	if (!f || !PEM_write_X509(f, x))
		goto out;
	fclose(f);
	ok = 1;
out:
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ok ? 0 : -1;
}

static void https_with_alpn_http11(void **state)
{
	struct httpd_opts o = base_opts();
	struct httpd *h = NULL;
	struct kerr e = { 0 };
	struct resp r = { 0 };
	char cert[128], key[128], url[128];
	long ver = 0;
	CURL *c;
	(void)state;

	snprintf(cert, sizeof(cert), "%s/tls.crt", g.dir);
	snprintf(key, sizeof(key), "%s/tls.key", g.dir);
	assert_int_equal(make_cert(cert, key), 0);
	o.tls_cert = cert;
	o.tls_key = key;
	assert_int_equal(httpd_new(&h, &o, &e), 0);
	assert_int_equal(httpd_start(h, &e), 0);

	c = curl_easy_init();
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/api/hello?name=tls", httpd_port(h));
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, cert);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	assert_int_equal(perform(c, &r), CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"hello\":\"tls\",\"query\":\"name=tls\"}");
	curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &ver);
	assert_int_equal(ver, CURL_HTTP_VERSION_1_1); /* h2 offered by curl, not taken */
	curl_easy_cleanup(c);
	resp_free(&r);
	httpd_free(h);
}

static void query_param_decoding(void **state)
{
	struct httpd_request req = { .query = "a=1&b=x%20y&c&d=%zz&e=toolong&a=2&f+g=h" };
	char out[8];
	(void)state;

	assert_int_equal(httpd_query_param(&req, "a", out, sizeof(out)), 1);
	assert_string_equal(out, "1");
	assert_int_equal(httpd_query_param(&req, "b", out, sizeof(out)), 3);
	assert_string_equal(out, "x y");
	assert_int_equal(httpd_query_param(&req, "c", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(httpd_query_param(&req, "d", out, sizeof(out)), KERR_PARSE);
	assert_int_equal(httpd_query_param(&req, "e", out, sizeof(out)), 7);
	assert_int_equal(httpd_query_param(&req, "e", out, 7), KERR_TOO_LARGE);
	assert_int_equal(httpd_query_param(&req, "f g", out, sizeof(out)), 1);
	assert_int_equal(httpd_query_param(&req, "zz", out, sizeof(out)), KERR_NOT_FOUND);
	req.query = "";
	assert_int_equal(httpd_query_param(&req, "a", out, sizeof(out)), KERR_NOT_FOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(query_param_decoding),
		cmocka_unit_test(get_route_with_query_and_security_headers),
		cmocka_unit_test(request_fields_reach_the_router),
		cmocka_unit_test(post_bodies_small_large_empty_and_absent),
		cmocka_unit_test(keep_alive_reuses_the_connection),
		cmocka_unit_test(router_404_500_and_setters),
		cmocka_unit_test(oversized_body_gets_413),
		cmocka_unit_test(static_files_and_spa_fallback),
		cmocka_unit_test(static_refuses_traversal_dotfiles_and_escaping_links),
		cmocka_unit_test(fifty_concurrent_requests),
		cmocka_unit_test(websocket_push_and_receive),
		cmocka_unit_test(websocket_refusals),
		cmocka_unit_test(websocket_slow_consumer_is_dropped),
		cmocka_unit_test(raw_pipelining_http10_chunked_and_bad_length),
		cmocka_unit_test(slow_handler_stalls_no_other_connection),
		cmocka_unit_test(handler_past_the_timeout_loses_its_connection),
		cmocka_unit_test(stop_from_another_thread_ends_run_promptly),
		cmocka_unit_test(bind_and_option_errors),
		cmocka_unit_test(idle_timeout_closes_stalled_clients_and_pings_websockets),
		cmocka_unit_test(https_with_alpn_http11),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
