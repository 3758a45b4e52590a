import Foundation
import ShoalHTTP
import ShoalNode
import ShoalNodeTestSupport
import ShoalTestSupport
import Testing

/// A node's header and body deadlines, idle timeout and connection cap, against raw loopback
/// sockets that behave as slow or stuck clients do.
@Suite(.timeLimit(.minutes(2))) struct ConnectionLimitTests {
    static let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    /// The start of a request whose head never ends: each byte after it is one more header byte.
    static let endlessHead = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: "

    /// Deadlines of 1 s; the idle timeout stays long, so only a deadline can close a connection
    /// within the tests' waits.
    static func quickDeadlines(_ configuration: inout NodeConfiguration) {
        configuration.connectionLimits = ConnectionLimits(
            headerTimeout: .seconds(2), bodyTimeout: .seconds(2), idleTimeout: .seconds(60), maxConnections: 100)
    }

    static func port(_ node: LiveNode) throws -> Int {
        try #require(URL(string: node.url)?.port)
    }

    @Test func slowlorisConnectionsAreClosedAtTheHeaderTimeout() async throws {
        try await LiveNode.with(Self.quickDeadlines) { node in
            let port = try Self.port(node)
            let opened = ContinuousClock.now
            var stuck: [RawConnection] = []
            for _ in 0..<20 {
                let connection = try RawConnection(port: port)
                #expect(connection.send("GET /heal"))
                stuck.append(connection)
            }
            // The node answers others while they hang.
            #expect(try await node.request("GET", "/health").status == 200)
            for connection in stuck {
                let closed = await connection.closedByServer(within: .seconds(10))
                #expect(closed != nil, "a connection with half a request line is still open after 10 s")
                if let closed { #expect(closed - opened >= .milliseconds(1800)) }
            }
            #expect(try await node.request("GET", "/health").status == 200)
        }
    }

    @Test func aClientTricklingItsHeadIsClosedAtTheHeaderTimeout() async throws {
        try await LiveNode.with(Self.quickDeadlines) { node in
            let connection = try RawConnection(port: Self.port(node))
            let opened = ContinuousClock.now
            // A byte every 200 ms: never idle, never done.
            let closed = await connection.trickle(Self.endlessHead, every: .milliseconds(200), within: .seconds(10))
            let when = try #require(closed, "a client trickling its head is still connected after 10 s")
            #expect(when - opened >= .milliseconds(1800))
            #expect(try await node.request("GET", "/health").status == 200)
        }
    }

    @Test func aKeptAliveConnectionWaitsPastTheHeaderTimeoutButNotItsNextHead() async throws {
        try await LiveNode.with(Self.quickDeadlines) { node in
            let connection = try RawConnection(port: Self.port(node))
            #expect(connection.send(Self.request))
            #expect(await connection.responseHead(within: .seconds(20))?.hasPrefix("HTTP/1.1 200") == true)
            // Between requests only the idle timeout (60 s here) runs, not the 2 s header deadline.
            #expect(await connection.closedByServer(within: .milliseconds(3000)) == nil)
            #expect(connection.send(Self.request))
            #expect(await connection.responseHead(within: .seconds(20))?.hasPrefix("HTTP/1.1 200") == true)
            // The next request's first byte starts the header deadline again.
            let started = ContinuousClock.now
            let closed = await connection.trickle(Self.endlessHead, every: .milliseconds(200), within: .seconds(10))
            let when = try #require(closed, "a kept-alive connection trickling its next head is open after 10 s")
            #expect(when - started >= .milliseconds(1800))
        }
    }

    @Test func aBodyThatStallsIsClosedAtTheBodyTimeout() async throws {
        try await LiveNode.with(Self.quickDeadlines) { node in
            let connection = try RawConnection(port: Self.port(node))
            let sent = ContinuousClock.now
            #expect(
                connection.send(
                    "POST /v1/execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{\"stmt\":"))
            let closed = await connection.closedByServer(within: .seconds(10))
            let when = try #require(closed, "a request whose body stalled is still open after 10 s")
            #expect(when - sent >= .milliseconds(1800))
            #expect(try await node.request("GET", "/health").status == 200)
        }
    }

    @Test func connectionsBeyondTheCapWaitUntilAnotherCloses() async throws {
        try await LiveNode.with({ $0.connectionLimits.maxConnections = 2 }) { node in
            let port = try Self.port(node)
            // Two connections, each served before the next one opens (so the count is exact).
            var held: [RawConnection] = []
            for _ in 0..<2 {
                let connection = try RawConnection(port: port)
                #expect(connection.send(Self.request))
                #expect(await connection.responseHead(within: .seconds(20))?.hasPrefix("HTTP/1.1 200") == true)
                held.append(connection)
            }
            let third = try RawConnection(port: port)
            #expect(third.send(Self.request))
            #expect(await third.responseHead(within: .seconds(1)) == nil, "a connection past the cap was served")
            // The connections within the cap are still served.
            #expect(held[1].send(Self.request))
            #expect(await held[1].responseHead(within: .seconds(20))?.hasPrefix("HTTP/1.1 200") == true)
            // One goes: the waiting one is taken and answered.
            held[0].hangUp()
            #expect(await third.responseHead(within: .seconds(20))?.hasPrefix("HTTP/1.1 200") == true)
        }
    }

    @Test func limitsDefaultToTheDocumentedValues() {
        let limits = NodeConfiguration(dataDirectory: "/nonexistent").connectionLimits
        #expect(limits.headerTimeout == .seconds(10))
        #expect(limits.bodyTimeout == .seconds(60))
        #expect(limits.maxConnections == 10_000)
        // Longer than the longest `/sync?wait_ms=` (60 s).
        #expect(limits.idleTimeout > .seconds(60))
    }
}
