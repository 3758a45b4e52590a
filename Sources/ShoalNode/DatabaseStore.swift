import Foundation
import ShoalPool
import ShoalReplication

/// The databases a node hosts: directories under the data directory, opened lazily into a bounded
/// pool (least recently used closed first, idle ones closed after a while, none closed while a
/// stream, transaction or export holds it).
public final class DatabaseStore: Sendable {
    /// The node's configuration.
    public let configuration: NodeConfiguration
    let pool: ResourcePool<Namespace, HostedDatabase>

    /// A store over `configuration.dataDirectory`.
    public init(configuration: NodeConfiguration) {
        self.configuration = configuration
        let dataDirectory = configuration.dataDirectory
        pool = ResourcePool(
            configuration: .init(
                capacity: configuration.maxOpenDatabases, idleTimeout: configuration.databaseIdleTimeout),
            open: { namespace in
                try await BlockingWork.run {
                    let directory = namespace.directory(in: dataDirectory)
                    // A placed database has its settings (`config.json`) and, once opened, its log
                    // (`meta.json`); the first open makes the database file.
                    guard
                        configuration.createOnFirstUse
                            || FileManager.default.fileExists(atPath: directory + "/meta.json")
                            || FileManager.default.fileExists(atPath: directory + "/config.json")
                    else {
                        throw NodeError.notFound("database \(namespace) does not exist on this node; create it first")
                    }
                    return try HostedDatabase(namespace: namespace, directory: directory, configuration: configuration)
                }
            },
            close: { _, database in
                _ = try? await BlockingWork.run { database.close() }
            })
    }

    /// Whether a database exists on disk.
    public func exists(_ namespace: Namespace) -> Bool {
        let directory = namespace.directory(in: configuration.dataDirectory)
        return FileManager.default.fileExists(atPath: directory + "/meta.json")
            || FileManager.default.fileExists(atPath: directory + "/config.json")
    }

    /// Creates a database; throws `conflict` if it exists. Only its directory and settings are
    /// written (durably) here; the database file and its log are made when it is first opened,
    /// which keeps provisioning cheap.
    public func create(_ namespace: Namespace, settings: DatabaseSettings? = nil) async throws {
        let directory = namespace.directory(in: configuration.dataDirectory)
        guard !exists(namespace) else { throw NodeError.conflict("database \(namespace) already exists") }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = Array(try encoder.encode(settings ?? DatabaseSettings()))
        try await BlockingWork.run {
            try FileSystem.makeDirectory(directory)
            try FileSystem.writeAtomically(bytes, to: directory + "/config.json", directory: directory)
            // The new directory's own entry, so the placement survives a crash.
            try FileSystem.syncDirectory((directory as NSString).deletingLastPathComponent)
        }
    }

    /// Deletes a database and its files; refused while it is in use.
    public func delete(_ namespace: Namespace) async throws {
        guard exists(namespace) else { throw NodeError.notFound("database \(namespace) does not exist on this node") }
        _ = await pool.evict(namespace)
        if pool.isLeased(namespace) {
            throw NodeError.conflict("database \(namespace) is in use; close its streams and try again")
        }
        let directory = namespace.directory(in: configuration.dataDirectory)
        try await BlockingWork.run { try FileManager.default.removeItem(atPath: directory) }
    }

    /// Runs `body` with the database leased.
    public func withDatabase<T>(_ namespace: Namespace, _ body: (HostedDatabase) async throws -> T) async throws -> T {
        try await pool.withLease(namespace, body)
    }

    /// Leases a database for longer than one call (a stream).
    func acquire(_ namespace: Namespace) async throws -> ResourcePool<Namespace, HostedDatabase>.Lease {
        try await pool.acquire(namespace)
    }

    func release(_ lease: ResourcePool<Namespace, HostedDatabase>.Lease) async {
        await pool.release(lease)
    }

    /// Closes databases idle past the timeout.
    public func evictIdle() async {
        await pool.evictIdle()
    }

    /// Closes every database.
    public func close() async {
        await pool.close()
    }
}
