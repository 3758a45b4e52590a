import Foundation
import Hummingbird
import ShoalBackup
import ShoalModel
import ShoalReplication
import ShoalServerKit

extension Node {
    /// What can be restored of a database, and restores (in place, or a new database from
    /// another's backup). Admin token only: the control plane calls these for its users.
    func addBackupRoutes(_ routes: RouterGroup<ServerRequestContext>) {
        routes.get("backups") { _, context in
            try self.authorizeAdmin(context)
            let namespace = try Self.adminNamespace(context)
            return try Self.json(try await self.backupStatus(namespace))
        }
        routes.post("restore") { request, context in
            try self.authorizeAdmin(context)
            let namespace = try Self.adminNamespace(context)
            let body = try await self.decode(Platform.RestoreRequest.self, from: request)
            var time: Int64?
            if let text = body.timestamp {
                guard let parsed = RFC3339.microseconds(text) else {
                    throw NodeError.badRequest(
                        "timestamp \(text.prefix(64).debugDescription) is not an RFC 3339 time; write it like 2026-12-01T18:00:00Z"
                    )
                }
                time = parsed
            }
            return try Self.json(try await self.restore(namespace, from: body.source, at: time))
        }
    }

    /// `DELETE /v1/backups/{backup}`: erases a deleted database's backup (admin token only; the
    /// control plane sends it once the grace period after the delete has passed).
    func addBackupErasureRoute(_ routes: RouterGroup<ServerRequestContext>) {
        routes.delete(":backup") { _, context in
            try self.authorizeAdmin(context)
            return try Self.json(try await self.eraseBackup(context.parameters.get("backup") ?? ""))
        }
    }

    /// Removes every object of backup `id` (`org.database.id`, an incarnation's own) from the
    /// store; refused while this node still holds that incarnation. Erasing what is gone already
    /// removes nothing (0 objects), so a retry converges.
    public func eraseBackup(_ id: String) async throws -> Platform.BackupErasure {
        let (objects, shipper) = try backupStoreInUse()
        guard BackupKey.isValid(id: id), let (namespace, databaseID) = Namespace.parseBackupID(id), databaseID != nil
        else {
            throw NodeError.badRequest(
                "\(id.prefix(200).debugDescription) does not name a database's backup; write it as org.database.id")
        }
        if store.deleted.isDeleting(namespace) {
            throw NodeError.conflict(
                "database \(namespace) is being deleted on this node; erase its backup once that is done")
        }
        if store.exists(namespace), await store.currentSettings(namespace).databaseID == databaseID {
            throw NodeError.conflict(
                "database \(namespace) (id \(databaseID ?? "")) is still held on this node; delete it before erasing its backup"
            )
        }
        // No shipment of it runs meanwhile. Snapshots go first: a restore racing the erasure then
        // fails, rather than finding an older state.
        return try await shipper.exclusively(id) {
            shipper.forget(id)
            do {
                let listed = try await objects.list(prefix: BackupKey.prefix(id))
                let snapshots = BackupKey.prefix(id) + "snap/"
                let keys = listed.filter { $0.hasPrefix(snapshots) } + listed.filter { !$0.hasPrefix(snapshots) }
                var index = 0
                while index < keys.count {
                    let batch = Array(keys[index..<min(index + 1000, keys.count)])
                    try await objects.delete(batch)
                    index += batch.count
                }
                logger.notice("backup.erased", metadata: ["backup": "\(id)", "objects": "\(keys.count)"])
                return Platform.BackupErasure(backup: id, objects: keys.count)
            } catch {
                throw NodeError.unavailable(
                    "the backup store \(objects.location) did not erase backup \(id) (\(error)); send the erase again")
            }
        }
    }

