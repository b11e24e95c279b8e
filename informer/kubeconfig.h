/*
 * kubeconfig: where the apiserver is and how to authenticate to it, read from
 * a kubeconfig file or from the in-cluster service account.
 *
 * Contract
 * - A loader fills a caller-allocated struct kube_config. On success the
 *   struct owns every pointer in it; release them with kube_config_free().
 *   On failure the struct is left zeroed (kube_config_free() is still safe)
 *   and the kerr says which file, which context/cluster/user, and what to fix.
 * - Only what a client needs is kept: server URL, CA, client certificate and
 *   key (all as PEM bytes), bearer token or token file, the insecure flag and
 *   the context's namespace. Certificate paths in a kubeconfig are read at
 *   load time, relative ones against the kubeconfig's directory; a token file
 *   is only named here and read at each use (see kubeconfig_token_*).
 * - Like client-go: the -data fields win over their file counterparts, and a
 *   tokenFile wins over a token (the token is the fallback if the file cannot
 *   be read). exec plugins, auth-providers and basic auth are refused with a
 *   message rather than silently ignored.
 * - KUBECONFIG may list several files separated by ':'; unlike kubectl, which
 *   merges them, only the first non-empty entry is read.
 * - Loaders read the environment (KUBECONFIG, HOME, KUBERNETES_SERVICE_*,
 *   NIMBUS_SERVICE_ACCOUNT_DIR), so call them before starting threads that
 *   change it.
 *
 * The token source follows a token file that the kubelet rotates: it is safe
 * from any thread and re-reads the file when it changes.
 */
#ifndef NIMBUS_KUBECONFIG_H
#define NIMBUS_KUBECONFIG_H

#include <stddef.h>

#include "kerr.h"

/* Where a service account's files are mounted in every pod. */
#define KUBECONFIG_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
/* When set and not empty, the directory read instead of KUBECONFIG_SA_DIR
 * (same layout: token, ca.crt, namespace): to run a binary outside a pod
 * exactly as in one, with a service account's token and the cluster CA. */
#define KUBECONFIG_SA_DIR_ENV "NIMBUS_SERVICE_ACCOUNT_DIR"

struct kube_config {
	char *server;       /* "https://host:port[/prefix]", no trailing '/'; never NULL after a load */
	char *ca_pem;       /* CA bundle to trust, NUL-terminated PEM; NULL: the system CAs */
	size_t ca_pem_len;  /* bytes in ca_pem, without the NUL */
	char *cert_pem;     /* client certificate (PEM) or NULL */
	size_t cert_pem_len;
	char *key_pem;      /* client private key (PEM) or NULL; set iff cert_pem is */
	size_t key_pem_len;
	char *token;        /* static bearer token or NULL */
	char *token_file;   /* bearer token file, absolute or as given; NULL if none */
	char *namespace;    /* the context's namespace, or the pod's; NULL if unset */
	int insecure;       /* 1: do not verify the server certificate (insecure-skip-tls-verify) */
	char *origin;       /* for messages: `kubeconfig /p (context "c")` or `in-cluster (/dir)` */
};

/* Load `path`, using context `context` or, when NULL, the file's
 * current-context. */
int kubeconfig_load(struct kube_config *out, const char *path, const char *context,
		    struct kerr *e);

/* The same from memory: text[0..len) (need not be NUL-terminated) read as
 * if it were the file `path`, which names it in messages and whose
 * directory relative certificate and token paths are taken from. path NULL:
 * "<memory>" in messages and relative paths taken as given. Certificate and
 * token files it names are still read. */
int kubeconfig_load_buffer(struct kube_config *out, const char *text, size_t len, const char *path,
			   const char *context, struct kerr *e);

/* Pick the configuration the way controller-runtime does: the first file in
 * $KUBECONFIG if set; else the in-cluster service account if
 * KUBERNETES_SERVICE_HOST is set; else $HOME/.kube/config. `context` applies
 * to the kubeconfig cases (NULL: current-context). */
int kubeconfig_load_default(struct kube_config *out, const char *context, struct kerr *e);

/* In-cluster configuration: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
 * (IPv6 hosts bracketed), sa_dir/ca.crt, sa_dir/token (as token_file) and
 * sa_dir/namespace if present. sa_dir NULL means $NIMBUS_SERVICE_ACCOUNT_DIR
 * if set and not empty, else KUBECONFIG_SA_DIR. */
int kubeconfig_in_cluster(struct kube_config *out, const char *sa_dir, struct kerr *e);

/* Free what the struct owns and zero it. NULL or zeroed is fine. */
void kube_config_free(struct kube_config *c);

/* A bearer token that follows cfg->token_file (or is cfg->token). */
struct kubeconfig_token;

/* Copies what it needs from cfg; cfg may be freed afterwards. With a token
 * file, reads it now (failing if it is missing or empty) and then stat()s it
 * at most every recheck_ms milliseconds (< 0: on every use), re-reading it
 * when its inode, size or mtime changed, and at least once a minute anyway.
 * The caller owns *out and frees it with kubeconfig_token_free() once no
 * thread uses it. */
int kubeconfig_token_new(struct kubeconfig_token **out, const struct kube_config *cfg,
			 long recheck_ms, struct kerr *e);

/* The current token as a fresh NUL-terminated copy in *out, which the
 * caller frees with free(); *out is NULL when the configuration has no
 * token. If a re-read fails (the file is being replaced, or was emptied),
 * the last good token is returned: a stale token gets a 401 the caller can
 * retry, a missing one gets nothing. Returns 0 or KERR_NOMEM. */
int kubeconfig_token_get(struct kubeconfig_token *t, char **out, struct kerr *e);

void kubeconfig_token_free(struct kubeconfig_token *t);

#endif
