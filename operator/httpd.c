/*
 * httpd: see httpd.h for the contract.
 *
 * Shape: one lws context, one vhost, one protocol ("nimbus") whose
 * callback handles both roles. HTTP connections are bound to it because it
 * is protocols[0]; websocket upgrades without a subprotocol land on it as
 * the vhost's default protocol. lws gives each HTTP transaction a fresh
 * per-session struct (it rebinds protocols[0] between keep-alive
 * requests), so everything a transaction owns hangs off pss->txn and is
 * freed on HTTP_DROP_PROTOCOL / CLOSED_HTTP or when the response is done.
 *
 * Cross-thread: httpd_stop, the websocket push functions and the workers
 * run off the service thread. The first two touch h->stop (atomic) and,
 * under h->ws_lock, the connection list and queues; then
 * lws_cancel_service wakes the service thread, which gets
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED and asks lws for writable callbacks on
 * the connections with queued messages.
 *
 * Workers: a complete request is first offered to h->fast_router on the
 * service thread, when there is one; if it defers, the txn goes on
 * h->jobs; a worker takes it, runs the router (touching only the txn and
 * h's read-only fields), puts it on h->done and wakes the service thread,
 * which asks for a writable callback on the connection and sends the
 * response from there. Only the service thread calls lws. While a txn is with the workers (t->job is not
 * JOB_NONE) its connection may close: the service thread then marks it
 * orphaned instead of freeing it, and whoever holds it next (a worker, or
 * the service thread collecting h->done) frees it. Both lists and those
 * two fields are under h->job_lock.
 */
/* realpath(3) is XSI, outside the POSIX base the build selects. */
#define _XOPEN_SOURCE 700

#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libwebsockets.h>

#define DEFAULT_MAX_BODY ((size_t)1 << 20)
#define DEFAULT_IDLE_S 30u
#define MAX_IDLE_S 3600u
#define DEFAULT_WS_QUEUE 64u
#define DEFAULT_WS_MAX_MESSAGE ((size_t)64 << 10)
#define MAX_RESP_HEADERS 16
/* Bytes per write of a response body: big enough that a typical list
 * (100 KiB) is two writes and a 1 MiB body 16, small enough to sit on the
 * service thread's stack and to let other connections interleave. */
#define WRITE_CHUNK 65536
/* Request headers are held by lws in one buffer per connection; 8 KiB
 * leaves room for a long bearer token (lws's default is 4 KiB). */
#define MAX_HEADER_BYTES 8192
/* lws sizes its fd lookup table from this; the process limit may be a
 * million, which would cost megabytes per httpd for nothing. */
#define FD_LIMIT 4096
/* A dropped slow consumer gets this long to take its close frame before
 * the socket is simply closed. */
#define WS_DROP_GRACE_S 5
/* After a websocket's ping goes unanswered this long, it is closed. */
#define WS_PONG_WAIT_S 10
/* First allocation for a request body; it doubles up to max_body, so a
 * client that announces a large body but sends little costs little. */
#define BODY_FIRST_ALLOC 16384

static const char *const method_names[] = {
	[LWSHUMETH_GET] = "GET",         [LWSHUMETH_POST] = "POST",
	[LWSHUMETH_OPTIONS] = "OPTIONS", [LWSHUMETH_PUT] = "PUT",
	[LWSHUMETH_PATCH] = "PATCH",     [LWSHUMETH_DELETE] = "DELETE",
	[LWSHUMETH_CONNECT] = "CONNECT", [LWSHUMETH_HEAD] = "HEAD",
	[LWSHUMETH_COLON_PATH] = NULL,
};

struct resp_header {
	char *name;  /* "X-Request-Id:" (with the colon lws wants) */
	char *value;
};

struct httpd_response {
	int status;
	char *content_type;  /* NULL: application/json */
	struct resp_header headers[MAX_RESP_HEADERS];
	size_t nheaders;
	unsigned char *body; /* malloc'd, body_len bytes; NULL when empty */
	size_t body_len;
};

/* The request headers httpd passes on, copied out of lws's header buffer
 * (which lws detaches before the body arrives on some paths). */
struct req_info {
	int method;  /* LWSHUMETH_* */
	char *path, *query, *authorization, *content_type, *origin, *accept, *ws_protocols;
	char remote[64];
};

/* One HTTP request and its response; owned by the connection's pss. */
struct txn {
	struct req_info ri;
	unsigned char *body; /* body_cap bytes, body_len used, +1 for the NUL */
	size_t body_len, body_cap;
	int ignore_body;     /* answered before reading the body (413/411) or no
	                      * body announced: body bytes are dropped */
	int close_hdr;       /* send Connection: close */
	int close_after;     /* hang up once the response is out (implies close_hdr) */
	int head_only;       /* HEAD, 204, 304: headers only */
	int sending;         /* headers written, body pending */
	struct httpd_response resp;
	int fd;              /* static file being sent, -1 if none */
	uint64_t file_left;
	size_t body_off;
	/* Worker hand-off (see the top of this file). */
	struct txn *job_next; /* on h->jobs or h->done; under h->job_lock */
	int job;              /* JOB_*; under h->job_lock */
	int orphaned;         /* the connection is gone; under h->job_lock */
	struct lws *wsi;      /* the connection; read only while not orphaned */
	int routed;           /* service thread: the router has answered, send it */
	int pass;             /* the router passed: serve a static file */
};

enum { JOB_NONE, JOB_QUEUED, JOB_DONE };

/* A queued outbound websocket message, shared by every queue holding it.
 * refs is changed only under h->ws_lock; buf has LWS_PRE bytes of headroom
 * for the frame header lws writes in front of the payload (only the service
 * thread writes there, one connection at a time). */
struct ws_msg {
	size_t refs;
	size_t len;
	int binary;
	unsigned char buf[];
};

/* A websocket connection. The list links, queue and overflow flag are
 * under h->ws_lock (pushers read and write them); the rest belongs to the
 * service thread. Freed on LWS_CALLBACK_CLOSED (or protocol drop). */
struct ws_conn {
	struct ws_conn *prev, *next;
	uint64_t id;
	struct lws *wsi;
	struct ws_msg **q;   /* ring of h->ws_queue_max */
	size_t q_head, q_len;
	int overflow;        /* a push found the queue full: close with 1008 */
	int drop_armed;      /* service thread: the grace timeout is set */
	int refused;         /* on_open said no: close with 1008 */
	char refuse_reason[WS_REASON_MAX + 1]; /* on_open's reason, "" for the default */
	int opened;          /* on_open kept it: on_close is owed */
	unsigned char *rx;   /* inbound message being reassembled */
	size_t rx_len, rx_cap;
	int rx_binary, rx_in_msg;
};

struct pss {
	struct txn *txn;
	struct ws_conn *conn;
};

struct httpd {
	struct lws_context *ctx;
	struct lws_vhost *vh;
	/* lws keeps pointers to these for the context's life. */
	struct lws_protocols protocols[2];
	struct lws_protocol_vhost_options hdrs[3];
	lws_retry_bo_t retry;
	char *addr;          /* as given, for messages */
	char *host;          /* IP literal bound, e.g. "127.0.0.1" */
	char *tls_cert, *tls_key;
	char *static_root;   /* realpath of static_dir, NULL if none */
	char *ws_path;
	int port;
	size_t max_body;
	unsigned idle_s;
	httpd_router_fn router;
	httpd_router_fn fast_router; /* NULL: none */
	void *router_user;
	void (*log)(void *, const char *);
	void *log_user;
	struct httpd_ws_opts ws;
	size_t ws_queue_max, ws_max_message;

	atomic_int stop;
	atomic_int state;    /* 0 new, 1 running, 2 finished */
	pthread_t thread;
	int thread_started;

	pthread_mutex_t ws_lock;
	struct ws_conn *conns; /* under ws_lock */
	uint64_t next_id;      /* under ws_lock */
	int ws_closed;         /* under ws_lock: pushes refused */

