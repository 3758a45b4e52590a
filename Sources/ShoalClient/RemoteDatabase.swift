import Foundation
import ShoalModel
import ShoalSQLite
import ShoalSyncTransport

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
    let transport: NodeTransport
    private var baton: String?
    /// Whether the stream is inside a transaction, as the node said after the last request.
    private var inTransaction = false

    /// A connection to the database at `url` (`http://host/db/org/database`).
    public init(url: URL, token: String?) {
        self.init(url: url, credentials: Credentials(token))
    }

    /// A remote database whose token may be replaced while it is in use.
    public init(url: URL, credentials: Credentials) {
        transport = NodeTransport(baseURL: url, credentials: credentials)
    }

    /// Runs one statement on the primary.
    @discardableResult
    public func execute(_ sql: String, _ arguments: [SQLiteValue] = []) async throws -> RemoteResult {
        let statement = Hrana.Statement(sql: sql, arguments: arguments.map { HranaValue($0) })
        let (response, headers) = try await run(.execute(statement))
        guard case .execute(let result) = response else {
            throw ClientError(.protocolViolation, "the node answered an execute request with another kind of response")
        }
        return RemoteResult(
            columns: result.columns.map { $0.name ?? "" }, rows: result.rows.map { $0.map(SQLiteValue.init) },
            affectedRowCount: result.affectedRowCount, lastInsertRowID: result.lastInsertRowID,
            primaryPosition: NodeTransport.position(headers))
    }

    /// Runs several `;`-separated statements on the primary in one request (Hrana `sequence`),
    /// ignoring their rows: the fast way to load data.
    public func executeScript(_ sql: String) async throws {
        _ = try await run(.sequence(sql: sql, sqlID: nil))
    }

    /// Sends one request on the stream, carrying the baton, with `get_autocommit` after it (so the
    /// stream's transaction state is known); returns its response and the answer's headers, or
    /// throws the SQL error it reports. A stream the node expired while idle outside a transaction
    /// is replaced by a new one and the request sent again (it did not run); inside one, the
    /// transaction is gone and the caller is told so.
    private func run(
        _ request: Hrana.StreamRequest
    ) async throws -> (response: Hrana.StreamResponse, headers: [String: String]) {
        let sentWithBaton = baton != nil
        let body: Data
        do {
            body = try WireJSON.encoder().encode(
                Hrana.PipelineRequest(baton: baton, requests: [request, .getAutocommit]))
        } catch {
            throw ClientError(
                .protocolViolation, "the request cannot be written as Hrana JSON (a REAL must be finite): \(error)")
        }
        let answer = try await ClientError.translating {
            try await transport.send("POST", "v3/pipeline", body: body)
        }
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
            throw ClientError(transport.failure(answer, doing: "running SQL on the primary"))
        }
        let pipeline: Hrana.PipelineResponse
        do {
            pipeline = try JSONDecoder().decode(Hrana.PipelineResponse.self, from: answer.body)
        } catch {
            throw ClientError(.protocolViolation, "the node's pipeline answer could not be read: \(error)")
        }
        // The new baton first: a later refusal must not leave the spent one for the next call.
        baton = pipeline.baton
        guard pipeline.results.count == 2 else {
            throw ClientError(
                .protocolViolation, "the node's pipeline answer has \(pipeline.results.count) results, not 2")
        }
        if case .ok(.getAutocommit(let autocommit)) = pipeline.results[1] {
            inTransaction = !autocommit
        }
        switch pipeline.results[0] {
        case .ok(let response): return (response, answer.headers)
        case .error(let failure): throw ClientError(.sql, failure.message, sqlCode: failure.code)
        }
    }

    /// The body of a refused request.
    private struct Refusal: Decodable {
        let code: String?
    }

    /// Whether the node refused the baton because its stream is gone: expired (`STREAM_EXPIRED`),
    /// or no longer known at all (its tombstone is kept 5 minutes, and none survives a restart).
    /// Either way the request did not run.
    private static func isLostStream(_ answer: NodeTransport.Answer) -> Bool {
        guard answer.status == 400 else { return false }
        if let refusal = try? JSONDecoder().decode(Refusal.self, from: answer.body), refusal.code == "STREAM_EXPIRED" {
            return true
        }
        return String(decoding: answer.body.prefix(200), as: UTF8.self).contains("invalid baton")
    }

    /// Closes the stream (rolling back an open transaction).
    public func close() async {
        guard let baton else { return }
        self.baton = nil
        inTransaction = false
        guard let body = try? WireJSON.encoder().encode(Hrana.PipelineRequest(baton: baton, requests: [.close]))
        else { return }
        _ = try? await transport.send("POST", "v3/pipeline", body: body)
    }
}
