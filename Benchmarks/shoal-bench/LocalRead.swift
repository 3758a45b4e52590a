import ArgumentParser
import CBenchBaseline
import Foundation
import ShoalSQLite

/// `local-read`: a prepared primary-key point read through ShoalSQLite next to the same loop on the
/// plain C API, over the same file in the same run, in autocommit (WAL) and in a held read transaction.
struct LocalRead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "local-read",
        abstract: "Prepared point reads: ShoalSQLite vs. the raw C API, autocommit and held transaction.")

    @Option(help: "Rows in the table.")
    var rows = 100_000

    @Option(help: "Timed reads per path and mode.")
    var reads = 1_000_000

    @Option(help: "Seed for the random keys.")
    var seed: UInt64 = 42

    @Option(help: "Directory for the scratch database (a temporary one by default).")
    var directory: String?

    static let sql = "SELECT value, n FROM kv WHERE id = ?"

    func validate() throws {
        guard rows > 0, reads > 0 else { throw ValidationError("--rows and --reads must be positive") }
    }

    func run() throws {
        let folder =
            directory
            ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("shoal-bench-\(ProcessInfo.processInfo.processIdentifier)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: folder) } }
        let path = folder + "/local-read.db"
        try? FileManager.default.removeItem(atPath: path)

        try populate(path: path)
        var generator = SeededGenerator(seed: seed)
        let keys = (0..<reads).map { _ in Int64.random(in: 1...Int64(rows), using: &generator) }

        for (mode, held) in [("autocommit", false), ("held_txn", true)] {
            // Warm the page cache and the code paths of both loops before timing.
            _ = try Self.cLoop(path: path, keys: Array(keys.prefix(100_000)), held: held)
            _ = try swiftLoop(path: path, keys: Array(keys.prefix(100_000)), held: held)
            // Alternate the two loops over ten slices of the keys, each going first in turn, so
            // that drift in the machine's state does not favour one of them.
            var c = LoopResult(durations: [], checksum: 0)
            var swift = LoopResult(durations: [], checksum: 0)
            let slices = 10
            for slice in 0..<slices {
                let part = Array(keys[(keys.count * slice / slices)..<(keys.count * (slice + 1) / slices)])
                if slice % 2 == 0 {
                    c.append(try Self.cLoop(path: path, keys: part, held: held))
                    swift.append(try swiftLoop(path: path, keys: part, held: held))
                } else {
                    swift.append(try swiftLoop(path: path, keys: part, held: held))
                    c.append(try Self.cLoop(path: path, keys: part, held: held))
                }
            }
            guard c.checksum == swift.checksum else {
                throw ValidationError("the two loops read different data (\(c.checksum) vs \(swift.checksum))")
            }
            let cStats = DurationStats(nanoseconds: c.durations)
            let swiftStats = DurationStats(nanoseconds: swift.durations)
            for (metric, value, baseline) in [
                ("median", swiftStats.median, cStats.median),
                ("p99", swiftStats.p99, cStats.p99),
                ("mean", swiftStats.mean, cStats.mean),
            ] {
                BenchResult(
                    bench: "local-read", metric: "\(mode)_\(metric)", value: value / 1000, unit: "us",
                    baseline: baseline / 1000, baselineName: "c_api_\(mode)_\(metric)"
                ).print()
            }
            BenchResult(
                bench: "local-read", metric: "\(mode)_median_ratio", value: swiftStats.median / cStats.median,
                unit: "x", baseline: 1.3, baselineName: "target_max_ratio"
            ).print()
        }
    }

    /// Creates `kv(id INTEGER PRIMARY KEY, value TEXT, n INTEGER)` with `rows` rows, in WAL mode.
    func populate(path: String) throws {
        var configuration = Connection.Configuration()
        configuration.journalMode = .wal
        let connection = try Connection(path: path, configuration: configuration)
        defer { try? connection.close() }
        try connection.execute("CREATE TABLE kv (id INTEGER PRIMARY KEY, value TEXT NOT NULL, n INTEGER NOT NULL)")
        try connection.transaction {
            let insert = try connection.prepare("INSERT INTO kv (id, value, n) VALUES (?, ?, ?)")
            for id in 1...Int64(rows) {
                insert.reset()
                try insert.bind(id, at: 1)
                try insert.bind("value-\(id % 100_000)", at: 2)
                try insert.bind(id * 7, at: 3)
                _ = try insert.step()
            }
        }
        try connection.checkpoint(.truncate)
    }

    struct LoopResult {
        var durations: [UInt64]
        var checksum: Int64

        mutating func append(_ other: LoopResult) {
            durations += other.durations
            checksum += other.checksum
        }
    }

    /// The plain C loop over `path` (`SELECT value, n FROM kv WHERE id = ?`), one timing per read.
    static func cLoop(path: String, keys: [Int64], held: Bool) throws -> LoopResult {
        var durations = [UInt64](repeating: 0, count: keys.count)
        var checksum: Int64 = 0
        let rc = keys.withUnsafeBufferPointer { keys in
            durations.withUnsafeMutableBufferPointer { durations in
                shoal_bench_c_point_reads(
                    path, Self.sql, keys.baseAddress, Int64(keys.count), held ? 1 : 0, durations.baseAddress,
                    &checksum)
            }
        }
        guard rc == 0 else { throw ValidationError("the C baseline failed with SQLite code \(rc)") }
        return LoopResult(durations: durations, checksum: checksum)
    }

    func swiftLoop(path: String, keys: [Int64], held: Bool) throws -> LoopResult {
        let connection = try Connection(
            path: path, configuration: Connection.Configuration(flags: [.readWrite, .noMutex]))
        defer { try? connection.close() }
        let statement = try connection.prepare(Self.sql, persistent: true)
        if held { try connection.execute("BEGIN") }
        var durations = [UInt64](repeating: 0, count: keys.count)
        var checksum: Int64 = 0
        try durations.withUnsafeMutableBufferPointer { durations in
            for index in keys.indices {
                let start = shoal_bench_now_ns()
                statement.reset()
                try statement.bind(keys[index], at: 1)
                guard try statement.step() else { throw ValidationError("key \(keys[index]) not found") }
                let value = statement.text(at: 0)
                let n = statement.int64(at: 1)
                let end = shoal_bench_now_ns()
                checksum += Int64(value?.utf8.count ?? -1) + n
                durations[index] = end - start
            }
        }
        statement.reset()
        if held { try connection.execute("COMMIT") }
        return LoopResult(durations: durations, checksum: checksum)
    }
}
