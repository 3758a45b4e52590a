import Foundation
import Hummingbird
import Logging
import ShoalClient
import ShoalHTTP
import ShoalNode
import ShoalNodeTestSupport
import ShoalSQLite
import ShoalTestSupport
import Testing

/// Runs a real node on a loopback port for one test.
func withNode(
    _ configure: (inout NodeConfiguration) -> Void = { _ in }, _ body: @Sendable (String, String) async throws -> Void
) async throws {
    try await withLiveNode(configure) { url, directory, _ in try await body(url, directory) }
}

/// Runs a real node on a loopback port for one test (`LiveNode`, creating databases on first use),
/// handing the test its URL, a directory of the test's own for client files, and the node (to run
/// its upkeep, `maintain()`, when the test says).
func withLiveNode(
    _ configure: (inout NodeConfiguration) -> Void = { _ in },
    _ body: @Sendable (String, String, Node) async throws -> Void
) async throws {
    let scratch = try TemporaryDirectory()
    let directory = scratch.path
    try await LiveNode.with({ configuration in
        configuration.createOnFirstUse = true
        configure(&configuration)
    }) { live in
        try await body(live.url, directory, live.node)
    }
    withExtendedLifetime(scratch) {}
}

@Suite(.timeLimit(.minutes(2))) struct ClientTests {
    @Test func embeddedReplicaBootstrapsReadsLocallyAndSeesItsOwnWrites() async throws {
        try await withNode { url, directory in
            let syncURL = URL(string: url + "/db/acme/cards")!
            let writer = RemoteDatabase(url: syncURL, token: nil)
            try await writer.execute("CREATE TABLE card (id INTEGER PRIMARY KEY, holder TEXT, valid INTEGER)")
            try await writer.execute("INSERT INTO card (holder, valid) VALUES (?, ?)", [.text("ada"), .integer(1)])

            let database = try Database(directory: directory + "/replica-1", syncURL: syncURL)
            let first = try await database.sync()
            #expect(first.bootstrapped)
            #expect(try await database.queryOne("SELECT holder FROM card WHERE id = ?", [1])?[0] == .text("ada"))

            let inserted = try await database.execute(
                "INSERT INTO card (holder, valid) VALUES (?, ?)", [.text("grace"), .integer(1)])
            #expect(inserted.affectedRowCount == 1)
            // Read-your-writes: the local copy has it when execute returns.
            #expect(
                try await database.query("SELECT holder FROM card ORDER BY id").map { $0[0] } == [
                    .text("ada"), .text("grace"),
                ])

            let other = try Database(directory: directory + "/replica-2", syncURL: syncURL, readYourWrites: false)
            try await other.sync()
            #expect(try await other.queryOne("SELECT count(*) FROM card")?[0] == .integer(2))
            try await writer.execute("UPDATE card SET valid = 0 WHERE holder = 'ada'")
            #expect(try await other.queryOne("SELECT valid FROM card WHERE id = 1")?[0] == .integer(1))
            try await other.sync()
            #expect(try await other.queryOne("SELECT valid FROM card WHERE id = 1")?[0] == .integer(0))
            await database.close()
            await other.close()
            await writer.close()
        }
    }

    @Test func sqlErrorsCarryTheirCodeAndTransactionsSpanCalls() async throws {
        try await withNode { url, _ in
            let remote = RemoteDatabase(url: URL(string: url + "/db/acme/app")!, token: nil)
            try await remote.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            try await remote.execute("BEGIN")
            try await remote.execute("INSERT INTO t VALUES (1)")
            try await remote.execute("ROLLBACK")
            #expect(try await remote.execute("SELECT count(*) FROM t").rows == [[.integer(0)]])
            try await remote.execute("INSERT INTO t VALUES (1)")
            await #expect {
                try await remote.execute("INSERT INTO t VALUES (1)")
            } throws: { error in
                (error as? ClientError)?.sqlCode == "SQLITE_CONSTRAINT"
            }
            await remote.close()
        }
    }

    @Test func anIdleStreamThatExpiredIsReplacedUnlessItHeldATransaction() async throws {
        // Every parked stream is past an idle timeout of zero: the node's upkeep expires them all.
        try await withLiveNode({ $0.streamIdleTimeout = .zero }) { url, _, node in
            let remote = RemoteDatabase(url: URL(string: url + "/db/acme/idle")!, token: nil)
            try await remote.execute("CREATE TABLE t (x)")
            await node.maintain()
            try await remote.execute("INSERT INTO t VALUES (1)")
            try await remote.execute("BEGIN")
            try await remote.execute("INSERT INTO t VALUES (2)")
            await node.maintain()
            await #expect {
                try await remote.execute("INSERT INTO t VALUES (3)")
            } throws: { error in
                let error = error as? ClientError
                return error?.sqlCode == "STREAM_EXPIRED" && "\(error!)".contains("rolled back")
            }
            // The expired transaction was rolled back; the next statement runs on a new stream.
            #expect(try await remote.execute("SELECT x FROM t ORDER BY x").rows == [[.integer(1)]])
            await remote.close()
        }
    }

    @Test func replicaFollowsAGenerationRoll() async throws {
        try await withNode { url, directory in
            let syncURL = URL(string: url + "/db/acme/rolls")!
            let database = try Database(directory: directory + "/replica", syncURL: syncURL)
            try await database.execute("CREATE TABLE t (x)")
            try await database.execute("INSERT INTO t VALUES (1)")
            let roll = try await OutboundHTTP.send(
                HTTPCall("POST", URL(string: url + "/v1/namespaces/acme/rolls/checkpoint")!))
            #expect(roll.isSuccess)
            try await database.execute("INSERT INTO t VALUES (2)")
            #expect(try await database.queryOne("SELECT sum(x) FROM t")?[0] == .integer(3))
            #expect(database.replica.position?.generation == 2)
            await database.close()
        }
    }

    @Test func unknownDatabaseAndMissingTokenAreDistinctErrors() async throws {
        try await withNode({ $0.createOnFirstUse = false }) { url, directory in
            let missing = try Database(directory: directory + "/missing", syncURL: URL(string: url + "/db/acme/ghost")!)
            await #expect(throws: ClientError.notFound) { try await missing.sync() }
            await missing.close()
        }
    }
}

