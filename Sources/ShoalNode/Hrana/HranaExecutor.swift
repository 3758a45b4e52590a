import Foundation
import NIOCore
import ShoalModel
import ShoalReplication
import ShoalSQLite
import ShoalSyncTransport
import ShoalTime

/// Runs Hrana requests on one SQLite connection with Hrana's semantics and error codes. Used by a
/// stream for its whole life, and for each HTTP API v1 request. Blocking: call it off the event loops.
final class HranaExecutor {
    let database: HostedDatabase
    let connection: Connection
    /// The primary log whose write permit writing statements hold; nil on a replica's reader.
    private let log: PrimaryLog?
    /// The primary's queue of writers, whose turn statements that write hold until the connection
    /// is back in autocommit; nil on a replica's reader.
    private let writers: WriterQueue?
    /// When the current HTTP request's time is up: no statement of it runs, or waits for a lock,
    /// past this (`beginRequest` sets it; an executor made for one request starts its clock).
    var requestDeadline: ContinuousClock.Instant
    /// The bytes of values the current request has returned so far, across its statements (the
    /// node's response cap is per request: a pipeline of large results is refused as a whole).
    private var responseBytes = 0
    /// What the current request holds of the node's response budget; handed to the caller at the
    /// end of the request (`takeReservation`), to be given back once the answer is encoded.
    private var reservation: ResponseReservation?
    /// A replica's reader belongs to the replica, which keeps it open.
    private let borrowed: Bool
    var storedSQL: [Int32: String] = [:]
    private var holdsWritePermit = false
    /// The cursor the stream answers now, between its chunks.
    private var cursor: CursorRun?
    /// The allow-list on a stream's own connection; nil on a replica's reader (which is opened
    /// read-only and has its own).
    private let sandbox: Sandbox?
    /// What the current request's token allows; statements that write are refused when read-only,
    /// by the sandbox (write actions refused, `query_only` on) as well as by the executor.
    var access: Access = .readWrite {
        didSet { sandbox?.readOnly = access == .readOnly }
    }
    private var configuration: NodeConfiguration { database.configuration }

    /// An executor on a new connection to the database's primary log.
    init(database: HostedDatabase) throws {
        self.database = database
        requestDeadline = .now.advanced(by: database.configuration.requestTimeLimit)
        (connection, sandbox) = try database.makeSandboxedConnection()
        log = try database.log
        writers = database.writers
        borrowed = false
    }

    /// An executor on a replica's read connection (lent for one request; it stays open).
    init(database: HostedDatabase, reader: Connection) {
        self.database = database
        requestDeadline = .now.advanced(by: database.configuration.requestTimeLimit)
        connection = reader
        sandbox = nil
        log = nil
        writers = nil
        borrowed = true
    }

    /// Rolls back what is open, gives the write permit back and closes the connection.
    func close() {
        cursor?.abandon()
        cursor = nil
        guard !borrowed else { return }
        if !connection.isAutocommit { try? connection.execute("ROLLBACK") }
        // Closed before the permit and the turn go: a failed ROLLBACK still ends with the close.
        try? connection.close()
        releasePermitIfDone(force: true)
        writers?.release(owner)
    }

    // MARK: Requests

    /// Runs one stream request. Protocol errors (which fail the whole HTTP request) throw
    /// `NodeError`; SQL errors come back as a `.error` result.
    func run(_ request: Hrana.StreamRequest, version: Int) throws -> Hrana.StreamResult {
        defer { releasePermitIfDone() }
        switch request {
        case .execute(let statement):
            return result { .execute(try execute(statement)) }
        case .batch(let batch):
            return .ok(.batch(try self.batch(batch)))
        case .sequence(let sql, let sqlID):
            let text = try resolve(sql: sql, sqlID: sqlID)
            return result {
                try sequence(text)
                return .sequence
            }
        case .describe(let sql, let sqlID):
            let text = try resolve(sql: sql, sqlID: sqlID)
            return result { .describe(try describe(text)) }
        case .storeSQL(let id, let sql):
            guard storedSQL[id] == nil else {
                throw NodeError.badRequest("SQL id \(id) is already stored on this stream")
            }
            guard storedSQL.count < 50 else { throw NodeError.badRequest("a stream stores at most 50 SQL texts") }
            guard sql.utf8.count <= 5 * 1024 else { throw NodeError.badRequest("stored SQL is limited to 5 KB") }
            storedSQL[id] = sql
            return .ok(.storeSQL)
        case .closeSQL(let id):
            storedSQL[id] = nil
            return .ok(.closeSQL)
        case .getAutocommit:
            guard version >= 3 else { throw NodeError.badRequest("get_autocommit needs Hrana 3 (/v3/pipeline)") }
            return .ok(.getAutocommit(connection.isAutocommit))
        case .close:
            return .ok(.close)
        }
    }

