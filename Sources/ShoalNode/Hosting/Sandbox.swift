import ShoalSQLite

/// What tenant SQL may do on a node, as an allow-list: the functions, pragmas, virtual-table
/// modules and authorizer actions named here are allowed, everything else is refused with
/// `SQLITE_AUTH` and a message naming what was refused and why. `docs/SECURITY.md` gives the
/// reason for each refusal.
///
/// One per connection that runs tenant SQL (a stream's or a replica's reader), installed as the
/// connection's authorizer and used only by the connection's owner, one thread at a time.
final class Sandbox {
    /// How tenants may use a pragma.
    enum PragmaUse: Equatable {
        /// Reads the database or its schema, with or without arguments (`table_info(t)`).
        case report
        /// Read and set by the tenant: it changes only the tenant's own data or connection.
        case tenantSetting
        /// Read only: the node's value is kept (resource and storage settings).
        case nodeSetting
        /// Refused in every form, with the reason.
        case refused(String)
    }

    /// Every pragma of SQLite 3.40 and how tenants may use it; one not listed is refused.
    static let pragmas: [String: PragmaUse] = {
        var table: [String: PragmaUse] = [:]
        for name in [
            "collation_list", "data_version", "foreign_key_check", "foreign_key_list", "freelist_count",
            "function_list", "index_info", "index_list", "index_xinfo", "integrity_check", "module_list",
            "page_count", "pragma_list", "quick_check", "table_info", "table_list", "table_xinfo",
        ] {
            table[name] = .report
        }
        for name in [
            "application_id", "user_version", "foreign_keys", "defer_foreign_keys", "recursive_triggers",
            "case_sensitive_like", "ignore_check_constraints", "legacy_alter_table", "reverse_unordered_selects",
            "automatic_index", "incremental_vacuum", "optimize",
        ] {
            table[name] = .tenantSetting
        }
        for name in [
            "journal_mode", "auto_vacuum", "page_size", "encoding", "schema_version", "max_page_count",
            "synchronous", "wal_autocheckpoint", "locking_mode", "cache_spill", "journal_size_limit", "mmap_size",
            "busy_timeout", "cache_size", "default_cache_size", "threads", "temp_store", "secure_delete",
            "analysis_limit", "query_only", "trusted_schema", "writable_schema", "read_uncommitted",
            "cell_size_check", "checkpoint_fullfsync", "fullfsync", "count_changes", "empty_result_callbacks",
            "full_column_names", "short_column_names",
        ] {
            table[name] = .nodeSetting
        }
        table["compile_options"] = .refused("it tells an attacker what the node's SQLite was built with")
        table["database_list"] = .refused("it shows the node's file paths")
        table["hard_heap_limit"] = .refused("it sets a limit for the whole node process, not one database")
        table["soft_heap_limit"] = .refused("it sets a limit for the whole node process, not one database")
        table["shrink_memory"] = .refused("the node manages SQLite's memory")
        table["temp_store_directory"] = .refused("it sets a directory for the whole node process")
        table["data_store_directory"] = .refused("it sets a directory for the whole node process")
        table["wal_checkpoint"] = .refused("checkpoints belong to the node's replication log")
        return table
    }()

    /// Tenant settings that write the database file rather than set the connection.
    static let pragmasThatWriteTheFile: Set<String> = ["application_id", "user_version", "incremental_vacuum"]

    /// SQL functions tenants may call (SQLite 3.40's core, JSON, math, date, window, FTS and R*Tree
    /// functions).
    static let functions: Set<String> = [
        "->", "->>", "abs", "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "avg", "bm25", "ceil",
        "ceiling", "changes", "char", "coalesce", "cos", "cosh", "count", "cume_dist", "current_date",
        "current_time", "current_timestamp", "date", "datetime", "degrees", "dense_rank", "exp", "first_value",
        "floor", "format", "glob", "group_concat", "hex", "highlight", "ifnull", "iif", "instr", "json",
        "json_array", "json_array_length", "json_extract", "json_group_array", "json_group_object", "json_insert",
        "json_object", "json_patch", "json_quote", "json_remove", "json_replace", "json_set", "json_type",
        "json_valid", "julianday", "lag", "last_insert_rowid", "last_value", "lead", "length", "like",
        "likelihood", "likely", "ln", "log", "log10", "log2", "lower", "ltrim", "match", "matchinfo", "max",
        "min", "mod", "nth_value", "ntile", "nullif", "offsets", "optimize", "percent_rank", "pi", "pow", "power",
        "printf", "quote", "radians", "random", "randomblob", "rank", "replace", "round", "row_number",
        "rtreecheck", "rtreedepth", "rtreenode", "rtrim", "sign", "sin", "sinh", "snippet", "soundex",
        "sqlite_source_id", "sqlite_version", "sqrt", "strftime", "substr", "substring", "subtype", "sum", "tan",
        "tanh", "time", "total", "total_changes", "trim", "trunc", "typeof", "unicode", "unixepoch", "unlikely",
        "upper", "zeroblob",
        // Internal functions SQLite's own ALTER TABLE statements call; SQLite refuses them in
        // tenant SQL itself ("no such function").
        "sqlite_rename_column", "sqlite_rename_table", "sqlite_rename_test", "sqlite_drop_column",
        "sqlite_rename_quotefix",
    ]

