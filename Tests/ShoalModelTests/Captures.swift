import Foundation
import ShoalModel
import Testing

/// The captured wire bodies in `captures/` (see its README), one `Data` per JSON-lines entry.
enum Captures {
    /// Every fixture file, by name without `.jsonl`; a test checks this matches the directory.
    static let kinds = [
        "requests-v1-execute", "requests-v1-batch", "requests-v3-pipeline", "requests-v3-cursor",
        "responses-v1-execute", "responses-v1-batch", "responses-v1-errors", "responses-v3-pipeline",
        "responses-v3-cursor-headers", "responses-v3-cursor-entries", "responses-info", "responses-sync-pull",
        "responses-sync-push",
    ]

    /// The bodies in `captures/<kind>.jsonl`.
    static func bodies(_ kind: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [Data] {
        let url = try #require(
            Bundle.module.url(forResource: kind, withExtension: "jsonl", subdirectory: "captures"),
            "captures/\(kind).jsonl is not in the test bundle", sourceLocation: sourceLocation)
        let text = try String(contentsOf: url, encoding: .utf8)
        return text.split(separator: "\n").filter { !$0.allSatisfy(\.isWhitespace) }.map { Data($0.utf8) }
    }

    /// The names (without `.jsonl`) of the fixture files the bundle holds.
    static func bundledKinds() throws -> Set<String> {
        let directory = try #require(Bundle.module.url(forResource: "captures", withExtension: nil))
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        return Set(names.filter { $0.hasSuffix(".jsonl") }.map { String($0.dropLast(".jsonl".count)) })
    }
}

/// Decodes captured bodies with a model type, re-encodes them and checks nothing a client reads is lost.
enum RoundTrip {
    /// Keys an encoding may add that its capture lacked, because the decoder defaults them and the
    /// encoder always writes them: a statement's `args` and `named_args` (libsql-client leaves them
    /// out of `BEGIN`-like steps) and an error's `code` (written as `Failure.unknownCode` when the
    /// server sent none).
    static let defaultedKeys: Set<String> = ["args", "named_args", "code"]

    /// For every body in `captures/<kind>.jsonl`: decodes it as `T`, encodes that, decodes the encoding
    /// again and expects the same value; then expects the encoding to keep what the capture said
    /// (`differences`). Returns how many bodies were checked, and fails if there were none.
    @discardableResult
    static func check<T: Codable & Equatable>(
        _ type: T.Type, _ kind: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Int {
        let bodies = try Captures.bodies(kind, sourceLocation: sourceLocation)
        try #require(!bodies.isEmpty, "captures/\(kind).jsonl holds no bodies", sourceLocation: sourceLocation)
        for (line, body) in bodies.enumerated() {
            let decoded = try JSONDecoder().decode(T.self, from: body)
            let encoded = try WireJSON.encode(decoded)
            let again = try JSONDecoder().decode(T.self, from: encoded)
            #expect(
                again == decoded, "\(kind) line \(line + 1) changed in a round trip", sourceLocation: sourceLocation)
            let lost = differences(
                capture: try JSONValue(jsonData: body), encoding: try JSONValue(jsonData: encoded))
            #expect(
                lost.isEmpty,
                "\(kind) line \(line + 1): \(lost.joined(separator: "; ")) in \(String(decoding: encoded, as: UTF8.self))",
                sourceLocation: sourceLocation)
        }
        return bodies.count
    }

    /// Where `encoding` does not say what `capture` said, as `$.a.b: …` lines; empty when it does.
    ///
    /// Rules: every non-null member of a captured object must be in the encoding, with an equal
    /// value; a captured null must be null or absent there (decoders read null as absent), except
    /// `code`, which may be `""` (`Failure.unknownCode`); the encoding may add only `defaultedKeys`
    /// or null members; arrays match element by element; a captured integer number equals the same
    /// integer as a decimal string (Hrana integers and `last_insert_rowid` travel as strings).
    static func differences(capture: JSONValue, encoding: JSONValue, path: String = "$") -> [String] {
        switch (capture, encoding) {
        case (.object(let captured), .object(let encoded)):
            var found: [String] = []
            for (key, value) in captured.sorted(by: { $0.key < $1.key }) {
                let member = "\(path).\(key)"
                switch (value, encoded[key]) {
                case (.null, nil), (.null, .null?): break
                case (.null, .string(Hrana.Failure.unknownCode)?) where key == "code": break
                case (.null, let other?): found.append("\(member): null became \(other.jsonText)")
                case (_, nil): found.append("\(member): missing")
                case (_, let other?): found += differences(capture: value, encoding: other, path: member)
                }
            }
            for (key, value) in encoded where captured[key] == nil && !value.isNull && !defaultedKeys.contains(key) {
                found.append("\(path).\(key): added \(value.jsonText)")
            }
            return found
        case (.array(let captured), .array(let encoded)):
            guard captured.count == encoded.count else {
                return ["\(path): \(captured.count) elements became \(encoded.count)"]
            }
            return zip(captured, encoded).enumerated().flatMap { index, pair in
                differences(capture: pair.0, encoding: pair.1, path: "\(path)[\(index)]")
            }
        case (.number(let number), .string(let text)) where Int64(exactly: number).map(String.init) == text:
            return []
        default:
            return capture == encoding ? [] : ["\(path): \(capture.jsonText) became \(encoding.jsonText)"]
        }
    }
}
