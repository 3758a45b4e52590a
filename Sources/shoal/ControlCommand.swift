import ArgumentParser
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import ShoalControl
import ShoalHTTP
import ShoalServerKit

/// `shoal control`: runs the control plane (Platform API) over a SQLite or PostgreSQL catalog.
struct ControlCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control",
        abstract: "Run the control plane: organizations, groups, databases, tokens, placement (Platform API).")

    @Option(help: "Directory for the SQLite catalog and the admin token file.")
    var data = ".shoal/control"

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one and prints it).")
    var port = 8090

    @Option(
        help: ArgumentHelp(
            "PostgreSQL catalog URL (postgres://user[:password]@host[:port]/db[?schema=name]) for several instances; "
                + "default: a SQLite file in --data. Also read from SHOAL_CATALOG_URL."))
    var postgres: String?

    @Option(help: "Domain of database host names ({database}-{org}.{domain}).")
    var domain = "shoal.local"

    @Option(help: "Seconds without a heartbeat before a node counts as down.")
    var nodeTimeoutSeconds = 15

    @Option(
        help:
            "Days a deleted database's backups are kept (it can be undeleted meanwhile) before they are erased for good."
    )
    var backupGraceDays = 7

    @Flag(help: "Tell a new database's node at once (a creation fails if it cannot); default: on first use.")
    var eagerPlacement = false

    @Option(
        help: ArgumentHelp(
            "A file holding the key that seals the catalog's secrets (32 bytes, base64; `openssl rand -base64 32`). "
                + "Default: --data/sealing-key, created on first start. SHOAL_SEALING_KEY (the key itself) comes first. "
                + "Every instance over one catalog needs the same key."))
    var sealingKeyFile: String?

    @OptionGroup var connections: ConnectionOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard nodeTimeoutSeconds > 0 else { throw ValidationError("--node-timeout-seconds must be positive") }
        guard (0...3650).contains(backupGraceDays) else {
            throw ValidationError("--backup-grace-days must be between 0 and 3650")
        }
    }

    func run() async throws {
        var logger = Logger(label: "shoal.control")
        logger.logLevel = .info
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let store: any CatalogStore
        let catalogURL = postgres ?? ProcessInfo.processInfo.environment["SHOAL_CATALOG_URL"]
        if let catalogURL, !catalogURL.isEmpty {
            store = try PostgresCatalogStore(url: catalogURL, logger: logger)
        } else {
            store = try SQLiteCatalogStore(path: data + "/catalog.db")
        }
        // The catalog runs (PostgreSQL: its connection pool) around everything else, and stops last.
        try await store.whileRunning {
            do {
                try await store.migrate()
            } catch {
                throw ValidationError("cannot prepare the catalog: \(error); check --postgres or --data")
            }
            let sealer: SecretSealer
            do {
                sealer = try sealingKey(postgres: catalogURL?.isEmpty == false)
            } catch {
                throw ValidationError("\(error)")
            }
            let catalog = Catalog(
                store: store,
                configuration: .init(
                    domain: domain, nodeTimeout: .seconds(nodeTimeoutSeconds),
                    backupGracePeriod: .seconds(Int64(backupGraceDays) * 86_400)),
                sealer: sealer)
            do {
                let sealed = try await catalog.sealStoredSecrets()
                if sealed > 0 { say("sealed \(sealed) secrets an earlier version kept in clear in the catalog") }
            } catch {
                throw ValidationError("\(error)")
            }
            let registrationFile = data + "/node-registration-token"
            if let secret = try await catalog.bootstrapNodeRegistrationToken() {
                _ = FileManager.default.createFile(
                    atPath: registrationFile, contents: Data((secret + "\n").utf8),
                    attributes: [.posixPermissions: 0o600])
                say(
                    "created the node registration token; it is in \(registrationFile) "
                        + "(give it to nodes as --registration-token)")
            }
            let tokenFile = data + "/admin-token"
            if let secret = try await catalog.bootstrapAdminToken() {
                _ = FileManager.default.createFile(
                    atPath: tokenFile, contents: Data((secret + "\n").utf8), attributes: [.posixPermissions: 0o600])
                say("created the admin API token; it is in \(tokenFile) (keep it secret)")
            } else if !FileManager.default.fileExists(atPath: tokenFile) {
                say("the catalog already has an admin token (the instance that started first wrote it to its --data)")
            }
            let host = self.host
            let control = ControlPlane(
                catalog: catalog, eagerPlacement: eagerPlacement, connectionLimits: connections.limits(.controlPlane),
                logger: logger)
            let server = ListeningServer.listen(
                { port, onRunning in
                    control.application(host: host, port: port) { port in
                        say("shoal control listening on http://\(host):\(port)")
                        onRunning(port)
                    }
                }, host: host, port: port)
            // Deletions and settings pushes nodes have not confirmed are sent again until they do, and
            // this instance drives the schema rollouts whose lease it holds or can take. On SIGTERM or
            // SIGINT the group stops the server first (its requests finish), then these loops; then
            // the catalog closes.
            let group = ServiceGroup(
                configuration: .shoal(
                    services: [
                        UntilShutdown("deletion and settings retries") { await control.retryDeletions() },
                        UntilShutdown("backup erasures") { await control.runErasures() },
                        UntilShutdown("schema rollouts") { await control.runRollouts() },
                        server.server,
                    ], logger: logger))
            try await group.run()
        }
    }

    /// The sealing key: `SHOAL_SEALING_KEY`, else `--sealing-key-file`, else `--data/sealing-key`
    /// (created on first start).
    func sealingKey(postgres: Bool) throws -> SecretSealer {
        if let key = ProcessInfo.processInfo.environment["SHOAL_SEALING_KEY"], !key.isEmpty {
            return try SecretSealer(base64: key)
        }
        if let sealingKeyFile {
            return try SecretSealer.load(file: sealingKeyFile, createIfMissing: false).sealer
        }
        let file = data + "/sealing-key"
        let (sealer, created) = try SecretSealer.load(file: file, createIfMissing: true)
        if created {
            say(
                "created the key that seals the catalog's secrets; it is in \(file) (keep it secret, back it up"
                    + (postgres ? ", and give every instance over this catalog the same key)" : ")"))
        }
        return sealer
    }
}

/// A server that could not listen on its address, said so that the user knows what to do.
struct ListenFailure: Error, CustomStringConvertible {
    /// What happened and what to do.
    let description: String

    /// `error` explained when it is a failed bind of `host:port`; nil for any other error.
    init?(_ error: any Error, host: String, port: Int) {
        guard let error = error as? IOError else { return nil }
        switch error.errnoCode {
        case EADDRINUSE:
            description = "port \(port) on \(host) is already in use: stop what holds it or pass --port"
        case EACCES:
            description = "port \(port) on \(host) needs privileges this user does not have: pass --port above 1023"
        case EADDRNOTAVAIL:
            description = "\(host) is not an address of this machine: pass --host with one that is"
        default:
            return nil
        }
    }

    /// Runs `body`, a server listening on `host:port`; a failed bind comes out as a `ListenFailure`.
    static func explaining<T>(host: String, port: Int, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            if let failure = ListenFailure(error, host: host, port: port) { throw failure }
            throw error
        }
    }
}

/// Writes a line to standard output at once (scripts read it from a pipe).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Writes a line about what is going on to standard error (kept out of what scripts read).
func note(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
