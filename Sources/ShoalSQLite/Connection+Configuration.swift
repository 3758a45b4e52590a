internal import CSQLite
import ShoalTime

extension Connection {
    /// Flags for opening a connection (`SQLITE_OPEN_*`). `SQLITE_OPEN_EXRESCODE` is always added.
    public struct OpenFlags: OptionSet, Sendable {
        /// The flag bits.
        public let rawValue: Int32
        /// Wraps raw `SQLITE_OPEN_*` bits.
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// Open for reading only.
        public static let readOnly = OpenFlags(rawValue: SQLITE_OPEN_READONLY)
        /// Open for reading and writing.
        public static let readWrite = OpenFlags(rawValue: SQLITE_OPEN_READWRITE)
        /// Create the file if it does not exist (with `.readWrite`).
        public static let create = OpenFlags(rawValue: SQLITE_OPEN_CREATE)
        /// Interpret the path as a `file:` URI.
        public static let uri = OpenFlags(rawValue: SQLITE_OPEN_URI)
        /// An in-memory database.
        public static let memory = OpenFlags(rawValue: SQLITE_OPEN_MEMORY)
        /// Multi-thread mode: the caller serializes use of the connection (the default here).
        public static let noMutex = OpenFlags(rawValue: SQLITE_OPEN_NOMUTEX)
        /// Serialized mode: SQLite locks a mutex around every call.
        public static let fullMutex = OpenFlags(rawValue: SQLITE_OPEN_FULLMUTEX)
        /// Refuse to open a path whose last component is a symbolic link.
        public static let noFollow = OpenFlags(rawValue: SQLITE_OPEN_NOFOLLOW)
        /// Private page cache (the default).
        public static let privateCache = OpenFlags(rawValue: SQLITE_OPEN_PRIVATECACHE)
    }

    /// The journal mode to set on open.
    public enum JournalMode: String, Sendable {
        /// Rollback journal, deleted after each transaction (SQLite's default).
        case delete = "delete"
        /// Write-ahead log.
        case wal = "wal"
        /// Rollback journal truncated after each transaction.
        case truncate = "truncate"
        /// Rollback journal kept, header zeroed after each transaction.
        case persist = "persist"
        /// Journal in memory.
        case memory = "memory"
        /// No journal.
        case off = "off"
    }

    /// How a connection is opened and set up. Every step runs before `init` returns; if one fails,
    /// the handle is closed and the error thrown.
    public struct Configuration: Sendable {
        /// Open flags; defaults to read-write, create, multi-thread mode.
        public var flags: OpenFlags
        /// How long to wait for a lock before `busy`; nil keeps SQLite's default (fail at once).
        public var busyTimeout: Duration?
        /// The journal mode to set, verified after setting; nil leaves the file's mode.
        public var journalMode: JournalMode?
        /// `PRAGMA foreign_keys`; nil leaves SQLite's default (off).
        public var foreignKeys: Bool?
        /// Extra set-up run last, with the open connection (pragmas, hooks, functions).
        public var prepare: (@Sendable (Connection) throws -> Void)?

        /// A configuration; every setting defaults to read-write, create, multi-thread mode and
        /// SQLite's own defaults.
        public init(
            flags: OpenFlags = [.readWrite, .create, .noMutex],
            busyTimeout: Duration? = nil,
            journalMode: JournalMode? = nil,
            foreignKeys: Bool? = nil,
            prepare: (@Sendable (Connection) throws -> Void)? = nil
        ) {
            self.flags = flags
            self.busyTimeout = busyTimeout
            self.journalMode = journalMode
            self.foreignKeys = foreignKeys
            self.prepare = prepare
        }

        func apply(to connection: Connection) throws {
            if let busyTimeout {
                try connection.setBusyTimeout(busyTimeout)
            }
            if let journalMode {
                try connection.setJournalMode(journalMode)
            }
            if let foreignKeys {
                try connection.execute("PRAGMA foreign_keys = \(foreignKeys ? "ON" : "OFF")")
            }
            try prepare?(connection)
        }
    }

    /// Sets the journal mode and checks that SQLite accepted it.
    public func setJournalMode(_ mode: JournalMode) throws {
        let row = try queryOne("PRAGMA journal_mode = \(mode.rawValue)")
        let now = row?[0].textValue?.lowercased()
        guard now == mode.rawValue else {
            throw SQLiteError(
                code: .error,
                message: "journal mode stayed \(now ?? "unknown") instead of \(mode.rawValue) for \(path)")
        }
    }

    /// The current journal mode of the main database.
    public func journalMode() throws -> String {
        try queryOne("PRAGMA journal_mode")?[0].textValue ?? ""
    }

    /// Sets SQLite's own busy timeout (replaces any busy handler).
    public func setBusyTimeout(_ timeout: Duration) throws {
        let db = try openHandle()
        hooks.busy = nil
        hooks.busyTimeout = timeout
        try check(sqlite3_busy_timeout(db, Int32(clamping: timeout.wholeMilliseconds)))
    }

