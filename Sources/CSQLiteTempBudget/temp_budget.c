// The counting VFS behind CSQLiteTempBudget.h: every call goes to the VFS that was the default,
// and temporary files opened while a budget is entered are wrapped so that their growth is counted.

#include "CSQLiteTempBudget.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct shoal_temp_budget {
    _Atomic int64_t used;
    _Atomic int64_t refusals;
    int64_t limit;
};

/// A wrapped temporary file: our methods first, then the real file (of the real VFS's size).
typedef struct {
    sqlite3_file base;
    shoal_temp_budget *budget;
    /// The bytes this file has taken from the budget: its size as far as writes made it.
    int64_t counted;
    sqlite3_file *real;
} counted_file;

static _Thread_local shoal_temp_budget *current_budget = NULL;
static sqlite3_vfs *real_vfs = NULL;
static sqlite3_vfs counting_vfs;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_result = SQLITE_OK;

static const int temporary_kinds = SQLITE_OPEN_TEMP_DB | SQLITE_OPEN_TEMP_JOURNAL | SQLITE_OPEN_TRANSIENT_DB
    | SQLITE_OPEN_SUBJOURNAL;

// MARK: Budgets

shoal_temp_budget *shoal_temp_budget_create(int64_t limit) {
    shoal_temp_budget *budget = calloc(1, sizeof(shoal_temp_budget));
    if (budget) budget->limit = limit;
    return budget;
}

void shoal_temp_budget_free(shoal_temp_budget *budget) { free(budget); }

int64_t shoal_temp_budget_used(const shoal_temp_budget *budget) { return atomic_load(&budget->used); }

int64_t shoal_temp_budget_refusals(const shoal_temp_budget *budget) { return atomic_load(&budget->refusals); }

shoal_temp_budget *shoal_temp_budget_enter(shoal_temp_budget *budget) {
    shoal_temp_budget *previous = current_budget;
    current_budget = budget;
    return previous;
}

/// Takes `bytes` from `budget`; false (nothing taken) if that would pass its limit.
static int take(shoal_temp_budget *budget, int64_t bytes) {
    int64_t used = atomic_fetch_add(&budget->used, bytes) + bytes;
    if (used > budget->limit) {
        atomic_fetch_sub(&budget->used, bytes);
        atomic_fetch_add(&budget->refusals, 1);
        return 0;
    }
    return 1;
}

static void give_back(shoal_temp_budget *budget, int64_t bytes) { atomic_fetch_sub(&budget->used, bytes); }

// MARK: The wrapped file's methods

static int counted_close(sqlite3_file *file) {
    counted_file *counted = (counted_file *)file;
    give_back(counted->budget, counted->counted);
    counted->counted = 0;
    int rc = counted->real->pMethods ? counted->real->pMethods->xClose(counted->real) : SQLITE_OK;
    return rc;
}

static int counted_read(sqlite3_file *file, void *buffer, int amount, sqlite3_int64 offset) {
    counted_file *counted = (counted_file *)file;
    return counted->real->pMethods->xRead(counted->real, buffer, amount, offset);
}

static int counted_write(sqlite3_file *file, const void *buffer, int amount, sqlite3_int64 offset) {
    counted_file *counted = (counted_file *)file;
    int64_t end = offset + amount;
    if (end > counted->counted) {
        if (!take(counted->budget, end - counted->counted)) return SQLITE_FULL;
        int rc = counted->real->pMethods->xWrite(counted->real, buffer, amount, offset);
        if (rc != SQLITE_OK) {
            give_back(counted->budget, end - counted->counted);
            return rc;
        }
        counted->counted = end;
        return SQLITE_OK;
    }
    return counted->real->pMethods->xWrite(counted->real, buffer, amount, offset);
}

static int counted_truncate(sqlite3_file *file, sqlite3_int64 size) {
    counted_file *counted = (counted_file *)file;
    int rc = counted->real->pMethods->xTruncate(counted->real, size);
    if (rc == SQLITE_OK && size < counted->counted) {
        give_back(counted->budget, counted->counted - size);
        counted->counted = size;
    }
    return rc;
}

static int counted_sync(sqlite3_file *file, int flags) {
    counted_file *counted = (counted_file *)file;
    return counted->real->pMethods->xSync(counted->real, flags);
}

static int counted_file_size(sqlite3_file *file, sqlite3_int64 *size) {
    counted_file *counted = (counted_file *)file;
    return counted->real->pMethods->xFileSize(counted->real, size);
}

static int counted_lock(sqlite3_file *file, int level) {
    counted_file *counted = (counted_file *)file;
    return counted->real->pMethods->xLock(counted->real, level);
}

static int counted_unlock(sqlite3_file *file, int level) {
    counted_file *counted = (counted_file *)file;
    return counted->real->pMethods->xUnlock(counted->real, level);
}

static int counted_check_reserved_lock(sqlite3_file *file, int *reserved) {
    counted_file *counted = (counted_file *)file;
    return counted->real->pMethods->xCheckReservedLock(counted->real, reserved);
}

static int counted_file_control(sqlite3_file *file, int op, void *argument) {
    counted_file *counted = (counted_file *)file;
    // A size hint would grow the file without a write: it is only a hint, so it is not passed on.
    if (op == SQLITE_FCNTL_SIZE_HINT) return SQLITE_OK;
    return counted->real->pMethods->xFileControl(counted->real, op, argument);
}

static int counted_sector_size(sqlite3_file *file) {
    counted_file *counted = (counted_file *)file;
    return counted->real->pMethods->xSectorSize(counted->real);
}

