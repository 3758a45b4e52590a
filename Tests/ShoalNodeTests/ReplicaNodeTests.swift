import Foundation
import ShoalClient
import ShoalNodeTestSupport
import ShoalReplication
import ShoalTestSupport
import Testing

@testable import ShoalNode

/// Three nodes on loopback: the primary in `fra`, replicas in `ams` and `lhr`, each a real server.
struct ThreeNodes {
    let fra: LiveNode
    let ams: LiveNode
    let lhr: LiveNode

    static func with(
        _ configure: @escaping @Sendable (inout NodeConfiguration) -> Void = { _ in },
        _ body: @Sendable (ThreeNodes) async throws -> Void
    ) async throws {
        // A loaded test machine can take seconds to bootstrap a replica; the default catch-up wait
        // (5 s) is for production.
        try await LiveNode.with({
            $0.location = "fra"
            $0.replicaCatchUpTimeout = .seconds(30)
            configure(&$0)
        }) { fra in
            try await LiveNode.with({
                $0.location = "ams"
                $0.replicaCatchUpTimeout = .seconds(30)
                configure(&$0)
            }) { ams in
                try await LiveNode.with({
                    $0.location = "lhr"
                    $0.replicaCatchUpTimeout = .seconds(30)
                    configure(&$0)
                }) { lhr in
                    try await body(ThreeNodes(fra: fra, ams: ams, lhr: lhr))
                }
            }
        }
    }

    var all: [(String, LiveNode)] { [("fra", fra), ("ams", ams), ("lhr", lhr)] }

    /// Waits, on the replicas' own position waiters (no polling), until every node has applied
    /// what the primary (fra) has committed of `database` now; false if one did not within 30 s.
    func waitUntilConverged(_ database: String) async throws -> Bool {
        let namespace = try Namespace(database)
        let target = try await fra.node.store.pool.withLease(namespace) { hosted -> ReplicationPosition? in
            if case .primary(let log) = hosted.role { return log.position }
            return nil
        }
        guard let target else { throw NodeTestError("fra does not hold the primary of \(database)") }
        for (_, node) in all where node.url != fra.url {
            let applied = try await node.node.store.pool.withLease(namespace) { hosted -> Bool in
                guard case .replica(let copy) = hosted.role else { return false }
                return await copy.waitUntilApplied(target, timeout: .seconds(30))
            }
            if !applied { return false }
        }
        return true
    }

