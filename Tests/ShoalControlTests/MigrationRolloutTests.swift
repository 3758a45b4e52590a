import Foundation
import Logging
import ShoalControl
import ShoalHTTP
import ShoalModel
import ShoalTestSupport
import Synchronization
import Testing

/// Fleet schema migrations: a group's tenant schema rolled out to its databases by the control
/// plane, through the nodes' migrate endpoint; migrate on open; drift.
@Suite("Tenant schema rollouts", .serialized, .timeLimit(.minutes(10)))
struct MigrationRolloutTests {
    static let migrations = "/v1/organizations/acme/groups/default/migrations"

    /// Creates `count` databases `db-0…` in the group, eight at a time.
    static func createDatabases(_ cluster: LiveCluster, _ names: [String]) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for index in stride(from: worker, to: names.count, by: 8) {
                        let answer = try await cluster.call(
                            "POST", "/v1/organizations/acme/databases",
                            json: ["name": names[index], "group": "default"])
                        guard answer.status == 200 else {
                            throw ClusterError("creating \(names[index]): \(answer.status) \(answer.text)")
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    static func addMigration(_ cluster: LiveCluster, _ name: String, _ sql: String) async throws -> Answer {
        try await cluster.call("POST", migrations, json: ["name": name, "sql": sql])
    }

    static func rollout(_ cluster: LiveCluster) async throws -> [String: Any] {
        try #require(try await cluster.call("GET", migrations + "/rollout").json["rollout"] as? [String: Any])
    }

    /// Starts a rollout and waits until it is in one of `states`; returns it.
    static func apply(
        _ cluster: LiveCluster, _ options: [String: Any] = [:], until states: Set<String> = ["done"]
    ) async throws -> [String: Any] {
        let started = try await cluster.call("POST", migrations + "/apply", json: options)
        guard started.status == 200 else { throw ClusterError("apply: \(started.status) \(started.text)") }
        return try await waitFor(cluster, states)
    }

    static func waitFor(_ cluster: LiveCluster, _ states: Set<String>) async throws -> [String: Any] {
        var last: [String: Any] = [:]
        try await waitUntil("the rollout reaching \(states.sorted())", limit: .seconds(120)) {
            last = try await rollout(cluster)
            return states.contains(last["state"] as? String ?? "")
        }
        return last
    }

    static func groupToken(_ cluster: LiveCluster) async throws -> String {
        let answer = try await cluster.call("POST", "/v1/organizations/acme/groups/default/auth/tokens")
        return try #require(answer.json["jwt"] as? String, "\(answer.text)")
    }

    static func rows(
        _ sql: String, in database: String, _ cluster: LiveCluster, token: String
    ) async throws
        -> [[Any]]
    {
        let answer = try await LiveCluster.execute(
            sql, at: cluster.nodes["fra"]!.url + "/db/acme/\(database)", token: token)
        guard !answer.pipelineFailed, answer.status == 200,
            let results = answer.json["results"] as? [[String: Any]],
            let result = (results.first?["response"] as? [String: Any])?["result"] as? [String: Any],
            let rows = result["rows"] as? [[Any]]
        else { throw ClusterError("\(sql) on \(database): \(answer.status) \(answer.text)") }
        return rows
    }

    static func integer(_ value: Any) -> Int64? {
        guard let object = value as? [String: Any] else { return nil }
        if let text = object["value"] as? String { return Int64(text) }
        return (object["value"] as? NSNumber)?.int64Value
    }

    /// The number a one-row, one-column query answers.
    static func count(_ sql: String, in database: String, _ cluster: LiveCluster, token: String) async throws -> Int64 {
        let rows = try await rows(sql, in: database, cluster, token: token)
        return try #require(rows.first?.first.flatMap { integer($0) }, "\(sql) on \(database) answered \(rows)")
    }

    @Test func aRolloutOverAThousandDatabasesLosesNoWriteWhileAWriterInsertsIntoEveryOne() async throws {
        let count = 1000
        try await LiveCluster.with(.sqlite) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default", plan: "scaler")
            let names = (0..<count).map { "db-\($0)" }
            try await Self.createDatabases(cluster, names)
            #expect(
                try await Self.addMigration(cluster, "0001_items", "CREATE TABLE items (id INTEGER PRIMARY KEY, v)")
                    .status == 200)
            let first = try await Self.apply(cluster, ["concurrency": 8])
            #expect(first["done"] as? Int == count, "\(first)")
            let token = try await Self.groupToken(cluster)

            // A writer inserts into every database, round after round, while the second migration
            // rolls out; every write it makes must land, none refused.
            let written = Shared([Int](repeating: 0, count: count))
            let refused = Shared<[String]>([])
            let stop = Shared(false)
            let rolled = try await withThrowingTaskGroup(of: Void.self) { group -> [Int?] in
                for worker in 0..<4 {
                    group.addTask {
                        while !stop.withLock({ $0 }) {
                            for index in stride(from: worker, to: count, by: 4) {
                                let answer = try await LiveCluster.execute(
                                    "INSERT INTO items (v) VALUES (\(index))",
                                    at: cluster.nodes["fra"]!.url + "/db/acme/\(names[index])", token: token)
                                if answer.status == 200, !answer.pipelineFailed {
                                    written.withLock { $0[index] += 1 }
                                } else {
                                    refused.withLock { $0.append("\(names[index]): \(answer.status) \(answer.text)") }
                                }
                                if stop.withLock({ $0 }) { break }
                            }
                        }
                    }
                }
                // One full round of writes first, so every database is written to during the rollout.
                try await waitUntil("a first round of writes", limit: .seconds(120)) {
                    written.withLock { $0.allSatisfy { $0 > 0 } }
                }
                let added = try await Self.addMigration(
                    cluster, "0002_tag", "ALTER TABLE items ADD COLUMN tag TEXT; CREATE INDEX items_tag ON items (tag);"
                )
                #expect(added.status == 200, "\(added.text)")
                let second = try await Self.apply(cluster, ["concurrency": 8])
                stop.withLock { $0 = true }
                try await group.waitForAll()
                return [second["done"] as? Int, second["failed"] as? Int]
            }
            #expect(rolled == [count, 0])
            #expect(refused.withLock { $0 }.isEmpty, "\(refused.withLock { Array($0.prefix(5)) })")
            // Every write is there, and every database applied each migration exactly once.
            let counts = written.withLock { $0 }
            for index in stride(from: 0, to: count, by: 37) {
                let name = names[index]
                #expect(
                    try await Self.count("SELECT count(*) FROM items", in: name, cluster, token: token)
                        == Int64(counts[index]))
                #expect(
                    try await Self.count(
                        "SELECT count(*) FROM _shoal_migrations WHERE version IN (1, 2)", in: name, cluster,
                        token: token) == 2)
                #expect(
                    try await Self.count(
                        "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'tag'", in: name, cluster,
                        token: token) == 1)
            }
            let list = try await cluster.call("GET", Self.migrations).json
            let listed = try #require(list["migrations"] as? [[String: Any]])
            #expect(listed.map { $0["applied"] as? Int } == [count, count])
            #expect(list["schema_version"] as? Int == 2)
            #expect(list["drifted"] as? Int == 0)
        }
    }

    @Test func failuresOnChosenDatabasesAreReportedWithTheirErrorsAndRetryCompletes() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            let names = (0..<20).map { "db-\($0)" }
            try await Self.createDatabases(cluster, names)
            let token = try await Self.groupToken(cluster)
            let chosen = ["db-1", "db-4", "db-5", "db-9", "db-12", "db-17", "db-19"]
            for name in chosen {
                _ = try await Self.rows("CREATE TABLE audit (note TEXT)", in: name, cluster, token: token)
            }
            #expect(
                try await Self.addMigration(cluster, "0001_audit", "CREATE TABLE audit (id INTEGER PRIMARY KEY)")
                    .status == 200)
            let stopped = try await Self.apply(cluster, ["continue_on_error": true], until: ["done", "stopped"])
            #expect(stopped["state"] as? String == "done")
            #expect(stopped["failed"] as? Int == 7)
            #expect(stopped["done"] as? Int == 13)
            let failures = try #require(stopped["failures"] as? [[String: Any]])
            #expect(failures.compactMap { $0["database"] as? String }.sorted() == chosen.sorted())
            for failure in failures {
                let error = failure["error"] as? String ?? ""
                #expect(error.contains("SQLITE_ERROR") && error.contains("table audit already exists"), "\(error)")
            }
            // The tenants' own tables go; retry finishes the rollout.
            for name in chosen { _ = try await Self.rows("DROP TABLE audit", in: name, cluster, token: token) }
            let retried = try await cluster.call("POST", Self.migrations + "/rollout/retry")
            #expect(retried.status == 200, "\(retried.text)")
            let done = try await Self.waitFor(cluster, ["done"])
            #expect(done["failed"] as? Int == 0)
            #expect(done["done"] as? Int == 20)
            for name in chosen {
                #expect(
                    try await Self.count("SELECT count(*) FROM _shoal_migrations", in: name, cluster, token: token) == 1
                )
            }
        }
    }

    @Test func theStopPolicyStopsAtTheFirstFailureAndSkipFinishes() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            try await Self.createDatabases(cluster, (0..<6).map { "db-\($0)" })
            let token = try await Self.groupToken(cluster)
            _ = try await Self.rows("CREATE TABLE audit (note TEXT)", in: "db-3", cluster, token: token)
            _ = try await Self.addMigration(cluster, "0001_audit", "CREATE TABLE audit (id INTEGER PRIMARY KEY)")
            let stopped = try await Self.apply(cluster, ["concurrency": 1], until: ["stopped", "done"])
            #expect(stopped["state"] as? String == "stopped")
            #expect(stopped["failed"] as? Int == 1)
            let skipped = try await cluster.call("POST", Self.migrations + "/rollout/skip")
            #expect(skipped.status == 200, "\(skipped.text)")
            let done = try await Self.waitFor(cluster, ["done"])
            #expect(done["skipped"] as? Int == 1)
            #expect(done["done"] as? Int == 5)
        }
    }

    @Test func editedAndFailingMigrationsAreRefusedAndCallsAreAuthorized() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            try await cluster.makeGroup(organization: "rival", group: "default")
            #expect(try await Self.addMigration(cluster, "0001_t", "CREATE TABLE t (x)").status == 200)
            // The same name and SQL again is the same migration.
            #expect(try await Self.addMigration(cluster, "0001_t", "CREATE TABLE t (x)").status == 200)
            let edited = try await Self.addMigration(cluster, "0001_t", "CREATE TABLE t (x, y)")
            #expect(edited.status == 409)
            #expect(edited.errorMessage.contains("never edited"), "\(edited.text)")
            let failing = try await Self.addMigration(cluster, "0002_again", "CREATE TABLE t (z)")
            #expect(failing.status == 422)
            #expect(failing.errorMessage.contains("dry run") && failing.errorMessage.contains("already exists"))
            let list = try await cluster.call("GET", Self.migrations).json["migrations"] as? [[String: Any]]
            #expect(list?.count == 1)

            // No token, and another organization's token, are refused on every migration route.
            let rival = try #require(
                try await cluster.call("POST", "/v1/organizations/rival/api-tokens", json: ["name": "ci"])
                    .json["token"] as? String)
            for (method, path) in [
                ("GET", Self.migrations), ("POST", Self.migrations), ("POST", Self.migrations + "/apply"),
                ("GET", Self.migrations + "/rollout"), ("POST", Self.migrations + "/rollout/pause"),
            ] {
                let body: [String: Any] = ["name": "0009_x", "sql": "CREATE TABLE x (y)"]
                #expect(try await cluster.call(method, path, json: body, token: "nope").status == 401)
                let foreign = try await cluster.call(method, path, json: body, token: rival)
                #expect([403, 404].contains(foreign.status), "\(method) \(path): \(foreign.status)")
            }
            // The node's migrate endpoint takes its admin token only.
            let node = cluster.nodes["fra"]!.url + "/v1/namespaces/acme/db-0/migrate"
            #expect(try await LiveCluster.send("POST", node, json: ["migrations": []], token: nil).status == 401)
            #expect(try await LiveCluster.send("POST", node, json: ["migrations": []], token: rival).status == 401)
        }
    }

    @Test func databasesCreatedDuringAndAfterARolloutEndAtTheLatestSchema() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            try await Self.createDatabases(cluster, (0..<10).map { "db-\($0)" })
            _ = try await Self.addMigration(cluster, "0001_t", "CREATE TABLE t (x)")
            // Two canaries, then it waits for approval.
            let waiting = try await Self.apply(cluster, ["canary": "2"], until: ["approval"])
            #expect(waiting["done"] as? Int == 2)
            try await Self.createDatabases(cluster, ["mid-0", "mid-1", "mid-2"])
            #expect(try await cluster.call("POST", Self.migrations + "/rollout/resume").status == 200)
            let done = try await Self.waitFor(cluster, ["done"])
            #expect(done["done"] as? Int == 13, "\(done)")
            // Created afterwards: migrated when it first opens, before its first statement.
            try await Self.createDatabases(cluster, ["late"])
            let token = try await Self.groupToken(cluster)
            for name in ["mid-0", "mid-2", "late", "db-7"] {
                #expect(try await Self.count("SELECT count(*) FROM t", in: name, cluster, token: token) == 0)
                #expect(
                    try await Self.count("SELECT max(version) FROM _shoal_migrations", in: name, cluster, token: token)
                        == 1)
            }
            let database = try await cluster.call("GET", "/v1/organizations/acme/databases/mid-1").json["database"]
            #expect((database as? [String: Any])?["schema_version"] as? Int == 1)
            // The one migrated on opening reaches the catalog with its node's next heartbeat.
            try await waitUntil("the late database's version in the catalog", limit: .seconds(30)) {
                let late = try await cluster.call("GET", "/v1/organizations/acme/databases/late").json["database"]
                return (late as? [String: Any])?["schema_version"] as? Int == 1
            }
        }
    }

    @Test func aDatabaseWhoseNodeWasUnreachableIsMigratedOnItsFirstOpenAndADriftedOneIsReported() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            try await Self.createDatabases(cluster, ["away-0", "away-1"])
            _ = try await Self.addMigration(cluster, "0001_t", "CREATE TABLE t (x)")
            // The node's address in the catalog leads nowhere while the rollout runs.
            let node = cluster.nodes["fra"]!
            try await cluster.store.transaction { transaction in
                _ = try await transaction.query(
                    "UPDATE nodes SET url = $1 WHERE id = $2", [.text("http://127.0.0.1:9"), .text(node.id)])
            }
            let done = try await Self.apply(cluster, ["continue_on_error": true], until: ["done"])
            #expect(done["failed"] as? Int == 2)
            let error = (done["failures"] as? [[String: Any]])?.first?["error"] as? String ?? ""
            #expect(error.contains("cannot be reached"), "\(error)")
            try await cluster.store.transaction { transaction in
                _ = try await transaction.query(
                    "UPDATE nodes SET url = $1 WHERE id = $2", [.text(node.url), .text(node.id)])
            }
            // The node is back: the first request opens the database at the released schema.
            let token = try await Self.groupToken(cluster)
            #expect(try await Self.count("SELECT count(*) FROM t", in: "away-0", cluster, token: token) == 0)
            #expect(
                try await Self.count("SELECT count(*) FROM _shoal_migrations", in: "away-0", cluster, token: token) == 1
            )
            // A tenant changes its schema by hand; retry finds the migration applied (once) and the drift.
            _ = try await Self.rows("CREATE INDEX by_hand ON t (x)", in: "away-1", cluster, token: token)
            // The record is the node's: a tenant may read it, not change it.
            let tamper = try await LiveCluster.execute(
                "DELETE FROM _shoal_migrations", at: node.url + "/db/acme/away-1", token: token)
            #expect(tamper.pipelineFailed, "\(tamper.text)")
            #expect(try await cluster.call("POST", Self.migrations + "/rollout/retry").status == 200)
            let retried = try await Self.waitFor(cluster, ["done"])
            #expect(retried["failed"] as? Int == 0)
            #expect(
                try await Self.count("SELECT count(*) FROM _shoal_migrations", in: "away-1", cluster, token: token) == 1
            )
            let drifted = try await cluster.call("GET", "/v1/organizations/acme/databases/away-1").json["database"]
            let drift = (drifted as? [String: Any])?["schema_drift"] as? [String: Any]
            #expect(drift?["unexpected"] as? [String] == ["index by_hand"], "\(String(describing: drifted))")
            #expect(try await cluster.call("GET", Self.migrations).json["drifted"] as? Int == 1)
        }
    }

    @Test func aRecordPlantedByATenantFailsItsDatabaseAloneAndTheNodeStaysUp() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            try await Self.createDatabases(cluster, ["planted", "plain"])
            let token = try await Self.groupToken(cluster)
            // The authorizer sees only a renamed table's old name; the migrator checks the result.
            for sql in [
                "CREATE TABLE x (version, name, checksum, applied_at)", "INSERT INTO x VALUES (0, 'a', 'b', 0)",
                "ALTER TABLE x RENAME TO _shoal_migrations",
            ] {
                _ = try await Self.rows(sql, in: "planted", cluster, token: token)
            }
            for sql in ["CREATE VIEW _shoal_migrations AS SELECT 1", "CREATE TEMP TABLE _shoal_migrations (x)"] {
                let refused = try await LiveCluster.execute(
                    sql, at: cluster.nodes["fra"]!.url + "/db/acme/plain", token: token)
                #expect(refused.pipelineFailed, "\(sql): \(refused.text)")
            }
            _ = try await Self.addMigration(cluster, "0001_t", "CREATE TABLE t (x)")
            let done = try await Self.apply(cluster, ["continue_on_error": true], until: ["done"])
            #expect(done["done"] as? Int == 1)
            let failures = done["failures"] as? [[String: Any]] ?? []
            #expect(failures.map { $0["database"] as? String } == ["planted"])
            let error = failures.first?["error"] as? String
            #expect(error?.contains("not the one the node keeps") == true, "\(failures)")
            #expect(try await Self.count("SELECT count(*) FROM t", in: "plain", cluster, token: token) == 0)
        }
    }

    @Test func aGroupsSchemaGoesOnlyToANodeHoldingOneOfItsPrimariesWithItsOwnCredential() async throws {
        try await LiveCluster.with(.sqlite, locations: ["fra", "ams"]) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default", location: "fra")
            try await Self.createDatabases(cluster, ["db-0"])
            _ = try await Self.addMigration(cluster, "0001_t", "CREATE TABLE t (x)")
            let groups = try await cluster.call("GET", "/v1/organizations/acme/groups/default").json
            let groupID = try #require((groups["group"] as? [String: Any])?["uuid"] as? String, "\(groups)")
            let fra = cluster.nodes["fra"]!
            let ams = cluster.nodes["ams"]!
            let path = { (node: String) in cluster.controlURL + "/v1/nodes/\(node)/groups/\(groupID)/schema" }
            let own = try await LiveCluster.send("GET", path(fra.id), token: try fra.credential())
            #expect(own.status == 200, "\(own.text)")
            #expect((own.json["migrations"] as? [[String: Any]])?.count == 1)
            // No token, an API token, another node's credential, and a node holding no primary of the group.
            #expect(try await LiveCluster.send("GET", path(fra.id), token: nil).status == 401)
            #expect(
                [401, 403].contains(try await LiveCluster.send("GET", path(fra.id), token: cluster.adminToken).status))
            #expect(
                [401, 403].contains(try await LiveCluster.send("GET", path(fra.id), token: try ams.credential()).status)
            )
            #expect(try await LiveCluster.send("GET", path(ams.id), token: try ams.credential()).status == 404)
        }
    }

    @Test func twoInstancesOnOneCatalogDriveEachRolloutOnce() async throws {
        try await LiveCluster.with(.postgresql) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            try await Self.createDatabases(cluster, (0..<40).map { "db-\($0)" })
            _ = try await Self.addMigration(cluster, "0001_t", "CREATE TABLE t (x)")
            var logger = Logger(label: "shoal.control.test.second")
            logger.logLevel = .critical
            let url = try CatalogBackend.postgresURL
            let store = try PostgresCatalogStore(
                url: url + (url.contains("?") ? "&" : "?") + "schema=\(cluster.schema)", logger: logger)
            let second = ControlPlane(catalog: Catalog(store: store, now: { cluster.time.now() }), logger: logger)
            try await store.whileRunning {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { await second.runRollouts(every: .milliseconds(50)) }
                    let done = try await Self.apply(cluster, ["concurrency": 2])
                    #expect(done["done"] as? Int == 40)
                    group.cancelAll()
                }
            }
            // Each task was sent and recorded once: no instance drove the rollout beside the other.
            let attempts = try await cluster.store.transaction { transaction in
                try await transaction.query("SELECT attempts FROM rollout_tasks", []).map { try $0.integer(0) }
            }
            #expect(attempts.count == 40)
            #expect(attempts.allSatisfy { $0 == 1 }, "\(attempts)")
        }
    }
}

/// A value tasks share.
final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func withLock<T>(_ body: (inout Value) -> T) -> T { value.withLock { body(&$0) } }
}
