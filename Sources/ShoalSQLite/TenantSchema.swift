/// One migration of a tenant schema: the SQL a group's databases run, in order, once each.
public struct TenantMigration: Sendable, Equatable, Codable {
    /// Its place in the group's list, from 1.
    public let version: Int64
    /// Its name, unique in the group.
    public let name: String
    /// The SQL, run as the tenant's own client would (statements one after another; `BEGIN`,
    /// `COMMIT` and savepoints inside it are fine).
    public let sql: String
    /// The SHA-256 of `sql` (hex), recorded in every database that applied it.
    public let checksum: String

    /// A migration.
    public init(version: Int64, name: String, sql: String, checksum: String) {
        self.version = version
        self.name = name
        self.sql = sql
        self.checksum = checksum
    }
}

/// One object of a database's schema as `sqlite_schema` holds it.
public struct SchemaEntry: Sendable, Equatable, Codable, Hashable {
    /// `table`, `index`, `view` or `trigger`.
    public let type: String
    /// Its name.
    public let name: String
    /// The SQL that makes it; nil for an index SQLite made itself.
    public let sql: String?

    /// An entry.
    public init(type: String, name: String, sql: String?) {
        self.type = type
        self.name = name
        self.sql = sql
    }

    /// `table t`, as differences name it.
    public var label: String { "\(type) \(name)" }
}

/// How a database's schema differs from what its recorded migrations make.
public struct SchemaDrift: Sendable, Equatable, Codable {
    /// Objects the migrations make that the database lacks.
    public var missing: [String]
    /// Objects the database has that no migration made.
    public var unexpected: [String]
    /// Objects of both whose SQL differs.
    public var changed: [String]

    /// Whether there is no difference.
    public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && changed.isEmpty }

    /// The difference between `expected` (what the migrations make) and `actual`.
    public init(expected: [SchemaEntry], actual: [SchemaEntry]) {
        let want = Dictionary(expected.map { ($0.label, $0) }, uniquingKeysWith: { first, _ in first })
        let have = Dictionary(actual.map { ($0.label, $0) }, uniquingKeysWith: { first, _ in first })
        missing = want.keys.filter { have[$0] == nil }.sorted()
        unexpected = have.keys.filter { want[$0] == nil }.sorted()
        changed = want.keys.filter { label in have[label].map { $0.sql != want[label]?.sql } ?? false }.sorted()
    }
}

/// Applies a tenant schema's migrations to one database, each in its own transaction, and records
/// each in the database itself (`_shoal_migrations`: version, name, checksum, applied-at) in the
/// same transaction: a crash anywhere leaves each migration either applied and recorded or neither,
/// so running it again applies nothing twice.
public enum TenantMigrator {
    /// The table each database records its applied migrations in.
    public static let table = "_shoal_migrations"

    /// A migration a database has recorded.
    public struct Applied: Sendable, Equatable, Codable {
        /// Its version.
        public let version: Int64
        /// Its name.
        public let name: String
        /// The checksum of the SQL that ran.
        public let checksum: String
    }

    /// Why migrating stopped.
    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// A migration's SQL failed; it was rolled back, and those before it stay applied.
        case failed(version: Int64, name: String, error: SQLiteError)
        /// The database recorded a migration the list does not have, or has with another checksum
        /// (an applied migration was edited, or the database belongs to another schema).
        case historyMismatch(String)

