import Foundation

/// Decodes a `Row` into a `Decodable` type: each coding key names a column.
///
/// Supported property types: integers, `Double`, `Float`, `Bool`, `String`, `[UInt8]`, `Data`,
/// optionals of these, and any type that decodes itself from a single such value.
public struct RowDecoder: Sendable {
    /// Creates a decoder.
    public init() {}

    /// Decodes `row` as `T`.
    public func decode<T: Decodable>(_ type: T.Type, from row: Row) throws -> T {
        try T(from: RowDecoding(row: row, codingPath: []))
    }
}

/// Errors a row decode can raise, shaped as Swift's `DecodingError`.
private func mismatch(_ type: Any.Type, _ value: SQLiteValue, _ path: [any CodingKey]) -> DecodingError {
    DecodingError.typeMismatch(
        type,
        DecodingError.Context(
            codingPath: path,
            debugDescription: "column \(path.last?.stringValue ?? "?") holds \(value.storageName), not \(type)"))
}

extension SQLiteValue {
    fileprivate var storageName: String {
        switch self {
        case .null: "NULL"
        case .integer: "an INTEGER"
        case .real: "a REAL"
        case .text: "TEXT"
        case .blob: "a BLOB"
        }
    }
}

private struct RowDecoding: Decoder {
    let row: Row
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(RowContainer<Key>(row: row, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch(
            [Any].self,
            DecodingError.Context(codingPath: codingPath, debugDescription: "a row decodes into a keyed type"))
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        guard row.count == 1 else {
            throw DecodingError.typeMismatch(
                Any.self,
                DecodingError.Context(
                    codingPath: codingPath,
                    debugDescription: "a single value needs a row of one column, this one has \(row.count)"))
        }
        return ValueDecoding(value: row[0], codingPath: codingPath)
    }
}

private struct RowContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let row: Row
    var codingPath: [any CodingKey]

    var allKeys: [Key] { row.columnNames.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { row[key.stringValue] != nil }

    private func value(_ key: Key) throws -> SQLiteValue {
        guard let value = row[key.stringValue] else {
            throw DecodingError.keyNotFound(
                key,
                DecodingError.Context(
                    codingPath: codingPath, debugDescription: "the row has no column named \(key.stringValue)"))
        }
        return value
    }

    func decodeNil(forKey key: Key) throws -> Bool { try value(key).isNull }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try ValueDecoding(value: value(key), codingPath: codingPath + [key]).decode(type)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        throw DecodingError.typeMismatch(
            type, DecodingError.Context(codingPath: codingPath + [key], debugDescription: "columns are not nested"))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch(
            [Any].self,
            DecodingError.Context(codingPath: codingPath + [key], debugDescription: "columns are not nested"))
    }

    func superDecoder() throws -> any Decoder { RowDecoding(row: row, codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> any Decoder { RowDecoding(row: row, codingPath: codingPath) }
}

/// Decodes one column value.
private struct ValueDecoding: Decoder, SingleValueDecodingContainer {
    let value: SQLiteValue
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        throw mismatch(type, value, codingPath)
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { throw mismatch([Any].self, value, codingPath) }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { value.isNull }

    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        guard case .integer(let integer) = value else { throw mismatch(type, value, codingPath) }
        guard let exact = T(exactly: integer) else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: codingPath, debugDescription: "\(integer) does not fit in \(type)"))
        }
        return exact
    }

    func decode(_ type: Bool.Type) throws -> Bool { try integer(Int64.self) != 0 }
    func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }

    func decode(_ type: Double.Type) throws -> Double {
        guard let real = value.realValue else { throw mismatch(type, value, codingPath) }
        return real
    }

    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

    func decode(_ type: String.Type) throws -> String {
        guard case .text(let text) = value else { throw mismatch(type, value, codingPath) }
        return text
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if type == [UInt8].self || type == Data.self {
            guard case .blob(let bytes) = value else { throw mismatch(type, value, codingPath) }
            return (type == Data.self ? Data(bytes) as Any : bytes as Any) as! T
        }
        return try T(from: self)
    }
}
