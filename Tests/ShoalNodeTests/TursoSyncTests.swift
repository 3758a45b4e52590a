import Foundation
import ShoalNodeTestSupport
import ShoalReplication
import ShoalSQLite
import ShoalTestSupport
import SwiftProtobuf
import Testing

@testable import ShoalNode

/// What a Turso Sync client does with `/pull-updates` answers: it keeps a database image, lays the
/// pages of each answer over it and cuts it to `db_size`.
struct PulledDatabase {
    var image: [UInt8] = []
    var revision = ""

    struct Answer {
        let header: Shoal_Tursosync_PullUpdatesHeader
        let pages: [Shoal_Tursosync_PageData]
    }

    /// Splits an answer body into its delimited messages.
    static func decode(_ body: Data) throws -> Answer {
        var bytes = [UInt8](body)[...]
        func next() throws -> [UInt8]? {
            guard !bytes.isEmpty else { return nil }
            var length = 0
            var shift = 0
            while true {
                let byte = bytes.removeFirst()
                length |= Int(byte & 0x7f) << shift
                if byte < 0x80 { break }
                shift += 7
            }
            let message = Array(bytes.prefix(length))
            #expect(message.count == length, "a message is cut short")
            bytes = bytes.dropFirst(length)
            return message
        }
        guard let head = try next() else { throw NodeTestError("the answer is empty") }
        let header = try Shoal_Tursosync_PullUpdatesHeader(serializedBytes: head)
        var pages: [Shoal_Tursosync_PageData] = []
        while let page = try next() { pages.append(try Shoal_Tursosync_PageData(serializedBytes: page)) }
        return Answer(header: header, pages: pages)
    }

    /// Lays an answer over the image.
    mutating func apply(_ answer: Answer) {
        revision = answer.header.serverRevision
        guard !answer.pages.isEmpty else { return }
        let size = Int(answer.header.dbSize) * 4096
        if image.count < size { image += [UInt8](repeating: 0, count: size - image.count) }
        for page in answer.pages {
            #expect(page.encodedPage.count == 4096)
            let offset = Int(page.pageID) * 4096
            image.replaceSubrange(offset..<(offset + 4096), with: page.encodedPage)
        }
        image.removeLast(image.count - size)
    }

    /// The rows of `sql` in the image, read with SQLite.
    func query(_ sql: String, scratch: String) throws -> [[SQLiteValue]] {
        let directory = scratch + "/pulled-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(image).write(to: URL(fileURLWithPath: directory + "/db"))
        let connection = try Connection(path: directory + "/db")
        defer { try? connection.close() }
        #expect(try connection.queryOne("PRAGMA quick_check")?[0] == .text("ok"))
        return try connection.query(sql).map(\.values)
    }
}

