/*
 * api_cache: recent answers of the API's read routes, shared by its
 * workers, so that a burst of identical reads costs one database query
 * rather than one each.
 *
 * Contract
 * - An entry is a body stored under a key (the caller puts route, query
 *   and the caller's scope in it, so that one scope never sees another's
 *   answer). It is served while it is younger than ttl_ms and no
 *   api_cache_invalidate came after the generation it was computed at.
 *   Once expired, the first caller is told to recompute it (a miss) while
 *   the others keep getting the old body, for at most ttl_ms more, so
 *   that an expiry does not send every worker to the database at once:
 *   an answer is at most 2 x ttl_ms old.
 * - Lost updates: read api_cache_generation before computing an answer
 *   and pass it to api_cache_put, which drops the answer if an
 *   invalidation came in between (it may predate the write).
 * - Bounded: at most max_entries; storing into a full cache replaces the
 *   oldest entry. Keys are at most API_CACHE_KEY_MAX - 1 bytes (longer ones
 *   are not cached).
 * - Threads: every function but new/free is thread-safe (one mutex, held
 *   for a lookup and a copy).
 * - Memory: the cache owns copies of keys and bodies; api_cache_get hands
 *   out a malloc'd copy the caller frees.
 */
#ifndef NIMBUS_API_CACHE_H
#define NIMBUS_API_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kerr.h"

#define API_CACHE_KEY_MAX 512

struct api_cache;

/* KERR_INVAL for a zero size or a negative TTL, KERR_NOMEM. The caller
 * owns *out (api_cache_free). */
int api_cache_new(struct api_cache **out, size_t max_entries, int64_t ttl_ms, struct kerr *e);
/* NULL-safe; no other thread may use the cache any more. */
void api_cache_free(struct api_cache *c);

/* The generation: changed by every api_cache_invalidate. */
uint64_t api_cache_generation(struct api_cache *c);
/* Forget every entry (a write changed what they answered). */
void api_cache_invalidate(struct api_cache *c);

/* A fresh entry under key at now_ms (monotonic): 1 with *body (malloc'd,
 * the caller frees) and *len set; 0 when there is none; KERR_NOMEM. With
 * claim false, a miss on an expired entry does not make this caller the
 * one recomputing it (for a caller that will not). */
int api_cache_get(struct api_cache *c, const char *key, int64_t now_ms, bool claim, char **body, size_t *len);
/* Store a copy of body under key, computed at generation gen and time
 * now_ms. 1 if stored, 0 if dropped (stale generation, key too long),
 * KERR_NOMEM. */
int api_cache_put(struct api_cache *c, const char *key, uint64_t gen, int64_t now_ms, const void *body,
		  size_t len);

#endif