    private func result(_ body: () throws -> Hrana.StreamResponse) -> Hrana.StreamResult {
        do {
            return .ok(try body())
        } catch let failure as Hrana.Failure {
            return .error(failure)
        } catch let error as SQLiteError {
            return .error(Self.failure(error))
        } catch {
            return .error(Hrana.Failure(message: "\(error)", code: "SQLITE_UNKNOWN"))
        }
    }

    private func resolve(sql: String?, sqlID: Int32?) throws -> String {
        switch (sql, sqlID) {
        case (let sql?, nil): return sql
        case (nil, let id?):
            guard let stored = storedSQL[id] else {
                throw NodeError.badRequest("SQL id \(id) is not stored on this stream")
            }
            return stored
        default:
            throw NodeError.badRequest("give either sql or sql_id, not both or neither")
        }
    }

    // MARK: Statements

    /// Runs one statement and returns its result; throws `Hrana.Failure` or `SQLiteError`.
    func execute(_ request: Hrana.Statement) throws -> Hrana.StatementResult {
        let statement = try prepare(request)
        defer { statement.finalize() }
        let start = ContinuousClock.now
        try connection.setDeadline(statementDeadline(from: start))
        defer { try? connection.setDeadline(nil) }
        let changesBefore = connection.totalChanges
        var rows: [[HranaValue]] = []
        while try statement.step() {
            guard request.wantRows else { continue }
            guard rows.count < configuration.maxRowsPerStatement else {
                throw Hrana.Failure(
                    message: "the statement returned more than \(configuration.maxRowsPerStatement) rows; add a LIMIT",
                    code: "RESPONSE_TOO_LARGE")
            }
            let row = try takeRow(of: statement)
            guard responseBytes <= configuration.maxResponseBytes else {
                throw Hrana.Failure(
                    message:
                        "the request's results are larger than \(configuration.maxResponseBytes) bytes; select fewer rows "
                        + "or columns, split the request, or read the rows through /v3/cursor",
                    code: "RESPONSE_TOO_LARGE")
            }
            rows.append(row)
        }
        let changed = connection.totalChanges - changesBefore
        return Hrana.StatementResult(
            columns: Self.columns(of: statement), rows: rows,
            affectedRowCount: statement.isReadOnly ? 0 : connection.changes,
            lastInsertRowID: connection.lastInsertRowID, rowsRead: rows.count, rowsWritten: changed,
            queryDurationMilliseconds: (ContinuousClock.now - start).inMilliseconds)
    }

    /// Resolves, prepares and binds a statement, refused when it is blocked, not alone in its SQL,
    /// or writing where it may not (taking the write permit when it writes).
    private func prepare(_ request: Hrana.Statement) throws -> Statement {
        try refuseIfBlocked()
        let sql = try resolve(sql: request.sql, sqlID: request.sqlID)
        try sandbox?.enforceAccess(on: connection)
        guard let statement = try connection.prepareFirst(sql) else {
            throw Hrana.Failure(message: "SQL string does not contain any statement", code: "SQL_NO_STATEMENT")
        }
        do {
            if !statement.tail.isEmpty, try connection.prepareFirst(statement.tail) != nil {
                throw Hrana.Failure(
                    message: "SQL string contains more than one statement", code: "SQL_MANY_STATEMENTS")
            }
            try bind(request, to: statement)
            if writes(statement) {
                try refuseIfReadOnly()
                try acquirePermit()
            }
        } catch {
            statement.finalize()
            throw error
        }
        return statement
    }