	unsigned nworkers;     /* 0: the router runs on the service thread */
	pthread_t *workers;
	unsigned workers_started;
	pthread_mutex_t job_lock;
	pthread_cond_t job_cond;
	struct txn *jobs, *jobs_tail; /* under job_lock: waiting for a worker, FIFO */
	struct txn *done;             /* under job_lock: answered, waiting to be sent */
	int workers_stop;             /* under job_lock */
};

/* ---------- small helpers ---------- */

static void hlog(struct httpd *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hlog(struct httpd *h, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!h->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	h->log(h->log_user, msg);
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (!d)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* Copy a request header out of lws; NULL when absent or out of memory
 * (*oom set). */
static char *hdr_dup(struct lws *wsi, enum lws_token_indexes tok, int *oom)
{
	int n = lws_hdr_total_length(wsi, tok);
	char *s;

	if (n <= 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (!s) {
		*oom = 1;
		return NULL;
	}
	if (lws_hdr_copy(wsi, s, n + 1, tok) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Append s[0..n) percent-encoded to out (which has room: 3 bytes per
 * input byte). */
static char *pct_encode(char *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (is_unreserved(c)) {
			*out++ = (char)c;
		} else {
			*out++ = '%';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 15];
		}
	}
	return out;
}

/* lws splits the query at unescaped '&' and decodes each "name=value"
 * fragment; rebuild one unambiguous string from the fragments. */
static char *query_dup(struct lws *wsi, int *oom)
{
	int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
	char *frag, *out, *o;

	if (total <= 0)
		return strdup("");
	frag = malloc((size_t)total + 1);
	out = malloc((size_t)total * 3 + 1);
	if (!frag || !out) {
		free(frag);
		free(out);
		*oom = 1;
		return NULL;
	}
	o = out;
	for (int i = 0;; i++) {
		int n = lws_hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
		char *eq;

		if (n < 0)
			break;
		if (n == 0)
			continue;
		if (o != out)
			*o++ = '&';
		eq = memchr(frag, '=', (size_t)n);
		if (eq) {
			o = pct_encode(o, frag, (size_t)(eq - frag));
			*o++ = '=';
			o = pct_encode(o, eq + 1, (size_t)(n - (eq + 1 - frag)));
		} else {
			o = pct_encode(o, frag, (size_t)n);
		}
	}
	*o = '\0';
	free(frag);
	return out;
}

static void req_info_free(struct req_info *ri)
{
	free(ri->path);
	free(ri->query);
	free(ri->authorization);
	free(ri->content_type);
	free(ri->origin);
	free(ri->accept);
	free(ri->ws_protocols);
	memset(ri, 0, sizeof(*ri));
}

/* Fill ri from the request headers lws holds for wsi. path/len: the URI as
 * lws parsed it. KERR_NOMEM. */
static int req_info_fill(struct req_info *ri, struct lws *wsi, int method, const char *path,
			 size_t path_len)
{
	int oom = 0;

	memset(ri, 0, sizeof(*ri));
	ri->method = method;
	ri->path = dup_n(path, path_len);
	ri->query = query_dup(wsi, &oom);
	ri->authorization = hdr_dup(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, &oom);
	ri->content_type = hdr_dup(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, &oom);
	ri->origin = hdr_dup(wsi, WSI_TOKEN_ORIGIN, &oom);
	ri->accept = hdr_dup(wsi, WSI_TOKEN_HTTP_ACCEPT, &oom);
	ri->ws_protocols = hdr_dup(wsi, WSI_TOKEN_PROTOCOL, &oom);
	if (!lws_get_peer_simple(wsi, ri->remote, sizeof(ri->remote)))
		ri->remote[0] = '\0';
	if (oom || !ri->path || !ri->query) {
		req_info_free(ri);
		return KERR_NOMEM;
	}
	return 0;
}

static void req_from_info(struct httpd_request *req, const struct req_info *ri,
			  const unsigned char *body, size_t body_len)
{
	static const unsigned char empty[1] = { 0 };

	memset(req, 0, sizeof(*req));
	req->method = method_names[ri->method];
	req->path = ri->path;
	req->query = ri->query;
	req->authorization = ri->authorization;
	req->content_type = ri->content_type;
	req->origin = ri->origin;
	req->accept = ri->accept;
	req->ws_protocols = ri->ws_protocols;
	req->remote_addr = ri->remote;
	req->body = body ? body : empty;
	req->body_len = body ? body_len : 0;
}

/* ---------- responses ---------- */

static void resp_reset(struct httpd_response *r)
{
	free(r->content_type);
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->body);
	memset(r, 0, sizeof(*r));
	r->status = 200;
}

void httpd_response_status(struct httpd_response *resp, int status)
{
	resp->status = (status >= 200 && status <= 599) ? status : 500;
}

static int has_ctl(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return 1;
	return 0;
}

int httpd_response_content_type(struct httpd_response *resp, const char *type)
{
	char *c;

	if (!type || has_ctl(type))
		return KERR_INVAL;
	c = strdup(type);
	if (!c)
		return KERR_NOMEM;
	free(resp->content_type);
	resp->content_type = c;
	return 0;
}

static int is_token(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c))
			return 0;
	}
	return 1;
}

int httpd_response_header(struct httpd_response *resp, const char *name, const char *value)
{
	static const char *const managed[] = { "content-length", "content-type", "connection",
					       "transfer-encoding", "server", "cache-control" };
	size_t n;
	char *nm, *v;

	if (!name || !value || !is_token(name) || has_ctl(value))
		return KERR_INVAL;
	for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++)
		if (!strcasecmp(name, managed[i]))
			return KERR_INVAL;
	if (resp->nheaders == MAX_RESP_HEADERS)
		return KERR_TOO_LARGE;
	n = strlen(name);
	nm = malloc(n + 2);
	v = strdup(value);
	if (!nm || !v) {
		free(nm);
		free(v);
		return KERR_NOMEM;
	}
	memcpy(nm, name, n);
	nm[n] = ':';
	nm[n + 1] = '\0';
	resp->headers[resp->nheaders].name = nm;
	resp->headers[resp->nheaders].value = v;
	resp->nheaders++;
	return 0;
}

int httpd_response_body(struct httpd_response *resp, const void *data, size_t len)
{
	unsigned char *b = NULL;

	if (len) {
		b = malloc(len);
		if (!b)
			return KERR_NOMEM;
		memcpy(b, data, len);
	}
	free(resp->body);
	resp->body = b;
	resp->body_len = len;
	return 0;
}

void httpd_response_body_take(struct httpd_response *resp, void *buf, size_t len)
{
	free(resp->body);
	resp->body = buf;
	resp->body_len = buf ? len : 0;
}

static void resp_json_error(struct httpd_response *r, int status, const char *msg)
{
	char body[256];
	int n;

	resp_reset(r);
	r->status = status;
	n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", msg);
	/* Out of memory leaves the status with an empty body: still an answer. */
	(void)httpd_response_body(r, body, (size_t)n);
}

/* ---------- query parameters ---------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..n) into out; length or KERR_TOO_LARGE / KERR_PARSE. */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return KERR_PARSE;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return KERR_PARSE;
			c = hi * 16 + lo;
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (o + 1 >= outlen)
			return KERR_TOO_LARGE;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (int)o;
}

int httpd_query_param(const struct httpd_request *req, const char *name, char *out,
		      size_t outlen)
{
	const char *p = req->query;
	size_t name_len = strlen(name);

	if (!outlen || outlen > INT_MAX)
		return KERR_INVAL;
	while (p && *p) {
		const char *end = strchr(p, '&');
		const char *eq;
		size_t seg = end ? (size_t)(end - p) : strlen(p);
		char key[256];
		int k;

		eq = memchr(p, '=', seg);
		k = pct_decode(p, eq ? (size_t)(eq - p) : seg, key, sizeof(key));
		if (k >= 0 && (size_t)k == name_len && !memcmp(key, name, name_len)) {
			if (!eq) {
				out[0] = '\0';
				return 0;
			}
			return pct_decode(eq + 1, seg - (size_t)(eq + 1 - p), out, outlen);
		}
		p = end ? end + 1 : NULL;
	}
	return KERR_NOT_FOUND;
}

