#include "kubeconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

/* Real kubeconfigs are a few KiB; this only stops a wrong path (a log, a
 * disk image) from being read into memory. */
#define KC_MAX_FILE (16u << 20)
/* Service-account JWTs are about 1 KiB. */
#define KC_MAX_TOKEN (64u << 10)
/* client-go re-reads token files every minute whatever their stat says;
 * so do we, in case a rotation kept inode, size and mtime. */
#define KC_TOKEN_MAX_AGE_NS (60LL * 1000000000LL)

static char *kc_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *kc_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	char *s = malloc((size_t)n + 1);
	if (!s)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* Read a whole file into a NUL-terminated buffer (owned by the caller).
 * st receives the stat of the file actually read, so that a token source
 * compares later stat()s with what it really holds. Returns 0 or an errno
 * value (EFBIG when larger than max). */
static int kc_slurp(const char *path, size_t max, char **out, size_t *len, struct stat *st)
{
	*out = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	struct stat sb;
	if (fstat(fd, &sb) != 0) {
		int err = errno;
		close(fd);
		return err;
	}
	if (S_ISDIR(sb.st_mode)) {
		close(fd);
		return EISDIR;
	}
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	if (!buf) {
		close(fd);
		return ENOMEM;
	}
	for (;;) {
		if (n + 1 >= cap) {
			if (cap > max) {
				free(buf);
				close(fd);
				return EFBIG;
			}
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				close(fd);
				return ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int err = errno;
			free(buf);
			close(fd);
			return err;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n > max) {
		free(buf);
		return EFBIG;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	if (st)
		*st = sb;
	return 0;
}

static const char *kc_errstr(int err)
{
	return err == EFBIG ? "file too large" : strerror(err);
}

/* Relative paths in a kubeconfig are relative to the file that holds them,
 * as in client-go. Returns a new string owned by the caller, or NULL. */
static char *kc_resolve(const char *dir, const char *p)
{
	if (p[0] == '/' || !dir)
		return strdup(p);
	return kc_printf("%s/%s", dir, p);
}

static char *kc_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	size_t n = (size_t)(slash - path);
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, path, n);
		d[n] = '\0';
	}
	return d;
}

/* A PEM blob for libcurl must hold at least one BEGIN line; catching this
 * here names the field instead of failing later in a TLS handshake. */
static int kc_is_pem(const char *s)
{
	return strstr(s, "-----BEGIN ") != NULL;
}

/* Decode a base64 -data field into NUL-terminated PEM (owned by *out). */
static int kc_decode_pem(const char *where, const char *field, const char *b64, char **out,
			 size_t *out_len, struct kerr *e)
{
	size_t in_len = strlen(b64);
	if (in_len > INT_MAX / 2)
		return kerr_set(e, KERR_TOO_LARGE, "%s: %s is too large", where, field);
	unsigned char *buf = malloc(in_len / 4 * 3 + 4);
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	if (!buf || !ctx) {
		free(buf);
		EVP_ENCODE_CTX_free(ctx);
		return kerr_set(e, KERR_NOMEM, "%s: out of memory decoding %s", where, field);
	}
	int n = 0, m = 0;
	EVP_DecodeInit(ctx);
	int ok = EVP_DecodeUpdate(ctx, buf, &n, (const unsigned char *)b64, (int)in_len) >= 0 &&
		 EVP_DecodeFinal(ctx, buf + n, &m) >= 0;
	EVP_ENCODE_CTX_free(ctx);
	if (!ok) {
		free(buf);
		return kerr_set(e, KERR_CONFIG, "%s: %s is not valid base64; it must hold the base64 of a PEM file (base64 -w0 FILE)",
				where, field);
	}
	buf[n + m] = '\0';
	if (!kc_is_pem((const char *)buf)) {
		free(buf);
		if (kc_is_pem(b64))
			return kerr_set(e, KERR_CONFIG, "%s: %s holds PEM text; it must be base64-encoded (base64 -w0 FILE), or use the field without -data and a file path",
					where, field);
		return kerr_set(e, KERR_CONFIG, "%s: %s decodes to something that is not PEM (no -----BEGIN line)",
				where, field);
	}
	*out = (char *)buf;
	*out_len = (size_t)(n + m);
	return 0;
}

