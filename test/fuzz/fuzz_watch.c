/*
 * fuzz_watch: the watch-event stream parser (watch_parser, WATCH mode), for
 * every kind of the kind table, fed in chunks the input chooses.
 *
 * Input: 4 header bytes, then the body.
 *   [0] options: bit 0 set: a small max_string, 1 + (bits 1..6) bytes, to
 *       reach the string-length guard; bit 7 set: the callback stops the
 *       parse at event 1 + (bits 4..6).
 *   [1..3] chunk sizes, 1 + (byte % 64), used in turn.
 * The body is parsed twice per kind, whole and in those chunks. The
 * contract says the events do not depend on where the chunks split, so the
 * two runs must deliver the same events (type, object, resourceVersion,
 * Status) and end with the same result code. Every object is checked by
 * fuzz_hash_kobj.
 */
#include <string.h>

#include "fuzz.h"
#include "kinds.h"
#include "watch_parser.h"

#define HEADER 4

struct run {
	uint64_t h;     /* hash of the events delivered */
	size_t events;
	size_t stop_at; /* return KERR_CLOSED at this event (1-based); 0: never */
	int rc;         /* first error, 0 if none */
};

static int on_event(void *ud, struct watch_event *ev, struct kerr *e)
{
	struct run *r = ud;
	r->events++;
	uint32_t t = (uint32_t)ev->type;
	r->h = fuzz_hash(r->h, &t, sizeof(t));
	switch (ev->type) {
	case WATCH_ADDED:
	case WATCH_MODIFIED:
	case WATCH_DELETED:
		if (!ev->obj || ev->status)
			fuzz_fail("%s event without an object or with a Status", watch_event_type_name(ev->type));
		r->h = fuzz_hash_kobj(r->h, ev->obj);
		if (!ev->resource_version || strcmp(ev->resource_version, ev->obj->resource_version) != 0)
			fuzz_fail("%s event: resource_version is not the object's", watch_event_type_name(ev->type));
		kobj_unref(ev->obj);
		break;
	case WATCH_BOOKMARK:
		if (ev->obj || ev->status || !ev->resource_version)
			fuzz_fail("BOOKMARK with an object or a Status, or without a resourceVersion");
		r->h = fuzz_hash_str(r->h, ev->resource_version);
		break;
	case WATCH_ERROR:
		if (ev->obj || !ev->status || !ev->resource_version)
			fuzz_fail("ERROR event with an object, or without a Status or resourceVersion");
		r->h = fuzz_hash(r->h, &ev->status->code, sizeof(ev->status->code));
		if (memchr(ev->status->status, '\0', sizeof(ev->status->status)) == NULL ||
		    memchr(ev->status->reason, '\0', sizeof(ev->status->reason)) == NULL ||
		    memchr(ev->status->message, '\0', sizeof(ev->status->message)) == NULL)
			fuzz_fail("ERROR event: a Status string is not NUL-terminated");
		r->h = fuzz_hash_str(r->h, ev->status->status);
		r->h = fuzz_hash_str(r->h, ev->status->reason);
		r->h = fuzz_hash_str(r->h, ev->status->message);
		r->h = fuzz_hash_str(r->h, ev->resource_version);
		break;
	default:
		fuzz_fail("watch parser delivered a %s event", watch_event_type_name(ev->type));
	}
	if (r->events == r->stop_at)
		return kerr_set(e, KERR_CLOSED, "fuzz: stopping at event %zu", r->events);
	return 0;
}

static void parse(const struct kind *k, size_t max_string, const uint8_t *chunks, const uint8_t *body,
                  size_t len, struct run *r)
{
	struct kerr e = {0};
	struct watch_parser *wp = watch_parser_new(k, WATCH_PARSER_WATCH, on_event, r, max_string, &e);
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
	if (rc == 0)
		rc = watch_parser_finish(wp, &e);
	if (rc > 0 || (rc < 0 && (e.code != rc || e.message[0] == '\0')))
		fuzz_fail("watch parser returned %d with kerr code %d message \"%s\"", rc, e.code, e.message);
	if (watch_parser_count(wp) != r->events)
		fuzz_fail("watch_parser_count %zu, callback saw %zu", watch_parser_count(wp), r->events);
	if (watch_parser_list_meta(wp) != NULL)
		fuzz_fail("watch_parser_list_meta is not NULL in WATCH mode");
	/* After an error the parser only repeats it. */
	if (rc < 0) {
		struct kerr e2 = {0};
		uint8_t more = '{';
		if (watch_parser_feed(wp, &more, 1, &e2) != rc || watch_parser_finish(wp, &e2) != rc)
			fuzz_fail("a failed watch parser did not repeat its error %d", rc);
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
		if (whole.rc != chunked.rc || whole.events != chunked.events || whole.h != chunked.h)
			fuzz_fail("%s: whole body: %zu events, result %d; in chunks %u,%u,%u: %zu events, "
			          "result %d%s",
			          k->plural, whole.events, whole.rc, 1 + data[1] % 64, 1 + data[2] % 64,
			          1 + data[3] % 64, chunked.events, chunked.rc,
			          whole.h != chunked.h ? " (events differ)" : "");
	}
	return 0;
}
