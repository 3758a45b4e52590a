import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import ShoalHTTP
import ShoalModel
import ShoalReplication
import ShoalServerKit

/// The data plane node: hosts databases and speaks the libSQL protocols (Hrana over HTTP and the
/// sync protocol) plus a small admin API.
public final class Node: Sendable {
    /// The configuration in force.
    public let configuration: NodeConfiguration
    /// The hosted databases.
    public let store: DatabaseStore
    let streams: StreamRegistry
    /// The `/sync?wait_ms=` long-polls waiting now, by token and organization (capped).
    let longPolls: AdmissionLedger
    /// Whole-database Turso Sync answers being built or sent.
    let snapshots: AdmissionLedger
    /// Hrana WebSocket connections that said hello, by token and organization (`webSocketLimits`).
    let webSockets: AdmissionLedger
    let metrics = NodeMetrics()
    let logger: Logger
    /// The version string `GET /version` reports.
    public static let version = "shoal-node 0.1.0"

    /// A node over `configuration.dataDirectory`.
    public init(configuration: NodeConfiguration, logger: Logger = Logger(label: "shoal.node")) throws {
        try FileManager.default.createDirectory(
            atPath: configuration.dataDirectory + "/databases", withIntermediateDirectories: true)
        self.configuration = configuration
        self.logger = logger
        store = DatabaseStore(configuration: configuration, logger: logger)
        streams = StreamRegistry(idleTimeout: configuration.streamIdleTimeout, limits: configuration.streamLimits)
        longPolls = AdmissionLedger(
            what: "waiting /sync long-polls", remedy: "poll again after Retry-After, or without wait_ms",
            limits: configuration.longPollLimits)
        snapshots = AdmissionLedger(
            what: "whole-database /pull-updates answers",
            remedy: "pull again after Retry-After; a client that keeps its revision gets only the changed pages",
            limits: configuration.snapshotLimits)
        webSockets = AdmissionLedger(
            what: "Hrana WebSocket connections",
            remedy: "run more streams on the connections already open (each holds up to 128), or close idle ones",
            limits: configuration.webSocketLimits)
    }

    /// The routes anyone may call without a token (as the router describes them): health, metrics,
    /// the version and the version probes clients send before their first request. Every other
    /// route refuses a call without a token (`NodeRouteAuthTests` checks each one the router holds).
    public static let publicRoutes: Set<String> = {
        var routes: Set<String> = ["GET /health", "GET /metrics", "GET /version", "GET /v3-protobuf"]
        for probe in ["v1", "v2", "v3"] {
            routes.insert("GET /\(probe)")
            routes.insert("GET /db/{org}/{database}/\(probe)")
        }
        return routes
    }()

    /// The node's routes.
    public func router() -> Router<ServerRequestContext> {
        let router = Router(context: ServerRequestContext.self)
        router.add(middleware: BearerTokenParsing())
        router.add(
            middleware: RequestMetricsMiddleware(
                metrics.server, classify: { NodeMetrics.Route(path: $0.uri.path).rawValue },
                onUnrouted: UnroutedRequests.log))
        router.addProbes(version: Self.version, metrics: metrics.server) {
            let pool = self.store.pool.statistics
            self.metrics.update(
                .init(
                    databasesOpen: pool.open, streamsOpen: self.streams.count,
                    streamsHeld: self.streams.admission.total, streamCap: self.configuration.streamLimits.perNode,
                    longPollsHeld: self.longPolls.total, longPollCap: self.configuration.longPollLimits.perNode,
                    sqliteThreads: self.configuration.executor.threadCount,
                    sqliteQueued: self.configuration.executor.queuedCount),
                opens: pool.opens, evictions: pool.evictions)
            if let backups = self.store.backups { self.metrics.updateBackups(backups.statistics) }
        }
        // Clients probe the version at the root and under a database's path prefix alike.
        for probe in ["v1", "v2", "v3"] {
            for path in [probe, "db/:org/:database/\(probe)"] {
                router.get(RouterPath(path)) { _, _ in "Hello, this is HTTP API \(probe) (Hrana over HTTP)" }
            }
        }
        router.get("v3-protobuf") { _, _ -> HTTPResponse.Status in .notFound }
        // Every route below needs a token when the node checks tokens: a request without one is
        // refused before its handler runs (which then checks what the token grants).
        let secured = router.group()
        if case .tokens = configuration.authentication {
            secured.add(
                middleware: BearerTokenRequired { presented in
                    NodeError.unauthorized(
                        presented == .missing
                            ? "send a token as Authorization: Bearer <token>"
                            : "the Authorization header must be Bearer <token>")
                })
        }
        addDatabaseRoutes(secured)
        addDatabaseRoutes(secured.group("db/:org/:database"))
        let organizationOnly = secured.group("db/:org")
        organizationOnly.post("v1/execute") { request, context in try await self.v1Execute(request, context) }
        organizationOnly.post("v1/batch") { request, context in try await self.v1Batch(request, context) }
        addAdminRoutes(secured.group("v1/namespaces/:org/:database"))
        addPolicyRoute(secured)
        addAdminDatabaseRoutes(secured.group("v1/namespaces/:org/:database"))
        addMigrationRoute(secured.group("v1/namespaces/:org/:database"))
        addBackupRoutes(secured.group("v1/namespaces/:org/:database"))
        addBackupErasureRoute(secured.group("v1/backups"))
        return router
    }

