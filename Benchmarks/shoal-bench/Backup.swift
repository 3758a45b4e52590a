import ArgumentParser
import CBenchBaseline
import Foundation
import ShoalBackup
import ShoalReplication
import ShoalSQLite
import Synchronization

/// `backup`: restore throughput of a large database beside a plain copy of its file; requests to
/// the store from idle databases; backup lag under writes spread over many databases, beside the
/// store's own write latency. The store is a directory (the default one).
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Restore MB/s beside a file copy; store requests for idle databases; backup lag under load.")

    @Option(help: "Size of the database restored, in MB.")
    var megabytes = 100

    @Option(help: "Idle databases watched for requests.")
    var idle = 1000

    @Option(help: "How long the idle databases are watched, in seconds.")
    var idleSeconds = 10

    @Option(help: "Databases the writes are spread over.")
    var databases = 1000

    @Option(help: "Writes per second, over all of them.")
    var rate = 1000

    @Option(help: "How long the writes go on, in seconds.")
    var seconds = 10

    @Option(help: "Databases the shipper ships at once (default: its own).")
    var concurrency: Int?

    @Option(help: "The phases to run, comma-separated: restore, idle, lag.")
    var phases = "restore,idle,lag"

    func run() async throws {
        let root =
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "shoal-bench-backup-\(ProcessInfo.processInfo.processIdentifier)"
            ).path
        try? FileManager.default.removeItem(atPath: root)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let chosen = Set(phases.split(separator: ",").map(String.init))
        if chosen.contains("restore") { try await restoreThroughput(root + "/restore") }
        if chosen.contains("idle") { try await idleRequests(root + "/idle") }
        if chosen.contains("lag") { try await lag(root + "/lag") }
    }

    /// Primary logs by id for the shipper.
    final class Shelf: BackupSource {
        let logs: Mutex<[String: PrimaryLog]> = Mutex([:])
        func withPrimaryLog<T: Sendable>(
            _ id: String, _ body: @Sendable (PrimaryLog) async throws -> T
        ) async throws -> T? {
            guard let log = logs.withLock({ $0[id] }) else { return nil }
            return try await body(log)
        }
    }

    func restoreThroughput(_ directory: String) async throws {
        let store = try DirectoryObjectStore(root: directory + "/store")
        let shelf = Shelf()
        let log = try PrimaryLog(directory: directory + "/db")
        defer { log.close() }
        shelf.logs.withLock { $0["big"] = log }
        let shipper = try BackupShipper(store: store, source: shelf, pendingDirectory: directory + "/pending")
        let writer = try log.makeConnection()
        defer { try? writer.close() }
        try log.withWritePermit { try writer.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)") }
        try await shipper.ship("big")
        // 1 MB transactions, rolling at the default 64 MiB: a restore reads snapshots and frames.
        for _ in 0..<megabytes {
            try log.withWritePermit {
                try writer.transaction {
                    for _ in 0..<256 { try writer.execute("INSERT INTO blobs (data) VALUES (randomblob(4000))") }
                }
            }
            try await shipper.ship("big")
        }
        let size = try PosixFile.size(of: log.databasePath) + Int64(log.committedFrames) * 4096
        let target = directory + "/restored.db"
        let start = shoal_bench_now_ns()
        let point = try await BackupRestore.restore("big", from: store, at: nil, to: target)
        let restoreSeconds = Double(shoal_bench_now_ns() - start) / 1e9
        guard point.bytes >= size * 9 / 10 else {
            throw ValidationError("restored \(point.bytes) bytes of a \(size)-byte database")
        }
        // The baseline: the restored file copied with the same reads, writes and final sync.
        let copyStart = shoal_bench_now_ns()
        let source = try PosixFile(path: target, flags: O_RDONLY)
        let copy = try PosixFile(path: directory + "/copy.db", flags: O_WRONLY | O_CREAT | O_TRUNC)
        var offset: Int64 = 0
        while offset < point.bytes {
            let chunk = try source.read(count: 1 << 20, at: offset)
            try copy.write(chunk, at: offset)
            offset += Int64(chunk.count)
        }
        try copy.syncData()
        let copySeconds = Double(shoal_bench_now_ns() - copyStart) / 1e9
        let megabytesRestored = Double(point.bytes) / 1e6
        BenchResult(
            bench: "backup", metric: "restore_mb_per_second", value: megabytesRestored / restoreSeconds, unit: "MB/s",
            baseline: megabytesRestored / copySeconds, baselineName: "file_copy_mb_per_second"
        ).print()
        BenchResult(
            bench: "backup", metric: "restored_megabytes", value: megabytesRestored, unit: "MB", baseline: nil,
            baselineName: nil
        ).print()
    }

    func idleRequests(_ directory: String) async throws {
        let store = try DirectoryObjectStore(root: directory + "/store")
        let shelf = Shelf()
        let shipper = try BackupShipper(store: store, source: shelf, pendingDirectory: directory + "/pending")
        // Written once and shipped, 500 at a time, then closed, as a node's pool closes idle
        // databases (10,000 open logs would not fit the descriptor limit, and no node keeps them open).
        var start = 0
        while start < idle {
            var logs: [PrimaryLog] = []
            for index in start..<min(start + 500, idle) {
                let log = try PrimaryLog(directory: directory + "/db/\(index)")
                logs.append(log)
                let writer = try log.makeConnection()
                try log.withWritePermit { try writer.execute("CREATE TABLE t (x)") }
                try writer.close()
                shelf.logs.withLock { $0["db-\(index)"] = log }
                shipper.noteCommit("db-\(index)")
            }
            _ = await shipper.flush(within: .seconds(600))
            for (offset, log) in logs.enumerated() {
                log.close()
                _ = shelf.logs.withLock { $0.removeValue(forKey: "db-\(start + offset)") }
            }
            start += logs.count
        }
        let before = shipper.statistics.requests
        // The shipper's service runs as on a node, over databases that write nothing.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await shipper.run() }
            try await Task.sleep(for: .seconds(idleSeconds))
            group.cancelAll()
        }
        let requests = shipper.statistics.requests - before
        BenchResult(
            bench: "backup", metric: "idle_requests_per_hour_\(idle)_databases",
            value: Double(requests) * 3600 / Double(idleSeconds), unit: "requests/h", baseline: Double(before),
            baselineName: "requests_to_back_them_up_once"
        ).print()
    }

    func lag(_ directory: String) async throws {
        let store = try DirectoryObjectStore(root: directory + "/store")
        let shelf = Shelf()
        var configuration = BackupShipper.Configuration()
        if let concurrency { configuration.concurrency = concurrency }
        let shipper = try BackupShipper(
            store: store, source: shelf, pendingDirectory: directory + "/pending", configuration: configuration)
        var logs: [(PrimaryLog, Connection)] = []
        defer {
            for (log, writer) in logs {
                try? writer.close()
                log.close()
            }
        }
        for index in 0..<databases {
            let log = try PrimaryLog(
                directory: directory + "/db/\(index)",
                configuration: .init(onCommit: { [shipper] in shipper.noteCommit("db-\(index)") }))
            let writer = try log.makeConnection()
            try log.withWritePermit { try writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)") }
            logs.append((log, writer))
            shelf.logs.withLock { $0["db-\(index)"] = log }
        }
        _ = await shipper.flush(within: .seconds(600))
        let startShipped = shipper.statistics.framesShipped
        let total = rate * seconds
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await shipper.run() }
            let clock = ContinuousClock()
            let begin = clock.now
            for write in 0..<total {
                let due = begin + .nanoseconds(Int64(write) * 1_000_000_000 / Int64(rate))
                if due > clock.now { try await Task.sleep(until: due, clock: clock) }
                let (log, writer) = logs[write % logs.count]
                try log.withWritePermit { try writer.execute("INSERT INTO t (v) VALUES ('write \(write)')") }
            }
            _ = await shipper.flush(within: .seconds(60))
            group.cancelAll()
        }
        // Each segment's lag: from its first commit to the moment its object was stored.
        var lags: [UInt64] = []
        for index in 0..<databases {
            let id = "db-\(index)"
            for key in try await store.list(prefix: BackupKey.prefix(id)) {
                guard case .segment(_, _, _, let firstCommit, _) = BackupKey(parsing: key, id: id),
                    let attributes = try? FileManager.default.attributesOfItem(atPath: store.root + "/" + key),
                    let stored = attributes[.modificationDate] as? Date
                else { continue }
                let storedMicros = Int64(stored.timeIntervalSince1970 * 1_000_000)
                if firstCommit > 0, storedMicros > firstCommit {
                    lags.append(UInt64(storedMicros - firstCommit) * 1000)
                }
            }
        }
        guard !lags.isEmpty else { throw ValidationError("no segment was shipped during the writes") }
        // The store's own latency for an object of that size, measured now.
        var puts: [UInt64] = []
        for index in 0..<200 {
            let start = shoal_bench_now_ns()
            try await store.put("probe/\(index)", [UInt8](repeating: 7, count: 4200))
            puts.append(shoal_bench_now_ns() - start)
        }
        let stats = DurationStats(nanoseconds: lags)
        let putStats = DurationStats(nanoseconds: puts)
        BenchResult(
            bench: "backup", metric: "lag_p99_seconds_\(rate)_writes_per_second_\(databases)_databases",
            value: stats.p99 / 1e9, unit: "s", baseline: putStats.p99 / 1e9, baselineName: "store_put_p99_seconds"
        ).print()
        BenchResult(
            bench: "backup", metric: "lag_median_seconds", value: stats.median / 1e9, unit: "s",
            baseline: putStats.median / 1e9, baselineName: "store_put_median_seconds"
        ).print()
        BenchResult(
            bench: "backup", metric: "frames_shipped_during_writes",
            value: Double(shipper.statistics.framesShipped - startShipped), unit: "frames", baseline: Double(total),
            baselineName: "writes"
        ).print()
    }
}
