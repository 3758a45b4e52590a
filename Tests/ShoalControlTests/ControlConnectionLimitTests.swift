import Foundation
import Logging
import ShoalControl
import ShoalHTTP
import ShoalTestSupport
import Testing

/// The control plane's header deadline and connection cap, against raw loopback sockets (the
/// node's suite covers the body deadline and kept-alive connections; both servers share the code).
@Suite("Control plane connection limits", .timeLimit(.minutes(2)))
struct ControlConnectionLimitTests {
    static let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    /// Runs `body` with the port of a control plane over a fresh SQLite catalog under `limits`.
    static func withControlPlane(_ limits: ConnectionLimits, _ body: (Int) async throws -> Void) async throws {
        let scratch = try TemporaryDirectory()
        let directory = scratch.path
        defer { withExtendedLifetime(scratch) {} }
        let store = try SQLiteCatalogStore(path: directory + "/catalog.db")
        do {
            try await store.migrate()
            var logger = Logger(label: "shoal.control.test.limits")
            logger.logLevel = .critical
            let control = ControlPlane(catalog: Catalog(store: store), connectionLimits: limits, logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                let port = try await LiveCluster.start(
                    "control plane server", { control.application(host: "127.0.0.1", port: 0, onRunning: $0) },
                    in: &group)
                try await body(port)
                group.cancelAll()
            }
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }

    static func health(_ port: Int) async throws -> Int {
        try await LiveCluster.send("GET", "http://127.0.0.1:\(port)/health", token: nil).status
    }

    @Test func slowlorisConnectionsAreClosedAtTheHeaderTimeout() async throws {
        let limits = ConnectionLimits(
            headerTimeout: .seconds(2), bodyTimeout: .seconds(2), idleTimeout: .seconds(60), maxConnections: 100)
        try await Self.withControlPlane(limits) { port in
            let opened = ContinuousClock.now
            var stuck: [RawConnection] = []
            for _ in 0..<20 {
                let connection = try RawConnection(port: port)
                #expect(connection.send("GET /heal"))
                stuck.append(connection)
            }
            // One more that never goes idle: a header byte every 200 ms.
            let trickler = try RawConnection(port: port)
            async let trickled = trickler.trickle(
                "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: ", every: .milliseconds(200),
                within: .seconds(10))
            // The control plane answers others while they hang.
            #expect(try await Self.health(port) == 200)
            for connection in stuck {
                let closed = await connection.closedByServer(within: .seconds(10))
                #expect(closed != nil, "a connection with half a request line is still open after 10 s")
                if let closed { #expect(closed - opened >= .milliseconds(1800)) }
            }
            let closed = await trickled
            #expect(closed != nil, "a client trickling its head is still connected after 10 s")
            if let closed { #expect(closed - opened >= .milliseconds(1800)) }
            #expect(try await Self.health(port) == 200)
        }
    }

    @Test func connectionsBeyondTheCapWaitUntilAnotherCloses() async throws {
        try await Self.withControlPlane(ConnectionLimits(maxConnections: 1)) { port in
            let first = try RawConnection(port: port)
            #expect(first.send(Self.request))
            #expect(await first.responseHead(within: .seconds(20))?.hasPrefix("HTTP/1.1 200") == true)
            let second = try RawConnection(port: port)
            #expect(second.send(Self.request))
            #expect(await second.responseHead(within: .seconds(1)) == nil, "a connection past the cap was served")
            first.hangUp()
            #expect(await second.responseHead(within: .seconds(20))?.hasPrefix("HTTP/1.1 200") == true)
        }
    }

    @Test func limitsDefaultToTheDocumentedValues() {
        let limits = ConnectionLimits.controlPlane
        #expect(limits.headerTimeout == .seconds(10))
        #expect(limits.bodyTimeout == .seconds(60))
        #expect(limits.idleTimeout == .seconds(75))
        #expect(limits.maxConnections == 2_000)
    }
}