/* Read a PEM file named by `field`, resolved against dir. */
static int kc_read_pem(const char *where, const char *field, const char *dir, const char *p,
		       char **out, size_t *out_len, struct kerr *e)
{
	char *path = kc_resolve(dir, p);
	if (!path)
		return kerr_set(e, KERR_NOMEM, "%s: out of memory", where);
	int rc = 0;
	int err = kc_slurp(path, KC_MAX_FILE, out, out_len, NULL);
	if (err) {
		rc = kerr_set(e, err == ENOMEM ? KERR_NOMEM : KERR_CONFIG,
			      "%s: cannot read %s %s: %s; fix the path (a relative path is taken from the kubeconfig's directory)",
			      where, field, path, kc_errstr(err));
	} else if (!kc_is_pem(*out)) {
		rc = kerr_set(e, KERR_CONFIG, "%s: %s %s is not a PEM file (no -----BEGIN line)", where, field, path);
		free(*out);
		*out = NULL;
		*out_len = 0;
	}
	free(path);
	return rc;
}

/* Check that a token file yields a token now, so that a wrong path is
 * reported with the kubeconfig that named it. */
static int kc_check_token_file(const char *where, const char *path, struct kerr *e)
{
	char *buf;
	size_t len;
	int err = kc_slurp(path, KC_MAX_TOKEN, &buf, &len, NULL);
	if (err)
		return kerr_set(e, KERR_CONFIG, "%s: cannot read token file %s: %s", where, path, kc_errstr(err));
	size_t i = 0;
	while (i < len && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t'))
		i++;
	free(buf);
	if (i == len)
		return kerr_set(e, KERR_CONFIG, "%s: token file %s is empty", where, path);
	return 0;
}

/* ---- YAML navigation over a loaded libyaml document ---- */

struct kc_file {
	const char *path;
	char *dir;
	yaml_document_t doc;
};

static yaml_node_t *kc_get(struct kc_file *f, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	size_t klen = strlen(key);
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&f->doc, p->key);
		if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == klen &&
		    memcmp(k->data.scalar.value, key, klen) == 0)
			return yaml_document_get_node(&f->doc, p->value);
	}
	return NULL;
}

/* YAML 1.1 nulls, which is what kubectl's YAML reader accepts. */
static int kc_is_null(const yaml_node_t *n)
{
	if (!n)
		return 1;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	const char *v = (const char *)n->data.scalar.value;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* The string at map[key]; *out NULL when absent, null or empty. The string
 * is owned by the document. */
static int kc_str(struct kc_file *f, const char *where, yaml_node_t *map, const char *key,
		  const char **out, struct kerr *e)
{
	*out = NULL;
	yaml_node_t *n = kc_get(f, map, key);
	if (kc_is_null(n))
		return 0;
	if (n->type != YAML_SCALAR_NODE)
		return kerr_set(e, KERR_CONFIG, "%s: %s is not a string (line %zu)", where, key,
				n->start_mark.line + 1);
	const char *v = (const char *)n->data.scalar.value;
	if (strlen(v) != n->data.scalar.length)
		return kerr_set(e, KERR_CONFIG, "%s: %s contains a NUL byte (line %zu)", where, key,
				n->start_mark.line + 1);
	if (v[0] != '\0')
		*out = v;
	return 0;
}

static int kc_bool(struct kc_file *f, const char *where, yaml_node_t *map, const char *key,
		   int *out, struct kerr *e)
{
	const char *v;
	*out = 0;
	int rc = kc_str(f, where, map, key, &v, e);
	if (rc || !v)
		return rc;
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON" };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(v, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(v, no[i]) == 0)
			return 0;
	}
	return kerr_set(e, KERR_CONFIG, "%s: %s is \"%s\", not true or false", where, key, v);
}