@Suite(.timeLimit(.minutes(2))) struct TursoSyncTests {
    static func pull(
        _ node: LiveNode, _ database: String = "acme/app", since revision: String = "", wait: UInt32 = 0,
        headers: [String: String] = [:]
    ) async throws -> (status: Int, body: Data, headers: [String: String]) {
        var request = Shoal_Tursosync_PullUpdatesRequest()
        request.clientRevision = revision
        request.longPollTimeoutMs = wait
        let body: [UInt8] = try request.serializedBytes()
        return try await node.requestData(
            "POST", "/db/\(database)/pull-updates", body: Data(body),
            headers: headers.merging(["Content-Type": "application/protobuf"]) { first, _ in first })
    }

    static func run(_ node: LiveNode, _ sql: String, database: String = "acme/app") async throws {
        let escaped = sql.replacingOccurrences(of: "\"", with: "\\\"")
        let answer = try await node.request(
            "POST", "/db/\(database)/v2/pipeline",
            body: #"{"requests":[{"type":"sequence","sql":"\#(escaped)"},{"type":"close"}]}"#)
        #expect(answer.status == 200 && !answer.body.contains(#""type":"error""#), "\(answer.body)")
    }

    @Test func bootstrapThenPullsOnlyTheChangedPagesThenNothing() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            // Enough rows for many pages, so that a later one-row change touches only a few.
            try await Self.run(
                node,
                "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO t (v) SELECT printf('row %d %s', i, hex(randomblob(40))) FROM n"
            )
            var client = PulledDatabase()
            let first = try await Self.pull(node)
            #expect(first.status == 200)
            #expect(first.headers["content-type"] == "application/protobuf")
            let bootstrap = try PulledDatabase.decode(first.body)
            #expect(bootstrap.header.hasRawEncoding)
            #expect(bootstrap.pages.count == Int(bootstrap.header.dbSize))
            #expect(bootstrap.pages.map(\.pageID) == Array(0..<bootstrap.header.dbSize))
            #expect(bootstrap.pages.count > 20)
            client.apply(bootstrap)
            #expect(try client.query("SELECT count(*) FROM t", scratch: node.dataDirectory) == [[.integer(2000)]])

            try await Self.run(node, "UPDATE t SET v = 'changed' WHERE id = 1000")
            let second = try PulledDatabase.decode(try await Self.pull(node, since: client.revision).body)
            #expect(second.header.serverRevision != client.revision)
            #expect(!second.pages.isEmpty && second.pages.count < 5, "\(second.pages.count) pages for one row")
            #expect(second.header.dbSize == bootstrap.header.dbSize)
            client.apply(second)
            #expect(
                try client.query("SELECT v FROM t WHERE id = 1000", scratch: node.dataDirectory) == [[.text("changed")]]
            )

            let third = try PulledDatabase.decode(try await Self.pull(node, since: client.revision).body)
            #expect(third.pages.isEmpty)
            #expect(third.header.serverRevision == client.revision)
            #expect(third.header.dbSize == bootstrap.header.dbSize)

            // A revision that names the same frame of another log (its checksum differs) or is not
            // Shoal's at all gets every page again.
            let parsed = try #require(TursoRevision(client.revision))
            let foreign = TursoRevision(position: parsed.position, checksum: parsed.checksum ^ 1).description
            for revision in [foreign, "rev1", "shoal-1-999999-0"] {
                let answer = try PulledDatabase.decode(try await Self.pull(node, since: revision).body)
                #expect(answer.pages.count == Int(answer.header.dbSize), "\(revision)")
                var fresh = PulledDatabase()
                fresh.apply(answer)
                #expect(try fresh.query("SELECT count(*) FROM t", scratch: node.dataDirectory) == [[.integer(2000)]])
            }
            let metrics = try await node.request("GET", "/metrics").body
            #expect(
                try PrometheusSamples(metrics)[#"shoal_node_requests_total{route="pull_updates",status="2xx"}"#] == 6)
        }
    }

    @Test func aRevisionOfAnEarlierGenerationGetsTheWholeDatabase() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            try await Self.run(node, "CREATE TABLE t (x); INSERT INTO t VALUES (1)")
            var client = PulledDatabase()
            client.apply(try PulledDatabase.decode(try await Self.pull(node).body))
            let namespace = try Namespace("acme/app")
            #expect(try await node.node.store.withDatabase(namespace) { try $0.log.rollGeneration() })
            try await Self.run(node, "INSERT INTO t VALUES (2)")
            let answer = try PulledDatabase.decode(try await Self.pull(node, since: client.revision).body)
            #expect(answer.header.serverRevision.hasPrefix("shoal-2-"))
            #expect(answer.pages.count == Int(answer.header.dbSize))
            client.apply(answer)
            #expect(
                try client.query("SELECT x FROM t ORDER BY x", scratch: node.dataDirectory) == [
                    [.integer(1)], [.integer(2)],
                ])
            // Right after a roll nothing is in the new generation's log yet: still a whole answer
            // for an older revision, and "nothing new" for the current one.
            #expect(try await node.node.store.withDatabase(namespace) { try $0.log.rollGeneration() })
            let atBase = try PulledDatabase.decode(try await Self.pull(node, since: client.revision).body)
            #expect(atBase.header.serverRevision == "shoal-3-0-0")
            #expect(atBase.pages.count == Int(atBase.header.dbSize))
            let current = try PulledDatabase.decode(try await Self.pull(node, since: "shoal-3-0-0").body)
            #expect(current.pages.isEmpty && current.header.serverRevision == "shoal-3-0-0")
        }
    }

    @Test func aLongPollAnswersWhenAWriteCommits() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            try await Self.run(node, "CREATE TABLE t (x)")
            var client = PulledDatabase()
            client.apply(try PulledDatabase.decode(try await Self.pull(node).body))
            let revision = client.revision
            async let polled = Self.pull(node, since: revision, wait: 30_000)
            // Write once the poll is waiting (the node counts it), not after a guessed delay.
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(10)
            while node.node.longPolls.total == 0, clock.now < deadline { await Task.yield() }
            #expect(node.node.longPolls.total == 1, "the pull did not wait")
            let start = clock.now
            try await Self.run(node, "INSERT INTO t VALUES (42)")
            let answer = try PulledDatabase.decode(try await polled.body)
            #expect(clock.now - start < .seconds(25))
            #expect(!answer.pages.isEmpty)
            client.apply(answer)
            #expect(try client.query("SELECT x FROM t", scratch: node.dataDirectory) == [[.integer(42)]])
            #expect(node.node.longPolls.total == 0)
        }
    }

    @Test func wholeDatabaseAnswersAreCappedAndGiveTheirPlaceBack() async throws {
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.snapshotLimits = .init(perToken: 5, perOrganization: 1, perNode: 5)
        }) { node in
            try await Self.run(node, "CREATE TABLE t (x); INSERT INTO t VALUES (1)")
            // The organization's one place is taken, as by a bootstrap still being sent.
            let held = try node.node.snapshots.admit(holder: "someone-else", organization: "acme")
            let refused = try await Self.pull(node)
            #expect(refused.status == 429)
            #expect(refused.headers["retry-after"] == "1")
            #expect(String(decoding: refused.body, as: UTF8.self).contains("whole-database /pull-updates answers"))
            held.release()
            let first = try await Self.pull(node)
            #expect(first.status == 200)
            let revision = try PulledDatabase.decode(first.body).header.serverRevision
            // The place went back when the answer was sent.
            #expect(node.node.snapshots.total == 0)
            // A client that is current needs no whole answer: not refused while the place is taken.
            let again = try node.node.snapshots.admit(holder: "someone-else", organization: "acme")
            let current = try await Self.pull(node, since: revision)
            #expect(current.status == 200)
            #expect(try PulledDatabase.decode(current.body).pages.isEmpty)
            again.release()
        }
    }

    @Test func requestsShoalDoesNotServeAreRefusedWithTheReason() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            try await Self.run(node, "CREATE TABLE t (x)")
            let garbage = try await node.requestData(
                "POST", "/db/acme/app/pull-updates", body: Data(repeating: 0xff, count: 12))
            #expect(garbage.status == 400)
            #expect(String(decoding: garbage.body, as: UTF8.self).contains("not a protobuf PullUpdatesReqProtoBody"))
            var partial = Shoal_Tursosync_PullUpdatesRequest()
            partial.serverPagesSelector = Data([1, 2, 3])
            let refused = try await node.requestData(
                "POST", "/db/acme/app/pull-updates", body: Data(try partial.serializedBytes() as [UInt8]))
            #expect(refused.status == 400)
            #expect(String(decoding: refused.body, as: UTF8.self).contains("partial sync"))
            var logical = Shoal_Tursosync_PullUpdatesRequest()
            logical.logicalUpdates = true
            let mvcc = try await node.requestData(
                "POST", "/db/acme/app/pull-updates", body: Data(try logical.serializedBytes() as [UInt8]))
            #expect(mvcc.status == 400)
            let huge = try await node.requestData(
                "POST", "/db/acme/app/pull-updates", body: Data(repeating: 0, count: 100_000))
            #expect(huge.status == 413)
        }
    }

    @Test func pullsNeedATokenForTheDatabaseAndAnAllowedLocation() async throws {
        try await NodeAuthTests.withSecuredNode { node, signer in
            #expect(try await Self.pull(node).status == 401)
            let other = try signer.token(["id": "acme/other"])
            #expect(try await Self.pull(node, headers: ["Authorization": "Bearer \(other)"]).status == 403)
            let foreignOrganization = try signer.token(["id": "evil/app"])
            #expect(
                try await Self.pull(node, headers: ["Authorization": "Bearer \(foreignOrganization)"]).status == 403)
            let own = try signer.token(["id": "acme/app"])
            let allowed = try await Self.pull(node, headers: ["Authorization": "Bearer \(own)"])
            #expect(allowed.status == 200)
            #expect(try PulledDatabase.decode(allowed.body).pages.count >= 1)

            #expect(
                try await node.request(
                    "POST", "/v1/namespaces/acme/app/config", body: #"{"allowed_locations":["fra"]}"#,
                    headers: ["Authorization": "Bearer admin-secret"]
                ).status == 200)
            let iad = try signer.token(["id": "acme/app", "loc": "iad"])
            let locked = try await Self.pull(node, headers: ["Authorization": "Bearer \(iad)"])
            #expect(locked.status == 403)
            #expect(String(decoding: locked.body, as: UTF8.self).contains("region-locked to fra"))
            let fra = try signer.token(["id": "acme/app", "loc": "fra"])
            #expect(try await Self.pull(node, headers: ["Authorization": "Bearer \(fra)"]).status == 200)
        }
    }
}
