#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CONFIG_MAX_WORKERS 1024
#define CONFIG_MAX_DURATION_MS (24LL * 3600 * 1000)
/* Billing samples every 30 s, as the seed's billing loop did; the
 * autoscaler every 15 s, as the HPA (kube-controller-manager's
 * --horizontal-pod-autoscaler-sync-period). */
#define CONFIG_DEFAULT_BILLING_PERIOD_MS (30LL * 1000)
#define CONFIG_DEFAULT_AUTOSCALER_PERIOD_MS (15LL * 1000)
/* Prices in millionths: 0.05 per core-hour, 0.01 per GiB-hour. */
#define CONFIG_DEFAULT_PRICE_CPU_MICRO 50000
#define CONFIG_DEFAULT_PRICE_MEMORY_MICRO 10000
/* A billion per core-hour is a typo, not a price; it also keeps every
 * invoice computation far from overflowing. */
#define CONFIG_MAX_PRICE_UNITS 1000000000LL


enum config_kind {
	CK_ADDR,
	CK_BOOL,
	CK_STRING,
	CK_DIR,
	CK_INT,
	CK_RATE,
	CK_LOG_LEVEL,
	CK_CONTROLLERS,
	CK_DURATION,
	CK_PRICE,
	CK_CURRENCY,
	CK_HELP,
};

/* One flag: its name without "--", what it sets, and its --help line. The
 * parser and config_usage() both read this table, so they cannot differ. */
struct config_flag {
	const char *name;
	enum config_kind kind;
	size_t offset; /* of the field in struct config */
	const char *metavar;
	const char *help;
};

#define CF(field) offsetof(struct config, field)

