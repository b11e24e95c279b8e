/*
 * json_stream: incremental JSON parsing with paths, over yajl.
 *
 * Contract
 * - Input arrives in chunks of any size, split anywhere (one byte at a time
 *   works); callbacks fire as soon as a value is complete, so memory does not
 *   grow with the stream. A stream may hold several top-level values
 *   separated by whitespace (a watch stream).
 * - Every callback gets the path of the value it reports: the object keys and
 *   array indices from the top-level value down. For {"a":[{"b":1}]}:
 *     start OBJECT []       start ARRAY [a]      start OBJECT [a,0]
 *     scalar NUMBER [a,0,b] end OBJECT [a,0]     end ARRAY [a]   end OBJECT []
 *   Depth 0 means a top-level value.
 * - Paths, keys and scalar text belong to the parser and are valid only during
 *   the callback. Scalar text is the JSON text of the value: a string
 *   unescaped (not NUL-terminated, may contain NUL), a number as written,
 *   "true", "false" or "null".
 * - Limits: JSON_STREAM_MAX_DEPTH nested containers and max_string bytes of
 *   encoded text per string or key (escapes count as written); beyond either
 *   the parse stops with KERR_TOO_LARGE. Malformed JSON stops it with
 *   KERR_PARSE. Messages name the byte offset from the start of the stream.
 * - A callback returns 0 to go on or a negative KERR_* code to stop; that
 *   code (and the message it put in the kerr passed to it) is what
 *   json_stream_feed returns. After any error the stream stays failed and
 *   every later call returns the same code.
 * - The start callback may return JSON_STREAM_SKIP: nothing inside that
 *   container is reported (it is still parsed and checked, and its end is
 *   reported). Decoders skip the subtrees they do not read this way, which
 *   spares a callback and a path per value.
 * - A json_stream is used by one thread at a time.
 */
#ifndef NIMBUS_JSON_STREAM_H
#define NIMBUS_JSON_STREAM_H

#include <stddef.h>

#include "kerr.h"

#define JSON_STREAM_MAX_DEPTH 32
#define JSON_STREAM_DEFAULT_MAX_STRING ((size_t)1 << 20) /* 1 MiB */
/* A start callback's "not interested in what is inside". */
#define JSON_STREAM_SKIP 1

enum json_type {
	JSON_NULL,
	JSON_BOOL,
	JSON_NUMBER,
	JSON_STRING,
	JSON_OBJECT,
	JSON_ARRAY,
};

/* One step of a path: an object key (key != NULL, NUL-terminated, keylen
 * bytes) or an array index (key == NULL). */
struct json_seg {
	const char *key;
	size_t keylen;
	size_t index;
};

struct json_path {
	size_t depth;
	const struct json_seg *seg; /* seg[0] is the outermost */
};

struct json_stream_cbs {
	/* A string, number, boolean or null. */
	int (*scalar)(void *ud, const struct json_path *p, enum json_type type,
	              const char *text, size_t len, struct kerr *e);
	/* An object or array begins (type JSON_OBJECT or JSON_ARRAY); p is the
	 * path of the container itself. May return JSON_STREAM_SKIP. May be NULL. */
	int (*start)(void *ud, const struct json_path *p, enum json_type type, struct kerr *e);
	/* The container at p ends. May be NULL. */
	int (*end)(void *ud, const struct json_path *p, enum json_type type, struct kerr *e);
};

struct json_stream;

/* A parser calling cbs with ud; max_string 0 means the default (1 MiB).
 * cbs is copied. Returns NULL with e set on allocation failure.
 * The caller owns the result and frees it with json_stream_free(). */
struct json_stream *json_stream_new(const struct json_stream_cbs *cbs, void *ud,
                                    size_t max_string, struct kerr *e);
void json_stream_free(struct json_stream *js);

/* Parse len more bytes. Returns 0 or the first error. */
int json_stream_feed(struct json_stream *js, const void *buf, size_t len, struct kerr *e);
/* The input has ended: a value left incomplete is KERR_PARSE ("premature
 * EOF"); an input of only whitespace is fine. */
int json_stream_finish(struct json_stream *js, struct kerr *e);

/* Bytes accepted so far; inside a callback, the offset just past the token
 * being reported. */
size_t json_stream_offset(const struct json_stream *js);

/* Compare a path segment with a key; 1 when equal. */
int json_seg_is(const struct json_seg *s, const char *key);

#endif
