#include "kube_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "token_bucket.h"

/* An error Status is a few hundred bytes; this bounds what a misbehaving
 * server (or an HTML error page from a proxy) can make a stream hold. */
#define KC_MAX_ERROR_BODY (64u << 10)
/* Larger bodies are not parsed as Status: they are not one. */
#define KC_MAX_STATUS_JSON (1u << 20)

struct kube_client {
	char *server;        /* no trailing '/' */
	char *origin;        /* where the config came from, for messages */
	char *ca_pem;        /* copies of the config's PEM, or NULL */
	size_t ca_len;
	char *cert_pem;
	size_t cert_len;
	char *key_pem;
	size_t key_len;
	int insecure;
	char *user_agent;
	long connect_timeout_ms;
	long timeout_ms;
	int max_idle;
	kube_client_metrics_fn metrics;
	void *metrics_arg;
	struct token_bucket *bucket;
	struct kubeconfig_token *token;

	/* DNS and TLS sessions shared by all handles, each kind under its own
	 * lock as libcurl asks. */
	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
	int share_mu_ready;

	pthread_mutex_t pool_mu; /* guards idle and n_idle */
	CURL **idle;             /* handles whose connections stay open */
	int n_idle;
};

/* One transfer on one easy handle: everything the callbacks touch. Kept
 * apart from the blocking perform so a multi-handle loop could drive the
 * same setup and finish code. */
struct kc_xfer {
	CURL *h;
	struct curl_slist *headers;
	char *url;
	char errbuf[CURL_ERROR_SIZE];
	long status;
	int status_known;
	kube_client_data_fn on_data; /* 2xx chunks go here; NULL: buffer them */
	void *arg;
	int cb_rc;                   /* what on_data returned when it stopped the stream */
	char *buf;                   /* buffered body (whole, or a non-2xx one) */
	size_t len, cap, max;
	const atomic_int *cancel;
	int cancelled;
	/* curl's LOW_SPEED_* averages over a window of seconds, so "no byte
	 * for N s" would fire only after N + 5 s; we time it ourselves. */
	int64_t stall_ns;            /* 0: no stall check */
	int64_t last_rx_ns;          /* when the body last grew */
	curl_off_t last_dl;
	int stalled;
};

static int64_t kc_now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void kc_share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *p)
{
	(void)h;
	(void)access;
	struct kube_client *c = p;
	pthread_mutex_lock(&c->share_mu[data]);
}

static void kc_share_unlock(CURL *h, curl_lock_data data, void *p)
{
	(void)h;
	struct kube_client *c = p;
	pthread_mutex_unlock(&c->share_mu[data]);
}

