import ShoalSQLite

/// Everything a database holds, for comparing a replica with its primary: the schema and every
/// table's rows (with rowids where the table has them), in a stable order.
public struct DatabaseContents: Equatable, CustomStringConvertible {
    /// The schema entries.
    public var schema: [Row]
    /// Every table's rows.
    public var tables: [String: [Row]]

    /// Reads everything through `connection`.
    public init(_ connection: Connection) throws {
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

    /// A summary: counts only.
    public var description: String {
        "\(schema.count) schema entries, tables "
            + tables.map { "\($0.key): \($0.value.count) rows" }.sorted().joined(separator: ", ")
    }
}
