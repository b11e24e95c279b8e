/*
 * nimbus-operator: informers, reconcilers and the servers of Nimbus.
 *
 * Start-up: flags and env (config.h) → kube client → informers (watch-based
 * caches) → wait for their first LIST → reconcilers on workqueues (only on
 * the leader when --leader-elect) → wait for SIGTERM/SIGINT → drain: stop
 * taking keys, finish in-flight reconciles, stop the watches, release the
 * lease. Every line on stderr is one JSON object (log.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "autoscaler.h"
#include "billing.h"
#include "api.h"
#include "cache_dump.h"
#include "config.h"
#include "controller.h"
#include "db.h"
#include "db_health.h"
#include "event_recorder.h"
#include "informer.h"
#include "kinds.h"
#include "kube_client.h"
#include "kubeconfig.h"
#include "leader.h"
#include "log.h"
#include "metrics.h"
#include "probes.h"
#include "scheduler.h"
#include "tenant.h"
#include "tenant_cli.h"
#include "workload.h"

extern char **environ;

static volatile sig_atomic_t stop_signal, dump_requested;

static void on_signal(int sig) { stop_signal = sig; }

static void on_dump_signal(int sig)
{
	(void)sig;
	dump_requested = 1;
}

/* Informer log lines go through the operator's structured log. */
static void informer_log(void *arg, enum informer_log_level level, const char *kind, const char *msg)
{
	(void)arg;
	static const enum log_level map[] = {LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR};
	log_fields(map[level], "informer", msg, "kind", kind, NULL);
}

enum { INF_CR, INF_DEPLOY, INF_NS, INF_QUOTA, INF_POD, INF_NODE, INF_COUNT };

struct operator {
	struct config cfg;
	struct kube_client *client;
	struct metrics_registry *metrics;
	struct controller_metrics cmetrics;
	struct informer *inf[INF_COUNT];
	struct controller *workload;
	struct workload_deps workload_deps;
	struct event_recorder *events; /* the workload reconciler's Events */
	struct scheduler *scheduler;
	struct billing *billing;
	struct db_options billing_db; /* borrowed by billing: its strings are cfg's */
	struct autoscaler *autoscaler;
	struct tenant_reconciler *tenants;
	struct probes *probes;
	struct db_health *db_health; /* NULL when nothing running needs the database */
	struct api *api; /* the REST API, in every replica; NULL when --api-bind-address=0 */
	struct leader *leader;
	bool controllers_running;
};

static int new_informer(struct operator *op, int slot, const struct kind *k, const char *label_selector,
			bool ns_index, struct kerr *e)
{
	struct informer_options o = {.label_selector = label_selector, .log = informer_log};
	int rc = informer_new(&op->inf[slot], op->client, k, &o, e);
	if (rc == 0 && ns_index)
		rc = store_add_index(informer_store(op->inf[slot]), "namespace", store_index_namespace, NULL);
	return rc;
}

