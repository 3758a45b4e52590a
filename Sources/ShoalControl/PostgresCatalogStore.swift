import Foundation
import Logging
import NIOCore
import PostgresNIO
import ShoalMigrations
import ShoalTime
import Synchronization

/// The catalog in PostgreSQL: several stateless control-plane instances share it. Quotas hold
/// through row locks on the organization (`SELECT … FOR UPDATE`); names stay unique through
/// unique constraints; migrations run once under an advisory lock.
public final class PostgresCatalogStore: CatalogStore {
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger
    private let running = Mutex(false)
    /// Whether `close()` has begun, and how many transactions are running.
    private let activity = Mutex((closed: false, transactions: 0))
    private let schema: String?

    /// Connects to `url` (`postgres://user[:password]@host[:port]/database[?schema=name]`); with
    /// `schema`, the catalog's tables live in that schema (created if missing). The connection pool
    /// runs until `close()`.
    public init(url: String, maximumConnections: Int = 20, logger: Logger) throws {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme),
            let host = components.host, let user = components.user
        else {
            throw CatalogStoreError.backend(
                "the PostgreSQL URL must look like postgres://user[:password]@host[:port]/database")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user, password: components.password,
            database: database.isEmpty ? nil : database, tls: .disable)
        configuration.options.maximumConnections = maximumConnections
        if let schema = components.queryItems?.first(where: { $0.name == "schema" })?.value {
            guard let first = schema.unicodeScalars.first, ("a"..."z").contains(first), schema.count <= 63,
                schema.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" })
            else {
                throw CatalogStoreError.backend("the schema name must be lower-case letters, digits and _")
            }
            configuration.options.additionalStartupParameters = [("search_path", schema)]
            self.schema = schema
        } else {
            self.schema = nil
        }
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        runner = Task { await client.run() }
    }

    /// Runs `body` in one transaction (see `CatalogStore`).
    public func transaction<T: Sendable>(
        _ body: @Sendable (any CatalogTransaction) async throws -> T
    ) async throws -> T {
        // A transaction after `close()` would wait forever for a connection from the stopped pool.
        try activity.withLock { activity in
            guard !activity.closed else { throw CatalogStoreError.backend("the catalog is closed") }
            activity.transactions += 1
        }
        defer { activity.withLock { $0.transactions -= 1 } }
        try await waitUntilRunning()
        let logger = logger
        return try await client.withConnection { connection in
            let transaction = Transaction(connection: connection, logger: logger)
            try await transaction.run("BEGIN")
            do {
                let result = try await body(transaction)
                try await transaction.run("COMMIT")
                return result
            } catch {
                try? await transaction.run("ROLLBACK")
                throw error
            }
        }
    }

    /// Applies pending schema versions (see `CatalogStore`).
    public func migrate() async throws {
        let schema = schema
        try await transaction { transaction in
            // One instance migrates at a time; the others wait, then find nothing pending.
            try await transaction.query("SELECT pg_advisory_xact_lock(7401532)", [])
            if let schema {
                try await transaction.query("CREATE SCHEMA IF NOT EXISTS \(schema)", [])
            }
            try await transaction.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
                [])
            let applied =
                try await transaction.queryOne("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [])?
                .integer(0) ?? 0
            for migration in CatalogMigrations.postgresql.pending(after: applied) {
                for statement in statements(of: migration.sql) {
                    try await transaction.query(statement, [])
                }
                try await transaction.query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    [.integer(Int64(migration.version)), .text(migration.name), .integer(WallClock.milliseconds())])
            }
        }
    }

    /// Waits until the pool serves leases. A lease asked for before the pool's `run()` has really
    /// started can be lost (seen under load as a transaction that never starts), so the first one is
    /// a probe, tried again when it does not come back within a few seconds.
    private func waitUntilRunning() async throws {
        if running.withLock({ $0 }) { return }
        let client = client
        for _ in 0..<10 {
            let leased = await Self.finishes(within: .seconds(3)) {
                try await client.withConnection { connection in
                    _ = try await connection.query("SELECT 1", logger: Logger(label: "shoal.catalog.probe"))
                }
            }
            if leased {
                running.withLock { $0 = true }
                return
            }
            logger.warning("catalog.postgres.lease_retry")
        }
        throw CatalogStoreError.backend("PostgreSQL does not answer; check the server and the URL")
    }

    /// Whether `work` finishes within `limit`; work that does not is left running on its own.
    private static func finishes(
        within limit: Duration, _ work: @escaping @Sendable () async throws -> Void
    ) async -> Bool {
        (try? await withDeadline(limit, work)) != nil
    }

    /// Closes the store (see `CatalogStore`): transactions begun from now on fail at once (one that
    /// asked the stopped pool for a connection would wait forever, and with it the server request
    /// that ran it), running ones get up to 10 seconds to finish, then the pool is told to shut down
    /// and given 10 seconds to close its connections. A pool that has not stopped by then is left
    /// to stop on its own, and the log says so, so that a shutdown never hangs on it.
    public func close() async {
        // New transactions are refused from now on; running ones get up to 10 s to finish first.
        activity.withLock { $0.closed = true }
        let drained = ContinuousClock.now + .seconds(10)
        while activity.withLock({ $0.transactions }) > 0, ContinuousClock.now < drained {
            try? await Task.sleep(for: .milliseconds(10))
        }
        runner.cancel()
        let runner = runner
        let stopped = await Self.finishes(within: .seconds(10)) { await runner.value }
        if !stopped {
            logger.error("catalog.postgres.close_timeout: the connection pool did not stop within 10 s; leaving it")
        }
    }

    private struct Transaction: CatalogTransaction {
        let connection: PostgresConnection
        let logger: Logger

        func run(_ sql: String) async throws {
            try await query(sql, [])
        }

        @discardableResult
        func query(_ sql: String, _ binds: [CatalogValue]) async throws -> [CatalogRow] {
            var bindings = PostgresBindings(capacity: binds.count)
            for value in binds {
                switch value {
                case .integer(let integer): bindings.append(integer)
                case .text(let text): bindings.append(text)
                case .null: bindings.appendNull()
                }
            }
            do {
                let sequence = try await connection.query(
                    PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger)
                var rows: [CatalogRow] = []
                for try await row in sequence {
                    var values: [CatalogValue] = []
                    for cell in row {
                        values.append(try Self.value(of: cell))
                    }
                    rows.append(CatalogRow(values: values))
                }
                return rows
            } catch let error as PSQLError {
                if error.serverInfo?[.sqlState] == "23505" { throw CatalogStoreError.uniqueViolation }
                let message = error.serverInfo?[.message] ?? "\(error.code)"
                throw CatalogStoreError.backend("PostgreSQL: \(message)")
            }
        }

        func lockOrganization(id: String) async throws {
            try await query("SELECT id FROM organizations WHERE id = $1 FOR UPDATE", [.text(id)])
        }

        private static func value(of cell: PostgresCell) throws -> CatalogValue {
            guard cell.bytes != nil else { return .null }
            switch cell.dataType {
            case .int8: return .integer(try cell.decode(Int64.self))
            case .int4: return .integer(Int64(try cell.decode(Int32.self)))
            case .int2: return .integer(Int64(try cell.decode(Int16.self)))
            case .bool: return .integer(try cell.decode(Bool.self) ? 1 : 0)
            case .numeric: return .integer(Int64(try cell.decode(String.self)) ?? 0)
            default: return .text(try cell.decode(String.self))
            }
        }
    }
}
