import Foundation
import Logging
import ShoalHTTP
import ShoalModel
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A node's tie to its control plane: registers the node (location, advertised URL, admin token),
/// then sends heartbeats; every answer carries the token policy (keys, revoked ids, rotations),
/// which the node's verifier adopts. The data path never waits on it.
///
/// The node never holds the platform admin token. Its first registration is authorised by the node
/// registration token; the answer carries the node's own credential, which it keeps (mode 0600) and
/// sends from then on: heartbeats, placement lookups and later registrations. A credential the
/// control plane refuses (rotated by the operator) sends it back to the registration token.
public struct ControlPlaneLink: Sendable {
    /// Where the control plane is and how this node presents itself.
    public struct Configuration: Sendable {
        /// The control plane's base URL.
        public var controlURL: URL
        /// The node registration token: registers the node when it has no credential yet, or when
        /// the control plane refuses the one it has. Not needed once the node has a credential.
        public var registrationToken: String?
        /// The location this node serves.
        public var location: String
        /// The URL the control plane and clients reach this node at.
        public var advertisedURL: String
        /// This node's admin token, given to the control plane for its calls.
        public var nodeAdminToken: String?
        /// Where the node keeps the id the control plane gave it (so restarts keep their databases).
        public var identityFile: String?
        /// Where the node keeps its credential (written with mode 0600); nil keeps it in memory only.
        public var credentialFile: String?
        /// How long the node remembers that the control plane said a database is not placed here
        /// (requests for it meanwhile are answered 404 without asking again).
        public var unknownDatabaseLifetime: Duration

        /// A link configuration.
        public init(
            controlURL: URL, registrationToken: String?, location: String, advertisedURL: String,
            nodeAdminToken: String?, identityFile: String? = nil, credentialFile: String? = nil,
            unknownDatabaseLifetime: Duration = DatabaseStore.unknownDatabaseLifetime
        ) {
            self.identityFile = identityFile
            self.credentialFile = credentialFile
            self.unknownDatabaseLifetime = unknownDatabaseLifetime
            self.controlURL = controlURL
            self.registrationToken = registrationToken
            self.location = location
            self.advertisedURL = advertisedURL
            self.nodeAdminToken = nodeAdminToken
        }
    }

    let configuration: Configuration
    let verifier: TokenVerifier?
    let store: DatabaseStore
    let logger: Logger
    /// The node's credential once it has one (shared by the heartbeat loop and placement lookups).
    let credential = Credential()

    /// The node's current credential: replaced when a registration issues a new one.
    final class Credential: Sendable {
        private let value = Mutex<String?>(nil)

        var current: String? { value.withLock { $0 } }

        func set(_ credential: String) { value.withLock { $0 = credential } }
    }

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

    /// Registers once, with the node's credential if it has one (falling back to the registration
    /// token when the control plane does not accept it), else with the registration token; keeps the
    /// credential the answer issues. Returns the node id and heartbeat interval. Throws with the
    /// control plane's answer when it refuses.
    public func register() async throws -> (id: String, interval: Duration) {
        let known = Self.readLine(configuration.identityFile)
        let stored = credential.current ?? Self.readLine(configuration.credentialFile)
        let body = try WireJSON.encoder().encode(
            Platform.NodeRegistration(
                location: configuration.location, url: configuration.advertisedURL,
                adminToken: configuration.nodeAdminToken, id: known))
        let registered: Platform.NodeRegistrationAnswer
        if let stored {
            do {
                registered = try await call(
                    Platform.NodeRegistrationAnswer.self, path: "v1/nodes", body: body, bearer: stored)
            } catch LinkError.refused(let status, _) where status == 401 && configuration.registrationToken != nil {
                // The credential was rotated, or this control plane never issued it.
                logger.warning("control.credential.refused", metadata: ["http.status": "\(status)"])
                registered = try await call(
                    Platform.NodeRegistrationAnswer.self, path: "v1/nodes", body: body,
                    bearer: configuration.registrationToken)
            }
        } else {
            guard let token = configuration.registrationToken else { throw LinkError.noCredential }
            registered = try await call(
                Platform.NodeRegistrationAnswer.self, path: "v1/nodes", body: body, bearer: token)
        }
        if let file = configuration.identityFile, registered.node.id != known {
            try Data((registered.node.id + "\n").utf8).write(to: URL(fileURLWithPath: file), options: .atomic)
        }
        if let issued = registered.credential {
            if let file = configuration.credentialFile { try Self.writePrivately(issued + "\n", to: file) }
            credential.set(issued)
        } else if let stored {
            credential.set(stored)
        }
        try verifier?.update(with: registered.policy)
        let id = registered.node.id
        store.setPlacementSource(
            { [self] namespace in try await placement(of: namespace, node: id) },
            unknownLifetime: configuration.unknownDatabaseLifetime)
        store.setSchemaSource { [self] group in try await schema(ofGroup: group, node: id) }
        logger.info(
            "control.registered",
            metadata: ["node.id": "\(registered.node.id)", "control.url": "\(configuration.controlURL)"])
        return (registered.node.id, .seconds(max(1, registered.heartbeatSeconds)))
    }

