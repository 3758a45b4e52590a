import ShoalSQLite

/// What tenant SQL may not do on a node: reach another file, change how the database is journaled
/// or checkpointed, or make the schema writable. Applied to every connection that runs user SQL.
enum Sandbox {
    /// Pragmas that only read when given no value, and must not be set by tenants.
    static let guardedPragmas: Set<String> = [
        "journal_mode", "wal_autocheckpoint", "locking_mode", "writable_schema", "trusted_schema",
        "synchronous", "page_size", "auto_vacuum", "mmap_size", "temp_store_directory", "data_store_directory",
        "journal_size_limit", "cache_spill", "query_only", "schema_version", "max_page_count",
    ]

    /// Pragmas refused whatever their argument (they act, not just report).
    static let forbiddenPragmas: Set<String> = ["wal_checkpoint", "temp_store_directory", "data_store_directory"]

    /// Installs the authorizer, limits and switches on `connection`.
    static func apply(to connection: Connection, configuration: NodeConfiguration) throws {
        try connection.setConfig(.enableLoadExtension, false)
        try connection.setConfig(.defensive, true)
        try connection.setConfig(.trustedSchema, false)
        try connection.setLimit(.sqlLength, to: configuration.maxSQLLength)
        try connection.setLimit(.attached, to: 0)
        try connection.setAuthorizer { action in
            switch action.code {
            case .attach, .detach:
                return .deny
            case .pragma:
                let name = (action.first ?? "").lowercased()
                if forbiddenPragmas.contains(name) { return .deny }
                if guardedPragmas.contains(name), action.second != nil { return .deny }
                return .allow
            case .function:
                // `load_extension` is off through the switch too; refuse the name outright.
                return action.second?.lowercased() == "load_extension" ? .deny : .allow
            default:
                return .allow
            }
        }
    }

    /// Whether SQL text is a `VACUUM … INTO` (which writes another file); checked before preparing
    /// because SQLite's authorizer reports it only as a plain VACUUM.
    static func isVacuumInto(_ sql: String) -> Bool {
        let words = sql.lowercased().split(whereSeparator: { $0.isWhitespace || $0 == ";" })
        guard let vacuum = words.firstIndex(of: "vacuum") else { return false }
        return words[vacuum...].contains("into")
    }
}
