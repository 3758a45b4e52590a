import Foundation
import Prometheus
import ShoalClient
import ShoalHTTP
import ShoalSQLite
import ShoalTestSupport
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(2))) struct TenantPoolTests {
    @Test func opensLazilyOnceKeepsAtMostCapacityAndSyncsWithOneLoop() async throws {
        try await withNode { url, directory in
            let resolves = Mutex(0)
            // The application's exporter: swift-prometheus behind swift-metrics.
            let registry = PrometheusCollectorRegistry()
            let pool = TenantPool(
                configuration: .init(
                    directory: directory + "/tenants", capacity: 2, location: "fra",
                    metricsFactory: PrometheusMetricsFactory(registry: registry)),
                resolver: { tenant in
                    resolves.withLock { $0 += 1 }
                    return TenantEndpoint(url: URL(string: "\(url)/db/acme/\(tenant)")!)
                })
            var events = pool.events().makeAsyncIterator()
            for tenant in ["t1", "t2", "t3"] {
                let remote = RemoteDatabase(url: URL(string: "\(url)/db/acme/\(tenant)")!, token: nil)
                try await remote.execute("CREATE TABLE t (name TEXT)")
                try await remote.execute("INSERT INTO t VALUES (?)", [.text(tenant)])
                await remote.close()
            }
            // 100 concurrent first requests for one tenant open it once.
            try await withThrowingTaskGroup(of: SQLiteValue?.self) { group in
                for _ in 0..<100 {
                    group.addTask { try await pool.withDatabase("t1") { try $0.queryOne("SELECT name FROM t")?[0] } }
                }
                for try await value in group { #expect(value == .text("t1")) }
            }
            #expect(resolves.withLock { $0 } == 1)
            _ = try await pool.withDatabase("t2") { try $0.queryOne("SELECT name FROM t") }
            _ = try await pool.withDatabase("t3") { try $0.queryOne("SELECT name FROM t") }
            #expect(pool.statistics.open == 2)
            #expect(pool.statistics.evictions == 1)
            // The metrics an application exports: counters, open replicas, open latency.
            let metrics = pool.metrics
            #expect(metrics.opens == 3)
            #expect(metrics.hits + metrics.misses == 102)
            #expect(metrics.openReplicas == 2)
            #expect(metrics.openLatency.count == 3)
            #expect(metrics.openLatency.median > .zero)
            #expect(metrics.openLatency.max >= metrics.openLatency.median)
            // The same through swift-metrics: events counted as they happen, hits and misses at the
            // next sync round.
            var samples = try PrometheusSamples(registry.emitToString())
            #expect(samples["shoal_pool_opens_total"] == 3)
            #expect(samples["shoal_pool_closes_total"] == 1)
            #expect(samples["shoal_pool_open_replicas"] == 2)
            #expect(samples["shoal_pool_open_duration_seconds_count"] == 3)
            // And as events, in order: t1 opened, t2 opened, t1 closed to make room, t3 opened.
            var seen: [String] = []
            while seen.count < 4, let event = await events.next() {
                switch event {
                case .opened(let tenant, _): seen.append("opened \(tenant)")
                case .closed(let tenant): seen.append("closed \(tenant)")
                case .openFailed(let tenant, _): seen.append("failed \(tenant)")
                case .syncFailed(let tenant, _): seen.append("sync failed \(tenant)")
                }
            }
            #expect(seen == ["opened t1", "opened t2", "closed t1", "opened t3"])
            // A write made elsewhere reaches the open replicas through the shared sync.
            let remote = RemoteDatabase(url: URL(string: "\(url)/db/acme/t3")!, token: nil)
            try await remote.execute("INSERT INTO t VALUES ('later')")
            await remote.close()
            #expect(await pool.syncOpenReplicas().synced == 2)
            samples = try PrometheusSamples(registry.emitToString())
            let leases = pool.statistics
            #expect(samples["shoal_pool_hits_total"] == Double(leases.hits))
            #expect(samples["shoal_pool_misses_total"] == Double(leases.misses))
            #expect(leases.hits + leases.misses >= 102)
            let count = try await pool.withDatabase("t3") { try $0.queryOne("SELECT count(*) FROM t")?[0] }
            #expect(count == .integer(2))
            await pool.close()
            // Closing ends the event sequences: the two closes, then the end.
            var closes = 0
            while let event = await events.next() {
                if case .closed = event { closes += 1 }
            }
            #expect(closes == 2)
            // One asked for after the close ends at once.
            for await event in pool.events() { Issue.record("an event after the close: \(event)") }
        }
    }

    @Test func aSyncRoundReportsTheReplicasThatFailedAndGoesOnWithTheOthers() async throws {
        // Databases made through the admin API only: a deleted one is not made again by a sync.
        try await withNode({ $0.createOnFirstUse = false }) { url, directory in
            let registry = PrometheusCollectorRegistry()
            let pool = TenantPool(
                configuration: .init(
                    directory: directory + "/tenants", capacity: 4,
                    metricsFactory: PrometheusMetricsFactory(registry: registry)),
                resolver: { tenant in TenantEndpoint(url: URL(string: "\(url)/db/acme/\(tenant)")!) })
            let events = pool.events()
            for tenant in ["kept", "gone"] {
                let created = try await OutboundHTTP.send(
                    HTTPCall("POST", URL(string: "\(url)/v1/namespaces/acme/\(tenant)/create")!))
                #expect(created.status == 200)
                let remote = RemoteDatabase(url: URL(string: "\(url)/db/acme/\(tenant)")!, token: nil)
                try await remote.execute("CREATE TABLE t (x)")
                await remote.close()
                _ = try await pool.withDatabase(tenant) { try $0.queryOne("SELECT count(*) FROM t") }
            }
            let deleted = try await OutboundHTTP.send(
                HTTPCall("DELETE", URL(string: "\(url)/v1/namespaces/acme/gone")!))
            #expect(deleted.status == 200)
            let round = await pool.syncOpenReplicas()
            #expect(round.synced == 1)
            #expect(round.failedCount == 1)
            #expect(round.failures.map(\.tenant) == ["gone"])
            #expect(round.failures.first?.error as? ClientError == .notFound, "\(round.failures)")
            // Visible beside the round's report: a counter and an event.
            #expect(try PrometheusSamples(registry.emitToString())["shoal_pool_sync_failures_total"] == 1)
            let failed = await events.first { event in
                if case .syncFailed = event { return true }
                return false
            }
            guard case .syncFailed(let tenant, let error) = failed else {
                Issue.record("no syncFailed event")
                return
            }
            #expect(tenant == "gone")
            #expect(error as? ClientError == .notFound)
            await pool.close()
        }
    }

    @Test func refusesTenantsWhoseRegionRuleExcludesThisProcess() async throws {
        try await withNode { url, directory in
            let pool = TenantPool(
                configuration: .init(directory: directory + "/tenants", capacity: 4, location: "iad"),
                resolver: { tenant in
                    TenantEndpoint(url: URL(string: "\(url)/db/acme/\(tenant)")!, allowedLocations: ["fra", "ams"])
                })
            await #expect(throws: ClientError.forbidden) {
                try await pool.withDatabase("eu-tenant") { _ in 0 }
            }
            #expect(!FileManager.default.fileExists(atPath: directory + "/tenants/eu-tenant"))
            await #expect(throws: ClientError.protocolViolation) {
                try await pool.withDatabase("../escape") { _ in 0 }
            }
            await pool.close()
        }
    }
}

