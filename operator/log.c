#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "timefmt.h"

static atomic_int log_min_level = LOG_LEVEL_INFO;
/* Guards log_out_fd and serializes writes: one line at a time on the fd. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int log_out_fd = 2;

static const char *const log_level_names[] = {
	[LOG_LEVEL_DEBUG] = "debug",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_ERROR] = "error",
};

#define LOG_NLEVELS (sizeof(log_level_names) / sizeof(log_level_names[0]))

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level >= LOG_NLEVELS)
		return "unknown";
	return log_level_names[level];
}

int log_level_parse(const char *s, enum log_level *out, struct kerr *e)
{
	for (size_t i = 0; s && i < LOG_NLEVELS; i++) {
		if (strcmp(s, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return kerr_set(e, KERR_INVAL, "log level '%s' is not one of debug, info, warn, error",
			s ? s : "(null)");
}

void log_set_level(enum log_level level)
{
	atomic_store(&log_min_level, (int)level);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&log_min_level);
}

bool log_enabled(enum log_level level)
{
	return (int)level >= atomic_load(&log_min_level);
}

void log_set_fd(int fd)
{
	pthread_mutex_lock(&log_mu);
	log_out_fd = fd;
	pthread_mutex_unlock(&log_mu);
}

/* A growing line buffer that starts on the stack: most lines fit in it, so
 * logging usually allocates nothing. After an allocation failure it stops
 * growing and the line is dropped. */
struct log_buf {
	char *p;
	size_t len, cap;
	bool failed;
	char local[2048];
};

static void lb_init(struct log_buf *b)
{
	b->p = b->local;
	b->len = 0;
	b->cap = sizeof(b->local);
	b->failed = false;
}

static void lb_release(struct log_buf *b)
{
	if (b->p != b->local)
		free(b->p);
}

static bool lb_reserve(struct log_buf *b, size_t n)
{
	if (b->failed)
		return false;
	if (b->cap - b->len >= n)
		return true;
	size_t cap = b->cap;
	while (cap - b->len < n)
		cap *= 2;
	char *p;
	if (b->p == b->local) {
		p = malloc(cap);
		if (p)
			memcpy(p, b->local, b->len);
	} else {
		p = realloc(b->p, cap);
	}
	if (!p) {
		b->failed = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void lb_put(struct log_buf *b, const char *s, size_t n)
{
	if (!lb_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void lb_puts(struct log_buf *b, const char *s)
{
	lb_put(b, s, strlen(s));
}

/*
 * Length of the valid UTF-8 sequence at s (n > 0 bytes available), or 0 if
 * it is invalid; then *skip is the length of its maximal valid prefix (at
 * least 1), which becomes one U+FFFD, as Unicode recommends. The ranges of
 * the second byte exclude overlong forms, surrogates and code points past
 * U+10FFFF.
 */
static size_t utf8_seq_len(const unsigned char *s, size_t n, size_t *skip)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t more;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		more = 1;
	} else if (c == 0xE0) {
		more = 2;
		lo = 0xA0;
	} else if (c == 0xED) {
		more = 2;
		hi = 0x9F;
	} else if (c >= 0xE1 && c <= 0xEF) {
		more = 2;
	} else if (c == 0xF0) {
		more = 3;
		lo = 0x90;
	} else if (c == 0xF4) {
		more = 3;
		hi = 0x8F;
	} else if (c >= 0xF1 && c <= 0xF3) {
		more = 3;
	} else {
		*skip = 1;
		return 0;
	}
	for (size_t k = 1; k <= more; k++) {
		unsigned char min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
		if (k >= n || s[k] < min || s[k] > max) {
			*skip = k;
			return 0;
		}
	}
	return more + 1;
}

/* Append s as a quoted JSON string, cut after LOG_MAX_VALUE input bytes. */
static void lb_put_json(struct log_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), i = 0;

	lb_put(b, "\"", 1);
	while (i < n) {
		if (i >= LOG_MAX_VALUE) {
			lb_put(b, "...", 3);
			break;
		}
		unsigned char c = u[i];
		size_t skip, len = utf8_seq_len(u + i, n - i, &skip);
		if (len == 0) {
			lb_put(b, "\xEF\xBF\xBD", 3);
			i += skip;
			continue;
		}
		if (len > 1) {
			lb_put(b, s + i, len);
		} else if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			lb_put(b, esc, 2);
		} else if (c == '\n') {
			lb_put(b, "\\n", 2);
		} else if (c == '\r') {
			lb_put(b, "\\r", 2);
		} else if (c == '\t') {
			lb_put(b, "\\t", 2);
		} else if (c < 0x20 || c == 0x7F) {
			char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
			lb_put(b, esc, 6);
		} else {
			lb_put(b, s + i, 1);
		}
		i += len;
	}
	lb_put(b, "\"", 1);
}

