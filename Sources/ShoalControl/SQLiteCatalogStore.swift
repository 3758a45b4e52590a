import Foundation
import ServiceLifecycle
import ShoalMigrations
import ShoalSQLite

/// The catalog in one SQLite file (WAL mode): zero set-up, one control-plane instance. Transactions
/// run one at a time (`BEGIN IMMEDIATE`), which is also what makes quotas hold under concurrency.
public final class SQLiteCatalogStore: CatalogStore, @unchecked Sendable {
    // @unchecked Sendable: `connection` is used only by the one transaction holding `lock`, and by
    // `close` after taking the lock; the lock orders every use.
    private let connection: Connection
    private let lock = AsyncLock()
    private var closed = false

    /// Opens (creating if needed) the catalog file at `path`.
    public init(path: String) throws {
        var configuration = Connection.Configuration()
        configuration.journalMode = .wal
        configuration.busyTimeout = .seconds(5)
        configuration.foreignKeys = true
        configuration.prepare = { connection in try connection.execute("PRAGMA synchronous = NORMAL") }
        do {
            connection = try Connection(path: path, configuration: configuration)
        } catch {
            throw CatalogStoreError.backend("cannot open the catalog at \(path): \(error)")
        }
    }

    /// Runs `body` in one transaction (see `CatalogStore`).
    public func transaction<T: Sendable>(
        _ body: @Sendable (any CatalogTransaction) async throws -> T
    ) async throws -> T {
        await lock.lock()
        do {
            guard !closed else { throw CatalogStoreError.backend("the catalog is closed") }
            try run("BEGIN IMMEDIATE")
            let result: T
            do {
                result = try await body(Transaction(store: self))
                try run("COMMIT")
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
            await lock.unlock()
            return result
        } catch {
            await lock.unlock()
            throw error
        }
    }

    /// Applies pending schema versions (see `CatalogStore`).
    public func migrate() async throws {
        try await transaction { transaction in
            try await transaction.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
                [])
            let applied =
                try await transaction.queryOne("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [])?
                .integer(0) ?? 0
            for migration in CatalogMigrations.sqlite.pending(after: applied) {
                for statement in statements(of: migration.sql) {
                    try await transaction.query(statement, [])
                }
                try await transaction.query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    [.integer(Int64(migration.version)), .text(migration.name), .integer(WallClock.milliseconds())])
            }
        }
    }

    /// Closes the store (see `CatalogStore`).
    /// Nothing runs beside a SQLite catalog: waits for a graceful shutdown or cancellation.
    public func run() async {
        try? await gracefulShutdown()
    }

    /// Closes the connection; the store is unusable afterwards.
    public func close() async {
        await lock.lock()
        if !closed {
            closed = true
            try? connection.close()
        }
        await lock.unlock()
    }

    private func run(_ sql: String) throws {
        do {
            try connection.execute(sql)
        } catch {
            throw Self.translate(error)
        }
    }

    fileprivate func query(_ sql: String, _ binds: [CatalogValue]) throws -> [CatalogRow] {
        do {
            // `$N` placeholders become SQLite's numbered `?N`.
            let statement = try connection.cachedStatement(sql.replacingOccurrences(of: "$", with: "?"))
            defer { statement.reset() }
            for (index, value) in binds.enumerated() {
                switch value {
                case .integer(let integer): try statement.bind(integer, at: index + 1)
                case .text(let text): try statement.bind(text, at: index + 1)
                case .null: try statement.bindNull(at: index + 1)
                }
            }
            var rows: [CatalogRow] = []
            while try statement.step() {
                var values: [CatalogValue] = []
                values.reserveCapacity(statement.columnCount)
                for column in 0..<statement.columnCount {
                    switch statement.value(at: column) {
                    case .integer(let integer): values.append(.integer(integer))
                    case .text(let text): values.append(.text(text))
                    case .null: values.append(.null)
                    case .real(let real): values.append(.integer(Int64(real)))
                    case .blob(let bytes): values.append(.text(String(decoding: bytes, as: UTF8.self)))
                    }
                }
                rows.append(CatalogRow(values: values))
            }
            return rows
        } catch {
            throw Self.translate(error)
        }
    }

    private static func translate(_ error: any Error) -> any Error {
        guard let error = error as? SQLiteError else { return error }
        if error.code == .constraintUnique || error.code == .constraintPrimaryKey {
            return CatalogStoreError.uniqueViolation
        }
        return CatalogStoreError.backend(error.description)
    }

    private struct Transaction: CatalogTransaction {
        let store: SQLiteCatalogStore

        func query(_ sql: String, _ binds: [CatalogValue]) async throws -> [CatalogRow] {
            try store.query(sql, binds)
        }

        func lockOrganization(id: String) async throws {
            // BEGIN IMMEDIATE already holds the file's only write lock.
        }
    }
}

/// Wall-clock milliseconds, the catalog's unit of time.
enum WallClock {
    static func milliseconds() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}
