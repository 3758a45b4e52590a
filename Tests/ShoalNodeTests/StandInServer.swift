import Foundation
import Hummingbird
import Logging
import ShoalModel
import ShoalNodeTestSupport

/// A stand-in for a server the node talks to (a control plane, a JWKS host): `router` served on a
/// free loopback port for the length of `body`, which gets its base URL.
enum StandInServer {
    static func with(
        _ router: Router<BasicRequestContext>, label: String = "shoal.node.test.stand-in",
        _ body: @Sendable (String) async throws -> Void
    ) async throws {
        var logger = Logger(label: label)
        logger.logLevel = .critical
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw NodeTestError("the stand-in server did not start") }
            do {
                try await body("http://127.0.0.1:\(port)")
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    }

    /// A JSON answer.
    static func json(_ value: some Encodable) throws -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: try WireJSON.encode(value))))
    }

    /// What a control plane answers a registration of node `id` trusting `signer`'s key.
    static func registration(
        id: String, trusting signer: TokenSigner, heartbeatSeconds: Int64, credential: String? = nil
    ) -> Platform.NodeRegistrationAnswer {
        Platform.NodeRegistrationAnswer(
            node: Platform.Node(id: id, location: "local", url: "http://127.0.0.1:9", status: "up", databases: 0),
            heartbeatSeconds: heartbeatSeconds, policy: policy(trusting: signer), credential: credential)
    }

    /// A token policy trusting `signer`'s key as `k1`.
    static func policy(trusting signer: TokenSigner) -> Platform.TokenPolicy {
        Platform.TokenPolicy(
            keys: [Platform.JSONWebKey(kid: "k1", x: Base64URL.encode(signer.publicKey))], revokedJti: [],
            notBefore: [:])
    }
}
