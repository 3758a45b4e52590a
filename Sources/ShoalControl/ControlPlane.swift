import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import ShoalHTTP
import ShoalModel
import ShoalServerKit
import Synchronization

/// The control plane's HTTP server: the Platform API over the catalog, node registration and
/// heartbeats, the JWKS and the OpenAPI document. Stateless: every answer comes from the catalog,
/// so several instances can share one PostgreSQL catalog.
public struct ControlPlane: Sendable {
    /// The catalog in use.
    public let catalog: Catalog
    /// Whether a new database's node is told at once (and a creation fails if it cannot be), or
    /// learns of it on the database's first request by asking back (the default: a creation is then
    /// a catalog transaction only).
    public let eagerPlacement: Bool
    /// The header, body and idle timeouts and the connection cap of the server.
    public let connectionLimits: ConnectionLimits
    let nodes: NodeClient
    let logger: Logger
    let metrics = ControlMetrics.make()
    /// This instance's id: the owner of the rollout leases it takes.
    let instanceID = Catalog.newID()
    /// The largest request body accepted.
    let maxRequestBytes = 1 << 20
    /// The version string `GET /version` reports.
    public static let version = "shoal-control 0.1.0"
    /// How often nodes send a heartbeat by default.
    public static let defaultHeartbeatInterval: Duration = .seconds(5)
    /// How often nodes should send a heartbeat (whole seconds, at least 1): also how stale a node's
    /// storage report and its list of organizations over quota can be.
    public let heartbeatInterval: Duration

    /// A control plane over `catalog`.
    public init(
        catalog: Catalog, eagerPlacement: Bool = false, connectionLimits: ConnectionLimits = .controlPlane,
        heartbeatInterval: Duration = ControlPlane.defaultHeartbeatInterval,
        logger: Logger = Logger(label: "shoal.control")
    ) {
        self.heartbeatInterval = heartbeatInterval
        self.catalog = catalog
        self.eagerPlacement = eagerPlacement
        self.connectionLimits = connectionLimits
        self.logger = logger
        nodes = NodeClient()
    }

