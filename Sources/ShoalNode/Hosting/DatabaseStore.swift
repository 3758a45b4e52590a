import Foundation
import Logging
import ShoalBackup
import ShoalModel
import ShoalPool
import ShoalReplication
import Synchronization

/// The databases a node hosts: directories under the data directory, opened lazily into a bounded
/// pool (least recently used closed first, idle ones closed after a while, none closed while a
/// stream, transaction or export holds it).
public final class DatabaseStore: Sendable {
    /// The node's configuration.
    public let configuration: NodeConfiguration
    let logger: Logger
    let pool: ResourcePool<Namespace, HostedDatabase>
    private let placements = PlacementLookup()
    /// Where a primary that opens learns its group's tenant schema.
    let schemas = GroupSchemaLookup()
    /// Versions primaries reached on opening, not yet sent to the control plane.
    let schemaReports = SchemaReports()
    /// The databases being deleted, and incarnations deleted lately.
    let deleted = DeletedDatabases()
    /// The primaries' sizes for the control plane, and the organizations over their storage quota.
    public let storage = StorageLedger()
    /// The followers of the replicas this node holds (a service the node's application runs).
    public let followers = ReplicaFollowers()
    /// The backup shipper of this node's primaries (a service the node's application runs), nil
    /// without a backup store.
    public let backups: BackupShipper?
    /// The databases being restored: refused (503) until their files are back.
    let restoring = RestoringDatabases()
    /// The file a database's directory gets when its deletion starts: a node restarted before the
    /// files are gone still refuses it.
    static let deletionMarker = "deleted"

    /// Where a database that is not on disk may be placed: the control plane's answer (its settings),
    /// or nil when it is not placed on this node.
    public typealias PlacementSource = @Sendable (Namespace) async throws -> DatabaseSettings?

    /// How long the node remembers that the control plane said a database is not placed here, so
    /// that requests for it do not each ask again.
    public static let unknownDatabaseLifetime: Duration = .seconds(5)
    /// The most such databases remembered at once.
    public static let unknownDatabaseCapacity = 10_000

    /// A store over `configuration.dataDirectory`.
    public init(configuration: NodeConfiguration, logger: Logger = Logger(label: "shoal.node")) {
        self.configuration = configuration
        self.logger = logger
        let dataDirectory = configuration.dataDirectory
        let placements = self.placements
        let deleted = self.deleted
        let storage = self.storage
        let schemas = self.schemas
        let schemaReports = self.schemaReports
        let followers = self.followers
        let source = NodeBackupSource()
        let backups = configuration.backupStore.flatMap { store in
            do {
                return try BackupShipper(
                    store: store, source: source, pendingDirectory: configuration.dataDirectory + "/backup-pending",
                    configuration: configuration.backupShipping, logger: logger)
            } catch {
                logger.error("backup.disabled", metadata: ["error": "\(error)"])
                return nil
            }
        }
        self.backups = backups
        // What a deletion left in the trash when the node stopped before removing it, and what a
        // recovery from the backup store left half made.
        try? FileManager.default.removeItem(atPath: DatabaseStore.trashDirectory(in: dataDirectory))
        try? FileManager.default.removeItem(atPath: DatabaseStore.recoveringDirectory(in: dataDirectory))
        pool = ResourcePool(
            configuration: .init(
                capacity: configuration.maxOpenDatabases, idleTimeout: configuration.databaseIdleTimeout,
                capacityWaitTimeout: configuration.databaseWaitTimeout),
            open: { namespace in
                let directory = namespace.directory(in: dataDirectory)
                if deleted.isDeleting(namespace)
                    || FileManager.default.fileExists(atPath: directory + "/" + Self.deletionMarker)
                {
                    throw Self.deletedError(namespace)
                }
                // A placed database has its settings (`config.json`) and, once opened, its log
                // (`meta.json`); the first open makes the database file. A database the control
                // plane placed here without telling the node yet is written down on first use.
                let known =
                    configuration.createOnFirstUse
                    || FileManager.default.fileExists(atPath: directory + "/meta.json")
                    || FileManager.default.fileExists(atPath: directory + "/config.json")
                if !known {
                    guard let settings = try await placements.placement(of: namespace) else {
                        throw NodeError.notFound("database \(namespace) does not exist on this node; create it first")
                    }
                    if deleted.wasDeleted(settings.databaseID) { throw Self.deletedError(namespace) }
                    try Self.checkRegion(settings, namespace: namespace, location: configuration.location)
                    try await Self.writePlacement(settings, directory: directory)
                }
                // A replica whose primary refuses its sync token asks the control plane again.
                let renew: @Sendable () async -> String? = {
                    guard !deleted.isDeleting(namespace), let source = placements.source,
                        let settings = try? await source(namespace), let token = settings.syncToken,
                        !deleted.wasDeleted(settings.databaseID)
                    else { return nil }
                    try? await Self.writePlacement(settings, directory: directory)
                    return token
                }
                let database = try await BlockingWork.run {
                    try HostedDatabase(
                        namespace: namespace, directory: directory, configuration: configuration, storage: storage,
                        logger: logger, followers: followers, backups: backups, renewSyncToken: renew)
                }
                // Behind its group's released schema: brought up to date before its first statement.
                await Self.bringUpToDate(database, schemas: schemas, reports: schemaReports, logger: logger)
                return database
            },
            close: { _, database in
                _ = try? await BlockingWork.run { database.close() }
            })
        source.attach(self)
    }

