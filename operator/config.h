/*
 * config: the command line and environment of nimbus-operator.
 *
 * Contract
 * - config_load() fills a struct config from argv and an environment
 *   (an array of "NAME=value" strings, as environ), after setting every
 *   default, and checks every value. The first problem fails the whole
 *   load with KERR_CONFIG and a message that names the flag or variable,
 *   the value given and the form accepted; nothing is half-applied that a
 *   caller could act on.
 * - Flags take `--flag=value` or `--flag value`. The boolean
 *   --leader-elect takes only `--leader-elect` or `--leader-elect=true|false`
 *   (as pflag does), so a following argument is never swallowed. Unknown
 *   flags and positional arguments are errors. --help (or -h) sets
 *   cfg->help and stops parsing; the caller prints config_usage().
 * - Environment, seed-compatible (an empty variable counts as unset):
 *   DB_HOST (localhost), DB_PORT (5432), DB_NAME (nimbus), DB_USER (nimbus),
 *   DB_PASSWORD (none), DB_SSLMODE (disable), JWT_SECRET (none),
 *   KUBECONFIG (none; --kubeconfig wins over it). And Nimbus' own, each
 *   the default of a flag that wins over it: NIMBUS_PRICE_CPU_CORE_HOUR,
 *   NIMBUS_PRICE_MEMORY_GIB_HOUR, NIMBUS_CURRENCY.
 * - NIMBUS_ADMIN_PASSWORD (none) sets the API administrator's password.
 * - Library code: config never prints or exits; main decides.
 * - Every string in struct config is owned by it and freed by config_free().
 */
#ifndef NIMBUS_CONFIG_H
#define NIMBUS_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kerr.h"
#include "log.h"

/* The controllers --controllers can enable, as bits of config.controllers. */
enum config_controller {
	CONFIG_CTRL_TENANT = 1u << 0,
	CONFIG_CTRL_WORKLOAD = 1u << 1,
	CONFIG_CTRL_SCHEDULER = 1u << 2,
	CONFIG_CTRL_AUTOSCALER = 1u << 3,
	CONFIG_CTRL_BILLING = 1u << 4,
};
#define CONFIG_CTRL_ALL 0x1Fu

/* A listen address "host:port". host is a hostname, an IPv4 literal, an
 * IPv6 literal (written in brackets on the command line, stored without),
 * or empty for every interface (":8080"). The value "0" disables the
 * listener, as in controller-runtime: then port is 0. */
struct config_addr {
	char host[256];
	uint16_t port; /* 0: disabled */
};

struct config {
	/* Database, from DB_*; all non-NULL except db_password. */
	char *db_host;
	char *db_port;     /* checked to be 1-65535; kept as text for libpq */
	char *db_name;
	char *db_user;
	char *db_password; /* NULL: none (libpq may still use PGPASSFILE) */
	char *db_sslmode;  /* disable|allow|prefer|require|verify-ca|verify-full */
	char *jwt_secret;  /* JWT_SECRET; NULL if unset */
	char *kubeconfig;  /* --kubeconfig, else KUBECONFIG; NULL: in-cluster */

	/* Default 127.0.0.1:9090; "0" disables. */
	struct config_addr metrics_addr;
	/* Default 127.0.0.1:9091. */
	struct config_addr health_addr;
	/* Default 127.0.0.1:8080. */
	struct config_addr api_addr;
	/* PEM certificate chain and private key of the API, --api-tls-cert and
	 * --api-tls-key: HTTPS when both are set; NULL: plain HTTP. */
	char *api_tls_cert;
	char *api_tls_key;
	/* --cors-origin: the one browser origin ("https://dash.example.com")
	 * allowed to call the API cross-origin; NULL: none. */
	char *cors_origin;
	/* NIMBUS_ADMIN_PASSWORD: the API administrator's password; NULL: one is
	 * generated at the first start and logged once (api.h). */
	char *admin_password;

