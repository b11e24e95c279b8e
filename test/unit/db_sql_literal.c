/* Compiled, not run, by test_db_sql_literal and test_db_sql_variable: the
 * second must fail to compile, proving that db_exec_params() refuses SQL
 * text that is not a string literal. */
#include "db.h"

int db_sql_literal_check(struct db *d, const char *user_input);

int db_sql_literal_check(struct db *d, const char *user_input)
{
#ifdef NIMBUS_SQL_literal
	(void)user_input;
	return db_exec_params(d, "SELECT 1", 0, NULL, NULL, NULL);
#else
	return db_exec_params(d, user_input, 0, NULL, NULL, NULL);
#endif
}
