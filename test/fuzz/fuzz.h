/*
 * fuzz: what every fuzz target in test/fuzz shares.
 *
 * Each target is one .c file defining LLVMFuzzerTestOneInput. It is built
 * twice: with -DNIMBUS_FUZZ=ON and clang as fuzz_<target>, linked with
 * libFuzzer (-fsanitize=fuzzer,address,undefined); and in every build as
 * replay_<target>, linked with replay.c, a main that feeds it the files of
 * its seed corpus (test/fuzz/corpus/<target>/) so that CTest replays the
 * corpus, regressions included, on the normal and the ASan build.
 *
 * A target returns 0 for every input; it calls fuzz_fail() (which aborts)
 * when the code under test breaks a promise of its contract that the
 * sanitizers cannot see (chunking changes the events, say).
 */
#ifndef NIMBUS_FUZZ_H
#define NIMBUS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Report a broken contract and abort: libFuzzer saves the input. */
#define fuzz_fail(...)                                                      \
	do {                                                                \
		fprintf(stderr, "fuzz: %s:%d: ", __FILE__, __LINE__);       \
		fprintf(stderr, __VA_ARGS__);                               \
		fputc('\n', stderr);                                        \
		abort();                                                    \
	} while (0)

struct kobj;

/*
 * Fold a decoded object into the hash h (FNV-1a) and check what its
 * contract promises (kinds.h, kobj.h): every string and array it points to
 * lies in its single block of o->size bytes (or is the empty string "",
 * which needs none), strings are NUL-terminated there, labels are sorted.
 * Reading every field also lets ASan see a bad pointer. Aborts on a broken
 * promise; returns the new hash.
 */
uint64_t fuzz_hash_kobj(uint64_t h, const struct kobj *o);
/* FNV-1a of n bytes (or a NUL-terminated string with fuzz_hash_str) into h. */
uint64_t fuzz_hash(uint64_t h, const void *p, size_t n);
uint64_t fuzz_hash_str(uint64_t h, const char *s);
#define FUZZ_HASH_INIT UINT64_C(14695981039346656037)

#endif
