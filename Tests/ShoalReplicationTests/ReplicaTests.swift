import Foundation
import ShoalSQLite
import ShoalTestSupport
import Testing

@testable import ShoalReplication

@Suite(.timeLimit(.minutes(2))) struct ReplicaTests {
    /// A primary and a replica kept current by a replicator over the in-process source.
    struct Pair {
        let directory: TemporaryDirectory
        let log: PrimaryLog
        let writer: Connection
        let replica: Replica
        let replicator: Replicator

        init(
            primary: PrimaryLog.Configuration = .init(), replica configuration: Replica.Configuration = .init(),
            framesPerRequest: Int = 1024
        ) throws {
            directory = try TemporaryDirectory()
            log = try PrimaryLog(directory: directory.file("primary"), configuration: primary)
            writer = try log.makeConnection()
            replica = try Replica(directory: directory.file("replica"), configuration: configuration)
            replicator = Replicator(
                replica: replica, source: PrimaryLogSource(log: log),
                configuration: .init(framesPerRequest: framesPerRequest))
        }

        func write(_ sql: String) throws { try log.write(writer, sql) }

        /// Syncs and checks that the replica equals the primary and passes the integrity check.
        func syncAndCompare(sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let result = try await replicator.sync()
            #expect(result.position == log.position, sourceLocation: sourceLocation)
            #expect(try replica.integrityCheck() == "ok", sourceLocation: sourceLocation)
            #expect(try replica.contents() == DatabaseContents(writer), sourceLocation: sourceLocation)
        }

        func close() {
            try? writer.close()
            replica.close()
            log.close()
        }
    }

    @Test func bootstrapsThenAppliesFramesAndStaysInRollbackMode() async throws {
        let pair = try Pair()
        defer { pair.close() }
        try pair.write("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a')")
        let first = try await pair.replicator.sync()
        #expect(first.bootstrapped)
        #expect(first.framesApplied > 0)
        try await pair.syncAndCompare()
        try pair.write("INSERT INTO t (v) VALUES ('b'); UPDATE t SET v = 'z' WHERE id = 1")
        let second = try await pair.replicator.sync()
        #expect(!second.bootstrapped)
        #expect(
            try await pair.replica.read { try $0.query("SELECT v FROM t ORDER BY id").map { $0[0] } } == ["z", "b"])
        // Rollback-journal mode for every new opener, and no WAL next to the replica.
        let fresh = try Connection(path: pair.replica.databasePath, configuration: .init(flags: [.readOnly]))
        #expect(try fresh.journalMode() == "delete")
        #expect(!FileManager.default.fileExists(atPath: pair.replica.databasePath + "-wal"))
    }

    @Test func followsGenerationRollsAndRebootstrapsWhenFramesAreGone() async throws {
        let pair = try Pair(primary: .init(retainedGenerations: 0, retention: .zero))
        defer { pair.close() }
        try pair.write("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        try await pair.syncAndCompare()
        try pair.write("INSERT INTO t VALUES (2)")
        // Keep generation 1's archive for this roll by reading it before pruning would matter.
        try pair.log.rollGeneration()
        try pair.write("INSERT INTO t VALUES (3)")
        // Archives are pruned at once with retainedGenerations 0: the replica must bootstrap again.
        let result = try await pair.replicator.sync()
        #expect(result.bootstrapped)
        try await pair.syncAndCompare()
        #expect(pair.replica.position?.generation == 2)
    }

    @Test func followsARollThroughTheArchive() async throws {
        let pair = try Pair()
        defer { pair.close() }
        try pair.write("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        try await pair.syncAndCompare()
        try pair.write("INSERT INTO t VALUES (2)")
        try pair.log.rollGeneration()
        try pair.write("INSERT INTO t VALUES (3)")
        try pair.log.rollGeneration()
        try pair.write("INSERT INTO t VALUES (4)")
        let result = try await pair.replicator.sync()
        #expect(!result.bootstrapped)
        #expect(result.position.generation == 3)
        try await pair.syncAndCompare()
    }

    @Test func runFollowsCommitsThroughLongPollsUntilCancelled() async throws {
        let pair = try Pair()
        defer { pair.close() }
        try pair.write("CREATE TABLE t (x)")
        // The replicator says each position it reaches; the test waits on that, not on a clock.
        let (positions, reached) = AsyncStream.makeStream(of: ReplicationPosition.self)
        let replicator = Replicator(
            replica: pair.replica, source: PrimaryLogSource(log: pair.log),
            configuration: .init(onPosition: { reached.yield($0) }))
        let follower = Task { try await replicator.run() }
        defer { follower.cancel() }
        var iterator = positions.makeAsyncIterator()
        for value in 1...20 {
            try pair.write("INSERT INTO t VALUES (\(value))")
            if value % 7 == 0 { try pair.log.rollGeneration() }
            let target = pair.log.position
            while pair.replica.position.map({ $0 < target }) ?? true {
                guard await iterator.next() != nil else { break }
            }
            #expect(pair.replica.position == target, "the replica did not follow commit \(value)")
        }
        #expect(try pair.replica.contents() == DatabaseContents(pair.writer))
        follower.cancel()
        let outcome = await follower.result
        #expect(throws: CancellationError.self) { try outcome.get() }
    }

    @Test func bootstrapsFromALargeBaseFile() async throws {
        let pair = try Pair()
        defer { pair.close() }
        try pair.write("CREATE TABLE t (x BLOB)")
        for _ in 0..<6 { try pair.write("INSERT INTO t VALUES (randomblob(500000))") }
        try pair.log.rollGeneration()
        let result = try await pair.replicator.sync()
        #expect(result.bootstrapped)
        let size = try FileManager.default.attributesOfItem(atPath: pair.replica.databasePath)[.size] as! Int
        #expect(size > 3_000_000)
        try await pair.syncAndCompare()
    }

    @Test func transactionLargerThanOneRequestIsAssembledBeforeApplying() async throws {
        let pair = try Pair(framesPerRequest: 3)
        defer { pair.close() }
        try pair.write("CREATE TABLE t (x BLOB)")
        try await pair.syncAndCompare()
        try pair.write("INSERT INTO t VALUES (randomblob(200000))")
        try await pair.syncAndCompare()
    }

    @Test func readersKeepPreparedStatementsAcrossSyncsAndSchemaChanges() async throws {
        let pair = try Pair()
        defer { pair.close() }
        try pair.write("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER); INSERT INTO t (v) VALUES (1)")
        try await pair.replicator.sync()
        let read = { (id: Int64) throws -> Int64? in
            try pair.replica.read { connection in
                let statement = try connection.cachedStatement("SELECT v FROM t WHERE id = ?")
                try statement.bind(id, at: 1)
                defer { statement.reset() }
                return try statement.step() ? statement.int64(at: 0) : nil
            }
        }
        #expect(try read(1) == 1)
        try pair.write("UPDATE t SET v = 2 WHERE id = 1; ALTER TABLE t ADD COLUMN w TEXT; CREATE INDEX t_v ON t (v)")
        try await pair.replicator.sync()
        #expect(try read(1) == 2)
        try pair.write("INSERT INTO t (v, w) VALUES (3, 'x')")
        try await pair.replicator.sync()
        #expect(try read(2) == 3)
    }

    @Test func vacuumThatShrinksTheFileIsReplicated() async throws {
        let pair = try Pair()
        defer { pair.close() }
        try pair.write("CREATE TABLE t (x BLOB)")
        for _ in 0..<20 { try pair.write("INSERT INTO t VALUES (randomblob(50000))") }
        try await pair.syncAndCompare()
        let grown = try FileManager.default.attributesOfItem(atPath: pair.replica.databasePath)[.size] as! Int
        try pair.write("DELETE FROM t")
        try pair.write("VACUUM")
        try await pair.syncAndCompare()
        let shrunk = try FileManager.default.attributesOfItem(atPath: pair.replica.databasePath)[.size] as! Int
        #expect(shrunk < grown / 10)
        let pages = try pair.writer.queryOne("PRAGMA page_count")?[0].integerValue ?? 0
        #expect(Int64(shrunk) == pages * 4096)
    }

    @Test func framesThatDoNotContinueThePositionAreRefused() async throws {
        let pair = try Pair()
        defer { pair.close() }
        try pair.write("CREATE TABLE t (x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
        try await pair.replicator.sync()
        guard case .frames(let chunk) = try pair.log.readFrames(generation: 1, start: 1) else {
            Issue.record("expected frames")
            return
        }
        #expect(throws: ReplicationError.kindPositionMismatch) { try pair.replica.apply(chunk) }
        #expect(throws: ReplicationError.kindInvalidFrames) {
            try FrameChunk(generation: 1, firstFrame: 1, bytes: [1, 2, 3])
        }
    }

    @Test func reopeningFinishesABatchLeftInTheRedoLog() async throws {
        let pair = try Pair()
        defer { pair.close() }
        try pair.write("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        try await pair.replicator.sync()
        let before = try #require(pair.replica.position)
        try pair.write("INSERT INTO t VALUES (2); CREATE TABLE u (y)")
        guard case .frames(let chunk) = try pair.log.readFrames(generation: 1, start: before.frame + 1) else {
            Issue.record("expected frames")
            return
        }
        // Simulate a crash after the redo log was written and before the database was touched.
        let batch = try #require(try PageBatch(chunk))
        let redo = try RedoLog(path: pair.directory.file("replica/redo"))
        try redo.write(batch, from: before, durable: false)
        pair.replica.close()
        let reopened = try Replica(directory: pair.directory.file("replica"))
        defer { reopened.close() }
        #expect(reopened.position == batch.target)
        #expect(try reopened.integrityCheck() == "ok")
        #expect(try reopened.contents() == DatabaseContents(pair.writer))
    }

    @Test func notBootstrappedReplicaSaysSo() throws {
        let directory = try TemporaryDirectory()
        let replica = try Replica(directory: directory.file("replica"))
        defer { replica.close() }
        #expect(replica.position == nil)
        #expect(throws: ReplicationError.kindNotBootstrapped) { try replica.read { _ in 1 } }
    }

    @Test func bootstrapRefusesAFileThatIsNotADatabase() throws {
        let directory = try TemporaryDirectory()
        let replica = try Replica(directory: directory.file("replica"))
        defer { replica.close() }
        try Data(repeating: 7, count: 8192).write(to: URL(fileURLWithPath: directory.file("junk.db")))
        #expect(throws: ReplicationError.kindInvalidBase) {
            try replica.bootstrap(generation: 1, baseFile: directory.file("junk.db"))
        }
        #expect(replica.position == nil)
    }
}

@Suite(.timeLimit(.minutes(2))) struct UnsyncedReplicaTests {
    @Test func anUnsyncedReplicaUsedDuringAnotherBootIsWipedAndOneFromThisBootIsKept() async throws {
        let pair = try ReplicaTests.Pair()
        try pair.write("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        try await pair.syncAndCompare()
        let directory = pair.replica.directory
        let marker = directory + "/unsynced-boot"
        #expect(FileManager.default.fileExists(atPath: marker))
        // A crash of the process (no close): same boot, so the page cache kept every write.
        let sameBoot = try Replica(directory: directory)
        #expect(sameBoot.position == pair.log.position)
        // The machine went down while it was open unsynced: the next open starts over.
        try Data("another-boot".utf8).write(to: URL(fileURLWithPath: marker))
        let afterReboot = try Replica(directory: directory)
        #expect(afterReboot.position == nil)
        #expect(!FileManager.default.fileExists(atPath: directory + "/data.db"))
        afterReboot.close()
        // Bootstrapped again in this boot, closed, reopened syncing: its files are synced and the
        // marker goes; the data stays.
        let fresh = try Replica(directory: directory)
        let replicator = Replicator(replica: fresh, source: PrimaryLogSource(log: pair.log))
        try await replicator.sync()
        fresh.close()
        #expect(FileManager.default.fileExists(atPath: marker))
        let reopened = try Replica(directory: directory, configuration: .init(durability: .perBatch))
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(reopened.position == pair.log.position)
        #expect(try await reopened.read { try $0.query("SELECT sum(x) FROM t").map { $0[0] } } == [.integer(1)])
        reopened.close()
        sameBoot.close()
        pair.close()
    }
}
