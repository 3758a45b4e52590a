import Foundation
import ShoalModel
import ShoalReplication
import ShoalTestSupport
import Testing

@testable import ShoalControl
@testable import ShoalNode

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

    @Test(arguments: CatalogBackend.allCases)
    func aDeletedDatabaseCanBeUndeletedUntilItsBackupsAreErased(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend, eagerPlacement: true, backups: true) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            let created = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "orders", "group": "default"])
            let firstID = try #require((created.json["database"] as? [String: Any])?["DbId"] as? String)
            let jwt = try await Self.token(cluster, "orders")
            let url = cluster.nodes["fra"]!.url + "/db/acme/orders"
            #expect(!(try await LiveCluster.execute("CREATE TABLE t (x)", at: url, token: jwt).pipelineFailed))
            #expect(
                !(try await LiveCluster.execute("INSERT INTO t VALUES (1), (2), (3)", at: url, token: jwt)
                    .pipelineFailed))
            // Deleted at once after its last write: the node ships that write before the files go.
            #expect(try await cluster.call("DELETE", "/v1/organizations/acme/databases/orders").status == 200)
            let listed = try await cluster.call("GET", "/v1/organizations/acme/deleted-databases")
            #expect(listed.status == 200, "\(listed.text)")
            let entries = try #require(listed.json["databases"] as? [[String: Any]])
            #expect(entries.map { $0["name"] as? String } == ["orders"])
            #expect(entries.first?["id"] as? String == firstID)
            let deletedAt = try #require(entries.first?["deleted_at"] as? String)
            let eraseAt = try #require(entries.first?["erase_at"] as? String)
            let grace = RFC3339.microseconds(eraseAt)! - RFC3339.microseconds(deletedAt)!
            #expect(grace == 7 * 86_400 * 1_000_000)

            let undeleted = try await cluster.call("POST", "/v1/organizations/acme/databases/orders/undelete")
            #expect(undeleted.status == 200, "\(undeleted.text)")
            let secondID = try #require((undeleted.json["database"] as? [String: Any])?["DbId"] as? String)
            #expect(secondID != firstID)
            #expect(try await Self.values(cluster, "orders", token: try await Self.token(cluster, "orders")) == "1,2,3")
            // A new incarnation: the deleted one's tokens do not open it.
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: jwt).status == 401)
            // Undeleted once; the name is taken again.
            let twice = try await cluster.call("POST", "/v1/organizations/acme/databases/orders/undelete")
            #expect(twice.status == 404, "\(twice.text)")
            #expect(
                (try await cluster.call("GET", "/v1/organizations/acme/deleted-databases").json["databases"]
                    as? [Any])?.isEmpty == true)
            let never = try await cluster.call("POST", "/v1/organizations/acme/databases/never/undelete")
            #expect(never.status == 404)
            #expect(never.errorMessage.contains("grace period"))

            // Deleted again; then the grace period passes and every backup of both goes for good.
            #expect(try await cluster.call("DELETE", "/v1/organizations/acme/databases/orders").status == 200)
            let store = try #require(cluster.nodes["fra"]!.node.configuration.backupStore)
            for id in [firstID, secondID] {
                #expect(!(try await store.list(prefix: "databases/acme.orders.\(id)/")).isEmpty)
            }
            cluster.time.advance(seconds: 7 * 86_400 + 60)
            try await waitUntil("the erasure of both backups", limit: .seconds(60)) {
                try await cluster.catalog.pendingErasureCount() == 0
            }
            for id in [firstID, secondID] {
                #expect(try await store.list(prefix: "databases/acme.orders.\(id)/").isEmpty)
            }
            let late = try await cluster.call("POST", "/v1/organizations/acme/databases/orders/undelete")
            #expect(late.status == 404)
            // The audit log records the delete, the undelete and the erasure.
            let actions = try await cluster.store.transaction { transaction in
                try await transaction.query(
                    """
                    SELECT action, target FROM audit_logs
                    WHERE action IN ('database.delete', 'database.undelete', 'database.backups_erased')
                    ORDER BY id
                    """, []
                ).map { "\(try $0.text(0)) \(try $0.text(1))" }
            }
            #expect(actions.filter { $0.hasPrefix("database.delete ") }.count >= 2)
            #expect(actions.filter { $0.hasPrefix("database.undelete ") }.count == 1)
            #expect(
                Set(actions.filter { $0.hasPrefix("database.backups_erased") })
                    == [
                        "database.backups_erased acme.orders.\(firstID)",
                        "database.backups_erased acme.orders.\(secondID)",
                    ])
        }
    }

    /// An undelete goes back to the database's own group only: into a group deleted and created
    /// again under the name it is refused, nothing is left of the attempt, and the deleted database
    /// can still be undeleted later.
    @Test func anUndeleteIntoAGroupCreatedAgainIsRefusedAndGivesTheDeletionBack() async throws {
        try await LiveCluster.with(.sqlite, eagerPlacement: true, backups: true) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "eu", rule: ["locations": ["fra"]])
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "vault", "group": "eu"])
            let jwt = try await Self.token(cluster, "vault")
            let url = cluster.nodes["fra"]!.url + "/db/acme/vault"
            #expect(!(try await LiveCluster.execute("CREATE TABLE t (x)", at: url, token: jwt).pipelineFailed))
            #expect(try await cluster.call("DELETE", "/v1/organizations/acme/groups/eu").status == 200)
            try await cluster.makeGroup(organization: "acme", group: "eu")
            let refused = try await cluster.call("POST", "/v1/organizations/acme/databases/vault/undelete")
            #expect(refused.status == 409, "\(refused.text)")
            #expect(refused.errorMessage.contains("created again"))
            #expect(try await cluster.call("GET", "/v1/organizations/acme/databases/vault").status == 404)
            let listed = try await cluster.call("GET", "/v1/organizations/acme/deleted-databases")
            #expect((listed.json["databases"] as? [[String: Any]])?.map { $0["name"] as? String } == ["vault"])
        }
    }

    /// With several deletions of one name, `id` picks which one comes back.
    @Test func anUndeleteCanNameWhichDeletionOfTheNameToUndo() async throws {
        try await LiveCluster.with(.sqlite, eagerPlacement: true, backups: true) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            var ids: [String] = []
            for value in [1, 2] {
                let created = try await cluster.call(
                    "POST", "/v1/organizations/acme/databases", json: ["name": "t", "group": "default"])
                ids.append(try #require((created.json["database"] as? [String: Any])?["DbId"] as? String))
                let jwt = try await Self.token(cluster, "t")
                let url = cluster.nodes["fra"]!.url + "/db/acme/t"
                #expect(!(try await LiveCluster.execute("CREATE TABLE t (x)", at: url, token: jwt).pipelineFailed))
                #expect(
                    !(try await LiveCluster.execute("INSERT INTO t VALUES (\(value))", at: url, token: jwt)
                        .pipelineFailed))
                #expect(try await cluster.call("DELETE", "/v1/organizations/acme/databases/t").status == 200)
            }
            let listed = try await cluster.call("GET", "/v1/organizations/acme/deleted-databases")
            #expect(
                (listed.json["databases"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ids.reversed())
            for (body, status) in [(["id": ""], 400), (["id": "no-such-id"], 404)] {
                let refused = try await cluster.call(
                    "POST", "/v1/organizations/acme/databases/t/undelete", json: body)
                #expect(refused.status == status, "\(body): \(refused.text)")
            }
            let older = try await cluster.call(
                "POST", "/v1/organizations/acme/databases/t/undelete", json: ["id": ids[0]])
            #expect(older.status == 200, "\(older.text)")
            #expect(try await Self.values(cluster, "t", token: try await Self.token(cluster, "t")) == "1")
        }
    }

    /// A node that lost a primary's files gets it back from the backup when the operator recovers
    /// the node; one it still holds is left as it is.
    @Test func recoveringANodeRebuildsThePrimariesItLost() async throws {
        try await LiveCluster.with(.sqlite, eagerPlacement: true, backups: true) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            for name in ["lost", "kept"] {
                _ = try await cluster.call(
                    "POST", "/v1/organizations/acme/databases", json: ["name": name, "group": "default"])
                let jwt = try await Self.token(cluster, name)
                let url = cluster.nodes["fra"]!.url + "/db/acme/\(name)"
                #expect(!(try await LiveCluster.execute("CREATE TABLE t (x)", at: url, token: jwt).pipelineFailed))
                #expect(
                    !(try await LiveCluster.execute("INSERT INTO t VALUES (1), (2)", at: url, token: jwt)
                        .pipelineFailed))
            }
            let node = cluster.nodes["fra"]!
            #expect(await node.node.store.backups?.flush() == true)
            // The node loses `lost`'s files (its disk, as far as that database goes).
            let namespace = try Namespace(organization: "acme", database: "lost")
            #expect(await node.node.store.closeIfUnused(namespace))
            try FileManager.default.removeItem(atPath: namespace.directory(in: node.node.configuration.dataDirectory))
            #expect(!node.node.store.exists(namespace))

            let recovered = try await cluster.call("POST", "/v1/nodes/\(node.id)/recover?limit=1")
            #expect(recovered.status == 200, "\(recovered.text)")
            #expect(recovered.json["placed"] as? Int == 1)
            let cursor = try #require(recovered.json["next_cursor"] as? String)
            let rest = try await cluster.call("POST", "/v1/nodes/\(node.id)/recover?limit=1&cursor=\(cursor)")
            #expect(rest.status == 200, "\(rest.text)")
            #expect(rest.json["placed"] as? Int == 1)
            #expect(rest.json["next_cursor"] == nil)
            // Same incarnation: its tokens still open it, with its rows.
            for name in ["lost", "kept"] {
                #expect(try await Self.values(cluster, name, token: try await Self.token(cluster, name)) == "1,2")
            }
            let failed = (recovered.json["failed"] as? [Any] ?? []) + (rest.json["failed"] as? [Any] ?? [])
            #expect(failed.isEmpty)
            let missing = try await cluster.call("POST", "/v1/nodes/no-such-node/recover")
            #expect(missing.status == 404)
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
                ("GET", "/v1/organizations/acme/deleted-databases", [:]),
                ("POST", "/v1/organizations/acme/databases/orders/undelete", [:]),
                ("POST", "/v1/nodes/\(cluster.nodes["fra"]!.id)/recover", [:]),
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