/* The names in root[list], comma separated, for "available: ..." hints. */
static void kc_names(struct kc_file *f, yaml_node_t *seq, char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	if (!kc_is_null(seq) && seq->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
			yaml_node_t *nn = kc_get(f, yaml_document_get_node(&f->doc, *it), "name");
			if (!nn || nn->type != YAML_SCALAR_NODE)
				continue;
			int w = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "",
					 (const char *)nn->data.scalar.value);
			if (w < 0 || (size_t)w >= cap - used) {
				memcpy(buf + cap - 4, "...", 4);
				return;
			}
			used += (size_t)w;
		}
	}
	if (used == 0)
		snprintf(buf, cap, "none");
}

/* Find the entry called `name` in the list root[list] (clusters, contexts,
 * users) and return its `inner` mapping. `what` names the reference in the
 * error ("context \"x\" refers to cluster"). */
static int kc_find(struct kc_file *f, yaml_node_t *root, const char *list, const char *inner,
		   const char *name, const char *what, yaml_node_t **out, struct kerr *e)
{
	*out = NULL;
	yaml_node_t *seq = kc_get(f, root, list);
	if (!kc_is_null(seq) && seq->type != YAML_SEQUENCE_NODE)
		return kerr_set(e, KERR_CONFIG, "kubeconfig %s: %s is not a list (line %zu)", f->path, list,
				seq->start_mark.line + 1);
	if (!kc_is_null(seq)) {
		for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
			yaml_node_t *item = yaml_document_get_node(&f->doc, *it);
			yaml_node_t *nn = kc_get(f, item, "name");
			if (!nn || nn->type != YAML_SCALAR_NODE ||
			    strcmp((const char *)nn->data.scalar.value, name) != 0)
				continue;
			yaml_node_t *in = kc_get(f, item, inner);
			if (kc_is_null(in) || in->type != YAML_MAPPING_NODE)
				return kerr_set(e, KERR_CONFIG, "kubeconfig %s: %s entry \"%s\" has no %s: mapping (line %zu)",
						f->path, list, name, inner, item->start_mark.line + 1);
			*out = in;
			return 0;
		}
	}
	char avail[256];
	kc_names(f, seq, avail, sizeof(avail));
	return kerr_set(e, KERR_CONFIG, "kubeconfig %s: %s \"%s\" not found; available: %s",
			f->path, what, name, avail);
}

/* Copy a PEM from either field: the -data one (base64) wins, like in client-go. */
static int kc_pem_field(struct kc_file *f, const char *where, yaml_node_t *map, const char *field,
			char **out, size_t *out_len, struct kerr *e)
{
	char data_key[64];
	snprintf(data_key, sizeof(data_key), "%s-data", field);
	const char *data, *file;
	int rc = kc_str(f, where, map, data_key, &data, e);
	if (!rc)
		rc = kc_str(f, where, map, field, &file, e);
	if (rc)
		return rc;
	if (data)
		return kc_decode_pem(where, data_key, data, out, out_len, e);
	if (file)
		return kc_read_pem(where, field, f->dir, file, out, out_len, e);
	return 0;
}

static int kc_from_cluster(struct kc_file *f, yaml_node_t *cl, const char *name,
			   struct kube_config *c, struct kerr *e)
{
	char where[512];
	snprintf(where, sizeof(where), "kubeconfig %s: cluster \"%s\"", f->path, name);
	const char *server;
	int rc = kc_str(f, where, cl, "server", &server, e);
	if (rc)
		return rc;
	if (!server)
		return kerr_set(e, KERR_CONFIG, "%s has no server; set clusters[].cluster.server to the apiserver URL", where);
	if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)
		return kerr_set(e, KERR_CONFIG, "%s: server \"%s\" is not an http(s) URL; write it as https://HOST:PORT",
				where, server);
	const char *host = server + (server[4] == 's' ? 8 : 7);
	if (*host == '\0' || *host == '/')
		return kerr_set(e, KERR_CONFIG, "%s: server \"%s\" names no host; write it as https://HOST:PORT",
				where, server);
	c->server = strdup(server);
	if (!c->server)
		return kerr_set(e, KERR_NOMEM, "%s: out of memory", where);
	size_t sl = strlen(c->server);
	while (sl > 0 && c->server[sl - 1] == '/')
		c->server[--sl] = '\0';
	rc = kc_bool(f, where, cl, "insecure-skip-tls-verify", &c->insecure, e);
	if (!rc)
		rc = kc_pem_field(f, where, cl, "certificate-authority", &c->ca_pem, &c->ca_pem_len, e);
	if (rc)
		return rc;
	if (c->insecure && c->ca_pem)
		return kerr_set(e, KERR_CONFIG, "%s sets both insecure-skip-tls-verify and a certificate authority; drop one (kubectl refuses this too)",
				where);
	return 0;
}

