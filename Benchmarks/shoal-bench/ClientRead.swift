import ArgumentParser
import CBenchBaseline
import Foundation
import ShoalClient
import ShoalNode
import ShoalSQLite
import Synchronization

/// `client-read`: a point read through ShoalClient's `Database` (an embedded replica synced from a
/// live node over HTTP every 10 ms while writes arrive), beside the raw C loop in a held read
/// transaction on the same replica file.
struct ClientRead: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client-read",
        abstract: "Point reads through an embedded replica syncing every 10 ms, vs. the raw C loop.")

    @Option(help: "Rows in the table.")
    var rows = 100_000

    @Option(help: "Timed reads.")
    var reads = 1_000_000

    @Option(help: "Milliseconds between a write on the primary and the replica's sync.")
    var syncIntervalMilliseconds = 10

    static let sql = "SELECT value, n FROM kv WHERE id = ?"

    func run() async throws {
        let (rows, reads, interval) = (self.rows, self.reads, self.syncIntervalMilliseconds)
        try await InProcessNode.run(name: "client-read") { port, directory in
            let url = URL(string: "http://127.0.0.1:\(port)/db/bench/kv")!
            let writer = RemoteDatabase(url: url, token: nil)
            try await writer.execute(
                "CREATE TABLE kv (id INTEGER PRIMARY KEY, value TEXT NOT NULL, n INTEGER NOT NULL)")
            try await writer.execute(
                "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < \(rows)) INSERT INTO kv SELECT i, 'value-' || i, i * 7 FROM s"
            )
            let database = try Database(directory: directory + "/replica", syncURL: url, readYourWrites: false)
            try await database.sync()
            var generator = SeededGenerator(seed: 42)
            let keys = (0..<reads).map { _ in Int64.random(in: 1...Int64(rows), using: &generator) }

            // Baseline: the C loop in a held read transaction on the replica file, nothing syncing.
            let cDurations = try LocalRead.cLoop(path: database.replica.databasePath, keys: keys, held: true).durations

            // Writes on the primary and a sync of the replica every interval, while reads run.
            let stop = Atomic<Bool>(false)
            let syncs = Atomic<Int>(0)
            let syncer = Task {
                var id: Int64 = 1
                while !stop.load(ordering: .acquiring) {
                    try await writer.execute("UPDATE kv SET n = n + 1 WHERE id = ?", [.integer(id)])
                    let result = try await database.sync()
                    if result.framesApplied > 0 { syncs.add(1, ordering: .relaxed) }
                    id = id % Int64(rows) + 1
                    try await Task.sleep(for: .milliseconds(interval))
                }
            }
            let started = shoal_bench_now_ns()
            let durations = try await Task.detached { () -> [UInt64] in
                var durations = [UInt64](repeating: 0, count: keys.count)
                for (index, key) in keys.enumerated() {
                    let start = shoal_bench_now_ns()
                    _ = try database.read { connection in
                        let statement = try connection.cachedStatement(Self.sql)
                        try statement.bind(key, at: 1)
                        guard try statement.step() else { throw BenchError("key \(key) missing") }
                        let value = statement.text(at: 0)
                        let n = statement.int64(at: 1)
                        statement.reset()
                        return (value?.utf8.count ?? 0) + Int(n)
                    }
                    durations[index] = shoal_bench_now_ns() - start
                }
                return durations
            }.value
            let seconds = Double(shoal_bench_now_ns() - started) / 1e9
            stop.store(true, ordering: .releasing)
            try await syncer.value
            let swift = DurationStats(nanoseconds: durations)
            let c = DurationStats(nanoseconds: cDurations)
            for (metric, value, baseline) in [("median", swift.median, c.median), ("p99", swift.p99, c.p99)] {
                BenchResult(
                    bench: "client-read", metric: "database_read_while_syncing_\(metric)", value: value / 1000,
                    unit: "us",
                    baseline: baseline / 1000, baselineName: "c_api_held_txn_\(metric)"
                ).print()
            }
            BenchResult(
                bench: "client-read", metric: "syncs_applied_per_second",
                value: Double(syncs.load(ordering: .relaxed)) / seconds,
                unit: "1/s", baseline: 1000 / Double(interval), baselineName: "requested_rate"
            ).print()
            await database.close()
            await writer.close()
        }
    }
}
