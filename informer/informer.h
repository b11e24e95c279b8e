/*
 * informer: a reflector, a store and event handlers for one resource kind.
 *
 * Contract
 * - informer_start() runs the reflector on its own thread: it LISTs the kind
 *   (paged) into the store, then WATCHes from the list's resourceVersion with
 *   bookmarks, and keeps doing so across dropped connections (resume from the
 *   last resourceVersion, capped jittered backoff), apiserver restarts and
 *   410 Gone (relist into a side buffer, swap, and report the difference as
 *   events). See reflector_sm.h for the protocol.
 * - Handlers run on the informer's thread, in the order changes were applied
 *   to the store, after the store shows them. They must be quick (enqueue a
 *   key in a workqueue) and must not block: a slow handler delays every later
 *   event of this kind. Objects passed to a handler are borrowed for the
 *   call; kobj_ref() one to keep it.
 * - Eventual consistency: a handler may miss intermediate states but never
 *   the last one; after a relist, objects deleted meanwhile are reported as
 *   deletions, changed ones as updates, and unchanged ones not at all.
 * - informer_has_synced() is true once the first LIST is in the store.
 * - The informer owns its store (informer_store()); read it from any thread.
 *   Register store indexes (store_add_index) before informer_start().
 * - Lifecycle: new -> add_handlers/indexes -> start -> ... -> stop -> free.
 *   informer_stop() cancels the open request and joins the thread (within
 *   about a second); handlers are never called after it returns.
 */
#ifndef NIMBUS_INFORMER_H
#define NIMBUS_INFORMER_H

#include <stdbool.h>
#include <stdint.h>

#include "kerr.h"
#include "kinds.h"
#include "kobj.h"
#include "kube_client.h"
#include "store.h"

struct informer;

struct informer_handlers {
	void (*on_add)(void *arg, struct kobj *obj);                      /* may be NULL */
	void (*on_update)(void *arg, struct kobj *old, struct kobj *obj);  /* may be NULL */
	void (*on_delete)(void *arg, struct kobj *obj);                   /* may be NULL */
	void *arg;
};

enum informer_log_level { INFORMER_LOG_DEBUG, INFORMER_LOG_INFO, INFORMER_LOG_WARN, INFORMER_LOG_ERROR };

/* A log line from the informer's thread; msg lives during the call only. */
typedef void (*informer_log_fn)(void *arg, enum informer_log_level level, const char *kind, const char *msg);

struct informer_options {
	const char *namespace;      /* NULL or "": all namespaces; copied */
	const char *label_selector; /* NULL: none; copied, URL-escaped by the informer */
	const char *field_selector; /* NULL: none; copied */
	int page_size;              /* LIST page size; 0 = 500 */
	int watch_timeout_s;        /* server-side watch timeout; 0 = 300..600 s at random, as
				     * client-go, so that watches of many informers do not all
				     * end at the same moment */
	informer_log_fn log;        /* may be NULL */
	void *log_arg;
};

/* Counters for metrics; read with informer_stats() from any thread. */
struct informer_stats {
	uint64_t relists;        /* LISTs from the first page (1 after the initial sync) */
	uint64_t watches;        /* watch requests opened */
	uint64_t events;         /* ADDED/MODIFIED/DELETED applied to the store */
	uint64_t errors;         /* failed LIST/WATCH attempts and undecodable streams */
	uint64_t objects;        /* objects in the store */
	bool synced;
};

/* Create an informer for kind k through client c (which must outlive it).
 * opts may be NULL. The caller owns *out and frees it with informer_free(). */
int informer_new(struct informer **out, struct kube_client *c, const struct kind *k,
		 const struct informer_options *opts, struct kerr *e);
/* Add a handler set (copied); only before informer_start(). At most 8. */
int informer_add_handlers(struct informer *inf, const struct informer_handlers *h);
/* The informer's store, owned by the informer. */
struct store *informer_store(struct informer *inf);
const struct kind *informer_kind(const struct informer *inf);
/* Start the reflector thread. */
int informer_start(struct informer *inf, struct kerr *e);
bool informer_has_synced(struct informer *inf);
/* Wait until synced; 0, or KERR_TIMEOUT after timeout_ms (< 0: forever), or
 * KERR_CLOSED if the informer was stopped. */
int informer_wait_synced(struct informer *inf, long timeout_ms);
void informer_stats(struct informer *inf, struct informer_stats *out);
/* Stop the thread (idempotent). */
void informer_stop(struct informer *inf);
/* Stop if needed and free everything, the store included. NULL is fine. */
void informer_free(struct informer *inf);

#endif
