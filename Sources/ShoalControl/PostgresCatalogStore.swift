import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import ShoalMigrations
import ShoalTime
import Synchronization

/// The catalog in PostgreSQL: several stateless control-plane instances share it. Quotas hold
/// through row locks on the organization (`SELECT … FOR UPDATE`); names stay unique through
/// unique constraints; migrations run once under an advisory lock.
public final class PostgresCatalogStore: CatalogStore {
    private let client: PostgresClient
    private let logger: Logger
    /// Whether the pool's first lease came back.
    private let running = Mutex(false)
    private let activity = Mutex(Activity())

    private struct Activity {
        /// Whether `run()` has begun.
        var started = false
        /// Whether `close()` has begun.
        var closed = false
        /// Transactions running now.
        var transactions = 0
        /// Callers waiting for `run()` to begin (`.start`) or for running transactions to end
        /// (`.drain`), by id; ids whose wait ended before they registered.
        var waiters: [Wait: [UInt64: CheckedContinuation<Void, Never>]] = [:]
        var expired: Set<UInt64> = []
        var nextWaitID: UInt64 = 0

        func isReady(_ wait: Wait) -> Bool {
            switch wait {
            case .start: started
            case .drain: transactions == 0
            }
        }

        /// Takes every waiter of `wait` (to resume them).
        mutating func takeAll(_ wait: Wait) -> [CheckedContinuation<Void, Never>] {
            Array((waiters.removeValue(forKey: wait) ?? [:]).values)
        }
    }

    private enum Wait: Hashable, Sendable {
        case start, drain
    }
    private let schema: String?

    /// Connects to `url` (`postgres://user[:password]@host[:port]/database[?schema=name]`); with
    /// `schema`, the catalog's tables live in that schema (created if missing). Transactions are
    /// served while `run()` runs the connection pool.
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
    }

    /// Runs the connection pool until the task is cancelled or a graceful shutdown.
    public func run() async {
        let (first, waiting) = activity.withLock { activity in
            defer { activity.started = true }
            return (!activity.started, activity.takeAll(.start))
        }
        for waiter in waiting { waiter.resume() }
        guard first else {
            logger.error("catalog.postgres.run_twice: the store's run() was called again; ignored")
            return
        }
        await client.run()
    }

    /// Runs `body` in one transaction (see `CatalogStore`).
    public func transaction<T: Sendable>(
        _ body: @Sendable (any CatalogTransaction) async throws -> T
    ) async throws -> T {
        // A transaction after `close()` would wait forever for a connection from the stopped pool.
        if !activity.withLock({ $0.started }) {
            // `run()` is usually starting beside this (a child task of the same group).
            let started = await wait(for: .start, within: .seconds(10))
            guard started else {
                throw CatalogStoreError.backend(
                    "the PostgreSQL catalog is not running: run the store in a ServiceGroup or use whileRunning")
            }
        }
        try activity.withLock { activity in
            guard !activity.closed else { throw CatalogStoreError.backend("the catalog is closed") }
            activity.transactions += 1
        }
        defer { transactionEnded() }
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

    private func transactionEnded() {
        let drained = activity.withLock { activity -> [CheckedContinuation<Void, Never>] in
            activity.transactions -= 1
            return activity.transactions == 0 ? activity.takeAll(.drain) : []
        }
        for waiter in drained { waiter.resume() }
    }

    /// Closes the store (see `CatalogStore`): transactions begun from now on fail at once (one that
    /// asked a stopped pool for a connection would wait forever, and with it the server request that
    /// ran it); running ones get up to 10 seconds to finish. The pool stops with `run()`.
    public func close() async {
        activity.withLock { $0.closed = true }
        if !(await wait(for: .drain, within: .seconds(10))) {
            logger.error("catalog.postgres.close_timeout: transactions still ran after 10 s; closing")
        }
    }

    /// Waits until `wait` is ready (true), or `limit` passes or the caller is cancelled (false).
    /// Only this caller's own wait is given up; the others go on.
    private func wait(for wait: Wait, within limit: Duration) async -> Bool {
        let id = activity.withLock { activity -> UInt64 in
            activity.nextWaitID += 1
            return activity.nextWaitID
        }
        let settled = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let now = self.activity.withLock { activity -> Bool in
                        if activity.expired.remove(id) != nil || activity.isReady(wait) { return true }
                        activity.waiters[wait, default: [:]][id] = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
                return true
            }
            group.addTask {
                // Time is up (or the caller was cancelled): give up this wait, if it still waits.
                await CancellableSleep.sleep(for: limit)
                let own = self.activity.withLock { activity -> CheckedContinuation<Void, Never>? in
                    if let own = activity.waiters[wait]?.removeValue(forKey: id) { return own }
                    activity.expired.insert(id)
                    return nil
                }
                own?.resume()
                return own == nil
            }
            var settled = true
            for await outcome in group {
                settled = settled && outcome
                group.cancelAll()
            }
            return settled
        }
        return activity.withLock { activity in
            activity.expired.remove(id)
            return settled && activity.isReady(wait)
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
