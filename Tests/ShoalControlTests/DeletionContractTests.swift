import Foundation
import ShoalControl
import ShoalNode
import ShoalTestSupport
import Testing

/// Deletion that means gone: a deleted database stops answering at once, even with a stream open;
/// a database created again under the same name is a new incarnation that no old token opens; a
/// node that missed the delete gets it once it answers again. On both catalog backends.
@Suite("Platform API: database deletion", .serialized, .timeLimit(.minutes(5)))
struct DeletionContractTests {
    static let path = "/v1/organizations/acme/databases/ledger"

    /// Creates `acme/ledger` in group `default`; returns its id.
    static func createLedger(_ cluster: LiveCluster) async throws -> String {
        let created = try await cluster.call(
            "POST", "/v1/organizations/acme/databases", json: ["name": "ledger", "group": "default"])
        #expect(created.status == 200, "\(created.text)")
        return try #require((created.json["database"] as? [String: Any])?["DbId"] as? String)
    }

    static func issueToken(_ cluster: LiveCluster) async throws -> String {
        try #require(try await cluster.call("POST", path + "/auth/tokens").json["jwt"] as? String)
    }

    @Test(arguments: CatalogBackend.allCases)
    func deletingADatabaseWithAnOpenStreamClosesTheStreamAndRefusesItsToken(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            _ = try await Self.createLedger(cluster)
            let jwt = try await Self.issueToken(cluster)
            let url = cluster.nodes["fra"]!.url + "/db/acme/ledger"
            #expect(!(try await LiveCluster.execute("CREATE TABLE t (x)", at: url, token: jwt).pipelineFailed))
            // A stream left in a transaction that holds the database's write lock.
            let open = try await LiveCluster.send(
                "POST", url + "/v2/pipeline",
                json: [
                    "requests": [
                        ["type": "execute", "stmt": ["sql": "BEGIN"]],
                        ["type": "execute", "stmt": ["sql": "INSERT INTO t VALUES (1)"]],
                    ]
                ], token: jwt)
            #expect(open.status == 200)
            #expect(!open.pipelineFailed, "\(open.text)")
            let baton = try #require(open.json["baton"] as? String)

            let deleted = try await cluster.call("DELETE", Self.path)
            #expect(deleted.status == 200, "\(deleted.text)")
            // The node confirmed before the answer: its files are gone, nothing is left pending.
            let namespace = try Namespace(organization: "acme", database: "ledger")
            #expect(!cluster.nodes["fra"]!.node.store.exists(namespace))
            #expect(try await cluster.catalog.pendingDeletionCount() == 0)

            let next = try await LiveCluster.send(
                "POST", url + "/v2/pipeline",
                json: ["baton": baton, "requests": [["type": "execute", "stmt": ["sql": "COMMIT"]]]], token: jwt)
            #expect(next.status == 404)
            #expect(next.text.contains("deleted"), "\(next.text)")
            let fresh = try await LiveCluster.execute("SELECT count(*) FROM t", at: url, token: jwt)
            #expect(fresh.status == 404, "\(fresh.text)")
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func aGroupCreatedAgainUnderTheSameNameRefusesTheOldGroupsTokens(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            _ = try await Self.createLedger(cluster)
            let url = cluster.nodes["fra"]!.url + "/db/acme/ledger"
            func groupToken() async throws -> String {
                try #require(
                    try await cluster.call("POST", "/v1/organizations/acme/groups/default/auth/tokens").json["jwt"]
                        as? String)
            }
            let old = try await groupToken()
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: old).status == 200)
            #expect(try await cluster.call("DELETE", "/v1/organizations/acme/groups/default").status == 200)
            #expect(
                try await cluster.call(
                    "POST", "/v1/organizations/acme/groups", json: ["name": "default", "location": "fra"]
                ).status == 200)
            _ = try await Self.createLedger(cluster)
            let refused = try await LiveCluster.execute("SELECT 1", at: url, token: old)
            #expect(refused.status == 401)
            #expect(refused.text.contains("incarnation of group"), "\(refused.text)")
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: try await groupToken()).status == 200)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func aDatabaseCreatedAgainUnderTheSameNameStartsEmptyAndRefusesTheOldIncarnationsTokens(
        _ backend: CatalogBackend
    ) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            let firstID = try await Self.createLedger(cluster)
            let url = cluster.nodes["fra"]!.url + "/db/acme/ledger"
            let rotatedAway = try await Self.issueToken(cluster)
            cluster.time.advance(seconds: 1)
            #expect(try await cluster.call("POST", Self.path + "/auth/rotate").status == 200)
            let kept = try await Self.issueToken(cluster)
            for sql in ["CREATE TABLE t (x)", "INSERT INTO t VALUES (42)"] {
                let answer = try await LiveCluster.execute(sql, at: url, token: kept)
                #expect(answer.status == 200)
                #expect(!answer.pipelineFailed, "\(answer.text)")
            }
            let beforeDelete = try await LiveCluster.execute("SELECT 1", at: url, token: rotatedAway)
            #expect(beforeDelete.status == 401)
            #expect(beforeDelete.text.contains("rotated"), "\(beforeDelete.text)")

            #expect(try await cluster.call("DELETE", Self.path).status == 200)
            let secondID = try await Self.createLedger(cluster)
            #expect(secondID != firstID)

            // Tokens of the first incarnation, valid or rotated away before the delete, are refused
            // as such (the node compares their `did`, whatever rotations it still knows of).
            for old in [kept, rotatedAway] {
                let refused = try await LiveCluster.execute("SELECT 1", at: url, token: old)
                #expect(refused.status == 401)
                #expect(refused.text.contains("incarnation"), "\(refused.text)")
            }
            // The new one holds none of the old rows; its own tokens work.
            let fresh = try await Self.issueToken(cluster)
            let read = try await LiveCluster.execute("SELECT count(*) FROM t", at: url, token: fresh)
            #expect(read.status == 200)
            #expect(read.pipelineFailed)
            #expect(read.text.contains("no such table"), "\(read.text)")
            #expect(!(try await LiveCluster.execute("CREATE TABLE t (x)", at: url, token: fresh).pipelineFailed))
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: kept).status == 401)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func aNodeThatWasDownWhenADatabaseWasDeletedGetsTheDeleteOnceItIsBack(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            let id = try await Self.createLedger(cluster)
            let jwt = try await Self.issueToken(cluster)
            let nodeURL = cluster.nodes["fra"]!.url
            let url = nodeURL + "/db/acme/ledger"
            #expect(!(try await LiveCluster.execute("CREATE TABLE t (x)", at: url, token: jwt).pipelineFailed))
            let namespace = try Namespace(organization: "acme", database: "ledger")
            #expect(cluster.nodes["fra"]!.node.store.exists(namespace))

            // The control plane cannot reach the node: it answers at a port nothing listens on.
            let unreachable = "http://127.0.0.1:9"
            try await cluster.store.transaction { transaction in
                _ = try await transaction.query(
                    "UPDATE nodes SET url = $1 WHERE url = $2", [.text(unreachable), .text(nodeURL)])
            }
            #expect(try await cluster.call("DELETE", Self.path).status == 200)
            #expect(try await cluster.call("GET", Self.path).status == 404)
            #expect(cluster.nodes["fra"]!.node.store.exists(namespace))
            #expect(try await cluster.catalog.pendingDeletionCount(databaseID: id) == 1)
            let rows = try await cluster.store.transaction { transaction in
                try await transaction.query(
                    "SELECT attempts, last_error FROM database_deletions WHERE database_id = $1", [.text(id)])
            }
            let pending = try #require(rows.first)
            #expect(try pending.integer(0) >= 1)
            #expect(try pending.optionalText(1) != nil)

            // The node is back; once the retry is due the delete reaches it.
            try await cluster.store.transaction { transaction in
                _ = try await transaction.query(
                    "UPDATE nodes SET url = $1 WHERE url = $2", [.text(nodeURL), .text(unreachable)])
            }
            cluster.time.advance(seconds: 30)
            try await waitUntil("the retried delete") {
                try await cluster.catalog.pendingDeletionCount(databaseID: id) == 0
            }
            #expect(!cluster.nodes["fra"]!.node.store.exists(namespace))
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: jwt).status == 404)
        }
    }
}
