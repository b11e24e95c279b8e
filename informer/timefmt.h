/*
 * timefmt: RFC 3339 times and civil dates, without the C library's time zone.
 *
 * Contract
 * - Times are unix microseconds (int64_t), UTC, proleptic Gregorian; the
 *   text form is what the apiserver writes and Go's time package reads:
 *   YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm), 'T' and 'Z' in either
 *   case, years 0000 to 9999, seconds 00 to 59 (Go refuses a leap second).
 * - Pure functions of their arguments (timefmt_deadline reads the
 *   monotonic clock): any thread, no allocation.
 * - Errors: KERR_PARSE for text that is not such a time, KERR_INVAL for a
 *   time outside the four-digit years or a buffer too small; the output is
 *   left untouched on error, except that a buffer gets "" when it has room.
 */
#ifndef NIMBUS_TIMEFMT_H
#define NIMBUS_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Characters of the longest text timefmt_format writes ("...T00:00:00.000000Z"), without the NUL. */
#define TIMEFMT_MAX_LEN 27

/* Days since 1970-01-01 of year y, month m (1-12), day d (1-31); H. Hinnant's
 * algorithm, exact for every year. The date is not checked. */
int64_t timefmt_days_from_civil(int64_t y, int m, int d);
/* The date of day number days (since 1970-01-01, may be negative). */
void timefmt_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
/* Days in month m (1-12) of year y. */
int timefmt_days_in_month(int64_t y, int m);

/* Parse exactly s[0..len) into *unix_us; a fraction finer than a microsecond
 * is truncated. 0 or KERR_PARSE. */
int timefmt_parse(const char *s, size_t len, int64_t *unix_us);

/* Write unix_us as UTC with digits (0, 3 or 6) fraction digits and 'Z':
 * "2026-11-25T15:14:32Z", "...32.123Z", "...32.123456Z"; a finer part of the
 * time is dropped (rounded down). Returns the length written, or KERR_INVAL. */
int timefmt_format(int64_t unix_us, int digits, char *buf, size_t cap);

/* floor(a / b) for b > 0: a time before 1970 belongs to the second (day,
 * millisecond) that starts before it. */
int64_t timefmt_floor_div(int64_t a, int64_t b);

/* CLOCK_MONOTONIC now + ms (>= 0), as the absolute time pthread_cond_timedwait
 * takes with a condition variable set to that clock. */
struct timespec timefmt_deadline(int64_t ms);

#endif