static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++) {
		size_t k = 0;
		while (k < n && hay[k] && (hay[k] | 0x20) == needle[k])
			k++;
		if (k == n)
			return true;
	}
	return false;
}

/* Field names that name credentials: their values never reach a log. */
static bool log_is_secret(const char *key)
{
	return contains_ci(key, "password") || contains_ci(key, "secret") ||
	       contains_ci(key, "token") || contains_ci(key, "key");
}

static void lb_put_timestamp(struct log_buf *b)
{
	struct timespec ts;
	char out[TIMEFMT_MAX_LEN + 3] = "\"";
	int n = clock_gettime(CLOCK_REALTIME, &ts) == 0
			? timefmt_format((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, 3, out + 1, sizeof(out) - 2)
			: -1;
	if (n < 0) {
		lb_puts(b, "\"1970-01-01T00:00:00.000Z\"");
		return;
	}
	out[n + 1] = '"';
	lb_put(b, out, (size_t)n + 2);
}

static void log_write_line(const char *p, size_t len)
{
	pthread_mutex_lock(&log_mu);
	while (len > 0) {
		ssize_t w = write(log_out_fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		p += w;
		len -= (size_t)w;
	}
	pthread_mutex_unlock(&log_mu);
}

/* Format and write one line; fields is a NULL-terminated key/value list
 * read from ap, or none when ap is NULL. */
static void log_emit(enum log_level level, const char *logger, const char *msg, va_list *ap)
{
	struct log_buf b;

	lb_init(&b);
	lb_puts(&b, "{\"ts\":");
	lb_put_timestamp(&b);
	lb_puts(&b, ",\"level\":\"");
	lb_puts(&b, log_level_name(level));
	lb_puts(&b, "\",\"logger\":");
	lb_put_json(&b, logger ? logger : "");
	lb_puts(&b, ",\"msg\":");
	lb_put_json(&b, msg ? msg : "");
	for (const char *key; ap && (key = va_arg(*ap, const char *)) != NULL;) {
		const char *val = va_arg(*ap, const char *);
		lb_put(&b, ",", 1);
		lb_put_json(&b, key);
		lb_put(&b, ":", 1);
		if (!val) {
			lb_puts(&b, "null");
			break;
		}
		lb_put_json(&b, log_is_secret(key) ? "[redacted]" : val);
	}
	lb_puts(&b, "}\n");
	if (!b.failed)
		log_write_line(b.p, b.len);
	lb_release(&b);
}

void log_vfields(enum log_level level, const char *logger, const char *msg, va_list ap)
{
	if (!log_enabled(level))
		return;
	va_list copy;
	va_copy(copy, ap);
	log_emit(level, logger, msg, &copy);
	va_end(copy);
}

#define LOG_DEFINE_LEVEL(fn, lvl)                                 \
	void fn(const char *logger, const char *msg, ...)         \
	{                                                         \
		if (!log_enabled(lvl))                            \
			return;                                   \
		va_list ap;                                       \
		va_start(ap, msg);                                \
		log_emit(lvl, logger, msg, &ap);                  \
		va_end(ap);                                       \
	}

LOG_DEFINE_LEVEL(log_debug, LOG_LEVEL_DEBUG)
LOG_DEFINE_LEVEL(log_info, LOG_LEVEL_INFO)
LOG_DEFINE_LEVEL(log_warn, LOG_LEVEL_WARN)
LOG_DEFINE_LEVEL(log_error, LOG_LEVEL_ERROR)

void log_fields(enum log_level level, const char *logger, const char *msg, ...)
{
	if (!log_enabled(level))
		return;
	va_list ap;
	va_start(ap, msg);
	log_emit(level, logger, msg, &ap);
	va_end(ap);
}

void log_printf(enum log_level level, const char *logger, const char *fmt, ...)
{
	char local[1024];
	char *msg = local;
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	int n = vsnprintf(local, sizeof(local), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* Longer than the stack buffer: format again into the heap, or keep
	 * the cut message if that allocation fails. */
	if ((size_t)n >= sizeof(local)) {
		char *big = malloc((size_t)n + 1);
		if (big) {
			va_start(ap, fmt);
			vsnprintf(big, (size_t)n + 1, fmt, ap);
			va_end(ap);
			msg = big;
		}
	}
	log_emit(level, logger, msg, NULL);
	if (msg != local)
		free(msg);
}