static int kc_from_user(struct kc_file *f, yaml_node_t *u, const char *name,
			struct kube_config *c, struct kerr *e)
{
	char where[512];
	snprintf(where, sizeof(where), "kubeconfig %s: user \"%s\"", f->path, name);
	int rc = kc_pem_field(f, where, u, "client-certificate", &c->cert_pem, &c->cert_pem_len, e);
	if (!rc)
		rc = kc_pem_field(f, where, u, "client-key", &c->key_pem, &c->key_pem_len, e);
	if (rc)
		return rc;
	if (!c->cert_pem != !c->key_pem)
		return kerr_set(e, KERR_CONFIG, "%s has a client %s but no client %s; set both client-certificate(-data) and client-key(-data)",
				where, c->cert_pem ? "certificate" : "key", c->cert_pem ? "key" : "certificate");
	const char *token, *token_file;
	rc = kc_str(f, where, u, "token", &token, e);
	if (!rc)
		rc = kc_str(f, where, u, "tokenFile", &token_file, e);
	if (rc)
		return rc;
	if (token && !(c->token = strdup(token)))
		return kerr_set(e, KERR_NOMEM, "%s: out of memory", where);
	if (token_file) {
		if (!(c->token_file = kc_resolve(f->dir, token_file)))
			return kerr_set(e, KERR_NOMEM, "%s: out of memory", where);
		/* With a static token as fallback a missing file is no error,
		 * as in client-go, which reads tokenFile only without token. */
		if (!c->token && (rc = kc_check_token_file(where, c->token_file, e)) != 0)
			return rc;
	}
	if (c->cert_pem || c->token || c->token_file)
		return 0;
	if (!kc_is_null(kc_get(f, u, "exec")))
		return kerr_set(e, KERR_CONFIG, "%s uses an exec credential plugin, which this client does not run; use a token, tokenFile or client certificate",
				where);
	if (!kc_is_null(kc_get(f, u, "auth-provider")))
		return kerr_set(e, KERR_CONFIG, "%s uses an auth-provider, which this client does not support; use a token, tokenFile or client certificate",
				where);
	if (!kc_is_null(kc_get(f, u, "username")) || !kc_is_null(kc_get(f, u, "password")))
		return kerr_set(e, KERR_CONFIG, "%s uses basic auth, which the apiserver no longer accepts; use a token, tokenFile or client certificate",
				where);
	return 0;
}

