#include "json_stream.h"

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

struct json_frame {
	enum json_type type;
	size_t key_base; /* offset in keybuf where this frame's current key lives */
	size_t next_index;
};

struct json_stream {
	yajl_handle yajl;
	struct json_stream_cbs cbs;
	void *ud;
	size_t max_string;

	struct kerr err; /* first error; sticky */
	size_t offset;   /* bytes handed to yajl before the current chunk */
	int parsing;     /* inside yajl_parse: yajl knows how far into the chunk */

	size_t depth;
	/* Inside a skipped container: depth + 1 of the container, so that
	 * everything at depth >= skip is unreported; 0 when not skipping. */
	size_t skip;
	struct json_frame frame[JSON_STREAM_MAX_DEPTH];
	struct json_seg seg[JSON_STREAM_MAX_DEPTH];
	/* Keys of the open objects, NUL-terminated, outermost first: a stack,
	 * because a new key in one object closes every deeper one. */
	char *keybuf;
	size_t keylen, keycap;

	/* String-length guard, run ahead of yajl because yajl buffers a whole
	 * string before reporting it. */
	int in_string, in_escape;
	size_t string_bytes;
	int seen_token; /* a non-whitespace byte arrived */
};

static struct json_path js_path(const struct json_stream *js)
{
	struct json_path p = {js->depth, js->seg};
	return p;
}

/* Number the value that is starting when it is an array element. */
static void js_value_begins(struct json_stream *js)
{
	if (js->depth == 0)
		return;
	struct json_frame *f = &js->frame[js->depth - 1];
	if (f->type == JSON_ARRAY) {
		js->seg[js->depth - 1].key = NULL;
		js->seg[js->depth - 1].keylen = 0;
		js->seg[js->depth - 1].index = f->next_index++;
	}
}

static int js_scalar(struct json_stream *js, enum json_type type, const char *text, size_t len)
{
	if (js->skip)
		return 1;
	js_value_begins(js);
	if (!js->cbs.scalar)
		return 1;
	struct json_path p = js_path(js);
	int rc = js->cbs.scalar(js->ud, &p, type, text, len, &js->err);
	if (rc < 0) {
		kerr_set(&js->err, rc, "JSON callback failed (%s)", kerr_strerror(rc));
		return 0;
	}
	return 1;
}

static int js_on_null(void *ctx)
{
	return js_scalar(ctx, JSON_NULL, "null", 4);
}

static int js_on_boolean(void *ctx, int v)
{
	return js_scalar(ctx, JSON_BOOL, v ? "true" : "false", v ? 4 : 5);
}

static int js_on_number(void *ctx, const char *s, size_t len)
{
	return js_scalar(ctx, JSON_NUMBER, s, len);
}

static int js_on_string(void *ctx, const unsigned char *s, size_t len)
{
	return js_scalar(ctx, JSON_STRING, (const char *)s, len);
}

static int js_start(struct json_stream *js, enum json_type type)
{
	if (!js->skip)
		js_value_begins(js);
	if (js->depth == JSON_STREAM_MAX_DEPTH) {
		kerr_set(&js->err, KERR_TOO_LARGE,
		         "JSON nested deeper than %d levels near byte %zu; such documents are not Kubernetes objects",
		         JSON_STREAM_MAX_DEPTH, json_stream_offset(js));
		return 0;
	}
	int rc = 0;
	if (js->cbs.start && !js->skip) {
		struct json_path p = js_path(js);
		rc = js->cbs.start(js->ud, &p, type, &js->err);
		if (rc < 0) {
			kerr_set(&js->err, rc, "JSON callback failed (%s)", kerr_strerror(rc));
			return 0;
		}
	}
	struct json_frame *f = &js->frame[js->depth];
	f->type = type;
	f->key_base = js->keylen;
	f->next_index = 0;
	js->seg[js->depth].key = NULL;
	js->seg[js->depth].keylen = 0;
	js->seg[js->depth].index = 0;
	js->depth++;
	if (rc == JSON_STREAM_SKIP)
		js->skip = js->depth;
	return 1;
}

