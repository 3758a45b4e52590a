internal import CSQLite

/// Facts about the SQLite library in use.
public enum SQLite {
    /// The library's version string (`3.40.1`).
    public static var version: String { String(cString: sqlite3_libversion()) }

    /// The library's version number (`3040001`).
    public static var versionNumber: Int { Int(sqlite3_libversion_number()) }

    /// Whether the library was compiled thread-safe (required by ShoalSQLite).
    public static var isThreadSafe: Bool { sqlite3_threadsafe() != 0 }

    /// Whether a compile-time option was used (`ENABLE_FTS5`, `THREADSAFE=1`, ...).
    public static func hasCompileOption(_ name: String) -> Bool {
        sqlite3_compileoption_used(name) != 0
    }
}
