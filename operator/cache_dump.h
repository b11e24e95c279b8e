/*
 * cache_dump: the operator's caches written to a file, for fault tests and
 * for people debugging a cache that looks wrong.
 *
 * Contract
 * - cache_dump_write() writes one line per cached object of each informer:
 *   "<Kind> <key> <uid> <resourceVersion>" (key: namespace/name or name),
 *   to path.tmp and renames it to path, so a reader never sees half a dump.
 * - Only what the caches hold is written (keys and versions): no spec, no
 *   status, no secret ever reaches the file.
 * - Any thread; each store is read under its own lock, one after another,
 *   so the dump is consistent per kind, not across kinds.
 */
#ifndef NIMBUS_CACHE_DUMP_H
#define NIMBUS_CACHE_DUMP_H

#include <stddef.h>

#include "informer.h"
#include "kerr.h"

/* Dump the n informers' stores to path. KERR_IO with the path and errno's
 * text when the file cannot be written. */
int cache_dump_write(struct informer *const *informers, size_t n, const char *path, struct kerr *e);

#endif
