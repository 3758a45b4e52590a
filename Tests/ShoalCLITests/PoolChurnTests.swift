import Foundation
import Testing

/// The tenant pool under churn, run in its own process (`shoal-bench pool-churn`, debug build) so
/// that its descriptor count is not mixed with other tests': however many tenants pass through, the
/// open descriptors stay at what the process used once the pool had turned over once, and the heap
/// does not grow with the tenants.
@Suite("TenantPool churn: descriptors and heap stay bounded", .timeLimit(.minutes(5)))
struct PoolChurnTests {
    @Test func manyTenantsThroughASmallPoolKeepDescriptorsAndHeapFlat() async throws {
        let root = URL(fileURLWithPath: ShoalBinary.path).deletingLastPathComponent()
        let bench = root.appendingPathComponent("shoal-bench").path
        let scratch = try Scratch()
        let run = try await ShoalProcess.run(
            [
                "pool-churn", "--tenants", "1000", "--capacity", "40", "--concurrency", "2", "--disk-mib", "2",
            ], in: scratch.path, executable: bench)
        #expect(run.status == 0, "\(run.errors)")
        var results: [String: (value: Double, baseline: Double?)] = [:]
        for line in run.output.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let metric = object["metric"] as? String, let value = object["value"] as? Double
            else { continue }
            results[metric] = (value, object["baseline"] as? Double)
        }
        let fds = try #require(results["open_fds_max_after_full"])
        let baseline = try #require(fds.baseline)
        #expect(baseline > 0)
        // 920 more tenants opened and evicted after that: at most a few descriptors more (HTTP
        // connections come and go).
        #expect(fds.value <= baseline + 16, "descriptors grew from \(baseline) to \(fds.value)")
        #expect(results["evictions"]?.value == 960)
        // The C heap of the pool's process (the node runs in a child): what is still allocated
        // may grow by the bounded bookkeeping (recent syncs, latencies, the disk budget's list),
        // not by something per tenant. Before cancelled request deadlines released their timers
        // it grew by 2.4 MiB here (about 2.7 KB per tenant); now by about 0.5 MiB.
        let heap = try #require(results["heap_in_use_end"])
        let heapBaseline = try #require(heap.baseline)
        #expect(heap.value - heapBaseline < 1.5, "heap in use grew from \(heapBaseline) to \(heap.value) MiB")
    }
}
