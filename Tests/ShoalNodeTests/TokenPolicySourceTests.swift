import Crypto
import Foundation
import Hummingbird
import Logging
import ShoalModel
import ShoalNodeTestSupport
import ShoalTestSupport
import Synchronization
import Testing

@testable import ShoalNode

/// Revocations and rotations reach nodes that read a JWKS URL, and a node whose token source has
/// gone quiet stops trusting tokens after a bounded time instead of honouring revoked ones forever.
@Suite(.timeLimit(.minutes(1))) struct TokenPolicySourceTests {
    static func sha256(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static func refusal(_ verifier: TokenVerifier, _ token: String, _ namespace: String = "acme/app") -> NodeError? {
        do {
            _ = try verifier.access(token: token, to: try Namespace(namespace))
            return nil
        } catch let error as NodeError {
            return error
        } catch {
            return NodeError.badRequest("\(error)")
        }
    }

    @Test func publishedRevocationsAndHashedRotationsAreEnforced() throws {
        let signer = TokenSigner()
        let verifier = try TokenVerifier(keys: [:], allowNoKeys: true)
        let now = Date().timeIntervalSince1970
        let rotatedAt = Int64((now - 60) * 1000)
        try verifier.update(
            with: Platform.PublishedKeys(
                keys: [Platform.JSONWebKey(kid: "k1", x: Base64URL.encode(signer.publicKey))], revokedJti: ["stolen"],
                notBeforeSHA256: [Self.sha256("db:acme/app"): rotatedAt, Self.sha256("group:acme/eu"): rotatedAt]))
        let fresh = try signer.token(["id": "acme/app", "iat": now, "jti": "fresh"])
        #expect(Self.refusal(verifier, fresh) == nil)
        let revoked = try signer.token(["id": "acme/app", "iat": now, "jti": "stolen"])
        #expect(Self.refusal(verifier, revoked)?.message == "the token was revoked")
        let beforeRotation = try signer.token(["id": "acme/app", "iat": now - 3600])
        #expect(Self.refusal(verifier, beforeRotation)?.message.contains("rotated") == true)
        // A token of another database issued at the same time is not covered by that rotation.
        let other = try signer.token(["id": "acme/other", "iat": now - 3600])
        #expect(Self.refusal(verifier, other, "acme/other") == nil)
        // A group's rotation covers its group tokens.
        let group = try signer.token(["gid": "acme/eu", "iat": now - 3600])
        let grant = Result { try verifier.grant(token: group, to: try Namespace("acme/app"), group: { "acme/eu" }) }
        #expect(throws: NodeError.self) { try grant.get() }
        // Keys given on the command line are kept beside the document's, and so are their revocations.
        let local = TokenSigner()
        try verifier.update(
            with: Platform.PublishedKeys(keys: [Platform.JSONWebKey(kid: "k1", x: Base64URL.encode(signer.publicKey))]),
            extraKeys: ["local": local.publicKey], extraRevoked: ["local-stolen"])
        #expect(Self.refusal(verifier, try local.token(["id": "acme/app"])) == nil)
        #expect(Self.refusal(verifier, try local.token(["id": "acme/app", "jti": "local-stolen"])) != nil)
    }

    @Test func staleTokenPolicyRefusesEveryTokenUntilTheSourceAnswers() throws {
        let signer = TokenSigner()
        let clock = Mutex(Date(timeIntervalSince1970: 1_700_000_000))
        let verifier = try TokenVerifier(
            keys: [:], allowNoKeys: true, maxPolicyAge: 30, now: { clock.withLock { $0 } })
        try verifier.update(
            with: Platform.TokenPolicy(
                keys: [Platform.JSONWebKey(kid: "k1", x: Base64URL.encode(signer.publicKey))], revokedJti: [],
                notBefore: [:]))
        let token = try signer.token(["id": "acme/app"])
        #expect(Self.refusal(verifier, token) == nil)
        clock.withLock { $0 += 29 }
        #expect(Self.refusal(verifier, token) == nil)
        clock.withLock { $0 += 2 }
        let stale = try #require(Self.refusal(verifier, token))
        #expect(stale.status == .serviceUnavailable)
        #expect(stale.message.contains("revoked"))
        // A heartbeat that brings no new policy confirms the one in force.
        verifier.confirmCurrent()
        #expect(Self.refusal(verifier, token) == nil)
    }

    @Test func nodeReadingAJWKSURLLearnsRevocationsFromIt() async throws {
        let signer = TokenSigner()
        let document = Mutex(
            Platform.PublishedKeys(keys: [Platform.JSONWebKey(kid: "k1", x: Base64URL.encode(signer.publicKey))]))
        let router = Router()
        router.get(".well-known/jwks.json") { _, _ in try StandInServer.json(document.withLock { $0 }) }
        let verifier = try TokenVerifier(keys: [:], allowNoKeys: true)
        let token = try signer.token(["id": "acme/app", "jti": "leaked"])
        let logger = Logger(label: "shoal.node.test.jwks")
        try await StandInServer.with(router, label: "shoal.node.test.jwks") { url in
            let source = JWKSSource(url: URL(string: url + "/.well-known/jwks.json")!)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await source.keepFresh(verifier, every: .milliseconds(50), logger: logger) }
                try await waitUntil("the JWKS refresh", every: .milliseconds(10)) {
                    Self.refusal(verifier, token) == nil
                }
                document.withLock { $0.revokedJti = ["leaked"] }
                try await waitUntil("the revocation", every: .milliseconds(10)) {
                    Self.refusal(verifier, token)?.message == "the token was revoked"
                }
                group.cancelAll()
            }
        }
    }
}