/* ---------- writing responses ---------- */

static void txn_free(struct txn *t)
{
	if (!t)
		return;
	req_info_free(&t->ri);
	free(t->body);
	resp_reset(&t->resp);
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

/* The connection is done with its transaction. One still with the
 * workers is left to them (orphaned), as they may be running it. */
static void pss_txn_release(struct httpd *h, struct pss *pss)
{
	struct txn *t = pss ? pss->txn : NULL;

	if (!t)
		return;
	pss->txn = NULL;
	if (h->nworkers) {
		pthread_mutex_lock(&h->job_lock);
		if (t->job != JOB_NONE) {
			t->orphaned = 1;
			t->wsi = NULL;
			t = NULL;
		}
		pthread_mutex_unlock(&h->job_lock);
	}
	txn_free(t);
}

/* The transaction's response is fully handed to lws: free it and let the
 * connection take its next request, or close it. Returns the callback's
 * return value. */
static int txn_finish(struct httpd *h, struct lws *wsi, struct pss *pss)
{
	int close_after = pss->txn->close_after;

	pss_txn_release(h, pss);
	if (close_after)
		return -1;
	/* For keep-alive lws replaces this with its idle timeout; when it
	 * still has an unread body to discard (413), this bounds a client
	 * that neither sends it nor closes. */
	lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)h->idle_s);
	/* May free pss (lws rebinds the protocol for the next request). */
	if (lws_http_transaction_completed(wsi))
		return -1;
	return 0;
}

static int add_hdr(struct lws *wsi, const char *name, const char *value, unsigned char **p,
		   unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
					   (const unsigned char *)value, (int)strlen(value), p, end);
}

/* Write the status line and headers of t's response, then either finish
 * the transaction or schedule the body. is_static picks the Cache-Control.
 * Returns the callback's return value. */
static int txn_start_response(struct httpd *h, struct lws *wsi, struct pss *pss, int is_static,
			      uint64_t body_len)
{
	struct txn *t = pss->txn;
	struct httpd_response *r = &t->resp;
	const char *ctype = r->content_type ? r->content_type : "application/json";
	size_t need = LWS_PRE + 1024 + strlen(ctype);
	unsigned char *buf, *start, *p, *end;
	int no_body = (r->status == 204 || r->status == 304);
	int rc;

	for (size_t i = 0; i < r->nheaders; i++)
		need += strlen(r->headers[i].name) + strlen(r->headers[i].value) + 4;
	buf = malloc(need);
	if (!buf)
		return -1;
	start = p = buf + LWS_PRE;
	end = buf + need - 1;
	rc = lws_add_http_header_status(wsi, (unsigned)r->status, &p, end);
	if (!rc && !no_body)
		rc = add_hdr(wsi, "content-type:", ctype, &p, end);
	if (!rc && !no_body)
		rc = lws_add_http_header_content_length(wsi, body_len, &p, end);
	if (!rc)
		rc = add_hdr(wsi, "cache-control:", is_static ? "no-cache" : "no-store", &p, end);
	for (size_t i = 0; !rc && i < r->nheaders; i++)
		rc = add_hdr(wsi, r->headers[i].name, r->headers[i].value, &p, end);
	if (!rc && (t->close_hdr || t->close_after))
		rc = add_hdr(wsi, "connection:", "close", &p, end);
	if (!rc)
		rc = lws_finalize_write_http_header(wsi, start, &p, end);
	free(buf);
	if (rc) {
		hlog(h, "httpd %s: cannot write response headers for %s; closing the connection",
		     h->addr, t->ri.path ? t->ri.path : "?");
		return -1;
	}
	if (no_body || t->head_only || body_len == 0)
		return txn_finish(h, wsi, pss);
	t->sending = 1;
	lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)h->idle_s);
	lws_callback_on_writable(wsi);
	return 0;
}

static int respond(struct httpd *h, struct lws *wsi, struct pss *pss, int pass);

static int on_http_writeable(struct httpd *h, struct lws *wsi, struct pss *pss)
{
	unsigned char buf[LWS_PRE + WRITE_CHUNK];
	struct txn *t = pss ? pss->txn : NULL;
	size_t n;
	int last;

	if (!t)
		return 0;
	if (t->routed) {
		t->routed = 0;
		return respond(h, wsi, pss, t->pass);
	}
	if (!t->sending)
		return 0;
	if (t->fd >= 0) {
		ssize_t got;

		n = t->file_left < WRITE_CHUNK ? (size_t)t->file_left : WRITE_CHUNK;
		do
			got = read(t->fd, buf + LWS_PRE, n);
		while (got < 0 && errno == EINTR);
		if (got <= 0) {
			hlog(h, "httpd %s: reading %s failed (%s); closing the connection", h->addr,
			     t->ri.path, got < 0 ? strerror(errno) : "file shrank");
			return -1;
		}
		n = (size_t)got;
		t->file_left -= n;
		last = t->file_left == 0;
	} else {
		n = t->resp.body_len - t->body_off;
		if (n > WRITE_CHUNK)
			n = WRITE_CHUNK;
		memcpy(buf + LWS_PRE, t->resp.body + t->body_off, n);
		t->body_off += n;
		last = t->body_off == t->resp.body_len;
	}
	/* lws buffers what the socket does not take and holds further
	 * writable callbacks until it is flushed. */
	if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
	    (int)n)
		return -1;
	if (last)
		return txn_finish(h, wsi, pss);
	lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)h->idle_s);
	lws_callback_on_writable(wsi);
	return 0;
}

/* A small complete response written at once, for refusals where no
 * transaction exists (upgrade checks). Returns nonzero on failure. */
static int write_small(struct lws *wsi, int status, const char *msg)
{
	unsigned char buf[LWS_PRE + 1024];
	unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
	char body[256];
	int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", msg);

	if (n < 0 || (size_t)n >= sizeof(body))
		return 1;
	if (lws_add_http_header_status(wsi, (unsigned)status, &p, end) ||
	    add_hdr(wsi, "content-type:", "application/json", &p, end) ||
	    lws_add_http_header_content_length(wsi, (lws_filepos_t)n, &p, end) ||
	    add_hdr(wsi, "cache-control:", "no-store", &p, end) || lws_finalize_http_header(wsi, &p, end))
		return 1;
	if (end - p < n)
		return 1;
	memcpy(p, body, (size_t)n);
	p += n;
	return lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL) < (int)(p - start);
}

/* ---------- static files ---------- */

static const char *mime_type(const char *path)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ "html", "text/html; charset=utf-8" },
		{ "htm", "text/html; charset=utf-8" },
		{ "js", "text/javascript; charset=utf-8" },
		{ "mjs", "text/javascript; charset=utf-8" },
		{ "css", "text/css; charset=utf-8" },
		{ "json", "application/json" },
		{ "map", "application/json" },
		{ "webmanifest", "application/manifest+json" },
		{ "txt", "text/plain; charset=utf-8" },
		{ "xml", "application/xml" },
		{ "svg", "image/svg+xml" },
		{ "png", "image/png" },
		{ "jpg", "image/jpeg" },
		{ "jpeg", "image/jpeg" },
		{ "gif", "image/gif" },
		{ "webp", "image/webp" },
		{ "ico", "image/x-icon" },
		{ "woff", "font/woff" },
		{ "woff2", "font/woff2" },
		{ "ttf", "font/ttf" },
		{ "otf", "font/otf" },
		{ "wasm", "application/wasm" },
		{ "pdf", "application/pdf" },
	};
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash : path, '.');

	if (dot)
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (!strcasecmp(dot + 1, types[i].ext))
				return types[i].type;
	return "application/octet-stream";
}

/* Refuse paths httpd will not map to files: not absolute, a ".."
 * segment, or any segment starting with '.' (also hides .git, .env). */
static int static_path_ok(const char *path)
{
	if (path[0] != '/')
		return 0;
	for (const char *s = path; *s; s++)
		if (*s == '/' && s[1] == '.')
			return 0;
	return 1;
}

enum open_result { OPEN_FILE, OPEN_DIR, OPEN_NONE };

