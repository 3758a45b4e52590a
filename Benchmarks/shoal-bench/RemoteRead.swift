import ArgumentParser
import CBenchBaseline
import Foundation
import Hummingbird
import Logging
import ShoalNode
import ShoalSQLite

/// `remote-read`: a point read over HTTP (Hrana v3 pipeline on one stream, keep-alive, loopback)
/// and over Hrana over WebSocket against a live node in this process, next to the same read done
/// locally and to a constant route of the same server.
struct RemoteRead: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remote-read",
        abstract: "Point reads over Hrana v3 on loopback vs. the same read through ShoalSQLite locally.")

    @Option(help: "Rows in the table.")
    var rows = 100_000

    @Option(help: "Timed remote reads.")
    var reads = 20_000

    @Option(help: "Seed for the random keys.")
    var seed: UInt64 = 42

    static let sql = "SELECT value, n FROM kv WHERE id = ?"

    @Option(help: "Connections of the concurrent phase (each its own client thread and stream).")
    var connections = 8

    @Option(help: "PostgreSQL URL for the baseline point read (also SHOAL_BENCH_POSTGRES_URL); none skips it.")
    var postgres: String?

    func run() async throws {
        let (rows, reads, seed, connections) = (self.rows, self.reads, self.seed, self.connections)
        var baseline: PostgresPointRead.Baseline?
        if let url = postgres ?? ProcessInfo.processInfo.environment["SHOAL_BENCH_POSTGRES_URL"] {
            baseline = try await PostgresPointRead.measure(
                url: url, rows: rows, reads: reads, seed: seed, connections: connections)
        } else {
            FileHandle.standardError.write(Data("remote-read: no PostgreSQL URL given; skipped its baseline\n".utf8))
        }
        let postgres = baseline
        let bare = try await Self.bareHummingbird(requests: reads)
        try await InProcessNode.run(name: "remote-read") { port, directory in
            // The clients block, so they run on threads of their own: not on the concurrency
            // pool's, which the server's handlers need.
            try await Self.onThread {
                try Self.measure(
                    port: port, directory: directory + "/node", rows: rows, reads: reads, seed: seed,
                    postgres: postgres,
                    bare: bare)
            }
            try await Self.onThread {
                try Self.measureConcurrent(
                    port: port, connections: connections, reads: reads, seed: seed, rows: rows, postgres: postgres)
            }
        }
    }

    /// A constant route on a bare Hummingbird application (no middleware, no connection limits)
    /// in this process: what the HTTP stack and this machine cost before anything of the node's.
    static func bareHummingbird(requests: Int) async throws -> DurationStats {
        let router = Router()
        router.get("version") { _, _ in "bare" }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "shoal.bench.bare")
        logger.logLevel = .critical
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        return try await withThrowingTaskGroup(of: DurationStats?.self) { group in
            group.addTask {
                try await app.run()
                return nil
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw BenchError("the bare server did not start") }
            let box = StatsBox()
            try await Self.onThread {
                let client = try LoopbackHTTPClient(port: port)
                var samples = [UInt64](repeating: 0, count: requests)
                for index in samples.indices {
                    let start = shoal_bench_now_ns()
                    _ = try client.post("/version", body: [], method: "GET")
                    samples[index] = shoal_bench_now_ns() - start
                }
                box.set(DurationStats(nanoseconds: samples))
            }
            group.cancelAll()
            guard let stats = box.value else { throw BenchError("no samples from the bare server") }
            return stats
        }
    }

    /// Runs blocking `work` on a new thread and waits for it.
    static func onThread(_ work: @escaping @Sendable () throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                do {
                    try work()
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.start()
        }
    }

    /// Reads per second with `connections` clients at once, over HTTP and over WebSocket.
    static func measureConcurrent(
        port: Int, connections: Int, reads: Int, seed: UInt64, rows: Int, postgres: PostgresPointRead.Baseline?
    ) throws {
        var constantRate = 0.0
        for transport in ["constant_route", "hrana_v3", "websocket_hrana2"] {
            let group = DispatchGroup()
            let failures = FailureBox()
            let perConnection = max(1, reads / connections)
            let start = shoal_bench_now_ns()
            for connection in 0..<connections {
                group.enter()
                Thread {
                    defer { group.leave() }
                    do {
                        var generator = SeededGenerator(seed: seed &+ UInt64(connection))
                        let reader = try PointReader(port: port, transport: transport)
                        for _ in 0..<perConnection {
                            try reader.read(Int64.random(in: 1...Int64(rows), using: &generator))
                        }
                    } catch {
                        failures.record(error)
                    }
                }.start()
            }
            group.wait()
            if let error = failures.first { throw error }
            let seconds = Double(shoal_bench_now_ns() - start) / 1e9
            let rate = Double(perConnection * connections) / seconds
            guard transport != "constant_route" else {
                constantRate = rate
                continue
            }
            let metric = "\(transport)_reads_per_second_\(connections)_connections"
            BenchResult(
                bench: "remote-read", metric: metric, value: rate, unit: "1/s", baseline: constantRate,
                baselineName: "constant_route_requests_per_second_\(connections)_connections"
            ).print()
            if let postgres {
                BenchResult(
                    bench: "remote-read", metric: metric, value: rate, unit: "1/s",
                    baseline: postgres.concurrentReadsPerSecond,
                    baselineName: "postgresql_reads_per_second_\(connections)_connections"
                ).print()
            }
        }
    }

    static func measure(
        port: Int, directory: String, rows: Int, reads: Int, seed: UInt64, postgres: PostgresPointRead.Baseline?,
        bare: DurationStats
    ) throws {
        let client = try LoopbackHTTPClient(port: port)
        let path = "/db/bench/kv/v3/pipeline"
        func pipeline(_ json: String) throws -> [String: Any] {
            let body = try client.post(path, body: Array(json.utf8))
            return try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] ?? [:]
        }
        _ = try pipeline(
            #"{"baton":null,"requests":[{"type":"sequence","sql":"CREATE TABLE kv (id INTEGER PRIMARY KEY, value TEXT NOT NULL, n INTEGER NOT NULL); WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < \#(rows)) INSERT INTO kv SELECT i, 'value-' || i, i * 7 FROM s"},{"type":"close"}]}"#
        )
        var generator = SeededGenerator(seed: seed)
        let keys = (0..<reads).map { _ in Int64.random(in: 1...Int64(rows), using: &generator) }

        // Remote: one stream, one pipeline per read, the baton carried from answer to request.
        var baton = "null"
        var remote = [UInt64](repeating: 0, count: keys.count)
        let remoteStart = shoal_bench_now_ns()
        for (index, key) in keys.enumerated() {
            let start = shoal_bench_now_ns()
            let answer = try pipeline(
                #"{"baton":\#(baton),"requests":[{"type":"execute","stmt":{"sql":"\#(Self.sql)","args":[{"type":"integer","value":"\#(key)"}]}}]}"#
            )
            remote[index] = shoal_bench_now_ns() - start
            guard let next = answer["baton"] as? String else { throw BenchError("no baton in \(answer)") }
            baton = "\"\(next)\""
        }
        let remoteSeconds = Double(shoal_bench_now_ns() - remoteStart) / 1e9

        // Baseline of the HTTP server itself: a constant route (`GET /version`) on the same connection.
        var constant = [UInt64](repeating: 0, count: keys.count)
        for index in keys.indices {
            let start = shoal_bench_now_ns()
            _ = try client.post("/version", body: [], method: "GET")
            constant[index] = shoal_bench_now_ns() - start
        }

        // Hrana over WebSocket: one connection, one stream, one execute request per read.
        let socket = try LoopbackHTTPClient(port: port)
        try socket.upgradeToWebSocket("/db/bench/kv", subprotocol: "hrana2")
        try socket.sendText(#"{"type":"hello","jwt":null}"#)
        guard String(decoding: try socket.receiveText(), as: UTF8.self).contains("hello_ok") else {
            throw BenchError("the hello was refused")
        }
        try socket.sendText(#"{"type":"request","request_id":0,"request":{"type":"open_stream","stream_id":1}}"#)
        _ = try socket.receiveText()
        var overSocket = [UInt64](repeating: 0, count: keys.count)
        let socketStart = shoal_bench_now_ns()
        for (index, key) in keys.enumerated() {
            let start = shoal_bench_now_ns()
            try socket.sendText(
                #"{"type":"request","request_id":\#(index + 1),"request":{"type":"execute","stream_id":1,"stmt":{"sql":"\#(Self.sql)","args":[{"type":"integer","value":"\#(key)"}]}}}"#
            )
            let answer = try socket.receiveText()
            overSocket[index] = shoal_bench_now_ns() - start
            guard answer.starts(with: Array(#"{"type":"response_ok""#.utf8)) else {
                throw BenchError("the read failed: \(String(decoding: answer.prefix(300), as: UTF8.self))")
            }
        }
        let socketSeconds = Double(shoal_bench_now_ns() - socketStart) / 1e9

        // Local: the same read through ShoalSQLite on the node's file, autocommit.
        let file = try Namespace("bench/kv").directory(in: directory) + "/data.db"
        let connection = try Connection(path: file, configuration: .init(flags: [.readOnly, .noMutex]))
        defer { try? connection.close() }
        let statement = try connection.prepare(Self.sql, persistent: true)
        var local = [UInt64](repeating: 0, count: keys.count)
        for (index, key) in keys.enumerated() {
            let start = shoal_bench_now_ns()
            statement.reset()
            try statement.bind(key, at: 1)
            guard try statement.step() else { throw BenchError("key \(key) missing") }
            _ = statement.text(at: 0)
            _ = statement.int64(at: 1)
            local[index] = shoal_bench_now_ns() - start
        }
        statement.reset()
        let remoteStats = DurationStats(nanoseconds: remote)
        let localStats = DurationStats(nanoseconds: local)
        let constantStats = DurationStats(nanoseconds: constant)
        let socketStats = DurationStats(nanoseconds: overSocket)
        for (metric, value, baseline, constantValue, socketValue) in [
            ("median", remoteStats.median, localStats.median, constantStats.median, socketStats.median),
            ("p99", remoteStats.p99, localStats.p99, constantStats.p99, socketStats.p99),
        ] {
            BenchResult(
                bench: "remote-read", metric: "hrana_v3_\(metric)", value: value / 1000, unit: "us",
                baseline: baseline / 1000, baselineName: "local_autocommit_\(metric)"
            ).print()
            BenchResult(
                bench: "remote-read", metric: "hrana_v3_\(metric)", value: value / 1000, unit: "us",
                baseline: constantValue / 1000, baselineName: "constant_route_\(metric)"
            ).print()
            BenchResult(
                bench: "remote-read", metric: "constant_route_\(metric)", value: constantValue / 1000, unit: "us",
                baseline: (metric == "median" ? bare.median : bare.p99) / 1000,
                baselineName: "bare_hummingbird_constant_route_\(metric)"
            ).print()
            BenchResult(
                bench: "remote-read", metric: "websocket_hrana2_\(metric)", value: socketValue / 1000, unit: "us",
                baseline: baseline / 1000, baselineName: "local_autocommit_\(metric)"
            ).print()
            if let postgres {
                let postgresValue = metric == "median" ? postgres.median : postgres.p99
                for (name, mine) in [("hrana_v3", value), ("websocket_hrana2", socketValue)] {
                    BenchResult(
                        bench: "remote-read", metric: "\(name)_\(metric)", value: mine / 1000, unit: "us",
                        baseline: postgresValue / 1000, baselineName: "postgresql_\(metric)"
                    ).print()
                }
            }
        }
        BenchResult(
            bench: "remote-read", metric: "hrana_v3_reads_per_second", value: Double(reads) / remoteSeconds,
            unit: "1/s", baseline: 1e9 / localStats.mean, baselineName: "local_reads_per_second"
        ).print()
        BenchResult(
            bench: "remote-read", metric: "websocket_hrana2_reads_per_second", value: Double(reads) / socketSeconds,
            unit: "1/s", baseline: 1e9 / localStats.mean, baselineName: "local_reads_per_second"
        ).print()
    }
}

/// One client connection reading one key at a time on its own stream: HTTP pipelines carrying
/// the baton, or requests on a WebSocket stream.
final class PointReader {
    private let client: LoopbackHTTPClient
    /// `hrana_v3`, `websocket_hrana2`, or `constant_route` (`GET /version`, no read).
    private let transport: String
    private var baton = "null"
    private var requestID = 0

    init(port: Int, transport: String) throws {
        client = try LoopbackHTTPClient(port: port)
        self.transport = transport
        guard transport == "websocket_hrana2" else { return }
        try client.upgradeToWebSocket("/db/bench/kv", subprotocol: "hrana2")
        try client.sendText(#"{"type":"hello","jwt":null}"#)
        _ = try client.receiveText()
        try client.sendText(#"{"type":"request","request_id":0,"request":{"type":"open_stream","stream_id":1}}"#)
        _ = try client.receiveText()
    }

    func read(_ key: Int64) throws {
        let statement = #"{"sql":"\#(RemoteRead.sql)","args":[{"type":"integer","value":"\#(key)"}]}"#
        if transport == "constant_route" {
            _ = try client.post("/version", body: [], method: "GET")
        } else if transport == "websocket_hrana2" {
            requestID += 1
            try client.sendText(
                #"{"type":"request","request_id":\#(requestID),"request":{"type":"execute","stream_id":1,"stmt":\#(statement)}}"#
            )
            let answer = try client.receiveText()
            guard answer.starts(with: Array(#"{"type":"response_ok""#.utf8)) else {
                throw BenchError("the read failed: \(String(decoding: answer.prefix(300), as: UTF8.self))")
            }
        } else {
            let body = try client.post(
                "/db/bench/kv/v3/pipeline",
                body: Array(#"{"baton":\#(baton),"requests":[{"type":"execute","stmt":\#(statement)}]}"#.utf8))
            let answer = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] ?? [:]
            guard let next = answer["baton"] as? String else { throw BenchError("no baton in \(answer)") }
            baton = "\"\(next)\""
        }
    }
}

/// The first error of the threads of a concurrent phase.
final class FailureBox: @unchecked Sendable {
    // `@unchecked Sendable`: every access holds `lock`.
    private let lock = NSLock()
    private var error: (any Error)?

    func record(_ error: any Error) {
        lock.lock()
        defer { lock.unlock() }
        if self.error == nil { self.error = error }
    }

    var first: (any Error)? {
        lock.lock()
        defer { lock.unlock() }
        return error
    }
}

/// The stats a blocking phase measured, handed back to its async caller.
final class StatsBox: @unchecked Sendable {
    // `@unchecked Sendable`: every access holds `lock`.
    private let lock = NSLock()
    private var stats: DurationStats?

    func set(_ stats: DurationStats) {
        lock.lock()
        defer { lock.unlock() }
        self.stats = stats
    }

    var value: DurationStats? {
        lock.lock()
        defer { lock.unlock() }
        return stats
    }
}