static int kc_load_doc(struct kc_file *f, const char *context, struct kube_config *c, struct kerr *e)
{
	yaml_node_t *root = yaml_document_get_root_node(&f->doc);
	if (!root)
		return kerr_set(e, KERR_CONFIG, "kubeconfig %s is empty; point KUBECONFIG at a kubeconfig file (kubectl config view --raw shows one)",
				f->path);
	if (root->type != YAML_MAPPING_NODE)
		return kerr_set(e, KERR_CONFIG, "kubeconfig %s: the top level is not a mapping; is this a kubeconfig file?", f->path);

	char where[512];
	snprintf(where, sizeof(where), "kubeconfig %s", f->path);
	const char *ctx_name = context;
	int rc = 0;
	if (!ctx_name) {
		if ((rc = kc_str(f, where, root, "current-context", &ctx_name, e)) != 0)
			return rc;
		if (!ctx_name) {
			char avail[256];
			kc_names(f, kc_get(f, root, "contexts"), avail, sizeof(avail));
			return kerr_set(e, KERR_CONFIG, "kubeconfig %s: no current-context and no context given; available: %s; choose one with `kubectl config use-context NAME`",
					f->path, avail);
		}
	}
	yaml_node_t *ctx, *cl, *user = NULL;
	char what[300];
	if ((rc = kc_find(f, root, "contexts", "context", ctx_name, "context", &ctx, e)) != 0)
		return rc;

	snprintf(where, sizeof(where), "kubeconfig %s: context \"%s\"", f->path, ctx_name);
	const char *cl_name, *user_name, *ns;
	if ((rc = kc_str(f, where, ctx, "cluster", &cl_name, e)) != 0 ||
	    (rc = kc_str(f, where, ctx, "user", &user_name, e)) != 0 ||
	    (rc = kc_str(f, where, ctx, "namespace", &ns, e)) != 0)
		return rc;
	if (!cl_name)
		return kerr_set(e, KERR_CONFIG, "%s names no cluster; set contexts[].context.cluster", where);

	snprintf(what, sizeof(what), "context \"%s\" refers to cluster", ctx_name);
	if ((rc = kc_find(f, root, "clusters", "cluster", cl_name, what, &cl, e)) != 0)
		return rc;
	if (user_name) {
		snprintf(what, sizeof(what), "context \"%s\" refers to user", ctx_name);
		if ((rc = kc_find(f, root, "users", "user", user_name, what, &user, e)) != 0)
			return rc;
	}
	if ((rc = kc_from_cluster(f, cl, cl_name, c, e)) != 0)
		return rc;
	if (user && (rc = kc_from_user(f, user, user_name, c, e)) != 0)
		return rc;
	if (ns && !(c->namespace = strdup(ns)))
		return kerr_set(e, KERR_NOMEM, "kubeconfig %s: out of memory", f->path);
	if (!(c->origin = kc_printf("kubeconfig %s (context \"%s\")", f->path, ctx_name)))
		return kerr_set(e, KERR_NOMEM, "kubeconfig %s: out of memory", f->path);
	return 0;
}

int kubeconfig_load(struct kube_config *out, const char *path, const char *context, struct kerr *e)
{
	memset(out, 0, sizeof(*out));
	if (!path || !*path)
		return kerr_set(e, KERR_INVAL, "kubeconfig: no file given; set KUBECONFIG or create ~/.kube/config");
	char *text;
	size_t len;
	int err = kc_slurp(path, KC_MAX_FILE, &text, &len, NULL);
	if (err)
		return kerr_set(e, err == ENOMEM ? KERR_NOMEM : KERR_CONFIG,
				"cannot read kubeconfig %s: %s; point KUBECONFIG at a readable kubeconfig file",
				path, kc_errstr(err));
	int rc = kubeconfig_load_buffer(out, text, len, path, context, e);
	free(text);
	return rc;
}

int kubeconfig_load_buffer(struct kube_config *out, const char *text, size_t len, const char *path,
			   const char *context, struct kerr *e)
{
	memset(out, 0, sizeof(*out));
	if (!text && len)
		return kerr_set(e, KERR_INVAL, "kubeconfig: no buffer given");
	if (len > KC_MAX_FILE)
		return kerr_set(e, KERR_CONFIG, "kubeconfig %s: %s", path ? path : "<memory>", kc_errstr(EFBIG));
	struct kc_file f = { .path = path ? path : "<memory>" };
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser))
		return kerr_set(e, KERR_NOMEM, "kubeconfig %s: out of memory starting the YAML parser", f.path);
	yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
	int rc;
	if (!yaml_parser_load(&parser, &f.doc)) {
		rc = kerr_set(e, parser.error == YAML_MEMORY_ERROR ? KERR_NOMEM : KERR_CONFIG,
			      "kubeconfig %s is not valid YAML: %s at line %zu column %zu",
			      f.path, parser.problem ? parser.problem : "parse error",
			      parser.problem_mark.line + 1, parser.problem_mark.column + 1);
		yaml_parser_delete(&parser);
		return rc;
	}
	/* Without a path, relative paths are taken as given (from the
	 * current directory). */
	if (path && !(f.dir = kc_dirname(path)))
		rc = kerr_set(e, KERR_NOMEM, "kubeconfig %s: out of memory", f.path);
	else
		rc = kc_load_doc(&f, context, out, e);
	yaml_document_delete(&f.doc);
	yaml_parser_delete(&parser);
	free(f.dir);
	if (rc)
		kube_config_free(out);
	return rc;
}

