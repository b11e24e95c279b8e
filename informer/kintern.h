/*
 * kintern: one shared, reference-counted copy of strings that many cached
 * objects repeat (namespaces, node and scheduler names, images, label keys
 * and values, toleration keys).
 *
 * Contract
 * - kintern_get() returns the process-wide copy of s[0..len) with one more
 *   reference, creating it at the first use; kintern_put() drops one, and
 *   the copy is freed with its last reference. A caller owns the references
 *   it got and puts each exactly once.
 * - Copies are immutable and NUL-terminated; "" is never interned (the
 *   empty string is the caller's own literal), and kintern_put ignores NULL
 *   and "", so that a struct's string fields can be put without checking.
 * - Thread-safe: one mutex, held for a lookup or an update of the table; a
 *   copy can be read without it for as long as a reference is held.
 * - Memory: a copy costs its bytes + 13 and a malloc header, and 8 to 16
 *   bytes of table; worth it for a string that a second object repeats.
 */
#ifndef NIMBUS_KINTERN_H
#define NIMBUS_KINTERN_H

#include <stddef.h>

/* The shared copy of s[0..len) (0 < len < 4 GiB), with a reference for
 * the caller; NULL when out of memory or len is out of range. */
const char *kintern_get(const char *s, size_t len);
/* Drop a reference to a string kintern_get returned. NULL and "" are ignored. */
void kintern_put(const char *s);
/* s (NUL-terminated) is a shared copy that is held now: for checks that
 * an object's strings are its own or shared. */
int kintern_holds(const char *s);
/* Distinct strings held now (for tests and accounting). */
size_t kintern_count(void);

#endif
