/*
 * kube_client: HTTP(S) requests to the Kubernetes apiserver over libcurl.
 *
 * Contract
 * - One client per apiserver, shared by every thread: all functions below
 *   are safe to call concurrently once kube_client_new() returned, and
 *   kube_client_free() must run after the last call returned.
 * - Connections are reused. Each request borrows an easy handle from a small
 *   pool, and a handle keeps its connections alive between requests; DNS and
 *   TLS sessions are shared by all handles. (libcurl does not support sharing
 *   one connection cache between concurrent threads, hence the pool.) HTTP/2
 *   is used when the server offers it.
 * - TLS material comes from the kube_config as PEM bytes; with a CA only that
 *   CA is trusted, not the system store. The bearer token is re-read when its
 *   file rotates (see kubeconfig_token_*).
 * - Non-watch requests pass a client-side token bucket (default 50 qps, burst
 *   100, as client-go's defaults for operators) and wait, never fail, for it.
 * - Every failure returns a negative KERR_* code and fills the kerr: HTTP
 *   errors with the apiserver's Status (code via kerr_from_http, http_status,
 *   reason, message); transport failures as KERR_CONNECT, KERR_TLS or
 *   KERR_TIMEOUT with the URL, curl's reason and what to check.
 * - Paths are absolute and include any query string, already escaped
 *   ("/api/v1/namespaces/a/pods?labelSelector=x%3Dy"). Query parameters such
 *   as fieldManager= and force= for server-side apply are the caller's.
 */
#ifndef NIMBUS_KUBE_CLIENT_H
#define NIMBUS_KUBE_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>

#include "kerr.h"
#include "kubeconfig.h"

#define KUBE_CONTENT_JSON "application/json"
#define KUBE_CONTENT_JSON_PATCH "application/json-patch+json"
#define KUBE_CONTENT_MERGE_PATCH "application/merge-patch+json"
#define KUBE_CONTENT_STRATEGIC_MERGE_PATCH "application/strategic-merge-patch+json"
#define KUBE_CONTENT_APPLY_PATCH "application/apply-patch+yaml"

/* Sent when the options name no user agent. */
#define KUBE_CLIENT_DEFAULT_USER_AGENT "nimbus/0.1.0"

/*
 * Called once per finished request or stream, on the thread that made it,
 * so it must be thread-safe. verb is the HTTP method, or "LIST" / "WATCH"
 * for streams; path_template is the path with names replaced (see
 * kube_client_path_template), so it is fit for a metric label; status is
 * the HTTP status or 0 when no response arrived; seconds is wall time
 * including the rate-limit wait. The strings live only during the call.
 */
typedef void (*kube_client_metrics_fn)(void *arg, const char *verb, const char *path_template,
				       long status, double seconds);

struct kube_client_options {
	double qps;               /* non-watch requests per second; 0 = 50; < 0 = unlimited */
	int burst;                /* requests allowed at once above qps; 0 = 100 */
	long connect_timeout_ms;  /* TCP + TLS connect; 0 = 10000 */
	long timeout_ms;          /* whole kube_client_request(); 0 = 60000 (the apiserver's own limit) */
	long token_recheck_ms;    /* stat() the token file at most this often; 0 = 1000; < 0 = every request */
	int max_idle_handles;     /* easy handles (and their connections) kept idle; 0 = 8 */
	const char *user_agent;   /* copied; NULL = KUBE_CLIENT_DEFAULT_USER_AGENT */
	kube_client_metrics_fn metrics; /* may be NULL */
	void *metrics_arg;
};

struct kube_client;

/*
 * Create a client for cfg. Everything needed is copied; cfg may be freed
 * afterwards. opts may be NULL for the defaults. Calls curl_global_init(),
 * balanced by kube_client_free(); the first client should be created before
 * other threads start using libcurl. The caller owns *out.
 * Returns 0, KERR_CONFIG (no server, unreadable token file), KERR_NOMEM.
 */
int kube_client_new(struct kube_client **out, const struct kube_config *cfg,
		    const struct kube_client_options *opts, struct kerr *e);

/* Close connections and free the client. NULL is fine. */
void kube_client_free(struct kube_client *c);

