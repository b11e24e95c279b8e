#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kubeconfig.h"

#define CA_PEM "-----BEGIN CERTIFICATE-----\nQ0EgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
#define CERT_PEM "-----BEGIN CERTIFICATE-----\nY2xpZW50IGNlcnQ=\n-----END CERTIFICATE-----\n"
#define KEY_PEM "-----BEGIN PRIVATE KEY-----\nY2xpZW50IGtleQ==\n-----END PRIVATE KEY-----\n"

struct fx {
	char dir[64];
	char ca64[256], cert64[256], key64[256];
};

static void b64(const char *in, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)strlen(in));
}

static void rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		if (d) {
			struct dirent *de;
			while ((de = readdir(d)) != NULL) {
				if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
					continue;
				char sub[512];
				snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
				rm_rf(sub);
			}
			closedir(d);
		}
		rmdir(path);
	} else {
		unlink(path);
	}
}

/* Write dir/name (creating one level of subdirectory if name has one) and
 * return the full path in a static buffer. */
static const char *put(struct fx *f, const char *name, const char *content)
{
	static char path[512];
	const char *slash = strchr(name, '/');
	if (slash) {
		char sub[512];
		snprintf(sub, sizeof(sub), "%s/%.*s", f->dir, (int)(slash - name), name);
		mkdir(sub, 0700);
	}
	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(content, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	return path;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kubeconfig-test-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	b64(CA_PEM, f->ca64);
	b64(CERT_PEM, f->cert64);
	b64(KEY_PEM, f->key64);
	unsetenv("KUBECONFIG");
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	unsetenv(KUBECONFIG_SA_DIR_ENV);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* Two contexts: dev (client cert from -data fields, namespace) and prod (token). */
static const char *two_contexts(struct fx *f)
{
	static char buf[4096];
	snprintf(buf, sizeof(buf),
		 "apiVersion: v1\n"
		 "kind: Config\n"
		 "current-context: dev\n"
		 "clusters:\n"
		 "- name: dev-cluster\n"
		 "  cluster:\n"
		 "    server: https://10.0.0.1:6443/\n"
		 "    certificate-authority-data: %s\n"
		 "- name: prod-cluster\n"
		 "  cluster:\n"
		 "    server: https://prod.example:443\n"
		 "    insecure-skip-tls-verify: true\n"
		 "contexts:\n"
		 "- name: dev\n"
		 "  context: {cluster: dev-cluster, user: dev-user, namespace: team-a}\n"
		 "- name: prod\n"
		 "  context:\n"
		 "    cluster: prod-cluster\n"
		 "    user: prod-user\n"
		 "users:\n"
		 "- name: dev-user\n"
		 "  user:\n"
		 "    client-certificate-data: %s\n"
		 "    client-key-data: %s\n"
		 "- name: prod-user\n"
		 "  user:\n"
		 "    token: \"s3cr3t\"\n",
		 f->ca64, f->cert64, f->key64);
	return buf;
}

static void valid_with_data_fields(void **state)
{
	struct fx *f = *state;
	const char *path = put(f, "config", two_contexts(f));
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, path, NULL, &e), 0);
	assert_string_equal(c.server, "https://10.0.0.1:6443");
	assert_string_equal(c.ca_pem, CA_PEM);
	assert_int_equal(c.ca_pem_len, strlen(CA_PEM));
	assert_string_equal(c.cert_pem, CERT_PEM);
	assert_string_equal(c.key_pem, KEY_PEM);
	assert_int_equal(c.key_pem_len, strlen(KEY_PEM));
	assert_null(c.token);
	assert_null(c.token_file);
	assert_int_equal(c.insecure, 0);
	assert_string_equal(c.namespace, "team-a");
	assert_non_null(strstr(c.origin, path));
	assert_non_null(strstr(c.origin, "context \"dev\""));
	kube_config_free(&c);
	assert_null(c.server);
}

static void explicit_context_with_token_and_insecure(void **state)
{
	struct fx *f = *state;
	const char *path = put(f, "config", two_contexts(f));
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, path, "prod", &e), 0);
	assert_string_equal(c.server, "https://prod.example:443");
	assert_string_equal(c.token, "s3cr3t");
	assert_int_equal(c.insecure, 1);
	assert_null(c.ca_pem);
	assert_null(c.cert_pem);
	assert_null(c.namespace);
	kube_config_free(&c);
}