    /// The current row of `statement`, its bytes counted against the node's response budget.
    private func takeRow(of statement: Statement) throws -> [HranaValue] {
        let row = (0..<statement.columnCount).map { HranaValue(resultColumn: statement.value(at: $0)) }
        let rowBytes = row.reduce(0) { $0 + Self.size(of: $1) }
        responseBytes += rowBytes
        if reservation == nil { reservation = ResponseReservation(configuration.responseBudget) }
        guard reservation?.grow(by: rowBytes) != false else {
            throw Hrana.Failure(
                message:
                    "the node holds \(configuration.responseBudget.limit) bytes of other requests' results now; "
                    + "retry shortly, or select fewer rows or columns",
                code: "RESPONSE_TOO_LARGE")
        }
        return row
    }

    private static func columns(of statement: Statement) -> [Hrana.Column] {
        (0..<statement.columnCount).map {
            Hrana.Column(name: statement.columnNames[$0], declaredType: statement.declaredType(at: $0))
        }
    }

    private func bind(_ request: Hrana.Statement, to statement: Statement) throws {
        if !request.arguments.isEmpty && !request.namedArguments.isEmpty {
            throw Hrana.Failure(
                message: "a statement takes positional or named arguments, not both",
                code: "ARGS_BOTH_POSITIONAL_AND_NAMED")
        }
        guard request.arguments.count <= statement.parameterCount else {
            throw Hrana.Failure(
                message:
                    "the statement has \(statement.parameterCount) parameters but \(request.arguments.count) arguments were given",
                code: "ARGS_INVALID")
        }
        for (offset, argument) in request.arguments.enumerated() {
            try statement.bind(SQLiteValue(argument), at: offset + 1)
        }
        for argument in request.namedArguments {
            guard let index = statement.parameterIndex(named: argument.name) else {
                throw Hrana.Failure(
                    message: "the statement has no parameter named \(argument.name)", code: "ARGS_INVALID")
            }
            try statement.bind(SQLiteValue(argument.value), at: index)
        }
    }

    func batch(_ batch: Hrana.Batch) throws -> Hrana.BatchResult {
        var results: [Hrana.StatementResult?] = Array(repeating: nil, count: batch.steps.count)
        var errors: [Hrana.Failure?] = Array(repeating: nil, count: batch.steps.count)
        var outcomes: [Bool?] = Array(repeating: nil, count: batch.steps.count)
        for (index, step) in batch.steps.enumerated() {
            if let condition = step.condition, try !evaluate(condition, outcomes: outcomes, before: index) {
                continue
            }
            do {
                results[index] = try execute(step.statement)
                outcomes[index] = true
            } catch let failure as Hrana.Failure {
                errors[index] = failure
                outcomes[index] = false
            } catch let error as SQLiteError {
                errors[index] = Self.failure(error)
                outcomes[index] = false
            }
            releasePermitIfDone()
        }
        return Hrana.BatchResult(stepResults: results, stepErrors: errors)
    }

    // MARK: Cursors

    /// Starts a cursor over `batch` (`advanceCursor` runs it); what would fail the whole request
    /// (a condition on a step that does not run before its own, SQL that is neither given nor
    /// stored) is refused now, before any entry is sent.
    func startCursor(_ batch: Hrana.Batch) throws {
        for (index, step) in batch.steps.enumerated() {
            if let condition = step.condition { try Self.validate(condition, before: index) }
            _ = try resolve(sql: step.statement.sql, sqlID: step.statement.sqlID)
        }
        cursor?.abandon()
        cursor = CursorRun(batch: batch)
    }

