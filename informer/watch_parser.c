#include "watch_parser.h"

#include <stdlib.h>
#include <string.h>

#include "json_stream.h"

#define WATCH_TYPE_NONE (-1)

struct watch_parser {
	const struct kind *kind;
	enum watch_parser_mode mode;
	watch_event_fn fn;
	void *ud;
	struct json_stream *js;
	struct kdecode *dec;
	size_t count;  /* events delivered */
	size_t values; /* top-level JSON values begun */

	/* The watch event being read. */
	int type;         /* enum watch_event_type or WATCH_TYPE_NONE */
	int have_object;
	struct kstatus status;
	char *event_rv;   /* object.metadata.resourceVersion, for BOOKMARK */

	/* The LIST being read. */
	char *list_rv, *list_continue;
	struct watch_list_meta meta;
	int finished;
};

static const char *const watch_type_names[] = {
	[WATCH_ADDED] = "ADDED",       [WATCH_MODIFIED] = "MODIFIED", [WATCH_DELETED] = "DELETED",
	[WATCH_BOOKMARK] = "BOOKMARK", [WATCH_ERROR] = "ERROR",       [WATCH_LIST_ITEM] = "LIST_ITEM",
};

const char *watch_event_type_name(enum watch_event_type t)
{
	if ((unsigned)t >= sizeof(watch_type_names) / sizeof(watch_type_names[0]))
		return "UNKNOWN";
	return watch_type_names[t];
}

static int wp_set_string(char **dst, const char *s, size_t len, struct kerr *e)
{
	char *c = malloc(len + 1);
	if (!c)
		return kerr_set(e, KERR_NOMEM, "out of memory storing a %zu-byte resourceVersion or token", len);
	memcpy(c, s, len);
	c[len] = '\0';
	free(*dst);
	*dst = c;
	return 0;
}

static int wp_decoded(struct watch_parser *wp, int rc, const struct kerr *de, struct kerr *e)
{
	return kerr_set(e, rc, "%s %zu of %s at byte %zu: %s",
	                wp->mode == WATCH_PARSER_LIST ? "LIST item" : "watch event", wp->count + 1,
	                wp->kind->plural, json_stream_offset(wp->js), de->message);
}

static int wp_deliver(struct watch_parser *wp, struct watch_event *ev, struct kerr *e)
{
	wp->count++;
	int rc = wp->fn(wp->ud, ev, e);
	if (rc < 0 && (!e || e->code == 0))
		return kerr_set(e, rc, "watch callback stopped the parse at event %zu (%s)", wp->count,
		                kerr_strerror(rc));
	return rc < 0 ? rc : 0;
}

/* ---- watch events ---- */

static int wp_event_begin(struct watch_parser *wp, enum json_type type, struct kerr *e)
{
	if (type != JSON_OBJECT)
		return kerr_set(e, KERR_PARSE,
		                "watch event %zu of %s near byte %zu is not a JSON object; expected "
		                "{\"type\":...,\"object\":{...}}",
		                wp->count + 1, wp->kind->plural, json_stream_offset(wp->js));
	wp->type = WATCH_TYPE_NONE;
	wp->have_object = 0;
	memset(&wp->status, 0, sizeof(wp->status));
	free(wp->event_rv);
	wp->event_rv = NULL;
	kdecode_begin(wp->dec);
	return 0;
}

static int wp_event_type(struct watch_parser *wp, enum json_type type, const char *s, size_t len,
                         struct kerr *e)
{
	for (int t = WATCH_ADDED; type == JSON_STRING && t <= WATCH_ERROR; t++) {
		if (strlen(watch_type_names[t]) == len && memcmp(watch_type_names[t], s, len) == 0) {
			wp->type = t;
			return 0;
		}
	}
	return kerr_set(e, KERR_PARSE,
	                "watch event %zu of %s has type %s%.*s%s; expected ADDED, MODIFIED, DELETED, "
	                "BOOKMARK or ERROR",
	                wp->count + 1, wp->kind->plural, type == JSON_STRING ? "\"" : "a non-string",
	                type == JSON_STRING ? (int)(len > 32 ? 32 : len) : 0, type == JSON_STRING ? s : "",
	                type == JSON_STRING ? "\"" : "");
}

/* An event of the "object" member, p relative to the object. Until "type" is
 * known the object is read as all it may be: kind object, Status, bookmark. */
