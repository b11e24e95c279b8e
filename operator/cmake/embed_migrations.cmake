# Generates a C source with the migrations compiled into nimbus-operator.
#   cmake -DOUT=<file.c> -DMIGRATIONS=<a.sql;b.sql> -P embed_migrations.cmake
# Each file is NNNN_name.sql: NNNN is the version (increasing along the
# list), name the label recorded in schema_migrations. The SQL becomes a C
# string literal, so the .sql files stay plain SQL that psql can run.
if(NOT OUT OR NOT MIGRATIONS)
  message(FATAL_ERROR "embed_migrations.cmake needs -DOUT=... and -DMIGRATIONS=...")
endif()

set(body "")
set(last 0)
foreach(path IN LISTS MIGRATIONS)
  get_filename_component(file "${path}" NAME)
  if(NOT file MATCHES "^([0-9]+)_([a-z0-9_]+)\\.sql$")
    message(FATAL_ERROR "${path}: a migration file is named NNNN_name.sql (name in [a-z0-9_])")
  endif()
  set(name "${CMAKE_MATCH_2}")
  # Leading zeros would make an octal C literal.
  string(REGEX REPLACE "^0+([0-9])" "\\1" version "${CMAKE_MATCH_1}")
  if(NOT version GREATER last)
    message(FATAL_ERROR "${path}: version ${version} must be greater than the one before it (${last})")
  endif()
  set(last ${version})
  file(READ "${path}" sql)
  # The final newline is written as \n on the last line, not as a "" line.
  string(REGEX REPLACE "\n$" "" sql "${sql}")
  string(REPLACE "\\" "\\\\" sql "${sql}")
  string(REPLACE "\"" "\\\"" sql "${sql}")
  # '?' is escaped so that no ??x sequence becomes a C11 trigraph.
  string(REPLACE "?" "\\?" sql "${sql}")
  string(REPLACE "\r" "\\r" sql "${sql}")
  string(REPLACE "\t" "\\t" sql "${sql}")
  string(REPLACE "\n" "\\n\"\n\t \"" sql "${sql}")
  string(APPEND body "\t{${version}, \"${name}\",\n\t \"${sql}\\n\"},\n")
endforeach()

file(WRITE "${OUT}.tmp"
"/* Generated from operator/migrations/ by operator/cmake/embed_migrations.cmake. */
#include \"db.h\"

static const struct db_migration migrations[] = {
${body}};

const struct db_migration *db_migrations(size_t *count)
{
\t*count = sizeof(migrations) / sizeof(migrations[0]);
\treturn migrations;
}
")
# Only a changed file is rewritten, so an unchanged list recompiles nothing.
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