    /// A `sqlite3_limit` category.
    public struct Limit: Sendable, Hashable {
        let code: Int32
        /// Longest string or blob, and longest row, in bytes.
        public static let length = Limit(code: SQLITE_LIMIT_LENGTH)
        /// Longest SQL text in bytes.
        public static let sqlLength = Limit(code: SQLITE_LIMIT_SQL_LENGTH)
        /// Most columns in a table, index, view, result set or ORDER BY.
        public static let columns = Limit(code: SQLITE_LIMIT_COLUMN)
        /// Deepest expression tree.
        public static let expressionDepth = Limit(code: SQLITE_LIMIT_EXPR_DEPTH)
        /// Most terms in a compound SELECT.
        public static let compoundSelect = Limit(code: SQLITE_LIMIT_COMPOUND_SELECT)
        /// Most VDBE instructions in one statement's program.
        public static let vdbeOperations = Limit(code: SQLITE_LIMIT_VDBE_OP)
        /// Most arguments to a function.
        public static let functionArguments = Limit(code: SQLITE_LIMIT_FUNCTION_ARG)
        /// Most attached databases.
        public static let attached = Limit(code: SQLITE_LIMIT_ATTACHED)
        /// Longest LIKE or GLOB pattern.
        public static let likePatternLength = Limit(code: SQLITE_LIMIT_LIKE_PATTERN_LENGTH)
        /// Highest parameter number.
        public static let variableNumber = Limit(code: SQLITE_LIMIT_VARIABLE_NUMBER)
        /// Deepest trigger recursion.
        public static let triggerDepth = Limit(code: SQLITE_LIMIT_TRIGGER_DEPTH)
        /// Most auxiliary worker threads per statement.
        public static let workerThreads = Limit(code: SQLITE_LIMIT_WORKER_THREADS)
    }

    /// Sets a limit and returns the previous value. SQLite silently caps values above its hard limit.
    @discardableResult
    public func setLimit(_ limit: Limit, to value: Int32) throws -> Int32 {
        sqlite3_limit(try openHandle(), limit.code, value)
    }

    /// The current value of a limit.
    public func limit(_ limit: Limit) throws -> Int32 {
        sqlite3_limit(try openHandle(), limit.code, -1)
    }

    /// An on/off `sqlite3_db_config` switch.
    public struct ConfigSwitch: Sendable, Hashable {
        let code: Int32
        /// Do not checkpoint (or delete) the WAL when the last connection closes.
        public static let noCheckpointOnClose = ConfigSwitch(code: SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE)
        /// Whether triggers fire.
        public static let enableTrigger = ConfigSwitch(code: SQLITE_DBCONFIG_ENABLE_TRIGGER)
        /// Whether views can be used.
        public static let enableView = ConfigSwitch(code: SQLITE_DBCONFIG_ENABLE_VIEW)
        /// Defensive mode: no SQL can deliberately corrupt the file (no writable_schema etc.).
        public static let defensive = ConfigSwitch(code: SQLITE_DBCONFIG_DEFENSIVE)
        /// Whether foreign key constraints are enforced.
        public static let enableForeignKeys = ConfigSwitch(code: SQLITE_DBCONFIG_ENABLE_FKEY)
        /// Whether `load_extension()` is allowed (C API and SQL).
        public static let enableLoadExtension = ConfigSwitch(code: SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION)
        /// Whether SQL functions and virtual tables from the schema are trusted.
        public static let trustedSchema = ConfigSwitch(code: SQLITE_DBCONFIG_TRUSTED_SCHEMA)
        /// Whether `PRAGMA writable_schema` may make the schema writable.
        public static let writableSchema = ConfigSwitch(code: SQLITE_DBCONFIG_WRITABLE_SCHEMA)
        /// Whether double-quoted strings are accepted in DML.
        public static let doubleQuotedStringsInDML = ConfigSwitch(code: SQLITE_DBCONFIG_DQS_DML)
        /// Whether double-quoted strings are accepted in DDL.
        public static let doubleQuotedStringsInDDL = ConfigSwitch(code: SQLITE_DBCONFIG_DQS_DDL)
        /// Whether the two-argument `fts3_tokenizer()` (which takes a native pointer) is allowed.
        public static let enableFTS3Tokenizer = ConfigSwitch(code: SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER)
    }

    /// Sets a `sqlite3_db_config` switch and returns the setting now in force.
    @discardableResult
    public func setConfig(_ configSwitch: ConfigSwitch, _ enabled: Bool) throws -> Bool {
        var current: Int32 = 0
        try check(shoal_db_config_switch(try openHandle(), configSwitch.code, enabled ? 1 : 0, &current))
        return current != 0
    }

    /// The current setting of a `sqlite3_db_config` switch.
    public func config(_ configSwitch: ConfigSwitch) throws -> Bool {
        var current: Int32 = 0
        try check(shoal_db_config_switch(try openHandle(), configSwitch.code, -1, &current))
        return current != 0
    }
}

extension Connection {
    /// Sets SQLite's hard heap limit for the whole process (`sqlite3_hard_heap_limit64`): past it,
    /// SQLite's allocations fail and statements end with `ResultCode.noMemory` instead of the
    /// process growing. Zero removes the limit. Returns the limit in force before.
    @discardableResult
    public static func setProcessHeapLimit(bytes: Int64) -> Int64 {
        sqlite3_hard_heap_limit64(bytes)
    }
}
