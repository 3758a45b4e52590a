/// Says in one line why a request body did not decode (for the servers' 400 answers).
public enum DecodingFailure {
    /// `missing field x`, `a.b is not a Int`, … for a `DecodingError`; the error's text otherwise.
    public static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context): context.debugDescription
        case DecodingError.keyNotFound(let key, _): "missing field \(key.stringValue)"
        case DecodingError.typeMismatch(let type, let context):
            "\(context.codingPath.map(\.stringValue).joined(separator: ".")) is not a \(type)"
        case DecodingError.valueNotFound(_, let context):
            "\(context.codingPath.map(\.stringValue).joined(separator: ".")) is missing"
        default: "\(error)"
        }
    }
}