@Suite("TenantPool disk budget", .timeLimit(.minutes(2)))
struct TenantPoolDiskBudgetTests {
    static func bytes(under directory: String) -> Int64 {
        let names = FileManager.default.enumerator(atPath: directory)?.allObjects as? [String] ?? []
        return names.reduce(0) { total, name in
            let attributes = try? FileManager.default.attributesOfItem(atPath: directory + "/" + name)
            guard attributes?[.type] as? FileAttributeType == .typeRegular else { return total }
            return total + ((attributes?[.size] as? NSNumber)?.int64Value ?? 0)
        }
    }

    @Test func closedReplicasAreDeletedLeastRecentlyUsedFirstToStayWithinTheBudget() async throws {
        try await withNode { url, directory in
            @Sendable func endpoint(_ tenant: String) -> TenantEndpoint {
                TenantEndpoint(url: URL(string: "\(url)/db/acme/\(tenant)")!)
            }
            // One replica's size, measured on a pool without a budget.
            let probe = TenantPool(configuration: .init(directory: directory + "/probe", capacity: 4)) { endpoint($0) }
            _ = try await probe.withDatabase("sizer") { try $0.queryOne("SELECT 1") }
            await probe.close()
            let size = Self.bytes(under: directory + "/probe/sizer")
            #expect(size > 0)

            // Room for two and a half replicas, one open at a time.
            let root = directory + "/budget"
            let pool = TenantPool(
                configuration: .init(directory: root, capacity: 1, maxDiskBytes: size * 5 / 2)
            ) { endpoint($0) }
            for tenant in ["a", "b", "c"] {
                _ = try await pool.withDatabase(tenant) { try $0.queryOne("SELECT 1") }
            }
            // c is open; a (closed first) went, b (closed last) stays.
            let onDisk = Set(try FileManager.default.contentsOfDirectory(atPath: root))
            #expect(onDisk == ["b", "c"])
            #expect(pool.diskUsage.deletedReplicas == 1)
            #expect(pool.diskUsage.bytes <= size * 5 / 2)
            // A deleted tenant bootstraps again when it comes back.
            let value = try await pool.withDatabase("a") { try $0.queryOne("SELECT 7")?[0] }
            #expect(value == .integer(7))
            #expect(Set(try FileManager.default.contentsOfDirectory(atPath: root)) == ["a", "c"])
            await pool.close()
        }
    }
}
