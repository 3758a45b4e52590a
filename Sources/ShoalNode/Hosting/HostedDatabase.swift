import Foundation
import Logging
import ShoalBackup
import ShoalModel
import ShoalReplication
import ShoalSQLite
import Synchronization

/// One database hosted by the node: either its primary (the log streams write to, frames for
/// `/sync`) or a replica of a primary on another node (local reads, writes forwarded).
public final class HostedDatabase: Sendable {
    /// What this node holds of the database.
    public enum Role: Sendable {
        /// The primary: the log every write goes through.
        case primary(PrimaryLog)
        /// A replica following the primary at another node.
        case replica(ReplicaCopy)
    }

    /// Its name.
    public let namespace: Namespace
    /// Primary or replica.
    public let role: Role
    let configuration: NodeConfiguration
    /// Where its SQLite and file work runs: at most `threadsPerDatabase` threads at once.
    let lane: BlockingExecutor.Lane
    /// The queue its writers wait in (without a thread) for their turn to write.
    let writers = WriterQueue()
    /// Its directory.
    let directory: String
    /// Where a primary's size is counted for its organization's storage quota, and which refuses
    /// its writes when the organization is over it.
    let storage: StorageLedger
    private let currentSettings: Mutex<DatabaseSettings>

    init(
        namespace: Namespace, directory: String, configuration: NodeConfiguration, storage: StorageLedger,
        logger: Logger, followers: ReplicaFollowers, backups: BackupShipper? = nil,
        renewSyncToken: @escaping @Sendable () async -> String? = { nil }
    ) throws {
        self.namespace = namespace
        self.storage = storage
        self.configuration = configuration
        self.directory = directory
        lane = configuration.executor.makeLane(width: configuration.threadsPerDatabase)
        let settings = try DatabaseSettings.load(directory: directory)
        currentSettings = Mutex(settings)
        if let primary = settings.primaryURL {
            guard let url = URL(string: primary), url.scheme == "http" || url.scheme == "https" else {
                throw NodeError.badRequest("primary_url \(primary) of database \(namespace) is not an http(s) URL")
            }
            let copy = try ReplicaCopy(
                directory: directory, primaryURL: url, syncToken: settings.syncToken,
                longPoll: configuration.replicaLongPoll, durability: configuration.replicaDurability, logger: logger,
                followers: followers,
                prepareReader: { connection in try Sandbox.apply(to: connection, configuration: configuration) },
                renewToken: renewSyncToken)
            copy.start()
            role = .replica(copy)
        } else {
            let backupID = namespace.backupID(databaseID: settings.databaseID)
            var onCommit: (@Sendable () -> Void)?
            if let backups {
                onCommit = { backups.noteCommit(backupID) }
            }
            let log = try PrimaryLog(
                directory: directory,
                configuration: .init(
                    rollThresholdBytes: configuration.rollThresholdBytes, diskBudgetBytes: settings.maxSizeBytes,
                    onAutomaticRollFailure: { [namespace] error in
                        logger.warning(
                            "generation.roll.failed",
                            metadata: ["db.namespace": "\(namespace)", "error": "\(error)"])
                    },
                    onCommit: onCommit))
            if let id = settings.databaseID { storage.opened(databaseID: id, log: log) }
            role = .primary(log)
        }
    }

    /// The primary log; throws for a replica (whose writes go to the primary node).
    public var log: PrimaryLog {
        get throws(NodeError) {
            switch role {
            case .primary(let log): return log
            case .replica(let copy):
                throw NodeError.badRequest(
                    "database \(namespace) is a replica on this node; its primary is \(copy.primaryURL)")
            }
        }
    }

    /// The replica, when this node holds one.
    public var replica: ReplicaCopy? {
        if case .replica(let copy) = role { return copy }
        return nil
    }

    /// The settings in force.
    public var settings: DatabaseSettings { currentSettings.withLock { $0 } }

    /// Stores new settings; they apply to connections opened from now on (and blocks at once).
    func update(_ settings: DatabaseSettings) throws {
        var settings = settings
        let current = self.settings
        if let held = current.databaseID, let given = settings.databaseID, held != given {
            // Settings of another incarnation never apply to this one's files: a deleted one is
            // removed by its pending deletion first, and the one created since is placed afresh.
            throw NodeError.conflict(
                "database \(namespace) on this node is another incarnation of that name (it was deleted and "
                    + "created again); its pending deletion removes the old one, then try again")
        }
        settings.databaseID = settings.databaseID ?? current.databaseID
        settings.createdAt = settings.createdAt ?? current.createdAt
        if let copy = replica {
            // The role never changes through a settings change: a replica stays one.
            settings.primaryURL = settings.primaryURL ?? copy.primaryURL.absoluteString
            settings.syncToken = settings.syncToken ?? self.settings.syncToken
        } else if settings.primaryURL != nil {
            throw NodeError.conflict(
                "database \(namespace) is a primary on this node; it cannot become a replica through its settings")
        }
        try settings.save(directory: directory)
        currentSettings.withLock { $0 = settings }
        if let copy = replica, let token = settings.syncToken { copy.credentials.replace(with: token) }
    }

    /// A new connection for a stream, sandboxed, with the size limit applied (primaries only).
    func makeSandboxedConnection() throws -> (Connection, Sandbox) {
        let connection = try log.makeConnection()
        // TEMP tables and indices live in a file of their own per connection: capped, and so are all
        // its temporary files together (sorts, transient indices, statement journals).
        let tempBytes = min(configuration.maxTempBytes, settings.maxSizeBytes ?? configuration.maxTempBytes)
        try connection.limitTemporaryFiles(toBytes: tempBytes)
        if let maxSize = settings.maxSizeBytes {
            try connection.execute("PRAGMA max_page_count = \(max(1, maxSize / Int64(WALFormat.pageSize)))")
        }
        try connection.execute("PRAGMA temp.max_page_count = \(max(1, tempBytes / Int64(WALFormat.pageSize)))")
        return (connection, try Sandbox.apply(to: connection, configuration: configuration))
    }

    /// For a deletion: wakes the `/sync` long-polls that wait on a primary's log, by closing the
    /// log at once (requests still using it fail), so that they answer without waiting out their
    /// `wait_ms` (they hold no lease while they wait; closing the database wakes them too). The pool
    /// closes the rest when the last lease goes.
    func interruptWaits() {
        if case .primary(let log) = role { log.close() }
    }

    func close() {
        switch role {
        case .primary(let log):
            if let id = settings.databaseID { storage.closed(databaseID: id, bytes: try? log.diskUsage().total) }
            log.close()
        case .replica(let copy): copy.close()
        }
    }
}
