import Foundation
import ShoalTestSupport
import Testing

@testable import ShoalSQLite

@Suite(.timeLimit(.minutes(2))) struct LifecycleTests {
    @Test func closingWithLiveStatementsReleasesTheFileHandle() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("live.db")
        let connection = try Connection(path: path)
        try connection.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3)")
        let stepped = try connection.prepare("SELECT x FROM t")
        #expect(try stepped.step())  // left mid-result: an active read
        let idle = try connection.prepare("SELECT count(*) FROM t")
        let cached = try connection.cachedStatement("SELECT x FROM t WHERE x = ?")
        #expect(connection.liveStatementCount == 3)
        #expect(try directory.openDescriptorCount() >= 1)

        try connection.close()

        #expect(connection.isClosed)
        #expect(try directory.openDescriptorCount() == 0)
        #expect(stepped.isFinalized && idle.isFinalized && cached.isFinalized)
        let error = try #require(throws: SQLiteError.self) { try idle.step() }
        #expect(error.code == .misuse)
        #expect(error.message.contains("connection was closed"))
        expectError(.misuse) { try connection.prepare("SELECT 1") }
        try connection.close()  // a second close does nothing
    }

    @Test func droppingAConnectionClosesIt() throws {
        let directory = try TemporaryDirectory()
        do {
            let connection = try Connection(path: directory.file("dropped.db"))
            try connection.execute("CREATE TABLE t (x)")
            #expect(try directory.openDescriptorCount() >= 1)
        }
        #expect(try directory.openDescriptorCount() == 0)
    }

    @Test func statementsDroppedBeforeCloseUnregisterThemselves() throws {
        let connection = try Connection(path: ":memory:")
        do {
            let statement = try connection.prepare("SELECT 1")
            #expect(try statement.step())
            #expect(connection.liveStatementCount == 1)
        }
        #expect(connection.liveStatementCount == 0)
        let finalized = try connection.prepare("SELECT 1")
        finalized.finalize()
        #expect(connection.liveStatementCount == 0)
    }

    @Test func failedOpenOfAMissingFileThrowsCantOpen() throws {
        let directory = try TemporaryDirectory()
        let error = try #require(throws: SQLiteError.self) {
            try Connection(path: directory.file("missing.db"), configuration: .init(flags: [.readOnly]))
        }
        #expect(error.code.primary == .cantOpen)
        #expect(error.message.contains("missing.db"))
        #expect(try directory.openDescriptorCount() == 0)
    }

    @Test func failedSetUpAfterOpenClosesTheHandle() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("not-a-database.db")
        try Data(repeating: 0x5a, count: 8192).write(to: URL(fileURLWithPath: path))
        var configuration = Connection.Configuration()
        configuration.journalMode = .wal
        let error = try #require(throws: SQLiteError.self) { try Connection(path: path, configuration: configuration) }
        #expect(error.code == .notADatabase)
        #expect(try directory.openDescriptorCount() == 0)
    }

    @Test func readOnlyConnectionRefusesWrites() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("ro.db")
        try Connection(path: path).execute("CREATE TABLE t (x)")
        let reader = try Connection(path: path, configuration: .init(flags: [.readOnly]))
        #expect(reader.isReadOnly())
        expectError(.readOnly) { try reader.execute("INSERT INTO t VALUES (1)") }
    }

    @Test func uriFlagOpensWithURIParameters() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("uri.db")
        try Connection(path: path).execute("CREATE TABLE t (x)")
        let reader = try Connection(path: "file:\(path)?mode=ro", configuration: .init(flags: [.readWrite, .uri]))
        #expect(reader.isReadOnly())
    }

    @Test func busyHandlerIsAskedUntilItGivesUp() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("busy.db")
        let writer = try Connection(path: path)
        try writer.execute("CREATE TABLE t (x)")
        let other = try Connection(path: path)
        try writer.execute("BEGIN EXCLUSIVE")
        var retries: [Int32] = []
        try other.setBusyHandler { count in
            retries.append(count)
            return count < 3
        }
        expectError(.busy) { try other.execute("INSERT INTO t VALUES (1)") }
        #expect(retries == [0, 1, 2, 3])
        try writer.execute("COMMIT")
        try other.execute("INSERT INTO t VALUES (1)")
    }

    @Test func busyTimeoutWaitsBeforeFailing() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("timeout.db")
        let writer = try Connection(path: path)
        try writer.execute("CREATE TABLE t (x); BEGIN EXCLUSIVE")
        var configuration = Connection.Configuration()
        configuration.busyTimeout = .milliseconds(30)
        let other = try Connection(path: path, configuration: configuration)
        let clock = ContinuousClock()
        let start = clock.now
        expectError(.busy) { try other.queryOne("SELECT count(*) FROM t") }
        #expect(clock.now - start >= .milliseconds(30))
    }
}

@Suite(.timeLimit(.minutes(2))) struct VirtualTableLifecycleTests {
    @Test func closingAfterUsingFTS5LeavesItsInternalStatementsToIt() throws {
        let directory = try TemporaryDirectory()
        let connection = try Connection(path: directory.file("fts.db"))
        try connection.execute("CREATE VIRTUAL TABLE docs USING fts5(body); INSERT INTO docs VALUES ('shoal of fish')")
        let search = try connection.prepare("SELECT count(*) FROM docs WHERE docs MATCH 'fish'")
        #expect(try search.step())
        #expect(search.int64(at: 0) == 1)
        try connection.close()
        #expect(search.isFinalized)
        #expect(try directory.openDescriptorCount() == 0)
    }
}
