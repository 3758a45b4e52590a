#include "CBenchBaseline.h"

#include <malloc.h>
#include <sqlite3.h>
#include <time.h>

uint64_t shoal_bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int shoal_bench_c_point_reads(const char *path, const char *sql, const int64_t *keys, int64_t count,
                              int held_transaction, uint64_t *durations_ns, int64_t *checksum) {
    sqlite3 *db = 0;
    sqlite3_stmt *stmt = 0;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    int rc = sqlite3_open_v2(path, &db, flags, 0);
    if (rc != SQLITE_OK) goto done;
    rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, 0);
    if (rc != SQLITE_OK) goto done;
    if (held_transaction) {
        rc = sqlite3_exec(db, "BEGIN", 0, 0, 0);
        if (rc != SQLITE_OK) goto done;
    }
    int64_t sum = 0;
    for (int64_t i = 0; i < count; i++) {
        uint64_t start = shoal_bench_now_ns();
        sqlite3_reset(stmt);
        sqlite3_bind_int64(stmt, 1, keys[i]);
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW) goto done;
        const unsigned char *text = sqlite3_column_text(stmt, 0);
        int bytes = sqlite3_column_bytes(stmt, 0);
        int64_t n = sqlite3_column_int64(stmt, 1);
        uint64_t end = shoal_bench_now_ns();
        sum += bytes + n + (text ? 0 : 1);
        durations_ns[i] = end - start;
    }
    sqlite3_reset(stmt);
    rc = SQLITE_OK;
    if (held_transaction) rc = sqlite3_exec(db, "COMMIT", 0, 0, 0);
    *checksum = sum;
done:
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rc;
}

void shoal_bench_heap(int64_t *in_use, int64_t *held, int64_t *sqlite) {
    struct mallinfo2 info = mallinfo2();
    *in_use = (int64_t)(info.uordblks + info.hblkhd);
    *held = (int64_t)(info.arena + info.hblkhd);
    *sqlite = (int64_t)sqlite3_memory_used();
}

int shoal_bench_heap_trim(void) { return malloc_trim(0); }
