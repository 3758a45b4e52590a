import Foundation
import ShoalControl
import ShoalModel
import ShoalNode
import ShoalTestSupport
import Testing

/// A settings change is checked before it is stored and reaches every node that may hold the
/// database: what a node would refuse, and a tenant's size limit past its plan, are refused before
/// anything is stored; a node that cannot be reached is named in the answer and gets the settings
/// once it is back. On both catalog backends.
@Suite("Platform API: database settings reach the nodes", .serialized, .timeLimit(.minutes(5)))
struct SettingsPushContractTests {
    static let path = "/v1/organizations/acme/databases/ledger/configuration"

    /// Creates `acme/ledger` in group `default` (organization on `plan`) and makes its node hold it;
    /// returns its id and a database token.
    static func createLedger(_ cluster: LiveCluster, plan: String = "free") async throws -> (id: String, jwt: String) {
        try await cluster.makeGroup(organization: "acme", group: "default", plan: plan)
        let created = try await cluster.call(
            "POST", "/v1/organizations/acme/databases", json: ["name": "ledger", "group": "default"])
        try #require(created.status == 200, "\(created.text)")
        let id = try #require((created.json["database"] as? [String: Any])?["DbId"] as? String)
        let jwt = try #require(
            try await cluster.call("POST", "/v1/organizations/acme/databases/ledger/auth/tokens").json["jwt"]
                as? String)
        let url = cluster.nodes["fra"]!.url + "/db/acme/ledger"
        #expect(!(try await LiveCluster.execute("CREATE TABLE t (x)", at: url, token: jwt).pipelineFailed))
        return (id, jwt)
    }

    /// The settings the `fra` node holds for `acme/ledger`.
    static func nodeSettings(_ cluster: LiveCluster) async throws -> DatabaseSettings {
        let namespace = try Namespace(organization: "acme", database: "ledger")
        return try await cluster.nodes["fra"]!.node.store.withDatabase(namespace) { $0.settings }
    }

    /// Points the `fra` node's URL in the catalog at `url` (a port nothing listens on makes the
    /// control plane unable to reach it), in place of `current`.
    static func moveNode(_ cluster: LiveCluster, from current: String, to url: String) async throws {
        try await cluster.store.transaction { transaction in
            _ = try await transaction.query("UPDATE nodes SET url = $1 WHERE url = $2", [.text(url), .text(current)])
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func aChangeWhileThePrimarysNodeIsUnreachableAnswersItPendingAndReachesTheNodeOnceItIsBack(
        _ backend: CatalogBackend
    ) async throws {
        try await LiveCluster.with(backend) { cluster in
            let (id, jwt) = try await Self.createLedger(cluster)
            let node = cluster.nodes["fra"]!
            let url = node.url + "/db/acme/ledger"
            let unreachable = "http://127.0.0.1:9"
            try await Self.moveNode(cluster, from: node.url, to: unreachable)

            // Stored, answered 202 with the node that has not confirmed; not a failure.
            let patched = try await cluster.call("PATCH", Self.path, json: ["block_writes": true])
            #expect(patched.status == 202, "\(patched.text)")
            #expect(patched.json["block_writes"] as? Bool == true)
            let pending = try #require(patched.json["pending_nodes"] as? [[String: Any]])
            #expect(pending.map { $0["id"] as? String } == [node.id])
            #expect(pending.map { $0["location"] as? String } == ["fra"])
            // A newer change replaces the push still pending: one per database and node.
            let newer = try await cluster.call("PATCH", Self.path, json: ["size_limit": "10mb"])
            #expect(newer.status == 202, "\(newer.text)")
            #expect(try await cluster.catalog.pendingSettingsPushCount(databaseID: id) == 1)
            let rows = try await cluster.store.transaction { transaction in
                try await transaction.query(
                    "SELECT attempts, last_error FROM database_settings_pushes WHERE database_id = $1", [.text(id)])
            }
            let row = try #require(rows.first)
            #expect(try row.integer(0) >= 1)
            #expect(try row.optionalText(1) != nil)
            let shown = try await cluster.call("GET", Self.path)
            #expect(shown.json["size_limit"] as? String == "\(10 << 20)")
            #expect((shown.json["pending_nodes"] as? [[String: Any]])?.count == 1)
            // The node has not heard of either change.
            #expect(!(try await LiveCluster.execute("INSERT INTO t VALUES (1)", at: url, token: jwt).pipelineFailed))
            #expect(try await Self.nodeSettings(cluster).maxSizeBytes == nil)

            // The node is back; once the retry is due it gets the settings as the catalog holds them.
            try await Self.moveNode(cluster, from: unreachable, to: node.url)
            cluster.time.advance(seconds: 61)
            try await waitUntil("the retried settings push") {
                try await cluster.catalog.pendingSettingsPushCount(databaseID: id) == 0
            }
            let held = try await Self.nodeSettings(cluster)
            #expect(held.blockWrites)
            #expect(held.maxSizeBytes == 10 << 20)
            #expect(try await LiveCluster.execute("INSERT INTO t VALUES (2)", at: url, token: jwt).pipelineFailed)
            let confirmed = try await cluster.call("GET", Self.path)
            #expect((confirmed.json["pending_nodes"] as? [[String: Any]])?.isEmpty == true, "\(confirmed.text)")
            // With the node reachable, a change is confirmed in the answer.
            let lifted = try await cluster.call("PATCH", Self.path, json: ["block_writes": false])
            #expect(lifted.status == 200, "\(lifted.text)")
            #expect((lifted.json["pending_nodes"] as? [[String: Any]])?.isEmpty == true)
            #expect(!(try await LiveCluster.execute("INSERT INTO t VALUES (3)", at: url, token: jwt).pipelineFailed))
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func deletingADatabaseDropsItsPendingSettingsPushes(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            let (id, _) = try await Self.createLedger(cluster)
            let node = cluster.nodes["fra"]!
            let unreachable = "http://127.0.0.1:9"
            try await Self.moveNode(cluster, from: node.url, to: unreachable)
            #expect(try await cluster.call("PATCH", Self.path, json: ["block_reads": true]).status == 202)
            #expect(try await cluster.catalog.pendingSettingsPushCount(databaseID: id) == 1)

            #expect(try await cluster.call("DELETE", "/v1/organizations/acme/databases/ledger").status == 200)
            #expect(try await cluster.catalog.pendingSettingsPushCount(databaseID: id) == 0)
            #expect(try await cluster.catalog.pendingDeletionCount(databaseID: id) == 1)
            try await Self.moveNode(cluster, from: unreachable, to: node.url)
            cluster.time.advance(seconds: 61)
            try await waitUntil("the retried delete") {
                try await cluster.catalog.pendingDeletionCount(databaseID: id) == 0
            }
            #expect(try await cluster.catalog.pendingSettingsPushCount() == 0)
        }
    }

    /// A plan's `backup_retention` reaches the nodes of its databases: at creation, when the plan
    /// changes it, and when the organization changes plan.
    @Test(arguments: CatalogBackend.allCases)
    func thePlansBackupRetentionReachesTheNodes(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            let plans = try #require(try await cluster.call("GET", "/v1/plans").json["plans"] as? [[String: Any]])
            let retentions = Dictionary(
                uniqueKeysWithValues: plans.compactMap { plan -> (String, Int)? in
                    guard let name = plan["name"] as? String,
                        let retention = (plan["quotas"] as? [String: Any])?["backup_retention"] as? Int
                    else { return nil }
                    return (name, retention)
                })
            #expect(retentions["free"] == 86_400)
            #expect(retentions["scaler"] == 30 * 86_400)
            let (id, _) = try await Self.createLedger(cluster, plan: "free")
            #expect(try await Self.nodeSettings(cluster).backupRetention == 86_400)

            for bad in [0, 60, 20 * 366 * 86_400] {
                let refused = try await cluster.call(
                    "PUT", "/v1/plans/free",
                    json: [
                        "databases": 500, "groups": 10, "locations_per_group": 3, "storage_bytes": 9_000_000_000,
                        "backup_retention": bad,
                    ])
                #expect(refused.status == 422, "\(bad): \(refused.text)")
            }
            let changed = try await cluster.call(
                "PUT", "/v1/plans/free",
                json: [
                    "databases": 500, "groups": 10, "locations_per_group": 3, "storage_bytes": 9_000_000_000,
                    "backup_retention": 7200,
                ])
            #expect(changed.status == 200, "\(changed.text)")
            try await waitUntil("the new retention on the node") {
                let pending = try await cluster.catalog.pendingSettingsPushCount(databaseID: id)
                let retention = try await Self.nodeSettings(cluster).backupRetention
                return pending == 0 && retention == 7200
            }
            let moved = try await cluster.call("PATCH", "/v1/organizations/acme", json: ["plan": "scaler"])
            #expect(moved.status == 200, "\(moved.text)")
            try await waitUntil("the other plan's retention on the node") {
                let pending = try await cluster.catalog.pendingSettingsPushCount(databaseID: id)
                let retention = try await Self.nodeSettings(cluster).backupRetention
                return pending == 0 && retention == 30 * 86_400
            }
            // A plan saved without a retention keeps a day.
            let plain = try await cluster.call(
                "PUT", "/v1/plans/plain",
                json: ["databases": 5, "groups": 1, "locations_per_group": 1, "storage_bytes": 1 << 20])
            #expect(plain.status == 200, "\(plain.text)")
            let saved = try #require(try await cluster.call("GET", "/v1/plans").json["plans"] as? [[String: Any]])
            #expect(
                saved.first { $0["name"] as? String == "plain" }.flatMap {
                    ($0["quotas"] as? [String: Any])?["backup_retention"] as? Int
                } == 86_400)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func aTenantSizeLimitAboveThePlansMaximumIsRefusedBeforeItIsStored(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            let plan = try await cluster.call(
                "PUT", "/v1/plans/tiny",
                json: ["databases": 10, "groups": 2, "locations_per_group": 1, "storage_bytes": 1 << 20])
            try #require(plan.status == 200, "\(plan.text)")
            let (id, _) = try await Self.createLedger(cluster, plan: "tiny")
            let tenant = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/api-tokens", json: ["name": "app"]).json["token"]
                    as? String)

            for size in ["2mb", "1048577", "1gb"] {
                let refused = try await cluster.call("PATCH", Self.path, json: ["size_limit": size], token: tenant)
                #expect(refused.status == 403, "size \(size): \(refused.text)")
                #expect(refused.errorCode == "quota_exceeded")
                #expect(refused.errorMessage.contains("tiny plan"))
                #expect(refused.errorMessage.contains("\(1 << 20) bytes"))
            }
            // Nothing was stored, and nothing was sent to the node.
            #expect(try await cluster.call("GET", Self.path).json["size_limit"] as? String == "")
            #expect(try await cluster.catalog.pendingSettingsPushCount(databaseID: id) == 0)
            #expect(try await Self.nodeSettings(cluster).maxSizeBytes == nil)

            // Up to the plan's maximum is the tenant's to set; removing it would go past the plan.
            let within = try await cluster.call("PATCH", Self.path, json: ["size_limit": "1mb"], token: tenant)
            #expect(within.status == 200, "\(within.text)")
            #expect(within.json["size_limit"] as? String == "\(1 << 20)")
            for size in ["", "0"] {
                let removal = try await cluster.call("PATCH", Self.path, json: ["size_limit": size], token: tenant)
                #expect(removal.status == 403, "size \(size.debugDescription): \(removal.text)")
                #expect(removal.errorCode == "quota_exceeded")
                #expect(removal.errorMessage.contains("\(1 << 20) bytes"))
            }
            #expect(try await cluster.call("GET", Self.path).json["size_limit"] as? String == "\(1 << 20)")
            #expect(try await Self.nodeSettings(cluster).maxSizeBytes == 1 << 20)
            // Sending the current value is no change.
            let unchanged = try await cluster.call(
                "PATCH", Self.path, json: ["size_limit": "1mb", "delete_protection": true], token: tenant)
            #expect(unchanged.status == 200, "\(unchanged.text)")
            let audit = try await cluster.call("GET", "/v1/organizations/acme/audit-logs")
            let entries = try #require(audit.json["audit_logs"] as? [[String: Any]])
            #expect(
                entries.contains {
                    $0["action"] as? String == "database.configure" && $0["outcome"] as? String == "quota_exceeded"
                })

            // The operator may go past the plan, and remove the limit.
            let operatorLimit = try await cluster.call("PATCH", Self.path, json: ["size_limit": "1gb"])
            #expect(operatorLimit.status == 200, "\(operatorLimit.text)")
            #expect(try await Self.nodeSettings(cluster).maxSizeBytes == 1 << 30)
            #expect(try await cluster.call("PATCH", Self.path, json: ["size_limit": ""]).status == 200)
            #expect(try await Self.nodeSettings(cluster).maxSizeBytes == nil)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func aSizeLimitTheNodeWouldRefuseIsRefusedBeforeItIsStoredAndEveryOtherReachesTheNode(
        _ backend: CatalogBackend
    ) async throws {
        try await LiveCluster.with(backend) { cluster in
            let (id, jwt) = try await Self.createLedger(cluster)
            let node = cluster.nodes["fra"]!
            let placement = "/v1/nodes/\(node.id)/databases/acme/ledger"
            let url = node.url + "/db/acme/ledger"
            let sizes: [Int64] = [1, 4095, 4096, 65535, 65536, 1 << 20, 1 << 40, Int64.max / 2]
            var nodeRefused = 0
            for bytes in sizes {
                // What the node's settings decoder (the one its admin API and config.json use) makes of it.
                let body = Data(#"{"max_size_bytes":\#(bytes)}"#.utf8)
                let nodeRefuses = (try? JSONDecoder().decode(DatabaseSettings.self, from: body)) == nil
                let before = try await cluster.call("GET", Self.path).json["size_limit"] as? String
                let answer = try await cluster.call("PATCH", Self.path, json: ["size_limit": "\(bytes)"])
                if nodeRefuses {
                    nodeRefused += 1
                    #expect(answer.status == 400, "\(bytes): \(answer.text)")
                }
                guard answer.status == 200 else {
                    // Refused: nothing stored, nothing owed to the node.
                    #expect(answer.status == 400, "\(bytes): \(answer.text)")
                    #expect(try await cluster.call("GET", Self.path).json["size_limit"] as? String == before)
                    #expect(try await cluster.catalog.pendingSettingsPushCount(databaseID: id) == 0)
                    continue
                }
                // Stored: the node confirmed it in the answer and holds it; what the control plane
                // gives the node for it decodes with the node's own decoder.
                #expect((answer.json["pending_nodes"] as? [[String: Any]])?.isEmpty == true, "\(answer.text)")
                #expect(try await Self.nodeSettings(cluster).maxSizeBytes == bytes)
                let given = try await LiveCluster.send(
                    "GET", cluster.controlURL + placement, token: try node.credential())
                #expect(given.status == 200, "\(given.text)")
                let decoded = try JSONDecoder().decode(DatabaseSettings.self, from: given.data)
                #expect(decoded.maxSizeBytes == bytes)
                #expect(!(try await LiveCluster.execute("SELECT count(*) FROM t", at: url, token: jwt).pipelineFailed))
            }
            // The node's own floor was among the sizes tried.
            #expect(nodeRefused == 2)
        }
    }
}
