/// The samples of a Prometheus text exposition, by series (`name{labels}` as written), so tests
/// compare numbers rather than search the text.
public struct PrometheusSamples: Sendable {
    /// Every sample's value by its series.
    public let values: [String: Double]

    /// Parses `text`; comment lines are skipped, and a line that is not `series value` is refused.
    public init(_ text: String) throws {
        var values: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw TestSupportError("not a Prometheus sample: \(line)")
            }
            values[String(line[..<space])] = value
        }
        self.values = values
    }

    /// The value of `series` (e.g. `shoal_node_requests_total{route="v1",status="2xx"}`), nil if absent.
    public subscript(_ series: String) -> Double? { values[series] }

    /// The series whose name (before any labels) is `name`.
    public func series(named name: String) -> [String: Double] {
        values.filter { $0.key == name || $0.key.hasPrefix(name + "{") }
    }
}

/// A fixture's failure, with what went wrong.
public struct TestSupportError: Error, CustomStringConvertible {
    /// What went wrong.
    public let description: String

    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}
