/*
 * quantity: Kubernetes resource quantities ("500m", "1.5Gi", "1e3") as int64.
 *
 * Contract
 * - Grammar (as the apiserver accepts it):
 *     [+-] digits [. digits] suffix       (or "." digits)
 *     suffix: ""  | n u m k M G T P E    (decimal SI, 10^-9 .. 10^18)
 *                 | Ki Mi Gi Ti Pi Ei    (binary SI, 2^10 .. 2^60)
 *                 | e<int> | E<int>      (decimal exponent; "1E" alone is exa)
 *   No whitespace, at most 64 characters.
 * - Conversion is exact; a fraction that remains at the target scale is
 *   rounded away from zero, as the apiserver's MilliValue()/Value() do
 *   ("100n" is 1 milli-unit, "500m" is 1 whole unit, "-500m" is -1).
 * - Negative quantities are returned as such; whether they are meaningful is
 *   the caller's decision.
 * - Errors: KERR_PARSE for anything else, including a magnitude above
 *   INT64_MAX at the target scale ("1E" fits in whole units, not in milli).
 *   The message quotes the input and says which form is expected.
 * - Pure functions: no allocation, no global state, safe from any thread.
 */
#ifndef NIMBUS_QUANTITY_H
#define NIMBUS_QUANTITY_H

#include <stddef.h>
#include <stdint.h>

#include "kerr.h"

/* Large enough for any string the format functions produce. */
#define QUANTITY_FMT_MAX 32

/* s[0..len) (need not be NUL-terminated) in thousandths of the unit:
 * cpu "250m" -> 250, memory "1Gi" -> 1073741824000. */
int quantity_parse_milli(const char *s, size_t len, int64_t *out, struct kerr *e);

/* s[0..len) in whole units, fractions rounded away from zero:
 * "1Gi" -> 1073741824, "500m" -> 1. */
int quantity_parse_value(const char *s, size_t len, int64_t *out, struct kerr *e);

/* CPU in milli-cores to its canonical form: 2000 -> "2", 250 -> "250m".
 * Returns the string length, or KERR_INVAL (buf[0] = '\0' when cap > 0)
 * when cap is too small; QUANTITY_FMT_MAX always suffices. */
int quantity_format_cpu_milli(int64_t milli, char *buf, size_t cap);

/* Bytes with the largest binary suffix that divides them exactly:
 * 536870912 -> "512Mi", 1610612736 -> "1536Mi", 1000 -> "1000".
 * Returns as quantity_format_cpu_milli. */
int quantity_format_bytes(int64_t bytes, char *buf, size_t cap);

#endif
