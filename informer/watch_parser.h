/*
 * watch_parser: decode a watch stream or a LIST response body, incrementally.
 *
 * Contract
 * - One parser reads one HTTP response body for one kind, fed in chunks of
 *   any size split anywhere; the events produced do not depend on where the
 *   chunks split. Memory stays bounded by the largest single object: items
 *   and events are delivered as each completes and nothing of them is kept.
 * - WATCH_PARSER_WATCH reads whitespace-separated (usually newline-separated)
 *   {"type": ..., "object": {...}} events. "type" may come before or after
 *   "object"; other top-level fields are ignored. Per event the callback
 *   gets:
 *     ADDED, MODIFIED, DELETED  the decoded object;
 *     BOOKMARK                  only the resourceVersion to resume from;
 *     ERROR                     the Status the apiserver sent (410 Expired:
 *                               relist).
 * - WATCH_PARSER_LIST reads one {"kind":"<Kind>List","metadata":{...},
 *   "items":[...]} body: each item is delivered as WATCH_LIST_ITEM as soon
 *   as it is complete; resourceVersion, continue token and
 *   remainingItemCount are available from watch_parser_list_meta() once
 *   watch_parser_finish() has returned 0.
 * - Errors (KERR_PARSE unless said otherwise): malformed JSON; an event that
 *   is not an object or lacks a known "type" or an "object"; an object that
 *   does not decode (no metadata.name, a bad field; see kinds.h); a LIST
 *   body that is not one object. KERR_TOO_LARGE past the json_stream limits.
 *   Messages name the event number and the JSON byte offset. After an error
 *   the parser only repeats it; create a new one for a new connection.
 * - The callback returns 0 to continue or a negative KERR_* code (after
 *   kerr_set on the kerr it is given) to stop the parse with that error.
 * - A parser is used by one thread at a time; the callback runs on the
 *   thread that calls feed/finish.
 */
#ifndef NIMBUS_WATCH_PARSER_H
#define NIMBUS_WATCH_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "kerr.h"
#include "kinds.h"

enum watch_parser_mode { WATCH_PARSER_WATCH, WATCH_PARSER_LIST };

enum watch_event_type {
	WATCH_ADDED,
	WATCH_MODIFIED,
	WATCH_DELETED,
	WATCH_BOOKMARK,
	WATCH_ERROR,
	WATCH_LIST_ITEM, /* an item of a LIST response */
};

struct watch_event {
	enum watch_event_type type;
	/* ADDED, MODIFIED, DELETED, LIST_ITEM: the object, refs == 1. Ownership
	 * passes to the callback when it is called, whatever it returns; it
	 * must kobj_unref() it or hand it on. NULL for the other types. */
	struct kobj *obj;
	/* BOOKMARK: the resourceVersion to resume from; otherwise the object's.
	 * Owned by the parser, valid during the callback. */
	const char *resource_version;
	/* ERROR: the Status; owned by the parser, valid during the callback.
	 * NULL for the other types. */
	const struct kstatus *status;
};

typedef int (*watch_event_fn)(void *ud, struct watch_event *ev, struct kerr *e);

/* Metadata of a LIST response. Strings are owned by the parser and live
 * until watch_parser_free(). */
struct watch_list_meta {
	const char *resource_version; /* "" when absent */
	const char *continue_token;   /* "" when this was the last page */
	int64_t remaining;            /* remainingItemCount; -1 when absent */
};

struct watch_parser;

/* A parser for objects of kind k calling fn(ud, ...) per event; max_string
 * as in json_stream_new (0: 1 MiB). Owned by the caller, freed with
 * watch_parser_free(). NULL with e set on allocation failure. */
struct watch_parser *watch_parser_new(const struct kind *k, enum watch_parser_mode mode,
                                      watch_event_fn fn, void *ud, size_t max_string,
                                      struct kerr *e);
void watch_parser_free(struct watch_parser *wp);

/* Parse len more bytes of the body, delivering every event they complete. */
int watch_parser_feed(struct watch_parser *wp, const void *buf, size_t len, struct kerr *e);
/* The body has ended. An event or LIST left incomplete is KERR_PARSE; a
 * watch body with no events is fine, a LIST body must hold its object. */
int watch_parser_finish(struct watch_parser *wp, struct kerr *e);

/* LIST mode, after watch_parser_finish() returned 0; NULL otherwise. */
const struct watch_list_meta *watch_parser_list_meta(const struct watch_parser *wp);
/* Events (or items) delivered so far. */
size_t watch_parser_count(const struct watch_parser *wp);

/* "ADDED", "BOOKMARK", ...; never NULL. */
const char *watch_event_type_name(enum watch_event_type t);

#endif
