import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import ShoalModel
import ShoalSQLite
import ShoalServerKit

extension ControlPlane {
    /// `v1/nodes`: the list (admin), registration, heartbeats and placement lookups, the node
    /// registration token and credential rotation (admin). Heartbeats and placement lookups take
    /// only the node's own credential, never an API token (see `Catalog+Nodes.swift`).
    func addNodeRoutes(_ routes: RouterGroup<ServerRequestContext>) {
        routes.get("") { request, context in
            guard try await self.principal(context).isAdmin else {
                throw ControlError.forbidden("only an admin token can list nodes")
            }
            return try Self.json(["nodes": try await self.catalog.nodes()])
        }
        routes.post("") { request, context in
            let caller = try await self.nodeCaller(context)
            let registration = try await self.decode(Platform.NodeRegistration.self, from: request)
            let (node, credential) = try await self.catalog.registerNode(registration, by: caller)
            return try Self.json(
                Platform.NodeRegistrationAnswer(
                    node: node, heartbeatSeconds: max(1, self.heartbeatInterval.components.seconds),
                    policy: try await self.catalog.tokenPolicy(), credential: credential))
        }
        // A node that lost its disk: every primary placed on it is placed again now, which
        // rebuilds each from its backup (the node does, on placement). A page at a time.
        routes.post(":id/recover") { request, context in
            let principal = try await self.principal(context)
            guard principal.isAdmin else { throw ControlError.forbidden("only an admin token can recover a node") }
            let id = try Self.parameter(context, "id")
            guard let node = try await self.catalog.node(id: id) else {
                throw ControlError.notFound("node \(id.prefix(40)) is not registered")
            }
            let limit = try Self.limit(request, default: 20)
            guard limit <= 100 else {
                throw ControlError.badRequest("limit must be a number from 1 to 100: each database may be rebuilt")
            }
            let cursor: String? = request.uri.queryParameters.get("cursor")
            let (ids, next) = try await self.catalog.primaryDatabaseIDs(node: node.id, after: cursor, limit: limit)
            struct Failure: Encodable {
                let database: String
                let error: String
            }
            struct Answer: Encodable {
                let placed: Int
                let failed: [Failure]
                let nextCursor: String?

                enum CodingKeys: String, CodingKey {
                    case placed, failed
                    case nextCursor = "next_cursor"
                }
            }
            var placed = 0
            var failed: [Failure] = []
            for databaseID in ids {
                guard let database = try await self.catalog.settingsPushDatabase(id: databaseID),
                    database.primaryNode?.id == node.id
                else { continue }
                do {
                    try await self.nodes.create(
                        database.namespace, settings: try await self.settings(for: database), on: node)
                    placed += 1
                } catch {
                    failed.append(Failure(database: database.namespace, error: "\(error)"))
                }
            }
            try await self.catalog.recordNodeRecovery(
                node: node, placed: placed, failed: failed.count, by: principal)
            return try Self.json(Answer(placed: placed, failed: failed, nextCursor: next))
        }
        routes.post("registration-token") { request, context in
            let principal = try await self.principal(context)
            let secret = try await self.catalog.replaceNodeRegistrationToken(by: principal)
            return try Self.json(["registration_token": secret])
        }
        routes.get(":id/databases/:org/:db") { request, context in
            let id = try Self.parameter(context, "id")
            try await self.requireCredential(of: id, context)
            let database = try await self.catalog.placementDatabase(
                organization: try Self.parameter(context, "org"), name: try Self.parameter(context, "db"))
            if database.primaryNode?.id == id {
                return try Self.json(try await self.settings(for: database))
            }
            // A node in one of the group's replica locations keeps a replica that follows the primary.
            guard let node = try await self.catalog.node(id: id), let primary = database.primaryNode,
                node.location != database.group.primary, database.group.locations.contains(node.location)
            else {
                throw ControlError.notFound("that database is not placed on this node")
            }
            var settings = try await self.settings(for: database)
            if let allowed = settings.allowedLocations, !allowed.contains(node.location) {
                throw ControlError.notFound("the database's region rule keeps it out of \(node.location)")
            }
            settings.primaryURL = "\(primary.url)/db/\(database.organization.slug)/\(database.name)"
            settings.syncToken = try await self.catalog.replicaSyncToken(for: database, location: node.location)
            return try Self.json(settings)
        }
        // A group's tenant schema and its released version, for a node bringing a database up to date
        // when it opens (the whole list, so a database ahead of the release still checks out).
        routes.get(":id/groups/:group/schema") { request, context in
            let id = try Self.parameter(context, "id")
            try await self.requireCredential(of: id, context)
            let (version, migrations) = try await self.catalog.migrations(
                ofGroup: try Self.parameter(context, "group"), node: id)
            struct Answer: Encodable {
                let schemaVersion: Int64
                let migrations: [TenantMigration]
                enum CodingKeys: String, CodingKey {
                    case migrations
                    case schemaVersion = "schema_version"
                }
            }
            return try Self.json(
                Answer(schemaVersion: version, migrations: migrations))
        }
        routes.post(":id/heartbeat") { request, context in
            let id = try Self.parameter(context, "id")
            try await self.requireCredential(of: id, context)
            // The policy goes only to a node that does not hold its current version (older nodes
            // send no body and always get it).
            let heartbeat = try await self.decodeIfPresent(Platform.HeartbeatRequest.self, from: request)
            let exceeded = try await self.catalog.heartbeat(
                node: id, storage: heartbeat?.storage ?? [], schemaVersions: heartbeat?.schemaVersions ?? [])
            let policy = try await self.catalog.tokenPolicy()
            let version = try Self.version(of: policy)
            return try Self.json(
                Platform.HeartbeatAnswer(
                    policy: heartbeat?.policyVersion == version ? nil : policy, policyVersion: version,
                    storageExceeded: exceeded))
        }
        routes.post(":id/credential/rotate") { request, context in
            let principal = try await self.principal(context)
            try await self.catalog.rotateNodeCredential(node: try Self.parameter(context, "id"), by: principal)
            return try Self.json(["rotated": true])
        }
    }

