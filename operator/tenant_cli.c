#include "tenant_cli.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "db.h"

void tenant_cli_usage(FILE *out)
{
	fprintf(out,
		"usage: nimbus-operator tenant create NAME [--cpu Q] [--memory Q] [--pods N]\n"
		"       nimbus-operator tenant list\n"
		"       nimbus-operator tenant delete NAME\n"
		"\n"
		"Tenants live in PostgreSQL (DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD, DB_SSLMODE);\n"
		"a running operator creates namespace nimbus-NAME with its quota, or deletes it.\n"
		"\n"
		"  --cpu Q       CPU quota, e.g. 500m or 2 (default " TENANT_DEFAULT_CPU ")\n"
		"  --memory Q    memory quota, e.g. 512Mi or 4Gi (default " TENANT_DEFAULT_MEMORY ")\n"
		"  --pods N      most pods at once (default %d)\n",
		TENANT_DEFAULT_PODS);
}

/* "--flag value" or "--flag=value" at argv[*i]: *value, advancing *i past
 * what it used. 0 if argv[*i] is not this flag, 1 if it is, < 0 on error. */
static int flag(int argc, char *const argv[], int *i, const char *name, const char **value, struct kerr *e)
{
	size_t n = strlen(name);
	const char *a = argv[*i];
	if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '='))
		return 0;
	if (a[n] == '=') {
		*value = a + n + 1;
	} else if (*i + 1 < argc) {
		*value = argv[++*i];
	} else {
		return kerr_set(e, KERR_INVAL, "%s needs a value", name);
	}
	if (*value && !**value)
		return kerr_set(e, KERR_INVAL, "%s needs a value, got an empty one", name);
	return 1;
}

static int parse_pods(const char *s, int64_t *out, struct kerr *e)
{
	int64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9' || v > TENANT_PODS_MAX)
			return kerr_set(e, KERR_INVAL, "--pods \"%s\" is not a number of pods from 0 to %d", s,
					TENANT_PODS_MAX);
		v = v * 10 + (*p - '0');
	}
	if (!*s || v > TENANT_PODS_MAX)
		return kerr_set(e, KERR_INVAL, "--pods \"%s\" is not a number of pods from 0 to %d", s, TENANT_PODS_MAX);
	*out = v;
	return 0;
}

int tenant_cli_parse(int argc, char *const argv[], struct tenant_cli_args *out, struct kerr *e)
{
	*out = (struct tenant_cli_args){.cmd = TENANT_CLI_HELP, .pods = -1};
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 0;
	if (argc < 1)
		return kerr_set(e, KERR_INVAL, "missing command: create, list or delete");
	const char *cmd = argv[0];
	if (strcmp(cmd, "create") == 0)
		out->cmd = TENANT_CLI_CREATE;
	else if (strcmp(cmd, "list") == 0)
		out->cmd = TENANT_CLI_LIST;
	else if (strcmp(cmd, "delete") == 0)
		out->cmd = TENANT_CLI_DELETE;
	else
		return kerr_set(e, KERR_INVAL, "unknown command \"%s\": use create, list or delete", cmd);

	const char *pods = NULL;
	for (int i = 1; i < argc; i++) {
		int rc = 0;
		if (out->cmd == TENANT_CLI_CREATE) {
			rc = flag(argc, argv, &i, "--cpu", &out->cpu, e);
			if (rc == 0)
				rc = flag(argc, argv, &i, "--memory", &out->memory, e);
			if (rc == 0)
				rc = flag(argc, argv, &i, "--pods", &pods, e);
		}
		if (rc < 0)
			return rc;
		if (rc > 0)
			continue;
		if (argv[i][0] == '-')
			return kerr_set(e, KERR_INVAL, "unknown option \"%s\" for tenant %s", argv[i], cmd);
		if (out->cmd == TENANT_CLI_LIST || out->name)
			return kerr_set(e, KERR_INVAL, "unexpected argument \"%s\" for tenant %s", argv[i], cmd);
		out->name = argv[i];
	}
	if (out->cmd != TENANT_CLI_LIST && !out->name)
		return kerr_set(e, KERR_INVAL, "tenant %s needs a NAME", cmd);
	if (pods)
		return parse_pods(pods, &out->pods, e);
	return 0;
}

