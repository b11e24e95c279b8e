/*
 * fuzz_objects: the object decoders through kind_decode_json (one GET or
 * POST response body), for every kind of the kind table, and the Status
 * decoder (kstatus_decode_json) on the same bytes.
 *
 * Input: the JSON document itself. Each decoded object is checked by
 * fuzz_hash_kobj (everything inside its one block, labels sorted, key
 * consistent); a failure must come with its code in the kerr and a
 * message. (Reusing one decoder for many objects is what fuzz_watch and
 * fuzz_list exercise.)
 */
#include <string.h>

#include "fuzz.h"
#include "kinds.h"

static void decode(const struct kind *k, const char *json, size_t len)
{
	struct kobj *o = NULL;
	struct kerr e = {0};
	int rc = kind_decode_json(k, json, len, &o, &e);
	if (rc > 0 || (rc == 0) != (o != NULL))
		fuzz_fail("kind_decode_json(%s) returned %d with object %p", k->name, rc, (void *)o);
	if (rc < 0 && (e.code != rc || e.message[0] == '\0'))
		fuzz_fail("kind_decode_json(%s) returned %d but kerr has code %d, message \"%s\"", k->name, rc,
		          e.code, e.message);
	if (o) {
		if (o->kind != k)
			fuzz_fail("kind_decode_json(%s) made a %s", k->name, o->kind->name);
		fuzz_hash_kobj(FUZZ_HASH_INIT, o);
		kobj_unref(o);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *json = (const char *)data;
	for (size_t i = 0; kind_at(i); i++)
		decode(kind_at(i), json, size);
	struct kstatus st;
	struct kerr e = {0};
	int rc = kstatus_decode_json(json, size, &st, &e);
	if (rc > 0 || (rc < 0 && e.code != rc))
		fuzz_fail("kstatus_decode_json returned %d, kerr code %d", rc, e.code);
	if (memchr(st.status, '\0', sizeof(st.status)) == NULL || memchr(st.reason, '\0', sizeof(st.reason)) == NULL ||
	    memchr(st.message, '\0', sizeof(st.message)) == NULL)
		fuzz_fail("kstatus_decode_json left a string without its NUL");
	return 0;
}
