import Foundation
import ShoalNodeTestSupport
import Testing

@testable import ShoalNode

/// `exp`, `nbf` and `iat` against the node's clock, with the leeway for clocks that disagree.
@Suite(.timeLimit(.minutes(2))) struct TokenTimeClaimTests {
    static let now = Date(timeIntervalSince1970: 1_700_000_000)

    /// Why a token for `acme/app` with `claims` added is refused at `now`; nil when it is accepted.
    static func refusal(
        _ claims: [String: Any], leeway: TimeInterval = TokenVerifier.defaultLeeway
    ) throws -> NodeError? {
        let signer = TokenSigner()
        let verifier = try TokenVerifier(keys: ["k1": signer.publicKey], leeway: leeway, now: { Self.now })
        let token = try signer.token(claims.merging(["id": "acme/app"]) { given, _ in given })
        do {
            _ = try verifier.access(token: token, to: Namespace("acme/app"))
            return nil
        } catch let error as NodeError {
            return error
        }
    }

    static func seconds(_ offset: TimeInterval) -> TimeInterval { now.timeIntervalSince1970 + offset }

    @Test func tokenNotValidYetIsRefused() throws {
        let refusal = try #require(try Self.refusal(["nbf": Self.seconds(120)]))
        #expect(refusal.status == .unauthorized)
        #expect(refusal.message == "the token is not valid yet")
    }

    @Test func tokenIssuedFarInTheFutureIsRefused() throws {
        let refusal = try #require(try Self.refusal(["iat": Self.seconds(3600)]))
        #expect(refusal.status == .unauthorized)
        #expect(refusal.message == "the token was issued in the future; check the clocks")
    }

    @Test func tokenIssuedOrValidWithinTheLeewayIsAccepted() throws {
        #expect(try Self.refusal(["iat": Self.seconds(30)]) == nil)
        #expect(try Self.refusal(["nbf": Self.seconds(30)]) == nil)
        #expect(try Self.refusal(["iat": Self.seconds(-30), "nbf": Self.seconds(-30)]) == nil)
    }

    @Test func tokenExpiredWithinTheLeewayIsAccepted() throws {
        #expect(try Self.refusal(["exp": Self.seconds(-30)]) == nil)
    }

    @Test func tokenExpiredPastTheLeewayIsRefused() throws {
        let refusal = try #require(try Self.refusal(["exp": Self.seconds(-120)]))
        #expect(refusal.status == .unauthorized)
        #expect(refusal.message.contains("expired"))
    }

    @Test func leewayIsConfigurable() throws {
        #expect(try Self.refusal(["exp": Self.seconds(-30)], leeway: 0) != nil)
        #expect(try Self.refusal(["iat": Self.seconds(30)], leeway: 0) != nil)
        #expect(try Self.refusal(["exp": Self.seconds(-100)], leeway: 120) == nil)
    }
}
