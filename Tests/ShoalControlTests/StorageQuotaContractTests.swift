import Foundation
import ShoalControl
import ShoalModel
import ShoalTestSupport
import Testing

/// A plan's `storage_bytes` holds for a whole organization: nodes report what their primaries take
/// on disk with each heartbeat, the control plane sums them per organization, and the primaries of an
/// organization over its quota refuse writes (reads still work) until it is back within it.
@Suite("Platform API: storage quota per organization", .serialized, .timeLimit(.minutes(5)))
struct StorageQuotaContractTests {
    static func storedBytes(_ cluster: LiveCluster, _ organization: String) async throws -> Int {
        let usage = try await cluster.call("GET", "/v1/organizations/\(organization)/usage")
        return try #require((usage.json["usage"] as? [String: Any])?["storage_bytes"] as? Int, "\(usage.text)")
    }

    @Test(arguments: CatalogBackend.allCases)
    func anOrganizationOverItsPlansStorageIsRefusedWritesUntilItDeletesData(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend, locations: ["fra", "ams"]) { cluster in
            _ = try await cluster.call(
                "PUT", "/v1/plans/tiny",
                json: ["databases": 10, "groups": 2, "locations_per_group": 1, "storage_bytes": 1_000_000])
            try await cluster.makeGroup(organization: "full", group: "default", plan: "tiny")
            try await cluster.makeGroup(organization: "roomy", group: "default")
            var urls: [String: (url: String, jwt: String)] = [:]
            for (organization, database) in [("full", "a"), ("full", "b"), ("roomy", "c")] {
                let created = try await cluster.call(
                    "POST", "/v1/organizations/\(organization)/databases",
                    json: ["name": database, "group": "default"])
                #expect(created.status == 200, "\(created.text)")
                let jwt = try #require(
                    try await cluster.call(
                        "POST", "/v1/organizations/\(organization)/databases/\(database)/auth/tokens"
                    ).json["jwt"] as? String)
                urls[database] = (cluster.nodes["fra"]!.url + "/db/\(organization)/\(database)", jwt)
                #expect(
                    !(try await LiveCluster.execute("CREATE TABLE t (x)", at: urls[database]!.url, token: jwt)
                        .pipelineFailed))
            }
            #expect(try await Self.storedBytes(cluster, "full") < 1_000_000)

            // Each database stays within its own size limit; together they go over the plan's quota.
            for database in ["a", "b"] {
                let wrote = try await LiveCluster.execute(
                    "INSERT INTO t VALUES (randomblob(600000))", at: urls[database]!.url, token: urls[database]!.jwt)
                #expect(!wrote.pipelineFailed, "\(wrote.text)")
            }
            try await waitUntil(
                "the nodes report over 1 MB for organization full", limit: .seconds(20), every: .milliseconds(100)
            ) {
                try await Self.storedBytes(cluster, "full") > 1_000_000
            }

            // The next write is refused with a message that names the quota; reads still work.
            var refusal = ""
            try await waitUntil(
                "a write of organization full is refused", limit: .seconds(20), every: .milliseconds(100)
            ) {
                let answer = try await LiveCluster.execute(
                    "INSERT INTO t VALUES (1)", at: urls["a"]!.url, token: urls["a"]!.jwt)
                let error = (answer.json["results"] as? [[String: Any]])?.first?["error"] as? [String: Any]
                refusal = (error?["code"] as? String ?? "") + ": " + (error?["message"] as? String ?? "")
                return answer.pipelineFailed
            }
            #expect(refusal.hasPrefix("SQLITE_FULL: "), "\(refusal)")
            #expect(refusal.contains("organization full"), "\(refusal)")
            #expect(refusal.contains("'storage_bytes'"), "\(refusal)")
            #expect(refusal.contains("'tiny'"), "\(refusal)")
            let read = try await LiveCluster.execute(
                "SELECT count(*) FROM t", at: urls["a"]!.url, token: urls["a"]!.jwt)
            #expect(!read.pipelineFailed, "\(read.text)")
            // Another organization on the same node writes as before.
            let other = try await LiveCluster.execute(
                "INSERT INTO t VALUES (randomblob(600000))", at: urls["c"]!.url, token: urls["c"]!.jwt)
            #expect(!other.pipelineFailed, "\(other.text)")

            // A report from a node that is not a database's primary changes nothing. (The primary's
            // own heartbeats go on meanwhile, so the check is that a terabyte never shows.)
            let terabyte: Int64 = 1 << 40
            let listed = try await cluster.call("GET", "/v1/organizations/full/databases/a")
            let id = try #require((listed.json["database"] as? [String: Any])?["DbId"] as? String)
            let foreign = try await cluster.catalog.heartbeat(
                node: cluster.nodes["ams"]!.id, storage: [.init(databaseID: id, bytes: terabyte)])
            #expect(foreign.isEmpty)
            #expect(try await Self.storedBytes(cluster, "full") < terabyte)
            // Reports that are negative or too many are refused whole.
            await #expect(throws: ControlError.self) {
                try await cluster.catalog.heartbeat(
                    node: cluster.nodes["fra"]!.id, storage: [.init(databaseID: id, bytes: -1)])
            }
            await #expect(throws: ControlError.self) {
                try await cluster.catalog.heartbeat(
                    node: cluster.nodes["fra"]!.id,
                    storage: Array(
                        repeating: .init(databaseID: id, bytes: terabyte),
                        count: Platform.HeartbeatRequest.maxStorageReports + 1))
            }
            let stored = try await Self.storedBytes(cluster, "full")
            #expect(stored > 0 && stored < terabyte)

            // Deleting a database brings the organization back within its quota: writes work again.
            #expect(try await cluster.call("DELETE", "/v1/organizations/full/databases/b").status == 200)
            #expect(try await Self.storedBytes(cluster, "full") < 1_000_000)
            try await waitUntil("organization full writes again", limit: .seconds(20), every: .milliseconds(100)) {
                !(try await LiveCluster.execute("INSERT INTO t VALUES (2)", at: urls["a"]!.url, token: urls["a"]!.jwt)
                    .pipelineFailed)
            }
        }
    }
}
