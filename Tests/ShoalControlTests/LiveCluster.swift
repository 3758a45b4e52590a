import Foundation
import Hummingbird
import Logging
import ShoalBackup
import ShoalControl
import ShoalHTTP
import ShoalModel
import ShoalNode
import ShoalServerKit
import ShoalTestSupport
import Synchronization
import Testing

/// The two catalog backends every contract test runs against.
enum CatalogBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgresql

    var testDescription: String { rawValue }

    /// The PostgreSQL server the tests use (`ops/test` starts one and sets this).
    static var postgresURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["SHOAL_TEST_POSTGRES_URL"], !url.isEmpty else {
                throw ClusterError(
                    "SHOAL_TEST_POSTGRES_URL is not set: run the tests with ops/test, or start a server with "
                        + "`ops/postgres start .build-pg` and export the URL it prints")
            }
            return url
        }
    }

    /// A fresh, empty store: a new SQLite file, or a new schema in the test PostgreSQL database.
    func makeStore(directory: String, schema: String) throws -> any CatalogStore {
        switch self {
        case .sqlite:
            return try SQLiteCatalogStore(path: directory + "/catalog.db")
        case .postgresql:
            var logger = Logger(label: "shoal.control.test.postgres")
            logger.logLevel = .warning
            let url = try Self.postgresURL
            return try PostgresCatalogStore(
                url: url + (url.contains("?") ? "&" : "?") + "schema=\(schema)", logger: logger)
        }
    }
}

/// Test time: milliseconds since 1970, moved forward by tests.
final class TestTime: Sendable {
    private let offset = Mutex<Int64>(0)

    func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) + offset.withLock { $0 } }

    func advance(seconds: Int64) { offset.withLock { $0 += seconds * 1000 } }
}

/// A control plane on a loopback port (over a fresh catalog) and one node per location, each
/// registered with it through its `ControlPlaneLink`, as in production.
struct LiveCluster: Sendable {
    let controlURL: String
    let adminToken: String
    /// The node registration token the nodes registered with.
    let registrationToken: String
    let catalog: Catalog
    /// The catalog's store, for tests that look at what the catalog holds.
    let store: any CatalogStore
    let time: TestTime
    let nodes: [String: LiveClusterNode]
    let schema: String
    let backend: CatalogBackend

    struct LiveClusterNode: Sendable {
        let url: String
        let node: Node
        /// The id the control plane gave it.
        let id: String
        /// Where its link keeps the credential its registration issued.
        let credentialFile: String