    /// Runs the cursor on until the entries it appends to `lines` (newline-delimited JSON) pass
    /// `chunkBytes`, or it ends; returns whether it ended. A step whose rows do not fit stays open,
    /// mid-statement, for the next call, so that no thread waits while the client reads and the
    /// rows are never all in memory. SQL errors become `step_error` entries, as in a batch.
    func advanceCursor(into lines: inout ByteBuffer, chunkBytes: Int) throws -> Bool {
        guard let cursor else { throw NodeError.badRequest("the stream runs no cursor") }
        let encoder = WireJSON.encoder()
        func emit(_ entry: Hrana.CursorEntry) throws {
            lines.writeBytes(try encoder.encode(entry))
            lines.writeInteger(UInt8(ascii: "\n"))
        }
        while lines.readableBytes < chunkBytes {
            if let open = cursor.open {
                do {
                    try connection.setDeadline(statementDeadline(from: open.start))
                    defer { try? connection.setDeadline(nil) }
                    var ended = false
                    while lines.readableBytes < chunkBytes {
                        guard try open.statement.step() else {
                            ended = true
                            break
                        }
                        if open.wantRows { try emit(.row(try takeRow(of: open.statement))) }
                    }
                    guard ended else { return false }
                    try emit(
                        .stepEnd(
                            affectedRowCount: open.statement.isReadOnly ? 0 : connection.changes,
                            lastInsertRowID: connection.lastInsertRowID))
                    cursor.endStep(ok: true)
                } catch {
                    cursor.endStep(ok: false)
                    try emit(.stepError(step: open.index, error: Self.cursorFailure(error)))
                }
                releasePermitIfDone()
            } else if cursor.next < cursor.batch.steps.count {
                let index = cursor.next
                cursor.next += 1
                let step = cursor.batch.steps[index]
                if let condition = step.condition,
                    try !evaluate(condition, outcomes: cursor.outcomes, before: index)
                {
                    continue
                }
                // The write permit a writing statement takes when prepared is kept until it has
                // stepped to its end (it commits then, in autocommit): given back only on failure.
                do {
                    let statement = try prepare(step.statement)
                    cursor.open = CursorRun.OpenStep(
                        index: index, statement: statement, start: .now, wantRows: step.statement.wantRows)
                    try emit(.stepBegin(step: index, columns: Self.columns(of: statement)))
                } catch {
                    cursor.endStep(ok: false)
                    cursor.outcomes[index] = false
                    try emit(.stepError(step: index, error: Self.cursorFailure(error)))
                    releasePermitIfDone()
                }
            } else {
                break
            }
        }
        guard cursor.isFinished else { return false }
        self.cursor = nil
        return true
    }

    /// An error of a cursor's step as its `step_error` entry says it: once the answer has started,
    /// nothing else may end it (the Rust client reads an `error` entry as a string).
    private static func cursorFailure(_ error: any Error) -> Hrana.Failure {
        switch error {
        case let failure as Hrana.Failure: failure
        case let error as SQLiteError: failure(error)
        default: Hrana.Failure(message: "\(error)", code: "SQLITE_UNKNOWN")
        }
    }

    /// Whether the connection is outside a transaction with no writing statement open: then a
    /// cursor between chunks gives its database's write turn back, so that other writers need not
    /// wait while its client reads (a later writing step takes it again, or fails with
    /// `SQLITE_BUSY` as in a batch).
    func releaseWriteTurnBetweenChunks() {
        guard connection.isAutocommit, cursor?.open.map({ $0.statement.isReadOnly }) ?? true else { return }
        releasePermitIfDone()
        writers?.release(owner)
    }

    /// Stops the cursor where it is, finalizing its open statement (what it ran stays as it is:
    /// the stream's transaction, if any, is the client's to end).
    func abandonCursor() {
        cursor?.abandon()
        cursor = nil
    }

    /// Whether a condition names only steps before `index`.
    private static func validate(_ condition: Hrana.Condition, before index: Int) throws {
        switch condition {
        case .ok(let n), .error(let n):
            guard n >= 0, n < index else {
                throw NodeError.badRequest(
                    "a batch condition refers to step \(n), which does not run before step \(index)")
            }
        case .not(let inner): try validate(inner, before: index)
        case .and(let all), .or(let all): for inner in all { try validate(inner, before: index) }
        case .isAutocommit: break
        }
    }

    private func evaluate(_ condition: Hrana.Condition, outcomes: [Bool?], before index: Int) throws -> Bool {
        func step(_ n: Int) throws -> Bool? {
            guard n >= 0, n < index else {
                throw NodeError.badRequest(
                    "a batch condition refers to step \(n), which does not run before step \(index)")
            }
            return outcomes[n]
        }
        switch condition {
        case .ok(let n): return try step(n) == true
        case .error(let n): return try step(n) == false
        case .not(let inner): return try !evaluate(inner, outcomes: outcomes, before: index)
        case .and(let all): return try all.allSatisfy { try evaluate($0, outcomes: outcomes, before: index) }
        case .or(let any): return try any.contains { try evaluate($0, outcomes: outcomes, before: index) }
        case .isAutocommit: return connection.isAutocommit
        }
    }

    private func sequence(_ sql: String) throws {
        try refuseIfBlocked()
        try sandbox?.enforceAccess(on: connection)
        var remaining = sql
        while let statement = try connection.prepareFirst(remaining) {
            defer { statement.finalize() }
            if writes(statement) {
                try refuseIfReadOnly()
                try acquirePermit()
            }
            try connection.setDeadline(statementDeadline(from: .now))
            defer { try? connection.setDeadline(nil) }
            while try statement.step() {}
            remaining = statement.tail
            releasePermitIfDone()
        }
    }

