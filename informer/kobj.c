#include "kobj.h"

#include <string.h>

#include "kinds.h"

struct kobj *kobj_ref(struct kobj *o)
{
	if (o)
		atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
	return o;
}

void kobj_unref(struct kobj *o)
{
	if (!o)
		return;
	/* acq_rel: the freeing thread must see every other holder's reads done. */
	if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1)
		o->kind->destroy(o);
}

size_t kobj_size(const struct kobj *o)
{
	return o ? o->size : 0;
}

const char *kobj_label(const struct kobj *o, const char *key)
{
	if (!o || !key)
		return NULL;
	size_t lo = 0, hi = o->nlabels;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, o->labels[mid].key);
		if (c == 0)
			return o->labels[mid].value;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct kobj_owner *kobj_controller(const struct kobj *o)
{
	if (!o)
		return NULL;
	for (size_t i = 0; i < o->nowners; i++)
		if (o->owners[i].controller)
			return &o->owners[i];
	return NULL;
}
