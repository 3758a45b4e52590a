import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import ShoalHTTP
import ShoalModel
import ShoalTime
import Synchronization

/// Hrana over WebSocket (`hrana2`, `hrana1`): the protocol `@libsql/client` speaks for `libsql://`
/// and `ws://` URLs. A connection authenticates with `hello` (its `jwt`, verified again on every
/// request, so that expiry, revocation and rotation apply to a long-lived connection too) and
/// names its database by its URL as HTTP requests do. Each of its streams is a Hrana stream of the
/// HTTP API held for the connection (pinned: never expired as idle), so that caps, sandbox,
/// replicas and forwarding are the pipeline's; requests on one stream run in order, streams run
/// side by side.
extension Node {
    /// The subprotocols served, preferred first (`hrana3` is not offered: its cursors are not
    /// served over WebSocket yet, and every client falls back to `hrana2`).
    static let hranaSubprotocols = ["hrana2", "hrana1"]
    /// The most requests one connection may have unanswered at once.
    static let socketMaxPendingRequests = 256
    /// The most streams one connection may hold open at once (each also counts under the caps on
    /// open streams of its token and organization).
    static let socketMaxStreams = 128
    /// The most SQL texts one connection may store (`store_sql`), as a stream may.
    static let socketMaxStoredSQL = 50
    /// The most request bytes one connection may have received and not answered yet.
    static let socketMaxQueuedBytes = 32 << 20

