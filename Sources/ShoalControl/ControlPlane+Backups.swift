import Foundation
import Hummingbird
import Logging
import ShoalModel
import ShoalServerKit

extension ControlPlane {
    /// The name a database's backup has in the object store (as its node names it): the node's
    /// namespace and the database's id, so every incarnation has its own.
    static func backupID(of database: Catalog.DatabaseRecord) -> String {
        "\(database.organization.slug).\(database.name).\(database.id)"
    }

    /// `GET …/databases/{db}/backups` and `POST …/databases/{db}/restore`.
    func addBackupRoutes(_ routes: RouterGroup<ServerRequestContext>) {
        routes.get(":db/backups") { _, context in
            let database = try await self.catalog.database(
                organization: try Self.parameter(context, "org"), name: try Self.parameter(context, "db"),
                for: try await self.principal(context))
            guard let node = database.primaryNode else {
                throw ControlError.conflict("database \(database.name) has no primary node yet; nothing is backed up")
            }
            var status = try await self.nodes.backups(database.namespace, on: node)
            status.database = database.name
            return try Self.json(status)
        }
        routes.post(":db/restore") { request, context in
            let principal = try await self.principal(context)
            let body = try await self.decode(Platform.RestoreRequest.self, from: request)
            guard body.source == nil else {
                throw ControlError.badRequest(
                    "a restore in place reads the database's own backup; to copy another database, create a new one with a seed"
                )
            }
            try Self.checkTimestamp(body.timestamp)
            let database = try await self.catalog.database(
                organization: try Self.parameter(context, "org"), name: try Self.parameter(context, "db"),
                for: principal)
            guard let node = database.primaryNode else {
                throw ControlError.conflict("database \(database.name) has no primary node yet; nothing is backed up")
            }
            do {
                var result = try await self.nodes.restore(
                    database.namespace, source: nil, timestamp: body.timestamp, on: node)
                result.database = database.name
                try await self.catalog.recordBackupAction(
                    database, action: "database.restore", by: principal,
                    detail:
                        "restored in place to \(result.restoredTo) (asked: \(body.timestamp ?? "newest")); undo point \(result.undoTimestamp ?? "none")"
                )
                return try Self.json(result)
            } catch {
                try? await self.catalog.recordBackupAction(
                    database, action: "database.restore", by: principal, outcome: "failed", detail: "\(error)")
                throw error
            }
        }
    }

    /// A timestamp the API accepts (RFC 3339), or a 400 saying how to write one.
    static func checkTimestamp(_ text: String?) throws {
        guard let text else { return }
        guard RFC3339.microseconds(text) != nil else {
            throw ControlError.badRequest(
                "timestamp \(text.prefix(64).debugDescription) is not an RFC 3339 time; write it like 2026-12-01T18:00:00Z"
            )
        }
    }

    /// Checks a creation's seed before anything is created: a database of the same organization
    /// the principal may read, in a group whose region rule allows the new one's locations.
    func seedSource(
        _ seed: Platform.DatabaseCreation.Seed, organization: String, group: String, principal: Principal
    ) async throws -> Catalog.DatabaseRecord {
        guard seed.type == "database" else {
            throw ControlError.unprocessable(
                "seed type \((seed.type ?? "none").prefix(20).debugDescription) is not supported; use {\"type\": \"database\", \"name\": SOURCE, \"timestamp\": T}"
            )
        }
        guard let name = seed.name, !name.isEmpty else {
            throw ControlError.badRequest(
                "a database seed names the database to copy: {\"type\": \"database\", \"name\": SOURCE}")
        }
        try Self.checkTimestamp(seed.timestamp)
        let source = try await catalog.database(organization: organization, name: name, for: principal)
        if source.group.name != group, let rule = source.group.regionRule {
            throw ControlError.regionLockViolation(
                "database \(name) is in group \(source.group.name), whose region rule (\(rule.description)) keeps its data there; seed the copy in the same group"
            )
        }
        return source
    }

    /// Fills a database just created (and placed) from `source`'s backup; undoes the creation when
    /// the restore fails.
    func seed(
        _ database: Catalog.DatabaseRecord, from source: Catalog.DatabaseRecord, timestamp: String?,
        principal: Principal
    ) async throws {
        let result = try await fill(database, fromBackup: Self.backupID(of: source), timestamp: timestamp)
        try await catalog.recordBackupAction(
            database, action: "database.seed", by: principal,
            detail: "created from \(source.name) as of \(result.restoredTo) (asked: \(timestamp ?? "newest"))")
    }

    /// Restores a database just created (and placed) from backup `backup`; undoes the creation
    /// when the restore fails.
    private func fill(
        _ database: Catalog.DatabaseRecord, fromBackup backup: String, timestamp: String?
    ) async throws -> Platform.RestoreResult {
        do {
            guard let node = database.primaryNode else {
                throw ControlError.placementFailed("database \(database.name) was placed on no node; try again")
            }
            return try await nodes.restore(database.namespace, source: backup, timestamp: timestamp, on: node)
        } catch {
            if let node = database.primaryNode {
                try? await nodes.delete(database.namespace, databaseID: database.id, on: node)
            }
            try? await catalog.undoCreation(database)
            throw error
        }
    }
}