static int wp_event_object(struct watch_parser *wp, const struct json_path *p, enum json_type type,
                           const char *s, size_t len, struct kerr *e)
{
	if (p->depth == 0) {
		if (type != JSON_OBJECT)
			return kerr_set(e, KERR_PARSE, "watch event %zu of %s: \"object\" is not a JSON object",
			                wp->count + 1, wp->kind->plural);
		wp->have_object = 1;
	}
	int t = wp->type, skip = 0;
	/* A Status reads only top-level scalars, so what the decoder skips is
	 * skipped for both; a bookmark and an error are read whole. */
	if (t == WATCH_TYPE_NONE || t == WATCH_ADDED || t == WATCH_MODIFIED || t == WATCH_DELETED)
		skip = kdecode_value(wp->dec, p, type, s, len);
	if (t == WATCH_TYPE_NONE || t == WATCH_ERROR)
		kstatus_value(&wp->status, p, type, s, len);
	if (type == JSON_STRING && p->depth == 2 && json_seg_is(&p->seg[0], "metadata") &&
	    json_seg_is(&p->seg[1], "resourceVersion"))
		return wp_set_string(&wp->event_rv, s, len, e);
	return skip;
}

static int wp_event_end(struct watch_parser *wp, struct kerr *e)
{
	if (wp->type == WATCH_TYPE_NONE || !wp->have_object)
		return kerr_set(e, KERR_PARSE, "watch event %zu of %s before byte %zu has no %s",
		                wp->count + 1, wp->kind->plural, json_stream_offset(wp->js),
		                wp->type == WATCH_TYPE_NONE ? "\"type\"" : "\"object\"");
	struct watch_event ev = {.type = (enum watch_event_type)wp->type};
	if (wp->type == WATCH_BOOKMARK) {
		if (!wp->event_rv)
			return kerr_set(e, KERR_PARSE, "watch BOOKMARK %zu of %s has no metadata.resourceVersion",
			                wp->count + 1, wp->kind->plural);
		ev.resource_version = wp->event_rv;
	} else if (wp->type == WATCH_ERROR) {
		ev.status = &wp->status;
		ev.resource_version = wp->event_rv ? wp->event_rv : "";
	} else {
		struct kerr de = {0};
		int rc = kdecode_end(wp->dec, &ev.obj, &de);
		if (rc < 0)
			return wp_decoded(wp, rc, &de, e);
		ev.resource_version = ev.obj->resource_version;
	}
	return wp_deliver(wp, &ev, e);
}

/* ---- LIST ---- */

static int wp_list_item_end(struct watch_parser *wp, struct kerr *e)
{
	struct watch_event ev = {.type = WATCH_LIST_ITEM};
	struct kerr de = {0};
	int rc = kdecode_end(wp->dec, &ev.obj, &de);
	if (rc < 0)
		return wp_decoded(wp, rc, &de, e);
	ev.resource_version = ev.obj->resource_version;
	return wp_deliver(wp, &ev, e);
}

static int wp_list_value(struct watch_parser *wp, const struct json_path *p, enum json_type type,
                         const char *s, size_t len, struct kerr *e)
{
	if (p->depth == 0)
		return type == JSON_OBJECT ? 0
		                           : kerr_set(e, KERR_PARSE, "LIST response of %s is not a JSON object",
		                                      wp->kind->plural);
	if (json_seg_is(&p->seg[0], "items")) {
		if (p->depth == 1) {
			if (type != JSON_ARRAY && type != JSON_NULL)
				return kerr_set(e, KERR_PARSE, "LIST response of %s: \"items\" is not an array",
				                wp->kind->plural);
			return 0;
		}
		if (p->seg[1].key)
			return 0;
		if (p->depth == 2) {
			if (type != JSON_OBJECT)
				return kerr_set(e, KERR_PARSE, "LIST response of %s: item %zu is not a JSON object",
				                wp->kind->plural, p->seg[1].index);
			kdecode_begin(wp->dec);
		}
		struct json_path rel = {p->depth - 2, p->seg + 2};
		return kdecode_value(wp->dec, &rel, type, s, len);
	}
	if (p->depth == 1 && json_seg_is(&p->seg[0], "kind") && type == JSON_STRING) {
		size_t n = strlen(wp->kind->name);
		if (len != n + 4 || memcmp(s, wp->kind->name, n) != 0 || memcmp(s + n, "List", 4) != 0)
			return kerr_set(e, KERR_PARSE, "expected a %sList response, got kind \"%.*s\"", wp->kind->name,
			                (int)(len > 64 ? 64 : len), s);
		return 0;
	}
	if (p->depth != 2 || !json_seg_is(&p->seg[0], "metadata"))
		return 0;
	if (type == JSON_STRING && json_seg_is(&p->seg[1], "resourceVersion"))
		return wp_set_string(&wp->list_rv, s, len, e);
	if (type == JSON_STRING && json_seg_is(&p->seg[1], "continue"))
		return wp_set_string(&wp->list_continue, s, len, e);
	if (type == JSON_NUMBER && json_seg_is(&p->seg[1], "remainingItemCount")) {
		int64_t v = 0;
		const char *end = s + len;
		for (const char *c = s; c < end && *c >= '0' && *c <= '9' && v < INT64_MAX / 10; c++)
			v = v * 10 + (*c - '0');
		wp->meta.remaining = v;
	}
	return 0;
}

