import Foundation
import ShoalModel
import ShoalSQLite

/// The result of a statement run on the primary.
public struct RemoteResult: Sendable, Equatable {
    /// Column names.
    public let columns: [String]
    /// Rows.
    public let rows: [[SQLiteValue]]
    /// Rows changed by a write.
    public let affectedRowCount: Int
    /// The last inserted rowid.
    public let lastInsertRowID: Int64?
    /// The primary's position after the statement (generation, frame), for read-your-writes.
    public let primaryPosition: (generation: UInt64, frame: UInt64)?

    /// Results are equal when their data is.
    public static func == (lhs: RemoteResult, rhs: RemoteResult) -> Bool {
        lhs.columns == rhs.columns && lhs.rows == rhs.rows && lhs.affectedRowCount == rhs.affectedRowCount
            && lhs.lastInsertRowID == rhs.lastInsertRowID
    }
}

/// SQL over HTTP against a node (Hrana v3 pipeline on one stream), for processes without a disk
/// and for the writes of an embedded replica. Statements run in order; a transaction opened with
/// `BEGIN` stays open across calls until `COMMIT` or `ROLLBACK`.
public actor RemoteDatabase {
    let transport: HTTPTransport
    private var baton: String?
    /// Whether the stream is inside a transaction, as the node said after the last request.
    private var inTransaction = false

    /// A connection to the database at `url` (`http://host/db/org/database`).
    public init(url: URL, token: String?) {
        self.init(url: url, credentials: Credentials(token))
    }

    /// A remote database whose token may be replaced while it is in use.
    public init(url: URL, credentials: Credentials) {
        transport = HTTPTransport(baseURL: url, credentials: credentials)
    }

    /// Runs one statement on the primary.
    @discardableResult
    public func execute(_ sql: String, _ arguments: [SQLiteValue] = []) async throws -> RemoteResult {
        let statement: [String: Any] = ["sql": sql, "args": arguments.map(Self.encode)]
        let (response, headers) = try await run(["type": "execute", "stmt": statement])
        guard let result = response["result"] as? [String: Any] else {
            throw ClientError(.protocolViolation, "the node's execute answer has no result")
        }
        let columns = (result["cols"] as? [[String: Any]] ?? []).map { $0["name"] as? String ?? "" }
        let rows = (result["rows"] as? [[[String: Any]]] ?? []).map { $0.map(Self.decode) }
        return RemoteResult(
            columns: columns, rows: rows, affectedRowCount: (result["affected_row_count"] as? NSNumber)?.intValue ?? 0,
            lastInsertRowID: (result["last_insert_rowid"] as? String).flatMap { Int64($0) },
            primaryPosition: HTTPTransport.position(headers))
    }

    /// Runs several `;`-separated statements on the primary in one request (Hrana `sequence`),
    /// ignoring their rows: the fast way to load data.
    public func executeScript(_ sql: String) async throws {
        _ = try await run(["type": "sequence", "sql": sql])
    }

    /// Sends one request on the stream, carrying the baton, with `get_autocommit` after it (so the
    /// stream's transaction state is known); returns its response and the answer's headers, or
    /// throws the SQL error it reports. A stream the node expired while idle outside a transaction
    /// is replaced by a new one and the request sent again (it did not run); inside one, the
    /// transaction is gone and the caller is told so.
    private func run(_ request: [String: Any]) async throws -> (response: [String: Any], headers: [String: String]) {
        let sentWithBaton = baton != nil
        let body: [String: Any] = [
            "baton": baton as Any? ?? NSNull(), "requests": [request, ["type": "get_autocommit"]],
        ]
        let answer = try await transport.send(
            "POST", "v3/pipeline",
            body: try JSONSerialization.data(withJSONObject: body, options: .withoutEscapingSlashes))
        guard answer.status == 200 else {
            baton = nil
            let wasInTransaction = inTransaction
            inTransaction = false
            if sentWithBaton, Self.isLostStream(answer) {
                guard !wasInTransaction else {
                    throw ClientError(
                        .sql,
                        "the transaction's stream expired on the node after being idle (or the node restarted), "
                            + "and the transaction was rolled back; run the transaction again, without long pauses "
                            + "between its statements",
                        sqlCode: "STREAM_EXPIRED")
                }
                return try await run(request)
            }
            throw transport.failure(answer, doing: "running SQL on the primary")
        }
        guard let object = try JSONSerialization.jsonObject(with: answer.body) as? [String: Any],
            let results = object["results"] as? [[String: Any]], let first = results.first
        else { throw ClientError(.protocolViolation, "the node's pipeline answer has no results") }
        baton = object["baton"] as? String
        if results.count > 1, let autocommit = (results[1]["response"] as? [String: Any])?["is_autocommit"] as? Bool {
            inTransaction = !autocommit
        }
        if first["type"] as? String == "error" {
            let error = first["error"] as? [String: Any]
            throw ClientError(
                .sql, error?["message"] as? String ?? "the statement failed", sqlCode: error?["code"] as? String)
        }
        return (first["response"] as? [String: Any] ?? [:], answer.headers)
    }

    /// Whether the node refused the baton because its stream is gone: expired (`STREAM_EXPIRED`),
    /// or no longer known at all (its tombstone is kept 5 minutes, and none survives a restart).
    /// Either way the request did not run.
    private static func isLostStream(_ answer: HTTPTransport.Answer) -> Bool {
        guard answer.status == 400 else { return false }
        if let object = try? JSONSerialization.jsonObject(with: answer.body) as? [String: Any] {
            return object["code"] as? String == "STREAM_EXPIRED"
        }
        return String(decoding: answer.body.prefix(200), as: UTF8.self).contains("invalid baton")
    }

    /// Closes the stream (rolling back an open transaction).
    public func close() async {
        guard let baton else { return }
        self.baton = nil
        inTransaction = false
        let body: [String: Any] = ["baton": baton, "requests": [["type": "close"]]]
        _ = try? await transport.send(
            "POST", "v3/pipeline",
            body: try JSONSerialization.data(withJSONObject: body, options: .withoutEscapingSlashes))
    }

    static func encode(_ value: SQLiteValue) -> [String: Any] {
        switch value {
        case .null: ["type": "null"]
        case .integer(let integer): ["type": "integer", "value": String(integer)]
        case .real(let double): ["type": "float", "value": double]
        case .text(let text): ["type": "text", "value": text]
        case .blob(let bytes): ["type": "blob", "base64": Base64.encode(bytes, padded: false)]
        }
    }

    static func decode(_ value: [String: Any]) -> SQLiteValue {
        switch value["type"] as? String {
        case "integer": .integer((value["value"] as? String).flatMap { Int64($0) } ?? 0)
        case "float": .real((value["value"] as? NSNumber)?.doubleValue ?? 0)
        case "text": .text(value["value"] as? String ?? "")
        case "blob": .blob((value["base64"] as? String).flatMap { Base64.decode($0) } ?? [])
        default: .null
        }
    }
}
