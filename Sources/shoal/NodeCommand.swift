import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import ShoalHTTP
import ShoalModel
import ShoalNode
import ShoalSQLite
import ShoalServerKit

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

    @Option(
        help: ArgumentHelp(
            "Seconds a Hrana stream may stay idle before it expires, rolling back its open transaction "
                + "(default 10, as sqld)."))
    var streamIdleSeconds = 10

    @Flag(help: "Create a database on its first request instead of answering 404 (local development).")
    var createOnFirstUse = false

    @Flag(help: "Serve without authentication (local development only).")
    var noAuth = false

    @Option(help: "A trusted Ed25519 public key (32 bytes, base64url); repeat for several.")
    var jwtPublicKey: [String] = []

    @Option(help: "A JWKS file whose OKP/Ed25519 keys are trusted.")
    var jwksFile: String?

    @Option(help: "A JWKS URL whose OKP/Ed25519 keys are trusted (fetched at start, refreshed every 5 minutes).")
    var jwksURL: String?

    @Option(help: "A token id (jti) to refuse; repeat for several.")
    var revokedJti: [String] = []

    @Option(help: "The bearer token of the admin API (off when tokens are on and this is not given).")
    var adminToken: String?

    @Option(help: "The control plane's URL: register there, send heartbeats, take its token policy.")
    var control: String?

    @Option(
        help: ArgumentHelp(
            "The node registration token (`shoal control` writes it to its --data/node-registration-token; also read "
                + "from SHOAL_NODE_REGISTRATION_TOKEN). Needed until the node has its credential (--data/node-credential)."
        ))
    var registrationToken: String?

    /// Nodes no longer hold the admin token; kept only to say what replaced it.
    @Option(help: .hidden)
    var controlToken: String?

    @Option(help: "The URL others reach this node at (default: http://HOST:PORT).")
    var advertise: String?

    @Option(
        help: ArgumentHelp(
            "Seconds the node keeps trusting tokens without a fresh token policy (revocations, rotations) from "
                + "--control or --jwks-url; past it every token is refused with 503 until the source answers "
                + "(default 300 with --control, 900 with --jwks-url; 0 trusts forever)."))
    var maxPolicyAge: Int?

    @OptionGroup var connections: ConnectionOptions

    @OptionGroup var backups: BackupOptions

    @Option(help: "Threads for SQLite and file work (default: twice the cores, at least 4).")
    var sqliteThreads: Int?

    @Option(help: "How many of those threads one database may use at once; the rest of its work waits, holding none.")
    var threadsPerDatabase = 1

    @Option(
        help:
            "Megabytes SQLite may allocate in the whole process; past it statements fail with SQLITE_NOMEM (0: no limit)."
    )
    var sqliteHeapLimitMb = 0

    @Option(
        help: "Megabytes of results all requests may hold at once; past it a request is refused (RESPONSE_TOO_LARGE).")
    var responseBudgetMb = 256

    @Option(help: "Seconds one HTTP request's statements may run in all, waits for the write turn included.")
    var requestTimeLimitSeconds = 10.0

    @Option(help: "The most Hrana streams open at once per token, per organization and on the node (TOKEN,ORG,NODE).")
    var streamLimits = "100,500,5000"

    @Option(
        help: "The most /sync long-polls waiting at once per token, per organization and on the node (TOKEN,ORG,NODE).")
    var longPollLimits = "50,200,2000"

    @Option(
        help:
            "The most whole-database Turso Sync answers (/pull-updates bootstraps) at once per token, per organization and on the node (TOKEN,ORG,NODE)."
    )
    var snapshotLimits = "2,8,32"

    @Option(
        help:
            "The most Hrana WebSocket connections open at once (from their hello) per token, per organization and on the node (TOKEN,ORG,NODE)."
    )
    var webSocketLimits = "50,500,5000"

    /// Three positive caps `TOKEN,ORG,NODE`, or a validation error naming the option.
    static func admissionLimits(_ text: String, option: String) throws -> NodeConfiguration.AdmissionLimits {
        let numbers = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard numbers.count == 3, numbers.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--\(option) takes three positive numbers, TOKEN,ORG,NODE (for example 100,500,5000)")
        }
        return .init(perToken: numbers[0], perOrganization: numbers[1], perNode: numbers[2])
    }

    func validate() throws {
        if let maxPolicyAge, maxPolicyAge < 0 {
            throw ValidationError("--max-policy-age is a number of seconds, 0 or more (0: no bound)")
        }
        if control != nil {
            guard !noAuth else {
                throw ValidationError("a node under a control plane verifies its tokens; drop --no-auth")
            }
            guard controlToken == nil else {
                throw ValidationError(
                    "--control-token is gone: a node no longer holds the admin token. Give --registration-token "
                        + "(or SHOAL_NODE_REGISTRATION_TOKEN): the node registration token in the control plane's "
                        + "--data/node-registration-token")
            }
            guard givenRegistrationToken != nil || FileManager.default.fileExists(atPath: credentialFile) else {
                throw ValidationError(
                    "give --registration-token (or SHOAL_NODE_REGISTRATION_TOKEN): the node registration token "
                        + "`shoal control` wrote to its --data/node-registration-token")
            }
            guard URL(string: control ?? "")?.host != nil else {
                throw ValidationError("--control must be a URL like http://127.0.0.1:8090")
            }
        }
        if let jwksURL, URL(string: jwksURL)?.host == nil {
            throw ValidationError("--jwks-url must be an http(s) URL, like http://control:8090/.well-known/jwks.json")
        }
        guard noAuth || control != nil || !jwtPublicKey.isEmpty || jwksFile != nil || jwksURL != nil else {
            throw ValidationError(
                "give --control URL (keys come from the control plane), --jwt-public-key or --jwks-file, "
                    + "or --no-auth for local development")
        }
        guard !(noAuth && (!jwtPublicKey.isEmpty || jwksFile != nil || jwksURL != nil)) else {
            throw ValidationError("--no-auth cannot be combined with keys; choose one")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard maxOpenDatabases > 0 else { throw ValidationError("--max-open-databases must be positive") }
        if let sqliteThreads, !(1...1024).contains(sqliteThreads) {
            throw ValidationError("--sqlite-threads must be 1...1024")
        }
        guard threadsPerDatabase > 0 else { throw ValidationError("--threads-per-database must be positive") }
        guard (32...(1 << 30)).contains(responseBudgetMb) else {
            throw ValidationError("--response-budget-mb must be at least 32 (one request's largest answer)")
        }
        guard (0...(1 << 30)).contains(sqliteHeapLimitMb) else {
            throw ValidationError("--sqlite-heap-limit-mb must be 0 (no limit) or a positive number of megabytes")
        }
        guard requestTimeLimitSeconds > 0, requestTimeLimitSeconds <= 3600 else {
            throw ValidationError("--request-time-limit-seconds must be more than 0 and at most 3600")
        }
        _ = try Self.admissionLimits(streamLimits, option: "stream-limits")
        _ = try Self.admissionLimits(longPollLimits, option: "long-poll-limits")
        _ = try Self.admissionLimits(snapshotLimits, option: "snapshot-limits")
        _ = try Self.admissionLimits(webSocketLimits, option: "web-socket-limits")
    }

    /// The registration token from `--registration-token` or `SHOAL_NODE_REGISTRATION_TOKEN`.
    var givenRegistrationToken: String? {
        let token = registrationToken ?? ProcessInfo.processInfo.environment["SHOAL_NODE_REGISTRATION_TOKEN"]
        return token?.isEmpty == false ? token : nil
    }

    /// Where the node keeps the credential its registration issued.
    var credentialFile: String { data + "/node-credential" }

    /// The keys given on the command line (`--jwt-public-key`, `--jwks-file`).
    func givenKeys() throws -> [String: [UInt8]] {
        var keys: [String: [UInt8]] = [:]
        for (index, text) in jwtPublicKey.enumerated() {
            guard let bytes = Base64URL.decode(text) else {
                throw ValidationError("--jwt-public-key \(index + 1) is not base64url")
            }
            keys["key-\(index)"] = bytes
        }
        if let jwksFile {
            guard let data = FileManager.default.contents(atPath: jwksFile) else {
                throw ValidationError("cannot read the JWKS file \(jwksFile)")
            }
            keys.merge(try TokenVerifier.keys(fromJWKS: data)) { first, _ in first }
        }
        return keys
    }

    func authentication(fetched: [String: [UInt8]] = [:]) throws -> NodeConfiguration.Authentication {
        if noAuth { return .none }
        let keys = try givenKeys().merging(fetched) { given, _ in given }
        return .tokens(
            try TokenVerifier(
                keys: keys, revoked: Set(revokedJti), allowNoKeys: control != nil, maxPolicyAge: policyAgeLimit),
            adminToken: adminToken ?? (control != nil ? Self.randomSecret() : nil))
    }

    /// How long tokens are trusted without a fresh policy: nil with keys given only on the command
    /// line (nothing refreshes them), or when `--max-policy-age 0` asks for no bound.
    var policyAgeLimit: TimeInterval? {
        let given = maxPolicyAge ?? (control != nil ? 300 : jwksURL != nil ? 900 : 0)
        guard given > 0, control != nil || jwksURL != nil else { return nil }
        return TimeInterval(given)
    }

    static func randomSecret() -> String {
        (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    func run() async throws {
        var logger = Logger(label: "shoal.node")
        logger.logLevel = .info
        let jwks = jwksURL.flatMap(URL.init(string:)).map { JWKSSource(url: $0) }
        var fetched: [String: [UInt8]] = [:]
        if let jwks {
            do {
                fetched = try await jwks.fetch()
            } catch {
                throw ValidationError("\(error); the node needs its keys to start")
            }
        }
        var nodeConfiguration = NodeConfiguration(
            dataDirectory: data, location: location, maxOpenDatabases: maxOpenDatabases,
            streamIdleTimeout: .seconds(streamIdleSeconds), createOnFirstUse: createOnFirstUse,
            authentication: try authentication(fetched: fetched))
        nodeConfiguration.connectionLimits = connections.limits(.node)
        if let sqliteThreads {
            nodeConfiguration.executor = BlockingExecutor(
                threads: sqliteThreads, name: "shoal.sqlite", heavyWork: .init())
        }
        nodeConfiguration.threadsPerDatabase = threadsPerDatabase
        nodeConfiguration.responseBudget = ResponseBudget(limit: responseBudgetMb << 20)
        if sqliteHeapLimitMb > 0 { Connection.setProcessHeapLimit(bytes: Int64(sqliteHeapLimitMb) << 20) }
        nodeConfiguration.requestTimeLimit = .milliseconds(Int64(requestTimeLimitSeconds * 1000))
        nodeConfiguration.streamLimits = try Self.admissionLimits(streamLimits, option: "stream-limits")
        nodeConfiguration.longPollLimits = try Self.admissionLimits(longPollLimits, option: "long-poll-limits")
        nodeConfiguration.snapshotLimits = try Self.admissionLimits(snapshotLimits, option: "snapshot-limits")
        nodeConfiguration.webSocketLimits = try Self.admissionLimits(webSocketLimits, option: "web-socket-limits")
        nodeConfiguration.backupStore = try backups.store()
        if let store = nodeConfiguration.backupStore {
            logger.info("backup.store", metadata: ["location": "\(store.location)"])
        }
        let node = try Node(configuration: nodeConfiguration, logger: logger)
        let givenKeys = try self.givenKeys()
        let revoked = Set(revokedJti)
        let host = self.host
        let location = self.location
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let server = ListeningServer.listen(
            { port, onRunning in
                node.application(host: host, port: port) { port in
                    // Written straight to the descriptor, so a script reading the pipe sees it at once.
                    FileHandle.standardOutput.write(
                        Data("shoal node (\(location)) listening on http://\(host):\(port)\n".utf8))
                    portContinuation.yield(port)
                    onRunning(port)
                }
            }, host: host, port: port)
        let controlURL = control.flatMap(URL.init(string:))
        let registrationToken = givenRegistrationToken
        let credentialFile = self.credentialFile
        let advertise = self.advertise
        let dataDirectory = data
        let jwksLogger = logger
        // The group stops its services in reverse order on SIGTERM or SIGINT: the server first (its
        // requests finish), then the link and the key refresh, then the upkeep; then the node closes.
        var services: [any Service] = [UntilShutdown("node upkeep") { await node.runMaintenance() }]
        if let jwks, case .tokens(let verifier, _) = node.configuration.authentication {
            services.append(
                UntilShutdown("JWKS refresh") {
                    await jwks.keepFresh(verifier, extraKeys: givenKeys, revoked: revoked, logger: jwksLogger)
                })
        }
        if let controlURL {
            services.append(
                UntilShutdown("control plane link") {
                    var iterator = ports.makeAsyncIterator()
                    guard let port = await iterator.next() else { return }
                    var adminToken: String?
                    if case .tokens(_, let token) = node.configuration.authentication { adminToken = token }
                    let link = ControlPlaneLink(
                        configuration: .init(
                            controlURL: controlURL, registrationToken: registrationToken, location: location,
                            advertisedURL: advertise ?? "http://\(host):\(port)", nodeAdminToken: adminToken,
                            identityFile: dataDirectory + "/node-id", credentialFile: credentialFile),
                        node: node)
                    await link.run()
                })
        }
        services.append(server.server)
        let group = ServiceGroup(configuration: .shoal(services: services, logger: logger))
        do {
            try await group.run()
        } catch {
            await node.shutdown()
            throw error
        }
        await node.shutdown()
    }
}
