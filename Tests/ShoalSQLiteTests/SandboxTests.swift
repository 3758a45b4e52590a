import Foundation
import ShoalTestSupport
import Synchronization
import Testing

@testable import ShoalSQLite

@Suite(.timeLimit(.minutes(2))) struct SandboxTests {
    @Test func authorizerDenyingAttachMakesAttachFailClearly() throws {
        let directory = try TemporaryDirectory()
        let connection = try Connection(path: directory.file("main.db"))
        var asked: [AuthorizerActionCode] = []
        try connection.setAuthorizer { action in
            asked.append(action.code)
            return action.code == .attach || action.code == .detach ? .deny : .allow
        }
        let error = try #require(throws: SQLiteError.self) {
            try connection.execute("ATTACH DATABASE '\(directory.file("other.db"))' AS other")
        }
        #expect(error.code == .authorization)
        #expect(error.message == "not authorized")
        #expect(asked.contains(.attach))
        #expect(!FileManager.default.fileExists(atPath: directory.file("other.db")))
        // Everything else still works.
        try connection.execute("CREATE TABLE t (x)")
        try connection.setAuthorizer(nil)
        try connection.execute("ATTACH DATABASE '\(directory.file("other.db"))' AS other")
    }

    @Test func authorizerSeesPragmaNamesAndValues() throws {
        let connection = try Connection(path: ":memory:")
        try connection.setAuthorizer { action in
            action.code == .pragma && action.first == "journal_mode" && action.second != nil ? .deny : .allow
        }
        expectError(.authorization) { try connection.execute("PRAGMA journal_mode = delete") }
        #expect(try connection.queryOne("PRAGMA journal_mode")?[0] == .text("memory"))
    }

    static let runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"

    @Test func interruptFromAnotherThreadStopsARunawayRecursiveQuery() throws {
        let connection = try Connection(path: ":memory:")
        let started = Atomic<Bool>(false)
        try connection.setProgressHandler(every: 100) {
            started.store(true, ordering: .releasing)
            return false
        }
        let handle = connection.interruptHandle
        let interrupter = Thread {
            while !started.load(ordering: .acquiring) { sched_yield() }
            handle.interrupt()
        }
        interrupter.start()
        let error = try #require(throws: SQLiteError.self) { try connection.execute(Self.runaway) }
        #expect(error.code == .interrupt)
        // The connection stays usable.
        #expect(try connection.queryOne("SELECT 1")?[0] == .integer(1))
    }

    @Test func progressHandlerStopsARunawayQueryAtItsDeadline() throws {
        let connection = try Connection(path: ":memory:")
        let clock = ContinuousClock()
        let start = clock.now
        try connection.setDeadline(start.advanced(by: .milliseconds(50)))
        let error = try #require(throws: SQLiteError.self) { try connection.execute(Self.runaway) }
        #expect(error.code == .interrupt)
        #expect(clock.now - start >= .milliseconds(50))
        try connection.setDeadline(nil)
        #expect(try connection.queryOne("SELECT count(*) FROM (SELECT 1 UNION SELECT 2)")?[0] == .integer(2))
    }

    @Test func progressHandlerReturningTrueInterruptsAtOnce() throws {
        let connection = try Connection(path: ":memory:")
        var calls = 0
        try connection.setProgressHandler(every: 10) {
            calls += 1
            return calls >= 3
        }
        expectError(.interrupt) { try connection.execute(Self.runaway) }
        #expect(calls == 3)
    }

    @Test func sqlLengthLimitRefusesLongerStatements() throws {
        let connection = try Connection(path: ":memory:")
        let previous = try connection.setLimit(.sqlLength, to: 100)
        #expect(previous > 100)
        #expect(try connection.limit(.sqlLength) == 100)
        let long = "SELECT '" + String(repeating: "x", count: 200) + "'"
        expectError(.tooBig) { try connection.prepare(long) }
        #expect(try connection.queryOne("SELECT 1")?[0] == .integer(1))
    }

    @Test func lengthLimitRefusesLargeValues() throws {
        let connection = try Connection(path: ":memory:")
        try connection.setLimit(.length, to: 1000)
        expectError(.tooBig) { try connection.queryOne("SELECT zeroblob(2000)") }
    }

    @Test func triggersCanBeSwitchedOff() throws {
        let connection = try Connection(path: ":memory:")
        try connection.execute(
            """
            CREATE TABLE t (x); CREATE TABLE audit (x);
            CREATE TRIGGER t_audit AFTER INSERT ON t BEGIN INSERT INTO audit VALUES (new.x); END;
            """)
        #expect(try connection.config(.enableTrigger))
        #expect(try connection.setConfig(.enableTrigger, false) == false)
        try connection.execute("INSERT INTO t VALUES (1)")
        #expect(try connection.queryOne("SELECT count(*) FROM audit")?[0] == .integer(0))
        #expect(try connection.setConfig(.enableTrigger, true))
        try connection.execute("INSERT INTO t VALUES (2)")
        #expect(try connection.queryOne("SELECT count(*) FROM audit")?[0] == .integer(1))
    }

    @Test func defensiveModeRefusesWritableSchemaEdits() throws {
        let connection = try Connection(path: ":memory:")
        try connection.execute("CREATE TABLE t (x)")
        #expect(try connection.setConfig(.defensive, true))
        try connection.execute("PRAGMA writable_schema = ON")
        #expect(throws: SQLiteError.self) { try connection.execute("DELETE FROM sqlite_schema") }
        #expect(try connection.queryOne("SELECT count(*) FROM sqlite_schema")?[0] == .integer(1))
    }
}