    private func describe(_ sql: String) throws -> Hrana.DescribeResult {
        try refuseIfBlocked()
        guard let statement = try connection.prepareFirst(sql) else {
            throw Hrana.Failure(message: "SQL string does not contain any statement", code: "SQL_NO_STATEMENT")
        }
        defer { statement.finalize() }
        return Hrana.DescribeResult(
            parameters: statement.parameterNames, columns: Self.columns(of: statement),
            isExplain: statement.isExplain, isReadOnly: statement.isReadOnly)
    }

    /// Whether a statement needs the write permit: SQLite says it writes, or the sandbox saw it
    /// write behind SQLite's back (`PRAGMA optimize`).
    private func writes(_ statement: Statement) -> Bool {
        let hidden = sandbox?.takeHiddenWrite() ?? false
        return !statement.isReadOnly || hidden
    }

    private func refuseIfBlocked() throws {
        if database.settings.blockReads {
            throw Hrana.Failure(message: "this database is blocked by its operator", code: "BLOCKED")
        }
    }

    private func refuseIfReadOnly() throws {
        if database.settings.blockWrites {
            throw Hrana.Failure(message: "writes to this database are blocked by its operator", code: "BLOCKED")
        }
        if log != nil, let exceeded = database.storage.exceeded(database.namespace.organization) {
            throw Hrana.Failure(message: "SQLite error: \(exceeded.refusal)", code: "SQLITE_FULL")
        }
        guard access == .readOnly else { return }
        throw Hrana.Failure(
            message: "SQLite error: the token is read-only; this statement writes (ask for a read-write token)",
            code: "SQLITE_AUTH")
    }

    // MARK: Write permits

    /// Who this executor is to its database's queue of writers.
    let owner = WriterQueue.Owner()

    /// The time limit of a statement started at `start`: the node's statement limit, within the
    /// request's.
    private func statementDeadline(from start: ContinuousClock.Instant) -> ContinuousClock.Instant {
        min(start.advanced(by: configuration.statementTimeLimit), requestDeadline)
    }

    /// Whether `requests` may write while this executor does not hold its database's write turn:
    /// then the turn is waited for (without a thread) before they run. Errs on the side of "may
    /// write": a statement that does not prepare yet (its table is made earlier in the same
    /// requests) or SQL stored by those requests counts as writing.
    func needsWriteTurn(_ requests: [Hrana.StreamRequest]) -> Bool {
        guard let writers, access == .readWrite, !writers.isHeld(by: owner) else { return false }
        return requests.contains { request in
            switch request {
            case .execute(let statement):
                return mayWrite(statement.sql ?? statement.sqlID.flatMap { storedSQL[$0] }, single: true)
            case .batch(let batch):
                return batch.steps.contains {
                    mayWrite($0.statement.sql ?? $0.statement.sqlID.flatMap { storedSQL[$0] }, single: true)
                }
            case .sequence(let sql, let sqlID):
                return mayWrite(sql ?? sqlID.flatMap { storedSQL[$0] }, single: false)
            case .describe, .storeSQL, .closeSQL, .getAutocommit, .close:
                return false
            }
        }
    }

    /// Whether SQL may write (`SQLClassifier.mayWrite`, the sandbox's hidden writes counted); SQL stored by
    /// the same requests, not known yet, counts as writing.
    private func mayWrite(_ sql: String?, single: Bool) -> Bool {
        guard let sql else { return true }
        return SQLClassifier.mayWrite(
            sql, on: connection, single: single, transactionControl: .countsWhenImmediate,
            hiddenWrite: { sandbox?.takeHiddenWrite() ?? false })
    }

    /// A statement that writes holds its database's write turn and the primary log's write permit
    /// until the connection is back in autocommit mode, so writers queue before they take a thread
    /// and a generation roll never races a commit. The turn is normally taken before the request
    /// runs (`needsWriteTurn`); a statement found writing only now takes it if it is free, or fails
    /// with `SQLITE_BUSY`.
    private func acquirePermit() throws {
        if let writers, !writers.tryAcquire(owner) {
            throw Hrana.Failure(
                message:
                    "SQLite error: database is locked (another stream holds this database's write transaction; "
                    + "retry once it commits or rolls back, or start the transaction with BEGIN IMMEDIATE)",
                code: "SQLITE_BUSY")
        }
        guard !holdsWritePermit, let log else { return }
        log.acquireWritePermit()
        holdsWritePermit = true
    }

