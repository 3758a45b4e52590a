import Foundation
import Testing

@testable import ShoalSQLite

/// A tenant schema's migrations applied to one database: once each, recorded in it, resumable.
@Suite(.timeLimit(.minutes(2))) struct TenantMigratorTests {
    static func migration(_ version: Int64, _ name: String, _ sql: String) -> TenantMigration {
        TenantMigration(version: version, name: name, sql: sql, checksum: "sum-\(name)-\(sql.count)")
    }

    static let schema = [
        migration(1, "0001_items", "CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);"),
        migration(
            2, "0002_email",
            """
            BEGIN;
            ALTER TABLE items ADD COLUMN email TEXT;
            SAVEPOINT inner; CREATE INDEX items_email ON items (email); RELEASE inner;
            COMMIT;
            """),
    ]

    @Test func appliesEachMigrationOnceAndRecordsItInTheDatabase() throws {
        let connection = try Connection(path: ":memory:")
        let first = try TenantMigrator.apply(Self.schema, upTo: 1, on: connection, now: 10)
        #expect(first == .init(version: 1, applied: ["0001_items"]))
        let second = try TenantMigrator.apply(Self.schema, on: connection, now: 20)
        #expect(second == .init(version: 2, applied: ["0002_email"]))
        let again = try TenantMigrator.apply(Self.schema, on: connection, now: 30)
        #expect(again == .init(version: 2, applied: []))
        let recorded = try connection.query("SELECT version, name, applied_at FROM _shoal_migrations ORDER BY version")
        #expect(
            recorded.map { $0.values } == [
                [.integer(1), .text("0001_items"), .integer(10)], [.integer(2), .text("0002_email"), .integer(20)],
            ])
        // The migration's own BEGIN/COMMIT ran inside the migrator's transaction: the column is there.
        try connection.execute("INSERT INTO items (v, email) VALUES ('a', 'a@example.com')")
        #expect(try TenantMigrator.schema(of: connection).map(\.label) == ["index items_email", "table items"])
    }

    @Test func aFailedMigrationLeavesNothingOfItselfAndKeepsThoseBefore() throws {
        let connection = try Connection(path: ":memory:")
        let broken =
            Self.schema + [
                Self.migration(3, "0003_broken", "CREATE TABLE extra (x); INSERT INTO missing VALUES (1);")
            ]
        #expect {
            try TenantMigrator.apply(broken, on: connection, now: 0)
        } throws: { error in
            guard case .failed(let version, let name, let sqlite) = error as? TenantMigrator.Failure else {
                return false
            }
            return version == 3 && name == "0003_broken" && sqlite.message.contains("no such table: missing")
        }
        #expect(try TenantMigrator.version(on: connection) == 2)
        // `extra` was made inside the failed migration's transaction and rolled back with it.
        #expect(try connection.queryOne("SELECT 1 FROM sqlite_schema WHERE name = 'extra'") == nil)
        #expect(connection.isAutocommit)
    }

    @Test func anEditedAppliedMigrationIsRefused() throws {
        let connection = try Connection(path: ":memory:")
        _ = try TenantMigrator.apply(Self.schema, on: connection, now: 0)
        var edited = Self.schema
        edited[0] = TenantMigration(
            version: 1, name: "0001_items", sql: "CREATE TABLE items (id INTEGER PRIMARY KEY);", checksum: "other")
        #expect {
            try TenantMigrator.apply(edited, on: connection, now: 0)
        } throws: { error in
            guard case .historyMismatch(let message) = error as? TenantMigrator.Failure else { return false }
            return message.contains("was edited")
        }
        // A list shorter than what the database applied: it is ahead of that schema.
        #expect(throws: TenantMigrator.Failure.self) {
            try TenantMigrator.apply(Array(Self.schema.prefix(1)), on: connection, now: 0)
        }
    }

    @Test func aMigrationThatRollsItselfBackFails() throws {
        let connection = try Connection(path: ":memory:")
        let rolling = [Self.migration(1, "0001_rollback", "CREATE TABLE t (x); ROLLBACK;")]
        #expect(throws: TenantMigrator.Failure.self) { try TenantMigrator.apply(rolling, on: connection, now: 0) }
        #expect(try TenantMigrator.version(on: connection) == 0)
        // ROLLBACK TO a savepoint is the migration's own business.
        let partial = [
            Self.migration(1, "0001_partial", "CREATE TABLE t (x); SAVEPOINT s; CREATE TABLE u (y); ROLLBACK TO s;")
        ]
        #expect(try TenantMigrator.apply(partial, on: connection, now: 0).version == 1)
        #expect(try TenantMigrator.schema(of: connection).map(\.label) == ["table t"])
    }

    @Test func driftNamesWhatDiffersFromTheMigrations() throws {
        let connection = try Connection(path: ":memory:")
        _ = try TenantMigrator.apply(Self.schema, on: connection, now: 0)
        try connection.execute("CREATE INDEX by_hand ON items (v)")
        try connection.execute("DROP INDEX items_email")
        let expected = try TenantMigrator.expectedSchema(of: Self.schema)
        let drift = SchemaDrift(expected: expected, actual: try TenantMigrator.schema(of: connection))
        #expect(drift.missing == ["index items_email"])
        #expect(drift.unexpected == ["index by_hand"])
        #expect(drift.changed.isEmpty)
        #expect(SchemaDrift(expected: expected, actual: expected).isEmpty)
    }

    @Test func aRecordMadeByOtherSQLIsRefusedNotTrusted() throws {
        // A table renamed into the record's name (the authorizer sees only the old name), with a row
        // that is no migration: refused, never indexed.
        let planted = try Connection(path: ":memory:")
        try planted.execute("CREATE TABLE x (version, name, checksum, applied_at)")
        try planted.execute("INSERT INTO x VALUES (0, 'a', 'b', 0)")
        try planted.execute("ALTER TABLE x RENAME TO _Shoal_Migrations")
        #expect(throws: TenantMigrator.Failure.self) { try TenantMigrator.apply(Self.schema, on: planted, now: 0) }
        // The node's own table with a trigger on it, or rows out of order, are refused too.
        let triggered = try Connection(path: ":memory:")
        _ = try TenantMigrator.apply(Self.schema, upTo: 1, on: triggered, now: 0)
        try triggered.execute(
            "CREATE TRIGGER t AFTER INSERT ON _shoal_migrations BEGIN DELETE FROM _shoal_migrations; END")
        #expect(throws: TenantMigrator.Failure.self) { try TenantMigrator.apply(Self.schema, on: triggered, now: 0) }
        let gap = try Connection(path: ":memory:")
        _ = try TenantMigrator.apply(Self.schema, upTo: 1, on: gap, now: 0)
        try gap.execute("UPDATE _shoal_migrations SET version = 5")
        #expect(throws: TenantMigrator.Failure.self) { try TenantMigrator.apply(Self.schema, on: gap, now: 0) }
    }

    @Test func theDryRunRefusesPragmasThatReachTheProcessAndFiles() throws {
        for sql in [
            "PRAGMA soft_heap_limit = 1;", "PRAGMA hard_heap_limit = 1;", "PRAGMA max_page_count = 2147483647;",
            "ATTACH 'x.db' AS x;", "PRAGMA temp_store_directory = '/tmp';",
        ] {
            #expect(throws: TenantMigrator.Failure.self, "\(sql)") {
                try TenantMigrator.expectedSchema(of: [Self.migration(1, "0001_x", sql)])
            }
        }
        // A query that never ends stops at the time limit.
        let endless = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT count(*) FROM c;"
        #expect(throws: TenantMigrator.Failure.self) {
            try TenantMigrator.expectedSchema(
                of: [Self.migration(1, "0001_loop", endless)], timeLimit: .milliseconds(200))
        }
        #expect(
            try TenantMigrator.expectedSchema(of: [
                Self.migration(1, "0001_fk", "PRAGMA foreign_keys = OFF; CREATE TABLE t (x);")
            ]).map(\.label) == ["table t"])
    }

    @Test func leadingWordsSkipCommentsAndWhitespace() {
        #expect(SQLText.leadingWords("  -- note\n /* x */ begin immediate;", count: 2) == ["BEGIN", "IMMEDIATE"])
        #expect(SQLText.leadingWords("ROLLBACK TO s", count: 2) == ["ROLLBACK", "TO"])
        #expect(SQLText.leadingWords("end", count: 2) == ["END"])
    }
}
