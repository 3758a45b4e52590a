import Foundation
import Hummingbird
import Logging
import ShoalModel
import ShoalSQLite
import ShoalServerKit
import ShoalTime
import Synchronization

extension HostedDatabase {
    /// How long a migration waits for the database's write turn (a transaction another stream holds
    /// open) and how long its statements may run.
    static let migrationTimeLimit: Duration = .seconds(60)

    /// Applies the migrations of `migrations` (a group's list from version 1) this primary has not
    /// recorded, up to `target`, each in its own transaction, under the database's write turn and the
    /// log's write permit: its writers wait only for the migration's transaction, never for other
    /// databases. Runs on the database's lane, on a sandboxed connection (the migration is tenant
    /// SQL). Returns what it did and the schema afterwards.
    func migrate(
        _ migrations: [TenantMigration], upTo target: Int64? = nil, timeLimit: Duration = migrationTimeLimit
    ) async throws -> (outcome: TenantMigrator.Outcome, schema: [SchemaEntry]) {
        let log = try log
        // A migration writes: not to a database whose writes are blocked, or whose organization is
        // over its storage quota.
        if settings.blockWrites {
            throw NodeError.conflict("writes to database \(namespace) are blocked by its operator; no migration ran")
        }
        if let exceeded = storage.exceeded(namespace.organization) {
            throw NodeError.conflict("\(exceeded.refusal); no migration ran")
        }
        let owner = WriterQueue.Owner()
        let deadline = ContinuousClock.now.advanced(by: timeLimit)
        guard await writers.acquire(owner, until: deadline) else {
            throw NodeError.unavailable(
                "database \(namespace) kept its write turn (an open transaction) for \(Self.migrationTimeLimit); "
                    + "the migration was not started, try again", retryAfter: 1)
        }
        defer { writers.release(owner) }
        return try await lane.run {
            let (connection, sandbox) = try self.makeSandboxedConnection()
            defer { try? connection.close() }
            try connection.setDeadline(deadline)
            let now = Int64((Date().timeIntervalSince1970 * 1000).rounded())
            return try log.withWritePermit {
                let outcome = try TenantMigrator.apply(
                    migrations, upTo: target, on: connection, now: now, bookkeeping: { try sandbox.trusted($0) })
                let schema = try sandbox.trusted { try TenantMigrator.schema(of: connection) }
                return (outcome, schema)
            }
        }
    }
}

extension Node {
    /// `POST /v1/namespaces/{org}/{database}/migrate` (admin): applies what a database lacks of its
    /// group's migrations. 200 with the version, the migrations applied and the schema; 422 when
    /// one fails (those before it stay applied) or the database's record disagrees with the list.
    func addMigrationRoute(_ routes: RouterGroup<ServerRequestContext>) {
        routes.post("migrate") { request, context in
            try self.authorizeAdmin(context)
            let namespace = try Self.adminNamespace(context)
            struct Body: Decodable {
                let migrations: [TenantMigration]
                let targetVersion: Int64?
                enum CodingKeys: String, CodingKey {
                    case migrations
                    case targetVersion = "target_version"
                }
            }
            let body = try await self.decode(Body.self, from: request)
            guard body.migrations.count <= 1000 else {
                throw NodeError.badRequest("at most 1000 migrations are applied in one request")
            }
            struct Answer: Encodable {
                let version: Int64?
                let applied: [String]?
                let schema: [SchemaEntry]?
                let error: String?
            }
            return try await self.store.withDatabase(namespace) { database in
                do {
                    let (outcome, schema) = try await database.migrate(body.migrations, upTo: body.targetVersion)
                    return try Self.json(
                        Answer(version: outcome.version, applied: outcome.applied, schema: schema, error: nil))
                } catch let failure as TenantMigrator.Failure {
                    // The version it stays at, when known: a mismatch leaves it unknown.
                    var version: Int64?
                    if case .failed(let failed, _, _) = failure { version = failed - 1 }
                    var message = "\(failure)"
                    if case .failed(let failed, let name, let error) = failure {
                        let code = HranaExecutor.failure(error).code
                        message = "migration \(failed) (\(name)) failed with \(code): \(error.message)"
                    }
                    return try Self.json(
                        Answer(version: version, applied: nil, schema: nil, error: message),
                        status: .unprocessableContent)
                }
            }
        }
    }
}

/// A group's released tenant schema as the control plane gives it: the version its databases are
/// brought to when they open, and the migrations up to it.
public struct GroupSchema: Sendable, Decodable {
    /// The released version.
    public let schemaVersion: Int64
    /// The migrations from version 1 to it.
    public let migrations: [TenantMigration]

    enum CodingKeys: String, CodingKey {
        case migrations
        case schemaVersion = "schema_version"
    }
}