static int build(struct operator *op, struct kerr *e)
{
	struct kube_config kc;
	int rc = op->cfg.kubeconfig ? kubeconfig_load(&kc, op->cfg.kubeconfig, NULL, e)
				    : kubeconfig_load_default(&kc, NULL, e);
	if (rc < 0)
		return rc;
	/* Every worker of every controller can be in a request at once; a
	 * connection beyond the idle handles kept is closed after its request,
	 * and the next one pays a TLS handshake. */
	int concurrent = __builtin_popcount(op->cfg.controllers) * op->cfg.workers + op->cfg.scheduler_workers;
	struct kube_client_options co = {.user_agent = "nimbus-operator/0.1.0", .qps = op->cfg.kube_api_qps,
					 .burst = op->cfg.kube_api_burst, .max_idle_handles = concurrent + 8};
	rc = kube_client_new(&op->client, &kc, &co, e);
	log_info("main", "kubernetes client ready", "server", kc.server, "config", kc.origin ? kc.origin : "", NULL);
	kube_config_free(&kc);
	if (rc < 0)
		return rc;
	if ((rc = metrics_registry_new(&op->metrics, e)) < 0 ||
	    (rc = controller_metrics_register(op->metrics, &op->cmetrics, e)) < 0)
		return rc;

	/* Deployments are cached only when Nimbus manages them: a cluster's
	 * other Deployments are none of its business and would cost memory. */
	if ((rc = new_informer(op, INF_CR, &kind_computerequest, NULL, true, e)) < 0 ||
	    (rc = new_informer(op, INF_DEPLOY, &kind_deployment, "app.kubernetes.io/managed-by=nimbus", false, e)) < 0 ||
	    (rc = new_informer(op, INF_NS, &kind_namespace, NULL, false, e)) < 0 ||
	    (rc = new_informer(op, INF_QUOTA, &kind_resourcequota, NULL, true, e)) < 0)
		return rc;
	/* Every pod, whoever schedules it, counts against its node; the
	 * scheduler reads them by node through the "node" index, the
	 * autoscaler by namespace. */
	if ((rc = new_informer(op, INF_POD, &kind_pod, NULL, true, e)) < 0 ||
	    (rc = new_informer(op, INF_NODE, &kind_node, NULL, false, e)) < 0)
		return rc;
	if ((rc = store_add_index(informer_store(op->inf[INF_POD]), SCHEDULER_NODE_INDEX, scheduler_pod_node_index,
				  NULL)) < 0)
		return kerr_set(e, rc, "cannot add the pod store's node index");

	if (op->cfg.controllers & CONFIG_CTRL_WORKLOAD) {
		struct event_recorder_options eo = {.client = op->client, .metrics = op->metrics};
		if ((rc = event_recorder_new(&op->events, &eo, e)) < 0)
			return rc;
		struct workload_deps *d = &op->workload_deps;
		*d = (struct workload_deps){op->client, op->events, op->inf[INF_CR], op->inf[INF_DEPLOY], op->inf[INF_NS],
					    op->inf[INF_QUOTA], NULL};
		struct controller_options o = {"workload", op->cfg.workers, workload_reconcile, d, &op->cmetrics};
		if ((rc = controller_new(&op->workload, &o, e)) < 0)
			return rc;
		d->controller = op->workload;
		struct informer_handlers own = controller_handlers(op->workload);
		struct informer_handlers deps = workload_deployment_handlers(d);
		struct informer_handlers nss = workload_namespace_handlers(d);
		if (informer_add_handlers(op->inf[INF_CR], &own) < 0 || informer_add_handlers(op->inf[INF_DEPLOY], &deps) < 0 ||
		    informer_add_handlers(op->inf[INF_NS], &nss) < 0 || informer_add_handlers(op->inf[INF_QUOTA], &nss) < 0)
			return kerr_set(e, KERR_INVAL, "too many informer handlers");
	}

	if (op->cfg.controllers & CONFIG_CTRL_TENANT) {
		struct db_options dbo;
		db_options_from_config(&dbo, &op->cfg);
		struct tenant_reconciler_options to = {.client = op->client, .namespaces = op->inf[INF_NS],
						       .quotas = op->inf[INF_QUOTA], .db = &dbo,
						       .workers = op->cfg.workers, .metrics = &op->cmetrics};
		if ((rc = tenant_reconciler_new(&op->tenants, &to, e)) < 0)
			return rc;
	}

	if (op->cfg.controllers & CONFIG_CTRL_SCHEDULER) {
		struct scheduler_options so = {.client = op->client, .pods = op->inf[INF_POD], .nodes = op->inf[INF_NODE],
					       .metrics = op->metrics, .controller_metrics = &op->cmetrics,
					       .workers = op->cfg.scheduler_workers};
		if ((rc = scheduler_new(&op->scheduler, &so, e)) < 0)
			return rc;
	}

	if (op->cfg.controllers & CONFIG_CTRL_BILLING) {
		db_options_from_config(&op->billing_db, &op->cfg);
		struct billing_options bo = {.client = op->client, .pods = op->inf[INF_POD], .namespaces = op->inf[INF_NS],
					     .db = &op->billing_db, .metrics = op->metrics,
					     .period_ms = op->cfg.billing_period_ms};
		if ((rc = billing_new(&op->billing, &bo, e)) < 0)
			return rc;
	}

	if (op->cfg.controllers & CONFIG_CTRL_AUTOSCALER) {
		struct autoscale_behavior ab = autoscale_behavior_default();
		ab.down_window_ms = op->cfg.autoscaler_downscale_stabilization_ms;
		struct autoscaler_options ao = {.client = op->client, .computerequests = op->inf[INF_CR],
						.pods = op->inf[INF_POD], .quotas = op->inf[INF_QUOTA],
						.metrics = op->metrics, .period_ms = op->cfg.autoscaler_period_ms,
						.behavior = &ab};
		if ((rc = autoscaler_new(&op->autoscaler, &ao, e)) < 0)
			return rc;
	}
	/* The API serves reads from the caches in every replica, so it is built
	 * whatever the controllers; a missing or short JWT_SECRET stops the
	 * start here, with how to make one. */
	if (op->cfg.api_addr.port) {
		struct api_options ao = {.cfg = &op->cfg, .client = op->client, .namespaces = op->inf[INF_NS],
					 .computerequests = op->inf[INF_CR], .pods = op->inf[INF_POD],
					 .nodes = op->inf[INF_NODE], .scheduler = op->scheduler, .metrics = op->metrics};
		if ((rc = api_new(&op->api, &ao, e)) < 0)
			return rc;
	}
	return 0;
}

