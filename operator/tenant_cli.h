/*
 * tenant_cli: `nimbus-operator tenant ...`, the administrator's commands.
 *
 *   nimbus-operator tenant create NAME [--cpu Q] [--memory Q] [--pods N]
 *   nimbus-operator tenant list
 *   nimbus-operator tenant delete NAME
 *
 * Contract
 * - The commands work on the database only (DB_* from the config): they
 *   connect, apply the schema migrations, make one change and exit. A
 *   running operator sees the change through the table's NOTIFY and
 *   creates or deletes the namespace; the commands do not wait for it.
 * - create: defaults cpu TENANT_DEFAULT_CPU ("2"), memory
 *   TENANT_DEFAULT_MEMORY ("4Gi"), pods TENANT_DEFAULT_PODS (20); the name
 *   and quotas are checked (tenant.h) before connecting. delete marks the
 *   tenant deleting: the operator deletes its namespace, then its row.
 *   list prints a table ordered by name.
 * - Output: results on stdout, errors on stderr, each saying what to do.
 *   Exit status 0 on success, 1 on any failure (usage included), as
 *   returned by tenant_cli_main; nothing here calls exit().
 */
#ifndef NIMBUS_TENANT_CLI_H
#define NIMBUS_TENANT_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "kerr.h"
#include "tenant.h"

enum tenant_cli_cmd { TENANT_CLI_HELP, TENANT_CLI_CREATE, TENANT_CLI_LIST, TENANT_CLI_DELETE };

/* A parsed command line; the strings point into argv. */
struct tenant_cli_args {
	enum tenant_cli_cmd cmd;
	const char *name;   /* create, delete */
	const char *cpu;    /* create; NULL: the default */
	const char *memory; /* create; NULL: the default */
	int64_t pods;       /* create; -1: the default */
};

/*
 * Parse argv[0..argc) as the words after "tenant" (argv[0] is the
 * subcommand). Flags take `--flag value` or `--flag=value`; -h/--help
 * anywhere gives TENANT_CLI_HELP. KERR_INVAL with a message otherwise.
 */
int tenant_cli_parse(int argc, char *const argv[], struct tenant_cli_args *out, struct kerr *e);

/* The usage text. */
void tenant_cli_usage(FILE *out);

/* The tenants as a table (NAME CPU MEMORY PODS STATUS CREATED). */
void tenant_cli_print_table(FILE *out, struct tenant *const *ts, size_t n);

/*
 * Run the command line argv (argv[0] the program, argv[1] "tenant", as
 * main receives it) with the database settings of cfg. Returns the exit
 * status: 0 or 1.
 */
int tenant_cli_main(int argc, char *const argv[], const struct config *cfg);

#endif
