import Foundation
import ShoalBackup
import ShoalModel
import ShoalNodeTestSupport
import ShoalReplication
import ShoalSQLite
import ShoalTestSupport
import Testing

@testable import ShoalNode

@Suite(.timeLimit(.minutes(2))) struct NodeBackupTests {
    static func withBackedUpNode(
        _ configure: @escaping (inout NodeConfiguration) -> Void = { _ in },
        _ body: @Sendable (LiveNode, String) async throws -> Void
    ) async throws {
        let scratch = try TemporaryDirectory()
        let storeDirectory = scratch.file("store")
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.backupStore = try? DirectoryObjectStore(root: storeDirectory)
            $0.backupShipping.batchDelay = .milliseconds(20)
            configure(&$0)
        }) { node in
            try await body(node, storeDirectory)
        }
    }

    static func execute(_ node: LiveNode, _ database: String = "app", _ sql: String) async throws -> String {
        let answer = try await node.request(
            "POST", "/db/acme/\(database)/v1/execute", body: #"{"stmt":{"sql":"\#(sql)"}}"#)
        #expect(answer.status == 200, "\(sql): \(answer.body)")
        return answer.body
    }

    /// The row count of `t`, as the answer's one value.
    static func count(_ node: LiveNode, _ database: String = "app") async throws -> String {
        let body = try await execute(node, database, "SELECT count(*) AS n FROM t")
        guard let range = body.range(of: #""value":""#), let end = body[range.upperBound...].firstIndex(of: "\"") else {
            return body
        }
        return String(body[range.upperBound..<end])
    }

    @Test func restoreInPlaceToATimeThenUndoIt() async throws {
        try await Self.withBackedUpNode { node, _ in
            _ = try await Self.execute(node, "app", "CREATE TABLE t (x)")
            for value in 1...3 { _ = try await Self.execute(node, "app", "INSERT INTO t VALUES (\(value))") }
            let middle = RFC3339.format(microseconds: CommitTime.now())
            for value in 4...6 { _ = try await Self.execute(node, "app", "INSERT INTO t VALUES (\(value))") }
            #expect(try await Self.count(node) == "6")

            let restored = try await node.request(
                "POST", "/v1/namespaces/acme/app/restore", body: #"{"timestamp":"\#(middle)"}"#)
            #expect(restored.status == 200, "\(restored.body)")
            let result = try JSONDecoder().decode(Platform.RestoreResult.self, from: Data(restored.body.utf8))
            #expect(try await Self.count(node) == "3")
            #expect(result.restoredTo <= middle)
            let undo = try #require(result.undoTimestamp)
            #expect(undo > middle)

            // Writes go on from the restored state, and restoring to the undo point brings back
            // the state the restore replaced.
            _ = try await Self.execute(node, "app", "INSERT INTO t VALUES (7)")
            let undone = try await node.request(
                "POST", "/v1/namespaces/acme/app/restore", body: #"{"timestamp":"\#(undo)"}"#)
            #expect(undone.status == 200, "\(undone.body)")
            #expect(try await Self.count(node) == "6")
            let values = try await Self.execute(node, "app", "SELECT group_concat(x) FROM t")
            #expect(values.contains("1,2,3,4,5,6"))

            let status = try await node.request("GET", "/v1/namespaces/acme/app/backups")
            #expect(status.status == 200)
            let backups = try JSONDecoder().decode(Platform.BackupStatus.self, from: Data(status.body.utf8))
            #expect(try #require(backups.earliest) < middle)
            #expect(backups.objects > 3)
        }
    }

    @Test func aNewDatabaseIsSeededFromAnothersBackup() async throws {
        try await Self.withBackedUpNode { node, _ in
            _ = try await Self.execute(node, "app", "CREATE TABLE t (x)")
            _ = try await Self.execute(node, "app", "INSERT INTO t VALUES (1), (2)")
            #expect(try await node.request("POST", "/v1/namespaces/acme/copy/create").status == 200)
            let seeded = try await node.request(
                "POST", "/v1/namespaces/acme/copy/restore", body: #"{"source":"acme.app"}"#)
            #expect(seeded.status == 200, "\(seeded.body)")
            let result = try JSONDecoder().decode(Platform.RestoreResult.self, from: Data(seeded.body.utf8))
            #expect(result.undoTimestamp == nil)
            #expect(try await Self.count(node, "copy") == "2")
            // The copy is a database of its own.
            _ = try await Self.execute(node, "copy", "INSERT INTO t VALUES (3)")
            #expect(try await Self.count(node) == "2")
        }
    }

    @Test func badRestoresAreRefusedWithAClearError() async throws {
        try await Self.withBackedUpNode { node, _ in
            _ = try await Self.execute(node, "app", "CREATE TABLE t (x)")
            let garbled = try await node.request(
                "POST", "/v1/namespaces/acme/app/restore", body: #"{"timestamp":"yesterday"}"#)
            #expect(garbled.status == 400)
            #expect(garbled.body.contains("RFC 3339"))
            let early = try await node.request(
                "POST", "/v1/namespaces/acme/app/restore", body: #"{"timestamp":"2001-01-01T00:00:00Z"}"#)
            #expect(early.status == 400)
            #expect(early.body.contains("earliest restorable time"))
            let unknown = try await node.request("POST", "/v1/namespaces/acme/none/restore", body: "{}")
            #expect(unknown.status == 404)
            let badSource = try await node.request(
                "POST", "/v1/namespaces/acme/app/restore", body: #"{"source":"../../etc"}"#)
            #expect(badSource.status == 400)
            // Nothing was lost on the way.
            _ = try await Self.execute(node, "app", "INSERT INTO t VALUES (1)")
            #expect(try await Self.count(node) == "1")
        }
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            _ = try await Self.execute(node, "app", "CREATE TABLE t (x)")
            let none = try await node.request("POST", "/v1/namespaces/acme/app/restore", body: "{}")
            #expect(none.status == 409)
            #expect(none.body.contains("--backup-dir"))
        }
    }

    @Test func restoresAndBackupsTakeTheAdminTokenOnly() async throws {
        let signer = TokenSigner()
        let verifier = try TokenVerifier(keys: ["k1": signer.publicKey])
        try await Self.withBackedUpNode({ $0.authentication = .tokens(verifier, adminToken: "admin-secret") }) {
            node, _ in
            let tenant = ["Authorization": "Bearer \(try signer.token(["id": "acme/app"]))"]
            let setup = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: #"{"stmt":{"sql":"CREATE TABLE t (x)"}}"#, headers: tenant)
            #expect(setup.status == 200)
            for (method, path) in [
                ("POST", "/v1/namespaces/acme/app/restore"), ("GET", "/v1/namespaces/acme/app/backups"),
                ("DELETE", "/v1/backups/acme.app.d1"),
            ] {
                #expect(try await node.request(method, path, body: "{}").status == 401)
                // The database's own token, and another organization's, are not the admin's.
                let own = try await node.request(method, path, body: "{}", headers: tenant)
                #expect(own.status == 401)
                #expect(own.body.contains("admin token"))
                let foreign = ["Authorization": "Bearer \(try signer.token(["id": "other/app"]))"]
                #expect(try await node.request(method, path, body: "{}", headers: foreign).status == 401)
            }
            let admin = try await node.request(
                "GET", "/v1/namespaces/acme/app/backups", headers: ["Authorization": "Bearer admin-secret"])
            #expect(admin.status == 200)
        }
    }

    @Test func aDeletedDatabasesBackupIsErasedAndAHeldOneIsNot() async throws {
        try await Self.withBackedUpNode { node, storeDirectory in
            let store = try DirectoryObjectStore(root: storeDirectory)
            let created = try await node.request(
                "POST", "/v1/namespaces/acme/orders/create", body: #"{"database_id":"d1"}"#)
            #expect(created.status == 200, "\(created.body)")
            _ = try await Self.execute(node, "orders", "CREATE TABLE t (x)")
            _ = try await Self.execute(node, "orders", "INSERT INTO t VALUES (1), (2)")
            // Held here: refused, and nothing is removed.
            let held = try await node.request("DELETE", "/v1/backups/acme.orders.d1")
            #expect(held.status == 409, "\(held.body)")
            #expect(held.body.contains("delete it before"))
            // The delete ships the last commits first, so the backup holds the final state.
            #expect(try await node.request("DELETE", "/v1/namespaces/acme/orders?database_id=d1").status == 200)
            let kept = try await store.list(prefix: "databases/acme.orders.d1/")
            #expect(!kept.isEmpty)
            let final = node.dataDirectory + "/final.db"
            _ = try await BackupRestore.restore("acme.orders.d1", from: store, at: nil, to: final)
            let connection = try Connection(path: final, configuration: .init(flags: [.readWrite, .noMutex]))
            #expect(try DatabaseContents(connection).tables["t"]?.count == 2)
            try connection.close()
            // Another incarnation's objects stay.
            try await store.put("databases/acme.orders.d2/end/1-1", [])
            let erased = try await node.request("DELETE", "/v1/backups/acme.orders.d1")
            #expect(erased.status == 200, "\(erased.body)")
            #expect(erased.body.contains("\"objects\":\(kept.count)"))
            #expect(try await store.list(prefix: "databases/acme.orders.d1/").isEmpty)
            #expect(try await store.list(prefix: "databases/acme.orders.d2/").count == 1)
            // Again: nothing left, nothing removed.
            let again = try await node.request("DELETE", "/v1/backups/acme.orders.d1")
            #expect(again.status == 200)
            #expect(again.body.contains("\"objects\":0"))
            // Only an incarnation's backup is erased this way.
            for bad in ["acme.orders", "not-a-backup", "acme..x.y"] {
                let answer = try await node.request("DELETE", "/v1/backups/\(bad)")
                #expect(answer.status == 400, "\(bad): \(answer.body)")
            }
        }
    }

    /// A node that lost its disk (a new, empty data directory over the same store) is told about a
    /// primary it held: the database comes back from its backup, under the same incarnation, and
    /// its backup goes on past it.
    @Test func aPrimaryPlacedOnANodeThatLostItIsRebuiltFromItsBackup() async throws {
        let scratch = try TemporaryDirectory()
        let storeDirectory = scratch.file("store")
        func configure(_ configuration: inout NodeConfiguration) {
            configuration.backupStore = try? DirectoryObjectStore(root: storeDirectory)
            configuration.backupShipping.batchDelay = .milliseconds(20)
        }
        let settings = #"{"database_id":"d1"}"#
        try await LiveNode.with(configure) { node in
            #expect(try await node.request("POST", "/v1/namespaces/acme/orders/create", body: settings).status == 200)
            _ = try await Self.execute(node, "orders", "CREATE TABLE t (x)")
            _ = try await Self.execute(node, "orders", "INSERT INTO t VALUES (1), (2), (3)")
            #expect(await node.node.store.backups?.flush() == true)
        }
        // Another incarnation under the name has no backup: it starts empty.
        try await LiveNode.with(configure) { node in
            let other = try await node.request(
                "POST", "/v1/namespaces/acme/orders/create", body: #"{"database_id":"d2"}"#)
            #expect(other.status == 200)
            #expect(try await Self.execute(node, "orders", "SELECT count(*) FROM sqlite_master").contains(#""0""#))
        }
        try await LiveNode.with(configure) { node in
            let created = try await node.request("POST", "/v1/namespaces/acme/orders/create", body: settings)
            #expect(created.status == 200, "\(created.body)")
            #expect(try await Self.count(node, "orders") == "3")
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: node.dataDirectory + "/recovering").isEmpty)
            // Writes go on, and the backup follows them past the rebuilt generation.
            _ = try await Self.execute(node, "orders", "INSERT INTO t VALUES (4)")
            #expect(await node.node.store.backups?.flush() == true)
            let store = try DirectoryObjectStore(root: storeDirectory)
            let check = node.dataDirectory + "/check.db"
            let point = try await BackupRestore.restore("acme.orders.d1", from: store, at: nil, to: check)
            #expect(point.position.generation >= 2)
            let connection = try Connection(path: check, configuration: .init(flags: [.readWrite, .noMutex]))
            #expect(try DatabaseContents(connection).tables["t"]?.count == 4)
            try connection.close()
        }
    }

    @Test func commitsReachTheStoreWithoutBeingAskedAndPendingMarkersGo() async throws {
        try await Self.withBackedUpNode { node, storeDirectory in
            _ = try await Self.execute(node, "app", "CREATE TABLE t (x)")
            _ = try await Self.execute(node, "app", "INSERT INTO t VALUES (1)")
            let shipper = try #require(node.node.store.backups)
            #expect(await shipper.flush())
            let store = try DirectoryObjectStore(root: storeDirectory)
            let restored = node.dataDirectory + "/check.db"
            let point = try await BackupRestore.restore("acme.app", from: store, at: nil, to: restored)
            #expect(point.position.frame > 0)
            #expect(try FileManager.default.contentsOfDirectory(atPath: node.dataDirectory + "/backup-pending").isEmpty)
            let metrics = try PrometheusSamples(try await node.request("GET", "/metrics").body)
            #expect((metrics["shoal_node_backup_frames_total"] ?? 0) >= Double(point.position.frame))
            #expect((metrics["shoal_node_backup_requests_total"] ?? 0) >= 2)
            #expect(metrics["shoal_node_backup_pending_databases"] == 0)
            #expect(metrics["shoal_node_backup_lag_seconds"] == 0)
        }
    }
}