    private func releasePermitIfDone(force: Bool = false) {
        guard holdsWritePermit, force || connection.isAutocommit else { return }
        holdsWritePermit = false
        log?.releaseWritePermit()
    }

    /// Starts a request's work: its time limit, and a fresh response budget.
    func beginRequest(deadline: ContinuousClock.Instant) {
        requestDeadline = deadline
        responseBytes = 0
        reservation?.release()
        reservation = nil
    }

    /// Hands over what the request holds of the node's response budget (nil when it returned no
    /// rows); the caller gives it back once the answer is encoded.
    func takeReservation() -> ResponseReservation? {
        defer { reservation = nil }
        return reservation
    }

    /// Ends a request's work: the write permit and the write turn go back if the connection left
    /// its transaction (the turn is kept for the whole request, so that a request that took it
    /// before running never loses it between its statements).
    func finishRequest() {
        releasePermitIfDone()
        if connection.isAutocommit { writers?.release(owner) }
    }

    // MARK: Values and errors

    static func size(of value: HranaValue) -> Int {
        switch value {
        case .text(let text): text.utf8.count
        case .blob(let bytes): bytes.count
        default: 8
        }
    }

    static let primaryNames: [Int32: String] = [
        1: "ERROR", 2: "INTERNAL", 3: "PERM", 4: "ABORT", 5: "BUSY", 6: "LOCKED", 7: "NOMEM", 8: "READONLY",
        9: "INTERRUPT", 10: "IOERR", 11: "CORRUPT", 12: "NOTFOUND", 13: "FULL", 14: "CANTOPEN", 15: "PROTOCOL",
        16: "EMPTY", 17: "SCHEMA", 18: "TOOBIG", 19: "CONSTRAINT", 20: "MISMATCH", 21: "MISUSE", 22: "NOLFS",
        23: "AUTH", 24: "FORMAT", 25: "RANGE", 26: "NOTADB", 27: "NOTICE", 28: "WARNING",
    ]

    /// A SQLite error as Hrana reports it: `SQLITE_<PRIMARY>` and "SQLite error: …".
    static func failure(_ error: SQLiteError) -> Hrana.Failure {
        let name = primaryNames[error.code.primary.rawValue] ?? "UNKNOWN"
        var message = "SQLite error: \(error.message)"
        if error.code.primary == .interrupt {
            message += " (the statement ran longer than the node's time limit)"
        } else if error.code.primary == .full {
            message +=
                " (the database reached its size limit, or its temporary files (TEMP tables, sorts, transient "
                + "indices) their limit of the same size or the node's; delete data, or ask for a larger size limit)"
        }
        return Hrana.Failure(message: message, code: "SQLITE_\(name)")
    }
}

/// A batch a cursor runs a chunk at a time (`HranaExecutor.advanceCursor`): the step to start next,
/// the outcomes so far, and the statement being stepped, open between chunks.
final class CursorRun {
    /// A step whose statement is prepared and stepped part of the way.
    struct OpenStep {
        let index: Int
        let statement: Statement
        let start: ContinuousClock.Instant
        let wantRows: Bool
    }

    let batch: Hrana.Batch
    /// The next step to start.
    var next = 0
    /// Each step's outcome once it ran (nil: skipped, or not run yet), for the conditions.
    var outcomes: [Bool?]
    /// The step being stepped.
    var open: OpenStep?

    init(batch: Hrana.Batch) {
        self.batch = batch
        outcomes = Array(repeating: nil, count: batch.steps.count)
    }

    /// Every step ran or was skipped.
    var isFinished: Bool { open == nil && next == batch.steps.count }

    /// Ends the open step with its outcome, finalizing its statement.
    func endStep(ok: Bool) {
        guard let open else { return }
        open.statement.finalize()
        outcomes[open.index] = ok
        self.open = nil
    }

    /// Stops the cursor where it is (its stream closes or starts another request).
    func abandon() {
        open?.statement.finalize()
        open = nil
        next = batch.steps.count
    }
}
