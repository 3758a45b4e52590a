import ArgumentParser
import CBenchBaseline
import Foundation
import ShoalClient

/// `pool`: the cost of a TenantPool hit (an open replica leased and returned) next to calling the
/// same closure directly, and of a miss that reopens a tenant whose local replica already exists.
struct PoolBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool", abstract: "TenantPool hit overhead and the cost of reopening an existing local replica.")

    @Option(help: "Timed hits.")
    var hits = 200_000

    @Option(help: "Timed misses.")
    var misses = 500

    func run() async throws {
        let (hits, misses) = (self.hits, self.misses)
        try await InProcessNode.run(name: "pool") { port, directory in
            let base = "http://127.0.0.1:\(port)/db/bench"
            for tenant in ["a", "b"] {
                let remote = RemoteDatabase(url: URL(string: "\(base)/\(tenant)")!, token: nil)
                try await remote.execute("CREATE TABLE t (x)")
                await remote.close()
            }
            let pool = TenantPool(
                configuration: .init(directory: directory + "/tenants", capacity: 1),
                resolver: { tenant in TenantEndpoint(url: URL(string: "\(base)/\(tenant)")!) })
            let work: @Sendable (Database) -> Int = { _ in 1 }
            let probe = try Database(directory: directory + "/probe", syncURL: URL(string: "\(base)/a")!)
            try await probe.sync()

            // Hits: tenant "a" stays open.
            _ = try await pool.withDatabase("a", work)
            var pooled = [UInt64](repeating: 0, count: hits)
            var direct = [UInt64](repeating: 0, count: hits)
            for index in 0..<hits {
                let start = shoal_bench_now_ns()
                _ = try await pool.withDatabase("a", work)
                pooled[index] = shoal_bench_now_ns() - start
                let directStart = shoal_bench_now_ns()
                _ = work(probe)
                direct[index] = shoal_bench_now_ns() - directStart
            }
            // Misses: capacity 1 and two tenants taken in turn, so every lease reopens a tenant whose
            // files exist (open the replica, one pull that finds nothing new).
            func alternate(_ pool: TenantPool) async throws -> [UInt64] {
                _ = try await pool.withDatabase("b", work)
                var durations = [UInt64](repeating: 0, count: misses)
                for index in 0..<misses {
                    let start = shoal_bench_now_ns()
                    _ = try await pool.withDatabase(index % 2 == 0 ? "a" : "b", work)
                    durations[index] = shoal_bench_now_ns() - start
                }
                return durations
            }
            let reopen = try await alternate(pool)
            guard pool.statistics.opens >= misses else { throw BenchError("misses did not reopen tenants") }
            // The same with the reuse window off: every reopen pulls once before its first use.
            let pulling = TenantPool(
                configuration: .init(directory: directory + "/tenants", capacity: 1, reuseWithin: .zero),
                resolver: { tenant in TenantEndpoint(url: URL(string: "\(base)/\(tenant)")!) })
            await pool.close()
            let reopenPulling = try await alternate(pulling)
            await pulling.close()
            let missPulling = DurationStats(nanoseconds: reopenPulling)
            let hit = DurationStats(nanoseconds: pooled)
            let call = DurationStats(nanoseconds: direct)
            let miss = DurationStats(nanoseconds: reopen)
            BenchResult(
                bench: "pool", metric: "hit_median", value: hit.median / 1000, unit: "us", baseline: call.median / 1000,
                baselineName: "direct_call_median"
            ).print()
            BenchResult(
                bench: "pool", metric: "hit_overhead_median", value: (hit.median - call.median) / 1000, unit: "us",
                baseline: 1, baselineName: "target_max"
            ).print()
            BenchResult(
                bench: "pool", metric: "miss_reopen_existing_median", value: miss.median / 1e6, unit: "ms",
                baseline: 1, baselineName: "target_max"
            ).print()
            BenchResult(
                bench: "pool", metric: "miss_reopen_existing_p99", value: miss.p99 / 1e6, unit: "ms", baseline: nil,
                baselineName: nil
            ).print()
            BenchResult(
                bench: "pool", metric: "miss_reopen_with_pull_median", value: missPulling.median / 1e6, unit: "ms",
                baseline: miss.median / 1e6, baselineName: "miss_reopen_within_reuse_window_median"
            ).print()
            await probe.close()
        }
    }
}
