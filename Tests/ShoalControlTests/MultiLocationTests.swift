import Foundation
import ShoalNode
import Testing

/// Groups with replica locations: every database readable in every location, writes anywhere
/// reaching the one primary, the region rule enforced on replicas too.
@Suite("Platform API: multi-location groups", .serialized, .timeLimit(.minutes(5)))
struct MultiLocationTests {
    @Test(arguments: CatalogBackend.allCases)
    func everyLocationOfAGroupServesItsDatabases(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend, locations: ["fra", "ams", "iad"]) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "eu", rule: ["jurisdictions": ["eu"]])
            #expect(try await cluster.call("POST", "/v1/organizations/acme/groups/eu/locations/ams").status == 200)
            // iad is not in the EU: the group cannot get a replica there.
            #expect(try await cluster.call("POST", "/v1/organizations/acme/groups/eu/locations/iad").status == 422)
            let created = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "shop", "group": "eu"])
            #expect(created.status == 200)

            let instances = try await cluster.call("GET", "/v1/organizations/acme/databases/shop/instances")
            let list = try #require(instances.json["instances"] as? [[String: Any]])
            #expect(list.map { $0["type"] as? String } == ["primary", "replica"])
            #expect(list.map { $0["region"] as? String } == ["fra", "ams"])
            let primaryURL = try #require(list[0]["url"] as? String)
            let replicaURL = try #require(list[1]["url"] as? String)
            #expect(replicaURL == "\(cluster.nodes["ams"]!.url)/db/acme/shop")

            let jwt = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/databases/shop/auth/tokens").json["jwt"]
                    as? String)
            // Writes through the replica node reach the primary; the replica reads its own writes.
            for sql in ["CREATE TABLE t (x)", "INSERT INTO t VALUES (41)", "INSERT INTO t VALUES (1)"] {
                let answer = try await LiveCluster.execute(sql, at: replicaURL, token: jwt)
                #expect(answer.status == 200)
                #expect(!answer.pipelineFailed, "\(answer.text)")
            }
            let local = try await LiveCluster.execute("SELECT sum(x) FROM t", at: replicaURL, token: jwt)
            #expect(local.text.contains(#""value":"42""#), "\(local.text)")
            let primary = try await LiveCluster.execute("SELECT sum(x) FROM t", at: primaryURL, token: jwt)
            #expect(primary.text.contains(#""value":"42""#), "\(primary.text)")
            // The ams node holds a replica, following the fra primary with its own sync token.
            let stats = try await LiveCluster.send(
                "GET", cluster.nodes["ams"]!.url + "/v1/namespaces/acme/shop/stats", token: "node-admin-ams")
            #expect(stats.json["role"] as? String == "replica")
            #expect((stats.json["replica"] as? [String: Any])?["primary_url"] as? String == primaryURL)
            #expect(!stats.text.contains("sync_token"))
            // iad is outside the rule: the control plane does not place the database there.
            let outside = try await LiveCluster.execute(
                "SELECT 1", at: "\(cluster.nodes["iad"]!.url)/db/acme/shop", token: jwt)
            #expect(outside.status == 404)

            // Blocking writes reaches the replica too (its settings are pushed, its role kept).
            let blocked = try await cluster.call(
                "PATCH", "/v1/organizations/acme/databases/shop/configuration", json: ["block_reads": true])
            #expect(blocked.status == 200)
            #expect(try await LiveCluster.execute("SELECT 1", at: replicaURL, token: jwt).pipelineFailed)
            let after = try await LiveCluster.send(
                "GET", cluster.nodes["ams"]!.url + "/v1/namespaces/acme/shop/stats", token: "node-admin-ams")
            #expect(after.json["role"] as? String == "replica")

            // Deleting the database removes the replica as well.
            #expect(try await cluster.call("DELETE", "/v1/organizations/acme/databases/shop").status == 200)
            #expect(!cluster.nodes["ams"]!.node.store.exists(try .init(organization: "acme", database: "shop")))
        }
    }
}
