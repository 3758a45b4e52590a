internal import CSQLite
internal import CSQLiteTempBudget

/// One prepared statement, finalized in `deinit` (or by `finalize()`, or when its connection closes).
///
/// Like its connection, a statement is used by one thread at a time. Column accessors are
/// valid after `step()` returned true; they read the current row without copying it into a `Row`.
public final class Statement {
    /// The `sqlite3_stmt*`; nil once finalized.
    private var handle: OpaquePointer?
    /// The connection that prepared it; weak so a cached statement does not keep it alive.
    private weak var connection: Connection?
    /// The SQL of this statement, as written (with placeholders, never bound values).
    public let sql: String
    /// The SQL after this statement that was not parsed (empty if none).
    public let tail: String
    /// Column names, read once.
    public let columnNames: [String]
    /// The connection's budget for temporary files when it was prepared (the connection keeps it
    /// alive), entered while it steps.
    private let tempBudget: OpaquePointer?

    init(handle: OpaquePointer, connection: Connection, tail: String) {
        self.handle = handle
        self.connection = connection
        self.tempBudget = connection.tempBudget?.pointer
        self.tail = tail
        self.sql = String(cString: sqlite3_sql(handle))
        let count = Int(sqlite3_column_count(handle))
        self.columnNames = (0..<count).map { String(cString: sqlite3_column_name(handle, Int32($0))) }
    }

    deinit {
        if let handle {
            sqlite3_finalize(handle)
            connection?.statementFinalized(self)
        }
    }

    /// Finalizes the statement now. Using it afterwards throws `ResultCode.misuse`.
    public func finalize() {
        guard let handle else { return }
        sqlite3_finalize(handle)
        self.handle = nil
        connection?.statementFinalized(self)
    }

    /// Called by the connection while it closes; the registry is cleared by the caller.
    func finalizeForClose() {
        guard let handle else { return }
        sqlite3_finalize(handle)
        self.handle = nil
    }

    /// Whether the statement has been finalized.
    public var isFinalized: Bool { handle == nil }

    @inline(__always)
    private func liveHandle() throws -> OpaquePointer {
        guard let handle else { throw SQLiteError.finalized(sql: sql) }
        return handle
    }

    private func error(_ rc: Int32) -> SQLiteError {
        if let connection { return connection.lastError(rc, sql: sql) }
        let db = handle.flatMap { sqlite3_db_handle($0) }
        let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
        return SQLiteError(code: ResultCode(rawValue: rc), message: message, sql: sql)
    }

    @inline(__always)
    private func checkBind(_ rc: Int32) throws {
        if rc != SQLITE_OK { throw error(rc) }
    }

    // MARK: Stepping

    /// Advances to the next row: true if there is one, false when the statement is done.
    @inline(__always)
    public func step() throws -> Bool {
        let handle = try liveHandle()
        // Always this statement's budget, none included: never the budget of a step further out
        // (a callback's SQL on another connection would charge its files to it).
        let previous = shoal_temp_budget_enter(tempBudget)
        let rc = sqlite3_step(handle)
        shoal_temp_budget_enter(previous)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw error(rc)
    }

    /// Resets the statement so it can run again; bindings are kept.
    @inline(__always)
    public func reset() {
        // The result repeats the last step's error, which `step()` already reported. A reset can
        // still write (ending a transaction a statement left open), under this statement's budget.
        guard let handle else { return }
        let previous = shoal_temp_budget_enter(tempBudget)
        sqlite3_reset(handle)
        shoal_temp_budget_enter(previous)
    }

    /// Sets every parameter back to NULL.
    public func clearBindings() {
        if let handle { sqlite3_clear_bindings(handle) }
    }

    /// Steps to the end and returns every row.
    public func rows() throws -> [Row] {
        var rows: [Row] = []
        while try step() {
            rows.append(row())
        }
        return rows
    }

    /// Steps to the end and decodes every row as `T`.
    public func decodeAll<T: Decodable>(_ type: T.Type) throws -> [T] {
        var values: [T] = []
        while try step() {
            values.append(try row().decode(T.self))
        }
        return values
    }

    // MARK: Binding

    /// The number of parameters (the highest parameter index).
    public var parameterCount: Int {
        handle.map { Int(sqlite3_bind_parameter_count($0)) } ?? 0
    }

