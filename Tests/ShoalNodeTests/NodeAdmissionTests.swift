import Foundation
import ShoalNodeTestSupport
import ShoalReplication
import ShoalTestSupport
import Testing

@testable import ShoalNode

@Suite(.timeLimit(.minutes(2))) struct NodeAdmissionTests {
    static let openStream = #"{"baton":null,"requests":[]}"#
    static let selectOne = #"{"stmt":{"sql":"SELECT 1"}}"#

    static func closeStream(_ baton: String) -> String {
        #"{"baton":"\#(baton)","requests":[{"type":"close"}]}"#
    }

    /// Opens `count` streams, spread evenly over `databases` (`org/name` each), with a few requests
    /// in flight at a time; returns each stream's database and baton.
    static func openStreams(
        _ node: LiveNode, count: Int, databases: [String], headers: [String: String] = [:]
    ) async throws -> [(database: String, baton: String)] {
        try await withThrowingTaskGroup(of: [(database: String, baton: String)].self) { group in
            let workers = 8
            for worker in 0..<workers {
                group.addTask {
                    var opened: [(database: String, baton: String)] = []
                    for index in stride(from: worker, to: count, by: workers) {
                        let database = databases[index % databases.count]
                        let answer = try await node.request(
                            "POST", "/db/\(database)/v3/pipeline", body: Self.openStream, headers: headers)
                        let json = (try? JSONSerialization.jsonObject(with: Data(answer.body.utf8))) as? [String: Any]
                        guard answer.status == 200, let baton = json?.baton else {
                            throw NodeTestError("stream \(index) on \(database): \(answer.status) \(answer.body)")
                        }
                        opened.append((database, baton))
                    }
                    return opened
                }
            }
            var all: [(database: String, baton: String)] = []
            for try await opened in group { all += opened }
            return all
        }
    }

    /// The descriptors this process holds on `data.db` files under `directory` (Linux: /proc/self/fd).
    static func dataFileDescriptors(under directory: String) -> Int {
        let marker = "/" + (directory as NSString).lastPathComponent + "/"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return entries.filter { entry in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + entry)
            else { return false }
            return target.contains(marker) && target.hasSuffix("/data.db")
        }.count
    }

    @Test func thousandParkedStreamsOfOneOrganizationDoNotDelayAnotherOrganizationsFirstRequest() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            // The pool is the bottleneck: every open database is held by parked streams.
            $0.maxOpenDatabases = 40
            $0.streamLimits = .init(perToken: 1_000, perOrganization: 1_000, perNode: 5_000)
        }) { node in
            let databases = (0..<40).map { "busy/db-\($0)" }
            let streams = try await Self.openStreams(node, count: 1_000, databases: databases)
            #expect(streams.count == 1_000)
            #expect(node.node.streams.count == 1_000)
            #expect(node.node.store.pool.statistics.open == 40)

            let clock = ContinuousClock()
            let start = clock.now
            let answer = try await node.request(
                "POST", "/db/other/app/v1/execute", body: Self.selectOne, timeout: .seconds(5))
            let elapsed = clock.now - start
            #expect(elapsed < .seconds(1), "answered after \(elapsed)")
            // Every open database is in use: refused quickly, saying when to come back.
            #expect(answer.status == 503)
            #expect(answer.headers["retry-after"] == "1")
            #expect(answer.body.contains("in use"))
            // A database the streams keep open still answers at once.
            let busy = try await node.request(
                "POST", "/db/busy/db-0/v1/execute", body: Self.selectOne, timeout: .seconds(5))
            #expect(busy.status == 200)
        }
    }

    @Test func organizationStreamCapKeepsRoomInThePoolForAnotherOrganization() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.maxOpenDatabases = 40
            $0.streamLimits = .init(perToken: 1_000, perOrganization: 30, perNode: 5_000)
        }) { node in
            // One stream on each of 40 databases would fill the pool; the organization's cap stops it at 30.
            var statuses: [Int] = []
            var refusal = ""
            for index in 0..<40 {
                let answer = try await node.request("POST", "/db/busy/db-\(index)/v3/pipeline", body: Self.openStream)
                statuses.append(answer.status)
                if answer.status == 429 {
                    refusal = answer.body
                    #expect(answer.headers["retry-after"] == "1")
                }
            }
            #expect(statuses.filter { $0 == 200 }.count == 30)
            #expect(statuses.filter { $0 == 429 }.count == 10)
            #expect(refusal.contains("organization busy already holds 30 open Hrana streams"))
            #expect(refusal.contains("per-organization cap"))
            let clock = ContinuousClock()
            let start = clock.now
            let other = try await node.request(
                "POST", "/db/other/app/v1/execute", body: Self.selectOne, timeout: .seconds(5))
            #expect(clock.now - start < .seconds(1))
            #expect(other.status == 200)
        }
    }

    @Test func streamCapsRefuseATokenThenItsOrganizationThenTheNodeWith429() async throws {
        let signer = TokenSigner()
        let verifier = try TokenVerifier(keys: ["k1": signer.publicKey])
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.authentication = .tokens(verifier, adminToken: nil)
            $0.streamLimits = .init(perToken: 3, perOrganization: 5, perNode: 8)
        }) { node in
            func bearer(_ claims: [String: Any]) throws -> [String: String] {
                ["Authorization": "Bearer \(try signer.token(claims))"]
            }
            let first = try bearer(["id": "acme/app", "jti": "first"])
            let second = try bearer(["id": "acme/app", "jti": "second"])
            let globex = try bearer(["id": "globex/app"])
            let initech = try bearer(["id": "initech/app"])

            let firsts = try await Self.openStreams(node, count: 3, databases: ["acme/app"], headers: first)
            let tokenCapped = try await node.request(
                "POST", "/db/acme/app/v3/pipeline", body: Self.openStream, headers: first)
            #expect(tokenCapped.status == 429)
            #expect(tokenCapped.headers["retry-after"] == "1")
            #expect(tokenCapped.body.contains("this token already holds 3 open Hrana streams"))
            #expect(tokenCapped.body.contains("per-token cap"))

            // Another token of the organization goes on until the organization's cap.
            _ = try await Self.openStreams(node, count: 2, databases: ["acme/app"], headers: second)
            let organizationCapped = try await node.request(
                "POST", "/db/acme/app/v3/pipeline", body: Self.openStream, headers: second)
            #expect(organizationCapped.status == 429)
            #expect(organizationCapped.body.contains("organization acme already holds 5"))
            #expect(organizationCapped.body.contains("per-organization cap"))
            // Requests that open no stream are not capped.
            #expect(
                try await node.request("POST", "/db/acme/app/v1/execute", body: Self.selectOne, headers: first).status
                    == 200)

            // A token without a jti is counted by the token itself; then the node is full.
            _ = try await Self.openStreams(node, count: 3, databases: ["globex/app"], headers: globex)
            let nodeCapped = try await node.request(
                "POST", "/db/initech/app/v3/pipeline", body: Self.openStream, headers: initech)
            #expect(nodeCapped.status == 429)
            #expect(nodeCapped.body.contains("per-node cap"))

            // A closed stream gives its place back.
            let closed = try await node.request(
                "POST", "/db/acme/app/v3/pipeline", body: Self.closeStream(firsts[0].baton), headers: first)
            #expect(closed.status == 200)
            let again = try await node.request(
                "POST", "/db/acme/app/v3/pipeline", body: Self.openStream, headers: first)
            #expect(again.status == 200)
            #expect(node.node.streams.admission.total == 8)
        }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/proc/self/fd")))
    func dataFileDescriptorsReturnToBaselineOnceStreamsClose() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            // Nothing stays open past the next maintenance pass (which only the test runs).
            $0.databaseIdleTimeout = .zero
            $0.streamIdleTimeout = .zero
            // Without authentication the organization counts as one token: room for all 400.
            $0.streamLimits = .init(perToken: 1_000, perOrganization: 1_000, perNode: 1_000)
        }) { node in
            let baseline = Self.dataFileDescriptors(under: node.dataDirectory)
            let databases = (0..<20).map { "acme/db-\($0)" }
            let streams = try await Self.openStreams(node, count: 400, databases: databases)
            #expect(Self.dataFileDescriptors(under: node.dataDirectory) >= baseline + 400)

            // Half close themselves; the other half are left to expire.
            for stream in streams.prefix(200) {
                let closed = try await node.request(
                    "POST", "/db/\(stream.database)/v3/pipeline", body: Self.closeStream(stream.baton))
                #expect(closed.status == 200)
            }
            #expect(node.node.streams.count == 200)
            await node.node.maintain()
            #expect(node.node.streams.count == 0)
            #expect(node.node.streams.admission.total == 0)
            #expect(node.node.store.pool.statistics.open == 0)
            #expect(Self.dataFileDescriptors(under: node.dataDirectory) == baseline)
        }
    }

    @Test func longPollHoldsNoDatabaseWhileItWaits() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.maxOpenDatabases = 1
            // A long-poll that held its database would make the next request wait this long.
            $0.databaseWaitTimeout = .seconds(5)
        }) { node in
            _ = try await node.request(
                "POST", "/db/acme/a/v1/execute", body: #"{"stmt":{"sql":"CREATE TABLE t (x)"}}"#)
            let frames = try await node.requestData("GET", "/db/acme/a/sync/1/1/1000")
            let next = UInt64(frames.body.count / WALFormat.frameSize) + 1
            async let polled = node.requestData("GET", "/db/acme/a/sync/1/\(next)/\(next + 100)?wait_ms=20000")
            try await waitUntil("the long-poll parked", limit: .seconds(10), every: .milliseconds(1)) {
                node.node.longPolls.total == 1
            }
            #expect(node.node.longPolls.total == 1)

            let clock = ContinuousClock()
            let start = clock.now
            let other = try await node.request(
                "POST", "/db/acme/b/v1/execute", body: Self.selectOne, timeout: .seconds(10))
            // Had the long-poll held a, b would wait the whole 5 s for room and get 503.
            #expect(clock.now - start < .seconds(4))
            #expect(other.status == 200)
            // Opening b closed a (the pool holds one database): the long-poll answers what it read.
            let answer = try await polled
            #expect(clock.now - start < .seconds(10))
            #expect(answer.status == 400)
            #expect(String(decoding: answer.body, as: UTF8.self).contains("checkpoint_needed"))
            #expect(node.node.longPolls.total == 0)
        }
    }

    @Test func longPollPastTheCapIsRefusedWith429WhileOthersWait() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.longPollLimits = .init(perToken: 1, perOrganization: 10, perNode: 10)
        }) { node in
            _ = try await node.request(
                "POST", "/db/acme/a/v1/execute", body: #"{"stmt":{"sql":"CREATE TABLE t (x)"}}"#)
            let frames = try await node.requestData("GET", "/db/acme/a/sync/1/1/1000")
            let next = UInt64(frames.body.count / WALFormat.frameSize) + 1
            let path = "/db/acme/a/sync/1/\(next)/\(next + 100)"
            async let polled = node.requestData("GET", path + "?wait_ms=20000")
            try await waitUntil("the long-poll parked", limit: .seconds(10), every: .milliseconds(1)) {
                node.node.longPolls.total == 1
            }

            let refused = try await node.request("GET", path + "?wait_ms=20000", timeout: .seconds(5))
            #expect(refused.status == 429)
            #expect(refused.headers["retry-after"] == "1")
            #expect(refused.body.contains("long-polls"))
            // Without wait_ms the same read is no long-poll, and is served.
            #expect(try await node.request("GET", path).status == 400)
            // Another organization's long-poll is admitted (and times out on its own).
            _ = try await node.request(
                "POST", "/db/globex/a/v1/execute", body: #"{"stmt":{"sql":"CREATE TABLE t (x)"}}"#)
            let globex = try await node.requestData("GET", "/db/globex/a/sync/1/1/1000")
            let globexNext = UInt64(globex.body.count / WALFormat.frameSize) + 1
            let admitted = try await node.request(
                "GET", "/db/globex/a/sync/1/\(globexNext)/\(globexNext + 100)?wait_ms=50", timeout: .seconds(5))
            #expect(admitted.status == 400)
            #expect(admitted.body.contains("checkpoint_needed"))

            // A commit ends the waiting long-poll with its frames, and gives its place back.
            _ = try await node.request(
                "POST", "/db/acme/a/v1/execute", body: #"{"stmt":{"sql":"INSERT INTO t VALUES (1)"}}"#)
            let woken = try await polled
            #expect(woken.status == 200)
            #expect(node.node.longPolls.total == 0)
        }
    }
}
