/*
 * httpd: the HTTP(S) and WebSocket server of nimbus-operator, on
 * libwebsockets 4.1.
 *
 * Contract
 * - One struct httpd is one listening address: one lws context with one
 *   vhost, served by one thread. Run one per address (API on :8080,
 *   metrics on :9090, health on :9091). Each costs a thread and a few fds,
 *   and a slow handler on one never delays the others (a health probe is
 *   never stuck behind an API request).
 * - Lifecycle: httpd_new (binds, so a port conflict fails here) ->
 *   httpd_run on a thread of yours, or httpd_start -> httpd_stop from any
 *   thread -> httpd_free. httpd_run returns once after httpd_stop; the
 *   server cannot be restarted.
 * - Protocol: HTTP/1.1 with keep-alive (HTTP/1.0 is answered and closed).
 *   HTTP/2 is not offered (TLS ALPN says http/1.1; an h2c upgrade gets 400),
 *   so a request is one connection's turn and responses carry
 *   Content-Length.
 * - Requests: the router is called once the whole body is in memory. A Content-Length above max_body is answered 413
 *   (with Connection: close) before any body is read: clients sending
 *   Expect: 100-continue never send it, and a body already on its way is
 *   read and discarded so that the client sees the 413. A body without
 *   Content-Length (chunked) gets 411 and a malformed Content-Length 400;
 *   POST, PUT and PATCH without either header have an empty body and
 *   their connection is closed after the response (lws cannot tell where
 *   the next request starts). Expect: 100-continue is answered.
 * - Where the router runs (opts.workers):
 *   - 0: on the service thread, which serves every connection of this
 *     httpd; the router must then never block (the probe and metrics
 *     servers, whose answers are in memory).
 *   - N > 0: on a pool of N worker threads, several requests at once, so
 *     the router may block on a database or the apiserver and must be
 *     thread-safe. The service thread only reads requests and writes
 *     responses: a slow handler delays neither other connections nor
 *     websocket traffic, only requests queued behind N slow ones. The
 *     request and response belong to the worker during the call and go
 *     back to the service thread after it (lws_cancel_service). A handler
 *     still running idle_timeout_s after the request arrived loses its
 *     connection: its answer is dropped, and a request still queued then
 *     is never routed. httpd_free waits for running handlers to return.
 *     opts.fast_router, when set, sees each request first on the service
 *     thread and answers what needs no waiting, sparing it the hand-off.
 * - Routing: the router answers, or returns HTTPD_PASS. A passed GET or
 *   HEAD is served from static_dir when one is set, otherwise 404. Static:
 *   a regular file under the directory is served with a Content-Type from
 *   its extension; a missing path whose last segment has no '.' gets
 *   index.html (client-side routes of the dashboard); other misses get 404.
 *   Paths are URL-decoded and dot-segments removed by lws before httpd
 *   sees them; httpd refuses any remaining ".." segment, any segment
 *   starting with '.', and any file whose real path (symlinks resolved) is
 *   outside the directory.
 * - Headers on every response, lws's own error pages included:
 *   X-Content-Type-Options: nosniff, X-Frame-Options: DENY,
 *   Referrer-Policy: no-referrer, Server: nimbus (no version). Router
 *   responses add Cache-Control: no-store; static files Cache-Control:
 *   no-cache (revalidate, as asset names are not known to be hashed).
 * - Timeouts (idle_timeout_s, default 30 s): an idle keep-alive
 *   connection, a client that stalls while sending headers or body, or one
 *   that stops reading a response is closed after that long. A websocket
 *   that is silent that long is pinged and closed 10 s later without pong.
 * - WebSocket (opts.ws.path set): an upgrade on that exact path, from an
 *   allowed Origin, becomes a connection with a 64-bit id (never reused
 *   within one httpd). Other threads queue messages with httpd_ws_send or
 *   httpd_ws_broadcast; each connection has a bounded queue, and a
 *   connection whose queue is full is closed with 1008 (policy violation),
 *   so a pusher never blocks and a slow consumer never grows memory.
 *   Inbound messages are reassembled up to ws.max_message bytes (1009
 *   beyond). Clients send no subprotocol, or a list naming "nimbus" (first,
 *   as lws reads at most 127 bytes of the list and stops at the first name
 *   it knows); the server answers "nimbus". on_open sees the list as sent,
 *   so other entries can carry data such as a credential.
 * - Threads: httpd_stop, httpd_port, httpd_ws_send and httpd_ws_broadcast
 *   may be called from any thread while the httpd exists (the router
 *   included). httpd_new, httpd_run/httpd_start and httpd_free belong to
 *   the owning thread. The ws hooks run on the service thread (except
 *   on_close for connections still open at httpd_free, which runs there)
 *   and must not block; the router as above; log on the service thread or
 *   a worker.
 * - Errors: 0 or a negative KERR_* code, and a message in struct kerr
 *   (may be NULL) saying what failed and what to do.
 * - Process-wide effects of lws: the first httpd_new lowers lws logging to
 *   errors and warnings on stderr (call lws_set_log_level afterwards to
 *   change it), and lws ignores SIGPIPE.
 * - Limits: about 4000 connections per httpd (lws's fd table), 8 KiB of
 *   request headers.
 */
