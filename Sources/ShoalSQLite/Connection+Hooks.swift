internal import CSQLite
import ShoalTime

/// Closures installed as C callbacks. The connection keeps each box alive while SQLite holds a
/// pointer to it; the pointer is passed unretained.
struct HookBoxes {
    var busy: Box<(Int32) -> Bool>?
    var progress: Box<() -> Bool>?
    var authorizer: AuthorizerBox?
    var wal: Box<(String, Int) -> Void>?
    var commit: Box<() -> Bool>?
    var rollback: Box<() -> Void>?
    /// The busy timeout last set with `setBusyTimeout`, restored when a deadline is removed.
    var busyTimeout: Duration?
}

/// A reference box for a closure handed to C as a context pointer.
final class Box<Value> {
    let value: Value
    init(_ value: Value) { self.value = value }

    /// The box as an unretained context pointer; valid while the box is kept in `HookBoxes`.
    var context: UnsafeMutableRawPointer {
        Unmanaged.passUnretained(self).toOpaque()
    }

    static func from(_ context: UnsafeMutableRawPointer?) -> Box<Value> {
        Unmanaged<Box<Value>>.fromOpaque(context!).takeUnretainedValue()
    }
}

/// The authorizer's closure and the reason it last gave for a refusal, which the error of the
/// statement it refused reports (SQLite's own message is only "not authorized").
final class AuthorizerBox {
    let decide: (AuthorizerAction) -> AuthorizerDecision
    var refusal: String?
    init(_ decide: @escaping (AuthorizerAction) -> AuthorizerDecision) { self.decide = decide }

    var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ context: UnsafeMutableRawPointer?) -> AuthorizerBox {
        Unmanaged<AuthorizerBox>.fromOpaque(context!).takeUnretainedValue()
    }
}

/// What the authorizer is asked to allow: an action code and up to four names.
public struct AuthorizerAction: Sendable {
    /// The action code (`SQLITE_ATTACH`, `SQLITE_PRAGMA`, ...).
    public let code: AuthorizerActionCode
    /// First argument: table, index or pragma name, or the attached file, by action.
    public let first: String?
    /// Second argument: column, pragma value, or the table of an index or trigger, by action.
    public let second: String?
    /// The database name (`main`, `temp`, an attached name).
    public let database: String?
    /// The innermost trigger or view causing the access, if any.
    public let trigger: String?
}

