import Foundation
import ShoalBackup
import ShoalReplication
import ShoalSQLite
import ShoalTestSupport
import Synchronization

/// Primary logs by database id, as a node's store would give them to the shipper.
final class LogShelf: BackupSource {
    private let logs = Mutex<[String: PrimaryLog]>([:])
    private let retentions = Mutex<[String: Duration]>([:])

    func setRetention(_ id: String, _ retention: Duration) { retentions.withLock { $0[id] = retention } }
    func retention(_ id: String) async -> Duration? { retentions.withLock { $0[id] } }

    func add(_ id: String, _ log: PrimaryLog) { logs.withLock { $0[id] = log } }
    func remove(_ id: String) { _ = logs.withLock { $0.removeValue(forKey: id) } }

    func withPrimaryLog<T: Sendable>(
        _ id: String, _ body: @Sendable (PrimaryLog) async throws -> T
    ) async throws -> T? {
        guard let log = logs.withLock({ $0[id] }) else { return nil }
        return try await body(log)
    }
}

/// A real directory store that can be taken down: while `down`, every call fails the way an
/// unreachable store does. Counts the calls that reached the store.
final class OutageStore: ObjectStore {
    let inner: DirectoryObjectStore
    private let state = Mutex((down: false, calls: 0))

    init(_ inner: DirectoryObjectStore) { self.inner = inner }

    var location: String { inner.location }
    var down: Bool {
        get { state.withLock { $0.down } }
        set { state.withLock { $0.down = newValue } }
    }
    var calls: Int { state.withLock { $0.calls } }

    private func enter() throws {
        let down = state.withLock { state -> Bool in
            state.calls += 1
            return state.down
        }
        if down { throw ObjectStoreError("\(location) cannot be reached (connection refused)") }
    }

    func put(_ key: String, _ bytes: [UInt8]) async throws {
        try enter()
        try await inner.put(key, bytes)
    }

    func get(_ key: String) async throws -> [UInt8]? {
        try enter()
        return try await inner.get(key)
    }

    func list(prefix: String) async throws -> [String] {
        try enter()
        return try await inner.list(prefix: prefix)
    }

    func delete(_ keys: [String]) async throws {
        try enter()
        try await inner.delete(keys)
    }
}

extension PrimaryLog {
    /// Runs SQL under a write permit.
    func write(_ connection: Connection, _ sql: String, _ arguments: [any SQLiteBindable] = []) throws {
        try withWritePermit {
            if arguments.isEmpty { try connection.execute(sql) } else { try connection.execute(sql, arguments) }
        }
    }
}

/// The contents of a database file, read through a connection of its own.
func contents(ofFile path: String) throws -> DatabaseContents {
    let connection = try Connection(path: path, configuration: .init(flags: [.readWrite, .noMutex]))
    defer { try? connection.close() }
    return try DatabaseContents(connection)
}

/// `PRAGMA integrity_check` of a database file.
func integrity(ofFile path: String) throws -> String {
    let connection = try Connection(path: path, configuration: .init(flags: [.readWrite, .noMutex]))
    defer { try? connection.close() }
    return try connection.queryOne("PRAGMA integrity_check")?[0].textValue ?? ""
}
