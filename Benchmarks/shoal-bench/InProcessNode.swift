import Foundation
import Hummingbird
import Logging
import ShoalNode

/// A node on a loopback port in this process, for the benchmarks that talk HTTP.
enum InProcessNode {
    /// Starts a node over a scratch directory, runs `body` with its port and directory, stops it.
    static func run(
        name: String, configure: (inout NodeConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (Int, String) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("shoal-bench-\(name)-\(ProcessInfo.processInfo.processIdentifier)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var logger = Logger(label: "shoal.bench")
        logger.logLevel = .critical
        var configuration = NodeConfiguration(dataDirectory: directory + "/node", createOnFirstUse: true)
        configure(&configuration)
        let node = try Node(configuration: configuration, logger: logger)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = node.application(host: "127.0.0.1", port: 0) { continuation.yield($0) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw BenchError("the node did not start") }
            try await body(port, directory)
            group.cancelAll()
        }
        await node.shutdown()
    }
}
