/// Finds the byte ranges of JSON values without decoding them, so that a replica can forward a
/// client's requests and relay its primary's results byte for byte (numbers, escapes and key order
/// exactly as they were written).
enum RawJSON {
    /// The ranges of the elements of the array under `key` in the top-level object of `bytes`;
    /// nil when the text is not such an object.
    static func arrayElements(_ key: String, in bytes: [UInt8]) -> [Range<Int>]? {
        guard var index = memberStart(key, in: bytes) else { return nil }
        return elements(bytes, &index)
    }

    /// The range of the value under `key` in the top-level object (nil if absent or malformed).
    static func member(_ key: String, in bytes: [UInt8]) -> Range<Int>? {
        guard var index = memberStart(key, in: bytes) else { return nil }
        return value(bytes, &index)
    }

    /// Where the value under `key` in the top-level object starts.
    private static func memberStart(_ key: String, in bytes: [UInt8]) -> Int? {
        var index = 0
        skipSpace(bytes, &index)
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return nil }
        index += 1
        let wanted = Array(key.utf8)
        while true {
            skipSpace(bytes, &index)
            guard index < bytes.count, bytes[index] != UInt8(ascii: "}") else { return nil }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard let name = string(bytes, &index) else { return nil }
            skipSpace(bytes, &index)
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
            index += 1
            skipSpace(bytes, &index)
            if Array(bytes[name.lowerBound + 1..<name.upperBound - 1]) == wanted { return index }
            guard value(bytes, &index) != nil else { return nil }
        }
    }

    private static func elements(_ bytes: [UInt8], _ index: inout Int) -> [Range<Int>]? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else { return nil }
        index += 1
        var ranges: [Range<Int>] = []
        while true {
            skipSpace(bytes, &index)
            guard index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "]"): return ranges
            case UInt8(ascii: ","): index += 1
            default:
                guard let range = value(bytes, &index) else { return nil }
                ranges.append(range)
            }
        }
    }

    /// Skips one value (object, array, string, number or literal) and returns its range.
    private static func value(_ bytes: [UInt8], _ index: inout Int) -> Range<Int>? {
        let start = index
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "\""):
            return string(bytes, &index)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    guard string(bytes, &index) != nil else { return nil }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        index += 1
                        return start..<index
                    }
                default: break
                }
                index += 1
            }
            return nil
        default:
            while index < bytes.count,
                ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]")].contains(bytes[index]),
                !isSpace(bytes[index])
            {
                index += 1
            }
            return index > start ? start..<index : nil
        }
    }

    /// Skips a string (with its escapes) and returns its range, quotes included.
    private static func string(_ bytes: [UInt8], _ index: inout Int) -> Range<Int>? {
        let start = index
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
        index += 1
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""):
                index += 1
                return start..<index
            default: index += 1
            }
        }
        return nil
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    private static func skipSpace(_ bytes: [UInt8], _ index: inout Int) {
        while index < bytes.count, isSpace(bytes[index]) { index += 1 }
    }
}