static char *kc_dup(const char *s, size_t len)
{
	char *d = malloc(len + 1);
	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

int kube_client_new(struct kube_client **out, const struct kube_config *cfg,
		    const struct kube_client_options *opts, struct kerr *e)
{
	*out = NULL;
	static const struct kube_client_options defaults = { 0 };
	if (!opts)
		opts = &defaults;
	const char *origin = cfg->origin ? cfg->origin : "the configuration";
	if (!cfg->server || !*cfg->server)
		return kerr_set(e, KERR_CONFIG, "kube client: %s has no server URL", origin);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return kerr_set(e, KERR_NOMEM, "kube client: curl_global_init failed");

	int rc = KERR_NOMEM;
	struct kube_client *c = calloc(1, sizeof(*c));
	if (!c) {
		curl_global_cleanup();
		return kerr_set(e, KERR_NOMEM, "kube client: out of memory");
	}
	if (pthread_mutex_init(&c->pool_mu, NULL) != 0) {
		free(c);
		curl_global_cleanup();
		return kerr_set(e, KERR_NOMEM, "kube client: cannot create mutex");
	}
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
		if (pthread_mutex_init(&c->share_mu[i], NULL) != 0) {
			while (i-- > 0)
				pthread_mutex_destroy(&c->share_mu[i]);
			pthread_mutex_destroy(&c->pool_mu);
			free(c);
			curl_global_cleanup();
			return kerr_set(e, KERR_NOMEM, "kube client: cannot create mutex");
		}
	}
	c->share_mu_ready = 1;
	/* From here on kube_client_free() undoes a partial client. */
	c->insecure = cfg->insecure;
	c->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 10000;
	c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 60000;
	c->max_idle = opts->max_idle_handles > 0 ? opts->max_idle_handles : 8;
	c->metrics = opts->metrics;
	c->metrics_arg = opts->metrics_arg;
	c->server = strdup(cfg->server);
	c->origin = strdup(origin);
	c->user_agent = strdup(opts->user_agent ? opts->user_agent : KUBE_CLIENT_DEFAULT_USER_AGENT);
	c->idle = calloc((size_t)c->max_idle, sizeof(*c->idle));
	if (!c->server || !c->origin || !c->user_agent || !c->idle)
		goto nomem;
	size_t sl = strlen(c->server);
	while (sl > 0 && c->server[sl - 1] == '/')
		c->server[--sl] = '\0';
	if (cfg->ca_pem && !(c->ca_pem = kc_dup(cfg->ca_pem, c->ca_len = cfg->ca_pem_len)))
		goto nomem;
	if (cfg->cert_pem && !(c->cert_pem = kc_dup(cfg->cert_pem, c->cert_len = cfg->cert_pem_len)))
		goto nomem;
	if (cfg->key_pem && !(c->key_pem = kc_dup(cfg->key_pem, c->key_len = cfg->key_pem_len)))
		goto nomem;

	double qps = opts->qps == 0 ? 50 : opts->qps;
	int burst = opts->burst > 0 ? opts->burst : 100;
	if ((rc = token_bucket_new(&c->bucket, qps, burst, e)) != 0)
		goto err;
	long recheck = opts->token_recheck_ms == 0 ? 1000 : opts->token_recheck_ms;
	if ((rc = kubeconfig_token_new(&c->token, cfg, recheck, e)) != 0)
		goto err;

	rc = KERR_NOMEM;
	c->share = curl_share_init();
	if (!c->share)
		goto nomem;
	if (curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, kc_share_lock) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, kc_share_unlock) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
		rc = kerr_set(e, KERR_IO, "kube client: cannot set up the libcurl share handle");
		goto err;
	}
	*out = c;
	return 0;
nomem:
	rc = kerr_set(e, KERR_NOMEM, "kube client: out of memory");
err:
	kube_client_free(c);
	return rc;
}

void kube_client_free(struct kube_client *c)
{
	if (!c)
		return;
	/* Handles first: the share cannot go while handles still use it. */
	for (int i = 0; i < c->n_idle; i++)
		curl_easy_cleanup(c->idle[i]);
	free(c->idle);
	if (c->share)
		curl_share_cleanup(c->share);
	if (c->share_mu_ready) {
		for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
			pthread_mutex_destroy(&c->share_mu[i]);
		pthread_mutex_destroy(&c->pool_mu);
	}
	token_bucket_free(c->bucket);
	kubeconfig_token_free(c->token);
	free(c->server);
	free(c->origin);
	free(c->ca_pem);
	free(c->cert_pem);
	free(c->key_pem);
	free(c->user_agent);
	free(c);
	curl_global_cleanup();
}

const char *kube_client_server(const struct kube_client *c)
{
	return c->server;
}