/* Open root + rel if its real path is inside root. On OPEN_FILE *fd, *size
 * and real (PATH_MAX) are set. */
static enum open_result open_under_root(struct httpd *h, const char *rel, int *fd,
					uint64_t *size, char *real)
{
	size_t rl = strlen(h->static_root);
	char full[PATH_MAX];
	struct stat st;
	int n;

	n = snprintf(full, sizeof(full), "%s%s", h->static_root, rel);
	if (n < 0 || (size_t)n >= sizeof(full) || !realpath(full, real))
		return OPEN_NONE;
	if (strncmp(real, h->static_root, rl) || (real[rl] != '/' && real[rl] != '\0'))
		return OPEN_NONE;
	/* O_NONBLOCK: opening a FIFO must not hang the service thread (it is
	 * refused below; regular files ignore the flag). */
	*fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (*fd < 0)
		return OPEN_NONE;
	if (fstat(*fd, &st) || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
		close(*fd);
		*fd = -1;
		return OPEN_NONE;
	}
	if (S_ISDIR(st.st_mode)) {
		close(*fd);
		*fd = -1;
		return OPEN_DIR;
	}
	*size = (uint64_t)st.st_size;
	return OPEN_FILE;
}

/* Answer a passed GET/HEAD from the static directory (or 404). */
static int serve_static(struct httpd *h, struct lws *wsi, struct pss *pss)
{
	struct txn *t = pss->txn;
	const char *path = t->ri.path;
	char real[PATH_MAX], rel[PATH_MAX];
	const char *last_seg;
	uint64_t size = 0;
	int fd = -1;
	enum open_result r = OPEN_NONE;

	if (static_path_ok(path)) {
		int n = snprintf(rel, sizeof(rel), "%s%s", path,
				 path[strlen(path) - 1] == '/' ? "index.html" : "");

		if (n > 0 && (size_t)n < sizeof(rel))
			r = open_under_root(h, rel, &fd, &size, real);
		if (r == OPEN_DIR) {
			n = snprintf(rel, sizeof(rel), "%s/index.html", path);
			r = (n > 0 && (size_t)n < sizeof(rel))
				    ? open_under_root(h, rel, &fd, &size, real)
				    : OPEN_NONE;
		}
		/* Client-side routes (/tenants/42) have no extension; a
		 * missing asset (/app.js) is a real 404. */
		last_seg = strrchr(path, '/');
		if (r != OPEN_FILE && !strchr(last_seg, '.'))
			r = open_under_root(h, "/index.html", &fd, &size, real);
	}
	if (r != OPEN_FILE) {
		resp_json_error(&t->resp, 404, "not found");
		return txn_start_response(h, wsi, pss, 0, t->resp.body_len);
	}
	resp_reset(&t->resp);
	if (httpd_response_content_type(&t->resp, mime_type(real))) {
		close(fd);
		return -1;
	}
	t->fd = fd;
	t->file_left = size;
	return txn_start_response(h, wsi, pss, 1, size);
}

/* ---------- HTTP requests ---------- */

enum route_result { ROUTE_ANSWER, ROUTE_STATIC, ROUTE_DEFER };

/* Run router (h->router, or h->fast_router on the service thread) on t
 * and leave the answer in t->resp. Runs on the service thread or a worker,
 * so it touches only t and what of h never changes after httpd_new. */
static enum route_result route_txn(struct httpd *h, struct txn *t, httpd_router_fn router)
{
	struct httpd_request req;
	int rc;

	if (t->body)
		t->body[t->body_len] = '\0';
	req_from_info(&req, &t->ri, t->body, t->body_len);
	resp_reset(&t->resp);
	rc = router(h->router_user, &req, &t->resp);
	if (rc == HTTPD_DEFER && router == h->fast_router)
		return ROUTE_DEFER; /* the body stays for the workers' router */
	free(t->body);
	t->body = NULL;
	t->body_len = t->body_cap = 0;
	if (rc == HTTPD_PASS) {
		if (h->static_root &&
		    (t->ri.method == LWSHUMETH_GET || t->ri.method == LWSHUMETH_HEAD))
			return ROUTE_STATIC;
		resp_json_error(&t->resp, 404, "not found");
	} else if (rc < 0) {
		hlog(h, "httpd %s: handler for %s %s failed: %s", h->addr, req.method, req.path,
		     kerr_strerror(rc));
		resp_json_error(&t->resp, 500, "internal error");
	} else if (rc != 0) {
		hlog(h, "httpd %s: handler for %s %s returned %d, neither 0, HTTPD_PASS nor a KERR code",
		     h->addr, req.method, req.path, rc);
		resp_json_error(&t->resp, 500, "internal error");
	}
	return ROUTE_ANSWER;
}

/* Send what route_txn left. Service thread. */
static int respond(struct httpd *h, struct lws *wsi, struct pss *pss, int pass)
{
	if (pass)
		return serve_static(h, wsi, pss);
	return txn_start_response(h, wsi, pss, 0, pss->txn->resp.body_len);
}

/* The request is complete: answer it here, or hand it to the workers. */
static int dispatch(struct httpd *h, struct lws *wsi, struct pss *pss)
{
	struct txn *t = pss->txn;

	if (!h->nworkers)
		return respond(h, wsi, pss, route_txn(h, t, h->router) == ROUTE_STATIC);
	if (h->fast_router) {
		enum route_result r = route_txn(h, t, h->fast_router);

		if (r != ROUTE_DEFER)
			return respond(h, wsi, pss, r == ROUTE_STATIC);
	}
	t->wsi = wsi;
	pthread_mutex_lock(&h->job_lock);
	t->job = JOB_QUEUED;
	if (h->jobs_tail)
		h->jobs_tail->job_next = t;
	else
		h->jobs = t;
	h->jobs_tail = t;
	pthread_cond_signal(&h->job_cond);
	pthread_mutex_unlock(&h->job_lock);
	/* A handler stuck longer than this (a database that never answers)
	 * loses its connection rather than holding it forever. */
	lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)h->idle_s);
	return 0;
}

static void *worker_main(void *arg)
{
	struct httpd *h = arg;

	pthread_mutex_lock(&h->job_lock);
	for (;;) {
		struct txn *t;

		while (!h->workers_stop && !h->jobs)
			pthread_cond_wait(&h->job_cond, &h->job_lock);
		if (h->workers_stop)
			break;
		t = h->jobs;
		h->jobs = t->job_next;
		if (!h->jobs)
			h->jobs_tail = NULL;
		t->job_next = NULL;
		if (!t->orphaned) {
			pthread_mutex_unlock(&h->job_lock);
			t->pass = route_txn(h, t, h->router) == ROUTE_STATIC;
			pthread_mutex_lock(&h->job_lock);
		}
		if (t->orphaned) {
			txn_free(t);
			continue;
		}
		t->job = JOB_DONE;
		t->job_next = h->done;
		h->done = t;
		/* Under job_lock, which httpd_destroy takes after joining the
		 * workers: the context is alive. */
		lws_cancel_service(h->ctx);
	}
	pthread_mutex_unlock(&h->job_lock);
	return NULL;
}

/* Woken by lws_cancel_service: ask for a writable callback on each
 * connection whose answer a worker finished; free the orphans. */
static void jobs_collect(struct httpd *h)
{
	struct txn *t, *next;

	if (!h->nworkers)
		return;
	pthread_mutex_lock(&h->job_lock);
	t = h->done;
	h->done = NULL;
	for (; t; t = next) {
		next = t->job_next;
		t->job_next = NULL;
		if (t->orphaned) {
			txn_free(t);
			continue;
		}
		t->job = JOB_NONE;
		t->routed = 1;
		lws_callback_on_writable(t->wsi);
	}
	pthread_mutex_unlock(&h->job_lock);
}