static void file_paths_relative_to_kubeconfig_dir(void **state)
{
	struct fx *f = *state;
	put(f, "kube/ca.crt", CA_PEM);
	put(f, "certs/client.crt", CERT_PEM);
	const char *key = put(f, "certs/client.key", KEY_PEM);
	char keyabs[512];
	snprintf(keyabs, sizeof(keyabs), "%s", key);
	put(f, "kube/tok", "  file-token\n");
	char cfg[2048];
	snprintf(cfg, sizeof(cfg),
		 "current-context: c\n"
		 "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443', certificate-authority: ca.crt}}]\n"
		 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
		 "users:\n"
		 "- name: u\n"
		 "  user:\n"
		 "    client-certificate: ../certs/client.crt\n"
		 "    client-key: %s\n"
		 "    tokenFile: tok\n",
		 keyabs);
	const char *path = put(f, "kube/config", cfg);
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, path, NULL, &e), 0);
	assert_string_equal(c.ca_pem, CA_PEM);
	assert_string_equal(c.cert_pem, CERT_PEM);
	assert_string_equal(c.key_pem, KEY_PEM);
	char want[512];
	snprintf(want, sizeof(want), "%s/kube/tok", f->dir);
	assert_string_equal(c.token_file, want);

	struct kubeconfig_token *t;
	char *tok;
	assert_int_equal(kubeconfig_token_new(&t, &c, -1, &e), 0);
	assert_int_equal(kubeconfig_token_get(t, &tok, &e), 0);
	assert_string_equal(tok, "file-token");
	free(tok);
	kubeconfig_token_free(t);
	kube_config_free(&c);
}

static void missing_ca_file_names_the_path(void **state)
{
	struct fx *f = *state;
	const char *path = put(f, "config",
			       "current-context: c\n"
			       "clusters: [{name: k, cluster: {server: 'https://h:1', certificate-authority: nope/ca.crt}}]\n"
			       "contexts: [{name: c, context: {cluster: k}}]\n");
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, path, NULL, &e), KERR_CONFIG);
	char want[256];
	snprintf(want, sizeof(want), "cannot read certificate-authority %s/nope/ca.crt", f->dir);
	assert_non_null(strstr(e.message, want));
	assert_non_null(strstr(e.message, "cluster \"k\""));
	assert_null(c.server);
}

static void missing_context(void **state)
{
	struct fx *f = *state;
	const char *path = put(f, "config", two_contexts(f));
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, path, "foo", &e), KERR_CONFIG);
	char want[256];
	snprintf(want, sizeof(want), "kubeconfig %s: context \"foo\" not found; available: dev, prod", path);
	assert_string_equal(e.message, want);
	assert_null(c.server);
}

static void no_current_context_lists_contexts(void **state)
{
	struct fx *f = *state;
	const char *path = put(f, "config",
			       "clusters: [{name: k, cluster: {server: 'https://h:1'}}]\n"
			       "contexts: [{name: a, context: {cluster: k}}, {name: b, context: {cluster: k}}]\n");
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, path, NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "no current-context"));
	assert_non_null(strstr(e.message, "available: a, b"));
}

static void missing_cluster_and_user(void **state)
{
	struct fx *f = *state;
	const char *path = put(f, "config",
			       "current-context: c\n"
			       "clusters: [{name: k, cluster: {server: 'https://h:1'}}]\n"
			       "contexts:\n"
			       "- {name: c, context: {cluster: nope, user: u}}\n"
			       "- {name: d, context: {cluster: k, user: ghost}}\n"
			       "users: [{name: u, user: {token: x}}]\n");
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, path, NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "context \"c\" refers to cluster \"nope\" not found; available: k"));
	kerr_clear(&e);
	assert_int_equal(kubeconfig_load(&c, path, "d", &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "context \"d\" refers to user \"ghost\" not found; available: u"));
}