    /// The HTTP application serving the node's routes on `host:port` (port 0 picks a free one),
    /// under `configuration.connectionLimits`; `onRunning` gets the port once the server listens.
    public func application(
        host: String, port: Int, onRunning: @escaping @Sendable (Int) -> Void = { _ in }
    ) -> Application<RouterResponder<ServerRequestContext>> {
        let limits = configuration.connectionLimits
        return Application(
            router: router(),
            server: NodeChannel.server(limits, maxMessageBytes: configuration.maxRequestBytes) {
                head, channel, logger in
                try self.webSocketUpgrade(head, channel: channel, logger: logger)
            },
            configuration: .init(
                address: .hostname(host, port: port), serverName: Self.version,
                availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections, logger: logger)),
            services: store.backups.map { [store.followers, $0] } ?? [store.followers],
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// Closes expired streams and idle databases; call it periodically (see `runMaintenance`).
    /// `now` is the instant streams are judged idle at (tests move it forward instead of waiting).
    public func maintain(now: ContinuousClock.Instant = .now) async {
        for stream in streams.expire(now: now) {
            await close(stream)
        }
        await store.evictIdle()
    }

    /// Runs `maintain()` every `interval` until cancelled.
    public func runMaintenance(every interval: Duration = .seconds(1)) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            await maintain()
        }
    }

    /// Closes every stream and database (at shutdown, after the server stopped accepting).
    public func shutdown() async {
        for stream in streams.removeAll() {
            await close(stream)
        }
        await store.close()
    }

    func close(_ stream: HranaStream) async {
        // Cleanup (urgent, and run even when the request that failed was cancelled): a stream that
        // holds the write turn frees the writers waiting for it.
        _ = try? await stream.lease.resource.lane.run(priority: .cleanup) { stream.close() }
        if let state = stream.forwarding, let copy = stream.lease.resource.replica {
            await closePrimaryStream(state, copy: copy)
        }
        await finish(stream)
    }

    // MARK: Which database

    /// The database a request is for: the `/db/{org}/{database}` prefix, then `x-namespace`
    /// (`org/database`), then the first label of `Host` (`{database}-{org}.…`).
    func namespace(_ request: Request, _ context: ServerRequestContext) throws -> Namespace {
        if let organization = context.parameters.get("org") {
            if let database = context.parameters.get("database") {
                return try Namespace(organization: organization, database: database)
            }
            return try namespaceFromToken(context.bearerToken, organization: organization)
        }
        if let namespace = try Self.namespace(headers: request.headers, authority: request.head.authority) {
            return namespace
        }
        // No database named: a token the node cannot verify is refused as such first (401), so
        // what the request lacks is told in the order a client must fix it.
        if case .tokens(let verifier, _) = configuration.authentication {
            _ = try verifier.verify(context.bearerToken ?? "")
        }
        throw Self.noNamespace
    }

    static let noNamespace = NodeError.noDatabase(
        "name the database: use the path /db/{organization}/{database}/…, the x-namespace header, or a host name {database}-{organization}.{domain}"
    )

    /// The database named by the `x-namespace` header or else the first label of the host name
    /// (`{database}-{organization}.…`), if any.
    static func namespace(headers: HTTPFields, authority: String?) throws -> Namespace? {
        if let header = headers[HTTPField.Name("x-namespace")!] {
            return try Namespace(header)
        }
        if let authority, let label = authority.split(separator: ".").first, authority.contains("."),
            let dash = label.lastIndex(of: "-")
        {
            let database = String(label[..<dash])
            let organization = String(label[label.index(after: dash)...])
            if let namespace = try? Namespace(organization: organization, database: database) { return namespace }
        }
        return nil
    }

    /// `/db/{org}/v1/…`: libsql-client drops the last path segment of a base URL without a trailing
    /// slash, so the database comes from the token's `id` claim (verified by `authorize` later).
    /// The database a token's `id` claim names in `organization` (verified by `grant` later).
    func namespaceFromToken(_ token: String?, organization: String) throws -> Namespace {
        let hint =
            "the database name is missing from the path: give the client the URL with a trailing slash (http://host/db/\(organization)/{database}/)"
        guard case .tokens = configuration.authentication, let token else {
            throw NodeError.noDatabase(hint)
        }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        struct Claims: Decodable { let id: String? }
        // A token that is no JWT at all is refused as a token, before any hint about paths.
        guard parts.count == 3, let payload = Base64URL.decode(String(parts[1])),
            let claims = try? JSONDecoder().decode(Claims.self, from: Data(payload))
        else { throw NodeError.unauthorized("the token is not a JWT; send the database's token") }
        guard let id = claims.id, let namespace = try? Namespace(id), namespace.organization == organization
        else { throw NodeError.noDatabase(hint) }
        return namespace
    }

    // MARK: Authentication

    /// What the request's bearer token allows on `namespace`. The database's group (for `gid`
    /// tokens) comes from its stored settings.
    func authorize(_ context: ServerRequestContext, _ namespace: Namespace) async throws -> Access {
        try await grant(context, namespace).access
    }

    func grant(_ context: ServerRequestContext, _ namespace: Namespace) async throws -> Grant {
        try await grant(
            token: context.bearerToken, namespace,
            missing: "send the database's token as Authorization: Bearer <token>")
    }

    /// What `token` allows on `namespace`; `missing` is the refusal when there is no token.
    func grant(token: String?, _ namespace: Namespace, missing: String) async throws -> Grant {
        guard case .tokens(let verifier, _) = configuration.authentication else {
            return Grant(access: .readWrite, location: nil)
        }
        guard let token, !token.isEmpty, token != "None" else {
            throw NodeError.unauthorized(missing)
        }
        // The signature, time claims and scope first: a garbage, expired or foreign token costs one
        // signature check and never a question to the control plane.
        let claims = try verifier.verify(token)
        try verifier.checkScope(claims, for: namespace)
        // A database being deleted refuses every request, whatever the token.
        try store.refuseIfDeleted(namespace)
        // A database the control plane placed here but this node has not seen yet: fetch its
        // settings, since a group token and the incarnation are checked against them.
        try await store.ensurePlaced(namespace)
        // The group and the incarnation live in the database's settings (in memory once it is open).
        let settings = await store.currentSettings(namespace)
        // Before the rotations: a token of a deleted incarnation is refused as such.
        try verifier.checkIncarnation(claims, of: namespace, settings: settings)
        var grant = try verifier.grant(claims, to: namespace) {
            settings.group.map { "\(namespace.organization)/\($0)" }
        }
        grant.tokenHolder = TokenVerifier.holder(of: token, claims: claims)
        return grant
    }

    /// Region lock for the sync protocol: a database whose rule names locations is only synced to a
    /// token whose `loc` is one of them. Refusals are logged.
    func checkRegion(_ grant: Grant, _ database: HostedDatabase) throws {
        guard let allowed = database.settings.allowedLocations else { return }
        guard let location = grant.location, allowed.contains(location) else {
            logger.notice(
                "sync refused by region rule",
                metadata: ["db.namespace": "\(database.namespace)", "token.loc": "\(grant.location ?? "none")"])
            throw NodeError.forbidden(
                "database \(database.namespace) is region-locked to \(allowed.joined(separator: ", ")); a replica in \(grant.location ?? "an unnamed location") may not sync it (use a token whose loc is allowed)"
            )
        }
    }

    /// Checks the admin token (the admin API is off when tokens are on but no admin token is set).
    func authorizeAdmin(_ context: ServerRequestContext) throws {
        guard case .tokens(_, let adminToken) = configuration.authentication else { return }
        guard let adminToken else {
            throw NodeError.forbidden("the admin API is off on this node; start it with an admin token")
        }
        let given = Array((context.bearerToken ?? "").utf8)
        let expected = Array(adminToken.utf8)
        var difference = given.count ^ expected.count
        for index in 0..<min(given.count, expected.count) {
            difference |= Int(given[index] ^ expected[index])
        }
        guard difference == 0 else { throw NodeError.unauthorized("the admin token is missing or wrong") }
    }

    // MARK: Bodies

    func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        try decode(type, from: try await body(of: request))
    }

    /// The request's body, refused past the size limit.
    func body(of request: Request) async throws -> [UInt8] {
        do {
            return Array(try await request.body.collect(upTo: configuration.maxRequestBytes).readableBytesView)
        } catch {
            throw NodeError.tooLarge("the request body is larger than \(configuration.maxRequestBytes) bytes")
        }
    }

    func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw NodeError.badRequest("the request body is not valid: \(Self.describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        DecodingFailure.describe(error)
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try WireJSON.encoder().encode(value)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