static const struct config_flag config_flags[] = {
	{"metrics-bind-address", CK_ADDR, CF(metrics_addr), "ADDR",
	 "Prometheus /metrics listen address, host:port or 0 to disable (default 127.0.0.1:9090)"},
	{"health-probe-bind-address", CK_ADDR, CF(health_addr), "ADDR",
	 "/healthz and /readyz listen address, host:port or 0 to disable (default 127.0.0.1:9091)"},
	{"api-bind-address", CK_ADDR, CF(api_addr), "ADDR",
	 "REST API and dashboard listen address, host:port or 0 to disable (default 127.0.0.1:8080)"},
	{"api-tls-cert", CK_STRING, CF(api_tls_cert), "PATH",
	 "PEM certificate chain of the API: HTTPS with --api-tls-key (default none: HTTP)"},
	{"api-tls-key", CK_STRING, CF(api_tls_key), "PATH", "PEM private key of the API (default none)"},
	{"cors-origin", CK_STRING, CF(cors_origin), "ORIGIN",
	 "the one browser origin allowed to call the API cross-origin, e.g. https://dash.example.com (default none)"},
	{"leader-elect", CK_BOOL, CF(leader_elect), NULL,
	 "elect a leader through a Lease so that only one replica acts (default false)"},
	{"leader-election-namespace", CK_STRING, CF(leader_election_namespace), "NS",
	 "namespace of the leader election Lease (default nimbus-system)"},
	{"leader-election-id", CK_STRING, CF(leader_election_id), "NAME",
	 "name of the leader election Lease (default nimbus-operator-leader)"},
	{"leader-elect-lease-duration", CK_DURATION, CF(leader_elect_lease_duration_ms), "DURATION",
	 "how long a leader's lease lasts without renewal before another replica takes over, whole seconds (default 15s)"},
	{"leader-elect-renew-deadline", CK_DURATION, CF(leader_elect_renew_deadline_ms), "DURATION",
	 "how long the leader keeps acting while renewals fail; below the lease duration (default 10s)"},
	{"leader-elect-retry-period", CK_DURATION, CF(leader_elect_retry_period_ms), "DURATION",
	 "wait between attempts to acquire or renew the lease (default 2s)"},
	{"workers", CK_INT, CF(workers), "N", "reconcile workers per controller, 1-1024 (default 16)"},
	{"scheduler-workers", CK_INT, CF(scheduler_workers), "N",
	 "nimbus-scheduler's workers: decisions take turns, binds and events overlap, 1-1024 (default 64)"},
	{"kube-api-qps", CK_RATE, CF(kube_api_qps), "N",
	 "requests per second to the apiserver, besides watches, 1-100000 (default 200)"},
	{"kube-api-burst", CK_RATE, CF(kube_api_burst), "N",
	 "requests allowed at once above --kube-api-qps, 1-100000 (default 400)"},
	{"log-level", CK_LOG_LEVEL, CF(log_level), "LEVEL", "debug, info, warn or error (default info)"},
	{"controllers", CK_CONTROLLERS, CF(controllers), "LIST",
	 "comma-separated controllers to run: tenant,workload,scheduler,autoscaler,billing (default all)"},
	{"kubeconfig", CK_STRING, CF(kubeconfig), "PATH",
	 "kubeconfig file (default $KUBECONFIG, else the in-cluster service account)"},
	{"cache-dump-file", CK_STRING, CF(cache_dump_file), "PATH",
	 "on SIGUSR1, write every cached object's kind, key, uid and resourceVersion to PATH (default none)"},
	{"dashboard-dir", CK_DIR, CF(dashboard_dir), "DIR", "directory of the built dashboard to serve (default none)"},
	{"billing-period", CK_DURATION, CF(billing_period_ms), "DURATION",
	 "how often billing samples usage, e.g. 30s or 1m (default 30s)"},
	{"autoscaler-period", CK_DURATION, CF(autoscaler_period_ms), "DURATION",
	 "how often the autoscaler samples usage, e.g. 30s (default 15s, as the HPA)"},
	{"autoscaler-downscale-stabilization", CK_DURATION, CF(autoscaler_downscale_stabilization_ms), "DURATION",
	 "the autoscaler scales down to the highest recommendation of this window, as the HPA (default 5m)"},
	{"price-cpu-core-hour", CK_PRICE, CF(price_cpu_core_hour_micro), "PRICE",
	 "price of one CPU core for one hour, e.g. 0.05 (default 0.05; env NIMBUS_PRICE_CPU_CORE_HOUR)"},
	{"price-memory-gib-hour", CK_PRICE, CF(price_memory_gib_hour_micro), "PRICE",
	 "price of one GiB of memory for one hour (default 0.01; env NIMBUS_PRICE_MEMORY_GIB_HOUR)"},
	{"currency", CK_CURRENCY, CF(currency), "CODE",
	 "ISO 4217 currency of the prices and invoices (default USD; env NIMBUS_CURRENCY)"},
	{"help", CK_HELP, CF(help), NULL, "print this help and exit"},
};

#define CONFIG_NFLAGS (sizeof(config_flags) / sizeof(config_flags[0]))

/* Seed-compatible environment variables and their defaults (NULL: none). */
static const struct {
	const char *name;
	size_t offset;
	const char *def;
} config_env[] = {
	{"DB_HOST", CF(db_host), "localhost"},
	{"DB_PORT", CF(db_port), "5432"},
	{"DB_NAME", CF(db_name), "nimbus"},
	{"DB_USER", CF(db_user), "nimbus"},
	{"DB_PASSWORD", CF(db_password), NULL},
	{"DB_SSLMODE", CF(db_sslmode), "disable"},
	{"JWT_SECRET", CF(jwt_secret), NULL},
	{"NIMBUS_ADMIN_PASSWORD", CF(admin_password), NULL},
	{"KUBECONFIG", CF(kubeconfig), NULL},
};

