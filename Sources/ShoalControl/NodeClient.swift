import Foundation
import ShoalHTTP
import ShoalModel
import ShoalSQLite

/// Calls a node's admin API: create or delete a database, push its settings or the token policy.
struct NodeClient: Sendable {
    let timeout: Duration
    /// How long a migration request may take: its statements may build indexes over large tables.
    let migrationTimeout: Duration

    /// How long a restore may take: it reads the whole database from the backup store.
    let restoreTimeout: Duration

    init(
        timeout: Duration = .seconds(10), migrationTimeout: Duration = .seconds(120),
        restoreTimeout: Duration = .seconds(600)
    ) {
        self.timeout = timeout
        self.migrationTimeout = migrationTimeout
        self.restoreTimeout = restoreTimeout
    }

    /// Creates a database on its node with its settings (an existing one is updated instead).
    func create(_ namespace: String, settings: DatabaseSettings, on node: Catalog.NodeRecord) async throws {
        let body = try WireJSON.encoder().encode(settings)
        let status = try await send("POST", "/v1/namespaces/\(namespace)/create", body: body, to: node)
        if status == 409 {
            _ = try await require(
                send("POST", "/v1/namespaces/\(namespace)/config", body: body, to: node), namespace, node)
            return
        }
        try require(status, namespace, node)
    }

    /// Pushes new settings of a database to its node (a node that has not seen the database yet
    /// asks for them on its first request, so 404 is fine).
    func configure(_ namespace: String, settings: DatabaseSettings, on node: Catalog.NodeRecord) async throws {
        let status = try await send(
            "POST", "/v1/namespaces/\(namespace)/config", body: try WireJSON.encoder().encode(settings), to: node)
        if status == 404 { return }
        try require(status, namespace, node)
    }

    /// Deletes one incarnation of a database (`databaseID`) from a node; returns once the node
    /// confirms it is gone there (a node that no longer has it, or holds another incarnation, counts
    /// as done). A node still finishing answers 503, which throws: the deletion is retried.
    func delete(_ namespace: String, databaseID: String, on node: Catalog.NodeRecord) async throws {
        let status = try await send(
            "DELETE", "/v1/namespaces/\(namespace)?database_id=\(databaseID)", body: nil, to: node)
        if status == 404 { return }
        try require(status, namespace, node)
    }

    /// Restores a database on its primary's node from backup `source` (its own: nil) as of
    /// `timestamp`; the node's answer, or its refusal passed on with its status and message.
    func restore(
        _ namespace: String, source: String?, timestamp: String?, on node: Catalog.NodeRecord
    ) async throws -> Platform.RestoreResult {
        let body = try WireJSON.encoder().encode(Platform.RestoreRequest(timestamp: timestamp, source: source))
        let answer = try await call(
            "POST", "/v1/namespaces/\(namespace)/restore", body: body, to: node, timeout: restoreTimeout)
        return try JSONDecoder().decode(Platform.RestoreResult.self, from: answer.body)
    }

    /// What can be restored of a database, from its primary's node.
    func backups(_ namespace: String, on node: Catalog.NodeRecord) async throws -> Platform.BackupStatus {
        let answer = try await call("GET", "/v1/namespaces/\(namespace)/backups", body: nil, to: node, timeout: timeout)
        return try JSONDecoder().decode(Platform.BackupStatus.self, from: answer.body)
    }

    /// Erases backup `backup` (a deleted database's) from the store the node ships to.
    func eraseBackup(_ backup: String, on node: Catalog.NodeRecord) async throws -> Platform.BackupErasure {
        let answer = try await call("DELETE", "/v1/backups/\(backup)", body: nil, to: node, timeout: restoreTimeout)
        return try JSONDecoder().decode(Platform.BackupErasure.self, from: answer.body)
    }

