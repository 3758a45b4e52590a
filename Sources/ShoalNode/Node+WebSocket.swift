import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import ShoalHTTP
import ShoalModel
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
    func serveHrana(
        _ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, target: SocketTarget,
        protocolVersion: Int
    ) async {
        let (outgoing, send) = AsyncStream.makeStream(of: SocketOutgoing.self)
        let connection = SocketConnection(send: send)
        await withTaskGroup(of: Void.self) { writers in
            // One writer: whole messages, in the order they were queued, until the queue ends.
            writers.addTask {
                for await message in outgoing {
                    do {
                        switch message {
                        case .text(let text):
                            try await outbound.write(.text(text))
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
                // A connection that does not say hello in time is closed.
                let helloTimeout = configuration.connectionLimits.headerTimeout
                group.addTask {
                    try? await Task.sleep(for: helloTimeout)
                    if !Task.isCancelled, !connection.greeted.load(ordering: .relaxed) {
                        connection.send(.close(.policyViolation, "no hello within \(helloTimeout)"))
                    }
                }
                var session = SocketSession(target: target, protocolVersion: protocolVersion)
                var iterator = inbound.messages(maxSize: configuration.maxRequestBytes).makeAsyncIterator()
                while true {
                    let message: WebSocketMessage?
                    do {
                        message = try await iterator.next()
                    } catch {
                        break
                    }
                    guard let message else { break }
                    guard case .text(let text) = message else {
                        connection.send(.close(.unacceptableData, "Hrana over WebSocket takes text messages (JSON)"))
                        break
                    }
                    guard await handle(Array(text.utf8), session: &session, connection: connection, group: &group)
                    else { break }
                }
                // The client is gone (or broke the protocol): its streams end, then the hello timer.
                connection.closing.store(true, ordering: .relaxed)
                for queue in session.streams.values { queue.finish() }
                session.streams.removeAll()
                await connection.streamsDone()
                group.cancelAll()
            }
            // What was queued is written (a refusal and its close frame), then the writer ends.
            send.finish()
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
            connection.send(.close(.protocolError, "the message is not a Hrana client message (JSON with a type)"))
            return false
        }
        switch envelope.type {
        case "hello":
            return await hello(jwt: envelope.jwt, session: &session, connection: connection)
        case "request":
            guard let id = envelope.requestID, let range = RawJSON.member("request", in: bytes) else {
                connection.send(.close(.protocolError, "a request message needs a request_id and a request"))
                return false
            }
            guard session.namespace != nil else {
                connection.send(.close(.protocolError, "send a hello (with the database's token) before any request"))
                return false
            }
            request(Array(bytes[range]), id: id, session: &session, connection: connection, group: &group)
            return true
        default:
            connection.send(.close(.protocolError, "unknown message type \(envelope.type): expected hello or request"))
            return false
        }
    }

    /// `hello`: authenticates the connection (again, in `hrana2`) for the database its URL names.
    /// A refused hello is answered with `hello_error`, and the connection closed.
    private func hello(jwt: String?, session: inout SocketSession, connection: SocketConnection) async -> Bool {
        if session.protocolVersion == 1, session.namespace != nil {
            connection.send(.close(.protocolError, "hrana1 allows one hello per connection"))
            return false
        }
        do {
            let namespace = try session.target.namespace(token: jwt, node: self)
            if let current = session.namespace, current != namespace {
                throw NodeError.badRequest(
                    "the token is for \(namespace), but this connection serves \(current); open another connection")
            }
            _ = try await grant(
                token: jwt, namespace, missing: "send the database's token as the jwt of the hello message")
            session.namespace = namespace
            session.token = jwt
            connection.greeted.store(true, ordering: .relaxed)
            connection.send(.text(#"{"type":"hello_ok"}"#))
            return true
        } catch {
            connection.send(.text(Self.socketMessage(type: "hello_error", id: nil, error: Self.socketError(error))))
            connection.send(.close(.policyViolation, "hello refused"))
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
            connection.answer(id, Self.socketMessage(type: "response_error", id: id, error: (message, code)))
        }
        guard connection.admit() else {
            connection.send(
                .text(
                    Self.socketMessage(
                        type: "response_error", id: id,
                        error: (
                            "this connection has \(Self.socketMaxPendingRequests) requests unanswered; wait for their answers first",
                            "TOO_MANY_REQUESTS"
                        ))))
            return
        }
        guard let head = try? JSONDecoder().decode(Head.self, from: Data(raw)) else {
            return fail("the request is not a Hrana request (JSON with a type)")
        }
        func ok(_ type: String) {
            connection.answer(id, #"{"type":"response_ok","request_id":\#(id),"response":{"type":"\#(type)"}}"#)
        }
        switch head.type {
        case "store_sql":
            guard let sqlID = head.sqlID, let sql = head.sql else { return fail("store_sql needs a sql_id and a sql") }
            guard session.storedSQL[sqlID] == nil else { return fail("SQL text \(sqlID) is stored already") }
            guard session.storedSQL.count < Self.socketMaxStoredSQL else {
                return fail("a connection stores at most \(Self.socketMaxStoredSQL) SQL texts; close_sql some first")
            }
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
            let (work, queue) = AsyncStream.makeStream(of: SocketWork.self)
            session.streams[streamID] = queue
            queue.yield(SocketWork(id: id, kind: .open, token: session.token))
            guard let namespace = session.namespace else { return fail("send a hello first") }
            connection.streamStarted()
            group.addTask {
                await self.runSocketStream(work, namespace: namespace, connection: connection)
                connection.streamEnded()
            }
        case "close_stream":
            guard let streamID = head.streamID else { return fail("close_stream needs a stream_id") }
            guard let queue = session.streams.removeValue(forKey: streamID) else { return ok("close_stream") }
            queue.yield(SocketWork(id: id, kind: .close, token: session.token))
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
            queue.yield(SocketWork(id: id, kind: .run(raw, storedSQL: needed), token: session.token))
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
            switch item.kind {
            case .open:
                do {
                    let answer = try await socketPipeline(namespace, token: item.token, baton: nil, requests: [])
                    baton = answer.baton
                    connection.answer(
                        item.id, #"{"type":"response_ok","request_id":\#(item.id),"response":{"type":"open_stream"}}"#)
                } catch {
                    lost = "the stream could not be opened"
                    connection.answer(
                        item.id, Self.socketMessage(type: "response_error", id: item.id, error: Self.socketError(error))
                    )
                }
            case .close:
                await closeSocketStream(baton)
                baton = nil
                connection.answer(
                    item.id, #"{"type":"response_ok","request_id":\#(item.id),"response":{"type":"close_stream"}}"#)
            case .run(let raw, let needed):
                guard !connection.closing.load(ordering: .relaxed) else {
                    connection.answer(item.id, "")
                    continue
                }
                guard let current = baton else {
                    connection.answer(
                        item.id,
                        Self.socketMessage(
                            type: "response_error", id: item.id,
                            error: ("\(lost ?? "the stream is closed"): close it and open a new one", "STREAM_CLOSED")))
                    continue
                }
                var prefix: [[UInt8]] = []
                for (sqlID, sql) in needed.sorted(by: { $0.key < $1.key }) where stored[sqlID] != sql {
                    if stored[sqlID] != nil { prefix.append(Array(#"{"type":"close_sql","sql_id":\#(sqlID)}"#.utf8)) }
                    let text = String(
                        decoding: (try? WireJSON.encoder().encode(sql)) ?? Data("\"\"".utf8), as: UTF8.self)
                    prefix.append(Array(#"{"type":"store_sql","sql_id":\#(sqlID),"sql":\#(text)}"#.utf8))
                }
                do {
                    if !prefix.isEmpty {
                        // Stored first, in a pipeline of their own: SQL stored in the same pipeline
                        // is not known when the request is classified, and would count as writing.
                        let answer = try await socketPipeline(
                            namespace, token: item.token, baton: current, requests: prefix)
                        baton = answer.baton
                        if let failure = Self.socketFailure(id: item.id, results: answer.results, body: answer.body) {
                            connection.answer(item.id, failure)
                            continue
                        }
                        for (sqlID, sql) in needed { stored[sqlID] = sql }
                    }
                    guard let current = baton else { throw NodeError.invalidBaton("the stream was closed") }
                    let answer = try await socketPipeline(namespace, token: item.token, baton: current, requests: [raw])
                    baton = answer.baton
                    if baton == nil { lost = "the stream was closed" }
                    connection.answer(
                        item.id, Self.socketAnswer(id: item.id, results: answer.results, body: answer.body))
                } catch {
                    baton = nil
                    lost = "the stream was closed by an earlier failure (\(Self.socketError(error).message))"
                    connection.answer(
                        item.id, Self.socketMessage(type: "response_error", id: item.id, error: Self.socketError(error))
                    )
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

    /// A pipeline on a connection's stream: the caller's token checked again, then the pipeline as
    /// `/v2/pipeline` runs it; returns the new baton and the results' ranges in the answer.
    private func socketPipeline(
        _ namespace: Namespace, token: String?, baton: String?, requests: [[UInt8]]
    ) async throws -> (baton: String?, results: [Range<Int>], body: [UInt8]) {
        let grant = try await grant(
            token: token, namespace, missing: "send the database's token as the jwt of the hello message")
        let response = try await pipeline(
            namespace, grant: grant, authorization: token.map { "Bearer \($0)" },
            body: Self.pipelineBody(baton: baton, requests: requests), version: 2, pinned: true)
        let status = response.status
        let collector = CollectedBody()
        try await response.body.write(CollectingWriter(sink: collector))
        let body = collector.bytes
        guard status == .ok, let results = RawJSON.arrayElements("results", in: body), results.count == requests.count
        else {
            throw NodeError.unavailable(
                "the request failed (\(status.code)): \(String(decoding: body.prefix(1000), as: UTF8.self))")
        }
        let newBaton = RawJSON.member("baton", in: body).flatMap { Self.jsonString(body[$0]) }
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
        case .unnamed: throw Node.noNamespace
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
}

/// A request queued on a connection's stream.
struct SocketWork: Sendable {
    enum Kind: Sendable {
        case open
        case close
        /// A stream request as the client sent it, with the stored SQL texts it refers to.
        case run([UInt8], storedSQL: [Int32: String])
    }

    let id: Int32
    let kind: Kind
    /// The connection's token when the request arrived.
    let token: String?
}

/// What a connection sends.
enum SocketOutgoing: Sendable {
    case text(String)
    case close(WebSocketErrorCode, String)
}

/// What a connection's tasks share: the writer's queue, how many requests are unanswered, whether
/// it said hello, and how many stream tasks run.
final class SocketConnection: Sendable {
    private let queue: AsyncStream<SocketOutgoing>.Continuation
    private let pending = Atomic<Int>(0)
    private let running = Mutex<(count: Int, idle: CheckedContinuation<Void, Never>?)>((0, nil))
    let greeted = Atomic<Bool>(false)
    /// Set once the client is gone: requests still queued are not run.
    let closing = Atomic<Bool>(false)

    init(send: AsyncStream<SocketOutgoing>.Continuation) {
        queue = send
    }

    func send(_ message: SocketOutgoing) {
        queue.yield(message)
    }

    /// Counts a request in, unless the connection has too many unanswered.
    func admit() -> Bool {
        let (admitted, _) = pending.add(1, ordering: .relaxed)
        guard admitted <= Node.socketMaxPendingRequests else {
            pending.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Sends the answer to an admitted request (none once the client is gone).
    func answer(_ id: Int32, _ text: String) {
        pending.subtract(1, ordering: .relaxed)
        guard !closing.load(ordering: .relaxed) else { return }
        queue.yield(.text(text))
    }

    func streamStarted() {
        running.withLock { $0.count += 1 }
    }

    func streamEnded() {
        let waiter = running.withLock { state -> CheckedContinuation<Void, Never>? in
            state.count -= 1
            guard state.count == 0 else { return nil }
            defer { state.idle = nil }
            return state.idle
        }
        waiter?.resume()
    }

    /// Waits until every stream task has ended (their queues are finished).
    func streamsDone() async {
        await withCheckedContinuation { continuation in
            let done = running.withLock { state -> Bool in
                guard state.count > 0 else { return true }
                state.idle = continuation
                return false
            }
            if done { continuation.resume() }
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