/// An authorizer action code.
public struct AuthorizerActionCode: RawRepresentable, Sendable, Hashable {
    /// The `SQLITE_*` action number.
    public let rawValue: Int32
    /// Wraps an action number.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `ATTACH DATABASE`.
    public static let attach = AuthorizerActionCode(rawValue: SQLITE_ATTACH)
    /// `DETACH DATABASE`.
    public static let detach = AuthorizerActionCode(rawValue: SQLITE_DETACH)
    /// A `PRAGMA` (name in `first`, value in `second`).
    public static let pragma = AuthorizerActionCode(rawValue: SQLITE_PRAGMA)
    /// A column read (table in `first`, column in `second`).
    public static let read = AuthorizerActionCode(rawValue: SQLITE_READ)
    /// A SELECT.
    public static let select = AuthorizerActionCode(rawValue: SQLITE_SELECT)
    /// An INSERT (table in `first`).
    public static let insert = AuthorizerActionCode(rawValue: SQLITE_INSERT)
    /// An UPDATE (table in `first`, column in `second`).
    public static let update = AuthorizerActionCode(rawValue: SQLITE_UPDATE)
    /// A DELETE (table in `first`).
    public static let delete = AuthorizerActionCode(rawValue: SQLITE_DELETE)
    /// BEGIN, COMMIT or ROLLBACK (operation in `first`).
    public static let transaction = AuthorizerActionCode(rawValue: SQLITE_TRANSACTION)
    /// A SAVEPOINT operation.
    public static let savepoint = AuthorizerActionCode(rawValue: SQLITE_SAVEPOINT)
    /// A function call (function name in `second`).
    public static let function = AuthorizerActionCode(rawValue: SQLITE_FUNCTION)
    /// CREATE TABLE.
    public static let createTable = AuthorizerActionCode(rawValue: SQLITE_CREATE_TABLE)
    /// CREATE INDEX.
    public static let createIndex = AuthorizerActionCode(rawValue: SQLITE_CREATE_INDEX)
    /// CREATE TRIGGER.
    public static let createTrigger = AuthorizerActionCode(rawValue: SQLITE_CREATE_TRIGGER)
    /// CREATE VIEW.
    public static let createView = AuthorizerActionCode(rawValue: SQLITE_CREATE_VIEW)
    /// CREATE VIRTUAL TABLE.
    public static let createVirtualTable = AuthorizerActionCode(rawValue: SQLITE_CREATE_VTABLE)
    /// DROP TABLE.
    public static let dropTable = AuthorizerActionCode(rawValue: SQLITE_DROP_TABLE)
    /// ALTER TABLE.
    public static let alterTable = AuthorizerActionCode(rawValue: SQLITE_ALTER_TABLE)
    /// A recursive CTE.
    public static let recursive = AuthorizerActionCode(rawValue: SQLITE_RECURSIVE)
    /// CREATE INDEX on a TEMP table.
    public static let createTempIndex = AuthorizerActionCode(rawValue: SQLITE_CREATE_TEMP_INDEX)
    /// CREATE TEMP TABLE.
    public static let createTempTable = AuthorizerActionCode(rawValue: SQLITE_CREATE_TEMP_TABLE)
    /// CREATE TEMP TRIGGER.
    public static let createTempTrigger = AuthorizerActionCode(rawValue: SQLITE_CREATE_TEMP_TRIGGER)
    /// CREATE TEMP VIEW.
    public static let createTempView = AuthorizerActionCode(rawValue: SQLITE_CREATE_TEMP_VIEW)
    /// DROP INDEX.
    public static let dropIndex = AuthorizerActionCode(rawValue: SQLITE_DROP_INDEX)
    /// DROP INDEX of a TEMP table's index.
    public static let dropTempIndex = AuthorizerActionCode(rawValue: SQLITE_DROP_TEMP_INDEX)
    /// DROP TABLE of a TEMP table.
    public static let dropTempTable = AuthorizerActionCode(rawValue: SQLITE_DROP_TEMP_TABLE)
    /// DROP TRIGGER of a TEMP trigger.
    public static let dropTempTrigger = AuthorizerActionCode(rawValue: SQLITE_DROP_TEMP_TRIGGER)
    /// DROP VIEW of a TEMP view.
    public static let dropTempView = AuthorizerActionCode(rawValue: SQLITE_DROP_TEMP_VIEW)
    /// DROP TRIGGER.
    public static let dropTrigger = AuthorizerActionCode(rawValue: SQLITE_DROP_TRIGGER)
    /// DROP VIEW.
    public static let dropView = AuthorizerActionCode(rawValue: SQLITE_DROP_VIEW)
    /// REINDEX.
    public static let reindex = AuthorizerActionCode(rawValue: SQLITE_REINDEX)
    /// ANALYZE (also run by `PRAGMA optimize`).
    public static let analyze = AuthorizerActionCode(rawValue: SQLITE_ANALYZE)
    /// DROP TABLE of a virtual table.
    public static let dropVirtualTable = AuthorizerActionCode(rawValue: SQLITE_DROP_VTABLE)
    /// The unused `SQLITE_COPY` code.
    public static let copy = AuthorizerActionCode(rawValue: SQLITE_COPY)
}

/// What the authorizer answers.
public enum AuthorizerDecision: Sendable {
    /// Allow the action.
    case allow
    /// Fail the statement with `ResultCode.authorization` ("not authorized").
    case deny
    /// Fail the statement with `ResultCode.authorization`; its error message says "not authorized:"
    /// and this reason (which should name what was refused and why).
    case refuse(String)
    /// Allow the statement but read NULL for the column (or skip the action).
    case ignore
}

extension Connection {
    /// Installs a busy handler, called with the retry count; return true to retry.
    /// Replaces any busy timeout. Pass nil to remove.
    public func setBusyHandler(_ handler: ((Int32) -> Bool)?) throws {
        let db = try openHandle()
        guard let handler else {
            try check(sqlite3_busy_handler(db, nil, nil))
            hooks.busy = nil
            return
        }
        let box = Box(handler)
        try check(
            sqlite3_busy_handler(
                db,
                { context, count in
                    Box<(Int32) -> Bool>.from(context).value(count) ? 1 : 0
                }, box.context))
        hooks.busy = box
    }

    /// Installs a progress handler, called about every `instructions` VDBE steps; return true to
    /// interrupt the running statement (it fails with `ResultCode.interrupt`). Pass nil to remove.
    public func setProgressHandler(every instructions: Int32 = 1000, _ handler: (() -> Bool)?) throws {
        let db = try openHandle()
        guard let handler else {
            sqlite3_progress_handler(db, 0, nil, nil)
            hooks.progress = nil
            return
        }
        let box = Box(handler)
        sqlite3_progress_handler(
            db, instructions,
            { context in
                Box<() -> Bool>.from(context).value() ? 1 : 0
            }, box.context)
        hooks.progress = box
    }