static void cluster_without_server(void **state)
{
	struct fx *f = *state;
	const char *path = put(f, "config",
			       "current-context: c\n"
			       "clusters: [{name: k, cluster: {insecure-skip-tls-verify: true}}]\n"
			       "contexts: [{name: c, context: {cluster: k}}]\n");
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, path, NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "cluster \"k\" has no server"));
}

static void bad_base64(void **state)
{
	struct fx *f = *state;
	char cfg[2048];
	const char *fmt = "current-context: c\n"
			  "clusters: [{name: k, cluster: {server: 'https://h:1', certificate-authority-data: \"%s\"}}]\n"
			  "contexts: [{name: c, context: {cluster: k}}]\n";
	struct kube_config c;
	struct kerr e = { 0 };

	snprintf(cfg, sizeof(cfg), fmt, "not*base64!");
	assert_int_equal(kubeconfig_load(&c, put(f, "config", cfg), NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "cluster \"k\": certificate-authority-data is not valid base64"));

	kerr_clear(&e);
	snprintf(cfg, sizeof(cfg), fmt, "aGVsbG8gd29ybGQ="); /* "hello world" */
	assert_int_equal(kubeconfig_load(&c, put(f, "config", cfg), NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "not PEM"));

	kerr_clear(&e);
	snprintf(cfg, sizeof(cfg), fmt, "-----BEGIN CERTIFICATE-----\\nQUJD\\n-----END CERTIFICATE-----\\n");
	assert_int_equal(kubeconfig_load(&c, put(f, "config", cfg), NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "holds PEM text; it must be base64-encoded"));
}

static void not_yaml(void **state)
{
	struct fx *f = *state;
	const char *path = put(f, "config", "clusters:\n  - name: [unclosed\n  server: x\n");
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, path, NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "is not valid YAML"));
	assert_non_null(strstr(e.message, "line "));
	assert_non_null(strstr(e.message, path));

	kerr_clear(&e);
	assert_int_equal(kubeconfig_load(&c, put(f, "config", "just a string\n"), NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "not a mapping"));
}

static void empty_file(void **state)
{
	struct fx *f = *state;
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, put(f, "config", ""), NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "is empty"));
	kerr_clear(&e);
	assert_int_equal(kubeconfig_load(&c, put(f, "config", "# only a comment\n\n"), NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "is empty"));
}

static void missing_file(void **state)
{
	struct fx *f = *state;
	char path[256];
	snprintf(path, sizeof(path), "%s/absent", f->dir);
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, path, NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "cannot read kubeconfig"));
	assert_non_null(strstr(e.message, "No such file"));
}

static void json_kubeconfig_and_yes_bool(void **state)
{
	struct fx *f = *state;
	const char *path = put(f, "config",
			       "{\"current-context\": \"c\",\n"
			       " \"clusters\": [{\"name\": \"k\", \"cluster\": {\"server\": \"https://h:1\", \"insecure-skip-tls-verify\": yes}}],\n"
			       " \"contexts\": [{\"name\": \"c\", \"context\": {\"cluster\": \"k\", \"namespace\": null}}]}\n");
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, path, NULL, &e), 0);
	assert_int_equal(c.insecure, 1);
	assert_null(c.namespace);
	kube_config_free(&c);
}

static void insecure_with_ca_is_refused(void **state)
{
	struct fx *f = *state;
	char cfg[1024];
	snprintf(cfg, sizeof(cfg),
		 "current-context: c\n"
		 "clusters: [{name: k, cluster: {server: 'https://h:1', insecure-skip-tls-verify: true, certificate-authority-data: %s}}]\n"
		 "contexts: [{name: c, context: {cluster: k}}]\n",
		 f->ca64);
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, put(f, "config", cfg), NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "both insecure-skip-tls-verify and a certificate authority"));

	kerr_clear(&e);
	assert_int_equal(kubeconfig_load(&c, put(f, "config",
						  "current-context: c\n"
						  "clusters: [{name: k, cluster: {server: 'https://h:1', insecure-skip-tls-verify: maybe}}]\n"
						  "contexts: [{name: c, context: {cluster: k}}]\n"),
					 NULL, &e),
			 KERR_CONFIG);
	assert_non_null(strstr(e.message, "\"maybe\", not true or false"));
}

