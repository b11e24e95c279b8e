#include "cache_dump.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinds.h"
#include "kobj.h"
#include "store.h"

static int dump_one(struct informer *inf, FILE *f, struct kerr *e)
{
	struct kobj **objs = NULL;
	size_t n = 0;
	int rc = store_list(informer_store(inf), &objs, &n);
	if (rc < 0)
		return kerr_set(e, rc, "cache dump: cannot list the %s cache", informer_kind(inf)->name);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s %s %s %s\n", informer_kind(inf)->name, objs[i]->key, objs[i]->uid,
			objs[i]->resource_version);
	store_list_free(objs, n);
	return 0;
}

int cache_dump_write(struct informer *const *informers, size_t n, const char *path, struct kerr *e)
{
	size_t len = strlen(path);
	char *tmp = malloc(len + 5);
	if (!tmp)
		return kerr_set(e, KERR_NOMEM, "cache dump: out of memory");
	memcpy(tmp, path, len);
	memcpy(tmp + len, ".tmp", 5);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		int rc = kerr_set(e, KERR_IO, "cache dump: cannot create %s: %s", tmp, strerror(errno));
		free(tmp);
		return rc;
	}
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = dump_one(informers[i], f, e);
	if (fclose(f) != 0 && rc == 0)
		rc = kerr_set(e, KERR_IO, "cache dump: cannot write %s: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, path) != 0)
		rc = kerr_set(e, KERR_IO, "cache dump: cannot rename %s to %s: %s", tmp, path, strerror(errno));
	if (rc < 0)
		remove(tmp);
	free(tmp);
	return rc;
}