    /// A call whose answer body matters: a node's refusal (4xx) is passed on as the same kind of
    /// error with the node's message; anything else that fails is a placement failure.
    private func call(
        _ method: String, _ path: String, body: Data?, to node: Catalog.NodeRecord, timeout: Duration
    ) async throws -> HTTPAnswer {
        guard let url = URL(string: node.url + path) else {
            throw ControlError.placementFailed("node URL \(node.url) is not valid")
        }
        let answer: HTTPAnswer
        do {
            answer = try await OutboundHTTP.send(
                HTTPCall(method, url, bearer: node.adminToken, body: body, timeout: timeout))
        } catch let error as HTTPCallError {
            throw ControlError.placementFailed("node \(node.url) (\(node.location)) cannot be reached: \(error)")
        }
        if answer.isSuccess { return answer }
        struct Refusal: Decodable { let error: String? }
        let message =
            (try? JSONDecoder().decode(Refusal.self, from: answer.body))?.error
            ?? String(decoding: answer.body.prefix(500), as: UTF8.self)
        switch answer.status {
        case 400: throw ControlError.badRequest(message)
        case 404: throw ControlError.notFound(message)
        case 409: throw ControlError.conflict(message)
        default:
            throw ControlError.placementFailed(
                "node \(node.url) (\(node.location)) answered \(answer.status): \(message)")
        }
    }

    /// Pushes the token policy to a node.
    func push(_ policy: Platform.TokenPolicy, to node: Catalog.NodeRecord) async throws {
        try require(
            try await send("POST", "/v1/auth/policy", body: try WireJSON.encoder().encode(policy), to: node), "policy",
            node)
    }

    /// What a node made of a migration request.
    enum MigrationResult: Sendable {
        /// The database is at `version` now, with `schema`.
        case migrated(version: Int64, schema: [SchemaEntry])
        /// A migration failed (or the node could not be asked): the database stays at `version`
        /// when known.
        case failed(version: Int64?, message: String)
        /// The node no longer has the database.
        case gone
    }

    /// The node's answer to `POST …/migrate`.
    struct MigrationAnswer: Codable, Sendable {
        let version: Int64?
        let applied: [String]?
        let schema: [SchemaEntry]?
        let error: String?
    }

    /// Applies the migrations a database lacks of `migrations` (the group's list from version 1) on
    /// its primary's node, under the database's write turn.
    func migrate(
        _ namespace: String, migrations: [TenantMigration], upTo target: Int64, on node: Catalog.NodeRecord
    ) async -> MigrationResult {
        struct Body: Encodable {
            let migrations: [TenantMigration]
            let targetVersion: Int64
            enum CodingKeys: String, CodingKey {
                case migrations
                case targetVersion = "target_version"
            }
        }
        guard let url = URL(string: node.url + "/v1/namespaces/\(namespace)/migrate"),
            let body = try? WireJSON.encoder().encode(Body(migrations: migrations, targetVersion: target))
        else { return .failed(version: nil, message: "node URL \(node.url) is not valid") }
        let answer: HTTPAnswer
        do {
            answer = try await OutboundHTTP.send(
                HTTPCall("POST", url, bearer: node.adminToken, body: body, timeout: migrationTimeout))
        } catch {
            return .failed(
                version: nil,
                message: "node \(node.url) (\(node.location)) cannot be reached: \(error); retry once it is up")
        }
        let decoded = try? JSONDecoder().decode(MigrationAnswer.self, from: answer.body)
        switch answer.status {
        case 200:
            guard let decoded, let version = decoded.version else {
                return .failed(version: nil, message: "node \(node.url) answered no valid JSON")
            }
            return .migrated(version: version, schema: decoded.schema ?? [])
        case 410:
            return .gone
        default:
            let text = decoded?.error ?? String(decoding: answer.body.prefix(500), as: UTF8.self)
            return .failed(version: decoded?.version, message: text.isEmpty ? "node answered \(answer.status)" : text)
        }
    }

    @discardableResult
    private func require(_ status: Int, _ what: String, _ node: Catalog.NodeRecord) throws -> Int {
        guard (200..<300).contains(status) else {
            throw ControlError.placementFailed(
                "node \(node.url) (\(node.location)) answered \(status) for \(what); check the node's log and its admin token"
            )
        }
        return status
    }

    private func send(_ method: String, _ path: String, body: Data?, to node: Catalog.NodeRecord) async throws -> Int {
        guard let url = URL(string: node.url + path) else {
            throw ControlError.placementFailed("node URL \(node.url) is not valid")
        }
        do {
            return try await OutboundHTTP.send(
                HTTPCall(method, url, bearer: node.adminToken, body: body, timeout: timeout)
            ).status
        } catch let error as HTTPCallError {
            throw ControlError.placementFailed("node \(node.url) (\(node.location)) cannot be reached: \(error)")
        }
    }
}
