import Foundation
import ShoalModel
import ShoalNodeTestSupport
import ShoalSQLite
import ShoalTestSupport
import Testing

@testable import ShoalNode

/// The SQL classifier on a real SQLite connection: what a replica forwards to its primary, and what
/// the primary's executor counts as a write before it runs.
@Suite(.timeLimit(.minutes(1))) struct SQLClassifierTests {
    /// A connection over a small schema, as a replica's reader would see it.
    static func withReader(_ body: (Connection) throws -> Void) throws {
        let directory = try TemporaryDirectory()
        let connection = try Connection(path: directory.path + "/data.db")
        defer { try? connection.close() }
        try connection.execute("CREATE TABLE t (x INTEGER, y TEXT); CREATE VIEW v AS SELECT x FROM t")
        try body(connection)
    }

    static func forwards(_ request: Hrana.StreamRequest, _ reader: Connection, stored: [Int32: String] = [:]) -> Bool {
        SQLClassifier.mustForward(request, stored: stored, reader: reader)
    }

    @Test(arguments: [
        ("SELECT x FROM t", false),
        ("  -- a comment\n/* and another */ SELECT 1", false),
        ("WITH a AS (SELECT 1) SELECT * FROM a", false),
        ("SELECT * FROM v", false),
        ("PRAGMA table_info(t)", false),
        ("EXPLAIN QUERY PLAN SELECT * FROM t", false),
        ("INSERT INTO t VALUES (1, 'a')", true),
        ("WITH a AS (SELECT 1) INSERT INTO t SELECT 1, 'b' FROM a", true),
        ("UPDATE t SET x = 2", true),
        ("/* leading */ DELETE FROM t", true),
        ("CREATE TABLE u (z)", true),
        ("DROP VIEW v", true),
        ("BEGIN", true),
        ("begin deferred", true),
        ("COMMIT", true),
        ("END", true),
        ("ROLLBACK", true),
        ("SAVEPOINT s", true),
        ("RELEASE s", true),
        // Not preparable here (an unknown table): the primary's answer is the authoritative one.
        ("SELECT * FROM missing", true),
        ("SELEC 1", true),
    ])
    func anExecuteGoesToThePrimaryExactlyWhenItWritesOrControlsATransaction(sql: String, forwarded: Bool) throws {
        try Self.withReader { reader in
            #expect(Self.forwards(.execute(Hrana.Statement(sql: sql)), reader) == forwarded, "\(sql)")
        }
    }

    @Test func aSequenceCountsEveryStatementAnExecuteOnlyItsFirst() throws {
        try Self.withReader { reader in
            let mixed = "SELECT 1; INSERT INTO t VALUES (1, 'a')"
            #expect(Self.forwards(.sequence(sql: mixed, sqlID: nil), reader))
            #expect(!Self.forwards(.sequence(sql: "SELECT 1; SELECT 2;", sqlID: nil), reader))
            // An execute runs only its first statement.
            #expect(!Self.forwards(.execute(Hrana.Statement(sql: mixed)), reader))
        }
    }

    @Test func storedSQLIsClassifiedByWhatWasStored() throws {
        try Self.withReader { reader in
            let stored: [Int32: String] = [1: "SELECT x FROM t", 2: "DELETE FROM t"]
            #expect(!Self.forwards(.execute(Hrana.Statement(sqlID: 1)), reader, stored: stored))
            #expect(Self.forwards(.execute(Hrana.Statement(sqlID: 2)), reader, stored: stored))
            #expect(Self.forwards(.sequence(sql: nil, sqlID: 2), reader, stored: stored))
            // Storing and forgetting SQL, asking for autocommit, closing: nothing to forward.
            #expect(!Self.forwards(.storeSQL(id: 3, sql: "DELETE FROM t"), reader))
            #expect(!Self.forwards(.closeSQL(id: 3), reader))
            #expect(!Self.forwards(.getAutocommit, reader))
            #expect(!Self.forwards(.close, reader))
        }
    }

    @Test func aBatchGoesWhenAnyStepWritesOrAsksAboutAutocommit() throws {
        try Self.withReader { reader in
            func batch(_ steps: [Hrana.Step]) -> Hrana.StreamRequest { .batch(Hrana.Batch(steps: steps)) }
            let read = Hrana.Step(statement: Hrana.Statement(sql: "SELECT 1"))
            let write = Hrana.Step(statement: Hrana.Statement(sql: "INSERT INTO t VALUES (1, 'a')"))
            #expect(!Self.forwards(batch([read, read]), reader))
            #expect(Self.forwards(batch([read, write]), reader))
            // A step conditioned on autocommit depends on the primary's transaction state.
            let conditioned = Hrana.Step(
                condition: .not(.and([.ok(0), .isAutocommit])), statement: Hrana.Statement(sql: "SELECT 1"))
            #expect(Self.forwards(batch([read, conditioned]), reader))
            let plain = Hrana.Step(
                condition: .or([.ok(0), .error(0)]), statement: Hrana.Statement(sql: "SELECT 2"))
            #expect(!Self.forwards(batch([read, plain]), reader))
        }
    }

    @Test func describeGoesOnlyWhenItDoesNotPrepareHere() throws {
        try Self.withReader { reader in
            #expect(!Self.forwards(.describe(sql: "INSERT INTO t VALUES (?, ?)", sqlID: nil), reader))
            #expect(Self.forwards(.describe(sql: "SELECT * FROM missing", sqlID: nil), reader))
        }
    }

    @Test func onThePrimaryOnlyAnImmediateOrExclusiveBeginTakesTheWriteTurn() throws {
        try Self.withReader { connection in
            func writes(_ sql: String) -> Bool {
                SQLClassifier.mayWrite(sql, on: connection, single: true, transactionControl: .countsWhenImmediate)
            }
            #expect(!writes("BEGIN"))
            #expect(!writes("BEGIN DEFERRED"))
            #expect(writes("BEGIN IMMEDIATE"))
            #expect(writes("begin exclusive transaction"))
            #expect(!writes("COMMIT"))
            #expect(!writes("SELECT * FROM missing"))
            #expect(writes("INSERT INTO t VALUES (1, 'a')"))
            // What the sandbox saw written behind SQLite's back counts too (a single SELECT never
            // writes, so it is not even prepared).
            #expect(
                SQLClassifier.mayWrite(
                    "PRAGMA user_version", on: connection, single: true, transactionControl: .countsWhenImmediate,
                    hiddenWrite: { true }))
        }
    }

    @Test func theFirstWordSkipsWhitespaceSemicolonsAndComments() {
        #expect(SQLClassifier.firstWord(" ;; -- x\n /* y */ select 1") == "select")
        #expect(SQLClassifier.firstWord("/* never closed") == "")
        #expect(SQLClassifier.firstWord("") == "")
    }

    @Test func theAutocommitStateIsReadFromTheDecodedResult() {
        func inTransaction(_ json: String) -> Bool { Node.inTransaction(Array(json.utf8)[...]) }
        #expect(inTransaction(#"{"type":"ok","response":{"type":"get_autocommit","is_autocommit":false}}"#))
        #expect(!inTransaction(#"{"type":"ok","response":{"type":"get_autocommit","is_autocommit":true}}"#))
        // A statement's text that mentions the words decides nothing.
        #expect(!inTransaction(#"{"type":"error","error":{"message":"\"is_autocommit\":false","code":"X"}}"#))
        #expect(!inTransaction("not json"))
    }
}