int kubeconfig_in_cluster(struct kube_config *out, const char *sa_dir, struct kerr *e)
{
	memset(out, 0, sizeof(*out));
	if (!sa_dir) {
		const char *env = getenv(KUBECONFIG_SA_DIR_ENV);
		sa_dir = env && *env ? env : KUBECONFIG_SA_DIR;
	}
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	if (!host || !*host || !port || !*port)
		return kerr_set(e, KERR_CONFIG, "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set (they are inside a pod); outside a cluster set KUBECONFIG");
	char where[512];
	snprintf(where, sizeof(where), "in-cluster config (%s)", sa_dir);
	int rc = KERR_NOMEM;
	int v6 = strchr(host, ':') != NULL && host[0] != '[';
	char *ca_path = kc_printf("%s/ca.crt", sa_dir);
	char *ns_path = kc_printf("%s/namespace", sa_dir);
	out->server = kc_printf(v6 ? "https://[%s]:%s" : "https://%s:%s", host, port);
	out->token_file = kc_printf("%s/token", sa_dir);
	out->origin = strdup(where);
	if (!ca_path || !ns_path || !out->server || !out->token_file || !out->origin) {
		kerr_set(e, KERR_NOMEM, "%s: out of memory", where);
		goto err;
	}
	int err = kc_slurp(ca_path, KC_MAX_FILE, &out->ca_pem, &out->ca_pem_len, NULL);
	if (err) {
		rc = kerr_set(e, KERR_CONFIG, "%s: cannot read %s: %s; is the service account token mounted (automountServiceAccountToken)?",
			      where, ca_path, kc_errstr(err));
		goto err;
	}
	if (!kc_is_pem(out->ca_pem)) {
		rc = kerr_set(e, KERR_CONFIG, "%s: %s is not a PEM file", where, ca_path);
		goto err;
	}
	if ((rc = kc_check_token_file(where, out->token_file, e)) != 0)
		goto err;
	/* The namespace file is optional: projected volumes may leave it out. */
	size_t ns_len;
	err = kc_slurp(ns_path, 256, &out->namespace, &ns_len, NULL);
	if (err == 0) {
		while (ns_len > 0 && (out->namespace[ns_len - 1] == '\n' || out->namespace[ns_len - 1] == ' '))
			out->namespace[--ns_len] = '\0';
		if (ns_len == 0) {
			free(out->namespace);
			out->namespace = NULL;
		}
	} else if (err == ENOMEM) {
		rc = kerr_set(e, KERR_NOMEM, "%s: out of memory", where);
		goto err;
	}
	free(ca_path);
	free(ns_path);
	return 0;
err:
	free(ca_path);
	free(ns_path);
	kube_config_free(out);
	return rc;
}

int kubeconfig_load_default(struct kube_config *out, const char *context, struct kerr *e)
{
	memset(out, 0, sizeof(*out));
	const char *list = getenv("KUBECONFIG");
	if (list && *list) {
		const char *p = list;
		while (*p == ':')
			p++;
		if (*p) {
			size_t n = strcspn(p, ":");
			char *first = strndup(p, n);
			if (!first)
				return kerr_set(e, KERR_NOMEM, "kubeconfig: out of memory");
			int rc = kubeconfig_load(out, first, context, e);
			if (rc && e && p[n] == ':') {
				size_t len = strlen(e->message);
				snprintf(e->message + len, sizeof(e->message) - len,
					 " (KUBECONFIG lists several files; only the first is read)");
			}
			free(first);
			return rc;
		}
	}
	const char *svc = getenv("KUBERNETES_SERVICE_HOST");
	if (svc && *svc)
		return kubeconfig_in_cluster(out, NULL, e);
	const char *home = getenv("HOME");
	if (!home || !*home)
		return kerr_set(e, KERR_CONFIG, "kubeconfig: neither KUBECONFIG nor HOME is set, and not in a cluster; set KUBECONFIG");
	char *path = kc_printf("%s/.kube/config", home);
	if (!path)
		return kerr_set(e, KERR_NOMEM, "kubeconfig: out of memory");
	int rc = kubeconfig_load(out, path, context, e);
	free(path);
	return rc;
}