    /// Registers (retrying until it works), then sends heartbeats until cancelled; registers again
    /// when the control plane has forgotten the node or refuses its credential.
    public func run() async {
        var registration: (id: String, interval: Duration)?
        var policyVersion: String?
        await store.storage.measureAtRest(dataDirectory: store.configuration.dataDirectory)
        while !Task.isCancelled {
            do {
                if let current = registration {
                    let answer: Platform.HeartbeatAnswer
                    let storage = await store.storage.changes()
                    let schemaVersions = store.schemaReports.due()
                    do {
                        answer = try await call(
                            Platform.HeartbeatAnswer.self, path: "v1/nodes/\(current.id)/heartbeat",
                            body: try WireJSON.encode(
                                Platform.HeartbeatRequest(
                                    policyVersion: policyVersion, storage: storage.isEmpty ? nil : storage,
                                    schemaVersions: schemaVersions.isEmpty ? nil : schemaVersions)),
                            bearer: credential.current)
                    } catch LinkError.refused(let status, _) where status == 401 || status == 403 {
                        // The credential was rotated (or is not this node's): register again.
                        logger.warning("control.credential.refused", metadata: ["http.status": "\(status)"])
                        registration = nil
                        continue
                    }
                    store.schemaReports.confirm(schemaVersions)
                    // A control plane that answers no list does not keep storage: the reports stay due.
                    if let exceeded = answer.storageExceeded {
                        store.storage.confirm(storage)
                        store.storage.setExceeded(exceeded)
                    }
                    if let policy = answer.policy {
                        try verifier?.update(with: policy)
                        policyVersion = answer.policyVersion
                    } else {
                        verifier?.confirmCurrent()
                    }
                    try await Task.sleep(for: current.interval)
                } else {
                    registration = try await register()
                    policyVersion = nil
                    store.storage.forgetReported()
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
                HTTPCall("GET", url, bearer: credential.current, timeout: .seconds(10)))
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

    /// Asks the control plane for a group's released tenant schema (by the group's id).
    func schema(ofGroup group: String, node id: String) async throws -> GroupSchema {
        let url = configuration.controlURL.appendingPathComponent("v1/nodes/\(id)/groups/\(group)/schema")
        let answer = try await OutboundHTTP.send(
            HTTPCall("GET", url, bearer: credential.current, timeout: GroupSchemaLookup.questionTimeout))
        guard answer.status == 200 else {
            throw LinkError.refused(answer.status, String(decoding: answer.body, as: UTF8.self))
        }
        return try JSONDecoder().decode(GroupSchema.self, from: answer.body)
    }

    enum LinkError: Error, CustomStringConvertible {
        case notFound
        case refused(Int, String)
        case noCredential
        case storage(String)

        var description: String {
            switch self {
            case .notFound: "the control plane does not know this node"
            case .refused(let status, let body):
                "the control plane answered \(status): \(body.prefix(300)); check --control and --registration-token"
            case .noCredential:
                "this node has no credential yet and no registration token: give --registration-token "
                    + "(the node registration token `shoal control` wrote to its --data)"
            case .storage(let message): message
            }
        }
    }

    /// The first line of `path`, trimmed; nil when there is no file or it is empty.
    static func readLine(_ path: String?) -> String? {
        guard let path, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let line = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return line.isEmpty ? nil : line
    }

    /// Replaces `path` with `text`, mode 0600, through a temporary file renamed into place (never
    /// readable by others, never seen half-written).
    static func writePrivately(_ text: String, to path: String) throws {
        let temporary = path + ".new"
        unlink(temporary)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw LinkError.storage("cannot create \(temporary): \(String(cString: strerror(errno)))")
        }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard written == bytes.count, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw LinkError.storage("cannot write the node's credential to \(path); check the data directory")
        }
    }

    private func call<T: Decodable>(_ type: T.Type, path: String, body: Data, bearer: String?) async throws -> T {
        let answer = try await OutboundHTTP.send(
            HTTPCall(
                "POST", configuration.controlURL.appendingPathComponent(path), bearer: bearer,
                body: body, timeout: .seconds(10)))
        let status = answer.status
        let data = answer.body
        if status == 404 { throw LinkError.notFound }
        guard status == 200 else { throw LinkError.refused(status, String(decoding: data, as: UTF8.self)) }
        return try JSONDecoder().decode(T.self, from: data)
    }
}
