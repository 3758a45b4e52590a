import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ShoalClient
import ShoalNode
import Synchronization

/// `pool-churn`: many distinct tenants through a `TenantPool` of bounded capacity, each opened
/// (bootstrapped from a node in this process), read once and evicted later. Open file descriptors
/// and resident memory are sampled as it goes; the baseline is their value once the pool has
/// turned over once (2 × capacity tenants: the pool and the node's own pool both full), measured
/// in the same run.
struct PoolChurn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool-churn",
        abstract: "Tenants churned through a bounded TenantPool: file descriptors and memory must stay flat.")

    @Option(help: "Distinct tenants.") var tenants = 100_000
    @Option(help: "The pool's capacity.") var capacity = 1_000
    @Option(help: "Tenants opened at once.") var concurrency = 8
    @Option(help: "The pool's disk budget in MiB (closed replicas deleted beyond it).") var diskMib = 512

    func run() async throws {
        let (tenants, capacity, concurrency, diskMib) = (self.tenants, self.capacity, self.concurrency, self.diskMib)
        try await InProcessNode.run(name: "churn", configure: { $0.maxOpenDatabases = min(64, capacity) }) {
            port, directory in
            try await Self.churn(
                url: "http://127.0.0.1:\(port)", directory: directory + "/tenants", tenants: tenants,
                capacity: capacity, concurrency: concurrency, diskBytes: Int64(diskMib) << 20)
        }
    }

    static func churn(
        url: String, directory: String, tenants: Int, capacity: Int, concurrency: Int, diskBytes: Int64
    ) async throws {
        let pool = TenantPool(
            configuration: .init(
                directory: directory, capacity: capacity, idleTimeout: .seconds(3600), maxDiskBytes: diskBytes),
            resolver: { tenant in TenantEndpoint(url: URL(string: "\(url)/db/bench/\(tenant)")!) })
        let samples = ChurnSamples()
        let next = Counter()
        let begin = ContinuousClock.now
        let step = max(1, tenants / 100)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while true {
                        let index = next.take()
                        guard index < tenants else { return }
                        let tables = try await pool.withDatabase("t\(index)") { database in
                            try database.queryOne("SELECT count(*) FROM sqlite_schema")?[0]
                        }
                        guard tables != nil else { throw BenchError("tenant t\(index) answered nothing") }
                        if index == 2 * capacity || index % step == 0 { samples.take(at: index) }
                    }
                }
            }
            try await group.waitForAll()
        }
        samples.take(at: tenants)
        let seconds =
            Double((ContinuousClock.now - begin).components.seconds)
            + Double((ContinuousClock.now - begin).components.attoseconds) / 1e18
        let metrics = pool.metrics
        await pool.close()
        let (atCapacity, end, maxAfter) = samples.summary(from: 2 * capacity)
        BenchResult(
            bench: "pool-churn", metric: "open_fds_max_after_full", value: Double(maxAfter.fds), unit: "fds",
            baseline: Double(atCapacity.fds), baselineName: "open_fds_after_one_turnover"
        ).print()
        BenchResult(
            bench: "pool-churn", metric: "open_fds_end", value: Double(end.fds), unit: "fds",
            baseline: Double(atCapacity.fds), baselineName: "open_fds_after_one_turnover"
        ).print()
        BenchResult(
            bench: "pool-churn", metric: "rss_max_after_full", value: Double(maxAfter.rss) / 1_048_576, unit: "MiB",
            baseline: Double(atCapacity.rss) / 1_048_576, baselineName: "rss_after_one_turnover"
        ).print()
        BenchResult(
            bench: "pool-churn", metric: "rss_end", value: Double(end.rss) / 1_048_576, unit: "MiB",
            baseline: Double(atCapacity.rss) / 1_048_576, baselineName: "rss_after_one_turnover"
        ).print()
        BenchResult(
            bench: "pool-churn", metric: "tenants_per_second", value: Double(tenants) / seconds, unit: "1/s",
            baseline: nil, baselineName: nil
        ).print()
        BenchResult(
            bench: "pool-churn", metric: "evictions", value: Double(metrics.evictions), unit: "count",
            baseline: Double(tenants - capacity), baselineName: "tenants_minus_capacity"
        ).print()
    }
}

/// Open descriptors and resident memory of this process over the run.
final class ChurnSamples: Sendable {
    struct Sample: Sendable {
        let index: Int
        let fds: Int
        let rss: Int
    }

    private let samples = Mutex<[Sample]>([])

    func take(at index: Int) {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
        let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        samples.withLock { $0.append(Sample(index: index, fds: fds, rss: pages * Int(getpagesize()))) }
    }

    func summary(from start: Int) -> (atCapacity: Sample, end: Sample, maxAfter: Sample) {
        let all = samples.withLock { $0 }.sorted { $0.index < $1.index }
        let atCapacity = all.first { $0.index >= start } ?? all.last!
        let after = all.filter { $0.index >= atCapacity.index }
        let maxFDs = after.max { $0.fds < $1.fds } ?? atCapacity
        let maxRSS = after.max { $0.rss < $1.rss } ?? atCapacity
        return (atCapacity, all.last!, Sample(index: maxFDs.index, fds: maxFDs.fds, rss: maxRSS.rss))
    }
}

/// Hands out 0, 1, 2, … to concurrent workers.
final class Counter: Sendable {
    private let value = Mutex(0)

    func take() -> Int {
        value.withLock { value in
            defer { value += 1 }
            return value
        }
    }
}
