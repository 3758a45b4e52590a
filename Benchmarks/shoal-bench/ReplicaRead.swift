import ArgumentParser
import CBenchBaseline
import Foundation
import ShoalReplication
import ShoalSQLite
import Synchronization

/// `replica-read`: a prepared point read through a replica's gated readers while a one-frame sync
/// is applied every millisecond, next to the raw C loop in a held read transaction on the same file.
struct ReplicaRead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replica-read",
        abstract: "Point reads on a replica while one-frame syncs apply every millisecond, vs. raw C held-txn reads.")

    @Option(help: "Rows in the table.")
    var rows = 100_000

    @Option(help: "Timed reads per path.")
    var reads = 1_000_000

    @Option(help: "Microseconds between one-frame syncs.")
    var applyIntervalMicroseconds = 1000

    @Option(help: "Seed for the random keys.")
    var seed: UInt64 = 42

    @Option(help: "Bytes of the replica file readers map into memory (0: no mmap).")
    var mmapSize = 1 << 30

    static let sql = "SELECT value, n FROM kv WHERE id = ?"

    func run() throws {
        let fixture = try ReplicationFixture(
            name: "replica-read", rows: rows, replicaConfiguration: .init(readerMmapSize: mmapSize))
        defer { fixture.close() }
        var generator = SeededGenerator(seed: seed)
        let keys = (0..<reads).map { _ in Int64.random(in: 1...Int64(rows), using: &generator) }

        // Baseline: the raw C API in one held read transaction on the replica's file, nothing applying.
        let cDurations = try LocalRead.cLoop(path: fixture.replica.databasePath, keys: keys, held: true).durations

        // Gated reads with nothing applying: the cost of the gate itself.
        let idle = try gatedReads(fixture: fixture, keys: Array(keys.prefix(max(1, keys.count / 5))))

        // Gated reads while one-frame syncs apply every interval on another thread.
        let stop = Atomic<Bool>(false)
        let applies = Mutex<[UInt64]>([])
        let applyErrors = Mutex<[String]>([])
        let applier = Thread {
            var random = SeededGenerator(seed: seed ^ 0xA5A5)
            while !stop.load(ordering: .acquiring) {
                let tick = shoal_bench_now_ns()
                do {
                    try fixture.updateOneRow(id: Int64.random(in: 1...Int64(rows), using: &random))
                    for result in try fixture.catchUp() where result.framesApplied > 0 {
                        applies.withLock {
                            $0.append(UInt64(result.readersBlocked.components.attoseconds / 1_000_000_000))
                        }
                    }
                } catch {
                    applyErrors.withLock { $0.append("\(error)") }
                    return
                }
                let elapsed = Int(shoal_bench_now_ns() - tick) / 1000
                if elapsed < applyIntervalMicroseconds { usleep(useconds_t(applyIntervalMicroseconds - elapsed)) }
            }
        }
        let started = shoal_bench_now_ns()
        applier.start()
        let busy = try gatedReads(fixture: fixture, keys: keys)
        stop.store(true, ordering: .releasing)
        let seconds = Double(shoal_bench_now_ns() - started) / 1e9
        while !applier.isFinished { usleep(1000) }
        if let error = applyErrors.withLock({ $0.first }) { throw ValidationError("applying failed: \(error)") }
        guard busy.checksum != 0, idle.checksum != 0 else { throw ValidationError("no data was read") }

        let c = DurationStats(nanoseconds: cDurations)
        let swift = DurationStats(nanoseconds: busy.durations)
        let gate = DurationStats(nanoseconds: idle.durations)
        let applied = applies.withLock { $0 }
        for (metric, value, baseline) in [
            ("median", swift.median, c.median), ("p99", swift.p99, c.p99), ("mean", swift.mean, c.mean),
        ] {
            BenchResult(
                bench: "replica-read", metric: "gated_during_applies_\(metric)", value: value / 1000, unit: "us",
                baseline: baseline / 1000, baselineName: "c_api_held_txn_\(metric)"
            ).print()
        }
        BenchResult(
            bench: "replica-read", metric: "gated_idle_median", value: gate.median / 1000, unit: "us",
            baseline: c.median / 1000, baselineName: "c_api_held_txn_median"
        ).print()
        BenchResult(
            bench: "replica-read", metric: "applies_per_second", value: Double(applied.count) / seconds, unit: "1/s",
            baseline: 1e6 / Double(applyIntervalMicroseconds), baselineName: "requested_rate"
        ).print()
        BenchResult(
            bench: "replica-read", metric: "during_applies_median_target", value: swift.median / 1000, unit: "us",
            baseline: 3, baselineName: "target_max"
        ).print()
    }

    func gatedReads(fixture: ReplicationFixture, keys: [Int64]) throws -> LocalRead.LoopResult {
        var durations = [UInt64](repeating: 0, count: keys.count)
        var checksum: Int64 = 0
        let replica = fixture.replica
        try durations.withUnsafeMutableBufferPointer { durations in
            for index in keys.indices {
                let key = keys[index]
                let start = shoal_bench_now_ns()
                let (length, n) = try replica.read { connection in
                    let statement = try connection.cachedStatement(Self.sql)
                    try statement.bind(key, at: 1)
                    guard try statement.step() else { throw ValidationError("key \(key) not found") }
                    let value = statement.text(at: 0)
                    let n = statement.int64(at: 1)
                    statement.reset()
                    return (value?.utf8.count ?? -1, n)
                }
                let end = shoal_bench_now_ns()
                checksum += Int64(length) + n
                durations[index] = end - start
            }
        }
        return LocalRead.LoopResult(durations: durations, checksum: checksum)
    }
}