    /// Whether a database exists on disk.
    public func exists(_ namespace: Namespace) -> Bool {
        let directory = namespace.directory(in: configuration.dataDirectory)
        return FileManager.default.fileExists(atPath: directory + "/meta.json")
            || FileManager.default.fileExists(atPath: directory + "/config.json")
    }

    /// Creates a database; throws `conflict` if it exists. Only its directory and settings are
    /// written (durably) here; the database file and its log are made when it is first opened,
    /// which keeps provisioning cheap. An incarnation with a backup in the store is rebuilt from
    /// it (`place`).
    public func create(_ namespace: Namespace, settings: DatabaseSettings? = nil) async throws {
        if deleted.isDeleting(namespace) {
            throw NodeError.conflict(
                "database \(namespace) is being deleted on this node; create it again once that is done")
        }
        guard !exists(namespace) else { throw NodeError.conflict("database \(namespace) already exists") }
        let settings = settings ?? DatabaseSettings()
        if deleted.wasDeleted(settings.databaseID) {
            throw NodeError.conflict("these settings are for an incarnation of database \(namespace) that was deleted")
        }
        try Self.checkRegion(settings, namespace: namespace, location: configuration.location)
        try await place(namespace, settings: settings)
        placements.forget(namespace)
    }

    /// Defence in depth: a node never takes a database whose region rule leaves out its location.
    static func checkRegion(_ settings: DatabaseSettings, namespace: Namespace, location: String) throws {
        if let allowed = settings.allowedLocations, !allowed.contains(location) {
            throw NodeError.forbidden(
                "the region rule of database \(namespace) does not allow location \(location); it cannot be placed here"
            )
        }
    }

    /// Writes a placed database's directory and settings, durably (file, directory, parent).
    static func writePlacement(_ settings: DatabaseSettings, directory: String) async throws {
        let encoder = WireJSON.encoder([.sortedKeys])
        let bytes = Array(try encoder.encode(settings))
        try await BlockingWork.run {
            try FileSystem.makeDirectory(directory)
            try FileSystem.writeAtomically(bytes, to: directory + "/config.json", directory: directory)
            // The new directory's own entry, so the placement survives a crash.
            try FileSystem.syncDirectory((directory as NSString).deletingLastPathComponent)
        }
    }

    /// Writes down a database the control plane placed on this node but the node has not seen yet;
    /// nothing when it is known, when there is no placement source, or when it is not placed here
    /// (an answer remembered for a while: see `setPlacementSource`).
    public func ensurePlaced(_ namespace: Namespace) async throws {
        try refuseIfDeleted(namespace)
        guard !configuration.createOnFirstUse, !exists(namespace) else { return }
        guard let settings = try await placements.placement(of: namespace) else { return }
        if deleted.wasDeleted(settings.databaseID) { throw Self.deletedError(namespace) }
        try Self.checkRegion(settings, namespace: namespace, location: configuration.location)
        do {
            try await place(namespace, settings: settings)
        } catch  where exists(namespace) {
            // A concurrent first request wrote it down at the same moment.
        }
    }

    /// Sets (or clears) where unknown databases are looked up (the control plane link does). A
    /// database the source says is not placed here is remembered as such for `unknownLifetime`
    /// (at most `unknownCapacity` of them), so that requests for it do not each ask again.
    public func setPlacementSource(
        _ source: PlacementSource?, unknownLifetime: Duration = DatabaseStore.unknownDatabaseLifetime,
        unknownCapacity: Int = DatabaseStore.unknownDatabaseCapacity
    ) {
        placements.set(source, remembering: UnknownDatabases(lifetime: unknownLifetime, capacity: unknownCapacity))
    }

