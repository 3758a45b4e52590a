import Foundation
import Hummingbird
import ShoalModel
import ShoalReplication
import ShoalServerKit

extension Node {
    /// Creating and deleting databases (for the control plane, and standalone use).
    func addAdminRoutes(_ routes: RouterGroup<ServerRequestContext>) {
        routes.post("create") { request, context in
            try self.authorizeAdmin(context)
            let namespace = try Self.adminNamespace(context)
            // The body, when there is one, holds the new database's settings.
            let buffer = try await request.body.collect(upTo: self.configuration.maxRequestBytes)
            var settings: DatabaseSettings?
            if buffer.readableBytes > 0 {
                do {
                    settings = try JSONDecoder().decode(DatabaseSettings.self, from: Data(buffer.readableBytesView))
                } catch {
                    throw NodeError.badRequest("the settings are not valid: \(Self.describe(error))")
                }
            }
            try await self.store.create(namespace, settings: settings)
            return try Self.json(["created": namespace.description])
        }
        // Deletes at once, even while streams are open; `?database_id=` names the incarnation. A
        // database not held here answers 200 too (`removed` false), so retries converge.
        routes.delete("") { request, context in
            try self.authorizeAdmin(context)
            let namespace = try Self.adminNamespace(context)
            let databaseID = request.uri.queryParameters.get("database_id")
            let removed = try await self.delete(namespace, databaseID: databaseID)
            struct Deleted: Encodable {
                let deleted: String
                let removed: Bool
            }
            return try Self.json(Deleted(deleted: namespace.description, removed: removed))
        }
    }

    /// The token policy pushed by the control plane.
    func addPolicyRoute(_ router: RouterGroup<ServerRequestContext>) {
        router.post("v1/auth/policy") { request, context in
            try self.authorizeAdmin(context)
            guard case .tokens(let verifier, _) = self.configuration.authentication else {
                throw NodeError.conflict("this node runs without authentication; it has no token policy")
            }
            let policy = try await self.decode(Platform.TokenPolicy.self, from: request)
            try verifier.update(with: policy)
            return try Self.json(["keys": verifier.keyCount])
        }
    }

    func addAdminDatabaseRoutes(_ routes: RouterGroup<ServerRequestContext>) {
        routes.post("config") { request, context in
            try self.authorizeAdmin(context)
            let namespace = try Self.adminNamespace(context)
            let settings = try await self.decode(DatabaseSettings.self, from: request)
            return try await self.store.withDatabase(namespace) { database in
                try await BlockingWork.run { try database.update(settings) }
                return try Self.json(settings)
            }
        }
        routes.get("stats") { request, context in
            try self.authorizeAdmin(context)
            let namespace = try Self.adminNamespace(context)
            return try await self.store.withDatabase(namespace) { database in
                var settings = database.settings
                settings.syncToken = nil
                if let copy = database.replica {
                    let position = copy.position
                    return try Self.json(
                        DatabaseStats(
                            database: namespace.description, role: "replica", generation: position?.generation ?? 0,
                            frame: position?.frame ?? 0, baseSizeBytes: nil, walBytes: nil, settings: settings,
                            replica: copy.status))
                }
                let log = try database.log
                let position = log.position
                let size = try await BlockingWork.run { () -> Int64 in
                    let attributes = try FileManager.default.attributesOfItem(atPath: log.databasePath)
                    return (attributes[.size] as? Int64) ?? 0
                }
                return try Self.json(
                    DatabaseStats(
                        database: namespace.description, role: "primary", generation: position.generation,
                        frame: position.frame, baseSizeBytes: size,
                        walBytes: position.frame == 0 ? 0 : WALFormat.offset(ofFrame: position.frame + 1),
                        settings: settings, replica: nil))
            }
        }
        routes.post("checkpoint") { request, context in
            try self.authorizeAdmin(context)
            let namespace = try Self.adminNamespace(context)
            return try await self.store.withDatabase(namespace) { database in
                let log = try database.log
                let rolled = try await BlockingWork.run { try log.rollGeneration() }
                return try Self.json(["rolled": rolled])
            }
        }
    }

    /// What `GET …/stats` reports.
    struct DatabaseStats: Encodable {
        let database: String
        let role: String
        let generation: UInt64
        let frame: UInt64
        let baseSizeBytes: Int64?
        let walBytes: Int64?
        let settings: DatabaseSettings
        let replica: ReplicaCopy.Status?

        enum CodingKeys: String, CodingKey {
            case database, role, generation, frame, settings, replica
            case baseSizeBytes = "base_size_bytes"
            case walBytes = "wal_bytes"
        }
    }

    static func adminNamespace(_ context: ServerRequestContext) throws -> Namespace {
        try Namespace(
            organization: context.parameters.get("org") ?? "", database: context.parameters.get("database") ?? "")
    }
}