void kube_response_free(struct kube_response *r)
{
	if (!r)
		return;
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* ---- easy handle pool ---- */

static CURL *kc_acquire(struct kube_client *c)
{
	CURL *h = NULL;
	pthread_mutex_lock(&c->pool_mu);
	if (c->n_idle > 0)
		h = c->idle[--c->n_idle];
	pthread_mutex_unlock(&c->pool_mu);
	return h ? h : curl_easy_init();
}

/* Reset drops our per-transfer pointers (error buffer, headers) but keeps
 * the handle's open connections, which is why handles are pooled. */
static void kc_release(struct kube_client *c, CURL *h)
{
	curl_easy_reset(h);
	pthread_mutex_lock(&c->pool_mu);
	if (c->n_idle < c->max_idle) {
		c->idle[c->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_mu);
	if (h)
		curl_easy_cleanup(h);
}

/* ---- one transfer ---- */

static int kc_buf_append(struct kc_xfer *x, const char *p, size_t n)
{
	if (x->len + n > x->max)
		n = x->max - x->len;
	if (n == 0)
		return 0;
	if (x->len + n + 1 > x->cap) {
		size_t cap = x->cap ? x->cap : 4096;
		while (cap < x->len + n + 1)
			cap *= 2;
		char *nb = realloc(x->buf, cap);
		if (!nb)
			return -1;
		x->buf = nb;
		x->cap = cap;
	}
	memcpy(x->buf + x->len, p, n);
	x->len += n;
	x->buf[x->len] = '\0';
	return 0;
}

static size_t kc_on_write(char *p, size_t size, size_t n, void *ud)
{
	struct kc_xfer *x = ud;
	size_t len = size * n;
	if (!x->status_known) {
		/* libcurl calls us only once the headers are in, so the final
		 * status is known here, before the first byte of the body. */
		if (curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status) != CURLE_OK)
			x->status = 0;
		x->status_known = 1;
	}
	if (x->on_data && x->status >= 200 && x->status < 300) {
		int rc = x->on_data(x->arg, p, len);
		if (rc != 0) {
			x->cb_rc = rc;
			return CURL_WRITEFUNC_ERROR;
		}
		return len;
	}
	if (kc_buf_append(x, p, len) != 0)
		return CURL_WRITEFUNC_ERROR;
	return len;
}

static int kc_on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			  curl_off_t ulnow)
{
	(void)dltotal;
	(void)ultotal;
	(void)ulnow;
	struct kc_xfer *x = ud;
	if (x->cancel && atomic_load(x->cancel)) {
		x->cancelled = 1;
		return 1;
	}
	if (x->stall_ns > 0) {
		int64_t now = kc_now_ns();
		if (dlnow != x->last_dl || x->last_rx_ns == 0) {
			x->last_dl = dlnow;
			x->last_rx_ns = now;
		} else if (now - x->last_rx_ns >= x->stall_ns) {
			x->stalled = 1;
			return 1;
		}
	}
	return 0;
}

/* Append a header line; on failure x->headers is left as it was. */
static int kc_add_line(struct kc_xfer *x, const char *line)
{
	struct curl_slist *l = curl_slist_append(x->headers, line);
	if (!l)
		return -1;
	x->headers = l;
	return 0;
}

static int kc_add_header(struct kc_xfer *x, const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 3;
	char *line = malloc(n);
	if (!line)
		return -1;
	snprintf(line, n, "%s: %s", name, value);
	int rc = kc_add_line(x, line);
	free(line);
	return rc;
}

static void kc_xfer_cleanup(struct kube_client *c, struct kc_xfer *x)
{
	if (x->h)
		kc_release(c, x->h);
	curl_slist_free_all(x->headers);
	free(x->url);
	free(x->buf);
	memset(x, 0, sizeof(*x));
}

/* Configure x->h for one request. stall_s > 0 aborts when the body does
 * not grow for that long, timeout_ms > 0 sets a total limit. */