static void unsupported_auth_and_half_cert(void **state)
{
	struct fx *f = *state;
	char cfg[2048];
	snprintf(cfg, sizeof(cfg),
		 "current-context: a\n"
		 "clusters: [{name: k, cluster: {server: 'https://h:1'}}]\n"
		 "contexts: [{name: a, context: {cluster: k, user: plug}}, {name: b, context: {cluster: k, user: half}}]\n"
		 "users:\n"
		 "- {name: plug, user: {exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}}}\n"
		 "- {name: half, user: {client-certificate-data: %s}}\n",
		 f->cert64);
	const char *path = put(f, "config", cfg);
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load(&c, path, NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "user \"plug\" uses an exec credential plugin"));
	kerr_clear(&e);
	assert_int_equal(kubeconfig_load(&c, path, "b", &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "user \"half\" has a client certificate but no client key"));
}

static void kubeconfig_env_with_two_paths(void **state)
{
	struct fx *f = *state;
	char first[256], second[256], list[600];
	snprintf(first, sizeof(first), "%s", put(f, "one",
		 "current-context: c\n"
		 "clusters: [{name: k, cluster: {server: 'https://first:1'}}]\n"
		 "contexts: [{name: c, context: {cluster: k}}]\n"));
	snprintf(second, sizeof(second), "%s", put(f, "two",
		 "current-context: c\n"
		 "clusters: [{name: k, cluster: {server: 'https://second:1'}}]\n"
		 "contexts: [{name: c, context: {cluster: k}}, {name: only-in-two, context: {cluster: k}}]\n"));
	snprintf(list, sizeof(list), ":%s:%s", first, second);
	setenv("KUBECONFIG", list, 1);
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load_default(&c, NULL, &e), 0);
	assert_string_equal(c.server, "https://first:1");
	kube_config_free(&c);

	assert_int_equal(kubeconfig_load_default(&c, "only-in-two", &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, first));
	assert_non_null(strstr(e.message, "only the first is read"));
	unsetenv("KUBECONFIG");
}

static void home_fallback_and_in_cluster_order(void **state)
{
	struct fx *f = *state;
	put(f, ".kube/config",
	    "current-context: c\n"
	    "clusters: [{name: k, cluster: {server: 'https://home:1'}}]\n"
	    "contexts: [{name: c, context: {cluster: k}}]\n");
	char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	setenv("HOME", f->dir, 1);
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load_default(&c, NULL, &e), 0);
	assert_string_equal(c.server, "https://home:1");
	kube_config_free(&c);

	/* In a pod the service account comes before ~/.kube/config. */
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	int rc = kubeconfig_load_default(&c, NULL, &e);
	if (rc == 0) {
		/* Running inside a real pod: the in-cluster config won. */
		assert_string_equal(c.server, "https://10.96.0.1:443");
		kube_config_free(&c);
	} else {
		assert_non_null(strstr(e.message, "in-cluster config (" KUBECONFIG_SA_DIR ")"));
	}
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	if (old_home) {
		setenv("HOME", old_home, 1);
		free(old_home);
	}
}

