import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import ShoalModel
import ShoalNodeTestSupport
import ShoalTestSupport
import Synchronization
import Testing

@testable import ShoalNode

/// Hrana over WebSocket against a real node on loopback, with a real WebSocket client.
@Suite(.timeLimit(.minutes(2))) struct NodeWebSocketTests {
    /// One client connection: sends JSON messages, reads the server's in order.
    struct Socket {
        var inbound: WebSocketInboundStream.AsyncIterator
        let outbound: WebSocketOutboundWriter

        func send(_ json: String) async throws {
            try await outbound.write(.text(json))
        }

        /// The next message as JSON, or nil when the server closed the connection.
        mutating func receive() async throws -> [String: Any]? {
            guard let message = try await inbound.nextMessage(maxSize: 1 << 24) else { return nil }
            guard case .text(let text) = message else { throw NodeTestError("a binary message: \(message)") }
            guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                throw NodeTestError("not a JSON object: \(text)")
            }
            return object
        }

        /// Sends a request and reads the next message (the tests keep one request in flight).
        mutating func request(_ id: Int, _ request: String) async throws -> [String: Any] {
            try await send(#"{"type":"request","request_id":\#(id),"request":\#(request)}"#)
            guard let answer = try await receive() else { throw NodeTestError("closed instead of answering \(id)") }
            #expect(answer["request_id"] as? Int == id)
            return answer
        }
    }

    /// Connects to `url` offering `protocols`, runs `body` on the connection; returns the close
    /// frame the server sent, if any. A failure inside `body` is rethrown.
    @discardableResult
    static func connect(
        _ url: String, protocols: [String] = ["hrana2"], _ body: @escaping @Sendable (inout Socket) async throws -> Void
    ) async throws -> WebSocketCloseFrame? {
        let failure = Mutex<(any Error)?>(nil)
        var configuration = WebSocketClientConfiguration()
        if !protocols.isEmpty {
            configuration.additionalHeaders[.secWebSocketProtocol] = protocols.joined(separator: ", ")
        }
        let close = try await WebSocketClient.connect(
            url: url, configuration: configuration, logger: Logger(label: "shoal.test.ws")
        ) { inbound, outbound, _ in
            var socket = Socket(inbound: inbound.makeAsyncIterator(), outbound: outbound)
            do {
                try await body(&socket)
            } catch {
                failure.withLock { $0 = error }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        return close
    }

    static func wsURL(_ node: LiveNode, _ path: String) -> String {
        node.url.replacingOccurrences(of: "http://", with: "ws://") + path
    }

    static func value(_ answer: [String: Any]) -> Any? {
        let response = answer["response"] as? [String: Any]
        let result = response?["result"] as? [String: Any]
        let rows = result?["rows"] as? [[[String: Any]]]
        return rows?.first?.first?["value"]
    }

    @Test func streamsRunStatementsBatchesStoredSQLAndTransactions() async throws {
        try await NodeAuthTests.withSecuredNode { node, signer in
            let token = try signer.token(["id": "acme/app"])
            try await Self.connect(Self.wsURL(node, "/db/acme/app")) { socket in
                try await socket.send(#"{"type":"hello","jwt":"\#(token)"}"#)
                #expect(try await socket.receive()?["type"] as? String == "hello_ok")
                let opened = try await socket.request(1, #"{"type":"open_stream","stream_id":1}"#)
                #expect(opened["type"] as? String == "response_ok")
                let insert = try await socket.request(
                    2,
                    #"{"type":"execute","stream_id":1,"stmt":{"sql":"INSERT INTO t VALUES (?)","args":[{"type":"integer","value":"7"}],"want_rows":false}}"#
                )
                let inserted = (insert["response"] as? [String: Any])?["result"] as? [String: Any]
                #expect(inserted?["affected_row_count"] as? Int == 1)
                let count = try await socket.request(
                    3, #"{"type":"execute","stream_id":1,"stmt":{"sql":"SELECT count(*) FROM t"}}"#)
                #expect(Self.value(count) as? String == "1")

                // Stored SQL is the connection's, usable on any of its streams.
                let stored = try await socket.request(
                    4, #"{"type":"store_sql","sql_id":9,"sql":"SELECT sum(x) FROM t"}"#)
                #expect(stored["type"] as? String == "response_ok")
                let sum = try await socket.request(5, #"{"type":"execute","stream_id":1,"stmt":{"sql_id":9}}"#)
                #expect(Self.value(sum) as? String == "7")

                // A transaction on stream 1 is not seen by stream 2 until it commits.
                _ = try await socket.request(6, #"{"type":"open_stream","stream_id":2}"#)
                let begin = try await socket.request(
                    7, #"{"type":"sequence","stream_id":1,"sql":"BEGIN; INSERT INTO t VALUES (5);"}"#)
                #expect(begin["type"] as? String == "response_ok")
                let outside = try await socket.request(8, #"{"type":"execute","stream_id":2,"stmt":{"sql_id":9}}"#)
                #expect(Self.value(outside) as? String == "7")
                let batch = try await socket.request(
                    9,
                    #"{"type":"batch","stream_id":1,"batch":{"steps":[{"stmt":{"sql":"COMMIT"}},{"stmt":{"sql_id":9}}]}}"#
                )
                let steps =
                    (((batch["response"] as? [String: Any])?["result"] as? [String: Any])?["step_results"]) as? [Any]
                #expect(steps?.count == 2)
                let after = try await socket.request(10, #"{"type":"execute","stream_id":2,"stmt":{"sql_id":9}}"#)
                #expect(Self.value(after) as? String == "12")

                // SQL errors are the request's; the stream keeps working.
                let bad = try await socket.request(11, #"{"type":"execute","stream_id":2,"stmt":{"sql":"SELEC 1"}}"#)
                #expect(bad["type"] as? String == "response_error")
                #expect(((bad["error"] as? [String: Any])?["message"] as? String)?.contains("syntax") == true)
                let describe = try await socket.request(12, #"{"type":"describe","stream_id":2,"sql":"SELECT ?1"}"#)
                #expect(
                    (((describe["response"] as? [String: Any])?["result"] as? [String: Any])?["params"] as? [Any])?
                        .count == 1)

                // Requests on a stream that is not open are refused, and closing is idempotent.
                let unknown = try await socket.request(
                    13, #"{"type":"execute","stream_id":5,"stmt":{"sql":"SELECT 1"}}"#)
                #expect(((unknown["error"] as? [String: Any])?["message"] as? String)?.contains("open_stream") == true)
                #expect(
                    try await socket.request(14, #"{"type":"close_stream","stream_id":1}"#)["type"] as? String
                        == "response_ok")
                #expect(
                    try await socket.request(15, #"{"type":"close_stream","stream_id":1}"#)["type"] as? String
                        == "response_ok")
                let closed = try await socket.request(
                    16, #"{"type":"execute","stream_id":1,"stmt":{"sql":"SELECT 1"}}"#)
                #expect(closed["type"] as? String == "response_error")
                try await socket.outbound.close(.normalClosure, reason: nil)
            }
            // The connection's streams are gone with it (closed, not parked).
            #expect(node.node.streams.count == 0)
            let check = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: #"{"stmt":{"sql":"SELECT count(*) FROM t"}}"#,
                headers: ["Authorization": "Bearer \(token)"])
            #expect(check.body.contains(#""value":"2""#))
        }
    }

    @Test func unauthenticatedForeignAndWrongDatabaseHellosAreRefused() async throws {
        try await NodeAuthTests.withSecuredNode { node, signer in
            let url = Self.wsURL(node, "/db/acme/app")
            // No token.
            let none = try await Self.connect(url) { socket in
                try await socket.send(#"{"type":"hello","jwt":null}"#)
                let answer = try await socket.receive()
                #expect(answer?["type"] as? String == "hello_error")
                let error = answer?["error"] as? [String: Any]
                #expect((error?["message"] as? String)?.contains("jwt") == true)
                #expect(error?["code"] as? String == "UNAUTHORIZED")
                #expect(try await socket.receive() == nil)
            }
            #expect(none?.closeCode == .policyViolation)
            // A token of another database of the same organization, and of another organization.
            for claims in [["id": "acme/other"], ["id": "evil/app"], ["gid": "evil/group"]] {
                let token = try signer.token(claims)
                try await Self.connect(url) { socket in
                    try await socket.send(#"{"type":"hello","jwt":"\#(token)"}"#)
                    let answer = try await socket.receive()
                    #expect(answer?["type"] as? String == "hello_error")
                    #expect(try await socket.receive() == nil)
                }
            }
            // A forged token (another key).
            let forged = try TokenSigner().token(["id": "acme/app"])
            try await Self.connect(url) { socket in
                try await socket.send(#"{"type":"hello","jwt":"\#(forged)"}"#)
                let answer = try await socket.receive()
                #expect(((answer?["error"] as? [String: Any])?["message"] as? String)?.contains("signature") == true)
            }
            // Without a database named, a missing or forged token is refused as a token first (as
            // over HTTP), before the hint about naming a database; a valid one gets the hint.
            for (jwt, expected) in [("null", "UNAUTHORIZED"), (#""\#(forged)""#, "UNAUTHORIZED")] {
                try await Self.connect(Self.wsURL(node, "/")) { socket in
                    try await socket.send(#"{"type":"hello","jwt":\#(jwt)}"#)
                    let answer = try await socket.receive()
                    #expect(answer?["type"] as? String == "hello_error")
                    #expect((answer?["error"] as? [String: Any])?["code"] as? String == expected, "\(jwt)")
                }
            }
            let valid = try signer.token(["id": "acme/app"])
            try await Self.connect(Self.wsURL(node, "/")) { socket in
                try await socket.send(#"{"type":"hello","jwt":"\#(valid)"}"#)
                let answer = try await socket.receive()
                #expect(((answer?["error"] as? [String: Any])?["message"] as? String)?.contains("/db/") == true)
            }
            // A request before any hello breaks the protocol: the connection is closed.
            let early = try await Self.connect(url) { socket in
                try await socket.send(
                    #"{"type":"request","request_id":1,"request":{"type":"open_stream","stream_id":1}}"#)
                #expect(try await socket.receive() == nil)
            }
            #expect(early?.closeCode == .protocolError)
            // Nothing ran: the table is still empty, and no stream is left.
            #expect(node.node.streams.count == 0)
            let check = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: #"{"stmt":{"sql":"SELECT count(*) FROM t"}}"#,
                headers: ["Authorization": "Bearer \(try signer.token(["id": "acme/app"]))"])
            #expect(check.body.contains(#""value":"0""#))
        }
    }

    @Test func aRevokedTokenIsRefusedOnTheNextRequestOfAnOpenConnection() async throws {
        let signer = TokenSigner()
        let verifier = try TokenVerifier(keys: ["k1": signer.publicKey])
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.authentication = .tokens(verifier, adminToken: "admin-secret")
        }) { node in
            let token = try signer.token(["id": "acme/app", "jti": "t-1"])
            try await Self.connect(Self.wsURL(node, "/db/acme/app")) { socket in
                try await socket.send(#"{"type":"hello","jwt":"\#(token)"}"#)
                #expect(try await socket.receive()?["type"] as? String == "hello_ok")
                _ = try await socket.request(1, #"{"type":"open_stream","stream_id":1}"#)
                let before = try await socket.request(
                    2, #"{"type":"execute","stream_id":1,"stmt":{"sql":"SELECT 1"}}"#)
                #expect(before["type"] as? String == "response_ok")
                try verifier.update(
                    with: Platform.TokenPolicy(
                        keys: [Platform.JSONWebKey(kid: "k1", x: Base64URL.encode(signer.publicKey))],
                        revokedJti: ["t-1"], notBefore: [:]))
                let after = try await socket.request(3, #"{"type":"execute","stream_id":1,"stmt":{"sql":"SELECT 1"}}"#)
                #expect(after["type"] as? String == "response_error")
                #expect((after["error"] as? [String: Any])?["code"] as? String == "UNAUTHORIZED")
                // A new hello (hrana2) with a valid token carries on, on the same stream.
                let renewed = try signer.token(["id": "acme/app", "jti": "t-2"])
                try await socket.send(#"{"type":"hello","jwt":"\#(renewed)"}"#)
                #expect(try await socket.receive()?["type"] as? String == "hello_ok")
                let again = try await socket.request(4, #"{"type":"execute","stream_id":1,"stmt":{"sql":"SELECT 1"}}"#)
                #expect(again["type"] as? String == "response_ok")
                #expect(node.node.streams.count == 1)
            }
            #expect(node.node.streams.count == 0)
        }
    }

    @Test func streamsOfAConnectionDoNotExpireWhenIdleAndAreCapped() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.streamLimits = .init(perToken: 1000, perOrganization: 1000, perNode: 1000)
        }) { node in
            try await Self.connect(Self.wsURL(node, "/db/acme/idle"), protocols: ["hrana3", "hrana2"]) { socket in
                try await socket.send(#"{"type":"hello","jwt":null}"#)
                #expect(try await socket.receive()?["type"] as? String == "hello_ok")
                _ = try await socket.request(1, #"{"type":"open_stream","stream_id":1}"#)
                _ = try await socket.request(2, #"{"type":"execute","stream_id":1,"stmt":{"sql":"BEGIN"}}"#)
                // An upkeep an hour later expires idle HTTP streams, not this one.
                #expect(node.node.streams.expire(now: .now.advanced(by: .seconds(3600))).isEmpty)
                let still = try await socket.request(
                    3, #"{"type":"execute","stream_id":1,"stmt":{"sql":"COMMIT"}}"#)
                #expect(still["type"] as? String == "response_ok")
                // Past the cap on streams per connection, open_stream is refused.
                var refused: [String: Any]?
                for id in 2...(Node.socketMaxStreams + 1) {
                    let answer = try await socket.request(10 + id, #"{"type":"open_stream","stream_id":\#(id)}"#)
                    if answer["type"] as? String == "response_error" {
                        refused = answer
                        #expect(id == Node.socketMaxStreams + 1)
                        break
                    }
                }
                #expect((refused?["error"] as? [String: Any])?["code"] as? String == "TOO_MANY_REQUESTS")
                // Malformed requests get errors that say what is wrong; unknown ones too.
                let malformed = try await socket.request(900, #"{"type":"execute","stream_id":1,"stmt":{}}"#)
                #expect(malformed["type"] as? String == "response_error")
                let cursor = try await socket.request(901, #"{"type":"open_cursor","stream_id":1,"cursor_id":1}"#)
                #expect(((cursor["error"] as? [String: Any])?["message"] as? String)?.contains("hrana2") == true)
            }
            #expect(node.node.streams.count == 0)
        }
    }

    @Test func anUpgradeOfferingNoHranaSubprotocolIsRefused() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            await #expect(throws: (any Error).self) {
                try await Self.connect(Self.wsURL(node, "/db/acme/app"), protocols: ["graphql-ws"]) { _ in }
            }
            // Without a path naming a database, the hello says how to name one.
            try await Self.connect(Self.wsURL(node, "/")) { socket in
                try await socket.send(#"{"type":"hello","jwt":null}"#)
                let answer = try await socket.receive()
                #expect(answer?["type"] as? String == "hello_error")
                #expect(((answer?["error"] as? [String: Any])?["message"] as? String)?.contains("/db/") == true)
            }
        }
    }

    @Test func connectionsAreCappedPerToken() async throws {
        let signer = TokenSigner()
        let verifier = try TokenVerifier(keys: ["k1": signer.publicKey])
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.authentication = .tokens(verifier, adminToken: "admin-secret")
            $0.webSocketLimits = .init(perToken: 1, perOrganization: 10, perNode: 10)
        }) { node in
            let url = Self.wsURL(node, "/db/acme/app")
            let first = try signer.token(["id": "acme/app", "jti": "a"])
            let other = try signer.token(["id": "acme/app", "jti": "b"])
            try await Self.connect(url) { socket in
                try await socket.send(#"{"type":"hello","jwt":"\#(first)"}"#)
                #expect(try await socket.receive()?["type"] as? String == "hello_ok")
                // While this one is open, a second connection of the same token is refused...
                try await Self.connect(url) { second in
                    try await second.send(#"{"type":"hello","jwt":"\#(first)"}"#)
                    let answer = try await second.receive()
                    #expect(answer?["type"] as? String == "hello_error")
                    #expect((answer?["error"] as? [String: Any])?["code"] as? String == "TOO_MANY_REQUESTS")
                }
                // ...and one of another token is not.
                try await Self.connect(url) { third in
                    try await third.send(#"{"type":"hello","jwt":"\#(other)"}"#)
                    #expect(try await third.receive()?["type"] as? String == "hello_ok")
                }
            }
        }
    }

    @Test func anIdleConnectionIsClosedAndItsStreamsWithIt() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.connectionLimits.idleTimeout = .seconds(1)
        }) { node in
            let close = try await Self.connect(Self.wsURL(node, "/db/acme/idle")) { socket in
                try await socket.send(#"{"type":"hello","jwt":null}"#)
                #expect(try await socket.receive()?["type"] as? String == "hello_ok")
                _ = try await socket.request(1, #"{"type":"open_stream","stream_id":1}"#)
                _ = try await socket.request(2, #"{"type":"execute","stream_id":1,"stmt":{"sql":"BEGIN"}}"#)
                // Nothing more is sent: the node closes the connection (the event waited for).
                #expect(try await socket.receive() == nil)
            }
            #expect(close?.closeCode == .goingAway)
            #expect(node.node.streams.count == 0)
        }
    }

    @Test func aConnectionWithoutHelloIsClosedAtTheHeaderTimeout() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.connectionLimits.headerTimeout = .seconds(1)
        }) { node in
            let close = try await Self.connect(Self.wsURL(node, "/db/acme/app")) { socket in
                let message = try await socket.receive()
                #expect(message == nil)
            }
            #expect(close?.closeCode == .policyViolation)
        }
    }

    @Test func aClientThatQueuesTooManyUnansweredRequestsIsClosed() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            _ = try await node.pipeline(
                "acme/flood",
                #"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"CREATE TABLE t (x)"}},{"type":"close"}]}"#)
            // An HTTP stream holds the write turn, so the socket's first write waits and every
            // request behind it on its stream stays unanswered.
            let holder = try await node.pipeline(
                "acme/flood", #"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"BEGIN IMMEDIATE"}}]}"#)
            let baton = try #require(holder.json.baton)
            let close = try await Self.connect(Self.wsURL(node, "/db/acme/flood")) { socket in
                try await socket.send(#"{"type":"hello","jwt":null}"#)
                #expect(try await socket.receive()?["type"] as? String == "hello_ok")
                _ = try await socket.request(1, #"{"type":"open_stream","stream_id":1}"#)
                for id in 2...(Node.socketMaxPendingRequests + 2) {
                    try await socket.send(
                        #"{"type":"request","request_id":\#(id),"request":{"type":"execute","stream_id":1,"stmt":{"sql":"INSERT INTO t VALUES (1)"}}}"#
                    )
                }
                while try await socket.receive() != nil {}
            }
            #expect(close?.closeCode == .policyViolation)
            let released = try await node.pipeline(
                "acme/flood",
                #"{"baton":"\#(baton)","requests":[{"type":"execute","stmt":{"sql":"ROLLBACK"}},{"type":"close"}]}"#)
            #expect(released.status == 200)
            // Nothing the closed connection queued ran after it was closed.
            let count = try await node.pipeline(
                "acme/flood",
                #"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"SELECT count(*) FROM t"}},{"type":"close"}]}"#
            )
            let rows =
                (count.json.results.first?["response"] as? [String: Any]).flatMap { $0["result"] as? [String: Any] }?[
                    "rows"] as? [[[String: Any]]]
            #expect(rows?.first?.first?["value"] as? String == "0")
        }
    }

    @Test func anUpgradeRequestWithABodyIsRefused() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            let port = try #require(URL(string: node.url)?.port)
            let connection = try RawConnection(port: port)
            #expect(
                connection.send(
                    "GET /db/acme/app HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: hrana2\r\nContent-Length: 1\r\n\r\nx"
                ))
            let head = await connection.responseHead(within: .seconds(20))
            #expect(head?.hasPrefix("HTTP/1.1 400") == true)
        }
    }
}