/* Content-Length as a number; -1 if malformed, UINT64_MAX if too big. */
static int parse_length(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (UINT64_MAX - 9) / 10) {
			*out = UINT64_MAX;
			return 0;
		}
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* Answer now with a JSON error, before or instead of reading a body. */
static int answer_early(struct httpd *h, struct lws *wsi, struct pss *pss, int status,
			const char *msg, int close_after)
{
	struct txn *t = pss->txn;

	t->ignore_body = 1;
	t->close_hdr = 1;
	t->close_after = close_after;
	resp_json_error(&t->resp, status, msg);
	return txn_start_response(h, wsi, pss, 0, t->resp.body_len);
}

static int on_http(struct httpd *h, struct lws *wsi, struct pss *pss, const char *in, size_t len)
{
	char *uri = NULL, clbuf[32], expect[32];
	int uri_len = 0, meth, has_cl, has_te;
	uint64_t cl = 0;
	struct txn *t;

	if (!pss)
		return -1;
	pss_txn_release(h, pss);
	meth = lws_http_get_uri_and_method(wsi, &uri, &uri_len);
	t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	t->fd = -1;
	t->resp.status = 200;
	pss->txn = t;
	/* Not a method httpd serves: answer and hang up rather than guess
	 * where this request's body ends. */
	if (meth < 0 || meth >= (int)(sizeof(method_names) / sizeof(method_names[0])) ||
	    !method_names[meth] || meth == LWSHUMETH_CONNECT)
		return answer_early(h, wsi, pss, 405, "method not allowed", 1);
	if (req_info_fill(&t->ri, wsi, meth, in, len))
		return -1;
	t->head_only = meth == LWSHUMETH_HEAD;

	has_cl = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
	has_te = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
	/* lws 4.1 cannot read a chunked request body. */
	if (has_te)
		return answer_early(h, wsi, pss, 411, "send the body with a Content-Length", 1);
	if (has_cl && (lws_hdr_copy(wsi, clbuf, sizeof(clbuf), WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0 ||
		       parse_length(clbuf, &cl) < 0))
		return answer_early(h, wsi, pss, 400, "malformed Content-Length", 1);
	if (has_cl && cl > h->max_body) {
		char msg[96];

		/* lws discards the body that still arrives after this response
		 * (a client that sent Expect: 100-continue never sends it), so
		 * the response reaches clients that are still uploading instead
		 * of a reset; Connection: close stops them reusing the
		 * connection meanwhile. */
		snprintf(msg, sizeof(msg), "request body larger than %zu bytes", h->max_body);
		return answer_early(h, wsi, pss, 413, msg, 0);
	}
	if (!has_cl) {
		/* No body. lws expects one for POST/PUT/PATCH anyway and would
		 * read the next request as body, so such a connection is closed
		 * after the response. */
		t->ignore_body = 1;
		if (meth == LWSHUMETH_POST || meth == LWSHUMETH_PUT || meth == LWSHUMETH_PATCH)
			t->close_after = 1;
		return dispatch(h, wsi, pss);
	}
	if (cl == 0) {
		/* lws calls HTTP_BODY_COMPLETION itself for "POST with
		 * Content-Length: 0", and for nothing else. */
		if (meth == LWSHUMETH_POST)
			return 0;
		t->ignore_body = 1;
		return dispatch(h, wsi, pss);
	}
	if (lws_hdr_copy(wsi, expect, sizeof(expect), WSI_TOKEN_HTTP_EXPECT) > 0 &&
	    !strcasecmp(expect, "100-continue")) {
		/* lws does not answer Expect itself; without this, curl waits a
		 * second before sending a large body. */
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		unsigned char buf[LWS_PRE + sizeof(cont)];

		memcpy(buf + LWS_PRE, cont, sizeof(cont) - 1);
		if (lws_write(wsi, buf + LWS_PRE, sizeof(cont) - 1, LWS_WRITE_HTTP) <
		    (int)sizeof(cont) - 1)
			return -1;
	}
	return 0;
}

static int on_http_body(struct httpd *h, struct pss *pss, const void *in, size_t len)
{
	struct txn *t = pss ? pss->txn : NULL;

	if (!t || t->ignore_body || !len)
		return 0;
	if (t->body_len + len > h->max_body)
		return -1; /* cannot happen: Content-Length was checked */
	if (t->body_len + len + 1 > t->body_cap) {
		size_t cap = t->body_cap ? t->body_cap : BODY_FIRST_ALLOC;
		unsigned char *b;

		while (cap < t->body_len + len + 1)
			cap *= 2;
		if (cap > h->max_body + 1)
			cap = h->max_body + 1;
		b = realloc(t->body, cap);
		if (!b)
			return -1;
		t->body = b;
		t->body_cap = cap;
	}
	memcpy(t->body + t->body_len, in, len);
	t->body_len += len;
	return 0;
}

static int on_http_body_done(struct httpd *h, struct lws *wsi, struct pss *pss)
{
	struct txn *t = pss ? pss->txn : NULL;

	if (!t || t->ignore_body || t->sending)
		return 0;
	t->ignore_body = 1;
	return dispatch(h, wsi, pss);
}

/* ---------- websocket ---------- */

/* Default origin check: no Origin (not a browser), or the same host[:port]
 * as the Host header. */
static int same_origin(const char *origin, const char *host)
{
	const char *o;

	if (!origin)
		return 1;
	if (!host)
		return 0;
	if (!strncasecmp(origin, "http://", 7))
		o = origin + 7;
	else if (!strncasecmp(origin, "https://", 8))
		o = origin + 8;
	else
		return 0;
	return !strcasecmp(o, host);
}

static int on_confirm_upgrade(struct httpd *h, struct lws *wsi, const char *up)
{
	char *uri = NULL, *origin, *host;
	int uri_len = 0, ok, oom = 0;
	int meth = lws_http_get_uri_and_method(wsi, &uri, &uri_len);

	if (!up || strcasecmp(up, "websocket"))
		return write_small(wsi, 400, "only websocket upgrades are supported") ? -1 : 1;
	if (meth != LWSHUMETH_GET || !h->ws_path || (size_t)uri_len != strlen(h->ws_path) ||
	    memcmp(uri, h->ws_path, (size_t)uri_len))
		return write_small(wsi, 404, "no websocket endpoint here") ? -1 : 1;
	if (atomic_load(&h->stop))
		return write_small(wsi, 503, "shutting down") ? -1 : 1;
	origin = hdr_dup(wsi, WSI_TOKEN_ORIGIN, &oom);
	host = hdr_dup(wsi, WSI_TOKEN_HOST, &oom);
	if (oom)
		ok = -1;
	else if (h->ws.origin_ok)
		ok = h->ws.origin_ok(h->ws.user, origin, host) != 0;
	else
		ok = same_origin(origin, host);
	free(origin);
	free(host);
	if (ok < 0)
		return -1;
	if (!ok)
		return write_small(wsi, 403, "origin not allowed") ? -1 : 1;
	return 0;
}

static void msg_unref(struct ws_msg *m)
{
	if (--m->refs == 0)
		free(m);
}

/* Unlink and free c (service thread). */
static void ws_release(struct httpd *h, struct pss *pss)
{
	struct ws_conn *c = pss ? pss->conn : NULL;

	if (!c)
		return;
	pss->conn = NULL;
	pthread_mutex_lock(&h->ws_lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	while (c->q_len) {
		msg_unref(c->q[c->q_head]);
		c->q_head = (c->q_head + 1) % h->ws_queue_max;
		c->q_len--;
	}
	pthread_mutex_unlock(&h->ws_lock);
	if (c->opened && h->ws.on_close)
		h->ws.on_close(h->ws.user, c->id);
	free(c->q);
	free(c->rx);
	free(c);
}

static int ws_on_established(struct httpd *h, struct lws *wsi, struct pss *pss)
{
	struct ws_conn *c;
	struct req_info ri;
	char *uri = NULL;
	int uri_len = 0, meth;

	if (!pss)
		return -1;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	c->q = calloc(h->ws_queue_max, sizeof(*c->q));
	if (!c->q) {
		free(c);
		return -1;
	}
	c->wsi = wsi;
	pthread_mutex_lock(&h->ws_lock);
	if (h->ws_closed) {
		pthread_mutex_unlock(&h->ws_lock);
		free(c->q);
		free(c);
		return -1;
	}
	c->id = ++h->next_id;
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	pthread_mutex_unlock(&h->ws_lock);
	pss->conn = c;

	meth = lws_http_get_uri_and_method(wsi, &uri, &uri_len);
	if (meth < 0 || req_info_fill(&ri, wsi, LWSHUMETH_GET, uri, (size_t)uri_len)) {
		c->refused = 1;
	} else {
		struct httpd_request req;

		const char *why = NULL;

		req_from_info(&req, &ri, NULL, 0);
		if (h->ws.on_open && h->ws.on_open(h->ws.user, c->id, &req, &why)) {
			c->refused = 1;
			if (why)
				snprintf(c->refuse_reason, sizeof(c->refuse_reason), "%s", why);
		}
		else
			c->opened = 1;
		req_info_free(&ri);
	}
	/* A refused connection is closed from its writable callback, the
	 * path on which lws sends the close frame and then CLOSED. */
	if (c->refused)
		lws_callback_on_writable(wsi);
	return 0;
}

static int ws_on_receive(struct httpd *h, struct lws *wsi, struct pss *pss, const void *in,
			 size_t len)
{
	struct ws_conn *c = pss ? pss->conn : NULL;

	if (!c)
		return -1;
	if (!c->rx_in_msg) {
		c->rx_in_msg = 1;
		c->rx_len = 0;
		c->rx_binary = lws_frame_is_binary(wsi);
	}
	if (c->rx_len + len > h->ws_max_message) {
		static const char why[] = "message too large";

		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why,
				 sizeof(why) - 1);
		return -1;
	}
	if (c->rx_len + len + 1 > c->rx_cap) {
		size_t cap = c->rx_cap ? c->rx_cap : 1024;
		unsigned char *b;

		while (cap < c->rx_len + len + 1)
			cap *= 2;
		b = realloc(c->rx, cap);
		if (!b)
			return -1;
		c->rx = b;
		c->rx_cap = cap;
	}
	if (len)
		memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
		c->rx_in_msg = 0;
		c->rx[c->rx_len] = '\0';
		if (c->opened && h->ws.on_message)
			h->ws.on_message(h->ws.user, c->id, c->rx, c->rx_len, c->rx_binary);
	}
	return 0;
}

