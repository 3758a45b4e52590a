import ArgumentParser
import CBenchBaseline
import Foundation
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

    func run() async throws {
        let (rows, reads, seed) = (self.rows, self.reads, self.seed)
        try await InProcessNode.run(name: "remote-read") { port, directory in
            try await Task.detached {
                try Self.measure(port: port, directory: directory + "/node", rows: rows, reads: reads, seed: seed)
            }.value
        }
    }

    static func measure(port: Int, directory: String, rows: Int, reads: Int, seed: UInt64) throws {
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
                bench: "remote-read", metric: "websocket_hrana2_\(metric)", value: socketValue / 1000, unit: "us",
                baseline: baseline / 1000, baselineName: "local_autocommit_\(metric)"
            ).print()
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