/* Apply the schema at start when a controller that needs it runs (several
 * replicas may: db_migrate serialises them). An unreachable database does
 * not stop the operator: billing buffers and migrates once it connects. */
static void migrate_database(struct operator *op)
{
	if (!(op->cfg.controllers & (CONFIG_CTRL_TENANT | CONFIG_CTRL_BILLING)))
		return;
	struct db_options o;
	struct db *db = NULL;
	struct kerr e = {0};
	size_t n;
	int applied = 0;
	const struct db_migration *m = db_migrations(&n);
	db_options_from_config(&o, &op->cfg);
	if (db_open(&o, &db, &e) == 0 && db_migrate(db, m, n, &applied, &e) == 0) {
		char count[16];
		snprintf(count, sizeof(count), "%d", applied);
		log_info("main", "database schema up to date", "applied", count, NULL);
	} else {
		log_error("main", "cannot reach or migrate the database; not ready until it answers: tenants wait and "
				  "billing keeps usage in memory, both retrying with backoff; check DB_HOST, DB_PORT and "
				  "that PostgreSQL is up", "error", e.message, NULL);
	}
	db_close(db);
}

/* The CRD is applied by the user (kubectl apply -f crds/) or the Helm chart;
 * without it the ComputeRequest informer can only retry, so say so. */
static void check_crd(struct operator *op)
{
	struct kube_response r;
	struct kerr e = {0};
	int rc = kube_client_request(op->client, "GET", "/apis/nimbus.io/v1", NULL, NULL, 0, &r, &e);
	kube_response_free(&r);
	if (rc == KERR_NOT_FOUND)
		log_error("main", "the ComputeRequest CRD is not installed; apply crds/computerequest.yaml "
				  "(kubectl apply -f crds/) — workloads wait until it exists", NULL);
	else if (rc < 0)
		log_warn("main", "cannot check for the ComputeRequest CRD", "error", e.message, NULL);
}

/* Ready once every cache has its first LIST (until then reads would serve
 * an empty cluster) and, when something running needs it, the database
 * answers (tenants, billing and logins wait on it). Followers are ready
 * too: they serve reads. */
static bool ready(void *arg, char *why, size_t cap)
{
	struct operator *op = arg;
	for (int i = 0; i < INF_COUNT; i++) {
		if (!informer_has_synced(op->inf[i])) {
			snprintf(why, cap, "the %s cache has not synced yet", informer_kind(op->inf[i])->name);
			return false;
		}
	}
	return !op->db_health || db_health_ok(op->db_health, why, cap);
}

