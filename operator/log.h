/*
 * log: structured logging, one JSON object per line.
 *
 * Contract
 * - Each line is {"ts":"2026-11-25T14:00:00.123Z","level":"info",
 *   "logger":"tenant","msg":"...", <fields>} followed by '\n'. ts is UTC
 *   with milliseconds; fields follow in the order given.
 * - Fields are string key/value pairs passed as NULL-terminated varargs:
 *   log_info("tenant", "namespace created", "tenant", name, "ns", ns, NULL).
 *   A key whose value is NULL is written as null and ends the list (the
 *   NULL is the terminator), so pass `s ? s : ""` for a string that may be
 *   NULL. Keys must not repeat ts, level, logger or msg.
 * - Redaction: a field whose key contains "password", "secret", "token" or
 *   "key" (ASCII case-insensitive) is written as "[redacted]". That
 *   includes "key" itself and "apiKey": log a workqueue key as "object".
 * - Escaping: strings are valid JSON whatever their bytes: quotes,
 *   backslashes and control characters are escaped, and each invalid UTF-8
 *   sequence becomes U+FFFD. A value longer than LOG_MAX_VALUE bytes is cut
 *   there and ends in "...".
 * - Lines below the global minimum level (default info) are dropped before
 *   anything is formatted.
 * - Thread-safe: any thread may log and change the level or the fd. Each
 *   line reaches the fd in one write(2) (more only on a partial write, then
 *   still under the module's lock), so lines never interleave.
 * - Logging never fails the caller: a line that cannot be written (fd
 *   closed, out of memory) is dropped.
 */
#ifndef NIMBUS_LOG_H
#define NIMBUS_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "kerr.h"

/* Longest value written in full, in bytes of input. A log line is for
 * people and log shippers; a megabyte of response body helps neither. */
#define LOG_MAX_VALUE 8192

/* Named LOG_LEVEL_* because <syslog.h> defines LOG_DEBUG and LOG_INFO. */
enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

/* "debug", "info", "warn" or "error"; "unknown" for other values. */
const char *log_level_name(enum log_level level);
/* Parse one of the four names above (exactly, lower case) into *out.
 * KERR_INVAL with a message listing the accepted names otherwise. */
int log_level_parse(const char *s, enum log_level *out, struct kerr *e);

/* The global minimum level; lines below it are dropped. Default info. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Whether a line at level would be written; lets a caller skip building
 * expensive fields. */
bool log_enabled(enum log_level level);

/* Where lines go: a file descriptor the caller keeps open while it is set
 * (the module never closes it). Default 2 (stderr); tests pass a pipe. */
void log_set_fd(int fd);

/* Log msg with NULL-terminated key/value fields (see the contract). */
void log_debug(const char *logger, const char *msg, ...) __attribute__((sentinel));
void log_info(const char *logger, const char *msg, ...) __attribute__((sentinel));
void log_warn(const char *logger, const char *msg, ...) __attribute__((sentinel));
void log_error(const char *logger, const char *msg, ...) __attribute__((sentinel));
/* The same at a level chosen at run time. */
void log_fields(enum log_level level, const char *logger, const char *msg, ...)
	__attribute__((sentinel));
void log_vfields(enum log_level level, const char *logger, const char *msg, va_list ap);

/* A message formatted like printf, with no fields. */
void log_printf(enum log_level level, const char *logger, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
