import Foundation
import ShoalReplication
import ShoalSQLite

/// One database hosted by the node: its primary log, from which streams get their connections.
public final class HostedDatabase: Sendable {
    /// Its name.
    public let namespace: Namespace
    /// The primary log (frames for `/sync`, the base for `/export`).
    public let log: PrimaryLog
    let configuration: NodeConfiguration

    init(namespace: Namespace, directory: String, configuration: NodeConfiguration) throws {
        self.namespace = namespace
        self.configuration = configuration
        log = try PrimaryLog(
            directory: directory, configuration: .init(rollThresholdBytes: configuration.rollThresholdBytes))
    }

    /// A new connection for a stream, sandboxed.
    func makeConnection() throws -> Connection {
        let connection = try log.makeConnection()
        try Sandbox.apply(to: connection, configuration: configuration)
        return connection
    }

    func close() {
        log.close()
    }
}