static bool needs_database(const struct operator *op)
{
	return (op->cfg.controllers & (CONFIG_CTRL_TENANT | CONFIG_CTRL_BILLING)) || op->cfg.api_addr.port;
}

static void dump_caches(struct operator *op)
{
	struct kerr e = {0};
	if (!op->cfg.cache_dump_file)
		log_warn("main", "SIGUSR1 asks for a cache dump, but --cache-dump-file is not set", NULL);
	else if (cache_dump_write(op->inf, INF_COUNT, op->cfg.cache_dump_file, &e) < 0)
		log_error("main", "cannot dump the caches", "error", e.message, NULL);
	else
		log_info("main", "caches dumped", "file", op->cfg.cache_dump_file, NULL);
}

static int start_controllers(struct operator *op, struct kerr *e)
{
	if (op->controllers_running)
		return 0;
	if (op->workload && controller_start(op->workload, e) < 0)
		return e->code;
	if (op->scheduler && scheduler_start(op->scheduler, e) < 0)
		return e->code;
	if (op->billing && billing_start(op->billing, e) < 0)
		return e->code;
	if (op->autoscaler && autoscaler_start(op->autoscaler, e) < 0)
		return e->code;
	if (op->tenants && tenant_reconciler_start(op->tenants, e) < 0)
		return e->code;
	op->controllers_running = true;
	log_info("main", "reconcilers started", NULL);
	return 0;
}

static void on_started_leading(void *arg)
{
	(void)arg;
	log_info("main", "became the leader", NULL);
}

static void on_stopped_leading(void *arg)
{
	(void)arg;
	log_warn("main", "lost the leader lease", NULL);
}

static int start_leader(struct operator *op, struct kerr *e)
{
	char identity[256];
	const char *pod = getenv("POD_NAME");
	if (pod && *pod) {
		snprintf(identity, sizeof(identity), "%s", pod);
	} else {
		char host[200] = "nimbus";
		gethostname(host, sizeof(host) - 1);
		snprintf(identity, sizeof(identity), "%s-%ld", host, (long)getpid());
	}
	struct leader_options lo = {
		.namespace = op->cfg.leader_election_namespace,
		.name = op->cfg.leader_election_id,
		.identity = identity,
		.lease_duration_ms = (long)op->cfg.leader_elect_lease_duration_ms,
		.renew_deadline_ms = (long)op->cfg.leader_elect_renew_deadline_ms,
		.retry_period_ms = (long)op->cfg.leader_elect_retry_period_ms,
		.on_started_leading = on_started_leading,
		.on_stopped_leading = on_stopped_leading,
		.log = informer_log,
	};
	int rc = leader_new(&op->leader, op->client, &lo, e);
	return rc < 0 ? rc : leader_start(op->leader, e);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stop_signal)
		;
}