        /// The node's current credential.
        func credential() throws -> String {
            try String(contentsOfFile: credentialFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// Starts the cluster, runs `body`, stops everything.
    static func with(
        _ backend: CatalogBackend, locations: [String] = ["fra"], eagerPlacement: Bool = false,
        tokenLeeway: TimeInterval = TokenVerifier.defaultLeeway, backups: Bool = false,
        _ body: @Sendable (LiveCluster) async throws -> Void
    ) async throws {
        let scratch = try TemporaryDirectory()
        let directory = scratch.path
        defer { withExtendedLifetime(scratch) {} }
        let schema = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        let store = try backend.makeStore(directory: directory, schema: String(schema))
        let time = TestTime()
        // The store runs (PostgreSQL: its pool) around everything else, and closes last.
        try await store.whileRunning {
            try await store.migrate()
            let catalog = Catalog(store: store, now: { time.now() })
            guard let adminToken = try await catalog.bootstrapAdminToken(),
                let registrationToken = try await catalog.bootstrapNodeRegistrationToken()
            else {
                throw ClusterError("a fresh catalog already had an admin token or a node registration token")
            }
            var logger = Logger(label: "shoal.control.test")
            logger.logLevel = .critical
            // Heartbeats every second (5 s in production), so storage reports arrive quickly.
            let control = ControlPlane(
                catalog: catalog, eagerPlacement: eagerPlacement, heartbeatInterval: .seconds(1), logger: logger)
            let pending = PendingWork()
            defer { pending.watch.withLock { $0?.cancel() } }
            // The servers stop first (their requests may still use the catalog), then the catalog.
            try await serve(
                control: control, catalog: catalog, store: store, adminToken: adminToken,
                registrationToken: registrationToken, time: time, locations: locations, tokenLeeway: tokenLeeway,
                backups: backups, directory: directory, schema: String(schema), backend: backend, pending: pending,
                logger: logger, body)
        }
    }

    private static func serve(
        control: ControlPlane, catalog: Catalog, store: any CatalogStore, adminToken: String,
        registrationToken: String, time: TestTime, locations: [String], tokenLeeway: TimeInterval,
        backups: Bool, directory: String, schema: String, backend: CatalogBackend, pending: PendingWork,
        logger: Logger,
        _ body: @Sendable (LiveCluster) async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            let controlPort = try await start(
                "control plane server", { control.application(host: "127.0.0.1", port: 0, onRunning: $0) },
                in: &group, pending: pending)
            let controlURL = "http://127.0.0.1:\(controlPort)"
            // Deletions and settings pushes nodes have not confirmed are sent again, as `shoal control`
            // does (faster).
            group.addTask {
                await pending.run("deletion retries") { await control.retryDeletions(every: .milliseconds(200)) }
            }
            group.addTask {
                await pending.run("rollouts") { await control.runRollouts(every: .milliseconds(100)) }
            }
            group.addTask {
                await pending.run("backup erasures") { await control.runErasures(every: .milliseconds(200)) }
            }
            var nodes: [String: LiveClusterNode] = [:]
            var started: [Node] = []
            for location in locations {
                let nodeAdmin = "node-admin-\(location)"
                var configuration = NodeConfiguration(
                    dataDirectory: directory + "/node-\(location)", location: location,
                    authentication: .tokens(
                        try TokenVerifier(keys: [:], allowNoKeys: true, leeway: tokenLeeway), adminToken: nodeAdmin))
                // A loaded test machine can take seconds to bootstrap a replica.
                configuration.replicaCatchUpTimeout = .seconds(30)
                // One backup store for every node, as a platform has.
                if backups {
                    configuration.backupStore = try DirectoryObjectStore(root: directory + "/backups")
                    configuration.backupShipping.batchDelay = .milliseconds(20)
                }
                let node = try Node(configuration: configuration, logger: logger)
                started.append(node)
                let port = try await start(
                    "node server \(location)", { node.application(host: "127.0.0.1", port: 0, onRunning: $0) },
                    in: &group, pending: pending)
                let url = "http://127.0.0.1:\(port)"
                let credentialFile = directory + "/node-\(location)/node-credential"
                let link = ControlPlaneLink(
                    configuration: .init(
                        controlURL: URL(string: controlURL)!, registrationToken: registrationToken,
                        location: location, advertisedURL: url, nodeAdminToken: nodeAdmin,
                        credentialFile: credentialFile),
                    node: node)
                let (id, _) = try await link.register()
                group.addTask { await pending.run("control link \(location)") { await link.run() } }
                nodes[location] = LiveClusterNode(url: url, node: node, id: id, credentialFile: credentialFile)
            }
            let cluster = LiveCluster(
                controlURL: controlURL, adminToken: adminToken, registrationToken: registrationToken,
                catalog: catalog, store: store, time: time, nodes: nodes, schema: schema, backend: backend)
            func tearDown() async {
                pending.report(after: .seconds(30), of: "LiveCluster(\(backend)) teardown")
                group.cancelAll()
                for (index, node) in started.enumerated() {
                    await pending.run("node.shutdown \(locations[index])") { await node.shutdown() }
                }
            }
            do {
                try await body(cluster)
            } catch {
                await tearDown()
                throw error
            }
            await tearDown()
        }
    }

    /// Runs `app` in `group`; returns its port once it listens.
    static func start(
        _ name: String,
        _ makeApp: (@escaping @Sendable (Int) -> Void) -> Application<RouterResponder<ServerRequestContext>>,
        in group: inout ThrowingTaskGroup<Void, any Error>, pending: PendingWork = PendingWork()
    ) async throws -> Int {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = makeApp { continuation.yield($0) }
        group.addTask { try await pending.run(name) { try await app.run() } }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw ClusterError("a server did not start") }
        return port
    }

