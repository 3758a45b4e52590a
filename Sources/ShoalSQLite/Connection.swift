internal import CSQLite
internal import CSQLiteTempBudget
import Synchronization

/// One SQLite connection: the single owner of a `sqlite3*` handle.
///
/// A connection is not `Sendable`: it is used by one thread at a time, through a serialized owner
/// (an actor, a mutex, a dedicated thread). It is opened in SQLite's multi-thread mode
/// (`SQLITE_OPEN_NOMUTEX`) unless `.fullMutex` is asked for, so no call pays for a mutex.
/// Only `interruptHandle` may be used from other threads.
///
/// `close()` always releases the handle: statements still alive are finalized first and fail with
/// a clear error if used afterwards. `deinit` closes too.
public final class Connection {
    /// The open handle; nil once closed.
    var handle: OpaquePointer?
    /// The path given to `init`, for messages.
    public let path: String
    /// Statements prepared on this connection and not yet finalized, so `close()` can finalize them.
    private var liveStatements: [ObjectIdentifier: WeakStatement] = [:]
    /// Shared with `InterruptHandle`s so they never touch a closed handle.
    let interruptState: InterruptState
    /// Boxes kept alive while their C callbacks are installed.
    var hooks = HookBoxes()
    /// The budget its temporary files count against, once `limitTemporaryFiles(toBytes:)` set one.
    private(set) var tempBudget: TempBudget?
    /// The statement cache behind `cachedStatement(_:)`.
    lazy var statementCache = StatementCache(capacity: 64)

