import Foundation

/// The JSON encoder for every body Shoal sends, to clients, nodes or the control plane.
///
/// Foundation writes `/` as `\/` unless told otherwise. The Rust-based libSQL clients (`libsql`,
/// `libsql-experimental`, `aiolibsql`, `sqlalchemy-libsql`) read a blob's base64 as a borrowed
/// string, which any escape breaks ("expected a borrowed string"), and most base64 text holds a
/// `/`; so nothing Shoal writes escapes it. Use this instead of `JSONEncoder()` everywhere.
public enum WireJSON {
    /// A new encoder that leaves `/` unescaped; `sortedKeys` or `prettyPrinted` may be added.
    public static func encoder(_ formatting: JSONEncoder.OutputFormatting = []) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = formatting.union(.withoutEscapingSlashes)
        return encoder
    }

    /// Encodes `value` with `encoder()`.
    public static func encode(_ value: some Encodable) throws -> Data {
        try encoder().encode(value)
    }
}
