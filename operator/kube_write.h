/*
 * kube_write: the writes every reconciler makes, in one place.
 *
 * Contract
 * - kube_apply() is server-side apply with field manager "nimbus-operator"
 *   and force: it creates the object or makes the fields Nimbus owns equal
 *   to the given document, whoever changed them, and leaves other managers'
 *   fields alone. It is idempotent, so a reconciler can apply the desired
 *   state whenever the cache says it drifted.
 * - kube_create() creates an object with a plain POST (field manager
 *   "nimbus-operator"): for an object the cache says is missing it costs
 *   the apiserver less than an apply, which must parse the document as
 *   YAML and merge field ownership (a Deployment: about 30 % longer under
 *   load). KERR_ALREADY_EXISTS when it exists after all.
 * - kube_patch_status() merge-patches the status subresource.
 * - kube_event() records a core/v1 Event on an object (kubectl describe
 *   shows it). Events are best effort: a failure is returned but callers
 *   normally log and go on.
 * - All functions are thread-safe (kube_client is) and return 0 or a
 *   negative KERR_* code with the apiserver's reason in e.
 */
#ifndef NIMBUS_KUBE_WRITE_H
#define NIMBUS_KUBE_WRITE_H

#include <stddef.h>

#include "kerr.h"
#include "kobj.h"
#include "kube_client.h"

#define KUBE_FIELD_MANAGER "nimbus-operator"

/* PATCH path (an object's URL, without query) with doc as an apply patch. */
int kube_apply(struct kube_client *c, const char *path, const char *doc, size_t len, struct kerr *e);
/* POST doc (JSON) to collection, e.g. "/apis/apps/v1/namespaces/a/deployments". */
int kube_create(struct kube_client *c, const char *collection, const char *doc, size_t len, struct kerr *e);
/* PATCH path + "/status" with a JSON merge patch. */
int kube_patch_status(struct kube_client *c, const char *path, const char *patch, size_t len, struct kerr *e);
/* DELETE path with propagationPolicy=Background; NotFound counts as done. */
int kube_delete(struct kube_client *c, const char *path, struct kerr *e);

enum kube_event_type { KUBE_EVENT_NORMAL, KUBE_EVENT_WARNING };
/* Record an Event about o (reason CamelCase, e.g. "DeploymentCreated"). */
int kube_event(struct kube_client *c, const struct kobj *o, enum kube_event_type type, const char *reason,
	       const char *message, struct kerr *e);
/* The object's URL, e.g. "/apis/apps/v1/namespaces/a/deployments/b", into buf. */
int kube_object_path(char *buf, size_t cap, const char *api_path, const char *plural, const char *ns, const char *name);

/* Now as RFC 3339 UTC with seconds ("2026-11-25T14:00:00Z") into buf (>= 21 bytes). */
void kube_now_rfc3339(char *buf, size_t cap);

#endif