    // MARK: - Requests

    /// Sends a request to the control plane (with the admin token unless `token` is given).
    func call(
        _ method: String, _ path: String, json: Any? = nil, token: String? = nil
    ) async throws -> Answer {
        try await Self.send(method, controlURL + path, json: json, token: token ?? adminToken)
    }

    /// Sends a request to any URL.
    static func send(
        _ method: String, _ url: String, json: Any? = nil, token: String?, rawBody: Data? = nil
    )
        async throws -> Answer
    {
        let body = try json.map { try JSONSerialization.data(withJSONObject: $0) } ?? rawBody
        let answer = try await OutboundHTTP.send(HTTPCall(method, URL(string: url)!, bearer: token, body: body))
        return Answer(status: answer.status, data: answer.body)
    }

    /// Creates an organization and a group in `location`; returns nothing, throws on refusal.
    func makeGroup(
        organization: String, group: String, location: String = "fra", rule: [String: Any]? = nil, plan: String = "free"
    ) async throws {
        let created = try await call("POST", "/v1/organizations", json: ["slug": organization, "plan": plan])
        guard created.status == 200 || created.status == 409 else {
            throw ClusterError("creating organization \(organization): \(created.status) \(created.text)")
        }
        var body: [String: Any] = ["name": group, "location": location]
        if let rule { body["region_rule"] = rule }
        let answer = try await call("POST", "/v1/organizations/\(organization)/groups", json: body)
        guard answer.status == 200 else {
            throw ClusterError("creating group \(group): \(answer.status) \(answer.text)")
        }
    }

    /// Runs one statement on a database through its node with `token`; returns the pipeline answer.
    static func execute(_ sql: String, at baseURL: String, token: String?) async throws -> Answer {
        try await send(
            "POST", baseURL + "/v2/pipeline",
            json: ["requests": [["type": "execute", "stmt": ["sql": sql]], ["type": "close"]]], token: token)
    }
}

/// A response: status and body.
struct Answer: Sendable {
    let status: Int
    let data: Data

    var text: String { String(decoding: data, as: UTF8.self) }

    /// The body as a JSON object (empty if it is not one).
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:] }

    /// The error code of an error answer.
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }

    /// The error message of an error answer.
    var errorMessage: String { ((json["error"] as? [String: Any])?["message"] as? String) ?? "" }

    /// Whether a pipeline answer's first result is an error.
    var pipelineFailed: Bool {
        ((json["results"] as? [[String: Any]])?.first?["type"] as? String) == "error"
    }
}

struct ClusterError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The named pieces of work of a test fixture still running; a teardown that takes too long says
/// which (a hanging test then names what it waits for instead of hanging silently).
final class PendingWork: Sendable {
    private let running = Mutex<[String: Int]>([:])
    /// The report's timer, cancelled when the teardown is over.
    let watch = Mutex<Task<Void, Never>?>(nil)

    func run<T>(_ name: String, _ body: () async throws -> T) async rethrows -> T {
        running.withLock { $0[name, default: 0] += 1 }
        defer {
            running.withLock { running in
                let left = (running[name] ?? 1) - 1
                running[name] = left > 0 ? left : nil
            }
        }
        return try await body()
    }

    /// After `delay`, unless cancelled first, prints to standard error what is still running.
    func report(after delay: Duration, of what: String) {
        let task = Task.detached { [self] in
            guard (try? await Task.sleep(for: delay)) != nil else { return }
            let names = running.withLock { $0.keys.sorted() }
            FileHandle.standardError.write(
                Data("\(what) still waits after \(delay) for: \(names.joined(separator: ", "))\n".utf8))
        }
        watch.withLock { $0 = task }
    }
}