    /// Sets (or clears) where a primary that opens learns its group's tenant schema (the control
    /// plane link does).
    func setSchemaSource(_ source: GroupSchemaLookup.Source?) {
        schemas.set(source)
    }

    /// The refusal of a database being deleted.
    static func deletedError(_ namespace: Namespace) -> NodeError {
        NodeError.notFound("database \(namespace) has been deleted; it no longer answers any request")
    }

    /// Throws `notFound` while `namespace` is being deleted.
    func refuseIfDeleted(_ namespace: Namespace) throws {
        if deleted.isDeleting(namespace) { throw Self.deletedError(namespace) }
    }

    /// The settings in force for a database: the open database's, else its `config.json` (default
    /// settings when it has none, or when it is not on this node).
    func currentSettings(_ namespace: Namespace) async -> DatabaseSettings {
        if let lease = pool.leaseIfOpen(namespace) {
            let settings = lease.resource.settings
            if !pool.releaseIfUncontended(lease) { await pool.release(lease) }
            return settings
        }
        let directory = namespace.directory(in: configuration.dataDirectory)
        return (try? await BlockingWork.run { try DatabaseSettings.load(directory: directory) }) ?? DatabaseSettings()
    }

    // MARK: Deletion (`Node.delete` runs the steps)

    /// Starts deleting a database: from now on every request for it is refused, and its directory
    /// is marked (durably) so that a restart keeps refusing it. Returns false, and changes nothing,
    /// when there is nothing of that incarnation here: no directory (the incarnation is remembered
    /// as deleted, so a late placement of it is refused), or one whose settings name another
    /// incarnation (the database was created again under the name; that one stays).
    func beginDeletion(_ namespace: Namespace, databaseID: String?) async throws -> Bool {
        let directory = namespace.directory(in: configuration.dataDirectory)
        guard FileManager.default.fileExists(atPath: directory) else {
            if let databaseID { deleted.remember(databaseID) }
            return false
        }
        let stored = try? await BlockingWork.run { try DatabaseSettings.load(directory: directory) }
        if let databaseID, let held = stored?.databaseID, held != databaseID {
            deleted.remember(databaseID)
            return false
        }
        deleted.begin(namespace)
        try await BlockingWork.run {
            try FileSystem.writeAtomically([], to: directory + "/" + Self.deletionMarker, directory: directory)
        }
        return true
    }

    /// Closes a database being deleted if nothing leases it; returns whether it is closed (then
    /// no request holds it, and none can open it again while it is being deleted).
    func closeIfUnused(_ namespace: Namespace) async -> Bool {
        _ = await pool.evict(namespace)
        return !pool.isOpen(namespace) && !pool.isLeased(namespace)
    }

    /// Wakes the long-polls waiting on a database being deleted (see `HostedDatabase.interruptWaits`).
    func interruptWaits(_ namespace: Namespace) async {
        guard let lease = pool.leaseIfOpen(namespace) else { return }
        let database = lease.resource
        _ = try? await BlockingWork.run { database.interruptWaits() }
        if !pool.releaseIfUncontended(lease) { await pool.release(lease) }
    }

    /// Removes a closed database's files: its directory is renamed into the node's trash (one atomic
    /// step, synced, so a database created again under the name never sees them), then removed.
    /// Only a directory marked by `beginDeletion` is taken, never one created since.
    func finishDeletion(_ namespace: Namespace, databaseID: String?) async throws {
        let directory = namespace.directory(in: configuration.dataDirectory)
        let trash = Self.trashDirectory(in: configuration.dataDirectory)
        let stored = try? await BlockingWork.run { try DatabaseSettings.load(directory: directory) }
        try await BlockingWork.run {
            guard FileManager.default.fileExists(atPath: directory + "/" + Self.deletionMarker) else { return }
            try FileSystem.makeDirectory(trash)
            let target = trash + "/" + UUID().uuidString
            try FileManager.default.moveItem(atPath: directory, toPath: target)
            try FileSystem.syncDirectory((directory as NSString).deletingLastPathComponent)
            try? FileManager.default.removeItem(atPath: target)
        }
        if let incarnation = databaseID ?? stored?.databaseID { storage.forget(databaseID: incarnation) }
        // Its backup stays in the store (a mistaken delete can still be restored); nothing more is shipped.
        backups?.forget(namespace.backupID(databaseID: databaseID ?? stored?.databaseID))
        deleted.finish(namespace, incarnation: databaseID ?? stored?.databaseID)
    }

