/*
 * jsonb: build a JSON document with yajl_gen, errors checked once at the end.
 *
 * Contract
 * - jsonb_new() returns a builder owned by the caller (jsonb_free()).
 * - Every call appends; the first failure (out of memory, a key where a
 *   value is due) is remembered and later calls do nothing, so a caller
 *   builds a whole document and checks jsonb_result() once.
 * - jsonb_result() gives the bytes, owned by the builder until it is freed
 *   or reset. Strings are escaped by yajl; non-UTF-8 input is an error.
 * - One thread at a time per builder.
 */
#ifndef NIMBUS_JSONB_H
#define NIMBUS_JSONB_H

#include <stddef.h>
#include <stdint.h>

#include "kerr.h"

struct jsonb;

struct jsonb *jsonb_new(void);
void jsonb_free(struct jsonb *b);
/* Forget the document and start a new one. */
void jsonb_reset(struct jsonb *b);

void jsonb_obj(struct jsonb *b);      /* { */
void jsonb_obj_end(struct jsonb *b);  /* } */
void jsonb_arr(struct jsonb *b);      /* [ */
void jsonb_arr_end(struct jsonb *b);  /* ] */
void jsonb_key(struct jsonb *b, const char *key);
void jsonb_str(struct jsonb *b, const char *s);
void jsonb_strn(struct jsonb *b, const char *s, size_t len);
void jsonb_int(struct jsonb *b, int64_t v);
void jsonb_double(struct jsonb *b, double v);
void jsonb_bool(struct jsonb *b, int v);
void jsonb_null(struct jsonb *b);
/* A key and its value in one call. */
void jsonb_kstr(struct jsonb *b, const char *key, const char *s);
void jsonb_kint(struct jsonb *b, const char *key, int64_t v);
void jsonb_kbool(struct jsonb *b, const char *key, int v);
/* The document: 0 with out and len set (owned by b), or the first error. */
int jsonb_result(struct jsonb *b, const char **out, size_t *len, struct kerr *e);

#endif
