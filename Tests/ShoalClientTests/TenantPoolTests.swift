import Foundation
import ShoalClient
import ShoalSQLite
import Synchronization
import Testing

@Suite struct TenantPoolTests {
    @Test func opensLazilyOnceKeepsAtMostCapacityAndSyncsWithOneLoop() async throws {
        try await withNode { url, directory in
            let resolves = Mutex(0)
            let pool = TenantPool(
                configuration: .init(directory: directory + "/tenants", capacity: 2, location: "fra"),
                resolver: { tenant in
                    resolves.withLock { $0 += 1 }
                    return TenantEndpoint(url: URL(string: "\(url)/db/acme/\(tenant)")!)
                })
            for tenant in ["t1", "t2", "t3"] {
                let remote = RemoteDatabase(url: URL(string: "\(url)/db/acme/\(tenant)")!, token: nil)
                try await remote.execute("CREATE TABLE t (name TEXT)")
                try await remote.execute("INSERT INTO t VALUES (?)", [.text(tenant)])
                await remote.close()
            }
            // Concurrent first requests for one tenant open it once.
            try await withThrowingTaskGroup(of: SQLiteValue?.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await pool.withDatabase("t1") { try $0.queryOne("SELECT name FROM t")?[0] } }
                }
                for try await value in group { #expect(value == .text("t1")) }
            }
            #expect(resolves.withLock { $0 } == 1)
            _ = try await pool.withDatabase("t2") { try $0.queryOne("SELECT name FROM t") }
            _ = try await pool.withDatabase("t3") { try $0.queryOne("SELECT name FROM t") }
            #expect(pool.statistics.open == 2)
            #expect(pool.statistics.evictions == 1)
            // A write made elsewhere reaches the open replicas through the shared sync.
            let remote = RemoteDatabase(url: URL(string: "\(url)/db/acme/t3")!, token: nil)
            try await remote.execute("INSERT INTO t VALUES ('later')")
            await remote.close()
            #expect(await pool.syncOpenReplicas() == 2)
            let count = try await pool.withDatabase("t3") { try $0.queryOne("SELECT count(*) FROM t")?[0] }
            #expect(count == .integer(2))
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
