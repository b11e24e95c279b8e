#include "kube_write.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jsonb.h"
#include "kinds.h"
#include "timefmt.h"

int kube_object_path(char *buf, size_t cap, const char *api_path, const char *plural, const char *ns, const char *name)
{
	int n = ns && *ns ? snprintf(buf, cap, "%s/namespaces/%s/%s/%s", api_path, ns, plural, name)
			  : snprintf(buf, cap, "%s/%s/%s", api_path, plural, name);
	return n < 0 || (size_t)n >= cap ? KERR_TOO_LARGE : 0;
}

void kube_now_rfc3339(char *buf, size_t cap)
{
	timefmt_format((int64_t)time(NULL) * 1000000, 0, buf, cap);
}

static int patch(struct kube_client *c, const char *path, const char *query, const char *ctype, const char *doc,
		 size_t len, struct kerr *e)
{
	char url[1024];
	int n = snprintf(url, sizeof(url), "%s%s", path, query);
	if (n < 0 || (size_t)n >= sizeof(url))
		return kerr_set(e, KERR_TOO_LARGE, "object path too long: %s", path);
	struct kube_response r;
	int rc = kube_client_request(c, "PATCH", url, ctype, doc, len, &r, e);
	kube_response_free(&r);
	return rc;
}

int kube_apply(struct kube_client *c, const char *path, const char *doc, size_t len, struct kerr *e)
{
	return patch(c, path, "?fieldManager=" KUBE_FIELD_MANAGER "&force=true", KUBE_CONTENT_APPLY_PATCH, doc, len, e);
}

int kube_create(struct kube_client *c, const char *collection, const char *doc, size_t len, struct kerr *e)
{
	char url[1024];
	int n = snprintf(url, sizeof(url), "%s?fieldManager=" KUBE_FIELD_MANAGER, collection);
	if (n < 0 || (size_t)n >= sizeof(url))
		return kerr_set(e, KERR_TOO_LARGE, "collection path too long: %s", collection);
	struct kube_response r;
	int rc = kube_client_request(c, "POST", url, KUBE_CONTENT_JSON, doc, len, &r, e);
	kube_response_free(&r);
	return rc;
}

int kube_patch_status(struct kube_client *c, const char *path, const char *doc, size_t len, struct kerr *e)
{
	char url[1024];
	int n = snprintf(url, sizeof(url), "%s/status", path);
	if (n < 0 || (size_t)n >= sizeof(url))
		return kerr_set(e, KERR_TOO_LARGE, "object path too long: %s", path);
	return patch(c, url, "?fieldManager=" KUBE_FIELD_MANAGER, KUBE_CONTENT_MERGE_PATCH, doc, len, e);
}

int kube_delete(struct kube_client *c, const char *path, struct kerr *e)
{
	static const char body[] = "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"propagationPolicy\":\"Background\"}";
	struct kube_response r;
	struct kerr local = {0};
	int rc = kube_client_request(c, "DELETE", path, NULL, body, sizeof(body) - 1, &r, &local);
	kube_response_free(&r);
	if (rc == KERR_NOT_FOUND)
		return 0;
	if (rc < 0)
		kerr_set(e, rc, "%s", local.message);
	return rc;
}

int kube_event(struct kube_client *c, const struct kobj *o, enum kube_event_type type, const char *reason,
	       const char *message, struct kerr *e)
{
	const char *ns = o->ns && *o->ns ? o->ns : "default";
	char now[32], path[512];
	kube_now_rfc3339(now, sizeof(now));
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", ns);
	struct jsonb *b = jsonb_new();
	if (!b)
		return kerr_set(e, KERR_NOMEM, "event: out of memory");
	char gen_name[300];
	snprintf(gen_name, sizeof(gen_name), "%s.", o->name);
	jsonb_obj(b);
	jsonb_kstr(b, "apiVersion", "v1");
	jsonb_kstr(b, "kind", "Event");
	jsonb_key(b, "metadata");
	jsonb_obj(b);
	jsonb_kstr(b, "generateName", gen_name);
	jsonb_kstr(b, "namespace", ns);
	jsonb_obj_end(b);
	jsonb_key(b, "involvedObject");
	jsonb_obj(b);
	jsonb_kstr(b, "apiVersion", o->kind->api_version);
	jsonb_kstr(b, "kind", o->kind->name);
	jsonb_kstr(b, "name", o->name);
	if (o->ns && *o->ns)
		jsonb_kstr(b, "namespace", o->ns);
	jsonb_kstr(b, "uid", o->uid);
	jsonb_kstr(b, "resourceVersion", o->resource_version);
	jsonb_obj_end(b);
	jsonb_kstr(b, "reason", reason);
	jsonb_kstr(b, "message", message);
	jsonb_kstr(b, "type", type == KUBE_EVENT_WARNING ? "Warning" : "Normal");
	jsonb_key(b, "source");
	jsonb_obj(b);
	jsonb_kstr(b, "component", KUBE_FIELD_MANAGER);
	jsonb_obj_end(b);
	jsonb_kstr(b, "reportingComponent", KUBE_FIELD_MANAGER);
	jsonb_kstr(b, "firstTimestamp", now);
	jsonb_kstr(b, "lastTimestamp", now);
	jsonb_kint(b, "count", 1);
	jsonb_obj_end(b);
	const char *doc;
	size_t len;
	int rc = jsonb_result(b, &doc, &len, e);
	if (rc == 0) {
		struct kube_response r;
		rc = kube_client_request(c, "POST", path, NULL, doc, len, &r, e);
		kube_response_free(&r);
	}
	jsonb_free(b);
	return rc;
}
