#ifndef SHOAL_CSQLITE_TEMP_BUDGET_H
#define SHOAL_CSQLITE_TEMP_BUDGET_H

#include <sqlite3.h>
#include <stdint.h>

// A budget of bytes for the temporary files of one connection: TEMP tables, sorter spills,
// transient indices and tables, statement journals. SQLite offers no per-connection bound on them
// (`temp.max_page_count` covers the TEMP database only), so a VFS over the default one counts what
// each temporary file grows to and refuses a write past the budget with SQLITE_FULL.
//
// SQLite opens and writes temporary files on the thread that steps the statement; the budget in
// force is the one the stepping thread entered (`shoal_temp_budget_enter`), taken by each
// temporary file when it opens and released when it shrinks or closes.
typedef struct shoal_temp_budget shoal_temp_budget;

/// Installs the counting VFS as SQLite's default, over the default there was. Safe to call more
/// than once and from several threads; returns SQLITE_OK or the registration's error.
int shoal_temp_budget_install(void);

/// A budget of `limit` bytes; NULL if out of memory. Free it only after every connection that
/// entered it is closed.
shoal_temp_budget *shoal_temp_budget_create(int64_t limit);

/// Frees a budget.
void shoal_temp_budget_free(shoal_temp_budget *budget);

/// Bytes its temporary files hold now.
int64_t shoal_temp_budget_used(const shoal_temp_budget *budget);

/// How many writes it refused.
int64_t shoal_temp_budget_refusals(const shoal_temp_budget *budget);

/// Whether `db`'s main database was opened through the counting VFS (so that a budget it enters
/// is enforced).
int shoal_temp_budget_counts(sqlite3 *db);

/// Makes `budget` the calling thread's budget (NULL for none); returns the one it replaces, to be
/// given back to `shoal_temp_budget_enter` when the step is over.
shoal_temp_budget *shoal_temp_budget_enter(shoal_temp_budget *budget);

#endif