static int run(struct operator *op)
{
	struct kerr e = {0};
	migrate_database(op);
	if (build(op, &e) < 0) {
		log_error("main", "cannot start", "error", e.message, "code", kerr_name(e.code), NULL);
		return 1;
	}
	check_crd(op);
	if (needs_database(op)) {
		struct db_options dbo;
		db_options_from_config(&dbo, &op->cfg);
		if (db_health_start(&op->db_health, &dbo, &e) < 0) {
			log_error("main", "cannot start the database health check", "error", e.message, NULL);
			return 1;
		}
	}
	struct probes_options po = {.health_addr = op->cfg.health_addr, .metrics_addr = op->cfg.metrics_addr,
				    .metrics = op->metrics, .informers = op->inf, .ninformers = INF_COUNT,
				    .ready = ready, .ready_arg = op};
	if (probes_start(&op->probes, &po, &e) < 0) {
		log_error("main", "cannot serve health and metrics", "error", e.message, NULL);
		return 1;
	}
	for (int i = 0; i < INF_COUNT; i++) {
		if (informer_start(op->inf[i], &e) < 0) {
			log_error("main", "cannot start an informer", "error", e.message, NULL);
			return 1;
		}
	}
	for (int i = 0; i < INF_COUNT && !stop_signal; i++) {
		while (!stop_signal && informer_wait_synced(op->inf[i], 1000) == KERR_TIMEOUT)
			;
		log_info("main", "cache synced", "kind", informer_kind(op->inf[i])->name, NULL);
	}
	if (op->api && !stop_signal && api_start(op->api, &e) < 0) {
		log_error("main", "cannot serve the REST API", "error", e.message, NULL);
		return 1;
	}
	if (op->cfg.leader_elect && start_leader(op, &e) < 0) {
		log_error("main", "cannot start leader election", "error", e.message, NULL);
		return 1;
	}
	int status = 0;
	while (!stop_signal) {
		bool lead = !op->leader || leader_is_leader(op->leader);
		if (lead && !op->controllers_running && start_controllers(op, &e) < 0) {
			log_error("main", "cannot start the reconcilers", "error", e.message, NULL);
			status = 1;
			break;
		}
		if (!lead && op->controllers_running) {
			/* Another replica may act from now on: stop at once, and let
			 * the restart come back as a clean follower. */
			log_error("main", "leadership lost while reconciling; exiting so that only the new leader acts", NULL);
			status = 1;
			break;
		}
		if (dump_requested) {
			dump_requested = 0;
			dump_caches(op);
		}
		sleep_ms(200);
	}
	if (stop_signal)
		log_info("main", "shutting down", "signal", stop_signal == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
	return status;
}

static void teardown(struct operator *op)
{
	controller_stop(op->workload);
	scheduler_stop(op->scheduler);
	billing_stop(op->billing);
	autoscaler_stop(op->autoscaler);
	tenant_reconciler_stop(op->tenants);
	api_stop(op->api);
	for (int i = 0; i < INF_COUNT; i++)
		informer_stop(op->inf[i]);
	if (op->leader)
		leader_stop(op->leader, true);
	controller_free(op->workload);
	event_recorder_free(op->events);
	scheduler_free(op->scheduler);
	billing_free(op->billing);
	autoscaler_free(op->autoscaler);
	tenant_reconciler_free(op->tenants);
	api_free(op->api);
	probes_free(op->probes);
	db_health_free(op->db_health);
	for (int i = 0; i < INF_COUNT; i++)
		informer_free(op->inf[i]);
	leader_free(op->leader);
	metrics_registry_free(op->metrics);
	kube_client_free(op->client);
	config_free(&op->cfg);
}

int main(int argc, char **argv)
{
	struct operator op = {0};
	struct kerr e = {0};
	if (argc > 1 && strcmp(argv[1], "tenant") == 0) {
		/* The admin CLI takes its database from the same DB_* env. */
		char *const prog[] = {argv[0], NULL};
		if (config_load(&op.cfg, 1, prog, environ, &e) < 0) {
			fprintf(stderr, "nimbus-operator tenant: %s\n", e.message);
			return 2;
		}
		int rc = tenant_cli_main(argc, argv, &op.cfg);
		config_free(&op.cfg);
		return rc;
	}
	if (config_load(&op.cfg, argc, argv, environ, &e) < 0) {
		fprintf(stderr, "nimbus-operator: %s\nRun nimbus-operator --help for the flags.\n", e.message);
		return 2;
	}
	if (op.cfg.help) {
		config_usage(stdout);
		config_free(&op.cfg);
		return 0;
	}
	log_set_level(op.cfg.log_level);
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	struct sigaction du = {0};
	du.sa_handler = on_dump_signal;
	sigemptyset(&du.sa_mask);
	du.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &du, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_info("main", "nimbus-operator starting", NULL);
	int status = run(&op);
	teardown(&op);
	log_info("main", "stopped", NULL);
	return status;
}