static int js_end(struct json_stream *js, enum json_type type)
{
	js->depth--;
	js->keylen = js->frame[js->depth].key_base;
	if (js->skip && js->depth >= js->skip)
		return 1;
	js->skip = 0;
	if (!js->cbs.end)
		return 1;
	struct json_path p = js_path(js);
	int rc = js->cbs.end(js->ud, &p, type, &js->err);
	if (rc < 0) {
		kerr_set(&js->err, rc, "JSON callback failed (%s)", kerr_strerror(rc));
		return 0;
	}
	return 1;
}

static int js_on_start_map(void *ctx)
{
	return js_start(ctx, JSON_OBJECT);
}

static int js_on_end_map(void *ctx)
{
	return js_end(ctx, JSON_OBJECT);
}

static int js_on_start_array(void *ctx)
{
	return js_start(ctx, JSON_ARRAY);
}

static int js_on_end_array(void *ctx)
{
	return js_end(ctx, JSON_ARRAY);
}

static int js_on_map_key(void *ctx, const unsigned char *key, size_t len)
{
	struct json_stream *js = ctx;
	if (js->skip)
		return 1;
	struct json_frame *f = &js->frame[js->depth - 1];
	size_t need = f->key_base + len + 1;
	if (need > js->keycap) {
		size_t cap = js->keycap ? js->keycap : 256;
		while (cap < need)
			cap *= 2;
		char *nb = realloc(js->keybuf, cap);
		if (!nb) {
			kerr_set(&js->err, KERR_NOMEM, "out of memory storing a %zu-byte JSON key", len);
			return 0;
		}
		js->keybuf = nb;
		js->keycap = cap;
		/* Outer keys moved with the buffer. */
		for (size_t i = 0; i + 1 < js->depth; i++)
			if (js->frame[i].type == JSON_OBJECT)
				js->seg[i].key = nb + js->frame[i].key_base;
	}
	memcpy(js->keybuf + f->key_base, key, len);
	js->keybuf[f->key_base + len] = '\0';
	js->keylen = need;
	js->seg[js->depth - 1].key = js->keybuf + f->key_base;
	js->seg[js->depth - 1].keylen = len;
	return 1;
}

static const yajl_callbacks js_yajl_callbacks = {
	.yajl_null = js_on_null,
	.yajl_boolean = js_on_boolean,
	.yajl_number = js_on_number,
	.yajl_string = js_on_string,
	.yajl_start_map = js_on_start_map,
	.yajl_map_key = js_on_map_key,
	.yajl_end_map = js_on_end_map,
	.yajl_start_array = js_on_start_array,
	.yajl_end_array = js_on_end_array,
};

struct json_stream *json_stream_new(const struct json_stream_cbs *cbs, void *ud,
                                    size_t max_string, struct kerr *e)
{
	struct json_stream *js = calloc(1, sizeof(*js));
	if (!js) {
		kerr_set(e, KERR_NOMEM, "out of memory allocating a JSON parser");
		return NULL;
	}
	if (cbs)
		js->cbs = *cbs;
	js->ud = ud;
	js->max_string = max_string ? max_string : JSON_STREAM_DEFAULT_MAX_STRING;
	js->yajl = yajl_alloc(&js_yajl_callbacks, NULL, js);
	if (!js->yajl || !yajl_config(js->yajl, yajl_allow_multiple_values, 1))
		goto err;
	return js;
err:
	if (js->yajl)
		yajl_free(js->yajl);
	free(js);
	kerr_set(e, KERR_NOMEM, "out of memory allocating a JSON parser");
	return NULL;
}

void json_stream_free(struct json_stream *js)
{
	if (!js)
		return;
	yajl_free(js->yajl);
	free(js->keybuf);
	free(js);
}

/* Bytes of buf that keep every string within max_string. It sees every
 * byte of the stream, so its inner loops test one byte each; strings in
 * Kubernetes objects are short, too short for memchr to pay. */
