import Foundation
import ShoalModel
import ShoalReplication
import Testing

@testable import ShoalControl

/// Restores through the Platform API: in place with an undo point, and new databases seeded from
/// another's backup at a time, with the audit log, the region rule and the tokens checked.
@Suite(.timeLimit(.minutes(3))) struct BackupContractTests {
    static func values(_ cluster: LiveCluster, _ database: String, token: String) async throws -> String {
        let url = cluster.nodes["fra"]!.url + "/db/acme/\(database)"
        let read = try await LiveCluster.execute("SELECT group_concat(x) FROM t", at: url, token: token)
        #expect(!read.pipelineFailed, "\(read.text)")
        let rows =
            (((read.json["results"] as? [[String: Any]])?.first?["response"] as? [String: Any])?["result"]
            as? [String: Any])?["rows"] as? [[[String: Any]]]
        return rows?.first?.first?["value"] as? String ?? "(none)"
    }

    static func token(_ cluster: LiveCluster, _ database: String) async throws -> String {
        try #require(
            try await cluster.call("POST", "/v1/organizations/acme/databases/\(database)/auth/tokens").json["jwt"]
                as? String)
    }

    @Test(arguments: CatalogBackend.allCases)
    func restoreInPlaceAndSeedANewDatabaseAtATime(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend, eagerPlacement: true, backups: true) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            #expect(
                try await cluster.call(
                    "POST", "/v1/organizations/acme/databases", json: ["name": "orders", "group": "default"]
                ).status == 200)
            let jwt = try await Self.token(cluster, "orders")
            let url = cluster.nodes["fra"]!.url + "/db/acme/orders"
            #expect(!(try await LiveCluster.execute("CREATE TABLE t (x)", at: url, token: jwt).pipelineFailed))
            #expect(
                !(try await LiveCluster.execute("INSERT INTO t VALUES (1), (2)", at: url, token: jwt).pipelineFailed))
            let middle = RFC3339.format(microseconds: CommitTime.now())
            #expect(!(try await LiveCluster.execute("INSERT INTO t VALUES (3)", at: url, token: jwt).pipelineFailed))

            // A new database from orders as of `middle`.
            let seeded = try await cluster.call(
                "POST", "/v1/organizations/acme/databases",
                json: [
                    "name": "orders-copy", "group": "default",
                    "seed": ["type": "database", "name": "orders", "timestamp": middle],
                ])
            #expect(seeded.status == 200, "\(seeded.text)")
            #expect(
                try await Self.values(cluster, "orders-copy", token: try await Self.token(cluster, "orders-copy"))
                    == "1,2")

            // In place, then undone.
            let restored = try await cluster.call(
                "POST", "/v1/organizations/acme/databases/orders/restore", json: ["timestamp": middle])
            #expect(restored.status == 200, "\(restored.text)")
            #expect(try await Self.values(cluster, "orders", token: jwt) == "1,2")
            let undo = try #require(restored.json["undo_timestamp"] as? String)
            let undone = try await cluster.call(
                "POST", "/v1/organizations/acme/databases/orders/restore", json: ["timestamp": undo])
            #expect(undone.status == 200, "\(undone.text)")
            #expect(try await Self.values(cluster, "orders", token: jwt) == "1,2,3")

            let backups = try await cluster.call("GET", "/v1/organizations/acme/databases/orders/backups")
            #expect(backups.status == 200, "\(backups.text)")
            #expect(backups.json["database"] as? String == "orders")
            #expect((backups.json["earliest"] as? String).map { $0 < middle } == true)

            // The audit log has both restores and the seed.
            let actions = try await cluster.store.transaction { transaction in
                try await transaction.query(
                    "SELECT action, outcome FROM audit_logs WHERE action IN ('database.restore', 'database.seed') ORDER BY at, action",
                    []
                ).map { "\(try $0.text(0)) \(try $0.text(1))" }
            }
            #expect(actions.sorted() == ["database.restore ok", "database.restore ok", "database.seed ok"])
        }
    }

    @Test func badSeedsAndRestoresAreRefusedBeforeAnythingIsCreated() async throws {
        try await LiveCluster.with(.sqlite, eagerPlacement: true, backups: true) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            try await cluster.makeGroup(
                organization: "acme", group: "locked", rule: ["locations": ["fra"]])
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "orders", "group": "default"])
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "vault", "group": "locked"])
            let cases: [([String: Any], Int)] = [
                (["type": "dump"], 422),
                (["type": "database"], 400),
                (["type": "database", "name": "orders", "timestamp": "last tuesday"], 400),
                (["type": "database", "name": "missing"], 404),
                (["type": "database", "name": "vault"], 422),
                (["type": "database", "name": "orders", "timestamp": "2001-01-01T00:00:00Z"], 400),
            ]
            for (index, (seed, status)) in cases.enumerated() {
                let answer = try await cluster.call(
                    "POST", "/v1/organizations/acme/databases",
                    json: ["name": "copy-\(index)", "group": "default", "seed": seed])
                #expect(answer.status == status, "\(seed): \(answer.text)")
                // Nothing is left of a refused creation.
                #expect(
                    try await cluster.call("GET", "/v1/organizations/acme/databases/copy-\(index)").status == 404)
            }
            let garbled = try await cluster.call(
                "POST", "/v1/organizations/acme/databases/orders/restore", json: ["timestamp": "noon"])
            #expect(garbled.status == 400)
            #expect(garbled.errorMessage.contains("RFC 3339"))
            let sourced = try await cluster.call(
                "POST", "/v1/organizations/acme/databases/orders/restore", json: ["source": "acme.vault"])
            #expect(sourced.status == 400)
        }
    }

    @Test func anotherOrganizationsTokenAndNoTokenAreRefused() async throws {
        try await LiveCluster.with(.sqlite, eagerPlacement: true, backups: true) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            try await cluster.makeGroup(organization: "rival", group: "default")
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "orders", "group": "default"])
            let rival = try #require(
                try await cluster.call("POST", "/v1/organizations/rival/api-tokens", json: ["name": "ci"]).json["token"]
                    as? String)
            for (method, path, body) in [
                ("POST", "/v1/organizations/acme/databases/orders/restore", ["timestamp": "2026-12-01T18:00:00Z"]),
                ("GET", "/v1/organizations/acme/databases/orders/backups", [:]),
            ] {
                let none = try await LiveCluster.send(
                    method, cluster.controlURL + path, json: method == "GET" ? nil : body, token: nil)
                #expect(none.status == 401)
                let foreign = try await cluster.call(method, path, json: method == "GET" ? nil : body, token: rival)
                #expect(foreign.status == 403, "\(foreign.text)")
            }
            let seedFromAcme = try await cluster.call(
                "POST", "/v1/organizations/rival/databases",
                json: ["name": "stolen", "group": "default", "seed": ["type": "database", "name": "orders"]],
                token: rival)
            #expect(seedFromAcme.status == 404, "\(seedFromAcme.text)")
        }
    }
}