static int kc_setup(struct kube_client *c, struct kc_xfer *x, const char *method, const char *path,
		    const char *content_type, const char *body, size_t body_len, long timeout_ms,
		    long stall_s, struct kerr *e)
{
	if (!path || path[0] != '/')
		return kerr_set(e, KERR_INVAL, "kube client: path \"%s\" must start with '/'", path ? path : "(null)");
	int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
	if (!get && !post && strcmp(method, "PUT") != 0 && strcmp(method, "PATCH") != 0 &&
	    strcmp(method, "DELETE") != 0)
		return kerr_set(e, KERR_INVAL, "kube client: method \"%s\" is not GET, POST, PUT, PATCH or DELETE", method);
	size_t ul = strlen(c->server) + strlen(path) + 1;
	x->url = malloc(ul);
	x->h = kc_acquire(c);
	if (!x->url || !x->h)
		return kerr_set(e, KERR_NOMEM, "kube client: out of memory");
	snprintf(x->url, ul, "%s%s", c->server, path);

	char *token = NULL;
	int rc = kubeconfig_token_get(c->token, &token, e);
	if (rc)
		return rc;
	int hfail = kc_add_header(x, "Accept", KUBE_CONTENT_JSON) != 0 ||
		    /* No "Expect: 100-continue" round trip before bodies over 1 KiB. */
		    kc_add_line(x, "Expect:") != 0;
	if (!hfail && (body || !get))
		hfail = kc_add_header(x, "Content-Type", content_type ? content_type : KUBE_CONTENT_JSON) != 0;
	if (!hfail && token) {
		size_t tl = strlen(token) + 8;
		char *bearer = malloc(tl);
		hfail = !bearer;
		if (bearer) {
			snprintf(bearer, tl, "Bearer %s", token);
			hfail = kc_add_header(x, "Authorization", bearer) != 0;
			free(bearer);
		}
	}
	free(token);
	if (hfail)
		return kerr_set(e, KERR_NOMEM, "kube client: out of memory");

	CURL *h = x->h;
	CURLcode cc = CURLE_OK;
#define KC_SET(opt, val) \
	do { if (cc == CURLE_OK) cc = curl_easy_setopt(h, opt, val); } while (0)
	KC_SET(CURLOPT_URL, x->url);
	KC_SET(CURLOPT_PROTOCOLS_STR, "https,http");
	KC_SET(CURLOPT_SHARE, c->share);
	KC_SET(CURLOPT_NOSIGNAL, 1L);
	KC_SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	KC_SET(CURLOPT_USERAGENT, c->user_agent);
	KC_SET(CURLOPT_HTTPHEADER, x->headers);
	KC_SET(CURLOPT_ACCEPT_ENCODING, "gzip");
	KC_SET(CURLOPT_ERRORBUFFER, x->errbuf);
	KC_SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	KC_SET(CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 0L);
	/* An idle watch may see no bytes for minutes; keepalive notices a
	 * peer that vanished without closing. */
	KC_SET(CURLOPT_TCP_KEEPALIVE, 1L);
	KC_SET(CURLOPT_TCP_KEEPIDLE, 30L);
	KC_SET(CURLOPT_TCP_KEEPINTVL, 15L);
	KC_SET(CURLOPT_WRITEFUNCTION, kc_on_write);
	KC_SET(CURLOPT_WRITEDATA, x);
	x->stall_ns = stall_s > 0 ? (int64_t)stall_s * 1000000000 : 0;
	if (x->cancel || x->stall_ns > 0) {
		/* Called at least about once a second even when no data flows. */
		KC_SET(CURLOPT_XFERINFOFUNCTION, kc_on_progress);
		KC_SET(CURLOPT_XFERINFODATA, x);
		KC_SET(CURLOPT_NOPROGRESS, 0L);
	}
	if (c->insecure) {
		KC_SET(CURLOPT_SSL_VERIFYPEER, 0L);
		KC_SET(CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (c->ca_pem) {
		struct curl_blob ca = { c->ca_pem, c->ca_len, CURL_BLOB_NOCOPY };
		KC_SET(CURLOPT_CAINFO_BLOB, &ca);
		/* Trust the cluster CA only, as client-go does, not also the
		 * system bundle compiled into libcurl. */
		KC_SET(CURLOPT_CAINFO, (char *)NULL);
		KC_SET(CURLOPT_CAPATH, (char *)NULL);
	}
	if (c->cert_pem) {
		struct curl_blob cert = { c->cert_pem, c->cert_len, CURL_BLOB_NOCOPY };
		struct curl_blob key = { c->key_pem, c->key_len, CURL_BLOB_NOCOPY };
		KC_SET(CURLOPT_SSLCERT_BLOB, &cert);
		KC_SET(CURLOPT_SSLCERTTYPE, "PEM");
		KC_SET(CURLOPT_SSLKEY_BLOB, &key);
		KC_SET(CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (get) {
		KC_SET(CURLOPT_HTTPGET, 1L);
	} else if (body || !post) {
		if (!post)
			KC_SET(CURLOPT_CUSTOMREQUEST, method);
		/* DELETE sends a body only when given one (DeleteOptions). */
		if (body || strcmp(method, "DELETE") != 0) {
			KC_SET(CURLOPT_POSTFIELDS, body ? body : "");
			KC_SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
		}
	} else {
		KC_SET(CURLOPT_POSTFIELDS, "");
		KC_SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
	}
#undef KC_SET
	if (cc != CURLE_OK)
		return kerr_set(e, cc == CURLE_OUT_OF_MEMORY ? KERR_NOMEM : KERR_CONFIG,
				"kube client: cannot configure the request to %s: %s (is libcurl built with OpenSSL?)",
				x->url, curl_easy_strerror(cc));
	return 0;
}

static int kc_is_tls_error(CURLcode cc)
{
	switch (cc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
		return 1;
	default:
		return 0;
	}
}

/* Turn a failed perform into a kerr naming the URL, curl's reason and
 * what to check. */
static int kc_transport_error(struct kube_client *c, struct kc_xfer *x, CURLcode cc,
			      const char *method, struct kerr *e)
{
	const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc);
	switch (cc) {
	case CURLE_WRITE_ERROR:
		if (x->cb_rc != 0)
			return kerr_set(e, x->cb_rc < 0 ? x->cb_rc : KERR_CLOSED,
					"%s %s: stopped by the receiver (%s)", method, x->url,
					kerr_strerror(x->cb_rc < 0 ? x->cb_rc : KERR_CLOSED));
		return kerr_set(e, KERR_NOMEM, "%s %s: out of memory buffering the response", method, x->url);
	case CURLE_ABORTED_BY_CALLBACK:
		if (x->stalled)
			return kerr_set(e, KERR_TIMEOUT, "%s %s: stream stalled, no data for %lld s; the connection is probably dead, reconnect",
					method, x->url, (long long)(x->stall_ns / 1000000000));
		return kerr_set(e, KERR_CLOSED, "%s %s: cancelled", method, x->url);
	case CURLE_OUT_OF_MEMORY:
		return kerr_set(e, KERR_NOMEM, "%s %s: out of memory in libcurl", method, x->url);
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return kerr_set(e, KERR_CONNECT, "%s %s: cannot connect: %s; is the apiserver running, and is the server right in %s? (check KUBECONFIG)",
				method, x->url, why, c->origin);
	case CURLE_OPERATION_TIMEDOUT:
		return kerr_set(e, KERR_TIMEOUT, "%s %s: timed out: %s; is the apiserver overloaded or unreachable?",
				method, x->url, why);
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return kerr_set(e, KERR_CONFIG, "%s %s: bad URL: %s; fix the server in %s", method, x->url, why, c->origin);
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		/* With TLS 1.3 a rejected client certificate shows up only as an
		 * alert on the first read, after the handshake "succeeded". */
		if (strstr(why, "alert") || strstr(why, "certificate"))
			return kerr_set(e, KERR_TLS, "%s %s: the server rejected the TLS connection: %s; check client-certificate and client-key in %s",
					method, x->url, why, c->origin);
		/* Sometimes the server's close beats our first write and the
		 * alert is never read: say what it may be without claiming it. */
		long fresh = 0;
		if (x->status == 0 && curl_easy_getinfo(x->h, CURLINFO_NUM_CONNECTS, &fresh) == CURLE_OK && fresh > 0)
			return kerr_set(e, KERR_CONNECT, "%s %s: the server closed a new connection before answering: %s; if it requires a client certificate, check client-certificate and client-key in %s, otherwise retry",
					method, x->url, why, c->origin);
		return kerr_set(e, KERR_CONNECT, "%s %s: connection lost: %s; retry", method, x->url, why);
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return kerr_set(e, KERR_CONNECT, "%s %s: connection lost: %s; retry", method, x->url, why);
	default:
		if (kc_is_tls_error(cc))
			return kerr_set(e, KERR_TLS, "%s %s: TLS failure: %s; check certificate-authority, client-certificate and client-key in %s, and that the server name matches its certificate",
					method, x->url, why, c->origin);
		return kerr_set(e, KERR_IO, "%s %s: %s", method, x->url, why);
	}
}

static void kc_report(struct kube_client *c, const char *verb, const char *path, long status,
		      int64_t start_ns)
{
	if (!c->metrics)
		return;
	char tmpl[256];
	kube_client_path_template(path, tmpl, sizeof(tmpl));
	c->metrics(c->metrics_arg, verb, tmpl, status, (double)(kc_now_ns() - start_ns) / 1e9);
}

/* Run a configured transfer to its end and turn the outcome into a code. */
static int kc_perform(struct kube_client *c, struct kc_xfer *x, const char *method,
		      const char *path, struct kerr *e)
{
	CURLcode cc = curl_easy_perform(x->h);
	if (curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status) != CURLE_OK)
		x->status = 0;
	if (cc != CURLE_OK)
		return kc_transport_error(c, x, cc, method, e);
	if (x->status >= 200 && x->status < 300)
		return 0;
	char what[600];
	snprintf(what, sizeof(what), "%s %s", method, path);
	return kube_client_status_error(x->status, x->buf, what, e);
}

int kube_client_request(struct kube_client *c, const char *method, const char *path,
			const char *content_type, const char *body, size_t body_len,
			struct kube_response *out, struct kerr *e)
{
	memset(out, 0, sizeof(*out));
	int64_t start = kc_now_ns();
	token_bucket_wait(c->bucket);
	struct kc_xfer x = { .max = SIZE_MAX };
	int rc = kc_setup(c, &x, method, path, content_type, body, body_len, c->timeout_ms, 0, e);
	if (rc == 0)
		rc = kc_perform(c, &x, method, path, e);
	out->status = x.status;
	out->body = x.buf;
	out->len = x.len;
	x.buf = NULL;
	kc_report(c, method, path, x.status, start);
	kc_xfer_cleanup(c, &x);
	return rc;
}

int kube_client_stream(struct kube_client *c, const char *path, kube_client_data_fn on_data,
		       void *arg, const struct kube_stream_options *opts, long *status,
		       struct kerr *e)
{
	static const struct kube_stream_options defaults = { 0 };
	if (!opts)
		opts = &defaults;
	if (status)
		*status = 0;
	if (!on_data)
		return kerr_set(e, KERR_INVAL, "kube client: stream of %s needs a data callback", path ? path : "(null)");
	int64_t start = kc_now_ns();
	if (!opts->watch)
		token_bucket_wait(c->bucket);
	long stall = opts->stall_s == 0 ? 120 : opts->stall_s;
	struct kc_xfer x = {
		.on_data = on_data, .arg = arg, .max = KC_MAX_ERROR_BODY, .cancel = opts->cancel,
	};
	int rc = kc_setup(c, &x, "GET", path, NULL, NULL, 0, opts->timeout_ms, stall, e);
	if (rc == 0)
		rc = kc_perform(c, &x, "GET", path, e);
	if (status)
		*status = x.status;
	kc_report(c, opts->watch ? "WATCH" : "LIST", path, x.status, start);
	kc_xfer_cleanup(c, &x);
	return rc;
}

/* ---- errors and labels ---- */

static void kc_copy_printable(char *dst, size_t cap, const char *src)
{
	size_t i = 0;
	for (; src && src[i] && i + 1 < cap; i++)
		dst[i] = (unsigned char)src[i] < 0x20 ? ' ' : src[i];
	dst[i] = '\0';
}

/*
 * A 403 comes from authorization (RBAC) or from an admission plugin, and
 * only the message tells which; a hint that blames RBAC for a terminating
 * namespace sends people to the wrong place. "" when the message is not
 * one of these: it then speaks for itself.
 */
static const char *kc_forbidden_hint(const char *message)
{
	static const struct {
		const char *needle;
		const char *hint;
	} hints[] = {
		/* NamespaceLifecycle */
		{"because it is being terminated",
		 "; the namespace is being deleted, and nothing new can be created in it until it is gone"},
		/* ResourceQuota */
		{"exceeded quota",
		 "; a ResourceQuota of the namespace refused it: raise the quota or request less"},
		/* PodSecurity */
		{"violates PodSecurity",
		 "; the namespace's Pod Security level refused it: change the pod's security settings"},
		/* RBAC: 'pods is forbidden: User "x" cannot list resource ...' */
		{"\" cannot ",
		 "; the user lacks an RBAC permission: grant it with a Role/ClusterRole binding"},
	};
	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
		if (strstr(message, hints[i].needle))
			return hints[i].hint;
	return "";
}

int kube_client_status_error(long http_status, const char *body, const char *what, struct kerr *e)
{
	char reason[sizeof(((struct kerr *)0)->reason)] = "";
	char message[400] = "";
	long status = http_status;
	int is_status = 0;
	if (body && body[0] == '{' && strlen(body) < KC_MAX_STATUS_JSON) {
		char perr[128];
		yajl_val v = yajl_tree_parse(body, perr, sizeof(perr));
		if (YAJL_IS_OBJECT(v)) {
			static const char *kind_p[] = { "kind", NULL };
			static const char *reason_p[] = { "reason", NULL };
			static const char *message_p[] = { "message", NULL };
			static const char *code_p[] = { "code", NULL };
			const char *kind = YAJL_GET_STRING(yajl_tree_get(v, kind_p, yajl_t_string));
			yajl_val r = yajl_tree_get(v, reason_p, yajl_t_string);
			yajl_val m = yajl_tree_get(v, message_p, yajl_t_string);
			yajl_val code = yajl_tree_get(v, code_p, yajl_t_number);
			is_status = (kind && strcmp(kind, "Status") == 0) || r || m;
			if (is_status) {
				kc_copy_printable(reason, sizeof(reason), YAJL_GET_STRING(r));
				kc_copy_printable(message, sizeof(message), YAJL_GET_STRING(m));
				if (status == 0 && YAJL_IS_INTEGER(code))
					status = (long)YAJL_GET_INTEGER(code);
			}
		}
		yajl_tree_free(v);
	}
	if (!is_status && body) {
		/* Not a Status (a proxy's page, a plain-text panic): show its start. */
		char snippet[200];
		kc_copy_printable(snippet, sizeof(snippet), body);
		snprintf(message, sizeof(message), "%s", snippet);
	}
	int code = kerr_from_http(status, reason[0] ? reason : NULL);
	if (code == 0)
		code = KERR_HTTP;
	if (!e || e->code != 0)
		return code;
	const char *hint = "";
	if (status == 401)
		hint = "; the credentials were rejected: check the token or client certificate";
	else if (status == 403)
		hint = kc_forbidden_hint(message);
	kerr_set(e, code, "%s: %s (%s%sHTTP %ld)%s", what ? what : "request",
		 message[0] ? message : kerr_strerror(code), reason, reason[0] ? ", " : "", status, hint);
	e->http_status = status;
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
	return code;
}

struct kc_seg {
	const char *p;
	size_t n;
};

static int kc_seg_is(const struct kc_seg *s, const char *lit)
{
	return s->n == strlen(lit) && memcmp(s->p, lit, s->n) == 0;
}

void kube_client_path_template(const char *path, char *buf, size_t cap)
{
	if (cap == 0)
		return;
	buf[0] = '\0';
	struct kc_seg seg[16];
	size_t n = 0;
	const char *p = path ? path : "";
	while (*p && *p != '?' && n < sizeof(seg) / sizeof(seg[0])) {
		if (*p == '/') {
			p++;
			continue;
		}
		size_t len = strcspn(p, "/?");
		seg[n].p = p;
		seg[n].n = len;
		n++;
		p += len;
	}
	/* Output list: a segment or a placeholder. */
	struct kc_seg outs[16];
	size_t m = 0, i = 0;
	static const struct kc_seg ns_ph = { "{namespace}", 11 }, name_ph = { "{name}", 6 };
	if (n >= 2 && kc_seg_is(&seg[0], "api"))
		i = 2;
	else if (n >= 3 && kc_seg_is(&seg[0], "apis"))
		i = 3;
	else
		i = n; /* not a resource path (/version, /healthz): kept whole */
	for (size_t k = 0; k < i; k++)
		outs[m++] = seg[k];
	if (i < n) {
		/* namespaces/X/RESOURCE... is a namespaced path; namespaces/X and
		 * namespaces/X/status|finalize are the namespace object itself. */
		if (kc_seg_is(&seg[i], "namespaces") && n - i >= 3 &&
		    !(n - i == 3 && (kc_seg_is(&seg[i + 2], "status") || kc_seg_is(&seg[i + 2], "finalize")))) {
			outs[m++] = seg[i];
			outs[m++] = ns_ph;
			i += 2;
		}
		outs[m++] = seg[i++]; /* resource */
		if (i < n)
			outs[m++] = name_ph;
		if (i + 1 < n)
			outs[m++] = seg[i + 1]; /* subresource */
	}
	size_t used = 0;
	for (size_t k = 0; k < m && used + 1 < cap; k++) {
		int w = snprintf(buf + used, cap - used, "/%.*s", (int)outs[k].n, outs[k].p);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	if (m == 0)
		snprintf(buf, cap, "/");
}