static void in_cluster(void **state)
{
	struct fx *f = *state;
	put(f, "sa/ca.crt", CA_PEM);
	put(f, "sa/token", "tok-1\n");
	put(f, "sa/namespace", "tenant-x\n");
	char sa[256];
	snprintf(sa, sizeof(sa), "%s/sa", f->dir);
	struct kube_config c;
	struct kerr e = { 0 };

	assert_int_equal(kubeconfig_in_cluster(&c, sa, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "KUBERNETES_SERVICE_HOST"));

	kerr_clear(&e);
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(kubeconfig_in_cluster(&c, sa, &e), 0);
	assert_string_equal(c.server, "https://10.96.0.1:443");
	assert_string_equal(c.ca_pem, CA_PEM);
	assert_string_equal(c.namespace, "tenant-x");
	assert_null(c.token);
	char want[300];
	snprintf(want, sizeof(want), "%s/token", sa);
	assert_string_equal(c.token_file, want);
	kube_config_free(&c);

	setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
	assert_int_equal(kubeconfig_in_cluster(&c, sa, &e), 0);
	assert_string_equal(c.server, "https://[fd00:10:96::1]:443");
	kube_config_free(&c);

	put(f, "sa/token", "\n");
	assert_int_equal(kubeconfig_in_cluster(&c, sa, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "/sa/token is empty"));
	unlink(want);
	kerr_clear(&e);
	assert_int_equal(kubeconfig_in_cluster(&c, sa, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "cannot read token file"));
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

/* NIMBUS_SERVICE_ACCOUNT_DIR moves the default service-account directory,
 * for kubeconfig_in_cluster(NULL) and so for kubeconfig_load_default(); an
 * explicit sa_dir still wins, and an empty variable counts as unset. */
static void in_cluster_sa_dir_from_env(void **state)
{
	struct fx *f = *state;
	put(f, "sa/ca.crt", CA_PEM);
	put(f, "sa/token", "tok-env\n");
	put(f, "sa/namespace", "nimbus-system\n");
	char sa[256], want[300];
	snprintf(sa, sizeof(sa), "%s/sa", f->dir);
	snprintf(want, sizeof(want), "%s/token", sa);
	setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
	setenv(KUBECONFIG_SA_DIR_ENV, sa, 1);
	struct kube_config c;
	struct kerr e = { 0 };

	assert_int_equal(kubeconfig_load_default(&c, NULL, &e), 0);
	assert_string_equal(c.server, "https://127.0.0.1:6443");
	assert_string_equal(c.ca_pem, CA_PEM);
	assert_string_equal(c.token_file, want);
	assert_string_equal(c.namespace, "nimbus-system");
	assert_non_null(strstr(c.origin, sa));
	kube_config_free(&c);

	char other[256];
	snprintf(other, sizeof(other), "%s/elsewhere", f->dir);
	assert_int_equal(kubeconfig_in_cluster(&c, other, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, other));

	kerr_clear(&e);
	setenv(KUBECONFIG_SA_DIR_ENV, "", 1);
	int rc = kubeconfig_in_cluster(&c, NULL, &e);
	if (rc == 0)
		kube_config_free(&c); /* running inside a real pod */
	else
		assert_non_null(strstr(e.message, "in-cluster config (" KUBECONFIG_SA_DIR ")"));
	unsetenv(KUBECONFIG_SA_DIR_ENV);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

static char *get_token(struct kubeconfig_token *t)
{
	char *tok = NULL;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_token_get(t, &tok, &e), 0);
	return tok;
}

static void expect_token(struct kubeconfig_token *t, const char *want)
{
	char *tok = get_token(t);
	assert_non_null(tok);
	assert_string_equal(tok, want);
	free(tok);
}

static void token_rotation(void **state)
{
	struct fx *f = *state;
	put(f, "sa/ca.crt", CA_PEM);
	put(f, "sa/token", "tok-1\n");
	char sa[256];
	snprintf(sa, sizeof(sa), "%s/sa", f->dir);
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_in_cluster(&c, sa, &e), 0);

	struct kubeconfig_token *t, *slow;
	assert_int_equal(kubeconfig_token_new(&t, &c, -1, &e), 0);
	assert_int_equal(kubeconfig_token_new(&slow, &c, 60000, &e), 0);
	expect_token(t, "tok-1");

	/* The kubelet swaps the file atomically: same size, new inode. */
	put(f, "sa/token.new", "tok-2\n");
	char tokpath[300], newpath[300];
	snprintf(tokpath, sizeof(tokpath), "%s/token", sa);
	snprintf(newpath, sizeof(newpath), "%s/token.new", sa);
	assert_int_equal(rename(newpath, tokpath), 0);
	expect_token(t, "tok-2");
	/* Throttled: not re-checked within recheck_ms. */
	expect_token(slow, "tok-1");

	/* Rewritten in place with another size. */
	put(f, "sa/token", "token-three\n");
	expect_token(t, "token-three");

	/* Emptied mid-write, then gone: the last good token stays. */
	put(f, "sa/token", "");
	expect_token(t, "token-three");
	assert_int_equal(unlink(tokpath), 0);
	expect_token(t, "token-three");

	kubeconfig_token_free(slow);
	kubeconfig_token_free(t);

	/* Static tokens and no token at all. */
	struct kube_config s = { .token = "static" };
	assert_int_equal(kubeconfig_token_new(&t, &s, 0, &e), 0);
	expect_token(t, "static");
	kubeconfig_token_free(t);
	struct kube_config none = { 0 };
	assert_int_equal(kubeconfig_token_new(&t, &none, 0, &e), 0);
	assert_null(get_token(t));
	kubeconfig_token_free(t);

	/* A token file that is missing at start is an error naming it. */
	assert_int_equal(kubeconfig_token_new(&t, &c, 0, &e), KERR_CONFIG);
	assert_null(t);
	assert_non_null(strstr(e.message, tokpath));
	kube_config_free(&c);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

/* kubeconfig_load_buffer: the same document from memory, not NUL-terminated;
 * relative paths against the named file's directory, or as given without a
 * name; failures leave the struct zeroed. */
static void load_from_buffer(void **state)
{
	struct fx *f = *state;
	put(f, "kube/ca.crt", CA_PEM);
	const char *text = two_contexts(f);
	size_t len = strlen(text);
	char *copy = malloc(len);
	assert_non_null(copy);
	memcpy(copy, text, len); /* no NUL after the last byte */
	struct kube_config c;
	struct kerr e = { 0 };
	assert_int_equal(kubeconfig_load_buffer(&c, copy, len, "/mem/config", "prod", &e), 0);
	assert_string_equal(c.server, "https://prod.example:443");
	assert_string_equal(c.token, "s3cr3t");
	assert_non_null(strstr(c.origin, "/mem/config"));
	kube_config_free(&c);
	free(copy);

	const char *rel = "current-context: c\n"
			  "clusters: [{name: k, cluster: {server: 'https://h:1', certificate-authority: ca.crt}}]\n"
			  "contexts: [{name: c, context: {cluster: k}}]\n";
	char path[300];
	snprintf(path, sizeof(path), "%s/kube/config", f->dir);
	assert_int_equal(kubeconfig_load_buffer(&c, rel, strlen(rel), path, NULL, &e), 0);
	assert_string_equal(c.ca_pem, CA_PEM);
	kube_config_free(&c);

	/* No name: "<memory>" in messages, ca.crt taken from the current
	 * directory, where there is none. */
	assert_int_equal(kubeconfig_load_buffer(&c, rel, strlen(rel), NULL, NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "<memory>"));
	assert_null(c.server);

	/* Found by fuzz_kubeconfig: "https://" passed, and lost its slashes. */
	const char *nohost = "current-context: c\n"
			     "clusters: [{name: k, cluster: {server: 'https://', insecure-skip-tls-verify: true}}]\n"
			     "contexts: [{name: c, context: {cluster: k}}]\n";
	kerr_clear(&e);
	assert_int_equal(kubeconfig_load_buffer(&c, nohost, strlen(nohost), NULL, NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "names no host"));
	assert_null(c.server);

	kerr_clear(&e);
	assert_int_equal(kubeconfig_load_buffer(&c, "a: [", 4, NULL, NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "not valid YAML"));
	kerr_clear(&e);
	assert_int_equal(kubeconfig_load_buffer(&c, NULL, 0, NULL, NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "empty"));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(valid_with_data_fields),
		T(explicit_context_with_token_and_insecure),
		T(file_paths_relative_to_kubeconfig_dir),
		T(missing_ca_file_names_the_path),
		T(missing_context),
		T(no_current_context_lists_contexts),
		T(missing_cluster_and_user),
		T(cluster_without_server),
		T(bad_base64),
		T(not_yaml),
		T(empty_file),
		T(missing_file),
		T(json_kubeconfig_and_yes_bool),
		T(insecure_with_ca_is_refused),
		T(unsupported_auth_and_half_cert),
		T(kubeconfig_env_with_two_paths),
		T(home_fallback_and_in_cluster_order),
		T(in_cluster),
		T(in_cluster_sa_dir_from_env),
		T(token_rotation),
		T(load_from_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
