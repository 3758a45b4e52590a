import Foundation
import ShoalReplication
import ShoalSQLite
import ShoalSyncTransport
import Synchronization

/// An embedded replica: a local copy of one database, kept in sync by pulling WAL frames from a
/// node. Reads run locally (about a microsecond for a point read); writes go to the primary and,
/// with read-your-writes, return once the local copy has them.
public final class Database: Sendable {
    /// The local replica.
    public let replica: Replica
    let replicator: Replicator
    let remote: RemoteDatabase
    /// Whether `execute` waits until the replica has applied the write.
    public let readYourWrites: Bool
    /// The token its requests carry (replace it with `setAuthToken`).
    let credentials: Credentials

    /// Replaces the token of every later sync and write, without reopening the replica (a resolver
    /// refreshing tokens before they expire uses this).
    public func setAuthToken(_ token: String?) {
        credentials.replace(with: token)
    }

    /// When the last successful sync finished.
    private let lastSync = Mutex<ContinuousClock.Instant?>(nil)

    /// When the last successful `sync()` of this instance finished (nil before the first).
    public var lastSynced: ContinuousClock.Instant? { lastSync.withLock { $0 } }

    /// Opens (bootstrapping on first `sync()`) the replica in `directory` of the database at
    /// `syncURL` (`http://host/db/org/database`). Throws `foreignReplica` if the directory holds
    /// another database's replica and `corruptReplica` if its file is damaged.
    public init(
        directory: String, syncURL: URL, authToken: String? = nil, readYourWrites: Bool = true
    ) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.checkSource(directory: directory, syncURL: syncURL)
        if FileManager.default.fileExists(atPath: directory + "/data.db") {
            try Self.checkHeader(directory + "/data.db")
        }
        do {
            replica = try Replica(directory: directory)
        } catch let error as SQLiteError where ResultCode.notADatabase ~= error.code || ResultCode.corrupt ~= error.code
        {
            throw ClientError(
                .corruptReplica, "the replica in \(directory) is damaged (\(error.message)); call Database.rebuild")
        }
        credentials = Credentials(authToken)
        replicator = Replicator(
            replica: replica, source: HTTPFrameSource(url: syncURL, credentials: credentials))
        remote = RemoteDatabase(url: syncURL, credentials: credentials)
        self.readYourWrites = readYourWrites
    }

    /// Opens the replica as `init` does, with its file work on the process's `BlockingExecutor`
    /// rather than on the calling task's thread (what a pool of thousands of tenants uses).
    public static func open(
        directory: String, syncURL: URL, authToken: String? = nil, readYourWrites: Bool = true
    ) async throws -> Database {
        try await BlockingExecutor.shared.run {
            try Database(directory: directory, syncURL: syncURL, authToken: authToken, readYourWrites: readYourWrites)
        }
    }

    /// Records which database the directory replicates (its URL path), or refuses another one.
    static func checkSource(directory: String, syncURL: URL) throws {
        let file = directory + "/source"
        let source = syncURL.path
        if let recorded = FileManager.default.contents(atPath: file) {
            let text = String(decoding: recorded, as: UTF8.self)
            guard text == source else {
                throw ClientError(
                    .foreignReplica,
                    "\(directory) holds a replica of \(text), not \(source); use another directory or Database.rebuild")
            }
        } else {
            try Data(source.utf8).write(to: URL(fileURLWithPath: file), options: .atomic)
        }
    }

    /// Checks that the local file still starts like a SQLite database with 4096-byte pages.
    static func checkHeader(_ path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ClientError(.corruptReplica, "the replica file \(path) is missing; call Database.rebuild")
        }
        defer { try? handle.close() }
        let header = (try? handle.read(upToCount: 100)) ?? Data()
        guard DatabaseHeader.problem(Array(header)) == nil else {
            throw ClientError(.corruptReplica, "the replica file \(path) is damaged; call Database.rebuild")
        }
    }

    /// Deletes the local replica in `directory` and opens and syncs a fresh one.
    public static func rebuild(
        directory: String, syncURL: URL, authToken: String? = nil, readYourWrites: Bool = true
    ) async throws -> Database {
        try? FileManager.default.removeItem(atPath: directory)
        let database = try Database(
            directory: directory, syncURL: syncURL, authToken: authToken, readYourWrites: readYourWrites)
        try await database.sync()
        return database
    }

    /// Syncs every `interval` until the task is cancelled (run it in the application's own task or
    /// service); a failed sync is reported to `onError` and retried at the next tick.
    public func run(syncEvery interval: Duration, onError: @Sendable (any Error) -> Void = { _ in }) async {
        while !Task.isCancelled {
            do {
                try await sync()
            } catch is CancellationError {
                return
            } catch {
                onError(error)
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Pulls what the primary has committed; bootstraps first if the replica is empty.
    @discardableResult
    public func sync() async throws -> Replicator.SyncResult {
        let result = try await ClientError.translating { try await replicator.sync() }
        lastSync.withLock { $0 = .now }
        return result
    }

    /// Runs a read locally, syncing first if the last sync is older than `maxStaleness`.
    public func query(
        _ sql: String, _ arguments: [any SQLiteBindable] = [], maxStaleness: Duration
    ) async throws -> [Row] {
        let last = lastSync.withLock { $0 }
        if last.map({ ContinuousClock.now - $0 > maxStaleness }) ?? true {
            try await sync()
        }
        return try await query(sql, arguments)
    }

    /// Runs `body` with a local read-only connection inside a read transaction (the fastest path:
    /// keep statements with `cachedStatement` and read columns directly).
    ///
    /// This blocks the calling thread while a sync applies frames; from async code, `await` the
    /// async `read`, `query` or `queryOne`, which wait for the apply without holding a thread of the
    /// cooperative pool (and cost the same when no apply runs).
    public func read<T>(_ body: (Connection) throws -> T) throws -> T {
        try replica.read(body)
    }

    /// Runs `body` as the synchronous `read` does; while a sync applies frames, the task suspends
    /// instead of blocking its thread.
    public func read<T>(_ body: (Connection) throws -> T) async throws -> T {
        try await replica.read(body)
    }

    /// Runs a read locally and returns its rows (blocking while a sync applies frames).
    public func query(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws -> [Row] {
        try replica.read { try Self.rows(sql, arguments, $0) }
    }

    /// Runs a read locally and returns its rows (suspending while a sync applies frames).
    public func query(_ sql: String, _ arguments: [any SQLiteBindable] = []) async throws -> [Row] {
        try await replica.read { try Self.rows(sql, arguments, $0) }
    }

    /// Runs a read locally and returns its first row, if any (blocking while a sync applies frames).
    public func queryOne(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws -> Row? {
        try replica.read { try Self.firstRow(sql, arguments, $0) }
    }

    /// Runs a read locally and returns its first row, if any (suspending while a sync applies
    /// frames).
    public func queryOne(_ sql: String, _ arguments: [any SQLiteBindable] = []) async throws -> Row? {
        try await replica.read { try Self.firstRow(sql, arguments, $0) }
    }

    private static func rows(_ sql: String, _ arguments: [any SQLiteBindable], _ connection: Connection) throws -> [Row]
    {
        let statement = try connection.cachedStatement(sql)
        defer { statement.reset() }
        try statement.bind(arguments)
        return try statement.rows()
    }

    private static func firstRow(
        _ sql: String, _ arguments: [any SQLiteBindable], _ connection: Connection
    ) throws -> Row? {
        let statement = try connection.cachedStatement(sql)
        defer { statement.reset() }
        try statement.bind(arguments)
        return try statement.step() ? statement.row() : nil
    }

    /// How long `execute` waits, with read-your-writes, for the replica to reach a write.
    public static let readYourWritesTimeout = Duration.seconds(10)

    /// Runs a statement on the primary; with read-your-writes, returns once the replica has it.
    /// If the replica has not reached the write within `readYourWritesTimeout` (its node lags the
    /// primary), throws `replicaBehind`: the write has committed and must not be sent again.
    @discardableResult
    public func execute(_ sql: String, _ arguments: [SQLiteValue] = []) async throws -> RemoteResult {
        let result = try await remote.execute(sql, arguments)
        if readYourWrites, let target = result.primaryPosition {
            let wanted = ReplicationPosition(generation: target.generation, frame: target.frame)
            let deadline = ContinuousClock.now + Self.readYourWritesTimeout
            while (replica.position ?? ReplicationPosition(generation: 0, frame: 0)) < wanted {
                guard ContinuousClock.now < deadline else {
                    let reached = replica.position.map { "\($0.generation)/\($0.frame)" } ?? "nothing"
                    throw ClientError(
                        .replicaBehind,
                        "the write committed on the primary at \(wanted.generation)/\(wanted.frame), but the "
                            + "replica reached only \(reached) in \(Self.readYourWritesTimeout); do not send the "
                            + "write again: call sync() before reading it, or open with readYourWrites: false")
                }
                try await ClientError.translating { try await replicator.pull(wait: .milliseconds(200)) }
            }
        }
        return result
    }

    /// Closes the remote stream and the local files.
    public func close() async {
        await remote.close()
        let replica = self.replica
        _ = try? await BlockingExecutor.shared.run { replica.close() }
    }
}