/* ---- json_stream callbacks ---- */

static int wp_value(struct watch_parser *wp, const struct json_path *p, enum json_type type,
                    const char *s, size_t len, struct kerr *e)
{
	if (p->depth == 0 && ++wp->values > 1 && wp->mode == WATCH_PARSER_LIST)
		return kerr_set(e, KERR_PARSE, "LIST response of %s has data after its object (byte %zu)",
		                wp->kind->plural, json_stream_offset(wp->js));
	if (wp->mode == WATCH_PARSER_LIST)
		return wp_list_value(wp, p, type, s, len, e);
	if (p->depth == 0)
		return wp_event_begin(wp, type, e);
	if (json_seg_is(&p->seg[0], "object")) {
		struct json_path rel = {p->depth - 1, p->seg + 1};
		return wp_event_object(wp, &rel, type, s, len, e);
	}
	if (p->depth == 1 && json_seg_is(&p->seg[0], "type"))
		return wp_event_type(wp, type, s, len, e);
	return 0;
}

static int wp_on_scalar(void *ud, const struct json_path *p, enum json_type type,
                        const char *s, size_t len, struct kerr *e)
{
	return wp_value(ud, p, type, s, len, e);
}

static int wp_on_start(void *ud, const struct json_path *p, enum json_type type, struct kerr *e)
{
	return wp_value(ud, p, type, NULL, 0, e);
}

static int wp_on_end(void *ud, const struct json_path *p, enum json_type type, struct kerr *e)
{
	struct watch_parser *wp = ud;
	(void)type;
	if (wp->mode == WATCH_PARSER_WATCH)
		return p->depth == 0 ? wp_event_end(wp, e) : 0;
	if (p->depth == 2 && json_seg_is(&p->seg[0], "items") && !p->seg[1].key)
		return wp_list_item_end(wp, e);
	return 0;
}

struct watch_parser *watch_parser_new(const struct kind *k, enum watch_parser_mode mode,
                                      watch_event_fn fn, void *ud, size_t max_string,
                                      struct kerr *e)
{
	static const struct json_stream_cbs cbs = {
		.scalar = wp_on_scalar, .start = wp_on_start, .end = wp_on_end};
	if (!k || !fn) {
		kerr_set(e, KERR_INVAL, "watch_parser_new: a kind and a callback are required");
		return NULL;
	}
	struct watch_parser *wp = calloc(1, sizeof(*wp));
	if (!wp) {
		kerr_set(e, KERR_NOMEM, "out of memory allocating a watch parser");
		return NULL;
	}
	wp->kind = k;
	wp->mode = mode;
	wp->fn = fn;
	wp->ud = ud;
	wp->type = WATCH_TYPE_NONE;
	wp->meta.remaining = -1;
	wp->js = json_stream_new(&cbs, wp, max_string, e);
	if (!wp->js)
		goto err;
	wp->dec = kdecode_new(k, e);
	if (!wp->dec)
		goto err;
	return wp;
err:
	watch_parser_free(wp);
	return NULL;
}

void watch_parser_free(struct watch_parser *wp)
{
	if (!wp)
		return;
	json_stream_free(wp->js);
	kdecode_free(wp->dec);
	free(wp->event_rv);
	free(wp->list_rv);
	free(wp->list_continue);
	free(wp);
}

int watch_parser_feed(struct watch_parser *wp, const void *buf, size_t len, struct kerr *e)
{
	if (!wp)
		return kerr_set(e, KERR_INVAL, "watch_parser_feed: no parser");
	return json_stream_feed(wp->js, buf, len, e);
}

int watch_parser_finish(struct watch_parser *wp, struct kerr *e)
{
	if (!wp)
		return kerr_set(e, KERR_INVAL, "watch_parser_finish: no parser");
	int rc = json_stream_finish(wp->js, e);
	if (rc < 0)
		return rc;
	if (wp->mode == WATCH_PARSER_LIST) {
		if (wp->values == 0)
			return kerr_set(e, KERR_PARSE, "LIST response of %s is empty", wp->kind->plural);
		wp->meta.resource_version = wp->list_rv ? wp->list_rv : "";
		wp->meta.continue_token = wp->list_continue ? wp->list_continue : "";
		wp->finished = 1;
	}
	return 0;
}

const struct watch_list_meta *watch_parser_list_meta(const struct watch_parser *wp)
{
	return wp && wp->finished ? &wp->meta : NULL;
}

size_t watch_parser_count(const struct watch_parser *wp)
{
	return wp ? wp->count : 0;
}
