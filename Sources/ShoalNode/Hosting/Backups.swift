import Foundation
import ShoalBackup
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