/* Environment variables that give a flag its default; the flag wins. */
static const struct {
	const char *name;
	const char *flag;
} config_flag_env[] = {
	{"NIMBUS_PRICE_CPU_CORE_HOUR", "price-cpu-core-hour"},
	{"NIMBUS_PRICE_MEMORY_GIB_HOUR", "price-memory-gib-hour"},
	{"NIMBUS_CURRENCY", "currency"},
};

static const char *const config_controller_names[] = {
	"tenant", "workload", "scheduler", "autoscaler", "billing",
};

static const char *const config_sslmodes[] = {
	"disable", "allow", "prefer", "require", "verify-ca", "verify-full",
};

static char **config_str(struct config *cfg, size_t offset)
{
	return (char **)(void *)((char *)cfg + offset);
}

static int config_set_str(struct config *cfg, size_t offset, const char *v, struct kerr *e)
{
	char **slot = config_str(cfg, offset);
	char *copy = NULL;

	if (v) {
		copy = strdup(v);
		if (!copy)
			return kerr_set(e, KERR_NOMEM, "out of memory copying configuration");
	}
	free(*slot);
	*slot = copy;
	return 0;
}

static const char *config_getenv(char *const envp[], const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; envp && envp[i]; i++) {
		if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
			return envp[i][n + 1] ? envp[i] + n + 1 : NULL;
	}
	return NULL;
}

/* Parse a whole decimal number in [min, max]; false if s is anything else. */
static bool config_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	if (!isdigit((unsigned char)s[0]) && s[0] != '-')
		return false;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

int config_parse_duration(const char *what, const char *s, int64_t *ms, struct kerr *e)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}};
	int64_t total = 0;
	const char *p = s;

	while (*p) {
		int64_t n = 0;
		if (!isdigit((unsigned char)*p))
			goto bad;
		for (; isdigit((unsigned char)*p); p++) {
			n = n * 10 + (*p - '0');
			if (n > CONFIG_MAX_DURATION_MS)
				goto bad;
		}
		size_t u = 0;
		/* "ms" is tried before "m" so that "500ms" is not 500 minutes. */
		while (u < sizeof(units) / sizeof(units[0]) &&
		       strncmp(p, units[u].unit, strlen(units[u].unit)) != 0)
			u++;
		if (u == sizeof(units) / sizeof(units[0]))
			goto bad;
		p += strlen(units[u].unit);
		total += n * units[u].ms;
		if (total > CONFIG_MAX_DURATION_MS)
			goto bad;
	}
	if (total <= 0)
		goto bad;
	*ms = total;
	return 0;
bad:
	return kerr_set(e, KERR_CONFIG,
			"%s: '%s' is not a duration; use whole numbers with units ms, s, m or h, "
			"e.g. 500ms, 15s, 1m30s (more than 0, at most 24h)",
			what, s);
}

int config_parse_price(const char *what, const char *s, int64_t *micro, struct kerr *e)
{
	int64_t whole = 0, frac = 0;
	size_t i = 0, nwhole = 0, nfrac = 0;

	for (; isdigit((unsigned char)s[i]); i++, nwhole++) {
		whole = whole * 10 + (s[i] - '0');
		if (whole > CONFIG_MAX_PRICE_UNITS)
			goto bad;
	}
	if (s[i] == '.') {
		for (i++; isdigit((unsigned char)s[i]); i++, nfrac++) {
			if (nfrac == 6)
				goto bad;
			frac = frac * 10 + (s[i] - '0');
		}
	}
	if (s[i] != '\0' || nwhole + nfrac == 0)
		goto bad;
	for (; nfrac < 6; nfrac++)
		frac *= 10;
	if (whole == CONFIG_MAX_PRICE_UNITS && frac > 0)
		goto bad;
	*micro = whole * 1000000 + frac;
	return 0;
bad:
	return kerr_set(e, KERR_CONFIG,
			"%s: '%s' is not a price; use a non-negative decimal with at most 6 decimals and no "
			"currency sign, e.g. 0.05 (at most %lld)",
			what, s, CONFIG_MAX_PRICE_UNITS);
}