    /// Decides a WebSocket upgrade request (on its connection's event loop): accepted when it
    /// offers a Hrana subprotocol the node serves (or none: `hrana1`), refused (400) otherwise.
    func webSocketUpgrade(
        _ head: HTTPRequest, channel: any Channel, logger: Logger
    ) throws -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> {
        let offered = head.headerFields[values: .secWebSocketProtocol].flatMap { value in
            value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let chosen: String
        if offered.isEmpty {
            chosen = "hrana1"
        } else if let match = Self.hranaSubprotocols.first(where: offered.contains) {
            chosen = match
        } else {
            logger.debug("websocket.refused", metadata: ["ws.offered": "\(offered)"])
            return .dontUpgrade
        }
        // A handshake has no body; one announced would be awaited with no deadline.
        if head.headerFields[.transferEncoding] != nil
            || (head.headerFields[.contentLength].flatMap { Int($0) } ?? 0) != 0
        {
            return .dontUpgrade
        }
        let target = SocketTarget(head)
        // From here the connection speaks WebSocket: HTTP/1's header and body deadlines must not see it.
        try ConnectionLimits.removeRequestDeadlines(from: channel)
        var headers = HTTPFields()
        if !offered.isEmpty { headers[.secWebSocketProtocol] = chosen }
        let version = chosen == "hrana1" ? 1 : 2
        return .upgrade(headers) { inbound, outbound, _ in
            await self.serveHrana(inbound, outbound, target: target, protocolVersion: version)
        }
    }

    /// Serves one Hrana WebSocket until either side closes it; its streams are closed at the end.
    /// The node closes it when it says no hello in time, sits idle (no request unanswered and none
    /// for the idle timeout), breaks the protocol or floods it; once a close is queued nothing more
    /// is read.
    func serveHrana(
        _ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, target: SocketTarget,
        protocolVersion: Int
    ) async {
        let (outgoing, send) = AsyncStream.makeStream(of: SocketOutgoing.self)
        let (ended, end) = AsyncStream.makeStream(of: Void.self)
        let connection = SocketConnection(send: send, end: end)
        metrics.webSocket(open: true)
        defer { metrics.webSocket(open: false) }
        let limits = configuration.connectionLimits
        let maxMessage = configuration.maxRequestBytes
        await withTaskGroup(of: Void.self) { writers in
            // One writer: whole messages, in the order they were queued, until the queue ends.
            writers.addTask {
                for await message in outgoing {
                    do {
                        switch message {
                        case .text(let text, let answer):
                            try await outbound.write(.text(text))
                            if answer { connection.written(text) }
                        case .close(let code, let reason):
                            try await outbound.close(code, reason: reason)
                            return
                        }
                    } catch {
                        return
                    }
                }
            }
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    await Self.watch(connection, helloTimeout: limits.headerTimeout, idleTimeout: limits.idleTimeout)
                }
                group.addTask {
                    await self.read(
                        inbound, target: target, protocolVersion: protocolVersion, connection: connection,
                        maxMessage: maxMessage)
                    connection.end()
                }
                // The reader ended (the client closed), or a close is queued: stop reading; the
                // reader closes the connection's streams on its way out.
                for await _ in ended { break }
                group.cancelAll()
            }
            // What was queued is written (a refusal and its close frame), then the writer ends.
            send.finish()
        }
    }

    /// Closes a connection that says no hello within `helloTimeout`, or that is idle for
    /// `idleTimeout` (no request unanswered, nothing received or sent).
    private static func watch(_ connection: SocketConnection, helloTimeout: Duration, idleTimeout: Duration) async {
        let helloDue = ContinuousClock.now.advanced(by: helloTimeout)
        while true {
            let now = ContinuousClock.now
            let next: ContinuousClock.Instant
            if connection.greeted.load(ordering: .relaxed) {
                let due = connection.lastActivity.advanced(by: idleTimeout)
                if now >= due, connection.unanswered == 0 {
                    return connection.close(.goingAway, "idle for \(idleTimeout)")
                }
                next = max(due, now.advanced(by: .seconds(1)))
            } else {
                if now >= helloDue { return connection.close(.policyViolation, "no hello within \(helloTimeout)") }
                next = min(helloDue, now.advanced(by: .seconds(1)))
            }
            guard (try? await Task.sleep(until: next, clock: .continuous)) != nil else { return }
        }
    }

    /// Reads the client's messages until it closes, breaks the protocol, or the reading is
    /// cancelled; then ends the connection's streams (their Hrana streams closed).
    private func read(
        _ inbound: WebSocketInboundStream, target: SocketTarget, protocolVersion: Int, connection: SocketConnection,
        maxMessage: Int
    ) async {
        await withTaskGroup(of: Void.self) { streams in
            var session = SocketSession(target: target, protocolVersion: protocolVersion)
            var iterator = inbound.makeAsyncIterator()
            while !connection.closeQueued {
                let message: WebSocketMessage?
                do {
                    message = try await iterator.nextMessage(maxSize: maxMessage)
                } catch {
                    break
                }
                guard let message, !Task.isCancelled else { break }
                connection.touch()
                guard case .text(let text) = message else {
                    connection.close(.unacceptableData, "Hrana over WebSocket takes text messages (JSON)")
                    break
                }
                guard await handle(Array(text.utf8), session: &session, connection: connection, group: &streams)
                else { break }
            }
            // Streams end: what is queued on them is not run once the client is gone.
            connection.closing.store(true, ordering: .relaxed)
            for queue in session.streams.values { queue.finish() }
            session.streams.removeAll()
            await streams.waitForAll()
            session.admission?.release()
        }
    }

    /// Handles one client message; false when the connection must close (after what was queued).
    private func handle(
        _ bytes: [UInt8], session: inout SocketSession, connection: SocketConnection,
        group: inout TaskGroup<Void>
    ) async -> Bool {
        struct Envelope: Decodable {
            let type: String
            let jwt: String?
            let requestID: Int32?
            enum CodingKeys: String, CodingKey {
                case type, jwt
                case requestID = "request_id"
            }
        }
        guard let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(bytes)) else {
            connection.close(.protocolError, "the message is not a Hrana client message (JSON with a type)")
            return false
        }
        switch envelope.type {
        case "hello":
            return await hello(jwt: envelope.jwt, session: &session, connection: connection)
        case "request":
            guard let id = envelope.requestID, let range = RawJSON.member("request", in: bytes) else {
                connection.close(.protocolError, "a request message needs a request_id and a request")
                return false
            }
            guard session.namespace != nil else {
                connection.close(.protocolError, "send a hello (with the database's token) before any request")
                return false
            }
            request(Array(bytes[range]), id: id, session: &session, connection: connection, group: &group)
            return true
        default:
            connection.close(.protocolError, "unknown message type \(envelope.type): expected hello or request")
            return false
        }
    }

    /// `hello`: authenticates the connection (again, in `hrana2`) for the database its URL names.
    /// A refused hello is answered with `hello_error`, and the connection closed.
    private func hello(jwt: String?, session: inout SocketSession, connection: SocketConnection) async -> Bool {
        if session.protocolVersion == 1, session.namespace != nil {
            connection.close(.protocolError, "hrana1 allows one hello per connection")
            return false
        }
        do {
            let namespace = try session.target.namespace(token: jwt, node: self)
            if let current = session.namespace, current != namespace {
                throw NodeError.badRequest(
                    "the token is for \(namespace), but this connection serves \(current); open another connection")
            }
            let grant = try await grant(
                token: jwt, namespace, missing: "send the database's token as the jwt of the hello message")
            // Counted under the caps on connections once, at the first hello accepted.
            if session.admission == nil {
                session.admission = try webSockets.admit(
                    holder: grant.holder(for: namespace), organization: namespace.organization)
            }
            session.namespace = namespace
            session.token = jwt
            connection.greeted.store(true, ordering: .relaxed)
            connection.send(#"{"type":"hello_ok"}"#)
            return true
        } catch {
            connection.send(Self.socketMessage(type: "hello_error", id: nil, error: Self.socketError(error)))
            connection.close(.policyViolation, "hello refused")
            return false
        }
    }

    /// One `request`: answered here when it concerns the connection (`store_sql`, `close_sql`),
    /// else queued on its stream.
    private func request(
        _ raw: [UInt8], id: Int32, session: inout SocketSession, connection: SocketConnection,
        group: inout TaskGroup<Void>
    ) {
        struct Head: Decodable {
            let type: String
            let streamID: Int32?
            let sqlID: Int32?
            let sql: String?
            enum CodingKeys: String, CodingKey {
                case type, sql
                case streamID = "stream_id"
                case sqlID = "sql_id"
            }
        }
        func fail(_ message: String, code: String? = nil) {
            connection.answer(
                Self.socketMessage(type: "response_error", id: id, error: (message, code)), requestBytes: raw.count)
        }
        guard connection.admit(bytes: raw.count) else {
            // A client past these bounds does not read its answers, or floods: it is closed.
            connection.close(
                .policyViolation,
                "more than \(Self.socketMaxPendingRequests) requests or \(Self.socketMaxQueuedBytes >> 20) MiB unanswered"
            )
            return
        }
        guard let head = try? JSONDecoder().decode(Head.self, from: Data(raw)) else {
            return fail("the request is not a Hrana request (JSON with a type)")
        }
        func ok(_ type: String) {
            connection.answer(
                #"{"type":"response_ok","request_id":\#(id),"response":{"type":"\#(type)"}}"#, requestBytes: raw.count)
        }
        switch head.type {
        case "store_sql":
            guard let sqlID = head.sqlID, let sql = head.sql else { return fail("store_sql needs a sql_id and a sql") }
            guard session.storedSQL[sqlID] == nil else { return fail("SQL text \(sqlID) is stored already") }
            guard session.storedSQL.count < Self.socketMaxStoredSQL else {
                return fail("a connection stores at most \(Self.socketMaxStoredSQL) SQL texts; close_sql some first")
            }
            guard sql.utf8.count <= 5 * 1024 else { return fail("stored SQL is limited to 5 KB") }
            session.storedSQL[sqlID] = sql
            return ok("store_sql")
        case "close_sql":
            guard let sqlID = head.sqlID else { return fail("close_sql needs a sql_id") }
            session.storedSQL[sqlID] = nil
            return ok("close_sql")
        case "open_stream":
            guard let streamID = head.streamID else { return fail("open_stream needs a stream_id") }
            guard session.streams[streamID] == nil else { return fail("stream \(streamID) is open already") }
            guard session.streams.count < Self.socketMaxStreams else {
                return fail(
                    "a connection holds at most \(Self.socketMaxStreams) streams; close_stream some first",
                    code: "TOO_MANY_REQUESTS")
            }
            guard let namespace = session.namespace else { return fail("send a hello first") }
            let (work, queue) = AsyncStream.makeStream(of: SocketWork.self)
            session.streams[streamID] = queue
            queue.yield(SocketWork(id: id, kind: .open, token: session.token, bytes: raw.count))
            group.addTask {
                await self.runSocketStream(work, namespace: namespace, connection: connection)
            }
        case "close_stream":
            guard let streamID = head.streamID else { return fail("close_stream needs a stream_id") }
            guard let queue = session.streams.removeValue(forKey: streamID) else { return ok("close_stream") }
            queue.yield(SocketWork(id: id, kind: .close, token: session.token, bytes: raw.count))
            queue.finish()
        case "execute", "batch", "sequence", "describe":
            guard let streamID = head.streamID else { return fail("\(head.type) needs a stream_id") }
            guard let queue = session.streams[streamID] else {
                return fail("no stream \(streamID) is open on this connection: send open_stream first")
            }
            let parsed: Hrana.StreamRequest
            do {
                parsed = try JSONDecoder().decode(Hrana.StreamRequest.self, from: Data(raw))
            } catch {
                return fail("the \(head.type) request is not valid: \(Self.describe(error))")
            }
            var needed: [Int32: String] = [:]
            for sqlID in Self.sqlIDs(of: parsed) {
                guard let sql = session.storedSQL[sqlID] else {
                    return fail("no SQL text \(sqlID) is stored on this connection: send store_sql first")
                }
                needed[sqlID] = sql
            }
            queue.yield(
                SocketWork(
                    id: id, kind: .run(raw, storedSQL: needed, connectionSQL: Set(session.storedSQL.keys)),
                    token: session.token, bytes: raw.count))
        default:
            fail(
                "unknown request type \(head.type) (this node serves \(Self.hranaSubprotocols.joined(separator: ", ")))"
            )
        }
    }

    /// The stored SQL texts a request refers to.
    static func sqlIDs(of request: Hrana.StreamRequest) -> [Int32] {
        switch request {
        case .execute(let statement): statement.sqlID.map { [$0] } ?? []
        case .batch(let batch): batch.steps.compactMap(\.statement.sqlID)
        case .sequence(_, let id), .describe(_, let id): id.map { [$0] } ?? []
        case .storeSQL, .closeSQL, .getAutocommit, .close: []
        }
    }

    /// One stream of a connection: its requests in order, each a pipeline on the Hrana stream
    /// behind it; at the end (`close_stream`, or the connection closing), that stream is closed.
    private func runSocketStream(
        _ work: AsyncStream<SocketWork>, namespace: Namespace, connection: SocketConnection
    ) async {
        var baton: String?
        /// Why the stream is gone, once it is (a request that failed took it along).
        var lost: String?
        /// The SQL texts stored on the Hrana stream, as this connection stored them.
        var stored: [Int32: String] = [:]
        for await item in work {
            let start = ContinuousClock.now
            /// Answers the request; SQL requests are counted under the node's request metrics.
            func reply(_ text: String) {
                if case .run = item.kind {
                    let failed = text.hasPrefix(#"{"type":"response_error""#)
                    metrics.record(
                        route: .websocket, status: failed ? 400 : 200, duration: ContinuousClock.now - start)
                }
                connection.answer(text, requestBytes: item.bytes)
            }
            func failure(_ error: any Error) -> String {
                Self.socketMessage(type: "response_error", id: item.id, error: Self.socketError(error))
            }
            if connection.closing.load(ordering: .relaxed), !item.closes {
                // The client is gone: nothing more runs for it (its stream is closed below).
                connection.answer(nil, requestBytes: item.bytes)
                continue
            }
            switch item.kind {
            case .open:
                do {
                    let grant = try await socketGrant(namespace, token: item.token)
                    baton = try await socketPipeline(
                        namespace, grant: grant, token: item.token, baton: nil, requests: []
                    )
                    .baton
                    reply(#"{"type":"response_ok","request_id":\#(item.id),"response":{"type":"open_stream"}}"#)
                } catch {
                    lost = "the stream could not be opened"
                    reply(failure(error))
                }
            case .close:
                await closeSocketStream(baton)
                baton = nil
                reply(#"{"type":"response_ok","request_id":\#(item.id),"response":{"type":"close_stream"}}"#)
            case .run(let raw, let needed, let connectionSQL):
                guard baton != nil else {
                    reply(
                        Self.socketMessage(
                            type: "response_error", id: item.id,
                            error: ("\(lost ?? "the stream is closed"): close it and open a new one", "STREAM_CLOSED")))
                    continue
                }
                // The token first: a refused one (expired, revoked) leaves the stream as it is, for
                // the request after a new hello.
                let grant: Grant
                do {
                    grant = try await socketGrant(namespace, token: item.token)
                } catch {
                    reply(failure(error))
                    continue
                }
                do {
                    // Stored SQL first, in a pipeline of its own (SQL stored in the same pipeline is
                    // not known when the request is classified, and would count as writing): texts
                    // the connection closed or changed are closed on the stream, those it names stored.
                    var changes: [(id: Int32, sql: String?)] = []
                    for id in stored.keys.sorted()
                    where !connectionSQL.contains(id) || (needed[id].map { $0 != stored[id] } ?? false) {
                        changes.append((id, nil))
                    }
                    for (id, sql) in needed.sorted(by: { $0.key < $1.key })
                    where stored[id] != sql {
                        changes.append((id, sql))
                    }
                    if !changes.isEmpty {
                        let requests = changes.map { change -> [UInt8] in
                            guard let sql = change.sql else {
                                return Array(#"{"type":"close_sql","sql_id":\#(change.id)}"#.utf8)
                            }
                            let text = String(
                                decoding: (try? WireJSON.encoder().encode(sql)) ?? Data("\"\"".utf8), as: UTF8.self)
                            return Array(#"{"type":"store_sql","sql_id":\#(change.id),"sql":\#(text)}"#.utf8)
                        }
                        let answer = try await socketPipeline(
                            namespace, grant: grant, token: item.token, baton: baton, requests: requests)
                        baton = answer.baton
                        for (change, range) in zip(changes, answer.results)
                        where Self.socketFailure(id: item.id, results: [range], body: answer.body) == nil {
                            stored[change.id] = change.sql
                        }
                        if let refusal = Self.socketFailure(id: item.id, results: answer.results, body: answer.body) {
                            reply(refusal)
                            continue
                        }
                    }
                    let answer = try await socketPipeline(
                        namespace, grant: grant, token: item.token, baton: baton, requests: [raw])
                    baton = answer.baton
                    if baton == nil { lost = "the stream was closed" }
                    reply(Self.socketAnswer(id: item.id, results: answer.results, body: answer.body))
                } catch {
                    // The pipeline failed as a whole (a deadline, the database going away): the
                    // stream is closed, wherever it was left.
                    await closeSocketStream(baton)
                    baton = nil
                    lost = "the stream was closed by an earlier failure (\(Self.socketError(error).message))"
                    reply(failure(error))
                }
            }
        }
        await closeSocketStream(baton)
    }

    /// Closes the Hrana stream parked under `baton` (no token needed: the connection owns it).
    private func closeSocketStream(_ baton: String?) async {
        guard let baton, let stream = try? streams.take(baton) else { return }
        await close(stream)
    }

    /// What the connection's token allows now (checked again on every request).
    private func socketGrant(_ namespace: Namespace, token: String?) async throws -> Grant {
        try await grant(token: token, namespace, missing: "send the database's token as the jwt of the hello message")
    }

    /// A pipeline on a connection's stream, as `/v2/pipeline` runs it; returns the new baton and
    /// the results' ranges in the answer. An answer that cannot be read closes the stream it parked.
    private func socketPipeline(
        _ namespace: Namespace, grant: Grant, token: String?, baton: String?, requests: [[UInt8]]
    ) async throws -> (baton: String?, results: [Range<Int>], body: [UInt8]) {
        let response = try await pipeline(
            namespace, grant: grant, authorization: token.map { "Bearer \($0)" },
            body: Self.pipelineBody(baton: baton, requests: requests), version: 2, pinned: true)
        let status = response.status
        let collector = CollectedBody()
        try await response.body.write(CollectingWriter(sink: collector))
        let body = collector.bytes
        let newBaton = RawJSON.member("baton", in: body).flatMap { Self.jsonString(body[$0]) }
        guard status == .ok, let results = RawJSON.arrayElements("results", in: body), results.count == requests.count
        else {
            await closeSocketStream(newBaton)
            throw NodeError.unavailable(
                "the request failed (\(status.code)): \(String(decoding: body.prefix(1000), as: UTF8.self))")
        }
        return (newBaton, results, body)
    }

    /// The answer to a stream request: its pipeline's last result, unless one before it failed.
    static func socketAnswer(id: Int32, results: [Range<Int>], body: [UInt8]) -> String {
        if let failure = socketFailure(id: id, results: results, body: body) { return failure }
        guard let last = results.last, let response = RawJSON.member("response", in: Array(body[last])) else {
            return socketMessage(type: "response_error", id: id, error: ("the request had no result", nil))
        }
        let result = Array(body[last])
        return #"{"type":"response_ok","request_id":\#(id),"response":"#
            + String(decoding: result[response], as: UTF8.self)
            + "}"
    }

    /// The `response_error` for the first pipeline result that is an error, if any.
    static func socketFailure(id: Int32, results: [Range<Int>], body: [UInt8]) -> String? {
        struct Kind: Decodable { let type: String }
        for range in results {
            let result = Array(body[range])
            guard (try? JSONDecoder().decode(Kind.self, from: Data(result)))?.type != "ok" else { continue }
            guard let error = RawJSON.member("error", in: result) else {
                return socketMessage(type: "response_error", id: id, error: ("the request failed", nil))
            }
            return #"{"type":"response_error","request_id":\#(id),"error":"#
                + String(decoding: result[error], as: UTF8.self)
                + "}"
        }
        return nil
    }

    /// A Hrana error object for a failure: its message, and a code for those a client acts on.
    static func socketError(_ error: any Error) -> (message: String, code: String?) {
        guard let error = error as? NodeError else { return ("\(error)", nil) }
        let code: String? =
            switch error.code {
            case .streamExpired: "STREAM_EXPIRED"
            case .unauthorized: "UNAUTHORIZED"
            case .forbidden: "FORBIDDEN"
            case .tooManyRequests: "TOO_MANY_REQUESTS"
            case .unavailable: "UNAVAILABLE"
            case .notFound, .noDatabase: "NOT_FOUND"
            case .tooLarge: "TOO_LARGE"
            default: nil
            }
        return (error.message, code)
    }

    /// `{"type": type, "request_id": id, "error": {"message": …, "code": …}}`.
    static func socketMessage(type: String, id: Int32?, error: (message: String, code: String?)) -> String {
        struct Failure: Encodable {
            let message: String
            let code: String?
        }
        let encoded =
            (try? WireJSON.encoder().encode(Failure(message: error.message, code: error.code))) ?? Data("{}".utf8)
        let requestID = id.map { #","request_id":\#($0)"# } ?? ""
        return #"{"type":"\#(type)"\#(requestID),"error":"# + String(decoding: encoded, as: UTF8.self) + "}"
    }
}

/// Where a WebSocket's database comes from: its URL's `/db/{org}/{database}` prefix, else the
/// `x-namespace` header or host name; with only `/db/{org}`, the hello's token names it.
struct SocketTarget: Sendable {
    enum Source: Sendable {
        case named(Namespace)
        case organization(String)
        case invalid(String)
        case unnamed
    }

    let source: Source

    init(_ head: HTTPRequest) {
        let path = (head.path ?? "/").split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
        let parts = path.split(separator: "/").map(String.init)
        if parts.first == "db", parts.count >= 3 {
            do {
                source = .named(try Namespace(organization: parts[1], database: parts[2]))
            } catch {
                source = .invalid(Node.socketError(error).message)
            }
        } else if parts.first == "db", parts.count == 2 {
            source = .organization(parts[1])
        } else {
            do {
                source =
                    try Node.namespace(headers: head.headerFields, authority: head.authority).map { .named($0) }
                    ?? .unnamed
            } catch {
                source = .invalid(Node.socketError(error).message)
            }
        }
    }

    func namespace(token: String?, node: Node) throws -> Namespace {
        switch source {
        case .named(let namespace): return namespace
        case .organization(let organization): return try node.namespaceFromToken(token, organization: organization)
        case .invalid(let message): throw NodeError.invalidName(message)
        case .unnamed:
            // As over HTTP: a token the node cannot verify is refused as such before the hint.
            if case .tokens(let verifier, _) = node.configuration.authentication {
                _ = try verifier.verify(token ?? "")
            }
            throw Node.noNamespace
        }
    }
}

/// What the message loop of a connection keeps (it alone uses it).
struct SocketSession {
    let target: SocketTarget
    /// 1 for `hrana1` (one hello), 2 for `hrana2` (its requests run as `/v2/pipeline` runs them).
    let protocolVersion: Int
    /// Set by the first accepted hello.
    var namespace: Namespace?
    /// The token of the last accepted hello.
    var token: String?
    /// `store_sql` texts, by id.
    var storedSQL: [Int32: String] = [:]
    /// The open streams' queues, by stream id.
    var streams: [Int32: AsyncStream<SocketWork>.Continuation] = [:]
    /// The connection's place under the caps on connections (given back when it ends).
    var admission: AdmissionTicket?
}

/// A request queued on a connection's stream.
struct SocketWork: Sendable {
    enum Kind: Sendable {
        case open
        case close
        /// A stream request as the client sent it, with the stored SQL texts it refers to and the
        /// ids the connection holds when it arrived.
        case run([UInt8], storedSQL: [Int32: String], connectionSQL: Set<Int32>)
    }

    let id: Int32
    let kind: Kind
    /// The connection's token when the request arrived.
    let token: String?
    /// The request's size, counted under the connection's bound until it is answered.
    let bytes: Int

    /// Whether it is `close_stream`.
    var closes: Bool {
        if case .close = kind { return true }
        return false
    }
}

/// What a connection sends: texts (answers among them, counted until written) and its close.
enum SocketOutgoing: Sendable {
    case text(String, answer: Bool)
    case close(WebSocketErrorCode, String)
}

/// What a connection's tasks share: the writer's queue, what is unanswered (requests, and bytes of
/// requests and answers not written yet), whether it said hello, when it was last active, and
/// whether a close is queued (then the reading stops: `end`).
final class SocketConnection: Sendable {
    private struct Counts {
        var unanswered = 0
        var bytes = 0
        var lastActivity = ContinuousClock.now
        var closeQueued = false
    }

    private let queue: AsyncStream<SocketOutgoing>.Continuation
    private let ending: AsyncStream<Void>.Continuation
    private let counts = Mutex(Counts())
    let greeted = Atomic<Bool>(false)
    /// Set once the client is gone: requests still queued are not run.
    let closing = Atomic<Bool>(false)

    init(send: AsyncStream<SocketOutgoing>.Continuation, end: AsyncStream<Void>.Continuation) {
        queue = send
        ending = end
    }

    /// Sends a message that answers no request.
    func send(_ text: String) {
        queue.yield(.text(text, answer: false))
    }

    /// Queues the close frame and stops the reading; later messages are not sent.
    func close(_ code: WebSocketErrorCode, _ reason: String) {
        let first = counts.withLock { counts -> Bool in
            defer { counts.closeQueued = true }
            return !counts.closeQueued
        }
        guard first else { return }
        queue.yield(.close(code, reason))
        ending.yield()
    }

    /// Ends the connection from the reading side (the client closed).
    func end() {
        ending.yield()
    }

    var closeQueued: Bool { counts.withLock { $0.closeQueued } }
    var unanswered: Int { counts.withLock { $0.unanswered } }
    var lastActivity: ContinuousClock.Instant { counts.withLock { $0.lastActivity } }

    /// A message arrived.
    func touch() {
        counts.withLock { $0.lastActivity = .now }
    }

    /// Counts a request in, unless the connection has too many requests or bytes unanswered.
    func admit(bytes: Int) -> Bool {
        counts.withLock { counts in
            guard counts.unanswered < Node.socketMaxPendingRequests, counts.bytes + bytes <= Node.socketMaxQueuedBytes
            else { return false }
            counts.unanswered += 1
            counts.bytes += bytes
            return true
        }
    }

    /// Queues the answer to an admitted request (nil: none, the client is gone); it counts as
    /// unanswered until the writer has written it.
    func answer(_ text: String?, requestBytes: Int) {
        let written = counts.withLock { counts -> Bool in
            counts.bytes -= requestBytes
            guard let text, !counts.closeQueued else {
                counts.unanswered -= 1
                return false
            }
            counts.bytes += text.utf8.count
            return true
        }
        if written, let text { queue.yield(.text(text, answer: true)) }
    }

    /// The writer wrote an answer.
    func written(_ text: String) {
        counts.withLock { counts in
            counts.unanswered -= 1
            counts.bytes -= text.utf8.count
            counts.lastActivity = .now
        }
    }
}

/// Collects a response body (the pipeline's answer, read by a WebSocket stream).
final class CollectedBody: @unchecked Sendable {
    // `@unchecked Sendable`: written by one writer, read after it finished.
    var bytes: [UInt8] = []
}

struct CollectingWriter: ResponseBodyWriter {
    let sink: CollectedBody

    mutating func write(_ buffer: ByteBuffer) async throws {
        sink.bytes += buffer.readableBytesView
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