static size_t js_guard(struct json_stream *js, const unsigned char *buf, size_t len)
{
	size_t i = 0;
	while (!js->seen_token && i < len) {
		unsigned char c = buf[i];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			js->seen_token = 1;
		else
			i++;
	}
	while (i < len) {
		if (!js->in_string) {
			while (i < len && buf[i] != '"')
				i++;
			if (i == len)
				return len;
			i++;
			js->in_string = 1;
			js->string_bytes = 0;
			continue;
		}
		if (js->in_escape) {
			js->in_escape = 0;
			if (++js->string_bytes > js->max_string)
				return i;
			i++;
			continue;
		}
		/* The string's plain run: up to its closing quote or a backslash. */
		size_t start = i;
		while (i < len && buf[i] != '"' && buf[i] != '\\')
			i++;
		if (i - start > js->max_string - js->string_bytes)
			return start + (js->max_string - js->string_bytes);
		js->string_bytes += i - start;
		if (i == len)
			return len;
		if (buf[i] == '\\') {
			js->in_escape = 1;
			if (++js->string_bytes > js->max_string)
				return i;
		} else {
			js->in_string = 0;
		}
		i++;
	}
	return len;
}

static int js_yajl_error(struct json_stream *js, const unsigned char *buf, size_t len)
{
	/* yajl counts the offending byte as consumed; at the end of input it
	 * counts the space it feeds itself. Either way, name the byte it choked on. */
	size_t consumed = buf ? yajl_get_bytes_consumed(js->yajl) : 0;
	size_t at = js->offset + (consumed ? consumed - 1 : 0);
	unsigned char *msg = yajl_get_error(js->yajl, 0, buf, len);
	const char *text = msg ? (const char *)msg : "unknown error";
	size_t n = strlen(text);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
		n--;
	kerr_set(&js->err, KERR_PARSE, "malformed JSON at byte %zu: %.*s", at, (int)n, text);
	if (msg)
		yajl_free_error(js->yajl, msg);
	return KERR_PARSE;
}

static int js_report(struct json_stream *js, struct kerr *e)
{
	if (e && e->code == 0)
		*e = js->err;
	return js->err.code;
}

int json_stream_feed(struct json_stream *js, const void *buf, size_t len, struct kerr *e)
{
	if (!js || (!buf && len))
		return kerr_set(e, KERR_INVAL, "json_stream_feed: no parser or no buffer");
	if (js->err.code)
		return js_report(js, e);
	if (len == 0)
		return 0;
	const unsigned char *b = buf;
	size_t ok = js_guard(js, b, len);
	/* Values before an oversized string are delivered whatever the chunk
	 * boundaries, so yajl sees the good prefix first. */
	if (ok > 0) {
		js->parsing = 1;
		yajl_status st = yajl_parse(js->yajl, b, ok);
		js->parsing = 0;
		/* A cancelling callback has already recorded its error. */
		if (st == yajl_status_client_canceled)
			return js_report(js, e);
		if (st != yajl_status_ok) {
			js_yajl_error(js, b, ok);
			return js_report(js, e);
		}
		js->offset += ok;
	}
	if (ok < len) {
		kerr_set(&js->err, KERR_TOO_LARGE,
		         "JSON string at byte %zu is longer than the %zu-byte limit",
		         js->offset, js->max_string);
		return js_report(js, e);
	}
	return 0;
}

int json_stream_finish(struct json_stream *js, struct kerr *e)
{
	if (!js)
		return kerr_set(e, KERR_INVAL, "json_stream_finish: no parser");
	if (js->err.code)
		return js_report(js, e);
	if (!js->seen_token)
		return 0;
	yajl_status st = yajl_complete_parse(js->yajl);
	if (st == yajl_status_client_canceled)
		return js_report(js, e);
	if (st != yajl_status_ok) {
		js_yajl_error(js, NULL, 0);
		return js_report(js, e);
	}
	return 0;
}

size_t json_stream_offset(const struct json_stream *js)
{
	if (!js)
		return 0;
	return js->offset + (js->parsing ? yajl_get_bytes_consumed(js->yajl) : 0);
}

int json_seg_is(const struct json_seg *s, const char *key)
{
	if (!s || !s->key)
		return 0;
	/* Byte by byte: most calls differ at the first one. */
	for (size_t i = 0; i < s->keylen; i++)
		if (!key[i] || key[i] != s->key[i])
			return 0;
	return key[s->keylen] == '\0';
}
