/// One result row, copied out of a statement: column names and values.
public struct Row: Sendable, Hashable {
    /// The statement's column names, in order.
    public let columnNames: [String]
    /// The values, in column order.
    public let values: [SQLiteValue]

    /// Creates a row from names and values of equal count.
    public init(columnNames: [String], values: [SQLiteValue]) {
        precondition(columnNames.count == values.count, "a row needs one name per value")
        self.columnNames = columnNames
        self.values = values
    }

    /// The number of columns.
    public var count: Int { values.count }

    /// The value at a 0-based column index.
    public subscript(index: Int) -> SQLiteValue {
        values[index]
    }

    /// The value of the first column with this name, or nil if there is none.
    public subscript(name: String) -> SQLiteValue? {
        columnNames.firstIndex(of: name).map { values[$0] }
    }

    /// Decodes the row as `T`, matching coding keys to column names.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try RowDecoder().decode(type, from: self)
    }
}
