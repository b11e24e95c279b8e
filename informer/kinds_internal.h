/*
 * kinds_internal: what the per-kind decoders (kind_*.c) share with kinds.c.
 * Not part of the informer's public interface.
 *
 * Builder memory: everything a decoder keeps while an object streams in
 * (strings, element arrays, its state) comes from the kdecode's scratch
 * arena, whose pointers stay valid until the next kdecode_begin(). Nothing
 * in it is freed individually.
 *
 * Layout: a kind's end() lays its object out only through ka_* calls on the
 * struct kalloc it is given, the struct first. It runs twice with the same
 * builder state: once to size the block, once to fill it, so it must make
 * the same calls both times and have no other side effects.
 */
#ifndef NIMBUS_KINDS_INTERNAL_H
#define NIMBUS_KINDS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kinds.h"

/* ---- scratch arena and errors ---- */

/* Zeroed, suitably aligned scratch memory; NULL (error recorded) when out of
 * memory or past the per-object limit. */
void *kd_alloc(struct kdecode *d, size_t size);
/* A NUL-terminated scratch copy of s[0..len). */
char *kd_strdup(struct kdecode *d, const char *s, size_t len);
/* Record the first problem of this object (printf-style message). */
void kd_fail(struct kdecode *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A growable array of elsize-byte elements in the scratch arena. */
struct kvec {
	void *items;
	size_t n, cap;
};
/* Element i, growing the array with zeroed elements up to it; NULL when out
 * of memory (recorded). */
void *kd_vec_at(struct kdecode *d, struct kvec *v, size_t i, size_t elsize);

/* ---- paths ---- */

/* pat is keys separated by '.', "*" for any key, "#" for any index. When the
 * first segments of p match pat, returns 1, stores each "#" index into idx[]
 * (may be NULL when pat has none) and the remaining segments into *rest
 * (may be NULL). */
int kpath_prefix(const struct json_path *p, const char *pat, size_t *idx, struct json_path *rest);
/* The whole of p matches pat. */
int kpath_match(const struct json_path *p, const char *pat, size_t *idx);
/* s is an object key among keys (a NULL-terminated list). */
int kseg_in(const struct json_seg *s, const char *const *keys);
/* The key of the last segment ("" for an index). */
const char *kpath_last(const struct json_path *p);

/* ---- typed values: each records a problem naming the path on a type or
 * syntax error and returns a negative code; 0 on success ---- */

int kd_string(struct kdecode *d, const struct json_path *p, enum json_type type,
              const char *s, size_t len, const char **out);
int kd_int(struct kdecode *d, const struct json_path *p, enum json_type type,
           const char *s, size_t len, int64_t *out);
int kd_bool(struct kdecode *d, const struct json_path *p, enum json_type type,
            const char *s, size_t len, int *out);
/* A quantity in milli-units (milli != 0) or whole units. */
int kd_quantity(struct kdecode *d, const struct json_path *p, enum json_type type,
                const char *s, size_t len, int milli, int64_t *out);
/* RFC 3339 to unix seconds. */
int kd_time(struct kdecode *d, const struct json_path *p, enum json_type type,
            const char *s, size_t len, int64_t *out);
/* Path as text for messages ("spec.containers[0].image"), in scratch. */
const char *kd_path_text(struct kdecode *d, const struct json_path *p);

/* Without a kdecode: for values that must not fail the decode. */
int kparse_int(enum json_type type, const char *s, size_t len, int64_t *out);
enum kcond kparse_cond(const char *s, size_t len);
enum keffect kparse_effect(const char *s, size_t len);
/* s[0..len) equals the NUL-terminated word. */
int kstr_eq(const char *s, size_t len, const char *word);

/* A label map (metadata.labels, nodeSelector) being collected. */
struct klabels {
	struct kvec v; /* of struct kobj_label with scratch strings */
};
void kd_label(struct kdecode *d, struct klabels *l, const struct json_path *p,
              enum json_type type, const char *s, size_t len);

/* One status.conditions[] entry being collected. */
struct kcondition_scratch {
	const char *type, *reason, *message, *last_transition;
	uint8_t status;
};
/* Fold the event at p into conditions[idx] (a kvec of struct
 * kcondition_scratch); r is p relative to that entry. */
void kd_condition(struct kdecode *d, struct kvec *conditions, size_t idx, const struct json_path *r,
                  const struct json_path *p, enum json_type type, const char *s, size_t len);

/* ---- layout ---- */

struct kalloc {
	char *base;        /* NULL while sizing */
	struct kdecode *d; /* scratch for the sizing pass */
	size_t interned;   /* filling: ka_istr calls so far */
	size_t fixed;      /* bytes of structs and arrays so far */
	size_t strings;    /* bytes of strings so far */
	size_t fixed_total;/* from the sizing pass: where strings start */
	size_t strings_total;/* from the sizing pass */
};

/* size zeroed bytes in the block's struct-and-array area, aligned for any
 * type; NULL only while sizing runs out of scratch (recorded). */
void *ka_alloc(struct kalloc *a, size_t size);
/* s (NULL or scratch) copied into the block; "" for NULL or "". */
const char *ka_str(struct kalloc *a, const char *s);
/* s (NULL or scratch) as a shared string (kintern.h) whose reference the
 * object owns: its kind's destroy must kintern_put it. "" for NULL or "".
 * For strings other objects repeat (namespace, label, image, node name). */
const char *ka_istr(struct kalloc *a, const char *s);
/* The labels sorted by key and copied into the block; *n gets the count. */
const struct kobj_label *ka_labels(struct kalloc *a, struct klabels *l, size_t *n);
/* The same with shared keys and values (ka_istr); kobj_put_labels releases them. */
const struct kobj_label *ka_ilabels(struct kalloc *a, struct klabels *l, size_t *n);
void kobj_put_labels(const struct kobj_label *labels, size_t n);
/* Allocate the kind struct (size bytes, starting with struct kobj) and fill
 * in the common metadata. NULL when out of scratch while sizing. */
void *ka_object(struct kalloc *a, size_t size);
/* The first KCONDITIONS_MAX collected conditions copied into the block. */
const struct kcondition *ka_conditions(struct kalloc *a, struct kvec *conditions, size_t *n);

/* Releases the shared strings of the common metadata (namespace, labels,
 * owner apiVersion and kind) and frees the block: the destroy of a kind
 * with no shared strings of its own, and the last step of one with some. */
void kind_destroy_block(struct kobj *o);

#endif