    /// Makes statements fail with `ResultCode.interrupt` once `deadline` has passed, checked about
    /// every `instructions` VDBE steps through the progress handler (which it replaces), and makes
    /// lock waits end at the deadline too (`ResultCode.busy`): SQLite does not run the progress
    /// handler while it waits for a lock, so the busy timeout is replaced, until the deadline is
    /// removed, by a busy handler that waits in short steps up to the deadline and no longer.
    /// Callers set a deadline before running a request's statements; pass nil to remove it (the
    /// busy timeout set before comes back).
    public func setDeadline(
        _ deadline: ContinuousClock.Instant?, every instructions: Int32 = 1000,
        clock: ContinuousClock = ContinuousClock()
    ) throws {
        guard let deadline else {
            try setProgressHandler(nil)
            let timeout = hooks.busyTimeout
            try setBusyHandler(nil)
            if let timeout { try setBusyTimeout(timeout) }
            return
        }
        try setProgressHandler(every: instructions) { clock.now >= deadline }
        let timeout = hooks.busyTimeout
        try setBusyHandler { attempt in
            let now = clock.now
            guard now < deadline else { return false }
            // 1, 2, 4 … 16 ms between tries, never past the deadline.
            let step = Duration.milliseconds(1 << min(Int(attempt), 4))
            let wait = min(step, deadline - now)
            sqlite3_sleep(Int32(clamping: max(1, wait.wholeMilliseconds)))
            return true
        }
        hooks.busyTimeout = timeout
    }

    /// Installs an authorizer consulted while statements are prepared (and while a table-valued
    /// `pragma_*` function runs its pragma). Pass nil to remove. Installing one expires every
    /// prepared statement of the connection.
    public func setAuthorizer(_ authorizer: ((AuthorizerAction) -> AuthorizerDecision)?) throws {
        let db = try openHandle()
        guard let authorizer else {
            try check(sqlite3_set_authorizer(db, nil, nil))
            hooks.authorizer = nil
            return
        }
        let box = AuthorizerBox(authorizer)
        try check(
            sqlite3_set_authorizer(
                db,
                { context, code, first, second, database, trigger in
                    let action = AuthorizerAction(
                        code: AuthorizerActionCode(rawValue: code),
                        first: first.map { String(cString: $0) },
                        second: second.map { String(cString: $0) },
                        database: database.map { String(cString: $0) },
                        trigger: trigger.map { String(cString: $0) })
                    let box = AuthorizerBox.from(context)
                    switch box.decide(action) {
                    case .allow: return SQLITE_OK
                    case .deny: return SQLITE_DENY
                    case .refuse(let reason):
                        box.refusal = reason
                        return SQLITE_DENY
                    case .ignore: return SQLITE_IGNORE
                    }
                }, box.context))
        hooks.authorizer = box
    }

    /// Installs a WAL hook, called after each commit in WAL mode with the database name and the
    /// number of frames now in the WAL. It replaces automatic checkpointing. Pass nil to remove.
    public func setWALHook(_ hook: ((_ database: String, _ frames: Int) -> Void)?) throws {
        let db = try openHandle()
        guard let hook else {
            sqlite3_wal_hook(db, nil, nil)
            hooks.wal = nil
            return
        }
        let box = Box(hook)
        sqlite3_wal_hook(
            db,
            { context, _, database, frames in
                Box<(String, Int) -> Void>.from(context).value(
                    database.map { String(cString: $0) } ?? "main", Int(frames))
                return SQLITE_OK
            }, box.context)
        hooks.wal = box
    }

    /// Installs a commit hook; return true to turn the commit into a rollback. Pass nil to remove.
    public func setCommitHook(_ hook: (() -> Bool)?) throws {
        let db = try openHandle()
        guard let hook else {
            sqlite3_commit_hook(db, nil, nil)
            hooks.commit = nil
            return
        }
        let box = Box(hook)
        sqlite3_commit_hook(db, { context in Box<() -> Bool>.from(context).value() ? 1 : 0 }, box.context)
        hooks.commit = box
    }

    /// Installs a rollback hook. Pass nil to remove.
    public func setRollbackHook(_ hook: (() -> Void)?) throws {
        let db = try openHandle()
        guard let hook else {
            sqlite3_rollback_hook(db, nil, nil)
            hooks.rollback = nil
            return
        }
        let box = Box(hook)
        sqlite3_rollback_hook(db, { context in Box<() -> Void>.from(context).value() }, box.context)
        hooks.rollback = box
    }
}