    /// Functions refused, with the reason (any other function not in `functions` is refused too).
    static let refusedFunctions: [String: String] = [
        "fts3_tokenizer": "it reads and registers native pointers in the node process",
        "load_extension": "it loads native code into the node process",
        "fts5": "it hands out a native pointer to FTS5's C API",
        "sqlite_compileoption_get": "it tells an attacker what the node's SQLite was built with",
        "sqlite_compileoption_used": "it tells an attacker what the node's SQLite was built with",
        "sqlite_log": "it writes to the node's log",
    ]

    /// Virtual-table modules tenants may create tables with.
    static let modules: Set<String> = ["fts3", "fts4", "fts5", "rtree", "rtree_i32", "fts4aux", "fts5vocab"]

    /// Virtual tables (built-in, eponymous) tenants may not read, with the reason.
    static let refusedTables: [String: String] = [
        "sqlite_stmt": "it lists the statements the node runs on the connection",
        "dbstat": "it reads the file's pages below SQL",
    ]

    /// Whether the current request may only read: write actions are refused, and `query_only` is on.
    var readOnly = false
    /// Whether a statement prepared since `takeHiddenWrite()` writes although SQLite reports it as
    /// read-only (`PRAGMA optimize` runs ANALYZE): it needs the write permit all the same.
    private var hiddenWrite = false
    /// While true, the node runs its own statements on the connection and nothing is checked.
    private var trusted = false
    /// The `query_only` value last set on the connection.
    private var queryOnlyApplied = false

    /// Installs the sandbox on `connection`: switches, limits and the authorizer.
    @discardableResult
    static func apply(to connection: Connection, configuration: NodeConfiguration) throws -> Sandbox {
        let sandbox = Sandbox()
        try connection.setConfig(.enableLoadExtension, false)
        try connection.setConfig(.enableFTS3Tokenizer, false)
        try connection.setConfig(.defensive, true)
        try connection.setConfig(.writableSchema, false)
        // Functions in the schema (CHECK, indexes, views, triggers, generated columns) may be any
        // function of the allow-list, JSON's among them: the authorizer sees views and triggers,
        // and what it cannot see (expressions stored in the schema) is limited by SQLite itself to
        // functions that are not SQLITE_DIRECTONLY, which every refused function with native
        // effects is (`fts3_tokenizer`, `load_extension`).
        try connection.setConfig(.trustedSchema, true)
        try connection.setLimit(.sqlLength, to: configuration.maxSQLLength)
        try connection.setLimit(.length, to: Int32(clamping: configuration.maxResponseBytes))
        try connection.setLimit(.attached, to: 0)
        // The connection keeps the sandbox alive through its authorizer.
        try connection.setAuthorizer { action in sandbox.decide(action) }
        return sandbox
    }

    /// Runs the node's own statements on the connection, unchecked.
    func trusted<T>(_ body: () throws -> T) rethrows -> T {
        trusted = true
        defer { trusted = false }
        return try body()
    }

    /// Sets `query_only` to match `readOnly` if it does not yet.
    func enforceAccess(on connection: Connection) throws {
        guard queryOnlyApplied != readOnly else { return }
        try trusted { try connection.execute("PRAGMA query_only = \(readOnly ? 1 : 0)") }
        queryOnlyApplied = readOnly
    }

    /// Whether a statement prepared since the last call writes behind SQLite's back; clears it.
    func takeHiddenWrite() -> Bool {
        defer { hiddenWrite = false }
        return hiddenWrite
    }

