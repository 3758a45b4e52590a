import Foundation
import ShoalTestSupport
import Testing

@testable import ShoalSQLite

/// A connection's temporary files (sorter spills, transient indices, TEMP tables) count against the
/// budget `limitTemporaryFiles(toBytes:)` sets; a write past it fails with `SQLITE_FULL`, and what a
/// statement's files held is given back when they close.
@Suite(.timeLimit(.minutes(2))) struct TempBudgetTests {
    static let rows = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 40000)"
    /// 20 MB of sort keys: more than the sorter keeps in memory, so it spills.
    static let sort = "\(rows) SELECT i FROM s ORDER BY randomblob(500)"
    /// A transient index of 20 MB.
    static let distinct = "\(rows) SELECT count(*) FROM (SELECT DISTINCT randomblob(500) FROM s)"

    /// A connection to a fresh file in a directory of its own (removed when the test ends).
    static func withConnection(_ body: (Connection) throws -> Void) throws {
        let scratch = try TemporaryDirectory()
        let directory = scratch.path
        defer { withExtendedLifetime(scratch) {} }
        let connection = try Connection(path: directory + "/data.db")
        defer { try? connection.close() }
        try body(connection)
    }

    @Test func sortsAndTransientIndicesPastTheBudgetFailWithFull() throws {
        try Self.withConnection { connection in
            try connection.limitTemporaryFiles(toBytes: 1 << 20)
            for sql in [Self.sort, Self.distinct] {
                #expect {
                    try connection.query(sql)
                } throws: {
                    ($0 as? SQLiteError)?.code.primary == .full
                }
                #expect(connection.temporaryFileBytes == 0, "a failed statement's files were given back")
            }
            #expect(connection.temporaryFileRefusals >= 2)
            // The connection still works, and small sorts stay in memory.
            #expect(try connection.query("SELECT 1 UNION SELECT 2 ORDER BY 1").count == 2)
        }
    }

    @Test func withinTheBudgetTheSameStatementsRunAndGiveTheirBytesBack() throws {
        try Self.withConnection { connection in
            try connection.limitTemporaryFiles(toBytes: 256 << 20)
            let statement = try connection.prepare(Self.sort)
            #expect(try statement.step())
            // The sort has spilled; its file is counted while the statement holds it.
            #expect(connection.temporaryFileBytes > 1 << 20)
            statement.reset()
            statement.finalize()
            #expect(connection.temporaryFileBytes == 0)
            #expect(try connection.queryOne(Self.distinct)?[0] == .integer(40000))
            #expect(connection.temporaryFileBytes == 0)
            #expect(connection.temporaryFileRefusals == 0)
        }
    }

    @Test func aConnectionWithoutABudgetIsNotLimited() throws {
        try Self.withConnection { connection in
            let count = try connection.queryOne(Self.distinct)
            #expect(count?[0] == .integer(40000))
            #expect(connection.temporaryFileBytes == 0)
        }
    }
}
