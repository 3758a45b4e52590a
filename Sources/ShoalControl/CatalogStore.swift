import Foundation
import ServiceLifecycle
import ShoalMigrations

/// A value bound to or read from catalog SQL. The catalog uses only these: integers (times in
/// milliseconds, counts, 0/1 flags), text and NULL, so both backends store the same things.
public enum CatalogValue: Sendable, Equatable {
    /// A 64-bit integer.
    case integer(Int64)
    /// Text.
    case text(String)
    /// NULL.
    case null
}

/// One row of a catalog query, read by column position.
public struct CatalogRow: Sendable {
    /// The row's values, in the query's column order.
    public let values: [CatalogValue]

    /// A row of `values`.
    public init(values: [CatalogValue]) { self.values = values }

    /// The text at `column`; throws if it is NULL or not text.
    public func text(_ column: Int) throws -> String {
        guard case .text(let value) = values[column] else { throw CatalogStoreError.unexpectedValue(column) }
        return value
    }

    /// The text at `column`, nil if NULL.
    public func optionalText(_ column: Int) throws -> String? {
        if case .null = values[column] { return nil }
        return try text(column)
    }

    /// The integer at `column`; throws if it is NULL or not an integer.
    public func integer(_ column: Int) throws -> Int64 {
        guard case .integer(let value) = values[column] else { throw CatalogStoreError.unexpectedValue(column) }
        return value
    }

    /// The integer at `column`, nil if NULL.
    public func optionalInteger(_ column: Int) throws -> Int64? {
        if case .null = values[column] { return nil }
        return try integer(column)
    }

    /// The 0/1 flag at `column`.
    public func flag(_ column: Int) throws -> Bool { try integer(column) != 0 }
}

/// What a store reports when the catalog's data does not fit the catalog's code.
public enum CatalogStoreError: Error, Sendable, Equatable {
    /// A column held a value of another type than the query expected.
    case unexpectedValue(Int)
    /// A unique constraint refused the change (a duplicate name, id or token).
    case uniqueViolation
    /// The backend failed; the message says how.
    case backend(String)
}

/// The SQL statements a transaction runs. SQL uses `$1`, `$2`, … placeholders and the dialect both
/// backends share; `lockOrganization` covers the one place they differ (row locks).
public protocol CatalogTransaction: Sendable {
    /// Runs `sql` with `binds` and returns its rows.
    @discardableResult
    func query(_ sql: String, _ binds: [CatalogValue]) async throws -> [CatalogRow]

    /// Serializes concurrent transactions that change one organization's counted or ruled things
    /// (groups, their locations and region rules, the organization's rule and plan, API tokens) until
    /// this transaction ends, so quotas and region rules hold under concurrency. Statements after it
    /// see what the transactions it waited for committed.
    func lockOrganization(id: String) async throws
}

/// Where the catalog lives: SQLite (one file, one writer) or PostgreSQL (several control-plane
/// instances). The catalog's logic is written once against this.
///
/// A store is a `Service`: it serves transactions while its `run()` runs (PostgreSQL's connection
/// pool runs there, as postgres-nio asks). Put it first in a `ServiceGroup`, so that it stops last,
/// or use `whileRunning`.
public protocol CatalogStore: Service {
    /// Runs `body` in one transaction: committed if it returns, rolled back if it throws.
    func transaction<T: Sendable>(_ body: @Sendable (any CatalogTransaction) async throws -> T) async throws -> T

    /// Applies the schema versions not yet applied, in order.
    func migrate() async throws

    /// Refuses transactions from now on and waits (a bounded time) for running ones to finish; the
    /// store is unusable afterwards. Its `run()` ends when its task is cancelled or at a graceful
    /// shutdown.
    func close() async
}

extension CatalogStore {
    /// Runs `body` while the store runs (its `run()` in a child task), then closes the store and
    /// stops it.
    public func whileRunning<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run() }
            let result: Result<T, any Error>
            do {
                result = .success(try await body())
            } catch {
                result = .failure(error)
            }
            await close()
            group.cancelAll()
            try? await group.waitForAll()
            return try result.get()
        }
    }
}

extension CatalogTransaction {
    /// Runs `sql` and returns its first row, if any.
    func queryOne(_ sql: String, _ binds: [CatalogValue]) async throws -> CatalogRow? {
        try await query(sql, binds).first
    }
}

extension [CatalogMigration] {
    /// The migrations with a version above `applied`, in order.
    func pending(after applied: Int64) -> [CatalogMigration] {
        filter { Int64($0.version) > applied }.sorted { $0.version < $1.version }
    }
}

/// Splits a migration file into statements at `;` ending a line (the files keep one statement per
/// `;`-terminated block and no `;` inside literals at line ends).
func statements(of sql: String) -> [String] {
    var result: [String] = []
    var current = ""
    for line in sql.split(separator: "\n", omittingEmptySubsequences: false) {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("--") { continue }
        current += line + "\n"
        if trimmed.hasSuffix(";") {
            result.append(current)
            current = ""
        }
    }
    if !current.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { result.append(current) }
    return result
}
