/*
 * fuzz_list: LIST response bodies (watch_parser, LIST mode), for every kind
 * of the kind table, fed in chunks the input chooses.
 *
 * Input: 4 header bytes, then the body.
 *   [0] options: bit 0 set: a small max_string, 1 + (bits 1..6) bytes;
 *       bit 7 set: the callback stops the parse at item 1 + (bits 4..6).
 *   [1..3] chunk sizes, 1 + (byte % 64), used in turn.
 * The body is parsed whole and in chunks; both must deliver the same items
 * and end the same way, and on success watch_parser_list_meta() must give
 * the same resourceVersion, continue token and remainingItemCount.
 */
#include <string.h>

#include "fuzz.h"
#include "kinds.h"
#include "watch_parser.h"

#define HEADER 4

struct run {
	uint64_t h;
	size_t items;
	size_t stop_at;
	int rc;
};

static int on_item(void *ud, struct watch_event *ev, struct kerr *e)
{
	struct run *r = ud;
	r->items++;
	if (ev->type != WATCH_LIST_ITEM || !ev->obj || ev->status || !ev->resource_version ||
	    strcmp(ev->resource_version, ev->obj->resource_version) != 0)
		fuzz_fail("LIST parser delivered a %s event, object %p, status %p", watch_event_type_name(ev->type),
		          (void *)ev->obj, (const void *)ev->status);
	r->h = fuzz_hash_kobj(r->h, ev->obj);
	kobj_unref(ev->obj);
	if (r->items == r->stop_at)
		return kerr_set(e, KERR_CLOSED, "fuzz: stopping at item %zu", r->items);
	return 0;
}

static void parse(const struct kind *k, size_t max_string, const uint8_t *chunks, const uint8_t *body,
                  size_t len, struct run *r)
{
	struct kerr e = {0};
	struct watch_parser *wp = watch_parser_new(k, WATCH_PARSER_LIST, on_item, r, max_string, &e);
	if (!wp)
		fuzz_fail("watch_parser_new: %s", e.message);
	size_t off = 0, i = 0;
	int rc = 0;
	while (rc == 0 && off < len) {
		size_t n = chunks ? 1 + (size_t)(chunks[i++ % 3] % 64) : len;
		if (n > len - off)
			n = len - off;
		rc = watch_parser_feed(wp, body + off, n, &e);
		off += n;
	}
	if (rc == 0 && watch_parser_list_meta(wp) != NULL)
		fuzz_fail("watch_parser_list_meta is not NULL before finish");
	if (rc == 0)
		rc = watch_parser_finish(wp, &e);
	if (rc > 0 || (rc < 0 && (e.code != rc || e.message[0] == '\0')))
		fuzz_fail("LIST parser returned %d with kerr code %d message \"%s\"", rc, e.code, e.message);
	if (watch_parser_count(wp) != r->items)
		fuzz_fail("watch_parser_count %zu, callback saw %zu", watch_parser_count(wp), r->items);
	const struct watch_list_meta *m = watch_parser_list_meta(wp);
	if ((rc == 0) != (m != NULL))
		fuzz_fail("LIST parser result %d but list_meta %p", rc, (const void *)m);
	if (m) {
		if (!m->resource_version || !m->continue_token || m->remaining < -1)
			fuzz_fail("LIST meta: resourceVersion %p, continue %p, remaining %lld",
			          (const void *)m->resource_version, (const void *)m->continue_token,
			          (long long)m->remaining);
		r->h = fuzz_hash_str(r->h, m->resource_version);
		r->h = fuzz_hash_str(r->h, m->continue_token);
		r->h = fuzz_hash(r->h, &m->remaining, sizeof(m->remaining));
	}
	r->rc = rc;
	watch_parser_free(wp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HEADER)
		return 0;
	uint8_t opt = data[0];
	size_t max_string = opt & 1 ? 1 + ((opt >> 1) & 0x3f) : 0;
	size_t stop_at = opt & 0x80 ? 1 + ((opt >> 4) & 7) : 0;
	const uint8_t *body = data + HEADER;
	size_t len = size - HEADER;
	for (size_t i = 0; kind_at(i); i++) {
		const struct kind *k = kind_at(i);
		struct run whole = {.h = FUZZ_HASH_INIT, .stop_at = stop_at};
		struct run chunked = {.h = FUZZ_HASH_INIT, .stop_at = stop_at};
		parse(k, max_string, NULL, body, len, &whole);
		parse(k, max_string, data + 1, body, len, &chunked);
		if (whole.rc != chunked.rc || whole.items != chunked.items || whole.h != chunked.h)
			fuzz_fail("%s LIST: whole body: %zu items, result %d; in chunks %u,%u,%u: %zu items, "
			          "result %d%s",
			          k->plural, whole.items, whole.rc, 1 + data[1] % 64, 1 + data[2] % 64,
			          1 + data[3] % 64, chunked.items, chunked.rc,
			          whole.h != chunked.h ? " (items or metadata differ)" : "");
	}
	return 0;
}
