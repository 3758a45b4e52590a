import Foundation
import ShoalNodeTestSupport
import ShoalSQLite
import ShoalTestSupport
import Testing

@testable import ShoalNode

/// The tenant sandbox as an allow-list: every function, pragma and module SQLite reports is either
/// allowed or refused with a message naming it, and each escape found so far stays closed.
@Suite(.timeLimit(.minutes(2))) struct SandboxAllowListTests {
    /// A sandboxed connection on a fresh file, as a stream gets one.
    final class Sandboxed {
        let scratch: TemporaryDirectory
        let connection: Connection
        let sandbox: Sandbox

        init(configuration: NodeConfiguration = NodeConfiguration(dataDirectory: "unused")) throws {
            scratch = try TemporaryDirectory()
            connection = try Connection(path: scratch.file("data.db"))
            try connection.execute("PRAGMA journal_mode = wal")
            sandbox = try Sandbox.apply(to: connection, configuration: configuration)
        }

        deinit {
            try? connection.close()
        }

        /// The SQLite error of running `sql` to its end, or nil if it ran.
        func failure(_ sql: String) -> SQLiteError? {
            do {
                var remaining = sql
                while let statement = try connection.prepareFirst(remaining) {
                    defer { statement.finalize() }
                    while try statement.step() {}
                    remaining = statement.tail
                }
                return nil
            } catch let error as SQLiteError {
                return error
            } catch {
                Issue.record("unexpected error \(error)")
                return nil
            }
        }

        func refusal(_ sql: String) -> String? {
            guard let error = failure(sql), error.message.contains("not authorized") else { return nil }
            return error.message
        }

        /// Rows read with the sandbox bypassed, as the node reads.
        func trustedRows(_ sql: String) throws -> [Row] {
            try sandbox.trusted { try connection.query(sql) }
        }
    }

    @Test func everyFunctionSQLiteReportsIsEitherAllowedOrRefusedByName() throws {
        let db = try Sandboxed()
        let functions = try db.trustedRows("SELECT DISTINCT name, narg, type FROM pragma_function_list")
        #expect(functions.count > 100)
        var refused: Set<String> = []
        for row in functions {
            let name = row[0].textValue ?? ""
            let arguments = Array(repeating: "NULL", count: max(0, Int(row[1].integerValue ?? 0))).joined(
                separator: ",")
            let call =
                name == "->" || name == "->>"
                ? "NULL \(name) NULL" : "\"\(name)\"(\(arguments))\(row[2].textValue == "w" ? " OVER ()" : "")"
            let message = db.refusal("SELECT \(call)")
            if Sandbox.functions.contains(name) {
                #expect(message == nil, "\(name) is allowed but was refused: \(message ?? "")")
            } else {
                let said = try #require(message, "\(name) is not on the allow-list but was not refused")
                #expect(said.contains("\(name)()"), "the refusal does not name \(name): \(said)")
                refused.insert(name)
            }
        }
        #expect(refused.isSuperset(of: ["fts3_tokenizer", "load_extension", "sqlite_compileoption_get"]))
    }

    @Test func everyPragmaSQLiteReportsHasADecisionAndRefusedOnesAreRefusedInEveryForm() throws {
        let db = try Sandboxed()
        let pragmas = try db.trustedRows("SELECT name FROM pragma_pragma_list").compactMap { $0[0].textValue }
        #expect(pragmas.count > 60)
        for name in pragmas {
            let use = try #require(Sandbox.pragmas[name], "PRAGMA \(name) has no decision in the sandbox")
            let plain = db.refusal("PRAGMA \(name)")
            switch use {
            case .refused:
                #expect(plain?.contains(name) == true, "PRAGMA \(name) was not refused by name: \(plain ?? "ran")")
                // The table-valued form too, where SQLite has one.
                if let failure = db.failure("SELECT * FROM pragma_\(name)"), !failure.message.contains("no such table")
                {
                    #expect(failure.message.contains("not authorized"), "pragma_\(name): \(failure.message)")
                }
            case .nodeSetting:
                #expect(plain == nil, "reading PRAGMA \(name) was refused: \(plain ?? "")")
                let set = db.refusal("PRAGMA \(name) = 1")
                #expect(set?.contains("node keeps its own value") == true, "PRAGMA \(name) = 1: \(set ?? "ran")")
            case .report, .tenantSetting:
                #expect(plain == nil, "PRAGMA \(name) was refused: \(plain ?? "")")
            }
        }
        #expect(db.refusal("PRAGMA no_such_pragma")?.contains("no_such_pragma") == true)
    }

    @Test func everyModuleSQLiteReportsIsEitherAllowedOrRefused() throws {
        let db = try Sandboxed()
        let modules = try db.trustedRows("SELECT name FROM pragma_module_list").compactMap { $0[0].textValue }
        #expect(modules.contains("fts5"))
        for (index, module) in modules.enumerated() {
            let message = db.refusal("CREATE VIRTUAL TABLE v\(index) USING \(module)(a, b, c)")
            if Sandbox.modules.contains(module) {
                #expect(message == nil, "module \(module) is allowed but was refused: \(message ?? "")")
            } else {
                #expect(message?.contains(module) == true, "module \(module) was not refused: \(message ?? "")")
            }
        }
        for table in Sandbox.refusedTables.keys {
            #expect(db.refusal("SELECT * FROM \(table)")?.contains(table) == true, "\(table) was readable")
        }
    }

    @Test func fts3TokenizerCannotBeReachedInAnySpelling() throws {
        let db = try Sandboxed()
        #expect(db.refusal("SELECT hex(fts3_tokenizer('simple'))")?.contains("fts3_tokenizer") == true)
        #expect(db.refusal("SELECT \"FTS3_TOKENIZER\"('simple')") != nil)
        // As a bound blob parameter, which SQLite's own switch lets through.
        let statement = db.failure("SELECT fts3_tokenizer('evil', x'4141414141414141')")
        #expect(statement?.code == .authorization)
        // Through a view and a trigger, which the authorizer sees when they are used.
        #expect(db.failure("CREATE TABLE t (x); CREATE TABLE log (y)") == nil)
        // Refused when the view or trigger is created, or when it is used (by the sandbox, or by
        // SQLite as a DIRECTONLY function): never run.
        func refusedOrUnsafe(_ error: SQLiteError?) -> Bool {
            error?.code == .authorization || error?.message.contains("unsafe use of fts3_tokenizer") == true
        }
        if db.failure("CREATE VIEW v AS SELECT fts3_tokenizer('simple') AS p") == nil {
            #expect(refusedOrUnsafe(db.failure("SELECT * FROM v")))
        }
        if db.failure(
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (fts3_tokenizer('simple')); END") == nil
        {
            #expect(refusedOrUnsafe(db.failure("INSERT INTO t VALUES (1)")))
        }
        #expect(try db.trustedRows("SELECT count(*) FROM log")[0][0] == .integer(0))
        // FTS itself still works.
        #expect(db.failure("CREATE VIRTUAL TABLE doc USING fts4(body, tokenize=simple)") == nil)
        #expect(db.failure("INSERT INTO doc VALUES ('hello shoal')") == nil)
        #expect(try db.connection.queryOne("SELECT count(*) FROM doc WHERE doc MATCH 'shoal'")?[0] == .integer(1))
    }

    @Test func processWideHeapLimitsAndPathsAreRefused() throws {
        let db = try Sandboxed()
        let before = try db.trustedRows("PRAGMA hard_heap_limit")[0][0]
        for sql in [
            "PRAGMA hard_heap_limit = 1000", "PRAGMA soft_heap_limit = 1000", "SELECT * FROM pragma_hard_heap_limit",
            "PRAGMA database_list", "SELECT file FROM pragma_database_list", "PRAGMA compile_options",
            "SELECT * FROM pragma_compile_options", "SELECT sqlite_compileoption_get(0)",
        ] {
            #expect(db.failure(sql)?.message.contains("not authorized") == true, "\(sql) was allowed")
        }
        #expect(try db.trustedRows("PRAGMA hard_heap_limit")[0][0] == before)
        #expect(try db.connection.queryOne("SELECT 1")?[0] == .integer(1))
    }

    @Test func resourcePragmasKeepTheNodesValues() throws {
        let db = try Sandboxed()
        for name in [
            "busy_timeout", "cache_size", "threads", "temp_store", "secure_delete", "analysis_limit", "mmap_size",
        ] {
            let before = try db.trustedRows("PRAGMA \(name)").first?[0]
            #expect(db.refusal("PRAGMA \(name) = 2")?.contains(name) == true, "PRAGMA \(name) = 2 was allowed")
            #expect(db.refusal("PRAGMA main.\(name)(2)") != nil)
            #expect(try db.trustedRows("PRAGMA \(name)").first?[0] == before)
            #expect(db.refusal("PRAGMA \(name)") == nil, "reading \(name) was refused")
        }
    }

    @Test func readOnlyAccessIsEnforcedBySQLiteNotByTheStatementsOwnClaim() throws {
        let db = try Sandboxed()
        #expect(
            db.failure("CREATE TABLE t (x INTEGER); CREATE INDEX tx ON t (x); INSERT INTO t VALUES (1), (2)") == nil)
        db.sandbox.readOnly = true
        try db.sandbox.enforceAccess(on: db.connection)
        // PRAGMA optimize says it is read-only but runs ANALYZE.
        #expect(db.refusal("PRAGMA optimize")?.contains("read-only") == true)
        #expect(db.failure("ANALYZE") != nil)
        #expect(
            try db.trustedRows("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")[0][0] == .integer(0))
        for sql in [
            "INSERT INTO t VALUES (3)", "DELETE FROM t", "CREATE TABLE u (y)", "CREATE TEMP TABLE w (z)",
            "PRAGMA user_version = 7", "DROP INDEX tx", "REINDEX",
        ] {
            #expect(db.failure(sql) != nil, "\(sql) ran on a read-only token")
        }
        #expect(try db.connection.queryOne("SELECT count(*) FROM t")?[0] == .integer(2))
        #expect(try db.trustedRows("PRAGMA query_only")[0][0] == .integer(1))
        // Back to read-write for the next request on the stream.
        db.sandbox.readOnly = false
        try db.sandbox.enforceAccess(on: db.connection)
        #expect(db.failure("INSERT INTO t VALUES (3)") == nil)
        // Under read-write, PRAGMA optimize is a write: the executor takes the write permit for it.
        _ = db.sandbox.takeHiddenWrite()
        let optimize = try db.connection.prepare("PRAGMA optimize")
        #expect(optimize.isReadOnly)
        #expect(db.sandbox.takeHiddenWrite())
        optimize.finalize()
    }

    @Test func vacuumIntoIsRefusedInAnySpellingAndInnocentStatementsRun() throws {
        let db = try Sandboxed()
        let target = db.scratch.file("copy.db")
        for sql in ["VACUUM INTO '\(target)'", "VACUUM/**/INTO '\(target)'", "vacuum main\ninto '\(target)'"] {
            #expect(db.failure(sql)?.code == .authorization, "\(sql) was allowed")
        }
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(db.failure("CREATE TABLE t (vacuum TEXT, \"into\" TEXT)") == nil)
        #expect(db.failure("WITH vacuum AS (SELECT 'v', 'i') INSERT INTO t SELECT * FROM vacuum") == nil)
        #expect(try db.connection.queryOne("SELECT count(*) FROM t")?[0] == .integer(1))
    }

    @Test func jsonFunctionsWorkInTheSchema() throws {
        let db = try Sandboxed()
        #expect(
            db.failure(
                """
                CREATE TABLE checked (body TEXT CHECK (json_valid(body)));
                INSERT INTO checked VALUES ('{"a":1}');
                CREATE TABLE doc (id INTEGER PRIMARY KEY, body TEXT,
                  kind TEXT GENERATED ALWAYS AS (json_extract(body, '$.kind')) VIRTUAL);
                CREATE INDEX doc_kind ON doc (json_extract(body, '$.kind'));
                CREATE VIEW doc_kinds AS SELECT json_group_array(kind) AS kinds FROM doc;
                CREATE TABLE audit (n TEXT);
                CREATE TRIGGER doc_audit AFTER INSERT ON doc BEGIN INSERT INTO audit VALUES (json_object('id', new.id)); END;
                INSERT INTO doc (body) VALUES ('{"kind":"card"}');
                """) == nil)
        #expect(db.failure("INSERT INTO checked (body) VALUES ('not json')")?.code.primary == .constraint)
        #expect(try db.connection.queryOne("SELECT kinds FROM doc_kinds")?[0] == .text(#"["card"]"#))
        #expect(try db.connection.queryOne("SELECT n FROM audit")?[0] == .text(#"{"id":1}"#))
        #expect(
            try db.connection.queryOne("SELECT count(*) FROM doc WHERE json_extract(body, '$.kind') = 'card'")?[0]
                == .integer(1))
    }

    @Test func alterTableWorksUnderTheSandbox() throws {
        let db = try Sandboxed()
        #expect(
            db.failure(
                """
                CREATE TABLE t (a, b, c); CREATE VIEW tv AS SELECT a FROM t;
                ALTER TABLE t RENAME COLUMN a TO a2; ALTER TABLE t DROP COLUMN c; ALTER TABLE t ADD COLUMN d;
                ALTER TABLE t RENAME TO t2;
                """) == nil)
        #expect(
            try db.connection.query("SELECT name FROM pragma_table_info('t2')").map { $0[0] } == [
                .text("a2"), .text("b"), .text("d"),
            ])
    }

    @Test func singleValuesAreLimitedToTheResponseCap() throws {
        let db = try Sandboxed(configuration: NodeConfiguration(dataDirectory: "unused", maxResponseBytes: 1 << 20))
        #expect(db.failure("SELECT zeroblob(\((1 << 20) + 1))")?.code.primary == .tooBig)
        #expect(db.failure("SELECT length(randomblob(\((1 << 20) - 10)))") == nil)
    }
}