#ifndef NIMBUS_HTTPD_H
#define NIMBUS_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "kerr.h"

struct httpd;

/* A request as the router sees it. Every pointer is owned by httpd and
 * valid only during the call; strings are NUL-terminated. */
struct httpd_request {
	const char *method;        /* "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD" or "OPTIONS" */
	const char *path;          /* URL-decoded, dot-segments removed: "/api/v1/tenants" */
	const char *query;         /* after '?', re-encoded so that each name and value is
	                            * percent-encoded (RFC 3986 unreserved kept): "a=1&b=x%20y";
	                            * "" if none. Read values with httpd_query_param. */
	const char *authorization; /* request headers, NULL when absent */
	const char *content_type;
	const char *origin;
	const char *accept;
	const char *ws_protocols;  /* Sec-WebSocket-Protocol as sent (upgrades only in practice) */
	const char *remote_addr;   /* peer IP address, "" if unknown */
	const unsigned char *body; /* body_len bytes plus a NUL (for text parsers); never NULL */
	size_t body_len;
};

/* The response being built by the router. Owned by httpd, valid only
 * during the router call; what the setters copy or take is freed by httpd. */
struct httpd_response;

/* Router: return 0 once resp is filled (status 200, application/json and
 * an empty body unless set), HTTPD_PASS if the path is not an API route,
 * or a negative KERR_* code to answer 500 (resp discarded; the code is
 * logged). Runs on the service thread or a worker (opts.workers). */
typedef int (*httpd_router_fn)(void *user, const struct httpd_request *req,
			       struct httpd_response *resp);
#define HTTPD_PASS 1
/* From the fast router only: hand the request to the workers' router. */
#define HTTPD_DEFER 2
#define HTTPD_MAX_WORKERS 64

/* The longest close reason a websocket close frame carries (RFC 6455: 125
 * bytes of payload, 2 of them the code). */
#define WS_REASON_MAX 123

/* Status code, 200..599 (others are stored as 500). Default 200. 204 and
 * 304 are sent without a body. */
void httpd_response_status(struct httpd_response *resp, int status);
/* Content-Type, copied. Default "application/json". KERR_INVAL if it holds
 * control characters; KERR_NOMEM. */
int httpd_response_content_type(struct httpd_response *resp, const char *type);
/* Add a header, copied (at most 16 per response). name must be an HTTP
 * token and value free of control characters other than tab; the headers
 * httpd manages (Content-Length, Content-Type, Connection,
 * Transfer-Encoding, Server, Cache-Control) are refused. KERR_INVAL,
 * KERR_TOO_LARGE, KERR_NOMEM. */
int httpd_response_header(struct httpd_response *resp, const char *name, const char *value);
/* Set the body to a copy of len bytes (replacing any earlier body).
 * KERR_NOMEM. */
int httpd_response_body(struct httpd_response *resp, const void *data, size_t len);
/* Set the body to buf, a malloc'd buffer of len bytes that httpd now owns
 * and frees (also when replaced). Never fails. */
void httpd_response_body_take(struct httpd_response *resp, void *buf, size_t len);

/* Decoded value of the first query parameter called name ("limit" in
 * "limit=10") into out (NUL-terminated). Returns its length, KERR_NOT_FOUND
 * when absent, KERR_TOO_LARGE when it does not fit in outlen, KERR_PARSE
 * for a malformed escape. */
int httpd_query_param(const struct httpd_request *req, const char *name, char *out,
		      size_t outlen);

/* WebSocket hooks. All run on the service thread. */
struct httpd_ws_opts {
	/* Exact request path of the endpoint, e.g. "/api/v1/events". NULL:
	 * no websocket endpoint (every upgrade gets 404). */
	const char *path;
	/* Origin check before the upgrade; origin is NULL when the header is
	 * absent (non-browser clients), host is the Host header (may be NULL).
	 * Return nonzero to allow; refused upgrades get 403. NULL: allow a
	 * missing Origin, or one whose host[:port] equals Host (same origin). */
	int (*origin_ok)(void *user, const char *origin, const char *host);
	/* A connection is open; req is the upgrade request (body empty). Return
	 * 0 to keep it, nonzero to close it with 1008 (e.g. a bad token), with
	 * *reason as the close frame's reason when set (a string that outlives
	 * the call; cut at WS_REASON_MAX bytes; "refused" otherwise). NULL: keep
	 * every connection. */
	int (*on_open)(void *user, uint64_t conn, const struct httpd_request *req,
		       const char **reason);
	/* A complete inbound message (text or binary). NULL: ignore. */
	void (*on_message)(void *user, uint64_t conn, const void *data, size_t len, int binary);
	/* The connection is gone (called only after on_open kept it; from
	 * httpd_free's thread for connections still open then). */
	void (*on_close)(void *user, uint64_t conn);
	void *user;
	size_t queue_max;   /* messages queued per connection; 0 = 64 */
	size_t max_message; /* bytes, inbound and outbound; 0 = 64 KiB */
};

