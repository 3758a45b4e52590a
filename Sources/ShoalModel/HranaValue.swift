import Foundation

/// A value in the Hrana protocol (libSQL's SQL-over-HTTP), tagged by `type`.
///
/// Integers travel as decimal strings (the Rust client rejects JSON numbers) and are accepted as
/// either; blobs travel as base64 (emitted without padding, accepted with or without).
public enum HranaValue: Sendable, Hashable, Codable {
    /// SQL NULL.
    case null
    /// A 64-bit signed integer.
    case integer(Int64)
    /// A double.
    case float(Double)
    /// Text.
    case text(String)
    /// Bytes.
    case blob([UInt8])

    private enum CodingKeys: String, CodingKey {
        case type, value, base64
    }

    /// Decodes a tagged value.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .type) {
        case "null":
            self = .null
        case "integer":
            if let text = try? container.decode(String.self, forKey: .value) {
                guard let value = Int64(text) else {
                    throw DecodingError.dataCorruptedError(
                        forKey: .value, in: container, debugDescription: "\(text) is not a 64-bit integer")
                }
                self = .integer(value)
            } else {
                self = .integer(try container.decode(Int64.self, forKey: .value))
            }
        case "float":
            if let text = try? container.decode(String.self, forKey: .value) {
                // SQLite has no NaN (it binds NULL) and JSON no infinity: only finite numbers.
                guard let value = Double(text), value.isFinite else {
                    throw DecodingError.dataCorruptedError(
                        forKey: .value, in: container, debugDescription: "\(text.prefix(40)) is not a finite number")
                }
                self = .float(value)
            } else {
                self = .float(try container.decode(Double.self, forKey: .value))
            }
        case "text":
            self = .text(try container.decode(String.self, forKey: .value))
        case "blob":
            let encoded = try container.decode(String.self, forKey: .base64)
            guard let bytes = Base64.decode(encoded) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .base64, in: container, debugDescription: "blob is not valid base64")
            }
            self = .blob(bytes)
        case let other:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: container, debugDescription: "unknown value type \(other)")
        }
    }

    /// Encodes a tagged value the way every libSQL client accepts.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .null:
            try container.encode("null", forKey: .type)
        case .integer(let value):
            try container.encode("integer", forKey: .type)
            try container.encode(String(value), forKey: .value)
        case .float(let value):
            try container.encode("float", forKey: .type)
            try container.encode(value, forKey: .value)
        case .text(let value):
            try container.encode("text", forKey: .type)
            try container.encode(value, forKey: .value)
        case .blob(let bytes):
            try container.encode("blob", forKey: .type)
            try container.encode(Base64.encode(bytes, padded: false), forKey: .base64)
        }
    }
}

/// Standard-alphabet base64, tolerant of missing padding when decoding.
public enum Base64 {
    /// Encodes bytes, with or without `=` padding.
    public static func encode(_ bytes: [UInt8], padded: Bool) -> String {
        var text = Data(bytes).base64EncodedString()
        if !padded {
            while text.hasSuffix("=") { text.removeLast() }
        }
        return text
    }

    /// Decodes base64 with or without padding; nil if it is not base64.
    public static func decode(_ text: String) -> [UInt8]? {
        var padded = text
        let remainder = padded.utf8.count % 4
        if remainder == 1 { return nil }
        if remainder > 0 { padded += String(repeating: "=", count: 4 - remainder) }
        return Data(base64Encoded: padded).map { Array($0) }
    }
}

/// Base64url without padding, as JWTs use it.
public enum Base64URL {
    /// Encodes bytes.
    public static func encode(_ bytes: [UInt8]) -> String {
        Base64.encode(bytes, padded: false).replacingOccurrences(of: "+", with: "-").replacingOccurrences(
            of: "/", with: "_")
    }

    /// Decodes, with or without padding; nil if invalid.
    public static func decode(_ text: String) -> [UInt8]? {
        Base64.decode(text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/"))
    }
}
