# Generates a C source holding a text file as a string.
#   cmake -DIN=<file> -DOUT=<file.c> -DNAME=<symbol> -P embed_text.cmake
# Defines `const char NAME[]` (NUL-terminated) and `const size_t NAME_len`.
if(NOT IN OR NOT OUT OR NOT NAME)
  message(FATAL_ERROR "embed_text.cmake needs -DIN=... -DOUT=... -DNAME=...")
endif()
file(READ "${IN}" text)
string(REGEX REPLACE "\n$" "" text "${text}")
string(REPLACE "\\" "\\\\" text "${text}")
string(REPLACE "\"" "\\\"" text "${text}")
# '?' is escaped so that no ??x sequence becomes a C11 trigraph.
string(REPLACE "?" "\\?" text "${text}")
string(REPLACE "\r" "\\r" text "${text}")
string(REPLACE "\t" "\\t" text "${text}")
string(REPLACE "\n" "\\n\"\n\t\"" text "${text}")
get_filename_component(src "${IN}" NAME)
file(WRITE "${OUT}.tmp"
"/* Generated from ${src} by operator/cmake/embed_text.cmake. */
#include <stddef.h>

extern const char ${NAME}[];
extern const size_t ${NAME}_len;
const char ${NAME}[] =
\t\"${text}\\n\";
const size_t ${NAME}_len = sizeof(${NAME}) - 1;
")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