    /// A token policy's version: the hex SHA-256 of its canonical JSON.
    static func version(of policy: Platform.TokenPolicy) throws -> String {
        SHA256.hash(data: try WireJSON.encoder([.sortedKeys]).encode(policy)).map { String(format: "%02x", $0) }
            .joined()
    }

    /// Refuses a heartbeat or placement lookup that does not carry node `id`'s own credential: 401
    /// for a secret the control plane does not know, 403 for one it knows (another node's
    /// credential, the registration token, any API token, the admin token too).
    func requireCredential(of id: String, _ context: ServerRequestContext) async throws {
        switch try await nodeCaller(context) {
        case .node(let own) where own == id:
            return
        case .node:
            throw ControlError.forbidden(
                "this is another node's credential; a node heartbeats and asks for placements with its own")
        case .registration:
            throw ControlError.forbidden(
                "the node registration token only registers nodes; heartbeats and placement lookups take the "
                    + "credential the registration answered")
        case .apiToken:
            throw ControlError.forbidden(
                "heartbeats and placement lookups take the node's own credential (issued when it registers), "
                    + "not an API token")
        }
    }

    /// Who sends a request to a node route: a node (its credential), the registration token, or an
    /// API token.
    func nodeCaller(_ context: ServerRequestContext) async throws -> Catalog.NodeCaller {
        let secret: String
        switch context.presented {
        case .missing:
            throw ControlError.unauthorized(
                "send Authorization: Bearer <secret>: the node's own credential, or the node registration token to register"
            )
        case .malformed: throw ControlError.unauthorized("the Authorization header must be Bearer <secret>")
        case .token(let token): secret = token
        }
        if let caller = try await catalog.nodeCaller(secret: secret) { return caller }
        do {
            return .apiToken(try await principal(context))
        } catch let error as ControlError where error.code == .unauthorized {
            throw ControlError.unauthorized(
                "the credential is not valid (a node's credential is void once rotated); a node registers again "
                    + "with the node registration token")
        }
    }
}