void tenant_cli_print_table(FILE *out, struct tenant *const *ts, size_t n)
{
	static const char *const head[6] = {"NAME", "CPU", "MEMORY", "PODS", "STATUS", "CREATED"};
	size_t w[6];
	char pods[24];
	for (int c = 0; c < 6; c++)
		w[c] = strlen(head[c]);
	for (size_t i = 0; i < n; i++) {
		const char *cell[6] = {ts[i]->name, ts[i]->cpu, ts[i]->memory, pods, tenant_status_name(ts[i]->status),
				       ts[i]->created_at};
		snprintf(pods, sizeof(pods), "%" PRId64, ts[i]->pods);
		for (int c = 0; c < 6; c++)
			if (strlen(cell[c]) > w[c])
				w[c] = strlen(cell[c]);
	}
	fprintf(out, "%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0], head[0], (int)w[1], head[1], (int)w[2], head[2],
		(int)w[3], head[3], (int)w[4], head[4], head[5]);
	for (size_t i = 0; i < n; i++) {
		snprintf(pods, sizeof(pods), "%" PRId64, ts[i]->pods);
		fprintf(out, "%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0], ts[i]->name, (int)w[1], ts[i]->cpu,
			(int)w[2], ts[i]->memory, (int)w[3], pods, (int)w[4], tenant_status_name(ts[i]->status),
			ts[i]->created_at);
	}
}

static int run(struct db *db, const struct tenant_cli_args *a, struct kerr *e)
{
	char ns[TENANT_NS_MAX];
	switch (a->cmd) {
	case TENANT_CLI_CREATE: {
		struct tenant *t = NULL;
		int rc = tenant_create(db, a->name, a->cpu, a->memory, a->pods, &t, e);
		if (rc < 0)
			return rc;
		tenant_namespace_name(t->id, ns, sizeof(ns));
		printf("tenant %s created (cpu %s, memory %s, pods %" PRId64 "); the operator creates namespace %s\n",
		       t->name, t->cpu, t->memory, t->pods, ns);
		tenant_free(t);
		return 0;
	}
	case TENANT_CLI_DELETE: {
		int rc = tenant_mark_deleted(db, a->name, e);
		if (rc < 0)
			return rc;
		tenant_namespace_name(a->name, ns, sizeof(ns));
		printf("tenant %s marked for deletion; the operator deletes namespace %s and everything in it, then the "
		       "tenant\n",
		       a->name, ns);
		return 0;
	}
	case TENANT_CLI_LIST: {
		struct tenant **ts;
		size_t n;
		int rc = tenant_list(db, &ts, &n, e);
		if (rc < 0)
			return rc;
		if (n == 0)
			printf("no tenants; create one with: nimbus-operator tenant create NAME\n");
		else
			tenant_cli_print_table(stdout, ts, n);
		tenant_list_free(ts, n);
		return 0;
	}
	case TENANT_CLI_HELP:
		break;
	}
	return 0;
}

int tenant_cli_main(int argc, char *const argv[], const struct config *cfg)
{
	struct tenant_cli_args a;
	struct kerr e = {0};
	if (argc < 2 || tenant_cli_parse(argc - 2, argv + 2, &a, &e) < 0) {
		fprintf(stderr, "nimbus-operator tenant: %s\n\n", e.message[0] ? e.message : "missing command");
		tenant_cli_usage(stderr);
		return 1;
	}
	if (a.cmd == TENANT_CLI_HELP) {
		tenant_cli_usage(stdout);
		return 0;
	}
	/* Check what can be checked before reaching for the database. */
	struct tenant_quota q;
	if (a.cmd == TENANT_CLI_CREATE &&
	    (tenant_validate_name(a.name, &e) < 0 || tenant_parse_quota(a.cpu, a.memory, a.pods, &q, &e) < 0)) {
		fprintf(stderr, "nimbus-operator tenant: %s\n", e.message);
		return 1;
	}
	struct db_options o;
	struct db *db = NULL;
	db_options_from_config(&o, cfg);
	o.application_name = "nimbus-operator tenant";
	int rc = db_open(&o, &db, &e);
	if (rc == 0) {
		size_t n;
		const struct db_migration *m = db_migrations(&n);
		rc = db_migrate(db, m, n, NULL, &e);
	}
	if (rc == 0)
		rc = run(db, &a, &e);
	db_close(db);
	if (rc < 0) {
		fprintf(stderr, "nimbus-operator tenant: %s\n", e.message[0] ? e.message : kerr_strerror(rc));
		return 1;
	}
	return 0;
}
