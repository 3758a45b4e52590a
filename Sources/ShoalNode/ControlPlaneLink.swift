import Foundation
import Logging
import ShoalHTTP
import ShoalModel

/// A node's tie to its control plane: registers the node (location, advertised URL, admin token),
/// then sends heartbeats; every answer carries the token policy (keys, revoked ids, rotations),
/// which the node's verifier adopts. The data path never waits on it.
public struct ControlPlaneLink: Sendable {
    /// Where the control plane is and how this node presents itself.
    public struct Configuration: Sendable {
        /// The control plane's base URL.
        public var controlURL: URL
        /// The control plane's admin API token (registration and heartbeats need it).
        public var controlToken: String
        /// The location this node serves.
        public var location: String
        /// The URL the control plane and clients reach this node at.
        public var advertisedURL: String
        /// This node's admin token, given to the control plane for its calls.
        public var nodeAdminToken: String?
        /// Where the node keeps the id the control plane gave it (so restarts keep their databases).
        public var identityFile: String?
        /// How long the node remembers that the control plane said a database is not placed here
        /// (requests for it meanwhile are answered 404 without asking again).
        public var unknownDatabaseLifetime: Duration

        /// A link configuration.
        public init(
            controlURL: URL, controlToken: String, location: String, advertisedURL: String, nodeAdminToken: String?,
            identityFile: String? = nil, unknownDatabaseLifetime: Duration = DatabaseStore.unknownDatabaseLifetime
        ) {
            self.identityFile = identityFile
            self.unknownDatabaseLifetime = unknownDatabaseLifetime
            self.controlURL = controlURL
            self.controlToken = controlToken
            self.location = location
            self.advertisedURL = advertisedURL
            self.nodeAdminToken = nodeAdminToken
        }
    }

    let configuration: Configuration
    let verifier: TokenVerifier?
    let store: DatabaseStore
    let logger: Logger

    /// A link for `node` (its verifier receives the policy).
    public init(configuration: Configuration, node: Node) {
        self.configuration = configuration
        if case .tokens(let verifier, _) = node.configuration.authentication {
            self.verifier = verifier
        } else {
            self.verifier = nil
        }
        logger = node.logger
        store = node.store
    }

    struct Registered: Decodable {
        struct Node: Decodable { let id: String }
        let node: Node
        let heartbeatSeconds: Int64
        let policy: Platform.TokenPolicy

        enum CodingKeys: String, CodingKey {
            case node, policy
            case heartbeatSeconds = "heartbeat_seconds"
        }
    }

    struct Heartbeat: Decodable {
        let policy: Platform.TokenPolicy
    }

    /// Registers once; returns the node id and heartbeat interval. Throws with the control plane's
    /// answer when it refuses.
    public func register() async throws -> (id: String, interval: Duration) {
        let known = configuration.identityFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let body = try WireJSON.encoder().encode(
            Platform.NodeRegistration(
                location: configuration.location, url: configuration.advertisedURL,
                adminToken: configuration.nodeAdminToken, id: known?.isEmpty == false ? known : nil))
        let registered = try await call(Registered.self, path: "v1/nodes", body: body)
        if let file = configuration.identityFile, registered.node.id != known {
            try Data((registered.node.id + "\n").utf8).write(to: URL(fileURLWithPath: file), options: .atomic)
        }
        try verifier?.update(with: registered.policy)
        let id = registered.node.id
        store.setPlacementSource(
            { [self] namespace in try await placement(of: namespace, node: id) },
            unknownLifetime: configuration.unknownDatabaseLifetime)
        logger.info(
            "control.registered",
            metadata: ["node.id": "\(registered.node.id)", "control.url": "\(configuration.controlURL)"])
        return (registered.node.id, .seconds(max(1, registered.heartbeatSeconds)))
    }

    /// Registers (retrying until it works), then sends heartbeats until cancelled; registers again
    /// when the control plane has forgotten the node.
    public func run() async {
        var registration: (id: String, interval: Duration)?
        while !Task.isCancelled {
            do {
                if let current = registration {
                    let answer = try await call(Heartbeat.self, path: "v1/nodes/\(current.id)/heartbeat", body: Data())
                    try verifier?.update(with: answer.policy)
                    try await Task.sleep(for: current.interval)
                } else {
                    registration = try await register()
                }
            } catch LinkError.notFound {
                registration = nil
            } catch is CancellationError {
                return
            } catch {
                logger.warning("control.unreachable", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(2))
            }
        }
    }

    /// Asks the control plane whether `namespace` is placed on this node; its settings if so.
    func placement(of namespace: Namespace, node id: String) async throws -> DatabaseSettings? {
        let url = configuration.controlURL.appendingPathComponent(
            "v1/nodes/\(id)/databases/\(namespace.organization)/\(namespace.database)")
        let answer: HTTPAnswer
        do {
            answer = try await OutboundHTTP.send(
                HTTPCall("GET", url, bearer: configuration.controlToken, timeout: .seconds(10)))
        } catch is HTTPCallError {
            throw NodeError.unavailable(
                "database \(namespace) is not on this node yet and the control plane cannot be reached; try again")
        }
        let data = answer.body
        switch answer.status {
        case 200:
            do {
                return try JSONDecoder().decode(DatabaseSettings.self, from: data)
            } catch {
                throw NodeError.unavailable("the control plane's placement answer is not valid; try again")
            }
        case 404: return nil
        case let status:
            throw NodeError.unavailable(
                "the control plane answered \(status) when asked about database \(namespace); try again")
        }
    }

    enum LinkError: Error, CustomStringConvertible {
        case notFound
        case refused(Int, String)

        var description: String {
            switch self {
            case .notFound: "the control plane does not know this node"
            case .refused(let status, let body):
                "the control plane answered \(status): \(body.prefix(300)); check --control and --control-token"
            }
        }
    }

    private func call<T: Decodable>(_ type: T.Type, path: String, body: Data) async throws -> T {
        let answer = try await OutboundHTTP.send(
            HTTPCall(
                "POST", configuration.controlURL.appendingPathComponent(path), bearer: configuration.controlToken,
                body: body, timeout: .seconds(10)))
        let status = answer.status
        let data = answer.body
        if status == 404 { throw LinkError.notFound }
        guard status == 200 else { throw LinkError.refused(status, String(decoding: data, as: UTF8.self)) }
        return try JSONDecoder().decode(T.self, from: data)
    }
}