int config_parse_currency(const char *what, const char *s, char out[4], struct kerr *e)
{
	for (int i = 0; i < 3; i++) {
		if (s[i] < 'A' || s[i] > 'Z')
			goto bad;
	}
	if (s[3] != '\0')
		goto bad;
	memcpy(out, s, 4);
	return 0;
bad:
	return kerr_set(e, KERR_CONFIG, "%s: '%s' is not a currency; use an ISO 4217 code in capitals, e.g. USD or EUR",
			what, s);
}

static bool config_valid_hostname(const char *h)
{
	size_t len = strlen(h), label = 0;
	if (len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = h[i];
		if (c == '.') {
			if (label == 0 || h[i - 1] == '-')
				return false;
			label = 0;
		} else if (isalnum((unsigned char)c) || (c == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && h[len - 1] != '-';
}

int config_parse_addr(const char *what, const char *s, struct config_addr *out, struct kerr *e)
{
	char host[sizeof(out->host)];
	const char *colon;
	long port;

	if (strcmp(s, "0") == 0) {
		memset(out, 0, sizeof(*out));
		return 0;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		unsigned char bin[16];
		if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
			goto bad;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		if (inet_pton(AF_INET6, host, bin) != 1)
			goto bad;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof(host))
			goto bad;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		if (host[0] != '\0') {
			unsigned char bin[4];
			bool dotted = strspn(host, "0123456789.") == strlen(host);
			if (dotted ? inet_pton(AF_INET, host, bin) != 1 : !config_valid_hostname(host))
				goto bad;
		}
	}
	if (!isdigit((unsigned char)colon[1]) || !config_parse_long(colon + 1, 1, 65535, &port))
		goto bad;
	memcpy(out->host, host, strlen(host) + 1);
	out->port = (uint16_t)port;
	return 0;
bad:
	return kerr_set(e, KERR_CONFIG,
			"%s: '%s' is not a listen address; use host:port with a port from 1 to 65535 "
			"(e.g. 127.0.0.1:9090, :9090 for every interface, [::1]:9090), or 0 to disable",
			what, s);
}

static int config_parse_controllers(const char *s, unsigned *out, struct kerr *e)
{
	const size_t nnames = sizeof(config_controller_names) / sizeof(config_controller_names[0]);
	unsigned bits = 0;
	const char *p = s;

	for (;;) {
		size_t len = strcspn(p, ","), i = 0;
		while (i < nnames && !(strlen(config_controller_names[i]) == len &&
				       strncmp(p, config_controller_names[i], len) == 0))
			i++;
		if (i == nnames)
			return kerr_set(e, KERR_CONFIG,
					"--controllers: '%.*s' is not a controller; use a comma-separated list of "
					"tenant, workload, scheduler, autoscaler, billing (e.g. tenant,billing)",
					(int)len, p);
		bits |= 1u << i;
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	*out = bits;
	return 0;
}

static int config_set_nonempty(struct config *cfg, const struct config_flag *f, const char *v, struct kerr *e)
{
	if (v[0] == '\0')
		return kerr_set(e, KERR_CONFIG, "--%s: the value is empty; use --%s=%s", f->name, f->name, f->metavar);
	return config_set_str(cfg, f->offset, v, e);
}

static int config_set_dir(struct config *cfg, const struct config_flag *f, const char *v, struct kerr *e)
{
	struct stat st;

	if (v[0] != '\0' && stat(v, &st) != 0)
		return kerr_set(e, KERR_CONFIG, "--%s: cannot use '%s': %s; give the directory of the built dashboard",
				f->name, v, strerror(errno));
	if (v[0] != '\0' && !S_ISDIR(st.st_mode))
		return kerr_set(e, KERR_CONFIG, "--%s: '%s' is not a directory; give the directory of the built dashboard",
				f->name, v);
	return config_set_nonempty(cfg, f, v, e);
}

static int config_apply(struct config *cfg, const struct config_flag *f, const char *v, struct kerr *e)
{
	void *field = (char *)cfg + f->offset;
	long n;

	switch (f->kind) {
	case CK_ADDR: {
		char what[64];
		snprintf(what, sizeof(what), "--%s", f->name);
		return config_parse_addr(what, v, field, e);
	}
	case CK_BOOL:
		if (strcmp(v, "true") == 0)
			*(bool *)field = true;
		else if (strcmp(v, "false") == 0)
			*(bool *)field = false;
		else
			return kerr_set(e, KERR_CONFIG, "--%s: '%s' is not a boolean; use --%s, --%s=true or --%s=false",
					f->name, v, f->name, f->name, f->name);
		return 0;
	case CK_DIR:
		return config_set_dir(cfg, f, v, e);
	case CK_STRING:
		return config_set_nonempty(cfg, f, v, e);
	case CK_INT:
		if (!config_parse_long(v, 1, CONFIG_MAX_WORKERS, &n))
			return kerr_set(e, KERR_CONFIG, "--%s: '%s' is not a whole number from 1 to %d; use e.g. --%s=4",
					f->name, v, CONFIG_MAX_WORKERS, f->name);
		*(int *)field = (int)n;
		return 0;
	case CK_RATE:
		if (!config_parse_long(v, 1, 100000, &n))
			return kerr_set(e, KERR_CONFIG, "--%s: '%s' is not a whole number from 1 to 100000; use e.g. --%s=200",
					f->name, v, f->name);
		*(int *)field = (int)n;
		return 0;
	case CK_LOG_LEVEL: {
		enum log_level lvl;
		if (log_level_parse(v, &lvl, NULL) != 0)
			return kerr_set(e, KERR_CONFIG, "--%s: '%s' is not a log level; use debug, info, warn or error",
					f->name, v);
		*(enum log_level *)field = lvl;
		return 0;
	}
	case CK_CONTROLLERS:
		return config_parse_controllers(v, field, e);
	case CK_DURATION: {
		char what[64];
		snprintf(what, sizeof(what), "--%s", f->name);
		return config_parse_duration(what, v, field, e);
	}
	case CK_PRICE: {
		char what[64];
		snprintf(what, sizeof(what), "--%s", f->name);
		return config_parse_price(what, v, field, e);
	}
	case CK_CURRENCY: {
		char what[64];
		snprintf(what, sizeof(what), "--%s", f->name);
		return config_parse_currency(what, v, field, e);
	}
	case CK_HELP:
		cfg->help = true;
		return 0;
	}
	return kerr_set(e, KERR_INVAL, "--%s: internal error: unknown flag kind", f->name);
}

static int config_defaults(struct config *cfg, char *const envp[], struct kerr *e)
{
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < sizeof(config_env) / sizeof(config_env[0]); i++) {
		const char *v = config_getenv(envp, config_env[i].name);
		rc = config_set_str(cfg, config_env[i].offset, v ? v : config_env[i].def, e);
		if (rc)
			return rc;
	}
	long port;
	if (!config_parse_long(cfg->db_port, 1, 65535, &port))
		return kerr_set(e, KERR_CONFIG, "DB_PORT: '%s' is not a port number; use a whole number from 1 to 65535",
				cfg->db_port);
	size_t m = 0, nmodes = sizeof(config_sslmodes) / sizeof(config_sslmodes[0]);
	while (m < nmodes && strcmp(cfg->db_sslmode, config_sslmodes[m]) != 0)
		m++;
	if (m == nmodes)
		return kerr_set(e, KERR_CONFIG,
				"DB_SSLMODE: '%s' is not an sslmode; use disable, allow, prefer, require, verify-ca or verify-full",
				cfg->db_sslmode);

	cfg->metrics_addr = (struct config_addr){.host = "127.0.0.1", .port = 9090};
	cfg->health_addr = (struct config_addr){.host = "127.0.0.1", .port = 9091};
	cfg->api_addr = (struct config_addr){.host = "127.0.0.1", .port = 8080};
	cfg->leader_elect_lease_duration_ms = 15000;
	cfg->leader_elect_renew_deadline_ms = 10000;
	cfg->leader_elect_retry_period_ms = 2000;
	/* A reconcile mostly waits for the apiserver's answer; with 4 workers
	 * a burst of 500 ComputeRequests queued behind 4 writes in flight while
	 * a plain client makes 16 (hack/bench/reconcile). */
	cfg->workers = 16;
	cfg->scheduler_workers = 64;
	/* client-go's 50/100 throttles an operator that creates a Deployment
	 * and writes status for each of 20 requests a second; 200/400 keeps
	 * the apiserver, not the client, the limit. */
	cfg->kube_api_qps = 200;
	cfg->kube_api_burst = 400;
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->controllers = CONFIG_CTRL_ALL;
	cfg->billing_period_ms = CONFIG_DEFAULT_BILLING_PERIOD_MS;
	cfg->autoscaler_period_ms = CONFIG_DEFAULT_AUTOSCALER_PERIOD_MS;
	cfg->price_cpu_core_hour_micro = CONFIG_DEFAULT_PRICE_CPU_MICRO;
	cfg->price_memory_gib_hour_micro = CONFIG_DEFAULT_PRICE_MEMORY_MICRO;
	memcpy(cfg->currency, "USD", 4);
	cfg->autoscaler_downscale_stabilization_ms = 300LL * 1000;
	rc = config_set_str(cfg, CF(leader_election_namespace), "nimbus-system", e);
	if (rc == 0)
		rc = config_set_str(cfg, CF(leader_election_id), "nimbus-operator-leader", e);
	for (size_t i = 0; rc == 0 && i < sizeof(config_flag_env) / sizeof(config_flag_env[0]); i++) {
		const char *v = config_getenv(envp, config_flag_env[i].name);
		const struct config_flag *f = config_flags;
		while (strcmp(f->name, config_flag_env[i].flag) != 0)
			f++;
		if (!v)
			continue;
		/* Parsed as the flag, but the message names the variable. */
		void *field = (char *)cfg + f->offset;
		rc = f->kind == CK_PRICE ? config_parse_price(config_flag_env[i].name, v, field, e)
					 : config_parse_currency(config_flag_env[i].name, v, field, e);
	}
	return rc;
}

/* The rules of leader_new(), checked here so that a bad combination fails
 * at start with the flags named, like every other bad value. */
static int config_check_leader_timings(const struct config *cfg, struct kerr *e)
{
	int64_t lease = cfg->leader_elect_lease_duration_ms, renew = cfg->leader_elect_renew_deadline_ms,
		retry = cfg->leader_elect_retry_period_ms;
	if (lease % 1000 != 0)
		return kerr_set(e, KERR_CONFIG,
				"--leader-elect-lease-duration: %lld ms is not whole seconds (a Lease stores seconds); use "
				"e.g. 15s",
				(long long)lease);
	if (renew >= lease)
		return kerr_set(e, KERR_CONFIG,
				"--leader-elect-renew-deadline (%lld ms) must be below --leader-elect-lease-duration (%lld "
				"ms): the leader must stop acting before another replica may take over",
				(long long)renew, (long long)lease);
	if (renew * 5 <= retry * 6)
		return kerr_set(e, KERR_CONFIG,
				"--leader-elect-renew-deadline (%lld ms) must exceed 1.2 x --leader-elect-retry-period "
				"(%lld ms), or one slow retry ends the leader's term",
				(long long)renew, (long long)retry);
	return 0;
}

int config_load(struct config *cfg, int argc, char *const argv[], char *const envp[], struct kerr *e)
{
	int rc = config_defaults(cfg, envp, e);

	for (int i = 1; rc == 0 && !cfg->help && i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "-h") == 0) {
			cfg->help = true;
			break;
		}
		if (strncmp(arg, "--", 2) != 0)
			return kerr_set(e, KERR_CONFIG,
					"unexpected argument '%s': nimbus-operator takes only --flags (see --help)", arg);
		const char *name = arg + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const struct config_flag *f = NULL;
		for (size_t k = 0; k < CONFIG_NFLAGS && !f; k++) {
			if (strlen(config_flags[k].name) == len && strncmp(name, config_flags[k].name, len) == 0)
				f = &config_flags[k];
		}
		if (!f)
			return kerr_set(e, KERR_CONFIG, "unknown flag '--%.*s' (see --help for the accepted flags)",
					(int)len, name);
		const char *value = eq ? eq + 1 : NULL;
		if (!value && (f->kind == CK_BOOL || f->kind == CK_HELP))
			value = "true";
		if (!value) {
			if (i + 1 >= argc)
				return kerr_set(e, KERR_CONFIG, "--%s needs a value: --%s=%s or --%s %s", f->name,
						f->name, f->metavar, f->name, f->metavar);
			value = argv[++i];
		}
		rc = config_apply(cfg, f, value, e);
	}
	return rc == 0 && !cfg->help ? config_check_leader_timings(cfg, e) : rc;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free(cfg->db_host);
	free(cfg->db_port);
	free(cfg->db_name);
	free(cfg->db_user);
	free(cfg->db_password);
	free(cfg->db_sslmode);
	free(cfg->jwt_secret);
	free(cfg->kubeconfig);
	free(cfg->leader_election_namespace);
	free(cfg->leader_election_id);
	free(cfg->dashboard_dir);
	free(cfg->cache_dump_file);
	free(cfg->api_tls_cert);
	free(cfg->api_tls_key);
	free(cfg->cors_origin);
	free(cfg->admin_password);
	memset(cfg, 0, sizeof(*cfg));
}