    /// Where deleted databases' directories go before they are removed.
    static func trashDirectory(in dataDirectory: String) -> String {
        dataDirectory + "/trash"
    }

    /// Runs `body` with the database leased.
    public func withDatabase<T>(_ namespace: Namespace, _ body: (HostedDatabase) async throws -> T) async throws -> T {
        let lease = try await acquire(namespace)
        do {
            let result = try await body(lease.resource)
            await pool.release(lease)
            return result
        } catch {
            await pool.release(lease)
            throw error
        }
    }

    /// Leases a database for longer than one call (a stream). Waits at most `databaseWaitTimeout`
    /// while every open database is in use, then throws `unavailable` (503 with `Retry-After`).
    func acquire(_ namespace: Namespace) async throws -> ResourcePool<Namespace, HostedDatabase>.Lease {
        try refuseIfDeleted(namespace)
        try restoring.refuseIfRestoring(namespace)
        do {
            return try await pool.acquire(namespace)
        } catch PoolError.timedOut {
            throw NodeError.unavailable(
                "this node has its \(configuration.maxOpenDatabases) open databases all in use (held by streams "
                    + "and requests), so database \(namespace) cannot be opened now; try again shortly",
                retryAfter: Self.busyRetryAfterSeconds)
        }
    }

    /// The `Retry-After` of a request refused because every open database is in use, in seconds.
    static let busyRetryAfterSeconds = 1

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
        followers.finish()
    }
}

/// Where unknown databases are looked up: the placement source, set after the node starts (once it
/// has registered), and the databases it said are not placed here, remembered for a short while.
final class PlacementLookup: Sendable {
    private let current = Mutex<DatabaseStore.PlacementSource?>(nil)
    private let unknown = Mutex(
        UnknownDatabases(
            lifetime: DatabaseStore.unknownDatabaseLifetime, capacity: DatabaseStore.unknownDatabaseCapacity))

    var source: DatabaseStore.PlacementSource? { current.withLock { $0 } }

    func set(_ source: DatabaseStore.PlacementSource?, remembering remembered: UnknownDatabases) {
        current.withLock { $0 = source }
        unknown.withLock { $0 = remembered }
    }

    /// The source's answer for `namespace`: its settings, or nil when there is no source or the
    /// database is not placed here (then remembered, and not asked again for a while). A failed
    /// question is not remembered.
    func placement(of namespace: Namespace) async throws -> DatabaseSettings? {
        guard let source else { return nil }
        if unknown.withLock({ $0.contains(namespace, at: .now) }) { return nil }
        let settings = try await source(namespace)
        if settings == nil {
            unknown.withLock { $0.insert(namespace, at: .now) }
        }
        return settings
    }

    /// Forgets that `namespace` was unknown (it was just created here).
    func forget(_ namespace: Namespace) {
        unknown.withLock { $0.remove(namespace) }
    }
}

/// Databases a placement source said are not placed on this node, each remembered for `lifetime`;
/// at most `capacity` of them (when full, the expired ones go first, then the oldest).
struct UnknownDatabases: Sendable {
    /// How long an answer is remembered.
    let lifetime: Duration
    /// The most databases remembered at once.
    let capacity: Int
    private var expiries: [Namespace: ContinuousClock.Instant] = [:]

    init(lifetime: Duration, capacity: Int) {
        self.lifetime = lifetime
        self.capacity = capacity
    }

    /// How many databases are remembered (expired ones included until they are dropped).
    var count: Int { expiries.count }

    /// Whether `namespace` was said to be unknown less than `lifetime` before `now`.
    func contains(_ namespace: Namespace, at now: ContinuousClock.Instant) -> Bool {
        guard let expiry = expiries[namespace] else { return false }
        return now < expiry
    }

    /// Remembers, as of `now`, that `namespace` is not placed here.
    mutating func insert(_ namespace: Namespace, at now: ContinuousClock.Instant) {
        guard capacity > 0, lifetime > .zero else { return }
        if expiries[namespace] == nil, expiries.count >= capacity {
            expiries = expiries.filter { $0.value > now }
            if expiries.count >= capacity, let oldest = expiries.min(by: { $0.value < $1.value })?.key {
                expiries[oldest] = nil
            }
        }
        expiries[namespace] = now + lifetime
    }

    /// Forgets `namespace`.
    mutating func remove(_ namespace: Namespace) {
        expiries[namespace] = nil
    }
}
