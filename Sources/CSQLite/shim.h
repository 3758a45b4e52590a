#ifndef SHOAL_CSQLITE_SHIM_H
#define SHOAL_CSQLITE_SHIM_H

#include <sqlite3.h>

// Swift cannot call C variadic functions or use function-pointer macros directly, so the few
// parts of the sqlite3 API that are variadic or macro-only are wrapped here.

/// `sqlite3_db_config` for the on/off switches (SQLITE_DBCONFIG_ENABLE_TRIGGER, DEFENSIVE, ...).
/// Writes the setting now in force to `*current` when `current` is not NULL.
static inline int shoal_db_config_switch(sqlite3 *db, int op, int enable, int *current) {
    return sqlite3_db_config(db, op, enable, current);
}

/// `sqlite3_db_config(SQLITE_DBCONFIG_MAINDBNAME, name)`.
static inline int shoal_db_config_maindbname(sqlite3 *db, const char *name) {
    return sqlite3_db_config(db, SQLITE_DBCONFIG_MAINDBNAME, name);
}

/// `sqlite3_config` with one int argument (SQLITE_CONFIG_MEMSTATUS, ...). Only before initialize.
static inline int shoal_config_int(int op, int value) {
    return sqlite3_config(op, value);
}

/// `SQLITE_TRANSIENT`: SQLite copies the bound bytes before the bind call returns.
static inline sqlite3_destructor_type shoal_transient(void) {
    return SQLITE_TRANSIENT;
}

/// `SQLITE_STATIC`: the bound bytes outlive the statement's use of them.
static inline sqlite3_destructor_type shoal_static(void) {
    return SQLITE_STATIC;
}

/// Reads `amount` bytes at `offset` through a file's own I/O methods.
static inline int shoal_file_read(sqlite3_file *file, void *buffer, int amount, sqlite3_int64 offset) {
    return file->pMethods->xRead(file, buffer, amount, offset);
}

/// Writes `amount` bytes at `offset` through a file's own I/O methods.
static inline int shoal_file_write(sqlite3_file *file, const void *buffer, int amount, sqlite3_int64 offset) {
    return file->pMethods->xWrite(file, buffer, amount, offset);
}

/// Truncates a file through its own I/O methods.
static inline int shoal_file_truncate(sqlite3_file *file, sqlite3_int64 size) {
    return file->pMethods->xTruncate(file, size);
}

/// Syncs a file through its own I/O methods (`SQLITE_SYNC_NORMAL` or `SQLITE_SYNC_FULL`).
static inline int shoal_file_sync(sqlite3_file *file, int flags) {
    return file->pMethods->xSync(file, flags);
}

/// The size of a file in bytes, through its own I/O methods.
static inline int shoal_file_size(sqlite3_file *file, sqlite3_int64 *size) {
    return file->pMethods->xFileSize(file, size);
}

/// Whether a file handle returned by `SQLITE_FCNTL_FILE_POINTER` / `JOURNAL_POINTER` is open.
static inline int shoal_file_is_open(sqlite3_file *file) {
    return file != 0 && file->pMethods != 0;
}

#endif
