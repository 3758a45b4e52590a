#ifndef SHOAL_CBENCH_BASELINE_H
#define SHOAL_CBENCH_BASELINE_H

#include <stdint.h>

/// Monotonic clock in nanoseconds (CLOCK_MONOTONIC), used by every timed loop in shoal-bench.
uint64_t shoal_bench_now_ns(void);

/// The baseline for `local-read`: opens `path` with the plain C API (read-write, multi-thread mode),
/// prepares `sql` (one integer parameter, one TEXT then one INTEGER column), and runs one point read
/// per key, timing each one into `durations_ns`. With `held_transaction` set, all reads run inside
/// one `BEGIN` ... `COMMIT`. Adds each row's text length and integer to `*checksum`.
/// Returns SQLITE_OK or the failing result code.
int shoal_bench_c_point_reads(const char *path, const char *sql, const int64_t *keys, int64_t count,
                              int held_transaction, uint64_t *durations_ns, int64_t *checksum);

/// Memory the C heap (glibc malloc, every arena) holds for the process: `in_use` bytes handed out
/// and not freed, `held` bytes taken from the system (in use, free chunks, mmapped blocks).
/// `sqlite` is what SQLite's allocator counts as in use (sqlite3_memory_used).
void shoal_bench_heap(int64_t *in_use, int64_t *held, int64_t *sqlite);

/// Returns free heap memory to the system (malloc_trim(0)); returns whether any was released.
int shoal_bench_heap_trim(void);

#endif