static int ws_on_writeable(struct httpd *h, struct lws *wsi, struct pss *pss)
{
	struct ws_conn *c = pss ? pss->conn : NULL;
	struct ws_msg *m = NULL;
	int more, n;
	size_t len;

	if (!c)
		return -1;
	pthread_mutex_lock(&h->ws_lock);
	if (c->overflow || c->refused) {
		int ovf = c->overflow;
		const char *why = ovf ? "send queue full" : *c->refuse_reason ? c->refuse_reason : "refused";

		pthread_mutex_unlock(&h->ws_lock);
		if (ovf)
			hlog(h, "httpd %s: websocket connection %llu too slow: its send queue "
				"(%zu messages) filled up; closing it with 1008",
			     h->addr, (unsigned long long)c->id, h->ws_queue_max);
		lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)why, strlen(why));
		return -1;
	}
	if (c->q_len) {
		m = c->q[c->q_head];
		c->q[c->q_head] = NULL;
		c->q_head = (c->q_head + 1) % h->ws_queue_max;
		c->q_len--;
	}
	more = c->q_len > 0;
	pthread_mutex_unlock(&h->ws_lock);
	if (!m)
		return 0;
	len = m->len;
	n = lws_write(wsi, m->buf + LWS_PRE, len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
	pthread_mutex_lock(&h->ws_lock);
	msg_unref(m);
	pthread_mutex_unlock(&h->ws_lock);
	if (n < (int)len)
		return -1;
	if (more)
		lws_callback_on_writable(wsi);
	return 0;
}

/* Woken by lws_cancel_service: ask for writable callbacks where pushers
 * queued messages, and bound how long a dropped consumer may linger. */
static void ws_service_queues(struct httpd *h)
{
	pthread_mutex_lock(&h->ws_lock);
	for (struct ws_conn *c = h->conns; c; c = c->next) {
		if (c->q_len || c->overflow)
			lws_callback_on_writable(c->wsi);
		if (c->overflow && !c->drop_armed) {
			c->drop_armed = 1;
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, WS_DROP_GRACE_S);
		}
	}
	pthread_mutex_unlock(&h->ws_lock);
}

static int ws_push(struct httpd *h, int all, uint64_t id, const void *data, size_t len,
		   int binary, struct kerr *e)
{
	struct ws_msg *m;
	int queued = 0, found = 0, full = 0;

	if (len > h->ws_max_message)
		return kerr_set(e, KERR_TOO_LARGE,
				"websocket message of %zu bytes is larger than the %zu-byte limit "
				"(ws.max_message)",
				len, h->ws_max_message);
	m = malloc(sizeof(*m) + LWS_PRE + len);
	if (!m)
		return kerr_set(e, KERR_NOMEM, "out of memory queueing a websocket message");
	m->refs = 0;
	m->len = len;
	m->binary = binary != 0;
	if (len)
		memcpy(m->buf + LWS_PRE, data, len);

	pthread_mutex_lock(&h->ws_lock);
	if (h->ws_closed) {
		pthread_mutex_unlock(&h->ws_lock);
		free(m);
		return kerr_set(e, KERR_CLOSED, "httpd %s is stopped%s", h->addr,
				h->ws_path ? "" : " or has no websocket endpoint (ws.path)");
	}
	for (struct ws_conn *c = h->conns; c; c = c->next) {
		if (!all && c->id != id)
			continue;
		found = 1;
		if (c->overflow || c->refused) {
			full = c->overflow;
		} else if (c->q_len == h->ws_queue_max) {
			c->overflow = 1;
			full = 1;
		} else {
			c->q[(c->q_head + c->q_len) % h->ws_queue_max] = m;
			c->q_len++;
			m->refs++;
			queued++;
		}
		if (!all)
			break;
	}
	/* Woken under the lock so that httpd_free (which takes it before
	 * destroying the context) cannot run in between. */
	if (queued || full)
		lws_cancel_service(h->ctx);
	if (!queued)
		free(m);
	pthread_mutex_unlock(&h->ws_lock);
	if (all)
		return queued;
	if (!found)
		return kerr_set(e, KERR_NOT_FOUND, "websocket connection %llu is not open",
				(unsigned long long)id);
	if (full)
		return kerr_set(e, KERR_TOO_MANY_REQUESTS,
				"websocket connection %llu is too slow: its send queue (%zu messages) "
				"is full, so it is being closed",
				(unsigned long long)id, h->ws_queue_max);
	return queued ? 0 : kerr_set(e, KERR_CLOSED, "websocket connection %llu is closing",
				      (unsigned long long)id);
}

int httpd_ws_send(struct httpd *h, uint64_t conn, const void *data, size_t len, int binary,
		  struct kerr *e)
{
	if (!h || (!data && len))
		return kerr_set(e, KERR_INVAL, "httpd_ws_send: NULL server or data");
	return ws_push(h, 0, conn, data, len, binary, e);
}

int httpd_ws_broadcast(struct httpd *h, const void *data, size_t len, int binary, struct kerr *e)
{
	if (!h || (!data && len))
		return kerr_set(e, KERR_INVAL, "httpd_ws_broadcast: NULL server or data");
	return ws_push(h, 1, 0, data, len, binary, e);
}

/* ---------- the lws callback ---------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	struct httpd *h = lws_context_user(lws_get_context(wsi));
	struct pss *pss = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return on_http(h, wsi, pss, in, len);
	case LWS_CALLBACK_HTTP_BODY:
		return on_http_body(h, pss, in, len);
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return on_http_body_done(h, wsi, pss);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return on_http_writeable(h, wsi, pss);
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		pss_txn_release(h, pss);
		return 0;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return on_confirm_upgrade(h, wsi, in);
	case LWS_CALLBACK_ESTABLISHED:
		return ws_on_established(h, wsi, pss);
	case LWS_CALLBACK_RECEIVE:
		return ws_on_receive(h, wsi, pss, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return ws_on_writeable(h, wsi, pss);
	case LWS_CALLBACK_CLOSED:
	case LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL:
		ws_release(h, pss);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		jobs_collect(h);
		ws_service_queues(h);
		return 0;
	default:
		return 0;
	}
}

/* ---------- lifecycle ---------- */

