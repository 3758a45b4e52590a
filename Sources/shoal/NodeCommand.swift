import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ShoalNode

/// `shoal node`: runs a data plane node.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run a data plane node: hosts databases and speaks the libSQL protocols.")

    @Option(help: "Directory for the node's databases.")
    var data = ".shoal/node"

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one and prints it).")
    var port = 8080

    @Option(help: "The location code this node serves.")
    var location = "local"

    @Option(help: "The most databases open at once.")
    var maxOpenDatabases = 1000

    @Option(help: "Seconds a Hrana stream may stay idle before it expires.")
    var streamIdleSeconds = 300

    @Flag(help: "Create a database on its first request instead of answering 404 (local development).")
    var createOnFirstUse = false

    @Flag(help: "Serve without authentication (local development only).")
    var noAuth = false

    func validate() throws {
        guard noAuth else {
            throw ValidationError(
                "token verification is not built yet: run with --no-auth, and only on a trusted network")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard maxOpenDatabases > 0 else { throw ValidationError("--max-open-databases must be positive") }
    }

    func run() async throws {
        var logger = Logger(label: "shoal.node")
        logger.logLevel = .info
        let node = try Node(
            configuration: NodeConfiguration(
                dataDirectory: data, location: location, maxOpenDatabases: maxOpenDatabases,
                streamIdleTimeout: .seconds(streamIdleSeconds), createOnFirstUse: createOnFirstUse),
            logger: logger)
        let host = self.host
        let location = self.location
        let app = Application(
            router: node.router(),
            configuration: .init(address: .hostname(host, port: port), serverName: Node.version),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                // Written straight to the descriptor, so a script reading the pipe sees it at once.
                FileHandle.standardOutput.write(
                    Data("shoal node (\(location)) listening on http://\(host):\(port)\n".utf8))
            },
            logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await node.runMaintenance() }
            try await app.runService()
            group.cancelAll()
        }
        await node.shutdown()
    }
}
