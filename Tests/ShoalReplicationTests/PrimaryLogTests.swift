import Foundation
import ShoalSQLite
import ShoalTestSupport
import Synchronization
import Testing

@testable import ShoalReplication

@Suite(.timeLimit(.minutes(2))) struct PrimaryLogTests {
    @Test func newDatabaseIsWALWith4096BytePagesAndGenerationOne() throws {
        let directory = try TemporaryDirectory()
        let log = try PrimaryLog(directory: directory.file("db"))
        defer { log.close() }
        #expect(log.position == ReplicationPosition(generation: 1, frame: 0))
        let connection = try log.makeConnection()
        #expect(try connection.journalMode() == "wal")
        #expect(try connection.queryOne("PRAGMA page_size")?[0] == .integer(4096))
        #expect(FileManager.default.fileExists(atPath: directory.file("db/meta.json")))
        #expect(FileManager.default.fileExists(atPath: directory.file("db/generations")))
    }

    @Test func committedFramesFollowTheWALHookAndReadBackAsWALFrames() throws {
        let directory = try TemporaryDirectory()
        let log = try PrimaryLog(directory: directory.file("db"))
        defer { log.close() }
        let connection = try log.makeConnection()
        try log.write(connection, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        let afterCreate = log.committedFrames
        #expect(afterCreate >= 1)
        try log.write(connection, "INSERT INTO t (v) VALUES ('a')")
        #expect(log.committedFrames > afterCreate)
        guard case .frames(let chunk) = try log.readFrames(generation: 1, start: 1) else {
            Issue.record("expected frames")
            return
        }
        #expect(chunk.firstFrame == 1)
        #expect(UInt64(chunk.count) == log.committedFrames)
        // The last frame is a commit frame carrying the database size.
        let last = Array(chunk.bytes[((chunk.count - 1) * WALFormat.frameSize)...])
        #expect(last.bigEndianUInt32(at: 4) >= 2)
        #expect(
            try log.readFrames(generation: 1, start: log.committedFrames + 1)
                == .upToDate(currentGeneration: 1, lastFrame: log.committedFrames))
    }

    @Test func reopeningRecoversTheCommittedFrameCountFromTheWAL() throws {
        let directory = try TemporaryDirectory()
        var committed: UInt64 = 0
        do {
            let log = try PrimaryLog(directory: directory.file("db"))
            let connection = try log.makeConnection()
            try log.write(connection, "CREATE TABLE t (x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
            committed = log.committedFrames
            try connection.close()
            log.close()
        }
        let log = try PrimaryLog(directory: directory.file("db"))
        defer { log.close() }
        #expect(committed > 0)
        #expect(log.position == ReplicationPosition(generation: 1, frame: committed))
    }

    @Test func rollArchivesFramesAndStartsTheNextGenerationFromTheirResult() throws {
        let directory = try TemporaryDirectory()
        let log = try PrimaryLog(directory: directory.file("db"))
        defer { log.close() }
        let connection = try log.makeConnection()
        try log.write(connection, "CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        let frames = log.committedFrames
        #expect(try log.rollGeneration())
        #expect(log.position == ReplicationPosition(generation: 2, frame: 0))
        #expect(try log.rollGeneration() == false)  // nothing to roll
        let archive = try FileManager.default.attributesOfItem(atPath: directory.file("db/generations/1.frames"))
        #expect(archive[.size] as? Int == Int(frames) * WALFormat.frameSize)
        // Old frames stay readable from the archive; asking past their end points at generation 2.
        guard case .frames(let chunk) = try log.readFrames(generation: 1, start: 1) else {
            Issue.record("expected archived frames")
            return
        }
        #expect(UInt64(chunk.count) == frames)
        #expect(
            try log.readFrames(generation: 1, start: frames + 1) == .upToDate(currentGeneration: 2, lastFrame: frames))
        // The data is intact and writes continue in generation 2.
        try log.write(connection, "INSERT INTO t VALUES (2)")
        #expect(try connection.queryOne("SELECT sum(x) FROM t")?[0] == .integer(3))
        #expect(log.position.generation == 2 && log.position.frame >= 1)
        let meta = try String(contentsOfFile: directory.file("db/meta.json"), encoding: .utf8)
        #expect(meta.contains("\"generation\":2"))
    }

    @Test func exportOfTheCurrentGenerationIsItsBaseAndOldBasesAreGone() throws {
        let directory = try TemporaryDirectory()
        let log = try PrimaryLog(directory: directory.file("db"))
        defer { log.close() }
        let connection = try log.makeConnection()
        try log.write(connection, "CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        try log.exportBase(generation: 1, to: directory.file("base1.db"))
        // Generation 1's base predates the table: the frames hold it.
        let base1 = try Connection(path: directory.file("base1.db"), configuration: .init(flags: [.readOnly]))
        #expect(try base1.queryOne("SELECT count(*) FROM sqlite_schema")?[0] == .integer(0))
        try log.rollGeneration()
        try log.exportBase(generation: 2, to: directory.file("base2.db"))
        let base2 = try Connection(path: directory.file("base2.db"), configuration: .init(flags: [.readOnly]))
        #expect(try base2.queryOne("SELECT x FROM t")?[0] == .integer(1))
        #expect(throws: ReplicationError.kindGenerationGone) {
            try log.exportBase(generation: 1, to: directory.file("gone.db"))
        }
    }

    @Test func automaticRollHappensPastTheThreshold() throws {
        let directory = try TemporaryDirectory()
        let log = try PrimaryLog(
            directory: directory.file("db"), configuration: .init(rollThresholdBytes: 20 * Int64(WALFormat.frameSize)))
        defer { log.close() }
        let connection = try log.makeConnection()
        try log.write(connection, "CREATE TABLE t (x BLOB)")
        for _ in 0..<10 {
            try log.write(connection, "INSERT INTO t VALUES (zeroblob(8000))")
        }
        #expect(log.generation > 1)
        #expect(try connection.queryOne("SELECT count(*) FROM t")?[0] == .integer(10))
    }

    @Test func anAutomaticRollThatFailsIsReportedAndTriedAgainAfterTheNextWrite() throws {
        let directory = try TemporaryDirectory()
        let failures = Mutex<[String]>([])
        let log = try PrimaryLog(
            directory: directory.file("db"),
            configuration: .init(
                rollThresholdBytes: 20 * Int64(WALFormat.frameSize), busyTimeout: .milliseconds(20),
                onAutomaticRollFailure: { error in failures.withLock { $0.append("\(error)") } }))
        defer { log.close() }
        let connection = try log.makeConnection()
        try log.write(connection, "CREATE TABLE t (x BLOB)")
        // A permit held elsewhere (another writer, say) keeps the roll from its exclusive lock.
        log.acquireWritePermit()
        for _ in 0..<10 {
            try log.write(connection, "INSERT INTO t VALUES (zeroblob(8000))")
        }
        #expect(log.generation == 1)
        let reported = failures.withLock { $0 }
        #expect(!reported.isEmpty)
        #expect(reported.allSatisfy { $0.contains("waited") }, "\(reported)")
        log.releaseWritePermit()
        #expect(log.generation > 1)
    }

    @Test func longPollWakesOnCommitAndTimesOutOtherwise() async throws {
        let directory = try TemporaryDirectory()
        let log = try PrimaryLog(directory: directory.file("db"))
        defer { log.close() }
        let clock = ContinuousClock()
        let start = clock.now
        let idle = await log.waitForFrame(after: 0, generation: 1, timeout: .milliseconds(50))
        #expect(idle.frame == 0)
        #expect(clock.now - start >= .milliseconds(50))

        async let woken = log.waitForFrame(after: 0, generation: 1, timeout: .seconds(30))
        let connection = try log.makeConnection()
        try log.write(connection, "CREATE TABLE t (x)")
        let position = await woken
        #expect(position.frame >= 1)
    }

    @Test func cancellingALongPollEndsItAtOnce() async throws {
        let directory = try TemporaryDirectory()
        let log = try PrimaryLog(directory: directory.file("db"))
        defer { log.close() }
        let clock = ContinuousClock()
        let start = clock.now
        let waiter = Task { await log.waitForFrame(after: 0, generation: 1, timeout: .seconds(60)) }
        waiter.cancel()
        _ = await waiter.value
        #expect(clock.now - start < .seconds(30))
    }

    @Test func invalidRequestsAreRefusedClearly() throws {
        let directory = try TemporaryDirectory()
        let log = try PrimaryLog(directory: directory.file("db"))
        defer { log.close() }
        #expect(throws: ReplicationError.kindInvalidFrames) { try log.readFrames(generation: 1, start: 0) }
        #expect(throws: ReplicationError.kindGenerationGone) { try log.readFrames(generation: 7, start: 1) }
    }
}
