import Foundation
import HTTPTypes
import Hummingbird
import ShoalHTTP
import ShoalModel
import ShoalReplication
import ShoalSQLite

/// What a stream on a replica keeps between requests. Used by one request at a time (the baton
/// protocol hands a stream to one request), hence `@unchecked Sendable`.
final class ForwardingState: @unchecked Sendable {
    /// The stream on the primary that this stream's writes go to.
    var primaryBaton: String?
    /// True while the primary stream is inside a transaction: every request goes there.
    var inTransaction = false
    /// SQL stored on this stream (`store_sql`), by id.
    var storedSQL: [Int32: String] = [:]
    /// Which of those the primary stream has been given.
    var primaryStored: [Int32: String] = [:]
    /// The caller's `Authorization` header, for closing the primary stream later.
    var authorization: String?
}

extension Node {
    // MARK: Pipeline

    /// A pipeline on a replica: requests run on the replica's readers until one must go to the
    /// primary; from there on the rest of the pipeline goes to the primary's stream, and so does
    /// every later request until that stream is back in autocommit.
    func replicaPipeline(
        authorization: String?, stream: HranaStream, copy: ReplicaCopy, requests: [Hrana.StreamRequest],
        body: [UInt8], version: Int, access: Access, pinned: Bool
    ) async throws -> Response {
        guard let state = stream.forwarding else { throw NodeError.badRequest("the stream is not a replica stream") }
        state.authorization = authorization
        var local: [Hrana.StreamResult] = []
        var next = 0
        var closed = false
        if !state.inTransaction {
            let database = stream.lease.resource
            let outcome = try await database.lane.run { [storedSQL = state.storedSQL] in
                try copy.replica.read { reader -> (results: [Hrana.StreamResult], next: Int, stored: [Int32: String]) in
                    let executor = HranaExecutor(database: database, reader: reader)
                    executor.access = access
                    executor.storedSQL = storedSQL
                    var results: [Hrana.StreamResult] = []
                    for request in requests {
                        if SQLClassifier.mustForward(request, stored: executor.storedSQL, reader: reader) { break }
                        switch request {
                        case .getAutocommit:
                            guard version >= 3 else {
                                throw NodeError.badRequest("get_autocommit needs Hrana 3 (/v3/pipeline)")
                            }
                            results.append(.ok(.getAutocommit(true)))
                        case .close:
                            results.append(.ok(.close))
                        default:
                            results.append(try executor.run(request, version: version))
                        }
                        if case .close = request { break }
                    }
                    return (results, results.count, executor.storedSQL)
                }
            }
            local = outcome.results
            next = outcome.next
            state.storedSQL = outcome.stored
            if next > 0, case .close = requests[next - 1] { closed = true }
        }
        guard next < requests.count, !closed else {
            if closed { await closePrimaryStream(state, copy: copy) }
            return try await finishReplicaStream(stream, closed: closed, results: local, pinned: pinned)
        }

        // The rest goes to the primary, byte for byte.
        guard let raw = RawJSON.arrayElements("requests", in: body), raw.count == requests.count else {
            throw NodeError.badRequest("the pipeline body could not be read as requests")
        }
        let rest = Array(requests[next...])
        let endsWithClose: Bool = {
            if case .close = rest.last { return true }
            return false
        }()
        let prefix = sqlSync(state)
        var forwarded = prefix.map { Array($0.utf8) }
        forwarded += raw[next...].map { Array(body[$0]) }
        if !endsWithClose { forwarded.append(Array(#"{"type":"get_autocommit"}"#.utf8)) }
        let answer = try await forward(
            copy, path: "v3/pipeline", body: Self.pipelineBody(baton: state.primaryBaton, requests: forwarded),
            authorization: state.authorization)
        guard answer.status == 200, let results = RawJSON.arrayElements("results", in: Array(answer.body)),
            results.count == forwarded.count
        else {
            // The primary refused the pipeline: its stream is gone; relay its answer as it is.
            state.primaryBaton = nil
            state.inTransaction = false
            await close(stream)
            return Self.relayed(answer)
        }
        let bytes = Array(answer.body)
        state.primaryStored = state.storedSQL
        if endsWithClose {
            state.primaryBaton = nil
            state.inTransaction = false
        } else {
            state.primaryBaton = RawJSON.member("baton", in: bytes).flatMap { Self.jsonString(bytes[$0]) }
            state.inTransaction = results.last.map { Self.inTransaction(bytes[$0]) } ?? false
        }
        let relayedResults = results.dropFirst(prefix.count).prefix(rest.count).map { Array(bytes[$0]) }
        var response = try await finishReplicaStream(
            stream, closed: endsWithClose, results: local, forwarded: relayedResults, pinned: pinned)
        await readYourWrites(answer, copy: copy, response: &response)
        return response
    }

    /// `store_sql`/`close_sql` requests that bring the primary stream's stored SQL in line with
    /// this stream's.
    func sqlSync(_ state: ForwardingState) -> [String] {
        var requests: [String] = []
        for (id, _) in state.primaryStored.sorted(by: { $0.key < $1.key }) where state.storedSQL[id] == nil {
            requests.append(#"{"type":"close_sql","sql_id":\#(id)}"#)
        }
        for (id, sql) in state.storedSQL.sorted(by: { $0.key < $1.key }) where state.primaryStored[id] != sql {
            if state.primaryStored[id] != nil { requests.append(#"{"type":"close_sql","sql_id":\#(id)}"#) }
            let text = String(decoding: (try? WireJSON.encoder().encode(sql)) ?? Data("\"\"".utf8), as: UTF8.self)
            requests.append(#"{"type":"store_sql","sql_id":\#(id),"sql":\#(text)}"#)
        }
        return requests
    }

    static func pipelineBody(baton: String?, requests: [[UInt8]]) -> [UInt8] {
        var body = Array(#"{"baton":"#.utf8)
        body += baton.map { Array((try? WireJSON.encoder().encode($0)) ?? Data("null".utf8)) } ?? Array("null".utf8)
        body += Array(#","requests":["#.utf8)
        for (index, request) in requests.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body += request
        }
        body += Array("]}".utf8)
        return body
    }

    /// Whether a `get_autocommit` result (`{"type":"ok","response":{…,"is_autocommit":false}}`)
    /// says the primary stream is inside a transaction; any other result says it is not.
    static func inTransaction(_ result: ArraySlice<UInt8>) -> Bool {
        guard
            case .ok(.getAutocommit(let autocommit)) = try? JSONDecoder().decode(
                Hrana.StreamResult.self, from: Data(result))
        else { return false }
        return !autocommit
    }

    static func jsonString(_ bytes: ArraySlice<UInt8>) -> String? {
        try? JSONDecoder().decode(String.self, from: Data(bytes))
    }

    /// Parks (or ends) a replica stream and writes the answer: local results encoded here, the
    /// primary's results as it sent them.
    func finishReplicaStream(
        _ stream: HranaStream, closed: Bool, results: [Hrana.StreamResult], forwarded: [[UInt8]] = [],
        pinned: Bool = false
    ) async throws -> Response {
        var baton: String?
        if closed {
            await finish(stream)
        } else {
            baton = streams.park(stream, pinned: pinned)
        }
        guard !forwarded.isEmpty else { return try Self.json(Hrana.PipelineResponse(baton: baton, results: results)) }
        let encoder = WireJSON.encoder()
        var body = Array(#"{"baton":"#.utf8)
        body += Array(try encoder.encode(baton))
        body += Array(#","base_url":null,"results":["#.utf8)
        var items = try results.map { Array(try encoder.encode($0)) }
        items += forwarded
        for (index, item) in items.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body += item
        }
        body += Array("]}".utf8)
        return Response(
            status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// Closes the primary stream behind a replica stream (best effort: it expires anyway).
    func closePrimaryStream(_ state: ForwardingState, copy: ReplicaCopy) async {
        guard let baton = state.primaryBaton else { return }
        state.primaryBaton = nil
        state.inTransaction = false
        _ = try? await forward(
            copy, path: "v3/pipeline",
            body: Self.pipelineBody(baton: baton, requests: [Array(#"{"type":"close"}"#.utf8)]),
            authorization: state.authorization)
    }

    // MARK: Cursor

    /// `/v3/cursor` on a replica: a read-only batch outside a forwarded transaction runs here; any
    /// other goes to the primary's stream and its lines are relayed (the first carries our baton).
    func replicaCursor(
        _ request: Request, stream: HranaStream, copy: ReplicaCopy, cursor: Hrana.CursorRequest, body: [UInt8],
        access: Access
    ) async throws -> Response? {
        guard let state = stream.forwarding else { return nil }
        state.authorization = request.headers[.authorization]
        let database = stream.lease.resource
        if !state.inTransaction {
            let result = try await database.lane.run { [storedSQL = state.storedSQL] () -> Hrana.BatchResult? in
                try copy.replica.read { reader in
                    guard !SQLClassifier.mustForward(.batch(cursor.batch), stored: storedSQL, reader: reader) else {
                        return nil
                    }
                    let executor = HranaExecutor(database: database, reader: reader)
                    executor.access = access
                    executor.storedSQL = storedSQL
                    return try executor.batch(cursor.batch)
                }
            }
            if let result { return try cursorResponse(baton: streams.park(stream), result: result) }
        }
        // Bring stored SQL over first (rare: SDKs store SQL through pipelines).
        let prefix = sqlSync(state)
        if !prefix.isEmpty {
            let answer = try await forward(
                copy, path: "v3/pipeline",
                body: Self.pipelineBody(baton: state.primaryBaton, requests: prefix.map { Array($0.utf8) }),
                authorization: state.authorization)
            guard answer.status == 200 else {
                await close(stream)
                return Self.relayed(answer)
            }
            let bytes = Array(answer.body)
            state.primaryBaton = RawJSON.member("baton", in: bytes).flatMap { Self.jsonString(bytes[$0]) }
            state.primaryStored = state.storedSQL
        }
        guard let batch = RawJSON.member("batch", in: body) else {
            throw NodeError.badRequest("the cursor body has no batch")
        }
        var forwardedBody = Array(#"{"baton":"#.utf8)
        forwardedBody +=
            state.primaryBaton.map { Array((try? WireJSON.encoder().encode($0)) ?? Data("null".utf8)) }
            ?? Array("null".utf8)
        forwardedBody += Array(#","batch":"#.utf8) + Array(body[batch]) + Array("}".utf8)
        let answer = try await forward(copy, path: "v3/cursor", body: forwardedBody, authorization: state.authorization)
        let bytes = Array(answer.body)
        guard answer.status == 200, let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else {
            state.primaryBaton = nil
            state.inTransaction = false
            await close(stream)
            return Self.relayed(answer)
        }
        let header = Array(bytes[..<newline])
        state.primaryBaton = RawJSON.member("baton", in: header).flatMap { Self.jsonString(header[$0]) }
        // Whether the primary stream is still in a transaction decides where the next request goes.
        if let baton = state.primaryBaton {
            let probe = try await forward(
                copy, path: "v3/pipeline",
                body: Self.pipelineBody(baton: baton, requests: [Array(#"{"type":"get_autocommit"}"#.utf8)]),
                authorization: state.authorization)
            let probeBytes = Array(probe.body)
            state.primaryBaton = RawJSON.member("baton", in: probeBytes).flatMap { Self.jsonString(probeBytes[$0]) }
            state.inTransaction =
                RawJSON.arrayElements("results", in: probeBytes)?.last.map { Self.inTransaction(probeBytes[$0]) }
                ?? false
        } else {
            state.inTransaction = false
        }
        var out = Array(try WireJSON.encoder().encode(Hrana.CursorHeader(baton: streams.park(stream))))
        out += bytes[newline...]
        var response = Response(
            status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(bytes: out)))
        await readYourWrites(answer, copy: copy, response: &response)
        return response
    }

    func cursorResponse(baton: String, result: Hrana.BatchResult) throws -> Response {
        let encoder = WireJSON.encoder()
        var buffer = ByteBuffer()
        func line(_ value: some Encodable) throws {
            buffer.writeBytes(try encoder.encode(value))
            buffer.writeString("\n")
        }
        try line(Hrana.CursorHeader(baton: baton))
        for step in result.stepResults.indices {
            if let failure = result.stepErrors[step] {
                try line(Hrana.CursorEntry.stepError(step: step, error: failure))
            } else if let statement = result.stepResults[step] {
                try line(Hrana.CursorEntry.stepBegin(step: step, columns: statement.columns))
                for row in statement.rows { try line(Hrana.CursorEntry.row(row)) }
                try line(
                    Hrana.CursorEntry.stepEnd(
                        affectedRowCount: statement.affectedRowCount, lastInsertRowID: statement.lastInsertRowID))
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: buffer))
    }

    // MARK: HTTP API v1

    /// `/v1/execute` or `/v1/batch` on a replica: reads here, anything else relayed to the primary.
    func replicaV1(
        _ request: Request, database: HostedDatabase, copy: ReplicaCopy, path: String, body: [UInt8],
        check: Hrana.StreamRequest, access: Access, local: @escaping @Sendable (HranaExecutor) throws -> Response
    ) async throws -> Response {
        let answer = try await database.lane.run { () -> Response? in
            try copy.replica.read { reader in
                guard !SQLClassifier.mustForward(check, stored: [:], reader: reader) else { return nil }
                let executor = HranaExecutor(database: database, reader: reader)
                executor.access = access
                return try local(executor)
            }
        }
        if let answer { return answer }
        let forwarded = try await forward(
            copy, path: path, body: body, authorization: request.headers[.authorization])
        var response = Self.relayed(forwarded)
        if forwarded.isSuccess { await readYourWrites(forwarded, copy: copy, response: &response) }
        return response
    }

    // MARK: Calling the primary

    func forward(_ copy: ReplicaCopy, path: String, body: [UInt8], authorization: String?) async throws -> HTTPAnswer {
        var call = HTTPCall(
            "POST", copy.primaryURL.appendingPathComponent(path), body: Data(body),
            timeout: configuration.statementTimeLimit + .seconds(30))
        if let authorization { call.headers.append((name: "Authorization", value: authorization)) }
        return try await send(call, copy: copy)
    }

    private func send(_ call: HTTPCall, copy: ReplicaCopy) async throws -> HTTPAnswer {
        do {
            return try await OutboundHTTP.send(call)
        } catch let error as HTTPCallError {
            throw NodeError.unavailable("the primary of this database cannot be reached (\(error)); try again")
        }
    }

    /// The primary's answer as the caller's answer: status, body, content type, position.
    static func relayed(_ answer: HTTPAnswer) -> Response {
        var headers: HTTPFields = [:]
        if let type = answer.headers["content-type"] { headers[.contentType] = type }
        if let frame = answer.headers["x-shoal-frame"] { headers[HTTPField.Name("x-shoal-frame")!] = frame }
        return Response(
            status: HTTPResponse.Status(code: answer.status), headers: headers,
            body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
    }

    /// Waits until the replica has applied the primary's position in `answer` (read-your-writes);
    /// past the node's limit the response says so in `x-shoal-read-your-writes: timeout`.
    func readYourWrites(_ answer: HTTPAnswer, copy: ReplicaCopy, response: inout Response) async {
        guard let header = answer.headers["x-shoal-frame"] else { return }
        let parts = header.split(separator: "/")
        guard parts.count == 2, let generation = UInt64(parts[0]), let frame = UInt64(parts[1]) else { return }
        let target = ReplicationPosition(generation: generation, frame: frame)
        copy.heard(of: target)
        response.headers[HTTPField.Name("x-shoal-frame")!] = header
        let start = ContinuousClock.now
        let applied = await copy.waitUntilApplied(target, timeout: configuration.readYourWritesTimeout)
        metrics.replicaWait(ContinuousClock.now - start, applied: applied)
        if !applied {
            response.headers[HTTPField.Name("x-shoal-read-your-writes")!] = "timeout"
            logger.warning(
                "replica.read_your_writes.timeout",
                metadata: [
                    "primary": "\(copy.primaryURL)", "target": "\(target)",
                    "at": "\(copy.position.map { "\($0)" } ?? "none")",
                ])
        }
    }
}
