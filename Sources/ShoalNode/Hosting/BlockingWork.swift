import ShoalSQLite

/// Runs blocking file work that belongs to no one database (placements, settings files, deletions)
/// on the process's `BlockingExecutor`, never on an event loop or Swift's cooperative pool. A
/// database's own SQLite work runs on its lane (`HostedDatabase.lane`).
enum BlockingWork {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await BlockingExecutor.shared.run(body)
    }
}
