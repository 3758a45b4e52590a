import Foundation
import ShoalClient
import ShoalSQLite
import ShoalTestSupport
import Testing

/// `TenantPool` over the control plane: tenants resolved through the Platform API, signup on first
/// use, region rules, and tokens refreshed in open replicas.
@Suite("Tenant pool over the control plane", .serialized, .timeLimit(.minutes(5)))
struct ControlPlaneResolverTests {
    @Test func expiredTokenIsReplacedInTheOpenReplicaWithoutReopeningIt() async throws {
        // No clock leeway at the node, so the six-second token lapses after six seconds.
        try await LiveCluster.with(.sqlite, tokenLeeway: 0) { cluster in
            try await cluster.makeGroup(
                organization: "acme", group: "eu", location: "fra", rule: ["jurisdictions": ["eu"]])
            let client = PlatformClient(baseURL: URL(string: cluster.controlURL)!, token: cluster.adminToken)
            // The data is written with a long-lived token, so only the pool's tokens are short.
            _ = try await client.createDatabase(organization: "acme", name: "tenant-1", group: "eu")
            let instance = try #require(try await client.instances(organization: "acme", database: "tenant-1").first)
            let writer = RemoteDatabase(
                url: URL(string: instance.url)!,
                token: try await client.createToken(organization: "acme", database: "tenant-1"))
            _ = try await writer.execute("CREATE TABLE t (x)")
            _ = try await writer.execute("INSERT INTO t VALUES (1)")
            let resolver = ControlPlaneResolver(
                client: client,
                configuration: .init(
                    organization: "acme", location: "ams", tokenLifetime: .seconds(6), refreshMargin: .zero))
            let scratch = try TemporaryDirectory()
            let directory = scratch.path
            defer { withExtendedLifetime(scratch) {} }
            let pool = TenantPool(
                configuration: .init(directory: directory, capacity: 10, location: "ams"), controlPlane: resolver)
            let first = try await pool.withDatabase("tenant-1") { try $0.queryOne("SELECT count(*) FROM t")?[0] }
            #expect(first == .integer(1))

            // Wait for the six-second token to lapse: a sync with it is refused. (With three seconds
            // the test failed once under the whole suite's load: a refusal escaped before this loop.)
            var refused = false
            for _ in 0..<150 where !refused {
                do {
                    _ = try await pool.withDatabase("tenant-1") { try await $0.sync() }
                    try await Task.sleep(for: .milliseconds(100))
                } catch let error as ClientError {
                    #expect(error == .unauthorized, "\(error)")
                    refused = true
                }
            }
            #expect(refused)

            // The shared sync asks the resolver, which issues a new token into the open replica: the
            // sync succeeds with it, and the replica was not reopened.
            #expect(await pool.syncOpenReplicas().synced == 1)
            let second = try await pool.withDatabase("tenant-1") { try $0.queryOne("SELECT count(*) FROM t")?[0] }
            #expect(second == .integer(1))
            #expect(pool.statistics.opens == 1)
            await pool.close()
        }
    }

    @Test func regionLockedTenantIsRefusedOnAPoolInTheWrongLocation() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            try await cluster.makeGroup(
                organization: "acme", group: "eu", location: "fra", rule: ["jurisdictions": ["eu"]])
            let client = PlatformClient(baseURL: URL(string: cluster.controlURL)!, token: cluster.adminToken)
            _ = try await client.createDatabase(organization: "acme", name: "gdpr", group: "eu")
            let scratch = try TemporaryDirectory()
            let directory = scratch.path
            defer { withExtendedLifetime(scratch) {} }
            let american = TenantPool(
                configuration: .init(directory: directory + "/iad", location: "iad"),
                controlPlane: ControlPlaneResolver(
                    client: client, configuration: .init(organization: "acme", location: "iad")))
            await #expect(throws: ClientError.forbidden) {
                try await american.withDatabase("gdpr") { _ in 0 }
            }
            #expect(american.statistics.opens == 0)
            #expect(!FileManager.default.fileExists(atPath: directory + "/iad/gdpr/data.db"))
            // The same tenant opens in an EU process.
            let european = TenantPool(
                configuration: .init(directory: directory + "/ams", location: "ams"),
                controlPlane: ControlPlaneResolver(
                    client: client, configuration: .init(organization: "acme", location: "ams")))
            let value = try await european.withDatabase("gdpr") { try $0.queryOne("SELECT 7")?[0] }
            #expect(value == .integer(7))
            // Signup on first use: a resolver with a group creates the missing tenant's database.
            let signup = TenantPool(
                configuration: .init(directory: directory + "/signup", location: "ams"),
                controlPlane: ControlPlaneResolver(
                    client: client, configuration: .init(organization: "acme", location: "ams", createInGroup: "eu")))
            #expect(try await signup.withDatabase("newbie") { try $0.queryOne("SELECT 1")?[0] } == .integer(1))
            #expect(try await client.database(organization: "acme", name: "newbie").group == "eu")
            await signup.close()
            // A tenant without a database and no signup group is a clear not-found.
            await #expect(throws: ClientError.notFound) {
                try await european.withDatabase("nobody") { _ in 0 }
            }
            await american.close()
            await european.close()
        }
    }
}