/// Where a primary opening learns its group's schema (the control plane, through the link), with
/// each group's answer kept for `lifetime` (shorter than the control plane waits after a release
/// before it calls a rollout done). A question that fails or times out uses the last answer, or
/// none: a database is never kept closed because the control plane is away.
final class GroupSchemaLookup: Sendable {
    /// Asks for a group's schema by the group's id.
    typealias Source = @Sendable (String) async throws -> GroupSchema
    /// How long an answer is used without asking again.
    static let lifetime: Duration = .seconds(4)
    /// How long an open waits for the control plane's answer.
    static let questionTimeout: Duration = .seconds(2)

    private let current = Mutex<Source?>(nil)
    /// Each group's last answer (nil: none yet) and when it was asked for.
    private let answers = Mutex<[String: (at: ContinuousClock.Instant, schema: GroupSchema?)]>([:])

    /// Migrations on opening that failed lately (`namespace#version`), with when they may be tried again.
    private let failures = Mutex<[String: ContinuousClock.Instant]>([:])
    /// How long a migration that failed on opening is not tried again there.
    static let failureBackoff: Duration = .seconds(300)

    func set(_ source: Source?) { current.withLock { $0 = source } }

    func failed(_ attempt: String) {
        failures.withLock { failures in
            let now = ContinuousClock.now
            if failures.count > 10_000 { failures = failures.filter { $0.value > now } }
            failures[attempt] = now.advanced(by: Self.failureBackoff)
        }
    }

    func failedLately(_ attempt: String) -> Bool {
        failures.withLock { ($0[attempt] ?? .now) > .now }
    }

    /// The group's schema: a fresh answer, else the control plane's, else the last one (nil when
    /// there is no source or it never answered). A question that failed is not asked again for
    /// `lifetime`, so while the control plane is away opens wait for it once per group, not each.
    func schema(ofGroup id: String) async -> GroupSchema? {
        let now = ContinuousClock.now
        let known = answers.withLock { $0[id] }
        if let known, now - known.at < Self.lifetime { return known.schema }
        guard let source = current.withLock({ $0 }) else { return known?.schema }
        let asked = try? await withDeadline(Self.questionTimeout) { try? await source(id) }
        let answer = (asked ?? nil) ?? known?.schema
        answers.withLock { $0[id] = (now, answer) }
        return answer
    }
}

extension DatabaseStore {
    /// Brings a primary that just opened up to its group's released schema before its first
    /// statement. A failure is logged and the database serves as it is (at its last version).
    static func bringUpToDate(
        _ database: HostedDatabase, schemas: GroupSchemaLookup, reports: SchemaReports, logger: Logger
    ) async {
        guard case .primary = database.role, let groupID = database.settings.groupID,
            let schema = await schemas.schema(ofGroup: groupID), schema.schemaVersion > 0
        else { return }
        // A migration that failed here is not tried at every open: the rollout's retry, or the next
        // release, tries again.
        let attempt = "\(database.namespace)#\(schema.schemaVersion)"
        guard !schemas.failedLately(attempt) else { return }
        do {
            let (outcome, _) = try await database.migrate(
                schema.migrations, upTo: schema.schemaVersion,
                timeLimit: database.configuration.statementTimeLimit)
            if !outcome.applied.isEmpty {
                if let id = database.settings.databaseID { reports.record(databaseID: id, version: outcome.version) }
                logger.info(
                    "database.migrated_on_open",
                    metadata: [
                        "db.namespace": "\(database.namespace)", "schema.version": "\(outcome.version)",
                        "schema.applied": "\(outcome.applied.joined(separator: ","))",
                    ])
            }
        } catch {
            schemas.failed(attempt)
            logger.warning(
                "database.migrate_on_open.failed",
                metadata: ["db.namespace": "\(database.namespace)", "error": "\(error)"])
        }
    }
}

/// Versions primaries reached on opening, for the control plane's catalog (sent with heartbeats).
final class SchemaReports: Sendable {
    private let pending = Mutex<[String: Int64]>([:])

    func record(databaseID: String, version: Int64) {
        pending.withLock { $0[databaseID] = max($0[databaseID] ?? 0, version) }
    }

    /// Up to `limit` reports not confirmed yet.
    func due(limit: Int = Platform.HeartbeatRequest.maxStorageReports) -> [Platform.SchemaVersionReport] {
        pending.withLock { pending in
            pending.sorted { $0.key < $1.key }.prefix(limit).map {
                Platform.SchemaVersionReport(databaseID: $0.key, schemaVersion: $0.value)
            }
        }
    }

    /// The control plane took these: forget them unless a later version came meanwhile.
    func confirm(_ sent: [Platform.SchemaVersionReport]) {
        pending.withLock { pending in
            for report in sent where pending[report.databaseID] == report.schemaVersion {
                pending[report.databaseID] = nil
            }
        }
    }
}