    /// The authorizer: the allow-list.
    func decide(_ action: AuthorizerAction) -> AuthorizerDecision {
        if trusted { return .allow }
        switch action.code {
        case .insert where Self.isMigrationRecord(action.first), .update where Self.isMigrationRecord(action.first),
            .delete where Self.isMigrationRecord(action.first),
            .createTable where Self.isMigrationRecord(action.first),
            .createTempTable where Self.isMigrationRecord(action.first),
            .createView where Self.isMigrationRecord(action.first),
            .createTempView where Self.isMigrationRecord(action.first),
            .createVirtualTable where Self.isMigrationRecord(action.first),
            .dropTable where Self.isMigrationRecord(action.first),
            .dropTempTable where Self.isMigrationRecord(action.first),
            .dropView where Self.isMigrationRecord(action.first),
            .dropVirtualTable where Self.isMigrationRecord(action.first),
            .alterTable where Self.isMigrationRecord(action.second),
            .createIndex where Self.isMigrationRecord(action.second),
            .createTempIndex where Self.isMigrationRecord(action.second),
            .createTrigger where Self.isMigrationRecord(action.second),
            .createTempTrigger where Self.isMigrationRecord(action.second),
            .dropIndex where Self.isMigrationRecord(action.second),
            .dropTrigger where Self.isMigrationRecord(action.second):
            // A table renamed to this name is not seen here (the authorizer gets the old name); the
            // migrator refuses a record whose definition is not its own.
            return .refuse(
                "\(TenantMigrator.table) records the schema migrations this database applied; only the node's "
                    + "migrations change it (read it freely)")
        case .select, .transaction, .savepoint, .recursive:
            return .allow
        case .read:
            if let table = action.first?.lowercased(), let reason = Self.refusedTables[table] {
                return .refuse("the virtual table \(table) is not available to tenant SQL: \(reason)")
            }
            return .allow
        case .function:
            let name = (action.second ?? "").lowercased()
            if Self.functions.contains(name) { return .allow }
            let reason = Self.refusedFunctions[name] ?? "it is not on the node's list of allowed functions"
            return .refuse("the function \(name)() is not available to tenant SQL: \(reason)")
        case .pragma:
            return decidePragma(name: (action.first ?? "").lowercased(), value: action.second)
        case .attach, .detach:
            return .refuse(
                "ATTACH, DETACH and VACUUM are not available to tenant SQL: a database reaches only its own file")
        case .createVirtualTable:
            let module = (action.second ?? "").lowercased()
            guard Self.modules.contains(module) else {
                return .refuse("the virtual-table module \(module) is not available to tenant SQL")
            }
            return writing("CREATE VIRTUAL TABLE")
        case .insert, .update, .delete:
            return writing(action.code == .insert ? "INSERT" : action.code == .update ? "UPDATE" : "DELETE")
        case .analyze:
            return writing("ANALYZE")
        case .createTable, .createIndex, .createTrigger, .createView, .createTempTable, .createTempIndex,
            .createTempTrigger, .createTempView, .dropTable, .dropIndex, .dropTrigger, .dropView, .dropTempTable,
            .dropTempIndex, .dropTempTrigger, .dropTempView, .dropVirtualTable, .alterTable, .reindex:
            return writing("a schema change")
        default:
            return .refuse("this kind of statement (authorizer action \(action.code.rawValue)) is not available")
        }
    }

    /// Whether a table name is the migrations' record.
    private static func isMigrationRecord(_ table: String?) -> Bool {
        table?.lowercased() == TenantMigrator.table
    }

    private func writing(_ what: String) -> AuthorizerDecision {
        guard readOnly else { return .allow }
        return .refuse("the token is read-only and \(what) writes; ask for a read-write token")
    }

    private func decidePragma(name: String, value: String?) -> AuthorizerDecision {
        switch Self.pragmas[name] {
        case .report:
            return .allow
        case .tenantSetting:
            if name == "optimize" {
                hiddenWrite = true
                return writing("PRAGMA optimize")
            }
            guard Self.pragmasThatWriteTheFile.contains(name), value != nil || name == "incremental_vacuum" else {
                return .allow
            }
            return writing("setting PRAGMA \(name)")
        case .nodeSetting:
            guard value == nil else {
                return .refuse("PRAGMA \(name) can be read but not set: the node keeps its own value")
            }
            return .allow
        case .refused(let reason):
            return .refuse("PRAGMA \(name) is not available to tenant SQL: \(reason)")
        case nil:
            return .refuse("PRAGMA \(name) is not on the node's list of allowed pragmas")
        }
    }
}
