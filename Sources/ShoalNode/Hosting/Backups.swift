import Foundation
import ShoalBackup
import ShoalModel
import ShoalReplication
import Synchronization

extension Namespace {
    /// The name of this database's backup in the object store: `org.database`, and the
    /// incarnation's catalog id when it has one (`org.database.id`), so a database created again
    /// under the name starts a backup of its own.
    public func backupID(databaseID: String?) -> String {
        let base = "\(organization).\(database)"
        guard let databaseID, BackupKey.isValid(id: databaseID), !databaseID.contains(".") else { return base }
        return base + "." + databaseID
    }

    /// The namespace and incarnation a backup id names (nil for anything `backupID` does not make).
    static func parseBackupID(_ id: String) -> (namespace: Namespace, databaseID: String?)? {
        let parts = id.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 || parts.count == 3,
            let namespace = try? Namespace(organization: parts[0], database: parts[1])
        else { return nil }
        return (namespace, parts.count == 3 ? parts[2] : nil)
    }
}

/// The node's primaries for the backup shipper: a database is leased (opened if closed) for the
/// time of one shipment; one that is gone, being deleted, a replica here, or another incarnation
/// than the backup names ends its shipping.
final class NodeBackupSource: BackupSource {
    private struct Reference: Sendable {
        weak var store: DatabaseStore?
    }

    private let reference = Mutex(Reference())

    func attach(_ store: DatabaseStore) {
        reference.withLock { $0.store = store }
    }

    func withPrimaryLog<T: Sendable>(
        _ id: String, _ body: @Sendable (PrimaryLog) async throws -> T
    ) async throws -> T? {
        guard let store = reference.withLock({ $0.store }), let namespace = Namespace.parseBackupID(id)?.namespace,
            store.exists(namespace), !store.deleted.isDeleting(namespace)
        else { return nil }
        return try await store.withDatabaseForBackup(namespace) { database -> T? in
            guard case .primary(let log) = database.role,
                namespace.backupID(databaseID: database.settings.databaseID) == id
            else { return nil }
            return try await body(log)
        }
    }

    func retention(_ id: String) async -> Duration? {
        guard let store = reference.withLock({ $0.store }), let namespace = Namespace.parseBackupID(id)?.namespace,
            store.exists(namespace), let seconds = await store.currentSettings(namespace).backupRetention
        else { return nil }
        return .seconds(seconds)
    }
}

extension DatabaseStore {
    /// Runs `body` with the database leased, also while it is being restored (whose last frames
    /// are shipped before its files are replaced); never while it is being deleted.
    func withDatabaseForBackup<T>(_ namespace: Namespace, _ body: (HostedDatabase) async throws -> T) async throws -> T
    {
        try refuseIfDeleted(namespace)
        let lease = try await pool.acquire(namespace)
        do {
            let result = try await body(lease.resource)
            await pool.release(lease)
            return result
        } catch {
            await pool.release(lease)
            throw error
        }
    }
}

extension DatabaseStore {
    /// Where recoveries build a database before it is moved into place.
    static func recoveringDirectory(in dataDirectory: String) -> String { dataDirectory + "/recovering" }

    /// Writes a database placed on this node down. A primary whose incarnation already has a
    /// backup in the store (this node lost it: a wiped disk, a replaced machine) starts from the
    /// backup's newest state instead of empty: it is rebuilt beside the data, as the base of a
    /// generation past the backup's, and moved into place in one rename once whole, settings
    /// included. A store that cannot be read refuses the placement (try again) rather than
    /// starting the database empty.
    func place(_ namespace: Namespace, settings: DatabaseSettings) async throws {
        let directory = namespace.directory(in: configuration.dataDirectory)
        guard let objects = configuration.backupStore, let shipper = backups, settings.primaryURL == nil,
            let databaseID = settings.databaseID
        else { return try await Self.writePlacement(settings, directory: directory) }
        let id = namespace.backupID(databaseID: databaseID)
        let catalog: BackupCatalog
        do {
            catalog = try await BackupCatalog.load(objects, id: id)
        } catch {
            throw NodeError.unavailable(
                "database \(namespace) may have a backup in \(objects.location), which cannot be read now (\(error)); try again",
                retryAfter: 2)
        }
        guard let position = catalog.position else {
            return try await Self.writePlacement(settings, directory: directory)
        }
        // One rebuild at a time; requests meanwhile are refused (503, try again shortly).
        guard restoring.begin(namespace) else {
            throw NodeError.unavailable(
                "database \(namespace) is being rebuilt from its backup; try again", retryAfter: 2)
        }
        defer { restoring.end(namespace) }
        guard !exists(namespace) else { return }
        let staging =
            Self.recoveringDirectory(in: configuration.dataDirectory) + "/\(id)-\(UInt64.random(in: 0...UInt64.max))"
        do {
            try await BlockingWork.run { try FileSystem.makeDirectory(staging) }
            let plan = try catalog.plan(at: nil)
            let point = try await BackupRestore.restore(
                plan, from: objects, to: PrimaryLog.restoredFilePath(in: staging))
            try await BlockingWork.run {
                try PrimaryLog.installRestored(in: staging, asGeneration: position.generation + 1)
            }
            try await Self.writePlacement(settings, directory: staging)
            let parent = (directory as NSString).deletingLastPathComponent
            try await BlockingWork.run {
                try FileSystem.makeDirectory(parent)
                try FileSystem.rename(staging, to: directory, syncing: parent)
            }
            shipper.startOver(id)
            logger.notice(
                "database.recovered_from_backup",
                metadata: [
                    "db.namespace": "\(namespace)", "backup": "\(id)",
                    "restored_to": "\(RFC3339.format(microseconds: point.microseconds))",
                    "generation": "\(position.generation + 1)",
                ])
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            if let error = error as? NodeError { throw error }
            throw NodeError.unavailable(
                "database \(namespace) could not be rebuilt from its backup in \(objects.location) (\(error)); try again",
                retryAfter: 2)
        }
    }
}

/// The databases being restored in place: every request is refused (503, try again shortly)
/// until the restored files are in place.
final class RestoringDatabases: Sendable {
    private let restoring = Mutex<Set<Namespace>>([])

    /// Starts refusing `namespace`; false if a restore of it is already running.
    func begin(_ namespace: Namespace) -> Bool {
        restoring.withLock { $0.insert(namespace).inserted }
    }

    func end(_ namespace: Namespace) {
        _ = restoring.withLock { $0.remove(namespace) }
    }

    func refuseIfRestoring(_ namespace: Namespace) throws {
        if restoring.withLock({ $0.contains(namespace) }) {
            throw NodeError.unavailable(
                "database \(namespace) is being restored from its backup; try again in a few seconds", retryAfter: 2)
        }
    }
}