static pthread_once_t lws_log_once = PTHREAD_ONCE_INIT;

static void lws_log_init(void)
{
	/* lws's default also prints notices (a dozen lines per context). */
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
}

/* Split "host:port" / "[v6]:port". KERR_CONFIG with a message. */
static int parse_addr(const char *addr, char **host, int *port, int *is_v6, struct kerr *e)
{
	const char *colon, *hs, *he;
	struct in6_addr a6;
	struct in_addr a4;
	char *p;
	uint64_t v;

	if (addr[0] == '[') {
		he = strchr(addr, ']');
		if (!he || he[1] != ':')
			goto bad;
		hs = addr + 1;
		colon = he + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			goto bad;
		hs = addr;
		he = colon;
	}
	if (he == hs)
		return kerr_set(e, KERR_CONFIG,
				"listen address \"%s\" has no host: use 0.0.0.0:PORT for every "
				"interface or 127.0.0.1:PORT for this machine only",
				addr);
	if (parse_length(colon + 1, &v) < 0 || v > 65535)
		return kerr_set(e, KERR_CONFIG,
				"listen address \"%s\" has a bad port: want 0..65535 after the last ':'",
				addr);
	p = dup_n(hs, (size_t)(he - hs));
	if (!p)
		return kerr_set(e, KERR_NOMEM, "out of memory");
	if (!strcmp(p, "localhost")) {
		free(p);
		p = strdup("127.0.0.1");
		if (!p)
			return kerr_set(e, KERR_NOMEM, "out of memory");
	}
	if (inet_pton(AF_INET, p, &a4) == 1) {
		*is_v6 = 0;
	} else if (addr[0] == '[' && inet_pton(AF_INET6, p, &a6) == 1) {
		*is_v6 = 1;
	} else {
		free(p);
		return kerr_set(e, KERR_CONFIG,
				"listen address \"%s\": the host must be an IPv4 literal, "
				"\"localhost\" or a bracketed IPv6 literal such as [::1]:8080",
				addr);
	}
	*host = p;
	*port = (int)v;
	return 0;
bad:
	return kerr_set(e, KERR_CONFIG,
			"listen address \"%s\" is not host:port (e.g. 127.0.0.1:8080 or [::1]:8080)",
			addr);
}

/* Why could lws not listen? Bind a probe socket the way lws does and
 * report its errno; 0 if the probe binds (then the cause was elsewhere). */
static int probe_bind(const char *host, int port, int is_v6)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1, err = 0;

	memset(&ss, 0, sizeof(ss));
	if (is_v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return EINVAL;
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return EINVAL;
		sl = sizeof(*s4);
	}
	fd = socket(is_v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&ss, sl))
		err = errno;
	close(fd);
	return err;
}

static int listen_error(struct httpd *h, int is_v6, struct kerr *e)
{
	int err = probe_bind(h->host, h->port, is_v6);

	switch (err) {
	case 0:
		break;
	case EADDRINUSE:
		return kerr_set(e, KERR_IO,
				"cannot listen on %s: the address is already in use (another "
				"nimbus-operator or another program listens there); stop it or "
				"configure another port",
				h->addr);
	case EADDRNOTAVAIL:
		return kerr_set(e, KERR_IO,
				"cannot listen on %s: %s is not an address of this machine; use one of "
				"its addresses, or 0.0.0.0 for every interface",
				h->addr, h->host);
	case EACCES:
		return kerr_set(e, KERR_IO,
				"cannot listen on %s: permission denied (ports below 1024 need "
				"CAP_NET_BIND_SERVICE); use a port of 1024 or more",
				h->addr);
	default:
		return kerr_set(e, KERR_IO, "cannot listen on %s: %s", h->addr, strerror(err));
	}
	if (h->tls_cert)
		return kerr_set(e, KERR_TLS,
				"cannot serve HTTPS on %s: the certificate %s or key %s did not load "
				"(they must be PEM, the key unencrypted and matching the certificate)",
				h->addr, h->tls_cert, h->tls_key);
	return kerr_set(e, KERR_IO,
			"cannot listen on %s: libwebsockets refused the listener (its log on "
			"stderr says why)",
			h->addr);
}

static int check_readable(const char *what, const char *path, struct kerr *e)
{
	FILE *f = fopen(path, "r");

	if (!f)
		return kerr_set(e, KERR_TLS, "cannot read the TLS %s %s: %s", what, path,
				strerror(errno));
	fclose(f);
	return 0;
}

/* Stop the workers once the handlers they are running return. */
static void workers_join(struct httpd *h)
{
	pthread_mutex_lock(&h->job_lock);
	h->workers_stop = 1;
	pthread_cond_broadcast(&h->job_cond);
	pthread_mutex_unlock(&h->job_lock);
	for (unsigned i = 0; i < h->workers_started; i++)
		pthread_join(h->workers[i], NULL);
	h->workers_started = 0;
}

static void txn_list_free(struct txn *t)
{
	while (t) {
		struct txn *next = t->job_next;

		txn_free(t);
		t = next;
	}
}

static void httpd_destroy(struct httpd *h)
{
	workers_join(h);
	if (h->ctx) {
		/* Closes every connection through the callback, which frees
		 * their transactions and websocket state, and orphans those
		 * still on the job lists. */
		lws_context_destroy(h->ctx);
		h->ctx = NULL;
	}
	txn_list_free(h->jobs);
	txn_list_free(h->done);
	free(h->workers);
	pthread_cond_destroy(&h->job_cond);
	pthread_mutex_destroy(&h->job_lock);
	pthread_mutex_destroy(&h->ws_lock);
	free(h->addr);
	free(h->host);
	free(h->tls_cert);
	free(h->tls_key);
	free(h->static_root);
	free(h->ws_path);
	free(h);
}

