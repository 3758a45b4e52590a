import Foundation
import ShoalNodeTestSupport
import Testing

@testable import ShoalNode

@Suite(.timeLimit(.minutes(2))) struct NodeAdminTests {
    static func execute(_ node: LiveNode, _ sql: String) async throws -> (status: Int, body: String) {
        let answer = try await node.request("POST", "/db/acme/app/v1/execute", body: #"{"stmt":{"sql":"\#(sql)"}}"#)
        return (answer.status, answer.body)
    }

    @Test func blockWritesThenReadsThenUnblock() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            #expect(try await Self.execute(node, "CREATE TABLE t (x)").status == 200)
            let config = try await node.request(
                "POST", "/v1/namespaces/acme/app/config", body: #"{"block_writes":true}"#)
            #expect(config.status == 200)
            let write = try await Self.execute(node, "INSERT INTO t VALUES (1)")
            #expect(write.body.contains("BLOCKED"))
            #expect(try await Self.execute(node, "SELECT count(*) FROM t").status == 200)
            _ = try await node.request("POST", "/v1/namespaces/acme/app/config", body: #"{"block_reads":true}"#)
            #expect(try await Self.execute(node, "SELECT count(*) FROM t").body.contains("BLOCKED"))
            #expect(try await node.request("GET", "/db/acme/app/info").status == 403)
            _ = try await node.request("POST", "/v1/namespaces/acme/app/config", body: #"{}"#)
            #expect(try await Self.execute(node, "INSERT INTO t VALUES (1)").status == 200)
        }
    }

    @Test func sizeLimitStopsGrowthWithAClearErrorAndTenantsCannotRaiseIt() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            #expect(try await Self.execute(node, "CREATE TABLE t (x BLOB)").status == 200)
            let limit = try await node.request(
                "POST", "/v1/namespaces/acme/app/config", body: #"{"max_size_bytes":65536}"#)
            #expect(limit.status == 200)
            let raise = try await Self.execute(node, "PRAGMA max_page_count = 100000")
            #expect(raise.status != 200)
            let big = try await Self.execute(node, "INSERT INTO t VALUES (zeroblob(200000))")
            #expect(big.body.contains("SQLITE_FULL"))
            #expect(try await Self.execute(node, "INSERT INTO t VALUES (zeroblob(1000))").status == 200)
            let invalid = try await node.request(
                "POST", "/v1/namespaces/acme/app/config", body: #"{"max_size_bytes":10}"#)
            #expect(invalid.status == 400)
        }
    }

    @Test func statsAndCheckpointReportAndRollTheGeneration() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            #expect(try await Self.execute(node, "CREATE TABLE t (x)").status == 200)
            let before = try await node.request("GET", "/v1/namespaces/acme/app/stats")
            #expect(before.body.contains(#""generation":1"#))
            let rolled = try await node.request("POST", "/v1/namespaces/acme/app/checkpoint")
            #expect(rolled.body.contains(#""rolled":true"#))
            #expect(try await node.request("GET", "/db/acme/app/info").body == #"{"current_generation":2}"#)
            let after = try await node.request("GET", "/v1/namespaces/acme/app/stats")
            #expect(after.body.contains(#""generation":2"#))
            #expect(after.body.contains(#""frame":0"#))
        }
    }
}
