import Foundation
import ShoalNodeTestSupport
import Testing

@testable import ShoalNode

/// Deleting a database on a node: at once, with streams open, idempotently, one incarnation at a
/// time; and database tokens checked against the incarnation the node holds.
@Suite(.timeLimit(.minutes(2)))
struct NodeDeletionTests {
    static let selectOne = #"{"stmt":{"sql":"SELECT 1"}}"#

    @Test func deletingADatabaseClosesItsOpenStreamAtOnceAndIsIdempotent() async throws {
        try await LiveNode.with { (node: LiveNode) async throws in
            #expect(try await node.request("POST", "/v1/namespaces/acme/app/create").status == 200)
            // A stream left in a transaction that holds the write lock.
            let statements = ["CREATE TABLE t (x)", "BEGIN", "INSERT INTO t VALUES (1)"].map {
                #"{"type":"execute","stmt":{"sql":"\#($0)"}}"#
            }
            let open = try await node.pipeline(
                "acme/app", #"{"baton":null,"requests":[\#(statements.joined(separator: ","))]}"#)
            #expect(open.status == 200)
            let baton = try #require(open.json.baton)

            let deleted = try await node.request("DELETE", "/v1/namespaces/acme/app")
            #expect(deleted.status == 200, "\(deleted.body)")
            #expect(deleted.body.contains(#""removed":true"#))
            #expect(!node.node.store.exists(try Namespace("acme/app")))
            #expect(node.node.streams.count == 0)
            let next = try await node.pipeline(
                "acme/app", #"{"baton":"\#(baton)","requests":[{"type":"execute","stmt":{"sql":"COMMIT"}}]}"#)
            #expect(next.status == 404)
            #expect((next.json["error"] as? String)?.contains("deleted") == true, "\(next.json)")
            let after = try await node.request("POST", "/db/acme/app/v1/execute", body: Self.selectOne)
            #expect(after.status == 404)

            // Again: nothing is left, which counts as done.
            let again = try await node.request("DELETE", "/v1/namespaces/acme/app")
            #expect(again.status == 200)
            #expect(again.body.contains(#""removed":false"#))
            // Created again under the name, it starts from nothing.
            #expect(try await node.request("POST", "/v1/namespaces/acme/app/create").status == 200)
            let read = try await node.pipeline(
                "acme/app",
                #"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"SELECT count(*) FROM t"}},"#
                    + #"{"type":"close"}]}"#
            )
            #expect(read.status == 200)
            #expect("\(read.json.results)".contains("no such table"), "\(read.json)")
        }
    }

    @Test func aDeletionNamingAnotherIncarnationLeavesTheDatabaseAlone() async throws {
        try await LiveNode.with { (node: LiveNode) async throws in
            let namespace = try Namespace("acme/app")
            let created = try await node.request(
                "POST", "/v1/namespaces/acme/app/create", body: #"{"database_id":"second"}"#)
            #expect(created.status == 200)
            let other = try await node.request("DELETE", "/v1/namespaces/acme/app?database_id=first")
            #expect(other.status == 200)
            #expect(other.body.contains(#""removed":false"#))
            #expect(node.node.store.exists(namespace))
            #expect(try await node.request("POST", "/db/acme/app/v1/execute", body: Self.selectOne).status == 200)
            // Settings of another incarnation do not apply to this one.
            let foreign = try await node.request(
                "POST", "/v1/namespaces/acme/app/config", body: #"{"database_id":"first","block_reads":true}"#)
            #expect(foreign.status == 409)
            #expect(try await node.request("POST", "/db/acme/app/v1/execute", body: Self.selectOne).status == 200)

            let own = try await node.request("DELETE", "/v1/namespaces/acme/app?database_id=second")
            #expect(own.status == 200)
            #expect(own.body.contains(#""removed":true"#))
            #expect(!node.node.store.exists(namespace))
            // The deleted incarnation is not placed again; a new one is.
            let late = try await node.request(
                "POST", "/v1/namespaces/acme/app/create", body: #"{"database_id":"second"}"#)
            #expect(late.status == 409)
            let third = try await node.request(
                "POST", "/v1/namespaces/acme/app/create", body: #"{"database_id":"third"}"#)
            #expect(third.status == 200)
        }
    }

    @Test func aDeletionHeldUpByARunningRequestKeepsRefusingTheDatabaseUntilItIsSentAgain() async throws {
        try await LiveNode.with({ $0.deletionDrainTimeout = .milliseconds(300) }) { (node: LiveNode) async throws in
            #expect(try await node.request("POST", "/v1/namespaces/acme/app/create").status == 200)
            let namespace = try Namespace("acme/app")
            try await node.node.store.withDatabase(namespace) { _ in
                // Held by a request that does not end while the delete waits.
                let first = try await node.request("DELETE", "/v1/namespaces/acme/app")
                #expect(first.status == 503)
                #expect(first.body.contains("send the delete again"), "\(first.body)")
                let refused = try await node.request("POST", "/db/acme/app/v1/execute", body: Self.selectOne)
                #expect(refused.status == 404)
                #expect(refused.body.contains("deleted"), "\(refused.body)")
            }
            // Still refused once nothing holds it, until the delete comes again and finishes.
            let stillRefused = try await node.request("POST", "/db/acme/app/v1/execute", body: Self.selectOne)
            #expect(stillRefused.status == 404)
            #expect(node.node.store.exists(namespace))
            let second = try await node.request("DELETE", "/v1/namespaces/acme/app")
            #expect(second.status == 200)
            #expect(second.body.contains(#""removed":true"#))
            #expect(!node.node.store.exists(namespace))
        }
    }

    @Test func databaseTokensMustBeForTheIncarnationTheNodeHolds() async throws {
        let signer = TokenSigner()
        let verifier = try TokenVerifier(keys: ["k1": signer.publicKey])
        try await LiveNode.with({ $0.authentication = .tokens(verifier, adminToken: "admin-secret") }) {
            (node: LiveNode) async throws in
            let admin = ["Authorization": "Bearer admin-secret"]
            let createdAt = Int64((Date().timeIntervalSince1970 * 1000).rounded())
            let created = try await node.request(
                "POST", "/v1/namespaces/acme/app/create",
                body: #"{"database_id":"inc-2","created_at":\#(createdAt),"group":"main"}"#, headers: admin)
            #expect(created.status == 200)
            #expect(try await node.request("POST", "/v1/namespaces/acme/legacy/create", headers: admin).status == 200)
            func run(_ database: String, _ claims: [String: Any]) async throws -> (status: Int, body: String) {
                let answer = try await node.request(
                    "POST", "/db/acme/\(database)/v1/execute", body: Self.selectOne,
                    headers: ["Authorization": "Bearer \(try signer.token(claims))"])
                return (answer.status, answer.body)
            }
            let now = Date().timeIntervalSince1970
            #expect(try await run("app", ["id": "acme/app", "did": "inc-2"]).status == 200)
            let earlier = try await run("app", ["id": "acme/app", "did": "inc-1", "iat": now])
            #expect(earlier.status == 401)
            #expect(earlier.body.contains("incarnation"), "\(earlier.body)")
            // Without `did` (issued before incarnation ids): only if issued since the incarnation began.
            #expect(try await run("app", ["id": "acme/app", "iat": now + 1]).status == 200)
            #expect(try await run("app", ["id": "acme/app", "iat": now - 3600]).status == 401)
            #expect(try await run("app", ["id": "acme/app"]).status == 401)
            // Group tokens name no incarnation.
            #expect(try await run("app", ["gid": "acme/main"]).status == 200)
            // Settings without an id (an operator's, or an older control plane's): any token of the name.
            #expect(try await run("legacy", ["id": "acme/legacy", "did": "anything"]).status == 200)
            #expect(try await run("legacy", ["id": "acme/legacy"]).status == 200)
        }
    }
}