    /// Creates `acme/name` on the primary and as a replica of it on the two others.
    func create(_ name: String) async throws {
        let primary = try await fra.request("POST", "/v1/namespaces/acme/\(name)/create", body: "{}")
        guard primary.status == 200 else { throw NodeTestError("primary create: \(primary.status) \(primary.body)") }
        for replica in [ams, lhr] {
            let created = try await replica.request(
                "POST", "/v1/namespaces/acme/\(name)/create",
                body: #"{"primary_url":"\#(fra.url)/db/acme/\#(name)"}"#)
            guard created.status == 200 else {
                throw NodeTestError("replica create: \(created.status) \(created.body)")
            }
        }
    }
}

extension LiveNode {
    /// Runs statements on a fresh stream that is closed at the end; returns the pipeline answer.
    func run(_ database: String, _ statements: [String]) async throws -> (status: Int, json: [String: Any]) {
        let requests = statements.map { sql in
            #"{"type":"execute","stmt":{"sql":\#(String(decoding: try! JSONEncoder().encode(sql), as: UTF8.self))}}"#
        }
        return try await pipeline(
            database, #"{"baton":null,"requests":[\#(requests.joined(separator: ",")),{"type":"close"}]}"#)
    }

    /// The first column of the first row of a query's answer, as Hrana sent it.
    func scalar(_ database: String, _ sql: String) async throws -> String? {
        let answer = try await run(database, [sql])
        guard answer.status == 200 else { throw NodeTestError("query failed: \(answer.status) \(answer.json)") }
        let result = (answer.json.results.first?["response"] as? [String: Any])?["result"] as? [String: Any]
        let rows = result?["rows"] as? [[[String: Any]]]
        return rows?.first?.first?["value"] as? String
    }

    /// Frames the node has sent over `/sync` so far.
    func framesServed() async throws -> Int {
        let samples = try PrometheusSamples(try await request("GET", "/metrics").body)
        return samples["shoal_node_frames_served_total"].map { Int($0) } ?? -1
    }

    /// Pipeline requests counted by the node's metrics so far.
    func pipelineRequests() async throws -> Int {
        let samples = try PrometheusSamples(try await request("GET", "/metrics").body)
        return Int(
            samples.series(named: "shoal_node_requests_total").filter { $0.key.contains(#"route="pipeline""#) }
                .values.reduce(0, +))
    }
}

@Suite("replica nodes: follow the primary, read locally, forward writes", .timeLimit(.minutes(2)))
struct ReplicaNodeTests {
    @Test func writesThroughAnyNodeAreVisibleThroughEveryNode() async throws {
        try await ThreeNodes.with { nodes in
            try await nodes.create("shop")
            let created = try await nodes.ams.run("acme/shop", ["CREATE TABLE t (node TEXT, n INTEGER)"])
            #expect(created.status == 200)
            #expect(created.json.results.first?["type"] as? String == "ok")
            for (index, (name, node)) in nodes.all.enumerated() {
                let written = try await node.run("acme/shop", ["INSERT INTO t VALUES ('\(name)', \(index))"])
                #expect(written.status == 200)
                // Read-your-writes: the node that took the write answers after it has applied it.
                #expect(try await node.scalar("acme/shop", "SELECT count(*) FROM t WHERE node = '\(name)'") == "1")
            }
            // Every node converges on all three rows (replicas follow with long-polls).
            #expect(try await nodes.waitUntilConverged("acme/shop"))
            for (name, node) in nodes.all {
                #expect(try await node.scalar("acme/shop", "SELECT count(*) FROM t") == "3", "node \(name)")
            }
        }
    }

    @Test func readsOnAReplicaAreServedLocallyAndWritesGoToThePrimary() async throws {
        try await ThreeNodes.with { nodes in
            try await nodes.create("local")
            _ = try await nodes.ams.run("acme/local", ["CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"])
            let before = try await nodes.fra.pipelineRequests()
            for _ in 0..<20 {
                #expect(try await nodes.ams.scalar("acme/local", "SELECT sum(x) FROM t") == "1")
            }
            #expect(try await nodes.fra.pipelineRequests() == before, "reads on the replica reached the primary")
            _ = try await nodes.ams.run("acme/local", ["INSERT INTO t VALUES (2)"])
            #expect(try await nodes.fra.pipelineRequests() > before, "a write on the replica did not reach the primary")
            #expect(try await nodes.fra.scalar("acme/local", "SELECT sum(x) FROM t") == "3")
            // The replica's stats say what it is and how far it is.
            let stats = try await nodes.ams.request("GET", "/v1/namespaces/acme/local/stats")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(stats.body.utf8)) as? [String: Any])
            #expect(json["role"] as? String == "replica")
            let replica = try #require(json["replica"] as? [String: Any])
            #expect(replica["primary_url"] as? String == "\(nodes.fra.url)/db/acme/local")
            #expect(replica["lag_frames"] as? Int == 0)
            let metrics = try await nodes.ams.request("GET", "/metrics").body
            #expect(try PrometheusSamples(metrics)["shoal_node_replica_lag_seconds_count"] == 2)
            #expect(!metrics.contains("acme"))
        }
    }

    @Test func aTransactionOnAReplicaRunsOnThePrimaryUntilItEnds() async throws {
        try await ThreeNodes.with { nodes in
            try await nodes.create("tx")
            _ = try await nodes.ams.run("acme/tx", ["CREATE TABLE t (x)"])
            let begin = try await nodes.ams.pipeline(
                "acme/tx",
                #"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"BEGIN"}},{"type":"execute","stmt":{"sql":"INSERT INTO t VALUES (5)"}},{"type":"get_autocommit"}]}"#
            )
            #expect(begin.status == 200)
            #expect(begin.json.results.count == 3)
            #expect((begin.json.results[2]["response"] as? [String: Any])?["is_autocommit"] as? Bool == false)
            let baton = try #require(begin.json.baton)
            // Inside the transaction a read goes to the primary too, so it sees the uncommitted row.
            let inside = try await nodes.ams.pipeline(
                "acme/tx",
                #"{"baton":"\#(baton)","requests":[{"type":"execute","stmt":{"sql":"SELECT count(*) FROM t"}}]}"#)
            let rows =
                ((inside.json.results.first?["response"] as? [String: Any])?["result"] as? [String: Any])?["rows"]
                as? [[[String: Any]]]
            #expect(rows?.first?.first?["value"] as? String == "1")
            // Outside it, other readers do not see it.
            #expect(try await nodes.lhr.scalar("acme/tx", "SELECT count(*) FROM t") == "0")
            let batonTwo = try #require(inside.json.baton)
            let commit = try await nodes.ams.pipeline(
                "acme/tx",
                #"{"baton":"\#(batonTwo)","requests":[{"type":"execute","stmt":{"sql":"COMMIT"}},{"type":"get_autocommit"},{"type":"execute","stmt":{"sql":"SELECT count(*) FROM t"}},{"type":"close"}]}"#
            )
            #expect(commit.status == 200)
            #expect(commit.json.results.count == 4)
            #expect((commit.json.results[1]["response"] as? [String: Any])?["is_autocommit"] as? Bool == true)
            #expect(try await nodes.ams.scalar("acme/tx", "SELECT count(*) FROM t") == "1")
            // A SQL error from the primary comes back as the primary's Hrana error.
            let failed = try await nodes.ams.run("acme/tx", ["INSERT INTO missing VALUES (1)"])
            #expect(failed.status == 200)
            let error = failed.json.results.first?["error"] as? [String: Any]
            #expect(error?["code"] as? String == "SQLITE_ERROR")
            #expect((error?["message"] as? String)?.contains("no such table") == true)
        }
    }

    @Test func cursorAndHTTPAPIv1WorkOnAReplica() async throws {
        try await ThreeNodes.with { nodes in
            try await nodes.create("cur")
            let created = try await nodes.lhr.request(
                "POST", "/db/acme/cur/v1/execute", body: #"{"stmt":{"sql":"CREATE TABLE t (x TEXT)"}}"#)
            #expect(created.status == 200)
            let inserted = try await nodes.lhr.request(
                "POST", "/db/acme/cur/v1/batch",
                body:
                    #"{"batch":{"steps":[{"stmt":{"sql":"BEGIN"}},{"stmt":{"sql":"INSERT INTO t VALUES ('a'), ('b')"},"condition":{"type":"ok","step":0}},{"stmt":{"sql":"COMMIT"},"condition":{"type":"ok","step":1}}]}}"#
            )
            #expect(inserted.status == 200)
            let read = try await nodes.lhr.request(
                "POST", "/db/acme/cur/v1/execute", body: #"{"stmt":{"sql":"SELECT count(*) FROM t"}}"#)
            #expect(read.body.contains(#""value":"2""#))
            let cursor = try await nodes.lhr.request(
                "POST", "/db/acme/cur/v3/cursor",
                body: #"{"baton":null,"batch":{"steps":[{"stmt":{"sql":"SELECT x FROM t ORDER BY x"}}]}}"#)
            #expect(cursor.status == 200)
            let lines = cursor.body.split(separator: "\n")
            #expect(lines.count == 5)  // header, step_begin, two rows, step_end
            #expect(lines[2].contains(#""value":"a""#))
            // A cursor that writes goes to the primary; its baton keeps working here.
            let header = try #require(
                try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            let baton = try #require(header["baton"] as? String)
            let writing = try await nodes.lhr.request(
                "POST", "/db/acme/cur/v3/cursor",
                body:
                    #"{"baton":"\#(baton)","batch":{"steps":[{"stmt":{"sql":"INSERT INTO t VALUES ('c') RETURNING x"}}]}}"#
            )
            #expect(writing.status == 200)
            #expect(writing.body.contains(#""value":"c""#))
            #expect(try await nodes.fra.scalar("acme/cur", "SELECT count(*) FROM t") == "3")
            #expect(try await nodes.lhr.scalar("acme/cur", "SELECT count(*) FROM t") == "3")
        }
    }

    @Test func aGenerationRollOnThePrimaryIsFollowed() async throws {
        try await ThreeNodes.with { nodes in
            try await nodes.create("roll")
            _ = try await nodes.ams.run("acme/roll", ["CREATE TABLE t (x)"])
            for value in 1...20 {
                _ = try await nodes.ams.run("acme/roll", ["INSERT INTO t VALUES (\(value))"])
                if value == 10 {
                    let rolled = try await nodes.fra.request("POST", "/v1/namespaces/acme/roll/checkpoint")
                    #expect(rolled.body.contains("true"))
                }
            }
            #expect(try await nodes.ams.scalar("acme/roll", "SELECT sum(x) FROM t") == "210")
            let stats = try await nodes.ams.request("GET", "/v1/namespaces/acme/roll/stats")
            #expect(stats.body.contains(#""generation":2"#))
        }
    }

    @Test func anEmbeddedReplicaSyncsFromAReplicaNodeAndWritesThroughIt() async throws {
        try await ThreeNodes.with { nodes in
            try await nodes.create("edge")
            _ = try await nodes.fra.run("acme/edge", ["CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"])
            let directory = nodes.ams.dataDirectory + "-client"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let database = try Database(directory: directory, syncURL: URL(string: nodes.ams.url + "/db/acme/edge")!)
            try await database.sync()
            #expect(try await database.queryOne("SELECT sum(x) FROM t")?[0] == .integer(1))
            try await database.execute("INSERT INTO t VALUES (2)")
            #expect(try await database.queryOne("SELECT sum(x) FROM t")?[0] == .integer(3))
            #expect(try await nodes.fra.scalar("acme/edge", "SELECT sum(x) FROM t") == "3")
            await database.close()
        }
    }

    @Test func aReplicaNodeServesTheSyncProtocolFromWhatItApplied() async throws {
        try await ThreeNodes.with { nodes in
            try await nodes.create("near")
            _ = try await nodes.fra.run("acme/near", ["CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"])
            // The replica node has caught up once a read through it answers.
            #expect(try await nodes.ams.scalar("acme/near", "SELECT sum(x) FROM t") == "1")
            let servedBefore = try await nodes.fra.framesServed()
            let directory = nodes.ams.dataDirectory + "-near"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let database = try Database(directory: directory, syncURL: URL(string: nodes.ams.url + "/db/acme/near")!)
            let first = try await database.sync()
            #expect(first.bootstrapped)
            #expect(try await database.queryOne("SELECT sum(x) FROM t")?[0] == .integer(1))
            // Only the replica node answered: the primary sent no frame for this client.
            #expect(try await nodes.fra.framesServed() == servedBefore)
            // Frame numbers are the primary's, so the client could switch nodes.
            let info = try await nodes.ams.request("GET", "/db/acme/near/info")
            #expect(info.body.contains(#""current_generation":1"#))

            // Across a roll on the primary: the replica node keeps the new generation's base.
            _ = try await nodes.fra.run("acme/near", ["INSERT INTO t VALUES (2)"])
            #expect(try await nodes.fra.request("POST", "/v1/namespaces/acme/near/checkpoint").body.contains("true"))
            _ = try await nodes.fra.run("acme/near", ["INSERT INTO t VALUES (3)"])
            #expect(try await nodes.ams.scalar("acme/near", "SELECT sum(x) FROM t") != nil)
            var synced: Int64?
            for _ in 0..<200 {
                try await database.sync()
                if case .integer(let sum) = try await database.queryOne("SELECT sum(x) FROM t")?[0] { synced = sum }
                if synced == 6 { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(synced == 6)
            #expect(database.replica.position?.generation == 2)
            // A fresh client bootstraps from the replica node's base of generation 2.
            let fresh = try Database(
                directory: directory + "-fresh", syncURL: URL(string: nodes.ams.url + "/db/acme/near")!)
            defer { try? FileManager.default.removeItem(atPath: directory + "-fresh") }
            #expect(try await fresh.sync().position.generation == 2)
            #expect(try await fresh.queryOne("SELECT sum(x) FROM t")?[0] == .integer(6))
            await fresh.close()
            await database.close()
        }
    }

    @Test func aReplicaRefusesWhatItCannotFollow() async throws {
        try await ThreeNodes.with({ $0.replicaCatchUpTimeout = .milliseconds(500) }) { nodes in
            // A replica of a database its primary does not have: requests say so, clearly.
            let created = try await nodes.ams.request(
                "POST", "/v1/namespaces/acme/ghost/create",
                body: #"{"primary_url":"\#(nodes.fra.url)/db/acme/ghost"}"#)
            #expect(created.status == 200)
            let answer = try await nodes.ams.run("acme/ghost", ["SELECT 1"])
            #expect(answer.status == 503)
            // A primary URL that is not http(s) is refused when the database opens.
            _ = try await nodes.lhr.request(
                "POST", "/v1/namespaces/acme/bad/create", body: #"{"primary_url":"ftp://example/db"}"#)
            let bad = try await nodes.lhr.run("acme/bad", ["SELECT 1"])
            #expect(bad.status == 400)
            #expect(try await nodes.lhr.request("GET", "/health").status == 200)
        }
    }
}
