import Foundation
import ShoalTestSupport
import Testing

@testable import ShoalSQLite

@Suite(.timeLimit(.minutes(2))) struct FileControlTests {
    static func walConnection(_ path: String) throws -> Connection {
        var configuration = Connection.Configuration()
        configuration.journalMode = .wal
        configuration.prepare = { connection in
            try connection.setAutoCheckpoint(frames: 0)
            try connection.setConfig(.noCheckpointOnClose, true)
        }
        return try Connection(path: path, configuration: configuration)
    }

    @Test func walHookReportsFramesAfterEachCommit() throws {
        let directory = try TemporaryDirectory()
        let connection = try Self.walConnection(directory.file("wal.db"))
        var reports: [Int] = []
        try connection.setWALHook { database, frames in
            #expect(database == "main")
            reports.append(frames)
        }
        try connection.execute("CREATE TABLE t (x)")
        try connection.execute("INSERT INTO t VALUES (1)")
        try connection.execute("INSERT INTO t VALUES (2)")
        #expect(reports.count == 3)
        #expect(reports == reports.sorted())
        let wal = try connection.file(.journal)
        #expect(try wal.size() == 32 + Int64(reports.last!) * (24 + 4096))
        let result = try connection.checkpoint(.passive)
        #expect(result == Connection.CheckpointResult(logFrames: reports.last!, checkpointedFrames: reports.last!))
        try connection.checkpoint(.truncate)
        #expect(try wal.size() == 0)
    }

    @Test func noCheckpointOnCloseKeepsTheWAL() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("keep.db")
        let connection = try Self.walConnection(path)
        try connection.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        try connection.close()
        let attributes = try FileManager.default.attributesOfItem(atPath: path + "-wal")
        #expect((attributes[.size] as? Int ?? 0) > 0)
        // The data is still there for the next opener, recovered from the WAL.
        let reader = try Connection(path: path)
        #expect(try reader.queryOne("SELECT x FROM t")?[0] == .integer(1))
    }

    @Test func mainFileHandleReadsAndWritesThroughThePager() throws {
        let directory = try TemporaryDirectory()
        let connection = try Connection(path: directory.file("main.db"))
        try connection.execute("PRAGMA page_size = 4096; CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        let file = try connection.file(.main)
        let header = try file.read(count: 100, at: 0)
        #expect(Array(header[0..<16]) == Array("SQLite format 3\0".utf8))
        #expect((Int(header[16]) << 8) | Int(header[17]) == 4096)
        #expect(try file.size() == 2 * 4096)
        // Writing under an exclusive lock: bump user_version (bytes 60-63) by hand.
        try connection.execute("BEGIN EXCLUSIVE")
        try file.write([0, 0, 0, 42], at: 60)
        try connection.execute("COMMIT")
        let fresh = try Connection(path: directory.file("main.db"))
        #expect(try fresh.queryOne("PRAGMA user_version")?[0] == .integer(42))
        // Reading past the end reports a short read.
        expectError(.ioErrorShortRead) { try file.read(count: 10, at: 3 * 4096) }
        try file.truncate(to: 2 * 4096)
        try file.sync()
    }

    @Test func largeReadsAndWritesAreNotCutAtTheVFSLimit() throws {
        let directory = try TemporaryDirectory()
        let connection = try Connection(path: directory.file("large.db"))
        try connection.execute("CREATE TABLE t (x)")
        let file = try connection.file(.main)
        let bytes = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 12) }
        try connection.execute("BEGIN EXCLUSIVE")
        try file.write(bytes, at: 4096)
        try connection.execute("COMMIT")
        #expect(try file.size() == 4096 + (1 << 20))
        #expect(try file.read(count: 1 << 20, at: 4096) == bytes)
        var tail = [UInt8](repeating: 0xff, count: 300_000)
        let complete = try tail.withUnsafeMutableBytes { try file.read(into: $0, at: 4096 + (1 << 20) - 1000) }
        #expect(!complete)
        #expect(Array(tail[0..<1000]) == Array(bytes.suffix(1000)))
        #expect(tail[1000...].allSatisfy { $0 == 0 })
    }

    @Test func fileHandleFailsClearlyAfterClose() throws {
        let directory = try TemporaryDirectory()
        let connection = try Connection(path: directory.file("closed.db"))
        try connection.execute("CREATE TABLE t (x)")
        let file = try connection.file(.main)
        try connection.close()
        expectError(.misuse) { try file.size() }
    }

    @Test func journalFileIsReportedMissingInsteadOfCrashing() throws {
        let directory = try TemporaryDirectory()
        let connection = try Connection(path: directory.file("nojournal.db"))
        expectError(.misuse) { try connection.file(.journal) }
    }

    @Test func dataVersionMovesWhenAnotherConnectionCommits() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("version.db")
        let reader = try Connection(path: path)
        let writer = try Connection(path: path)
        try writer.execute("CREATE TABLE t (x)")
        _ = try reader.query("SELECT * FROM t")
        let before = try reader.dataVersion()
        _ = try reader.query("SELECT * FROM t")
        #expect(try reader.dataVersion() == before)
        try writer.execute("INSERT INTO t VALUES (1)")
        _ = try reader.query("SELECT * FROM t")
        #expect(try reader.dataVersion() != before)
    }

    @Test func commitHookCanVetoAndRollbackHookIsCalled() throws {
        let connection = try Connection(path: ":memory:")
        try connection.execute("CREATE TABLE t (x)")
        var commits = 0
        var rollbacks = 0
        try connection.setCommitHook {
            commits += 1
            return commits == 2  // veto the second commit
        }
        try connection.setRollbackHook { rollbacks += 1 }
        try connection.execute("INSERT INTO t VALUES (1)")
        expectError(.constraint) { try connection.execute("INSERT INTO t VALUES (2)") }
        #expect(commits == 2)
        #expect(rollbacks == 1)
        #expect(try connection.queryOne("SELECT count(*) FROM t")?[0] == .integer(1))
        try connection.setCommitHook(nil)
        try connection.setRollbackHook(nil)
        try connection.execute("INSERT INTO t VALUES (3)")
        #expect(commits == 2)
    }

    @Test func persistentWALCanBeToggled() throws {
        let directory = try TemporaryDirectory()
        let connection = try Self.walConnection(directory.file("persist.db"))
        #expect(try connection.persistentWAL(nil) == false)
        #expect(try connection.persistentWAL(true))
        #expect(try connection.persistentWAL(nil))
    }
}
