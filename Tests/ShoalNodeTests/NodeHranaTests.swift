import Foundation
import ShoalNodeTestSupport
import ShoalTestSupport
import Testing

@testable import ShoalNode

@Suite(.timeLimit(.minutes(2))) struct NodeHranaTests {
    @Test func probesAnswer() async throws {
        try await LiveNode.with { (node: LiveNode) async throws in
            #expect(try await node.request("GET", "/health").status == 200)
            #expect(try await node.request("GET", "/version").body == Node.version)
            #expect(try await node.request("GET", "/v3").status == 200)
            #expect(try await node.request("GET", "/v3-protobuf").status == 404)
            for version in ["v1", "v2", "v3"] {
                #expect(try await node.request("GET", "/db/acme/app/\(version)").status == 200)
            }
        }
    }

    @Test func requestsForRoutesTheNodeDoesNotServeAreLogged() async throws {
        let logs = CapturedLogs()
        try await LiveNode.with(logs: logs) { (node: LiveNode) async throws in
            #expect(try await node.request("POST", "/push-changes", body: "").status == 404)
            #expect(try await node.request("GET", "/health").status == 200)
            let unrouted = logs.entries.filter { $0.message == "request.unrouted" }
            #expect(unrouted.count == 1)
            #expect(unrouted.first?.metadata["url.path"] == "/push-changes")
            #expect(unrouted.first?.metadata["http.method"] == "POST")
        }
    }

    @Test func metricsCountRequestsByRouteKindWithoutDatabaseNames() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            _ = try await node.request(
                "POST", "/db/acme/secret-tenant/v1/execute", body: #"{"stmt":{"sql":"SELECT 1"}}"#)
            _ = try await node.request("POST", "/db/acme/secret-tenant/v1/execute", body: "{broken")
            _ = try await node.request("GET", "/db/acme/secret-tenant/sync/1/1/10")
            let metrics = try await node.request("GET", "/metrics")
            #expect(metrics.status == 200)
            let samples = try PrometheusSamples(metrics.body)
            #expect(samples[#"shoal_node_requests_total{route="v1",status="2xx"}"#] == 1)
            #expect(samples[#"shoal_node_requests_total{route="v1",status="4xx"}"#] == 1)
            #expect(samples[#"shoal_node_requests_total{route="sync",status="4xx"}"#] == 1)
            #expect(samples[#"shoal_node_request_duration_seconds_count{route="v1"}"#] == 2)
            #expect(samples["shoal_node_databases_open"] == 1)
            // The caps in force, and what is held under them.
            #expect(samples["shoal_node_streams_cap"] == 5000)
            #expect(samples["shoal_node_long_polls_cap"] == 2000)
            #expect(samples["shoal_node_streams_held"] == 0)
            #expect(samples["shoal_node_sqlite_threads"] == Double(node.node.configuration.executor.threadCount))
            #expect(!metrics.body.contains("secret-tenant"))
        }
    }

    /// The Rust libSQL clients read a blob's base64 as a borrowed string, which `\/` breaks;
    /// x'0001ff' is AAH/ in base64.
    @Test func blobAnswersNeverEscapeASlash() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            let select = #"{"sql":"SELECT x'0001ff' AS b, '/a/b' AS t"}"#
            let pipeline = try await node.request(
                "POST", "/db/acme/blobs/v3/pipeline",
                body: #"{"baton":null,"requests":[{"type":"execute","stmt":\#(select)},{"type":"close"}]}"#)
            let cursor = try await node.request(
                "POST", "/db/acme/blobs/v3/cursor",
                body: #"{"baton":null,"batch":{"steps":[{"stmt":\#(select)}]}}"#)
            let v1 = try await node.request("POST", "/db/acme/blobs/v1/execute", body: #"{"stmt":\#(select)}"#)
            for answer in [pipeline, cursor, v1] {
                #expect(answer.status == 200)
                #expect(answer.body.contains(#""AAH/""#), "\(answer.body)")
                #expect(answer.body.contains(#""/a/b""#))
                #expect(!answer.body.contains(#"\/"#))
            }
        }
    }

    @Test func streamKeepsItsTransactionAcrossRequestsWithSingleUseBatons() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            let first = try await node.pipeline(
                "acme/app",
                #"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"CREATE TABLE t (x)"}},{"type":"execute","stmt":{"sql":"BEGIN"}},{"type":"execute","stmt":{"sql":"INSERT INTO t VALUES (?)","args":[{"type":"integer","value":"7"}]}},{"type":"get_autocommit"}]}"#
            )
            #expect(first.status == 200)
            #expect(first.json.results.count == 4)
            let autocommit = first.json.results[3]["response"] as? [String: Any]
            #expect(autocommit?["is_autocommit"] as? Bool == false)
            let baton = try #require(first.json.baton)
            // Another connection does not see the uncommitted row.
            let outside = try await node.pipeline(
                "acme/app",
                #"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"SELECT count(*) FROM t"}},{"type":"close"}]}"#
            )
            let count =
                ((outside.json.results[0]["response"] as? [String: Any])?["result"] as? [String: Any])?["rows"]
                as? [[[String: Any]]]
            #expect(count?[0][0]["value"] as? String == "0")
            #expect(outside.json["baton"] is NSNull)
            // Commit on the stream, then reusing the old baton fails.
            let second = try await node.pipeline(
                "acme/app", #"{"baton":"\#(baton)","requests":[{"type":"execute","stmt":{"sql":"COMMIT"}}]}"#)
            #expect(second.status == 200)
            let reused = try await node.pipeline("acme/app", #"{"baton":"\#(baton)","requests":[]}"#)
            #expect(reused.status == 400)
            let forged = try await node.pipeline("acme/app", #"{"baton":"not-a-baton","requests":[]}"#)
            #expect(forged.status == 400)
        }
    }

    @Test func expiredStreamsSayStreamExpiredAndRollBack() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.streamIdleTimeout = .milliseconds(1)
        }) { node in
            let opened = try await node.pipeline(
                "acme/app",
                #"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"CREATE TABLE t (x)"}},{"type":"execute","stmt":{"sql":"BEGIN"}},{"type":"execute","stmt":{"sql":"INSERT INTO t VALUES (1)"}}]}"#
            )
            let baton = try #require(opened.json.baton)
            // Upkeep a second later (the stream's idle timeout is 1 ms), without waiting for it.
            await node.node.maintain(now: .now + .seconds(1))
            let expired = try await node.pipeline("acme/app", #"{"baton":"\#(baton)","requests":[]}"#)
            #expect(expired.status == 400)
            #expect(expired.json["code"] as? String == "STREAM_EXPIRED")
            let check = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: #"{"stmt":{"sql":"SELECT count(*) FROM t"}}"#)
            #expect(check.body.contains(#""value":"0""#))
        }
    }

    @Test func badRequestsGetClearErrorsAndTheNodeKeepsServing() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.maxRequestBytes = 10_000
        }) { node in
            let malformed = try await node.request("POST", "/db/acme/app/v3/pipeline", body: "{not json")
            #expect(malformed.status == 400)
            #expect(malformed.body.contains("not valid"))
            let unknownType = try await node.request(
                "POST", "/db/acme/app/v3/pipeline", body: #"{"baton":null,"requests":[{"type":"launch"}]}"#)
            #expect(unknownType.status == 400)
            let oversized = try await node.request(
                "POST", "/db/acme/app/v1/execute",
                body: #"{"stmt":{"sql":"SELECT '\#(String(repeating: "x", count: 20_000))'"}}"#)
            #expect(oversized.status == 413)
            let badName = try await node.request(
                "POST", "/db/acme/a..b/v1/execute", body: #"{"stmt":{"sql":"SELECT 1"}}"#)
            #expect(badName.status == 400)
            #expect(badName.body.contains("not valid"))
            let noDatabase = try await node.request("POST", "/v1/execute", body: #"{"stmt":{"sql":"SELECT 1"}}"#)
            #expect(noDatabase.status == 400)
            #expect(noDatabase.body.contains("name the database"))
            let v2Autocommit = try await node.pipeline(
                "acme/app", #"{"baton":null,"requests":[{"type":"get_autocommit"}]}"#, version: 2)
            #expect(v2Autocommit.status == 400)
            #expect(try await node.request("GET", "/health").status == 200)
        }
    }

    @Test func unknownDatabaseIs404UntilCreatedThroughTheAdminAPI() async throws {
        try await LiveNode.with { (node: LiveNode) async throws in
            let missing = try await node.request(
                "POST", "/db/acme/ghost/v1/execute", body: #"{"stmt":{"sql":"SELECT 1"}}"#)
            #expect(missing.status == 404)
            #expect(try await node.request("POST", "/v1/namespaces/acme/ghost/create").status == 200)
            #expect(try await node.request("POST", "/v1/namespaces/acme/ghost/create").status == 409)
            let found = try await node.request(
                "POST", "/db/acme/ghost/v1/execute", body: #"{"stmt":{"sql":"SELECT 1"}}"#)
            #expect(found.status == 200)
            #expect(try await node.request("DELETE", "/v1/namespaces/acme/ghost").status == 200)
            #expect(
                try await node.request("POST", "/db/acme/ghost/v1/execute", body: #"{"stmt":{"sql":"SELECT 1"}}"#)
                    .status == 404)
        }
    }

    @Test func sandboxRefusesEscapesAndLeavesTheDatabaseIntact() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            _ = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: #"{"stmt":{"sql":"CREATE TABLE t (x); "}}"#)
            for sql in [
                "ATTACH '/etc/passwd' AS p", "VACUUM INTO '/tmp/shoal-escape.db'", "PRAGMA journal_mode = delete",
                "PRAGMA writable_schema = 1", "PRAGMA wal_checkpoint(TRUNCATE)", "SELECT load_extension('x')",
            ] {
                let answer = try await node.request(
                    "POST", "/db/acme/app/v1/execute", body: #"{"stmt":{"sql":"\#(sql)"}}"#)
                #expect(answer.status != 200, "\(sql) was allowed")
                #expect(answer.body.contains(#""code":"SQLITE_"#), "\(sql): \(answer.body)")
            }
            #expect(!FileManager.default.fileExists(atPath: "/tmp/shoal-escape.db"))
            let mode = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: #"{"stmt":{"sql":"PRAGMA journal_mode"}}"#)
            #expect(mode.body.contains(#""value":"wal""#))
        }
    }

    @Test func oversizedResultsAreRefusedWithAClearError() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.maxResponseBytes = 100_000
            $0.maxRowsPerStatement = 1000
        }) { node in
            let big = try await node.request(
                "POST", "/db/acme/app/v1/execute",
                body:
                    #"{"stmt":{"sql":"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT randomblob(5000) FROM c"}}"#
            )
            #expect(big.body.contains("RESPONSE_TOO_LARGE"))
            let many = try await node.request(
                "POST", "/db/acme/app/v1/execute",
                body:
                    #"{"stmt":{"sql":"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) SELECT x FROM c"}}"#
            )
            #expect(many.body.contains("RESPONSE_TOO_LARGE"))
            #expect(many.body.contains("1000 rows"))
            let fine = try await node.request(
                "POST", "/db/acme/app/v1/execute",
                body:
                    #"{"stmt":{"sql":"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) SELECT x FROM c"}}"#
            )
            #expect(fine.status == 200)
        }
    }

    @Test func runawayStatementsStopAtTheTimeLimit() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.statementTimeLimit = .milliseconds(100)
        }) { node in
            let answer = try await node.request(
                "POST", "/db/acme/app/v1/execute",
                body:
                    #"{"stmt":{"sql":"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"}}"#
            )
            #expect(answer.body.contains("SQLITE_INTERRUPT"))
            #expect(answer.body.contains("time limit"))
        }
    }
}