        /// What failed, for people.
        public var description: String {
            switch self {
            case .failed(let version, let name, let error):
                "migration \(version) (\(name)) failed: \(error.message)"
            case .historyMismatch(let message): message
            }
        }
    }

    /// What `apply` did.
    public struct Outcome: Sendable, Equatable {
        /// The database's version afterwards: its last applied migration's (0 for none).
        public let version: Int64
        /// The names applied by this call, in order.
        public let applied: [String]
    }

    /// The table's definition as the migrator makes it; `sqlite_schema` keeps it as written.
    static let tableSQL =
        "CREATE TABLE \(table) (version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, "
        + "applied_at INTEGER NOT NULL)"

    /// The migrations `connection`'s database has recorded, in order (none if it never migrated).
    /// Throws `historyMismatch` when the record is not the migrator's: a table of that name (in any
    /// letter case) with another definition, anything else on it (a trigger, an index), or rows that
    /// are not versions 1, 2, 3, … with a name and a checksum.
    public static func applied(on connection: Connection) throws -> [Applied] {
        let objects = try connection.query(
            """
            SELECT type, name, sql FROM main.sqlite_schema
            WHERE name = '\(table)' COLLATE NOCASE OR tbl_name = '\(table)' COLLATE NOCASE
            """)
        guard !objects.isEmpty else { return [] }
        guard objects.count == 1, objects[0][0].textValue == "table", objects[0][1].textValue == table,
            objects[0][2].textValue == tableSQL
        else {
            throw Failure.historyMismatch(
                "the database's \(table) is not the one the node keeps (it was made or changed by other SQL); "
                    + "its migrations cannot be told apart, so none is applied")
        }
        var applied: [Applied] = []
        for row in try connection.query("SELECT version, name, checksum FROM main.\(table) ORDER BY version") {
            guard let version = row[0].integerValue, version == Int64(applied.count + 1),
                let name = row[1].textValue, let checksum = row[2].textValue
            else {
                throw Failure.historyMismatch(
                    "the database's \(table) holds rows that are not migrations 1, 2, 3, … in order; none is applied")
            }
            applied.append(Applied(version: version, name: name, checksum: checksum))
        }
        return applied
    }

    /// The version `connection`'s database is at: its last applied migration's, 0 for none.
    public static func version(on connection: Connection) throws -> Int64 {
        try applied(on: connection).last?.version ?? 0
    }

    /// Applies the migrations of `migrations` (the group's list from version 1, in order) that the
    /// database has not recorded, up to `target` (all of them when nil). First checks that what it
    /// recorded matches the list's start, name and checksum. `bookkeeping` runs the migrator's own
    /// statements (the table and its rows), for a connection whose authorizer keeps tenants off it.
    /// The connection must be in autocommit; the caller holds whatever lets it write.
    public static func apply(
        _ migrations: [TenantMigration], upTo target: Int64? = nil, on connection: Connection, now: Int64,
        bookkeeping: (() throws -> Void) throws -> Void = { try $0() }
    ) throws -> Outcome {
        guard connection.isAutocommit else {
            throw SQLiteError(code: .misuse, message: "migrations start outside a transaction")
        }
        for (index, migration) in migrations.enumerated() where migration.version != Int64(index + 1) {
            throw Failure.historyMismatch(
                "the migrations are not numbered 1, 2, 3, …: \(migration.name) is \(migration.version) at place \(index + 1)"
            )
        }
        var recorded: [Applied] = []
        try bookkeeping { recorded = try applied(on: connection) }
        for entry in recorded {
            guard entry.version <= Int64(migrations.count) else {
                throw Failure.historyMismatch(
                    "the database has applied migration \(entry.version) (\(entry.name)), which the group's schema "
                        + "does not have: it is ahead of the schema, or belongs to another one")
            }
            let known = migrations[Int(entry.version - 1)]
            guard known.name == entry.name, known.checksum == entry.checksum else {
                throw Failure.historyMismatch(
                    "the database applied migration \(entry.version) as \(entry.name) with checksum "
                        + "\(entry.checksum.prefix(12)), but the group's schema has \(known.name) with checksum "
                        + "\(known.checksum.prefix(12)): an applied migration was edited; add a new one instead")
            }
        }
        let current = recorded.last?.version ?? 0
        let last = min(target ?? Int64(migrations.count), Int64(migrations.count))
        var appliedNow: [String] = []
        var version = current
        for migration in migrations where migration.version > current && migration.version <= last {
            do {
                try connection.execute("BEGIN IMMEDIATE")
                try run(migration.sql, on: connection)
                try bookkeeping {
                    // What the migration's SQL may have made of the table is checked again first; the
                    // record is written with triggers off, so nothing of the tenant's runs with it.
                    let recordedNow = try applied(on: connection)
                    guard recordedNow.count == Int(migration.version - 1) else {
                        throw Failure.historyMismatch(
                            "migration \(migration.version) (\(migration.name)) changed \(table) itself")
                    }
                    if recordedNow.isEmpty,
                        try connection.queryOne("SELECT 1 FROM main.sqlite_schema WHERE name = '\(table)'") == nil
                    {
                        try connection.execute(tableSQL)
                    }
                    let triggers = try connection.setConfig(.enableTrigger, false)
                    defer { _ = try? connection.setConfig(.enableTrigger, triggers) }
                    try connection.execute(
                        "INSERT INTO main.\(table) (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                        [migration.version, migration.name, migration.checksum, now])
                }
                try connection.execute("COMMIT")
            } catch let failure as Failure {
                if !connection.isAutocommit { try? connection.execute("ROLLBACK") }
                throw failure
            } catch {
                if !connection.isAutocommit { try? connection.execute("ROLLBACK") }
                let sqliteError =
                    (error as? SQLiteError) ?? SQLiteError(code: .error, message: "\(error)", sql: nil)
                throw Failure.failed(version: migration.version, name: migration.name, error: sqliteError)
            }
            appliedNow.append(migration.name)
            version = migration.version
        }
        return Outcome(version: version, applied: appliedNow)
    }

    /// Runs a migration's statements one after another inside the migrator's transaction: its own
    /// `BEGIN` and `COMMIT` (or `END`) are passed over, savepoints run as written, and a `ROLLBACK`
    /// of the whole transaction fails the migration.
    static func run(_ sql: String, on connection: Connection) throws {
        var remaining = sql
        while let statement = try connection.prepareFirst(remaining) {
            remaining = statement.tail
            let words = SQLText.leadingWords(statement.sql, count: 2)
            switch words.first {
            case "BEGIN", "COMMIT", "END":
                statement.finalize()
                continue
            case "ROLLBACK" where words.count < 2 || words[1] != "TO":
                statement.finalize()
                throw SQLiteError(
                    code: .error, message: "the migration rolls its own transaction back", sql: statement.sql)
            default:
                while try statement.step() {}
                statement.finalize()
            }
        }
    }

    /// The schema of `connection`'s database: every table, index, view and trigger but SQLite's own
    /// and the migrator's table, in type and name order.
    public static func schema(of connection: Connection) throws -> [SchemaEntry] {
        try connection.query(
            """
            SELECT type, name, sql FROM main.sqlite_schema
            WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name != '\(table)' AND tbl_name != '\(table)'
            ORDER BY type, name
            """
        ).map { row in SchemaEntry(type: row[0].textValue ?? "", name: row[1].textValue ?? "", sql: row[2].textValue) }
    }

    /// The schema `migrations` make, applied to an empty database in memory: what a database that
    /// recorded them should have. Throws the first migration's failure (a dry run). The SQL is the
    /// tenant's, run in the caller's process: no file is reached (`ATTACH` is off, the database and
    /// its temporary files live in memory, at most `memoryBytes` of them), no value grows past 16 MiB,
    /// and the whole run stops after `timeLimit`.
    public static func expectedSchema(
        of migrations: [TenantMigration], timeLimit: Duration = .seconds(5), memoryBytes: Int64 = 64 << 20
    ) throws -> [SchemaEntry] {
        let connection = try Connection(path: ":memory:")
        try connection.setConfig(.enableLoadExtension, false)
        try connection.setConfig(.enableFTS3Tokenizer, false)
        try connection.setConfig(.defensive, true)
        _ = try connection.setLimit(.attached, to: 0)
        _ = try connection.setLimit(.length, to: 16 << 20)
        let pages = max(1, memoryBytes / 4096)
        try connection.execute("PRAGMA max_page_count = \(pages)")
        try connection.execute("PRAGMA temp.max_page_count = \(pages)")
        // Sorts and transient tables spill to temporary files, under the same budget.
        try connection.limitTemporaryFiles(toBytes: memoryBytes)
        // Pragmas act on the whole process (heap limits, the temporary directory) or undo the caps
        // above; migrations may use only those that describe or shape the schema.
        try connection.setAuthorizer { action in
            switch action.code {
            case .pragma:
                let name = (action.first ?? "").lowercased()
                return dryRunPragmas.contains(name)
                    ? .allow : .refuse("PRAGMA \(name) is not available in a migration")
            case .attach, .detach:
                return .refuse("ATTACH and DETACH are not available in a migration")
            default:
                return .allow
            }
        }
        try connection.setDeadline(ContinuousClock.now.advanced(by: timeLimit))
        _ = try apply(migrations, on: connection, now: 0)
        try connection.setDeadline(nil)
        return try schema(of: connection)
    }
}