static int counted_device_characteristics(sqlite3_file *file) {
    counted_file *counted = (counted_file *)file;
    return counted->real->pMethods->xDeviceCharacteristics(counted->real);
}

// Version 1: temporary files are never shared-memory or memory-mapped files.
static const sqlite3_io_methods counted_methods = {
    1,
    counted_close,
    counted_read,
    counted_write,
    counted_truncate,
    counted_sync,
    counted_file_size,
    counted_lock,
    counted_unlock,
    counted_check_reserved_lock,
    counted_file_control,
    counted_sector_size,
    counted_device_characteristics,
    NULL, NULL, NULL, NULL, NULL, NULL,
};

// MARK: The VFS

static int counting_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags) {
    (void)vfs;
    shoal_temp_budget *budget = current_budget;
    if (budget == NULL || (flags & temporary_kinds) == 0 || (flags & SQLITE_OPEN_MAIN_DB)) {
        // Not counted: the real VFS fills in `file` (ours is larger than it needs).
        return real_vfs->xOpen(real_vfs, name, file, flags, out_flags);
    }
    counted_file *counted = (counted_file *)file;
    memset(counted, 0, sizeof(counted_file));
    counted->real = (sqlite3_file *)(counted + 1);
    int rc = real_vfs->xOpen(real_vfs, name, counted->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        // SQLite calls xClose only when pMethods is set: leave it NULL, and close what the real
        // VFS may have left open.
        if (counted->real->pMethods) counted->real->pMethods->xClose(counted->real);
        counted->base.pMethods = NULL;
        return rc;
    }
    counted->budget = budget;
    counted->base.pMethods = &counted_methods;
    return SQLITE_OK;
}

static int counting_delete(sqlite3_vfs *vfs, const char *name, int sync_directory) {
    (void)vfs;
    return real_vfs->xDelete(real_vfs, name, sync_directory);
}

static int counting_access(sqlite3_vfs *vfs, const char *name, int flags, int *result) {
    (void)vfs;
    return real_vfs->xAccess(real_vfs, name, flags, result);
}

static int counting_full_pathname(sqlite3_vfs *vfs, const char *name, int size, char *output) {
    (void)vfs;
    return real_vfs->xFullPathname(real_vfs, name, size, output);
}

static void *counting_dl_open(sqlite3_vfs *vfs, const char *name) {
    (void)vfs;
    return real_vfs->xDlOpen(real_vfs, name);
}

static void counting_dl_error(sqlite3_vfs *vfs, int size, char *message) {
    (void)vfs;
    real_vfs->xDlError(real_vfs, size, message);
}

static void (*counting_dl_sym(sqlite3_vfs *vfs, void *handle, const char *symbol))(void) {
    (void)vfs;
    return real_vfs->xDlSym(real_vfs, handle, symbol);
}

static void counting_dl_close(sqlite3_vfs *vfs, void *handle) {
    (void)vfs;
    real_vfs->xDlClose(real_vfs, handle);
}

static int counting_randomness(sqlite3_vfs *vfs, int size, char *output) {
    (void)vfs;
    return real_vfs->xRandomness(real_vfs, size, output);
}

static int counting_sleep(sqlite3_vfs *vfs, int microseconds) {
    (void)vfs;
    return real_vfs->xSleep(real_vfs, microseconds);
}

static int counting_current_time(sqlite3_vfs *vfs, double *now) {
    (void)vfs;
    return real_vfs->xCurrentTime(real_vfs, now);
}

static int counting_get_last_error(sqlite3_vfs *vfs, int size, char *message) {
    (void)vfs;
    return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, size, message) : 0;
}

static int counting_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *now) {
    (void)vfs;
    return real_vfs->xCurrentTimeInt64(real_vfs, now);
}

static void install(void) {
    real_vfs = sqlite3_vfs_find(NULL);
    if (real_vfs == NULL) {
        install_result = SQLITE_ERROR;
        return;
    }
    memset(&counting_vfs, 0, sizeof(counting_vfs));
    counting_vfs.iVersion = 2;
    counting_vfs.szOsFile = (int)sizeof(counted_file) + real_vfs->szOsFile;
    counting_vfs.mxPathname = real_vfs->mxPathname;
    counting_vfs.zName = "shoal-temp-budget";
    counting_vfs.xOpen = counting_open;
    counting_vfs.xDelete = counting_delete;
    counting_vfs.xAccess = counting_access;
    counting_vfs.xFullPathname = counting_full_pathname;
    counting_vfs.xDlOpen = counting_dl_open;
    counting_vfs.xDlError = counting_dl_error;
    counting_vfs.xDlSym = counting_dl_sym;
    counting_vfs.xDlClose = counting_dl_close;
    counting_vfs.xRandomness = counting_randomness;
    counting_vfs.xSleep = counting_sleep;
    counting_vfs.xCurrentTime = counting_current_time;
    counting_vfs.xGetLastError = counting_get_last_error;
    counting_vfs.xCurrentTimeInt64 = real_vfs->iVersion >= 2 && real_vfs->xCurrentTimeInt64
        ? counting_current_time_int64 : NULL;
    install_result = sqlite3_vfs_register(&counting_vfs, 1);
}

int shoal_temp_budget_counts(sqlite3 *db) {
    sqlite3_vfs *vfs = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_VFS_POINTER, &vfs) != SQLITE_OK || vfs == NULL) return 0;
    return vfs == &counting_vfs;
}

int shoal_temp_budget_install(void) {
    pthread_once(&install_once, install);
    return install_result;
}
