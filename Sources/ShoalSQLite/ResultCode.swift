internal import CSQLite

/// A SQLite result code: a primary code in the low byte, optionally extended in the higher bytes.
///
/// Match errors by primary code with `~=`: `ResultCode.constraint ~= error.code` holds for
/// `SQLITE_CONSTRAINT_UNIQUE` too, while an extended pattern only matches itself.
public struct ResultCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The numeric code as SQLite returns it.
    public let rawValue: Int32

    /// Wraps a numeric SQLite result code.
    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// The primary code (the low byte) of this code.
    public var primary: ResultCode {
        ResultCode(rawValue: rawValue & 0xff)
    }

    /// Whether this code is a primary code rather than an extended one.
    public var isPrimary: Bool {
        rawValue == rawValue & 0xff
    }

    /// SQLite's English description of the code.
    public var description: String {
        String(cString: sqlite3_errstr(rawValue))
    }

    /// Matches a code against a pattern: a primary pattern matches every extension of it.
    public static func ~= (pattern: ResultCode, code: ResultCode) -> Bool {
        pattern.isPrimary ? pattern == code.primary : pattern == code
    }

    /// Matches an error thrown by ShoalSQLite against a code, so `catch ResultCode.busy` works.
    public static func ~= (pattern: ResultCode, error: any Error) -> Bool {
        guard let error = error as? SQLiteError else { return false }
        return pattern ~= error.code
    }

    /// Successful result.
    public static let ok = ResultCode(rawValue: SQLITE_OK)
    /// Generic error.
    public static let error = ResultCode(rawValue: SQLITE_ERROR)
    /// Internal logic error in SQLite.
    public static let `internal` = ResultCode(rawValue: SQLITE_INTERNAL)
    /// Access permission denied.
    public static let permission = ResultCode(rawValue: SQLITE_PERM)
    /// A callback asked for an abort.
    public static let abort = ResultCode(rawValue: SQLITE_ABORT)
    /// The database file is locked by another connection.
    public static let busy = ResultCode(rawValue: SQLITE_BUSY)
    /// A table in the database is locked.
    public static let locked = ResultCode(rawValue: SQLITE_LOCKED)
    /// An allocation failed.
    public static let noMemory = ResultCode(rawValue: SQLITE_NOMEM)
    /// Attempt to write a read-only database.
    public static let readOnly = ResultCode(rawValue: SQLITE_READONLY)
    /// The operation was interrupted by `interrupt()` or a progress handler.
    public static let interrupt = ResultCode(rawValue: SQLITE_INTERRUPT)
    /// A disk I/O error.
    public static let ioError = ResultCode(rawValue: SQLITE_IOERR)
    /// The database disk image is malformed.
    public static let corrupt = ResultCode(rawValue: SQLITE_CORRUPT)
    /// Unknown opcode in a file control, or a table or record not found.
    public static let notFound = ResultCode(rawValue: SQLITE_NOTFOUND)
    /// The disk is full.
    public static let full = ResultCode(rawValue: SQLITE_FULL)
    /// The database file could not be opened.
    public static let cantOpen = ResultCode(rawValue: SQLITE_CANTOPEN)
    /// Database lock protocol error.
    public static let `protocol` = ResultCode(rawValue: SQLITE_PROTOCOL)
    /// The schema changed.
    public static let schema = ResultCode(rawValue: SQLITE_SCHEMA)
    /// A string or blob exceeds the size limit.
    public static let tooBig = ResultCode(rawValue: SQLITE_TOOBIG)
    /// A constraint was violated.
    public static let constraint = ResultCode(rawValue: SQLITE_CONSTRAINT)
    /// Data type mismatch.
    public static let mismatch = ResultCode(rawValue: SQLITE_MISMATCH)
    /// The library was used incorrectly.
    public static let misuse = ResultCode(rawValue: SQLITE_MISUSE)
    /// Authorization denied.
    public static let authorization = ResultCode(rawValue: SQLITE_AUTH)
    /// A bind index or column index is out of range.
    public static let range = ResultCode(rawValue: SQLITE_RANGE)
    /// The file is not a database.
    public static let notADatabase = ResultCode(rawValue: SQLITE_NOTADB)
    /// `sqlite3_step` produced a row.
    public static let row = ResultCode(rawValue: SQLITE_ROW)
    /// `sqlite3_step` finished.
    public static let done = ResultCode(rawValue: SQLITE_DONE)

    /// A UNIQUE constraint failed.
    public static let constraintUnique = ResultCode(rawValue: SQLITE_CONSTRAINT | (8 << 8))
    /// A PRIMARY KEY constraint failed.
    public static let constraintPrimaryKey = ResultCode(rawValue: SQLITE_CONSTRAINT | (6 << 8))
    /// A NOT NULL constraint failed.
    public static let constraintNotNull = ResultCode(rawValue: SQLITE_CONSTRAINT | (5 << 8))
    /// A CHECK constraint failed.
    public static let constraintCheck = ResultCode(rawValue: SQLITE_CONSTRAINT | (1 << 8))
    /// A FOREIGN KEY constraint failed.
    public static let constraintForeignKey = ResultCode(rawValue: SQLITE_CONSTRAINT | (3 << 8))
    /// A WAL snapshot could not be upgraded to a write transaction.
    public static let busySnapshot = ResultCode(rawValue: SQLITE_BUSY | (2 << 8))
    /// A short read: the file ended before the requested bytes.
    public static let ioErrorShortRead = ResultCode(rawValue: SQLITE_IOERR | (2 << 8))
}
