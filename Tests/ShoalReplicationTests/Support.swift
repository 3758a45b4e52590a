import Foundation
import ShoalSQLite
import Testing

@testable import ShoalReplication

/// Everything a database holds, for comparing a replica with its primary: the schema and every
/// table's rows (with rowids where the table has them), in a stable order.
struct DatabaseContents: Equatable, CustomStringConvertible {
    var schema: [Row]
    var tables: [String: [Row]]

    init(_ connection: Connection) throws {
        schema = try connection.query(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name"
        )
        tables = [:]
        let names = try connection.query(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        for row in names {
            guard case .text(let name) = row[0] else { continue }
            let sql = row[1].textValue ?? ""
            let isVirtualOrShadow = sql.uppercased().hasPrefix("CREATE VIRTUAL")
            let withoutRowID = sql.uppercased().contains("WITHOUT ROWID")
            let query =
                withoutRowID || isVirtualOrShadow
                ? "SELECT * FROM \"\(name)\" ORDER BY 1, 2"
                : "SELECT rowid, * FROM \"\(name)\" ORDER BY rowid"
            tables[name] = try connection.query(query)
        }
    }

    var description: String {
        "\(schema.count) schema entries, tables "
            + tables.map { "\($0.key): \($0.value.count) rows" }.sorted().joined(separator: ", ")
    }
}

extension Replica {
    /// `PRAGMA integrity_check` through a reader.
    func integrityCheck() throws -> String {
        try read { try $0.queryOne("PRAGMA integrity_check")?[0].textValue ?? "" }
    }

    /// The replica's contents through a reader.
    func contents() throws -> DatabaseContents {
        try read { try DatabaseContents($0) }
    }
}

extension PrimaryLog {
    /// Runs SQL on a connection of the log under a write permit.
    func write(_ connection: Connection, _ sql: String, _ arguments: [any SQLiteBindable] = []) throws {
        try withWritePermit {
            if arguments.isEmpty {
                try connection.execute(sql)
            } else {
                try connection.execute(sql, arguments)
            }
        }
    }
}

/// Runs blocking work (waiting for a child process, joining threads) on its own thread, so it never
/// holds one of the few threads of Swift's cooperative pool that other tests need.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result { try body() })
        }.start()
    }
}
