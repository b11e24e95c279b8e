/*
 * fuzz_kubeconfig: the kubeconfig parser (libyaml underneath), through
 * kubeconfig_load_buffer.
 *
 * Input: the kubeconfig text. It is loaded as if it were the file
 * /nonexistent/nimbus-fuzz/config, so relative certificate and token paths
 * name nothing; absolute ones are read (run the fuzzer with stdin from
 * /dev/null: a path of /dev/stdin would wait on a terminal). Loaded with the
 * current-context, then with the context "c" (the seeds' name). Checks: on
 * success the server is an http(s) URL without a trailing '/', cert and key
 * come together, each length matches its PEM; on failure the struct is
 * zeroed and the kerr has the code and a message.
 */
#include <string.h>

#include "fuzz.h"
#include "kubeconfig.h"

#define FUZZ_KUBECONFIG_PATH "/nonexistent/nimbus-fuzz/config"

static void check_pem(const char *pem, size_t len, const char *what)
{
	if (!pem) {
		if (len)
			fuzz_fail("kubeconfig: %s is NULL with length %zu", what, len);
		return;
	}
	if (pem[len] != '\0' || !strstr(pem, "-----BEGIN "))
		fuzz_fail("kubeconfig: %s is not NUL-terminated at its length %zu or holds no BEGIN line", what, len);
}

static void load(const char *text, size_t len, const char *context)
{
	struct kube_config c;
	struct kerr e = {0};
	int rc = kubeconfig_load_buffer(&c, text, len, FUZZ_KUBECONFIG_PATH, context, &e);
	if (rc == 0) {
		size_t sl = c.server ? strlen(c.server) : 0;
		if (!c.server || (strncmp(c.server, "https://", 8) != 0 && strncmp(c.server, "http://", 7) != 0) ||
		    (sl > 0 && c.server[sl - 1] == '/'))
			fuzz_fail("kubeconfig loaded with server \"%s\"", c.server ? c.server : "(null)");
		if (!c.origin)
			fuzz_fail("kubeconfig loaded without an origin");
		if (!c.cert_pem != !c.key_pem)
			fuzz_fail("kubeconfig loaded a client certificate without its key or the reverse");
		if (c.insecure && c.ca_pem)
			fuzz_fail("kubeconfig loaded both insecure-skip-tls-verify and a CA");
		check_pem(c.ca_pem, c.ca_pem_len, "CA");
		check_pem(c.cert_pem, c.cert_pem_len, "client certificate");
		check_pem(c.key_pem, c.key_pem_len, "client key");
		if ((c.token && !c.token[0]) || (c.namespace && !c.namespace[0]) || (c.token_file && !c.token_file[0]))
			fuzz_fail("kubeconfig loaded an empty token, token file or namespace instead of NULL");
	} else {
		static const struct kube_config zero;
		if (rc > 0 || e.code != rc || !e.message[0])
			fuzz_fail("kubeconfig_load_buffer returned %d, kerr code %d message \"%s\"", rc, e.code, e.message);
		if (memcmp(&c, &zero, sizeof(c)) != 0)
			fuzz_fail("kubeconfig_load_buffer failed (%d) without zeroing the struct", rc);
	}
	kube_config_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	load((const char *)data, size, NULL);
	load((const char *)data, size, "c");
	return 0;
}