	bool leader_elect;                 /* default false */
	char *leader_election_namespace;   /* default "nimbus-system" */
	char *leader_election_id;          /* default "nimbus-operator-leader" */
	/* The Lease's timings, named as controller-runtime's flags. The renew
	 * deadline must be below the lease duration and above 1.2 retry periods. */
	int64_t leader_elect_lease_duration_ms; /* default 15 s; whole seconds (the Lease stores seconds) */
	int64_t leader_elect_renew_deadline_ms; /* default 10 s */
	int64_t leader_elect_retry_period_ms;   /* default 2 s */

	int workers;                       /* reconcile workers per controller, 1-1024; default 4 */
	/* The scheduler's decisions run one at a time; its workers overlap the
	 * binds' round trips, which bound its throughput. */
	int scheduler_workers;             /* 1-1024; default 64 */
	int kube_api_qps;                  /* client-side rate limit of non-watch requests; default 200 */
	int kube_api_burst;                /* default 400 */
	enum log_level log_level;          /* default info */
	unsigned controllers;              /* CONFIG_CTRL_* bits; default all */
	char *dashboard_dir;               /* built dashboard to serve; NULL: none; must be a directory */
	char *cache_dump_file;             /* SIGUSR1 dumps the caches here (cache_dump.h); NULL: none */
	int64_t billing_period_ms;         /* default 30 s, as the seed's billing loop */
	int64_t autoscaler_period_ms;      /* default 15 s, as the HPA's sync period */
	/* Billing prices in millionths of the currency unit (0.05 = 50000),
	 * so that invoices are computed in integers, never in floating point. */
	int64_t price_cpu_core_hour_micro;   /* --price-cpu-core-hour or NIMBUS_PRICE_CPU_CORE_HOUR; default 0.05 */
	int64_t price_memory_gib_hour_micro; /* --price-memory-gib-hour or NIMBUS_PRICE_MEMORY_GIB_HOUR; default 0.01 */
	char currency[4];                    /* --currency or NIMBUS_CURRENCY: ISO 4217 code; default USD */
	int64_t autoscaler_downscale_stabilization_ms; /* scale-down stabilization window; default 300 s, as the HPA */

	bool help;                         /* --help was given; nothing after it was parsed */
};

/*
 * Load cfg (overwritten; call config_free() on it afterwards in every case)
 * from argv[1..argc-1] and envp (NULL-terminated "NAME=value" strings;
 * NULL = an empty environment). Returns 0, KERR_CONFIG with e->message
 * saying what is wrong and the accepted form, or KERR_NOMEM.
 */
int config_load(struct config *cfg, int argc, char *const argv[], char *const envp[], struct kerr *e);
/* Free the strings of cfg and zero it. NULL-safe; safe on a zeroed cfg. */
void config_free(struct config *cfg);

/* Write the --help text to out. */
void config_usage(FILE *out);

/* Parse a duration such as "15s", "1m30s", "500ms" or "2h" (units ms, s,
 * m, h; integers; at least one unit; more than 0 and at most 24 h) into
 * milliseconds. KERR_CONFIG with a message naming `what` otherwise. */
int config_parse_duration(const char *what, const char *s, int64_t *ms, struct kerr *e);
/* Parse a listen address (see struct config_addr) for flag `what`. */
int config_parse_addr(const char *what, const char *s, struct config_addr *out, struct kerr *e);
/* Parse a price such as "0.05" (a non-negative decimal with at most 6
 * decimals, at most 1000000000) into millionths of the currency unit.
 * KERR_CONFIG with a message naming `what` otherwise. */
int config_parse_price(const char *what, const char *s, int64_t *micro, struct kerr *e);
/* Check an ISO 4217 currency code (three upper-case letters, "USD") and
 * copy it into out. KERR_CONFIG with a message naming `what` otherwise. */
int config_parse_currency(const char *what, const char *s, char out[4], struct kerr *e);

#endif
