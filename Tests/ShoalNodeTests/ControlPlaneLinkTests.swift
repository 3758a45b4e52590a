import Foundation
import Hummingbird
import Logging
import ShoalModel
import ShoalNodeTestSupport
import Synchronization
import Testing

@testable import ShoalNode

/// A control plane stand-in that records the bearer of every request. A registration with the
/// registration token is issued `credential-N`; a registration, heartbeat or placement lookup with
/// the last credential issued is answered (registrations without a new credential, lookups with
/// "not placed here"); anything else gets 401.
struct RecordingControlPlane {
    static let registrationToken = "registration-secret"

    let url: String
    let log: Log

    /// The requests seen (`METHOD /path` and the Authorization header) and the credentials issued.
    final class Log: Sendable {
        private let state = Mutex<(requests: [(route: String, authorization: String?)], issued: [String])>(([], []))

        var requests: [(route: String, authorization: String?)] { state.withLock { $0.requests } }

        /// Records a request; returns whether it carries the last credential issued.
        func record(_ route: String, _ authorization: String?) -> Bool {
            state.withLock { state in
                state.requests.append((route, authorization))
                return state.issued.last.map { "Bearer \($0)" == authorization } ?? false
            }
        }

        func issue() -> String {
            state.withLock { state in
                state.issued.append("credential-\(state.issued.count + 1)")
                return state.issued.last!
            }
        }
    }

    /// Starts the stand-in (its policy trusts `signer`), runs `body` against it, then stops it.
    static func with(
        signer: TokenSigner, _ body: @Sendable (RecordingControlPlane) async throws -> Void
    )
        async throws
    {
        let log = Log()
        let policy = StandInServer.policy(trusting: signer)
        let router = Router()
        router.post("v1/nodes") { request, _ in
            let authorization = request.headers[.authorization]
            let current = log.record("POST /v1/nodes", authorization)
            let credential: String?
            if authorization == "Bearer \(RecordingControlPlane.registrationToken)" {
                credential = log.issue()
            } else if current {
                credential = nil
            } else {
                return Response(status: .unauthorized)
            }
            return try StandInServer.json(
                StandInServer.registration(id: "node-1", trusting: signer, heartbeatSeconds: 1, credential: credential))
        }
        router.post("v1/nodes/:node/heartbeat") { request, context in
            let node = context.parameters.get("node") ?? ""
            guard log.record("POST /v1/nodes/\(node)/heartbeat", request.headers[.authorization]) else {
                return Response(status: .unauthorized)
            }
            return try StandInServer.json(["policy": policy])
        }
        router.get("v1/nodes/:node/databases/:org/:database") { request, context in
            let path = ["node", "org", "database"].map { context.parameters.get($0) ?? "" }
            let current = log.record(
                "GET /v1/nodes/\(path[0])/databases/\(path[1])/\(path[2])", request.headers[.authorization])
            return Response(status: current ? .notFound : .unauthorized)
        }
        try await StandInServer.with(router, label: "shoal.node.test.control") { url in
            try await body(RecordingControlPlane(url: url, log: log))
        }
    }
}

/// What a node sends its control plane: the registration token only to register, its own
/// credential for everything else, never an admin token; the credential kept for the next start.
@Suite(.timeLimit(.minutes(2))) struct ControlPlaneLinkTests {
    static func link(
        _ control: RecordingControlPlane, _ node: LiveNode,
        registrationToken: String? = RecordingControlPlane.registrationToken
    ) -> ControlPlaneLink {
        ControlPlaneLink(
            configuration: .init(
                controlURL: URL(string: control.url)!, registrationToken: registrationToken, location: "local",
                advertisedURL: node.url, nodeAdminToken: "node-admin",
                credentialFile: node.dataDirectory + "/node-credential"),
            node: node.node)
    }

    static func withNode(_ body: @Sendable (LiveNode) async throws -> Void) async throws {
        let verifier = try TokenVerifier(keys: [:], allowNoKeys: true)
        try await LiveNode.with({ $0.authentication = .tokens(verifier, adminToken: "node-admin") }, body)
    }

    @Test func linkRegistersWithTheRegistrationTokenThenSendsOnlyItsOwnCredential() async throws {
        let signer = TokenSigner()
        try await RecordingControlPlane.with(signer: signer) { control in
            try await Self.withNode { node in
                let link = Self.link(control, node)
                // The loop registers, then heartbeats (every second, as the stand-in asks).
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { await link.run() }
                    for _ in 0..<200 where !control.log.requests.contains(where: { $0.route.hasSuffix("/heartbeat") }) {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    group.cancelAll()
                }
                // A request for a database the node does not hold asks the control plane.
                let answer = try await node.request(
                    "POST", "/db/acme/ghost/v1/execute", body: #"{"stmt":{"sql":"SELECT 1"}}"#,
                    headers: ["Authorization": "Bearer \(try signer.token(["id": "acme/ghost"]))"])
                #expect(answer.status == 404, "\(answer.body)")

                let requests = control.log.requests
                #expect(requests.first?.route == "POST /v1/nodes")
                #expect(requests.first?.authorization == "Bearer \(RecordingControlPlane.registrationToken)")
                let later = requests.dropFirst()
                #expect(later.contains { $0.route == "POST /v1/nodes/node-1/heartbeat" })
                #expect(later.contains { $0.route == "GET /v1/nodes/node-1/databases/acme/ghost" })
                #expect(later.allSatisfy { $0.authorization == "Bearer credential-1" }, "\(later)")
                // The credential is kept for the next start, readable by the node's user only.
                let file = node.dataDirectory + "/node-credential"
                #expect(try String(contentsOfFile: file, encoding: .utf8) == "credential-1\n")
                let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
                #expect(mode == 0o600)
            }
        }
    }

    @Test func linkRegistersWithItsKeptCredentialAndFallsBackToTheTokenWhenItIsRefused() async throws {
        try await RecordingControlPlane.with(signer: TokenSigner()) { control in
            try await Self.withNode { node in
                // A credential this control plane never issued (or has rotated).
                let file = node.dataDirectory + "/node-credential"
                try Data("stale-credential\n".utf8).write(to: URL(fileURLWithPath: file))
                _ = try await Self.link(control, node).register()
                let sent = control.log.requests.map { $0.authorization }
                #expect(sent == ["Bearer stale-credential", "Bearer registration-secret"])
                #expect(try String(contentsOfFile: file, encoding: .utf8) == "credential-1\n")
                // The next start registers with the kept credential, and keeps it.
                _ = try await Self.link(control, node).register()
                #expect(control.log.requests.last?.authorization == "Bearer credential-1")
                #expect(try String(contentsOfFile: file, encoding: .utf8) == "credential-1\n")
            }
        }
    }

    @Test func linkWithoutCredentialOrRegistrationTokenSaysWhatToGive() async throws {
        try await RecordingControlPlane.with(signer: TokenSigner()) { control in
            try await Self.withNode { node in
                let error = await #expect(throws: ControlPlaneLink.LinkError.self) {
                    try await Self.link(control, node, registrationToken: nil).register()
                }
                #expect(error?.description.contains("--registration-token") == true)
                #expect(control.log.requests.isEmpty)
            }
        }
    }
}