@Suite(.timeLimit(.minutes(2))) struct DatabaseLifecycleTests {
    @Test func reopensFromExistingLocalFilesAndContinues() async throws {
        try await withNode { url, directory in
            let syncURL = URL(string: url + "/db/acme/life")!
            let first = try Database(directory: directory + "/replica", syncURL: syncURL)
            try await first.execute("CREATE TABLE t (x)")
            try await first.execute("INSERT INTO t VALUES (1)")
            let position = first.replica.position
            await first.close()
            let again = try Database(directory: directory + "/replica", syncURL: syncURL)
            #expect(again.replica.position == position)
            #expect(try await again.queryOne("SELECT count(*) FROM t")?[0] == .integer(1))
            try await again.execute("INSERT INTO t VALUES (2)")
            let result = try await again.sync()
            #expect(!result.bootstrapped)
            #expect(try await again.queryOne("SELECT count(*) FROM t")?[0] == .integer(2))
            await again.close()
        }
    }

    @Test func foreignAndCorruptLocalFilesAreDistinctErrorsAndRebuildFixesThem() async throws {
        try await withNode { url, directory in
            let syncURL = URL(string: url + "/db/acme/one")!
            let database = try Database(directory: directory + "/replica", syncURL: syncURL)
            try await database.execute("CREATE TABLE t (x)")
            try await database.execute("INSERT INTO t VALUES (1)")
            await database.close()
            #expect(throws: ClientError.foreignReplica) {
                try Database(directory: directory + "/replica", syncURL: URL(string: url + "/db/acme/two")!)
            }
            // Damage the header of the local file.
            let handle = try #require(FileHandle(forWritingAtPath: directory + "/replica/data.db"))
            try handle.write(contentsOf: Data(repeating: 0x41, count: 64))
            try handle.close()
            #expect(throws: ClientError.corruptReplica) {
                try Database(directory: directory + "/replica", syncURL: syncURL)
            }
            let rebuilt = try await Database.rebuild(directory: directory + "/replica", syncURL: syncURL)
            #expect(try await rebuilt.queryOne("SELECT count(*) FROM t")?[0] == .integer(1))
            await rebuilt.close()
        }
    }

    @Test func maxStalenessSyncsOnlyWhenTheLastSyncIsTooOld() async throws {
        try await withNode { url, directory in
            let syncURL = URL(string: url + "/db/acme/stale")!
            let writer = RemoteDatabase(url: syncURL, token: nil)
            try await writer.execute("CREATE TABLE t (x)")
            let database = try Database(directory: directory + "/replica", syncURL: syncURL, readYourWrites: false)
            try await database.sync()
            try await writer.execute("INSERT INTO t VALUES (1)")
            // Synced moments ago: an hour of staleness is fine, so the local (old) answer comes back.
            let fresh = try await database.query("SELECT count(*) FROM t", maxStaleness: .seconds(3600))
            #expect(fresh[0][0] == .integer(0))
            // Zero staleness forces a sync first.
            let synced = try await database.query("SELECT count(*) FROM t", maxStaleness: .zero)
            #expect(synced[0][0] == .integer(1))
            await database.close()
            await writer.close()
        }
    }

    @Test func runSyncsOnAnIntervalUntilCancelled() async throws {
        try await withNode { url, directory in
            let syncURL = URL(string: url + "/db/acme/loop")!
            let writer = RemoteDatabase(url: syncURL, token: nil)
            try await writer.execute("CREATE TABLE t (x)")
            let database = try Database(directory: directory + "/replica", syncURL: syncURL, readYourWrites: false)
            try await database.sync()
            let loop = Task { await database.run(syncEvery: .milliseconds(5)) }
            try await writer.execute("INSERT INTO t VALUES (1)")
            // The loop runs on its own timer: the test asks until the row shows (no write here
            // waits for it, readYourWrites is off).
            try await waitUntil("the sync loop's pull", every: .milliseconds(2)) {
                try await database.queryOne("SELECT count(*) FROM t")?[0] == .integer(1)
            }
            loop.cancel()
            await loop.value
            await database.close()
            await writer.close()
        }
    }
}