void kube_config_free(struct kube_config *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->ca_pem);
	free(c->cert_pem);
	free(c->key_pem);
	free(c->token);
	free(c->token_file);
	free(c->namespace);
	free(c->origin);
	memset(c, 0, sizeof(*c));
}

/* ---- token source ---- */

struct kubeconfig_token {
	pthread_mutex_t mu;    /* guards everything below */
	char *file;            /* NULL: the token is static */
	char *token;           /* last good token, or NULL */
	long recheck_ms;
	int64_t checked_ns;    /* monotonic time of the last stat() */
	int64_t read_ns;       /* monotonic time of the last successful read */
	struct stat st;        /* of the file the token was read from */
};

static int64_t kc_now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int kc_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Read the token file; on success replace t->token. Returns 0 or an errno
 * value (ENODATA for an empty file). Called with t->mu held or before t is
 * shared. */
static int kc_token_read(struct kubeconfig_token *t, int64_t now)
{
	char *buf;
	size_t len;
	struct stat st;
	int err = kc_slurp(t->file, KC_MAX_TOKEN, &buf, &len, &st);
	if (err)
		return err;
	size_t start = 0;
	while (start < len && strchr(" \t\r\n", buf[start]))
		start++;
	while (len > start && strchr(" \t\r\n", buf[len - 1]))
		len--;
	if (len == start) {
		free(buf);
		return ENODATA;
	}
	memmove(buf, buf + start, len - start);
	buf[len - start] = '\0';
	free(t->token);
	t->token = buf;
	t->st = st;
	t->read_ns = now;
	return 0;
}

int kubeconfig_token_new(struct kubeconfig_token **out, const struct kube_config *cfg,
			 long recheck_ms, struct kerr *e)
{
	*out = NULL;
	struct kubeconfig_token *t = calloc(1, sizeof(*t));
	if (!t)
		return kerr_set(e, KERR_NOMEM, "token source: out of memory");
	if (pthread_mutex_init(&t->mu, NULL) != 0) {
		free(t);
		return kerr_set(e, KERR_NOMEM, "token source: cannot create mutex");
	}
	t->recheck_ms = recheck_ms;
	const char *origin = cfg->origin ? cfg->origin : "kubeconfig";
	if ((cfg->token && !(t->token = strdup(cfg->token))) ||
	    (cfg->token_file && !(t->file = strdup(cfg->token_file)))) {
		kubeconfig_token_free(t);
		return kerr_set(e, KERR_NOMEM, "token source: out of memory");
	}
	if (t->file) {
		int64_t now = kc_now_ns();
		int err = kc_token_read(t, now);
		/* A static token stays usable while the file is missing. */
		if (err && !t->token) {
			kubeconfig_token_free(t);
			if (err == ENODATA)
				return kerr_set(e, KERR_CONFIG, "%s: token file %s is empty", origin, cfg->token_file);
			return kerr_set(e, KERR_CONFIG, "%s: cannot read token file %s: %s", origin,
					cfg->token_file, kc_errstr(err));
		}
		t->checked_ns = now;
	}
	*out = t;
	return 0;
}

int kubeconfig_token_get(struct kubeconfig_token *t, char **out, struct kerr *e)
{
	*out = NULL;
	pthread_mutex_lock(&t->mu);
	if (t->file) {
		int64_t now = kc_now_ns();
		if (t->recheck_ms < 0 || now - t->checked_ns >= (int64_t)t->recheck_ms * 1000000) {
			t->checked_ns = now;
			struct stat st;
			if (stat(t->file, &st) == 0 &&
			    (!kc_same_file(&st, &t->st) || now - t->read_ns >= KC_TOKEN_MAX_AGE_NS))
				(void)kc_token_read(t, now); /* on failure the last good token stays */
		}
	}
	int rc = 0;
	if (t->token && !(*out = strdup(t->token)))
		rc = kerr_set(e, KERR_NOMEM, "token source: out of memory");
	pthread_mutex_unlock(&t->mu);
	return rc;
}

void kubeconfig_token_free(struct kubeconfig_token *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->mu);
	free(t->file);
	free(t->token);
	free(t);
}