    /// The name of the parameter at a 1-based index, with its prefix (`:id`), or nil if nameless.
    public func parameterName(at index: Int) -> String? {
        guard let handle, let name = sqlite3_bind_parameter_name(handle, Int32(index)) else { return nil }
        return String(cString: name)
    }

    /// Names of all parameters in index order (nil for positional ones).
    public var parameterNames: [String?] {
        parameterCount == 0 ? [] : (1...parameterCount).map { parameterName(at: $0) }
    }

    /// The 1-based index of a named parameter; `name` may carry its prefix (`:`, `@`, `$`) or not.
    public func parameterIndex(named name: String) -> Int? {
        guard let handle else { return nil }
        let candidates = name.first.map { ":@$?".contains($0) } == true ? [name] : [":" + name, "@" + name, "$" + name]
        for candidate in candidates {
            let index = sqlite3_bind_parameter_index(handle, candidate)
            if index > 0 { return Int(index) }
        }
        return nil
    }

    /// Binds an integer to the parameter at a 1-based index.
    @inline(__always)
    public func bind(_ value: Int64, at index: Int) throws {
        try checkBind(sqlite3_bind_int64(try liveHandle(), Int32(index), value))
    }

    /// Binds a double to the parameter at a 1-based index.
    public func bind(_ value: Double, at index: Int) throws {
        try checkBind(sqlite3_bind_double(try liveHandle(), Int32(index), value))
    }

    /// Binds text (copied; may contain NUL characters) to the parameter at a 1-based index.
    public func bind(_ value: String, at index: Int) throws {
        let handle = try liveHandle()
        var text = value
        let rc = text.withUTF8 { utf8 -> Int32 in
            guard let base = utf8.baseAddress, !utf8.isEmpty else {
                // A NULL pointer would bind NULL; bind a (copied) empty C string instead.
                return sqlite3_bind_text64(handle, Int32(index), "", 0, shoal_transient(), UInt8(SQLITE_UTF8))
            }
            return base.withMemoryRebound(to: CChar.self, capacity: utf8.count) { chars in
                sqlite3_bind_text64(
                    handle, Int32(index), chars, UInt64(utf8.count), shoal_transient(), UInt8(SQLITE_UTF8))
            }
        }
        try checkBind(rc)
    }

    /// Binds bytes (copied; may be empty) to the parameter at a 1-based index.
    public func bind(_ value: [UInt8], at index: Int) throws {
        let handle = try liveHandle()
        let rc = value.withUnsafeBytes { bytes -> Int32 in
            guard let base = bytes.baseAddress, !bytes.isEmpty else {
                // A NULL pointer would bind NULL, so an empty blob is bound as a zero-length zeroblob.
                return sqlite3_bind_zeroblob(handle, Int32(index), 0)
            }
            return sqlite3_bind_blob64(handle, Int32(index), base, UInt64(bytes.count), shoal_transient())
        }
        try checkBind(rc)
    }

    /// Binds NULL to the parameter at a 1-based index.
    public func bindNull(at index: Int) throws {
        try checkBind(sqlite3_bind_null(try liveHandle(), Int32(index)))
    }

    /// Binds any value to the parameter at a 1-based index.
    public func bind(_ value: SQLiteValue, at index: Int) throws {
        switch value {
        case .null: try bindNull(at: index)
        case .integer(let integer): try bind(integer, at: index)
        case .real(let real): try bind(real, at: index)
        case .text(let text): try bind(text, at: index)
        case .blob(let blob): try bind(blob, at: index)
        }
    }

    /// Binds a value to a named parameter; throws `ResultCode.range` if there is no such name.
    public func bind(_ value: SQLiteValue, named name: String) throws {
        guard let index = parameterIndex(named: name) else {
            throw SQLiteError(code: .range, message: "the statement has no parameter named \(name)", sql: sql)
        }
        try bind(value, at: index)
    }

    /// Binds positional arguments to parameters 1...n; the count must match `parameterCount`.
    public func bind(_ arguments: [any SQLiteBindable]) throws {
        guard arguments.count == parameterCount else {
            throw SQLiteError(
                code: .range,
                message: "the statement takes \(parameterCount) arguments but \(arguments.count) were given",
                sql: sql)
        }
        for (offset, argument) in arguments.enumerated() {
            try bind(argument.sqliteValue, at: offset + 1)
        }
    }

