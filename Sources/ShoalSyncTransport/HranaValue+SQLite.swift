import ShoalModel
import ShoalSQLite

// The one mapping between SQLite's values and Hrana's, for the node (arguments in, result columns
// out) and the client (arguments out, result columns in).

extension SQLiteValue {
    /// A value Hrana carried.
    public init(_ value: HranaValue) {
        switch value {
        case .null: self = .null
        case .integer(let integer): self = .integer(integer)
        case .float(let double): self = .real(double)
        case .text(let text): self = .text(text)
        case .blob(let bytes): self = .blob(bytes)
        }
    }
}

extension HranaValue {
    /// `value` as Hrana carries it. A non-finite REAL stays `.float`, so encoding it fails (JSON has
    /// no infinity): a sender of arguments reports that as its own error rather than change the value.
    public init(_ value: SQLiteValue) {
        switch value {
        case .null: self = .null
        case .integer(let integer): self = .integer(integer)
        case .real(let double): self = .float(double)
        case .text(let text): self = .text(text)
        case .blob(let bytes): self = .blob(bytes)
        }
    }

    /// `value` as a result column: a non-finite REAL (SQLite computes one for `SELECT 9e999`)
    /// becomes the text `Infinity` or `-Infinity`, since a response must still encode.
    public init(resultColumn value: SQLiteValue) {
        if case .real(let double) = value, !double.isFinite {
            self = .text(double > 0 ? "Infinity" : "-Infinity")
        } else {
            self.init(value)
        }
    }
}
