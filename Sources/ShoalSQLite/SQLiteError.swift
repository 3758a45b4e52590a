/// The one error type of ShoalSQLite: the extended result code, SQLite's message and the SQL.
///
/// The description never contains bound values: only the SQL text as written, with its
/// placeholders.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    /// The extended result code.
    public let code: ResultCode
    /// SQLite's message (or the wrapper's, for misuse it detects itself).
    public let message: String
    /// The SQL being prepared or run when the error happened, if any.
    public let sql: String?

    /// Creates an error; most come from the library itself.
    public init(code: ResultCode, message: String, sql: String? = nil) {
        self.code = code
        self.message = message
        self.sql = sql
    }

    /// The primary result code.
    public var primaryCode: ResultCode { code.primary }

    /// A readable summary: code, message and SQL (never bound values).
    public var description: String {
        var text = "SQLite error \(code.rawValue) (\(code.description)): \(message)"
        if let sql {
            text += " — while running `\(sql)`"
        }
        return text
    }
}

extension SQLiteError {
    /// A statement was used after its connection was closed.
    static func finalized(sql: String?) -> SQLiteError {
        SQLiteError(
            code: .misuse,
            message:
                "the statement was finalized because its connection was closed; prepare it again on an open connection",
            sql: sql)
    }

    /// The connection was used after `close()`.
    static let closed = SQLiteError(
        code: .misuse, message: "the connection is closed; open a new one")
}