    /// Binds named arguments; every name must exist in the statement.
    public func bind(named arguments: [String: any SQLiteBindable]) throws {
        for (name, argument) in arguments {
            try bind(argument.sqliteValue, named: name)
        }
    }

    // MARK: Columns

    /// The number of columns in a result row.
    public var columnCount: Int { columnNames.count }

    /// The declared type of a result column (`INTEGER`, `TEXT`...), nil for expressions.
    public func declaredType(at column: Int) -> String? {
        guard let handle, let type = sqlite3_column_decltype(handle, Int32(column)) else { return nil }
        return String(cString: type)
    }

    /// The storage class of a column of the current row.
    public func columnType(at column: Int) -> SQLiteStorageClass {
        SQLiteStorageClass(code: handle.map { sqlite3_column_type($0, Int32(column)) } ?? SQLITE_NULL)
    }

    /// Whether a column of the current row is NULL.
    @inline(__always)
    public func isNull(at column: Int) -> Bool {
        sqlite3_column_type(handle, Int32(column)) == SQLITE_NULL
    }

    /// A column of the current row as an integer (SQLite's conversion rules apply).
    @inline(__always)
    public func int64(at column: Int) -> Int64 {
        sqlite3_column_int64(handle, Int32(column))
    }

    /// A column of the current row as a double (SQLite's conversion rules apply).
    @inline(__always)
    public func double(at column: Int) -> Double {
        sqlite3_column_double(handle, Int32(column))
    }

    /// A column of the current row as text, or nil if it is NULL.
    @inline(__always)
    public func text(at column: Int) -> String? {
        guard let bytes = sqlite3_column_text(handle, Int32(column)) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, Int32(column)))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    /// A column of the current row as bytes, or nil if it is NULL.
    public func blob(at column: Int) -> [UInt8]? {
        if isNull(at: column) { return nil }
        let bytes = sqlite3_column_blob(handle, Int32(column))
        let count = Int(sqlite3_column_bytes(handle, Int32(column)))
        guard let bytes, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: count))
    }

    /// A column of the current row with its own storage class.
    public func value(at column: Int) -> SQLiteValue {
        switch sqlite3_column_type(handle, Int32(column)) {
        case SQLITE_INTEGER: return .integer(int64(at: column))
        case SQLITE_FLOAT: return .real(double(at: column))
        case SQLITE_TEXT: return .text(text(at: column) ?? "")
        case SQLITE_BLOB: return .blob(blob(at: column) ?? [])
        default: return .null
        }
    }

    /// The current row, copied.
    public func row() -> Row {
        var values: [SQLiteValue] = []
        values.reserveCapacity(columnNames.count)
        for column in 0..<columnNames.count {
            values.append(value(at: column))
        }
        return Row(columnNames: columnNames, values: values)
    }

    // MARK: Flags

    /// Whether the statement makes no direct change to the database file.
    public var isReadOnly: Bool {
        handle.map { sqlite3_stmt_readonly($0) != 0 } ?? true
    }

    /// Whether the statement is an `EXPLAIN` (or `EXPLAIN QUERY PLAN`).
    public var isExplain: Bool {
        handle.map { sqlite3_stmt_isexplain($0) != 0 } ?? false
    }

    /// Whether the statement has been stepped and not yet reset or run to completion.
    public var isBusy: Bool {
        handle.map { sqlite3_stmt_busy($0) != 0 } ?? false
    }
}

@available(*, unavailable, message: "a Statement is used by one thread at a time, like its connection")
extension Statement: Sendable {}

/// SQLite's storage class of a value.
public enum SQLiteStorageClass: Sendable {
    /// NULL.
    case null
    /// INTEGER.
    case integer
    /// REAL.
    case real
    /// TEXT.
    case text
    /// BLOB.
    case blob

    init(code: Int32) {
        switch code {
        case SQLITE_INTEGER: self = .integer
        case SQLITE_FLOAT: self = .real
        case SQLITE_TEXT: self = .text
        case SQLITE_BLOB: self = .blob
        default: self = .null
        }
    }
}