extension ControlPlane {
    /// `GET /v1/organizations/{org}/deleted-databases` and `POST …/databases/{db}/undelete`.
    func addUndeleteRoutes(
        deleted: RouterGroup<ServerRequestContext>, databases: RouterGroup<ServerRequestContext>
    ) {
        deleted.get("") { _, context in
            let list = try await self.catalog.deletedDatabases(
                organization: try Self.parameter(context, "org"), for: try await self.principal(context))
            return try Self.json(["databases": list.map(\.model)])
        }
        databases.post(":db/undelete") { request, context in
            let principal = try await self.principal(context)
            let organization = try Self.parameter(context, "org")
            let body = try await self.decodeIfPresent(Platform.UndeleteRequest.self, from: request)
            let deleted = try await self.catalog.claimUndeletion(
                organization: organization, name: try Self.parameter(context, "db"), id: body?.id, for: principal)
            let (database, answer) = try await self.undelete(deleted, organization: organization, by: principal)
            return try Self.json(
                Platform.UndeleteResult(
                    database: .init(id: database.id, hostname: self.catalog.hostname(database), name: database.name),
                    restoredTo: answer.restoredTo))
        }
    }

    /// Creates a deleted database's name again in its group (the same group: one deleted and
    /// created again under the name is refused), filled from its backup's newest state. It is a new
    /// incarnation: tokens issued for the deleted one do not open it. `deleted` is claimed
    /// (`Catalog.claimUndeletion`); a failure gives it back, and leaves nothing created.
    func undelete(
        _ deleted: Catalog.DeletedDatabase, organization: String, by principal: Principal
    ) async throws -> (Catalog.DatabaseRecord, Platform.RestoreResult) {
        let result: Platform.RestoreResult
        let database: Catalog.DatabaseRecord
        do {
            (database, _) = try await catalog.createDatabase(
                organization: organization, name: deleted.name, group: deleted.group, ifNotExists: false,
                by: principal)
            guard database.group.id == deleted.groupID else {
                try? await catalog.undoCreation(database)
                throw ControlError.conflict(
                    "group \(deleted.group) was deleted and created again since \(deleted.name) was deleted; its data stays out of the new group (copy it with a seed into a group whose region rule allows it)"
                )
            }
            guard let node = database.primaryNode else {
                try? await catalog.undoCreation(database)
                throw ControlError.placementFailed("database \(database.name) was placed on no node; try again")
            }
            do {
                try await nodes.create(database.namespace, settings: try await settings(for: database), on: node)
            } catch {
                try? await catalog.undoCreation(database)
                throw error
            }
            result = try await fill(database, fromBackup: deleted.backupID, timestamp: nil)
        } catch {
            try? await catalog.releaseUndeletion(deleted)
            throw error
        }
        // Restored: the database stays, whatever the record below meets.
        do {
            try await catalog.recordUndeletion(deleted, as: database, restoredTo: result.restoredTo, by: principal)
        } catch {
            logger.warning(
                "database.undelete.record_failed",
                metadata: ["db.namespace": "\(database.namespace)", "error": "\(error)"])
        }
        return (database, result)
    }

    /// Erases the backups of databases deleted longer ago than the grace period, every `interval`
    /// until cancelled (a loop of its own: an erasure may take long, deletions and settings pushes
    /// do not wait for it).
    public func runErasures(every interval: Duration = .seconds(10)) async {
        while !Task.isCancelled {
            await eraseDueBackups()
            try? await Task.sleep(for: interval)
        }
    }

    /// One pass over the deleted databases whose grace period has ended: asks a node to erase each
    /// one's backups (at most `limit`); returns how many were erased. What fails is tried again
    /// later, waiting longer each time.
    @discardableResult
    public func eraseDueBackups(limit: Int = 10) async -> Int {
        let due: [Catalog.PendingErasure]
        do {
            due = try await catalog.claimDueErasures(limit: limit)
        } catch {
            logger.warning("backup.erase.catalog_failed", metadata: ["error": "\(error)"])
            return 0
        }
        var erased = 0
        for erasure in due {
            guard !Task.isCancelled else { break }
            let metadata: Logger.Metadata = [
                "backup": "\(erasure.deleted.backupID)", "node.url": "\(erasure.node.url)",
            ]
            do {
                let answer = try await nodes.eraseBackup(erasure.deleted.backupID, on: erasure.node)
                try await catalog.completeErasure(erasure, objects: answer.objects)
                erased += 1
                logger.info("backup.erased", metadata: metadata.merging(["objects": "\(answer.objects)"]) { $1 })
            } catch {
                try? await catalog.postponeErasure(erasure, error: "\(error)")
                logger.warning("backup.erase.failed", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            }
        }
        return erased
    }
}

extension Catalog {
    /// Records a restore or a seed in the database's organization's audit log.
    func recordBackupAction(
        _ database: DatabaseRecord, action: String, by principal: Principal, outcome: String = "ok", detail: String
    ) async throws {
        try await store.transaction { transaction in
            try await self.audit(
                transaction, organization: database.organization.id, actor: principal, action: action,
                target: database.namespace, outcome: outcome, detail: detail)
        }
    }
}
