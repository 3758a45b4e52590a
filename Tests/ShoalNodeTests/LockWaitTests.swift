import Foundation
import ShoalNodeTestSupport
import ShoalSQLite
import Testing

@testable import ShoalNode

/// One tenant holding its database's write lock, and writers piling up behind it, cannot take the
/// node's SQLite threads from anybody: writers wait for their turn holding no thread, the holder's
/// `COMMIT` runs at once, and another organization's reads are not delayed.
@Suite(.serialized, .timeLimit(.minutes(2))) struct LockWaitTests {
    static func execute(_ sql: String) -> String {
        #"{"type":"execute","stmt":{"sql":"\#(sql)"}}"#
    }

    static func pipeline(baton: String?, _ requests: [String]) -> String {
        let batonJSON = baton.map { #""\#($0)""# } ?? "null"
        return #"{"baton":\#(batonJSON),"requests":[\#(requests.joined(separator: ","))]}"#
    }

    /// The error code of the results of a pipeline answer, nil for the ones that succeeded.
    static func errorCodes(_ json: [String: Any]) -> [String?] {
        json.results.map { result in
            result["type"] as? String == "ok" ? nil : ((result["error"] as? [String: Any])?["code"] as? String ?? "?")
        }
    }

    /// A node whose SQLite work runs on two threads, as on a two-core machine.
    static func configure(_ configuration: inout NodeConfiguration) {
        configuration.createOnFirstUse = true
        configuration.executor = BlockingExecutor(threads: 2, name: "lock-wait-test")
    }

    /// The hosted database of `name` (open, since a stream holds it).
    static func hosted(_ node: LiveNode, _ name: String) throws -> HostedDatabase {
        let lease = try #require(node.node.store.pool.leaseIfOpen(try Namespace(name)))
        defer { _ = node.node.store.pool.releaseIfUncontended(lease) }
        return lease.resource
    }

    @Test func writersQueueWithoutThreadsWhileTheHolderCommitsAndAnotherOrganizationReads() async throws {
        try await LiveNode.with(Self.configure) { node in
            let database = "noisy/db"
            let created = try await node.pipeline(
                database, Self.pipeline(baton: nil, [Self.execute("CREATE TABLE t(x)")]))
            #expect(Self.errorCodes(created.json) == [nil])
            // The holder: a write transaction left open on a parked stream.
            let holder = try await node.pipeline(
                database,
                Self.pipeline(baton: nil, [Self.execute("BEGIN IMMEDIATE"), Self.execute("INSERT INTO t VALUES (0)")]))
            #expect(Self.errorCodes(holder.json) == [nil, nil])
            let holderBaton = try #require(holder.json.baton)
            let writers = try Self.hosted(node, database).writers

            try await withThrowingTaskGroup(of: [String?].self) { group in
                // More writers than the node has threads, each waiting for its turn.
                for index in 1...4 {
                    group.addTask {
                        let answer = try await node.pipeline(
                            database,
                            Self.pipeline(
                                baton: nil, [Self.execute("INSERT INTO t VALUES (\(index))"), #"{"type":"close"}"#]))
                        return Self.errorCodes(answer.json)
                    }
                }
                let deadline = ContinuousClock.now + .seconds(5)
                while writers.waitingCount < 4, ContinuousClock.now < deadline { await Task.yield() }
                #expect(writers.waitingCount == 4)

                // Another organization's reads, while four writers wait and one holds the lock.
                var latencies: [Duration] = []
                for _ in 0..<200 {
                    let start = ContinuousClock.now
                    let answer = try await node.request(
                        "POST", "/db/quiet/app/v2/pipeline",
                        body: Self.pipeline(baton: nil, [Self.execute("SELECT 1"), #"{"type":"close"}"#]))
                    latencies.append(ContinuousClock.now - start)
                    #expect(answer.status == 200)
                }
                latencies.sort()
                let p99 = latencies[latencies.count * 99 / 100]
                #expect(p99 < .milliseconds(50), "another organization's p99 was \(p99) while writers waited")

                // The holder's commit is not stuck behind the writers waiting for it.
                let start = ContinuousClock.now
                let commit = try await node.pipeline(
                    database, Self.pipeline(baton: holderBaton, [Self.execute("COMMIT"), #"{"type":"close"}"#]))
                let commitTook = ContinuousClock.now - start
                #expect(Self.errorCodes(commit.json) == [nil, nil])
                #expect(commitTook < .seconds(1), "the holder's COMMIT took \(commitTook)")

                // Then every waiting writer gets its turn and writes.
                for try await codes in group {
                    #expect(codes == [nil, nil])
                }
            }
            let count = try await node.pipeline(
                database, Self.pipeline(baton: nil, [Self.execute("SELECT count(*) FROM t")]))
            let rows = count.json.results.first?["response"] as? [String: Any]
            let result = rows?["result"] as? [String: Any]
            let value = ((result?["rows"] as? [[Any]])?.first?.first as? [String: Any])?["value"] as? String
            #expect(value == "5")
        }
    }

    @Test func aWriterStillWaitingAtTheRequestTimeLimitGetsSQLiteBusyAndTheHolderCommits() async throws {
        try await LiveNode.with({
            Self.configure(&$0)
            $0.requestTimeLimit = .milliseconds(300)
        }) { node in
            let database = "noisy/db"
            _ = try await node.pipeline(database, Self.pipeline(baton: nil, [Self.execute("CREATE TABLE t(x)")]))
            let holder = try await node.pipeline(
                database, Self.pipeline(baton: nil, [Self.execute("BEGIN"), Self.execute("INSERT INTO t VALUES (0)")]))
            let holderBaton = try #require(holder.json.baton)

            let start = ContinuousClock.now
            let waiter = try await node.pipeline(
                database,
                Self.pipeline(
                    baton: nil,
                    [Self.execute("SELECT 1"), Self.execute("INSERT INTO t VALUES (1)"), #"{"type":"close"}"#]))
            let waited = ContinuousClock.now - start
            // The read runs; the write is refused once the request's time is up, with a message
            // that says what to do.
            #expect(Self.errorCodes(waiter.json) == [nil, "SQLITE_BUSY", nil])
            let message = ((waiter.json.results[1]["error"] as? [String: Any])?["message"] as? String) ?? ""
            #expect(message.contains("retry once it commits"))
            #expect(waited >= .milliseconds(300))
            #expect(waited < .seconds(5))

            let commit = try await node.pipeline(
                database, Self.pipeline(baton: holderBaton, [Self.execute("COMMIT"), #"{"type":"close"}"#]))
            #expect(Self.errorCodes(commit.json) == [nil, nil])
        }
    }

    @Test func aPipelineOfResultsLargerThanTheResponseCapIsRefusedNotAnswered() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
        }) { node in
            // Four values of 30 MB each: every one under the cap, together 160 MB of base64.
            let requests = (0..<4).map { _ in Self.execute("SELECT zeroblob(30000000)") } + [#"{"type":"close"}"#]
            let answer = try await node.requestData(
                "POST", "/db/big/db/v3/pipeline", body: Data(Self.pipeline(baton: nil, requests).utf8))
            #expect(answer.status == 200)
            #expect(answer.body.count < 64 << 20, "answered \(answer.body.count) bytes")
            let json = try #require(try JSONSerialization.jsonObject(with: answer.body) as? [String: Any])
            let codes = Self.errorCodes(json)
            #expect(codes.first == .some(nil))
            #expect(codes.dropFirst().prefix(3).allSatisfy { $0 == "RESPONSE_TOO_LARGE" })
        }
    }
}

/// The node's budget for results held at once: a request that would pass it is refused, and what a
/// request held is given back once its answer is encoded.
@Suite(.timeLimit(.minutes(1))) struct ResponseBudgetTests {
    @Test func reservationsTakeOnlyWhatFitsAndGiveItBackOnce() {
        let budget = ResponseBudget(limit: 100)
        let first = ResponseReservation(budget)
        #expect(first.grow(by: 60))
        let second = ResponseReservation(budget)
        #expect(!second.grow(by: 50))
        #expect(second.grow(by: 40))
        #expect(budget.inUse == 100)
        first.release()
        first.release()
        #expect(budget.inUse == 40)
        _ = consume second
        #expect(budget.inUse == 0)
    }

    @Test func resultsPastTheNodesBudgetAreRefusedAndWhatARequestHeldComesBack() async throws {
        let budget = ResponseBudget(limit: 1 << 20)
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.responseBudget = budget
        }) { node in
            let pipeline = try await node.request(
                "POST", "/db/big/a/v2/pipeline",
                body: LockWaitTests.pipeline(
                    baton: nil,
                    [
                        LockWaitTests.execute("SELECT zeroblob(600000)"),
                        LockWaitTests.execute("SELECT zeroblob(600000)"), #"{"type":"close"}"#,
                    ]))
            #expect(pipeline.status == 200)
            #expect(pipeline.body.contains("RESPONSE_TOO_LARGE"), "\(pipeline.body.prefix(200))")
            #expect(pipeline.body.contains("other requests' results"))
            // The first result fit and was answered; once encoded, the budget is free again.
            #expect(budget.inUse == 0)

            // A cursor holds only the chunk being written: both values fit one after the other,
            // and only a single row larger than the budget is refused.
            func cursor(_ steps: [String]) -> String {
                let json = steps.map { #"{"stmt":{"sql":"\#($0)"}}"# }.joined(separator: ",")
                return #"{"baton":null,"batch":{"steps":[\#(json)]}}"#
            }
            let both = try await node.request(
                "POST", "/db/big/a/v3/cursor", body: cursor(["SELECT zeroblob(600000)", "SELECT zeroblob(600000)"]))
            #expect(both.status == 200)
            #expect(!both.body.contains("step_error"), "\(both.body.suffix(300))")
            #expect(both.body.components(separatedBy: #""type":"step_end""#).count == 3)
            #expect(budget.inUse == 0)
            let huge = try await node.request(
                "POST", "/db/big/a/v3/cursor", body: cursor(["SELECT zeroblob(1500000)"]))
            #expect(huge.status == 200)
            #expect(huge.body.contains("RESPONSE_TOO_LARGE"), "\(huge.body.prefix(300))")
            #expect(huge.body.contains("other requests' results"))
            #expect(budget.inUse == 0)
            let v1 = try await node.request(
                "POST", "/db/big/a/v1/execute", body: #"{"stmt":{"sql":"SELECT zeroblob(600000)"}}"#)
            #expect(v1.status == 200)
            #expect(budget.inUse == 0)
        }
    }
}
