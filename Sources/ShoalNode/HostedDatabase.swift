import Foundation
import ShoalReplication
import ShoalSQLite
import Synchronization

/// One database hosted by the node: its primary log, from which streams get their connections.
public final class HostedDatabase: Sendable {
    /// Its name.
    public let namespace: Namespace
    /// The primary log (frames for `/sync`, the base for `/export`).
    public let log: PrimaryLog
    let configuration: NodeConfiguration
    /// Its directory.
    let directory: String
    private let currentSettings: Mutex<DatabaseSettings>

    init(namespace: Namespace, directory: String, configuration: NodeConfiguration) throws {
        self.namespace = namespace
        self.configuration = configuration
        self.directory = directory
        log = try PrimaryLog(
            directory: directory, configuration: .init(rollThresholdBytes: configuration.rollThresholdBytes))
        currentSettings = Mutex(try DatabaseSettings.load(directory: directory))
    }

    /// The settings in force.
    public var settings: DatabaseSettings { currentSettings.withLock { $0 } }

    /// Stores new settings; they apply to connections opened from now on (and blocks at once).
    func update(_ settings: DatabaseSettings) throws {
        try settings.save(directory: directory)
        currentSettings.withLock { $0 = settings }
    }

    /// A new connection for a stream, sandboxed, with the size limit applied.
    func makeConnection() throws -> Connection {
        let connection = try log.makeConnection()
        if let maxSize = settings.maxSizeBytes {
            try connection.execute("PRAGMA max_page_count = \(max(1, maxSize / 4096))")
        }
        try Sandbox.apply(to: connection, configuration: configuration)
        return connection
    }

    func close() {
        log.close()
    }
}