int httpd_new(struct httpd **out, const struct httpd_opts *opts, struct kerr *e)
{
	struct lws_context_creation_info ci;
	struct httpd *h;
	int is_v6 = 0, rc;
	uint64_t v6opt;

	if (!out || !opts)
		return kerr_set(e, KERR_INVAL, "httpd_new: NULL argument");
	*out = NULL;
	if (!opts->addr || !opts->router)
		return kerr_set(e, KERR_CONFIG, "httpd_new: addr and router are required");
	if (!opts->tls_cert != !opts->tls_key)
		return kerr_set(e, KERR_CONFIG,
				"httpd %s: set both the TLS certificate and key, or neither",
				opts->addr);
	if (opts->idle_timeout_s > MAX_IDLE_S)
		return kerr_set(e, KERR_CONFIG, "httpd %s: idle timeout %u s is above %u s",
				opts->addr, opts->idle_timeout_s, MAX_IDLE_S);
	if (opts->workers > HTTPD_MAX_WORKERS)
		return kerr_set(e, KERR_CONFIG, "httpd %s: %u workers is above %u", opts->addr,
				opts->workers, HTTPD_MAX_WORKERS);
	if (opts->ws.path && opts->ws.path[0] != '/')
		return kerr_set(e, KERR_CONFIG,
				"httpd %s: websocket path \"%s\" must start with '/'", opts->addr,
				opts->ws.path);
	pthread_once(&lws_log_once, lws_log_init);

	h = calloc(1, sizeof(*h));
	if (!h)
		return kerr_set(e, KERR_NOMEM, "out of memory");
	if (pthread_mutex_init(&h->ws_lock, NULL)) {
		free(h);
		return kerr_set(e, KERR_NOMEM, "cannot create a mutex");
	}
	if (pthread_mutex_init(&h->job_lock, NULL)) {
		pthread_mutex_destroy(&h->ws_lock);
		free(h);
		return kerr_set(e, KERR_NOMEM, "cannot create a mutex");
	}
	if (pthread_cond_init(&h->job_cond, NULL)) {
		pthread_mutex_destroy(&h->job_lock);
		pthread_mutex_destroy(&h->ws_lock);
		free(h);
		return kerr_set(e, KERR_NOMEM, "cannot create a condition variable");
	}
	h->addr = strdup(opts->addr);
	h->tls_cert = xstrdup(opts->tls_cert);
	h->tls_key = xstrdup(opts->tls_key);
	h->ws_path = xstrdup(opts->ws.path);
	if (!h->addr || (opts->tls_cert && (!h->tls_cert || !h->tls_key)) ||
	    (opts->ws.path && !h->ws_path)) {
		rc = kerr_set(e, KERR_NOMEM, "out of memory");
		goto err;
	}
	rc = parse_addr(opts->addr, &h->host, &h->port, &is_v6, e);
	if (rc)
		goto err;
	if (opts->static_dir) {
		struct stat st;

		h->static_root = realpath(opts->static_dir, NULL);
		if (!h->static_root || stat(h->static_root, &st) || !S_ISDIR(st.st_mode)) {
			rc = kerr_set(e, KERR_CONFIG,
				      "httpd %s: static directory %s: %s", opts->addr,
				      opts->static_dir,
				      h->static_root ? "not a directory" : strerror(errno));
			goto err;
		}
	}
	if (h->tls_cert && ((rc = check_readable("certificate", h->tls_cert, e)) ||
			    (rc = check_readable("key", h->tls_key, e))))
		goto err;

	h->max_body = opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
	h->idle_s = opts->idle_timeout_s ? opts->idle_timeout_s : DEFAULT_IDLE_S;
	h->router = opts->router;
	h->fast_router = opts->workers ? opts->fast_router : NULL;
	h->router_user = opts->router_user;
	h->log = opts->log;
	h->log_user = opts->log_user;
	h->ws = opts->ws;
	h->ws.path = h->ws_path;
	h->ws_queue_max = opts->ws.queue_max ? opts->ws.queue_max : DEFAULT_WS_QUEUE;
	h->ws_max_message = opts->ws.max_message ? opts->ws.max_message : DEFAULT_WS_MAX_MESSAGE;
	h->ws_closed = h->ws_path == NULL;

	h->protocols[0].name = "nimbus";
	h->protocols[0].callback = callback;
	h->protocols[0].per_session_data_size = sizeof(struct pss);
	/* Left at 0, lws sends at most its 4 KiB rx buffer per send() and
	 * buffers the rest of each write, a poll round per 4 KiB. */
	h->protocols[0].tx_packet_size = WRITE_CHUNK;
	/* hdrs[] is a linked list lws walks for every response. */
	h->hdrs[0] = (struct lws_protocol_vhost_options){ &h->hdrs[1], NULL,
							  "x-content-type-options:", "nosniff" };
	h->hdrs[1] = (struct lws_protocol_vhost_options){ &h->hdrs[2], NULL,
							  "x-frame-options:", "DENY" };
	h->hdrs[2] = (struct lws_protocol_vhost_options){ NULL, NULL, "referrer-policy:",
							  "no-referrer" };
	h->retry.secs_since_valid_ping = (uint16_t)h->idle_s;
	h->retry.secs_since_valid_hangup = (uint16_t)(h->idle_s + WS_PONG_WAIT_S);

	/* An IPv4 literal must go to an AF_INET socket: given an IPv6
	 * socket, lws 4.1 parses it into the wrong sockaddr and binds every
	 * interface. */
	v6opt = is_v6 ? 0 : LWS_SERVER_OPTION_DISABLE_IPV6;
	memset(&ci, 0, sizeof(ci));
	ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | v6opt |
		     (h->tls_cert ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0);
	ci.user = h;
	ci.server_string = "nimbus";
	ci.max_http_header_data = MAX_HEADER_BYTES;
	ci.fd_limit_per_thread = FD_LIMIT;
	ci.timeout_secs = h->idle_s;
	h->ctx = lws_create_context(&ci);
	if (!h->ctx) {
		rc = kerr_set(e, KERR_IO, "httpd %s: cannot create the libwebsockets context",
			      h->addr);
		goto err;
	}

	memset(&ci, 0, sizeof(ci));
	ci.options = v6opt | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
		     LWS_SERVER_OPTION_VALIDATE_UTF8 |
		     (h->tls_cert ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0);
	ci.vhost_name = "nimbus";
	ci.iface = h->host;
	ci.port = h->port;
	ci.protocols = h->protocols;
	ci.headers = &h->hdrs[0];
	ci.keepalive_timeout = (int)h->idle_s;
	ci.timeout_secs = h->idle_s;
	ci.timeout_secs_ah_idle = h->idle_s;
	ci.retry_and_idle_policy = &h->retry;
	ci.user = h;
	if (h->tls_cert) {
		ci.ssl_cert_filepath = h->tls_cert;
		ci.ssl_private_key_filepath = h->tls_key;
		ci.alpn = "http/1.1";
	}
	h->vh = lws_create_vhost(h->ctx, &ci);
	if (!h->vh || lws_get_vhost_listen_port(h->vh) <= 0) {
		rc = listen_error(h, is_v6, e);
		goto err;
	}
	h->port = lws_get_vhost_listen_port(h->vh);
	if (opts->workers) {
		h->workers = calloc(opts->workers, sizeof(*h->workers));
		if (!h->workers) {
			rc = kerr_set(e, KERR_NOMEM, "out of memory");
			goto err;
		}
		h->nworkers = opts->workers;
		for (unsigned i = 0; i < h->nworkers; i++) {
			int err = pthread_create(&h->workers[i], NULL, worker_main, h);

			if (err) {
				rc = kerr_set(e, KERR_IO, "httpd %s: cannot start worker thread %u: %s",
					      h->addr, i + 1, strerror(err));
				goto err;
			}
			h->workers_started++;
		}
	}
	*out = h;
	return 0;
err:
	httpd_destroy(h);
	return rc;
}

int httpd_port(const struct httpd *h)
{
	return h ? h->port : 0;
}

int httpd_run(struct httpd *h, struct kerr *e)
{
	int expected = 0;

	if (!h)
		return kerr_set(e, KERR_INVAL, "httpd_run: NULL server");
	if (!atomic_compare_exchange_strong(&h->state, &expected, 1))
		return kerr_set(e, KERR_INVAL, "httpd %s: already running or finished", h->addr);
	while (!atomic_load(&h->stop)) {
		/* The timeout is ignored by lws 4.1: it sleeps until the next
		 * event, timer or lws_cancel_service. */
		if (lws_service(h->ctx, 0) < 0) {
			atomic_store(&h->state, 2);
			return kerr_set(e, KERR_IO, "httpd %s: the libwebsockets service loop failed",
					h->addr);
		}
	}
	atomic_store(&h->state, 2);
	return 0;
}

static void *run_thread(void *arg)
{
	struct httpd *h = arg;
	struct kerr e = { 0 };

	if (httpd_run(h, &e))
		hlog(h, "%s", e.message);
	return NULL;
}

int httpd_start(struct httpd *h, struct kerr *e)
{
	int rc;

	if (!h)
		return kerr_set(e, KERR_INVAL, "httpd_start: NULL server");
	if (h->thread_started || atomic_load(&h->state) != 0)
		return kerr_set(e, KERR_INVAL, "httpd %s: already running or finished", h->addr);
	rc = pthread_create(&h->thread, NULL, run_thread, h);
	if (rc)
		return kerr_set(e, KERR_IO, "httpd %s: cannot start the service thread: %s",
				h->addr, strerror(rc));
	h->thread_started = 1;
	return 0;
}

void httpd_stop(struct httpd *h)
{
	if (!h)
		return;
	atomic_store(&h->stop, 1);
	pthread_mutex_lock(&h->ws_lock);
	h->ws_closed = 1;
	lws_cancel_service(h->ctx);
	pthread_mutex_unlock(&h->ws_lock);
}

void httpd_free(struct httpd *h)
{
	if (!h)
		return;
	httpd_stop(h);
	if (h->thread_started)
		pthread_join(h->thread, NULL);
	httpd_destroy(h);
}
