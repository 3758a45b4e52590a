import Foundation
import ShoalHTTP
import ShoalNodeTestSupport
import ShoalSQLite
import ShoalTestSupport
import Testing

@testable import ShoalNode
@testable import ShoalReplication

/// `/v3/cursor` answers are streamed: stepped a chunk at a time while they are written, so that a
/// cursor may return more than the response cap, holds no more than a chunk of the node's response
/// budget, and a client that stops reading loses its connection and gives its stream back.
@Suite(.timeLimit(.minutes(2))) struct CursorStreamingTests {
    /// `count` rows of a number and 300 random bytes (about 420 bytes each as JSON).
    static func rows(_ count: Int) -> String {
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < \(count)) SELECT x, randomblob(300) FROM c"
    }

    static func cursorBody(_ sql: String, baton: String? = nil) -> String {
        let baton = baton.map { #""\#($0)""# } ?? "null"
        return #"{"baton":\#(baton),"batch":{"steps":[{"stmt":{"sql":"\#(sql)"}}]}}"#
    }

    /// The entries of a cursor answer, after its header line.
    static func entries(_ body: String) throws -> (header: [String: Any], entries: [[String: Any]]) {
        let lines = body.split(separator: "\n")
        let objects = try lines.map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        let header = try #require(objects.first)
        return (header, Array(objects.dropFirst()))
    }

    @Test func aCursorLargerThanTheResponseCapAndTheNodesBudgetIsAnsweredWhole() async throws {
        // 20,000 rows, about 8 MB of JSON: eight times the per-request cap and the node's budget.
        // The request time limit is raised: a cursor must end within it, and a loaded machine
        // (the whole suite at once) may take longer than the default 10 s.
        let budget = ResponseBudget(limit: 1 << 20)
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.maxResponseBytes = 1 << 20
            $0.responseBudget = budget
            $0.requestTimeLimit = .seconds(120)
            $0.statementTimeLimit = .seconds(120)
        }) { node in
            let pipeline = try await node.pipeline(
                "acme/big",
                LockWaitTests.pipeline(baton: nil, [LockWaitTests.execute(Self.rows(20_000)), #"{"type":"close"}"#]))
            #expect(LockWaitTests.errorCodes(pipeline.json).first == "RESPONSE_TOO_LARGE")

            // The client waits as long as the node may take (the whole suite at once loads the
            // machine: the rollout over 1,000 databases runs beside this).
            let answer = try await node.request(
                "POST", "/db/acme/big/v3/cursor", body: Self.cursorBody(Self.rows(20_000)), timeout: .seconds(120))
            #expect(answer.status == 200)
            #expect(answer.body.utf8.count > 8 << 20, "answered \(answer.body.utf8.count) bytes")
            let (header, entries) = try Self.entries(answer.body)
            #expect(entries.first?["type"] as? String == "step_begin")
            let rows = entries.filter { $0["type"] as? String == "row" }
            #expect(rows.count == 20_000)
            let last = (rows.last?["row"] as? [[String: Any]])?.first?["value"] as? String
            #expect(last == "20000")
            #expect(entries.last?["type"] as? String == "step_end")
            #expect(!entries.contains { $0["type"] as? String == "step_error" })
            #expect(budget.inUse == 0)

            // The stream is parked once the answer is out: its baton runs the next request.
            let baton = try #require(header["baton"] as? String)
            let next = try await node.pipeline(
                "acme/big",
                LockWaitTests.pipeline(baton: baton, [LockWaitTests.execute("SELECT 1"), #"{"type":"close"}"#]))
            #expect(LockWaitTests.errorCodes(next.json) == [nil, nil])
            try await waitUntil("no stream held", limit: .seconds(5), every: .milliseconds(20)) {
                node.node.streams.admission.total == 0
            }
        }
    }

    @Test func aCursorThatFitsOneChunkAndOneThatFailsAnswerAsBatchesDo() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            let body =
                #"{"baton":null,"batch":{"steps":["#
                + #"{"stmt":{"sql":"CREATE TABLE t (x)"}},"#
                + #"{"stmt":{"sql":"INSERT INTO t VALUES (1), (2)"},"condition":{"type":"ok","step":0}},"#
                + #"{"stmt":{"sql":"SELECT nope FROM t"}},"#
                + #"{"stmt":{"sql":"SELECT x FROM t"},"condition":{"type":"error","step":2}},"#
                + #"{"stmt":{"sql":"SELECT 1"},"condition":{"type":"ok","step":2}}"#
                + "]}}"
            let answer = try await node.request("POST", "/db/acme/small/v3/cursor", body: body)
            #expect(answer.status == 200)
            let (_, entries) = try Self.entries(answer.body)
            let kinds = entries.map { "\($0["type"] ?? "")\(($0["step"] as? Int).map { "\($0)" } ?? "")" }
            #expect(
                kinds == [
                    "step_begin0", "step_end", "step_begin1", "step_end", "step_error2", "step_begin3", "row", "row",
                    "step_end",
                ])
            #expect(entries[3]["affected_row_count"] as? Int == 2)

            // A condition on a later step is refused before anything runs.
            let bad = try await node.request(
                "POST", "/db/acme/small/v3/cursor",
                body:
                    #"{"baton":null,"batch":{"steps":[{"stmt":{"sql":"SELECT 1"},"condition":{"type":"ok","step":1}},{"stmt":{"sql":"SELECT 2"}}]}}"#
            )
            #expect(bad.status == 400)
            #expect(bad.body.contains("refers to step 1"))
            // So is SQL neither given nor stored, even after a step that would fill a chunk.
            let unknown = try await node.request(
                "POST", "/db/acme/small/v3/cursor",
                body:
                    #"{"baton":null,"batch":{"steps":[{"stmt":{"sql":"\#(Self.rows(2_000))"}},{"stmt":{"sql_id":7}}]}}"#
            )
            #expect(unknown.status == 400)
            #expect(unknown.body.contains("not stored"), "\(unknown.body.prefix(200))")
        }
    }

    @Test func aWritingStepKeepsItsWritePermitWhileItsRowsAreStreamed() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.requestTimeLimit = .seconds(120)
            $0.statementTimeLimit = .seconds(120)
            $0.connectionLimits = ConnectionLimits(writeStallTimeout: .seconds(2), maxConnections: 100)
        }) { node in
            let port = try #require(URL(string: node.url)?.port)
            #expect(
                try await node.request(
                    "POST", "/db/acme/rw/v1/execute", body: #"{"stmt":{"sql":"CREATE TABLE t (x)"}}"#
                )
                .status == 200)
            // INSERT … RETURNING changes everything at its first step and commits when its last row
            // is out: its rows (about 40 MB) stream to a client that reads only the head.
            let body = Self.cursorBody(
                "INSERT INTO t WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100000) "
                    + "SELECT randomblob(300) FROM c RETURNING x")
            let stuck = try RawConnection(port: port, receiveBuffer: 4096)
            #expect(
                stuck.send(
                    "POST /db/acme/rw/v3/cursor HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        + "Content-Length: \(body.utf8.count)\r\n\r\n" + body))
            let start = try #require(await stuck.receive(until: #""type":"row""#, within: .seconds(30)))
            #expect(String(decoding: start, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
            // The statement is open mid-step: it holds the log's write permit (a generation roll
            // cannot cut its commit in two) and its database's write turn.
            let namespace = try Namespace(organization: "acme", database: "rw")
            let (permits, turnHeld) = try await node.node.store.withDatabase(namespace) { database in
                let probe = WriterQueue.Owner()
                let free = database.writers.tryAcquire(probe)
                if free { database.writers.release(probe) }
                return (try database.log.gate.sharedCount, !free)
            }
            #expect(permits == 1)
            #expect(turnHeld)
            // The client reads no more: past the write-stall timeout its connection is closed and
            // the stream with it. SQLite made the statement's changes at its first step and commits
            // them when it ends, read to the end or not (as on sqld), under the permit, which goes
            // back only then.
            try await waitUntil("no stream held", limit: .seconds(30), every: .milliseconds(20)) {
                node.node.streams.admission.total == 0
            }
            let count = try await node.request(
                "POST", "/db/acme/rw/v1/execute", body: #"{"stmt":{"sql":"SELECT count(*) FROM t"}}"#)
            #expect(count.body.contains(#""value":"100000""#), "\(count.body)")
            let after = try await node.node.store.withDatabase(namespace) { try $0.log.gate.sharedCount }
            #expect(after == 0)
        }
    }

    @Test func aClientThatStopsReadingItsCursorIsClosedAndItsStreamGivenBack() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.connectionLimits = ConnectionLimits(writeStallTimeout: .seconds(1), maxConnections: 100)
            // Long enough that the cursor is still stepping when its reader stalls, however loaded
            // the machine (at its end the answer would fit the socket buffers and never stall).
            $0.requestTimeLimit = .seconds(120)
            $0.statementTimeLimit = .seconds(120)
        }) { node in
            let port = try #require(URL(string: node.url)?.port)
            // A write, then about 40 MB of rows, for a client with a 4 KB receive buffer that reads
            // only the head.
            #expect(
                try await node.request(
                    "POST", "/db/acme/wide/v1/execute", body: #"{"stmt":{"sql":"CREATE TABLE w (x)"}}"#
                ).status == 200)
            let body =
                #"{"baton":null,"batch":{"steps":[{"stmt":{"sql":"INSERT INTO w VALUES (1)"}},"#
                + #"{"stmt":{"sql":"\#(Self.rows(100_000))"}}]}}"#
            let stuck = try RawConnection(port: port, receiveBuffer: 4096)
            #expect(
                stuck.send(
                    "POST /db/acme/wide/v3/cursor HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        + "Content-Length: \(body.utf8.count)\r\n\r\n" + body))
            let start = try #require(await stuck.receive(until: "step_begin", within: .seconds(20)))
            let text = String(decoding: start, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200"))
            let baton = try #require(
                text.firstMatch(of: /"baton":"([^"]+)"/).map { String($0.1) }, "no baton in \(text.prefix(300))")

            // While its answer is being written the baton is refused, with what to do.
            let early = try await node.pipeline(
                "acme/wide", LockWaitTests.pipeline(baton: baton, [LockWaitTests.execute("SELECT 1")]))
            #expect(early.status == 400)
            #expect("\(early.json)".contains("still answering a cursor"), "\(early.json)")
            #expect(node.node.streams.admission.total == 1)
            // Its write committed and it reads outside a transaction: it holds no write turn, so
            // another writer of the same database goes ahead at once.
            let writer = try await node.request(
                "POST", "/db/acme/wide/v1/execute", body: #"{"stmt":{"sql":"INSERT INTO w VALUES (2)"}}"#)
            #expect(writer.status == 200)
            #expect(!writer.body.contains("error"), "\(writer.body.prefix(300))")
            // Nobody else waits on it: another organization is answered meanwhile.
            let other = try await node.request(
                "POST", "/db/globex/app/v1/execute", body: #"{"stmt":{"sql":"SELECT 1"}}"#)
            #expect(other.status == 200)

            // Unread past the write-stall timeout: the connection is closed and the stream goes.
            try await waitUntil("the stalled cursor's stream closing", limit: .seconds(20), every: .milliseconds(20)) {
                node.node.streams.admission.total == 0
            }
            #expect(await stuck.closedByServer(within: .seconds(20)) != nil)
            let after = try await node.pipeline(
                "acme/wide", LockWaitTests.pipeline(baton: baton, [LockWaitTests.execute("SELECT 1")]))
            #expect(after.status == 400)
            #expect(node.node.streams.count == 0)
        }
    }
}