struct httpd_opts {
	/* "host:port", host an IPv4 literal, "localhost" (127.0.0.1) or a
	 * bracketed IPv6 literal: "127.0.0.1:8080", "[::1]:8080",
	 * "0.0.0.0:8080" for every interface.
	 * Port 0 lets the kernel choose (see httpd_port). Required. */
	const char *addr;
	/* PEM certificate chain and private key: HTTPS when set (both or
	 * neither). */
	const char *tls_cert;
	const char *tls_key;
	size_t max_body;            /* request body limit in bytes; 0 = 1 MiB */
	unsigned idle_timeout_s;    /* see the contract; 0 = 30 s, at most 3600 */
	httpd_router_fn router;     /* required */
	void *router_user;
	/* Threads running the router (see the contract); 0 = none, the router
	 * runs on the service thread. At most HTTPD_MAX_WORKERS. */
	unsigned workers;
	/* With workers: tried first, on the service thread, for what can be
	 * answered without blocking (an answer in memory, a refusal). It
	 * returns as the router does, or HTTPD_DEFER to hand the request to
	 * the router on a worker (which starts from an empty response). It
	 * must never block. NULL: every request goes to the workers. Ignored
	 * without workers. */
	httpd_router_fn fast_router;
	const char *static_dir;     /* directory served for passed GET/HEAD; NULL = none */
	/* Warnings about individual requests and connections (handler
	 * failures, dropped slow consumers), one line each, on the service
	 * thread. NULL: dropped. */
	void (*log)(void *user, const char *msg);
	void *log_user;
	struct httpd_ws_opts ws;
};

/* Create a server, bind its listening socket and start its workers. opts
 * and its strings are copied. *out is owned by the caller (httpd_free).
 * KERR_CONFIG for bad options or a bad address, KERR_IO when the address
 * cannot be bound (in use, not local, privileged) or a worker cannot be
 * started, KERR_TLS when the certificate or key cannot be loaded,
 * KERR_NOMEM. */
int httpd_new(struct httpd **out, const struct httpd_opts *opts, struct kerr *e);

/* The port actually bound (useful with port 0). */
int httpd_port(const struct httpd *h);

/* Serve on the calling thread until httpd_stop (at once if it was already
 * called). KERR_INVAL if the server is running or has finished; KERR_IO if
 * lws's service loop fails. */
int httpd_run(struct httpd *h, struct kerr *e);
/* httpd_run on a new thread, joined by httpd_free. KERR_INVAL as above,
 * KERR_IO if the thread cannot be created. */
int httpd_start(struct httpd *h, struct kerr *e);

/* Ask the service loop to return; safe from any thread (and from a
 * handler) any number of times. Returns at once; connections stay open
 * until httpd_free. Pushes fail with KERR_CLOSED from now on. */
void httpd_stop(struct httpd *h);

/* Stop (if running), join the thread httpd_start made, close every
 * connection and free everything. Call from the owning thread, never from
 * a callback; NULL is a no-op. If httpd_run runs on a thread of yours,
 * call httpd_stop and join that thread first. */
void httpd_free(struct httpd *h);

/* Queue a message for one websocket connection (copied). Safe from any
 * thread; never blocks on the network. Returns 0; KERR_NOT_FOUND if conn
 * is not open; KERR_TOO_MANY_REQUESTS if its queue was full, in which case
 * the connection is being closed with 1008; KERR_TOO_LARGE above
 * ws.max_message; KERR_CLOSED after httpd_stop or without a ws endpoint;
 * KERR_NOMEM. binary: 0 for a text frame (must be UTF-8), 1 for binary. */
int httpd_ws_send(struct httpd *h, uint64_t conn, const void *data, size_t len, int binary,
		  struct kerr *e);
/* Queue one copy of a message for every open connection (connections
 * whose queue is full are closed with 1008 instead). Returns the number of
 * connections it was queued for (>= 0), or KERR_TOO_LARGE, KERR_CLOSED,
 * KERR_NOMEM as httpd_ws_send. */
int httpd_ws_broadcast(struct httpd *h, const void *data, size_t len, int binary,
		       struct kerr *e);

#endif
