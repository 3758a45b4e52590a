import NIOPosix

/// Runs blocking SQLite and file work on NIO's thread pool, never on an event loop or Swift's
/// cooperative pool.
enum BlockingWork {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }
}