/// The pragmas a migration's dry run lets through: they describe the schema or shape how it changes.
let dryRunPragmas: Set<String> = [
    "foreign_keys", "defer_foreign_keys", "foreign_key_check", "foreign_key_list", "legacy_alter_table",
    "recursive_triggers", "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "user_version", "application_id", "integrity_check", "quick_check", "collation_list", "function_list",
]

extension SQLText {
    /// The first `count` words of `sql`, upper-cased, after whitespace and comments.
    public static func leadingWords(_ sql: String, count: Int) -> [String] {
        var words: [String] = []
        var index = sql.startIndex
        var current = ""
        func flush() {
            if !current.isEmpty { words.append(current.uppercased()) }
            current = ""
        }
        while index < sql.endIndex, words.count < count {
            let character = sql[index]
            if character == "-", sql[index...].hasPrefix("--") {
                flush()
                index = sql[index...].firstIndex(of: "\n") ?? sql.endIndex
                continue
            }
            if character == "/", sql[index...].hasPrefix("/*") {
                flush()
                let rest = sql[sql.index(index, offsetBy: 2)...]
                index = rest.range(of: "*/")?.upperBound ?? sql.endIndex
                continue
            }
            if character.isLetter || character == "_" {
                current.append(character)
            } else {
                flush()
                if !character.isWhitespace { break }
            }
            index = sql.index(after: index)
        }
        flush()
        return Array(words.prefix(count))
    }
}