    /// Opens (and, with `.create`, creates) the database at `path`, then applies `configuration`.
    ///
    /// If opening or any configuration step fails, the handle is closed before the error is thrown.
    public init(path: String, configuration: Configuration = Configuration()) throws {
        self.path = path
        var db: OpaquePointer?
        let flags = configuration.flags.rawValue | SQLITE_OPEN_EXRESCODE
        // The default VFS counts temporary files against a connection's budget when it has one.
        let installed = shoal_temp_budget_install()
        guard installed == SQLITE_OK else {
            throw SQLiteError(
                code: ResultCode(rawValue: installed), message: "cannot install the temporary-file budget VFS")
        }
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            // SQLite allocates a handle even when open fails; it must still be closed.
            sqlite3_close(db)
            throw SQLiteError(code: ResultCode(rawValue: rc), message: "cannot open \(path): \(message)")
        }
        self.handle = db
        self.interruptState = InterruptState(db)
        sqlite3_extended_result_codes(db, 1)
        do {
            try configuration.apply(to: self)
        } catch {
            try? close()
            throw error
        }
    }

    deinit {
        try? close()
    }

    /// Whether `close()` has run.
    public var isClosed: Bool { handle == nil }

    /// Closes the connection, finalizing every statement still alive. Calling it again does nothing.
    ///
    /// An open transaction is rolled back. Statements kept by callers are left finalized: using one
    /// throws `ResultCode.misuse`.
    public func close() throws {
        guard let db = handle else { return }
        statementCache.removeAll()
        for entry in liveStatements.values {
            entry.statement?.finalizeForClose()
        }
        liveStatements.removeAll()
        // Statements that virtual tables (FTS5) prepared internally are theirs to finalize:
        // sqlite3_close disconnects the tables first, which does so.
        interruptState.invalidate()
        handle = nil
        let rc = sqlite3_close(db)
        hooks = HookBoxes()
        if rc != SQLITE_OK {
            // Only an unfinished backup can keep the handle busy now; let SQLite free it when done.
            let message = String(cString: sqlite3_errmsg(db))
            sqlite3_close_v2(db)
            // Its temporary files may outlive this call: their budget must too.
            tempBudget?.leak()
            throw SQLiteError(code: ResultCode(rawValue: rc), message: "close of \(path) failed: \(message)")
        }
    }

    /// Bounds the bytes this connection's temporary files may hold at once: TEMP tables and
    /// indices, sorter spills, transient indices and tables, statement journals
    /// (`temp.max_page_count` covers only the first). A write past it fails with `SQLITE_FULL`.
    /// Applies to statements prepared from now on; call it once, before preparing any that matter.
    public func limitTemporaryFiles(toBytes limit: Int64) throws {
        precondition(tempBudget == nil, "a connection's temporary-file budget is set once")
        let db = try openHandle()
        guard shoal_temp_budget_counts(db) != 0 else {
            throw SQLiteError(
                code: .misuse,
                message: "\(path) was not opened through the temporary-file budget VFS; its budget would not hold")
        }
        // Sorter helper threads would write without the stepping thread's budget.
        sqlite3_limit(db, SQLITE_LIMIT_WORKER_THREADS, 0)
        guard let budget = TempBudget(limit: limit) else {
            throw SQLiteError(code: .noMemory, message: "cannot allocate a temporary-file budget")
        }
        tempBudget = budget
    }

    /// Bytes this connection's temporary files hold now (0 without a budget).
    public var temporaryFileBytes: Int64 { tempBudget.map { shoal_temp_budget_used($0.pointer) } ?? 0 }

    /// Writes to temporary files this connection's budget refused so far (0 without a budget).
    public var temporaryFileRefusals: Int64 { tempBudget.map { shoal_temp_budget_refusals($0.pointer) } ?? 0 }

    /// The open handle, or a misuse error after `close()`.
    @inline(__always)
    func openHandle() throws -> OpaquePointer {
        guard let handle else { throw SQLiteError.closed }
        return handle
    }

    /// The error for a failed call on this connection, with SQLite's current message.
    func lastError(_ rc: Int32, sql: String? = nil) -> SQLiteError {
        let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
        defer { hooks.authorizer?.refusal = nil }
        // A refusal surfaces as SQLITE_AUTH ("not authorized", "access to t.c is prohibited"), as
        // SQLITE_ERROR for a function ("not authorized to use function"), or inside another
        // message when a table-valued pragma's own statement was refused: whichever, it is
        // reported as SQLITE_AUTH with the authorizer's reason.
        if let reason = hooks.authorizer?.refusal,
            rc & 0xff == SQLITE_AUTH || message.contains("not authorized") || message.contains("prohibited")
        {
            return SQLiteError(code: .authorization, message: "not authorized: \(reason)", sql: sql)
        }
        return SQLiteError(code: ResultCode(rawValue: rc), message: message, sql: sql)
    }

    /// Throws unless `rc` is `SQLITE_OK`.
    @inline(__always)
    func check(_ rc: Int32, sql: String? = nil) throws {
        if rc != SQLITE_OK { throw lastError(rc, sql: sql) }
    }

    // MARK: Statements

    /// Prepares the first statement of `sql`; the rest is kept as the statement's `tail`.
    ///
    /// Throws if `sql` holds no statement (only whitespace or comments).
    public func prepare(_ sql: String, persistent: Bool = false) throws -> Statement {
        guard let statement = try prepareFirst(sql, persistent: persistent) else {
            throw SQLiteError(code: .misuse, message: "no SQL statement to prepare", sql: sql)
        }
        return statement
    }

    /// Prepares the first statement of `sql`, or returns nil if it holds none.
    public func prepareFirst(_ sql: String, persistent: Bool = false) throws -> Statement? {
        let db = try openHandle()
        hooks.authorizer?.refusal = nil
        var text = sql
        return try text.withUTF8 { utf8 -> Statement? in
            guard let base = utf8.baseAddress else { return nil }
            var stmt: OpaquePointer?
            var tailPointer: UnsafePointer<CChar>?
            let flags: UInt32 = persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
            let rc = base.withMemoryRebound(to: CChar.self, capacity: utf8.count) { chars in
                sqlite3_prepare_v3(db, chars, Int32(utf8.count), flags, &stmt, &tailPointer)
            }
            if rc != SQLITE_OK {
                throw lastError(rc, sql: sql)
            }
            var tail = ""
            if let tailPointer {
                let consumed = UnsafeRawPointer(tailPointer) - UnsafeRawPointer(base)
                if consumed < utf8.count {
                    tail = String(decoding: UnsafeBufferPointer(rebasing: utf8[consumed...]), as: UTF8.self)
                }
            }
            guard let stmt else { return nil }
            let statement = Statement(handle: stmt, connection: self, tail: tail)
            liveStatements[ObjectIdentifier(statement)] = WeakStatement(statement: statement)
            return statement
        }
    }

    /// Forgets a statement that finalized itself.
    func statementFinalized(_ statement: Statement) {
        liveStatements[ObjectIdentifier(statement)] = nil
    }

    /// Resets every statement of this connection, so none keeps a read open (before ending a
    /// transaction that statements may still be stepping through).
    public func resetAllStatements() {
        for entry in liveStatements.values {
            entry.statement?.reset()
        }
    }

    /// The number of statements prepared on this connection and not yet finalized.
    public var liveStatementCount: Int { liveStatements.count }

    /// A prepared statement for `sql` from the connection's small LRU cache, reset and unbound.
    public func cachedStatement(_ sql: String) throws -> Statement {
        if let statement = statementCache.statement(for: sql) {
            statement.reset()
            statement.clearBindings()
            return statement
        }
        let statement = try prepare(sql, persistent: true)
        statementCache.insert(statement, for: sql)
        return statement
    }

    /// Runs every statement in `sql` in order, discarding rows.
    public func execute(_ sql: String) throws {
        var remaining = sql
        while let statement = try prepareFirst(remaining) {
            defer { statement.finalize() }
            while try statement.step() {}
            remaining = statement.tail
        }
    }

    /// Runs one statement with positional arguments, discarding rows.
    public func execute(_ sql: String, _ arguments: [any SQLiteBindable]) throws {
        let statement = try prepare(sql)
        defer { statement.finalize() }
        try statement.bind(arguments)
        while try statement.step() {}
    }

    /// Runs one statement with positional arguments and returns all its rows.
    public func query(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws -> [Row] {
        let statement = try prepare(sql)
        defer { statement.finalize() }
        try statement.bind(arguments)
        return try statement.rows()
    }

    /// Runs one statement and returns its first row, or nil.
    public func queryOne(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws -> Row? {
        let statement = try prepare(sql)
        defer { statement.finalize() }
        try statement.bind(arguments)
        return try statement.step() ? statement.row() : nil
    }

    /// Runs one statement and decodes every row as `T`.
    public func query<T: Decodable>(
        _ type: T.Type, _ sql: String, _ arguments: [any SQLiteBindable] = []
    ) throws -> [T] {
        try query(sql, arguments).map { try $0.decode(T.self) }
    }

    // MARK: State

    /// Rows changed by the most recent INSERT, UPDATE or DELETE.
    public var changes: Int {
        handle.map { Int(sqlite3_changes64($0)) } ?? 0
    }

    /// Rows changed since the connection opened.
    public var totalChanges: Int {
        handle.map { Int(sqlite3_total_changes64($0)) } ?? 0
    }

    /// The rowid of the most recent successful INSERT.
    public var lastInsertRowID: Int64 {
        handle.map { sqlite3_last_insert_rowid($0) } ?? 0
    }

    /// Whether the connection is in autocommit mode (no transaction open).
    public var isAutocommit: Bool {
        handle.map { sqlite3_get_autocommit($0) != 0 } ?? true
    }

    /// Whether the named database of this connection is read-only.
    public func isReadOnly(database: String = "main") -> Bool {
        handle.map { sqlite3_db_readonly($0, database) == 1 } ?? true
    }

    /// Runs `body` in a transaction: commits if it returns, rolls back if it throws.
    public func transaction<T>(_ kind: TransactionKind = .deferred, _ body: () throws -> T) throws -> T {
        try execute("BEGIN \(kind.rawValue)")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            if !isAutocommit {
                try? execute("ROLLBACK")
            }
            throw error
        }
    }

    /// How a transaction takes its locks.
    public enum TransactionKind: String, Sendable {
        /// Locks are taken on first read or write.
        case deferred = "DEFERRED"
        /// The write lock is taken at once.
        case immediate = "IMMEDIATE"
        /// An exclusive lock is taken at once: no other connection reads until commit.
        case exclusive = "EXCLUSIVE"
    }
}

@available(*, unavailable, message: "a Connection is used by one thread at a time through its owner")
extension Connection: Sendable {}

/// A weak reference to a statement, so the registry does not keep statements alive.
struct WeakStatement {
    weak var statement: Statement?
}

/// A connection's temporary-file budget (C, shared by its files); freed with the connection.
final class TempBudget {
    let pointer: OpaquePointer
    private var leaked = false

    init?(limit: Int64) {
        guard let pointer = shoal_temp_budget_create(limit) else { return nil }
        self.pointer = pointer
    }

    /// Keeps the budget allocated for good (files of a connection SQLite closes later use it).
    func leak() { leaked = true }

    deinit {
        if !leaked { shoal_temp_budget_free(pointer) }
    }
}
