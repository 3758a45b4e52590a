import Foundation
import ShoalReplication
import ShoalSQLite

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

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

    /// Opens (bootstrapping on first `sync()`) the replica in `directory` of the database at
    /// `syncURL` (`http://host/db/org/database`).
    public init(
        directory: String, syncURL: URL, authToken: String? = nil, readYourWrites: Bool = true,
        session: URLSession = .shared
    ) throws {
        replica = try Replica(directory: directory)
        replicator = Replicator(
            replica: replica, source: HTTPFrameSource(url: syncURL, token: authToken, session: session))
        remote = RemoteDatabase(url: syncURL, token: authToken, session: session)
        self.readYourWrites = readYourWrites
    }

    /// Pulls what the primary has committed; bootstraps first if the replica is empty.
    @discardableResult
    public func sync() async throws -> Replicator.SyncResult {
        try await replicator.sync()
    }

    /// Runs `body` with a local read-only connection inside a read transaction (the fastest path:
    /// keep statements with `cachedStatement` and read columns directly).
    public func read<T>(_ body: (Connection) throws -> T) throws -> T {
        try replica.read(body)
    }

    /// Runs a read locally and returns its rows.
    public func query(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws -> [Row] {
        try replica.read { connection in
            let statement = try connection.cachedStatement(sql)
            defer { statement.reset() }
            try statement.bind(arguments)
            return try statement.rows()
        }
    }

    /// Runs a read locally and returns its first row, if any.
    public func queryOne(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws -> Row? {
        try replica.read { connection in
            let statement = try connection.cachedStatement(sql)
            defer { statement.reset() }
            try statement.bind(arguments)
            return try statement.step() ? statement.row() : nil
        }
    }

    /// Runs a statement on the primary; with read-your-writes, returns once the replica has it.
    @discardableResult
    public func execute(_ sql: String, _ arguments: [SQLiteValue] = []) async throws -> RemoteResult {
        let result = try await remote.execute(sql, arguments)
        if readYourWrites, let target = result.primaryPosition {
            let wanted = ReplicationPosition(generation: target.generation, frame: target.frame)
            var attempts = 0
            while (replica.position ?? ReplicationPosition(generation: 0, frame: 0)) < wanted, attempts < 50 {
                try await replicator.pull(wait: .milliseconds(200))
                attempts += 1
            }
        }
        return result
    }

    /// Closes the remote stream and the local files.
    public func close() async {
        await remote.close()
        replica.close()
    }
}