/* The server URL in use ("https://host:port"), owned by the client. */
const char *kube_client_server(const struct kube_client *c);

struct kube_response {
	long status;  /* HTTP status; 0 when no response arrived */
	char *body;   /* response body plus a NUL (not counted in len); NULL when empty.
		       * Owned by the response: release with kube_response_free(). */
	size_t len;
};

/* Free the body and zero the response. NULL or zeroed is fine. */
void kube_response_free(struct kube_response *r);

/*
 * One request, blocking until the whole response is in.
 * method: "GET", "POST", "PUT", "PATCH" or "DELETE". content_type applies to
 * the body (NULL = KUBE_CONTENT_JSON); body may be NULL (body_len 0).
 * *out is always reset; after a response arrived (2xx or not) it holds the
 * status and body, which the caller frees with kube_response_free(), even
 * on error. Returns 0 for 2xx; otherwise a negative KERR_* code (for non-2xx
 * from the Status in the body, e.g. KERR_NOT_FOUND, KERR_CONFLICT).
 */
int kube_client_request(struct kube_client *c, const char *method, const char *path,
			const char *content_type, const char *body, size_t body_len,
			struct kube_response *out, struct kerr *e);

/*
 * Receives a streamed body chunk by chunk, in order, on the calling thread.
 * Return 0 to go on; any other value stops the stream and becomes
 * kube_client_stream()'s result (a negative KERR_* code is returned as is,
 * anything positive as KERR_CLOSED). Chunk boundaries are arbitrary: a
 * JSON value may span several calls. data lives only during the call.
 */
typedef int (*kube_client_data_fn)(void *arg, const char *data, size_t len);

struct kube_stream_options {
	int watch;                /* 1: a watch (no rate limit, metrics verb WATCH); 0: a LIST */
	long stall_s;             /* abort with KERR_TIMEOUT when no byte arrives for this long;
				   * 0 = 120 (above the ~60 s bookmark period of a watch with
				   * allowWatchBookmarks=true); < 0 = never */
	long timeout_ms;          /* whole stream; 0 = none (a watch ends when the server
				   * ends it, e.g. after its timeoutSeconds) */
	const atomic_int *cancel; /* may be NULL; set non-zero from any thread to end the
				   * stream within about a second with KERR_CLOSED */
};

/*
 * GET path and hand the body to on_data as it arrives: for LIST and WATCH,
 * whose bodies are parsed incrementally rather than held. Blocks until the
 * server ends the body, on_data stops it, it stalls, or it is cancelled;
 * run one per thread (the callbacks would fit a single-thread multiplexer
 * unchanged). opts may be NULL: a LIST with the defaults.
 * The HTTP status is known before the first chunk: only a 2xx body reaches
 * on_data; any other is read (up to 64 KiB) and returned as its Status in
 * the kerr, e.g. KERR_GONE for 410 or KERR_FORBIDDEN for 403. Note that a
 * watch reports errors inside a 200 stream too, as {"type":"ERROR"} events;
 * those are the caller's to parse. *status (may be NULL) receives the HTTP
 * status, 0 if none arrived. Returns 0 when a 2xx body ended normally.
 */
int kube_client_stream(struct kube_client *c, const char *path, kube_client_data_fn on_data,
		       void *arg, const struct kube_stream_options *opts, long *status,
		       struct kerr *e);

/*
 * Fill e from a non-2xx response: the apiserver's Status JSON when body is
 * one (reason, message, code), else the HTTP status and the start of the
 * body. what names the request in the message ("GET /api/v1/..."); body
 * must be NUL-terminated or NULL. Returns the code (kerr_from_http), which
 * is also set in e unless e already held an error.
 */
int kube_client_status_error(long http_status, const char *body, const char *what, struct kerr *e);

/*
 * Write path with its variable parts replaced, for a metric label:
 * "/api/v1/namespaces/a/pods/b/status?x=1" ->
 * "/api/v1/namespaces/{namespace}/pods/{name}/status". The query is dropped,
 * and anything after a subresource. Always NUL-terminates buf (cap > 0),
 * truncating if needed.
 */
void kube_client_path_template(const char *path, char *buf, size_t cap);

#endif