    /// Ships what database `namespace` committed last before it is deleted, so that an undelete
    /// gets its final state; bounded by `deletionDrainTimeout`, and a store that does not answer
    /// only costs that wait (the deletion goes on).
    func shipBeforeDeletion(_ namespace: Namespace, databaseID: String?) async {
        guard let shipper = store.backups, store.exists(namespace) else { return }
        let settings = await store.currentSettings(namespace)
        guard settings.primaryURL == nil, databaseID == nil || settings.databaseID == databaseID else { return }
        let id = namespace.backupID(databaseID: settings.databaseID)
        guard shipper.pendingSince(id) != nil else { return }
        let limit = configuration.deletionDrainTimeout
        await withTaskGroup(of: Void.self) { group in
            group.addTask { _ = try? await shipper.ship(id) }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
    }

    private func backupStoreInUse() throws -> (any ObjectStore, BackupShipper) {
        guard let store = configuration.backupStore, let shipper = self.store.backups else {
            throw NodeError.conflict(
                "this node has no backup store; start it with --backup-dir DIR or --backup-s3-bucket NAME to back up and restore databases"
            )
        }
        return (store, shipper)
    }

    /// The backup's extent for a database held here.
    public func backupStatus(_ namespace: Namespace) async throws -> Platform.BackupStatus {
        let (objects, shipper) = try backupStoreInUse()
        guard store.exists(namespace) else {
            throw NodeError.notFound("database \(namespace) does not exist on this node")
        }
        let settings = await store.currentSettings(namespace)
        let id = namespace.backupID(databaseID: settings.databaseID)
        let catalog: BackupCatalog
        do {
            catalog = try await BackupCatalog.load(objects, id: id)
        } catch {
            throw NodeError.unavailable("the backup store \(objects.location) cannot be read now (\(error)); try again")
        }
        let pending = shipper.pendingSince(id)
        return Platform.BackupStatus(
            database: namespace.description, earliest: catalog.earliest.map(RFC3339.format(microseconds:)),
            latest: catalog.latest.map(RFC3339.format(microseconds:)), pending: pending != nil,
            lagSeconds: pending.map { (ContinuousClock.now - $0).inSeconds } ?? 0, objects: catalog.keys.count,
            generation: catalog.position?.generation, frame: catalog.position?.frame)
    }

    /// Restores a primary held here to the last transaction committed at or before `time` (nil:
    /// the newest in the store), from its own backup or, for a database seeded from another,
    /// from backup `source`.
    ///
    /// The database refuses requests (503) from the start; its streams are closed and running
    /// requests waited for; what it committed last is shipped, so the state it replaces stays
    /// restorable (`undoTimestamp`); the restored file is built beside it and installed as a new
    /// generation, which its replicas and its backup start again from.
    public func restore(
        _ namespace: Namespace, from source: String?, at time: Int64?
    ) async throws
        -> Platform.RestoreResult
    {
        let (objects, shipper) = try backupStoreInUse()
        guard store.exists(namespace) else {
            throw NodeError.notFound("database \(namespace) does not exist on this node; create it first")
        }
        let settings = await store.currentSettings(namespace)
        guard settings.primaryURL == nil else {
            throw NodeError.badRequest("database \(namespace) is a replica on this node; restore it on its primary")
        }
        let target = namespace.backupID(databaseID: settings.databaseID)
        let origin = source ?? target
        guard BackupKey.isValid(id: origin) else {
            throw NodeError.badRequest("\(origin.prefix(200).debugDescription) does not name a backup")
        }
        if origin != target, let source = Namespace.parseBackupID(origin)?.namespace, store.exists(source) {
            // A source held here ships what it committed last first, so a seed reaches its newest state.
            _ = try? await shipper.ship(origin)
        }
        guard store.restoring.begin(namespace) else {
            throw NodeError.conflict("database \(namespace) is being restored already; wait for that restore to end")
        }
        defer { store.restoring.end(namespace) }
        // No shipment of it runs from its last one until the new files are in place.
        let (point, generation, undo) = try await shipper.exclusively(target) {
            () async throws -> (RestoredPoint, UInt64, Int64?) in
            let directory = namespace.directory(in: configuration.dataDirectory)
            guard await drain(namespace) else {
                throw NodeError.unavailable(
                    "database \(namespace) is still held by running requests; nothing was restored, try again",
                    retryAfter: 2)
            }
            // What it committed last goes to the store first: the state being replaced stays restorable.
            var undo: Int64?
            do {
                try await shipper.ship(target, holdingLock: true)
                if origin == target {
                    undo = try await BackupCatalog.load(objects, id: target).latest
                }
            } catch {
                throw NodeError.unavailable(
                    "the backup store \(objects.location) did not take database \(namespace)'s last commits (\(error)); nothing was restored, try again once it is reachable"
                )
            }
            // Shipping opened it again.
            guard await drain(namespace) else {
                throw NodeError.unavailable(
                    "database \(namespace) is still held by running requests; nothing was restored, try again",
                    retryAfter: 2)
            }
            let catalog: BackupCatalog
            let plan: RestorePlan
            do {
                catalog = try await BackupCatalog.load(objects, id: origin)
                plan = try catalog.plan(at: time)
            } catch let error as BackupError {
                throw NodeError.badRequest("\(error)")
            } catch {
                throw NodeError.unavailable(
                    "the backup store \(objects.location) cannot be read now (\(error)); try again")
            }
            let restored = PrimaryLog.restoredFilePath(in: directory)
            let point: RestoredPoint
            do {
                point = try await BackupRestore.restore(plan, from: objects, to: restored) { progress in
                    self.logger.debug(
                        "backup.restore.progress",
                        metadata: [
                            "db.namespace": "\(namespace)",
                            "objects": "\(progress.objectsRead)/\(progress.objectsTotal)",
                            "bytes": "\(progress.bytesRead)",
                        ])
                }
            } catch let error as BackupError {
                try? FileSystem.remove(restored)
                throw NodeError.badRequest("\(error)")
            }
            // Past every generation the database had here and in its backup.
            let targetPosition = try await BackupCatalog.load(objects, id: target).position
            let generation = try await BlockingWork.run { () -> UInt64 in
                let local = try PrimaryLog.generation(in: directory) ?? 0
                let next = max(local, targetPosition?.generation ?? 0) + 1
                try PrimaryLog.installRestored(in: directory, asGeneration: next)
                return next
            }
            return (point, generation, undo)
        }
        shipper.startOver(target)
        logger.notice(
            "database.restored",
            metadata: [
                "db.namespace": "\(namespace)", "backup.source": "\(origin)",
                "restored_to": "\(RFC3339.format(microseconds: point.microseconds))", "generation": "\(generation)",
            ])
        return Platform.RestoreResult(
            database: namespace.description, restoredTo: RFC3339.format(microseconds: point.microseconds),
            bytes: point.bytes, generation: generation, undoTimestamp: undo.map(RFC3339.format(microseconds:)))
    }
}