    /// The HTTP application on `host:port` (0 picks a free port), under `connectionLimits`;
    /// `onRunning` gets the port.
    public func application(
        host: String, port: Int, onRunning: @escaping @Sendable (Int) -> Void = { _ in }
    ) -> Application<RouterResponder<ServerRequestContext>> {
        Application(
            router: router(),
            server: LimitedHTTP1Channel.server(connectionLimits),
            configuration: .init(
                address: .hostname(host, port: port), serverName: Self.version,
                availableConnectionsDelegate: MaximumAvailableConnections(
                    connectionLimits.maxConnections, logger: logger)),
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// The routes anyone may call without a token (as the router describes them): health, the
    /// version, metrics, the API's description, the public keys that verify database tokens, and
    /// the locations and plans (public data; editing them takes the admin token).
    /// Every other route refuses a call without a token (`RouteAuthTests` checks each one the
    /// router holds).
    public static let publicRoutes: Set<String> = [
        "GET /health", "GET /version", "GET /metrics", "GET /openapi.json", "GET /.well-known/jwks.json",
        "GET /v1/locations", "GET /v1/locations/{code}", "GET /v1/plans",
    ]

    /// Every route of the control plane.
    public func router() -> Router<ServerRequestContext> {
        let router = Router(context: ServerRequestContext.self)
        router.add(middleware: BearerTokenParsing())
        router.add(middleware: RequestMetricsMiddleware(metrics, classify: ControlMetrics.method))
        router.addProbes(version: Self.version, metrics: metrics)
        router.get("openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: OpenAPIDocument.bytes)))
        }
        router.get(".well-known/jwks.json") { _, _ in
            try Self.json(Self.published(try await self.catalog.tokenPolicy()))
        }
        // Every route below needs a token: a request without one is refused before its handler
        // runs (which then checks whose token it is and what it may do).
        let secured = router.group().add(
            middleware: BearerTokenRequired { presented in
                ControlError.unauthorized(
                    presented == .missing
                        ? "send an API token as Authorization: Bearer <token>"
                        : "the Authorization header must be Bearer <token>")
            })
        addLocationRoutes(public: router.group("v1/locations"), secured: secured.group("v1/locations"))
        addPlanRoutes(public: router.group("v1/plans"), secured: secured.group("v1/plans"))
        addNodeRoutes(secured.group("v1/nodes"))
        secured.post("v1/auth/keys/rotate") { request, context in
            let principal = try await self.principal(context)
            let kid = try await self.catalog.rotateSigningKey(by: principal)
            await self.pushPolicy()
            return try Self.json(["kid": kid])
        }
        addOrganizationRoutes(secured.group("v1/organizations"))
        let organization = secured.group("v1/organizations/:org")
        addGroupRoutes(organization.group("groups"))
        addDatabaseRoutes(organization.group("databases"))
        addBackupRoutes(organization.group("databases"))
        addUndeleteRoutes(
            deleted: organization.group("deleted-databases"), databases: organization.group("databases"))
        addMigrationRoutes(organization.group("groups/:group/migrations"))
        return router
    }

    // MARK: - Requests

    /// The principal behind the request's bearer token.
    func principal(_ context: ServerRequestContext) async throws -> Principal {
        let secret: String
        switch context.presented {
        case .missing: throw ControlError.unauthorized("send an API token as Authorization: Bearer <token>")
        case .malformed: throw ControlError.unauthorized("the Authorization header must be Bearer <token>")
        case .token(let token): secret = token
        }
        // Looked up on every request (not cached): a revoked or expired token is refused at once, on
        // every control-plane instance.
        guard let principal = try await catalog.authenticate(secret: secret) else {
            throw ControlError.unauthorized("the API token is not valid; create one or use the admin token")
        }
        return principal
    }

    func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        try decode(type, from: try await body(of: request))
    }

    /// The request's JSON body decoded, or nil when the body is empty.
    func decodeIfPresent<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T? {
        let buffer = try await body(of: request)
        return buffer.readableBytes == 0 ? nil : try decode(type, from: buffer)
    }

    private func body(of request: Request) async throws -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: maxRequestBytes)
        } catch {
            throw ControlError.badRequest("the request body is larger than \(maxRequestBytes) bytes")
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(buffer.readableBytesView))
        } catch {
            throw ControlError.badRequest("the request body is not valid JSON for this call: \(Self.describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        DecodingFailure.describe(error)
    }

    /// The public JWKS document: keys, revoked ids and rotations with their scopes hashed (see
    /// `Platform.PublishedKeys`), for nodes that read it instead of registering.
    static func published(_ policy: Platform.TokenPolicy) -> Platform.PublishedKeys {
        var rotations: [String: Int64] = [:]
        for (scope, time) in policy.notBefore {
            rotations[SHA256.hash(data: Data(scope.utf8)).map { String(format: "%02x", $0) }.joined()] = time
        }
        return Platform.PublishedKeys(keys: policy.keys, revokedJti: policy.revokedJti, notBeforeSHA256: rotations)
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = WireJSON.encoder([.sortedKeys])
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    static func parameter(_ context: ServerRequestContext, _ name: String) throws -> String {
        guard let value = context.parameters.get(name) else {
            throw ControlError.badRequest("the path has no \(name)")
        }
        return value
    }

    static func limit(_ request: Request, default value: Int = 100) throws -> Int {
        guard let text = request.uri.queryParameters.get("limit") else { return value }
        guard let limit = Int(text), (1...1000).contains(limit) else {
            throw ControlError.badRequest("limit must be a number from 1 to 1000")
        }
        return limit
    }

    // MARK: - Nodes

    /// Settings a node keeps for a database, from the catalog.
    func settings(for database: Catalog.DatabaseRecord) async throws -> DatabaseSettings {
        let rules = [database.group.regionRule, database.organization.regionRule].compactMap { $0 }
        var allowed: [String]?
        if !rules.isEmpty {
            allowed = try await catalog.locations().filter { location in
                rules.allSatisfy { $0.allows(location: location.code, jurisdiction: location.jurisdiction) }
            }.map(\.code)
        }
        return DatabaseSettings(
            blockReads: database.blockReads, blockWrites: database.blockWrites,
            maxSizeBytes: database.sizeLimitBytes, group: database.group.name, allowedLocations: allowed,
            databaseID: database.id, createdAt: database.createdAt, groupID: database.group.id,
            backupRetention: try await catalog.backupRetention(plan: database.organization.plan))
    }

    /// Sends the token policy to every live node (each also pulls it with its heartbeat).
    func pushPolicy() async {
        do {
            let policy = try await catalog.tokenPolicy()
            for node in try await catalog.liveNodes() {
                do {
                    try await nodes.push(policy, to: node)
                } catch {
                    logger.warning(
                        "policy.push.failed", metadata: ["node.url": "\(node.url)", "error": "\(error)"])
                }
            }
        } catch {
            logger.warning("policy.push.failed", metadata: ["error": "\(error)"])
        }
    }
}