void config_usage(FILE *out)
{
	fputs("Usage: nimbus-operator [flags]\n\n"
	      "Runs the Nimbus tenant, workload, scheduler, autoscaler and billing controllers\n"
	      "and the REST API. Flags take --flag=value or --flag value.\n\nFlags:\n",
	      out);
	for (size_t i = 0; i < CONFIG_NFLAGS; i++) {
		char left[64];
		const struct config_flag *f = &config_flags[i];
		if (f->metavar)
			snprintf(left, sizeof(left), "--%s=%s", f->name, f->metavar);
		else
			snprintf(left, sizeof(left), "--%s", f->name);
		fprintf(out, "  %-36s %s\n", left, f->help);
	}
	fputs("\nEnvironment:\n"
	      "  DB_HOST      PostgreSQL host (default localhost)\n"
	      "  DB_PORT      PostgreSQL port (default 5432)\n"
	      "  DB_NAME      database name (default nimbus)\n"
	      "  DB_USER      database user (default nimbus)\n"
	      "  DB_PASSWORD  database password (default none)\n"
	      "  DB_SSLMODE   disable, allow, prefer, require, verify-ca or verify-full (default disable)\n"
	      "  JWT_SECRET   HS256 key that signs and verifies API tokens, at least 32 bytes\n"
	      "               (make one with: openssl rand -hex 32)\n"
	      "  NIMBUS_ADMIN_PASSWORD  the API administrator's password (default: generated at the\n"
	      "               first start and logged once)\n"
	      "  KUBECONFIG   kubeconfig file, when --kubeconfig is not given\n"
	      "  NIMBUS_PRICE_CPU_CORE_HOUR, NIMBUS_PRICE_MEMORY_GIB_HOUR, NIMBUS_CURRENCY\n"
	      "               defaults of --price-cpu-core-hour, --price-memory-gib-hour, --currency\n",
	      out);
}
