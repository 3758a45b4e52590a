import Crypto
import Foundation
import ShoalModel
import ShoalNodeTestSupport
import Testing

@testable import ShoalNode

/// Signs test tokens the way the control plane will: EdDSA JWTs.
struct TokenSigner: Sendable {
    private let secret = Curve25519.Signing.PrivateKey().rawRepresentation
    private var key: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: secret) }
    var publicKey: [UInt8] { Array(key.publicKey.rawRepresentation) }

    func token(_ claims: [String: Any], kid: String? = nil) throws -> String {
        var header: [String: Any] = ["alg": "EdDSA", "typ": "JWT"]
        if let kid { header["kid"] = kid }
        let head = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: header)))
        let body = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: claims)))
        let signature = try key.signature(for: Data("\(head).\(body)".utf8))
        return "\(head).\(body).\(Base64URL.encode(Array(signature)))"
    }
}

@Suite(.timeLimit(.minutes(2))) struct NodeAuthTests {
    static let execute = #"{"stmt":{"sql":"SELECT count(*) FROM t"}}"#
    static let write = #"{"stmt":{"sql":"INSERT INTO t VALUES (1)"}}"#

    static func withSecuredNode(
        revoked: Set<String> = [], _ body: @Sendable (LiveNode, TokenSigner) async throws -> Void
    )
        async throws
    {
        let signer = TokenSigner()
        let verifier = try TokenVerifier(keys: ["k1": signer.publicKey], revoked: revoked)
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.authentication = .tokens(verifier, adminToken: "admin-secret")
        }) { node in
            let setup = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: #"{"stmt":{"sql":"CREATE TABLE t (x)"}}"#,
                headers: ["Authorization": "Bearer \(try signer.token(["id": "acme/app"]))"])
            #expect(setup.status == 200)
            try await body(node, signer)
        }
    }

    @Test func missingOrMalformedTokensAre401() async throws {
        try await Self.withSecuredNode { node, _ in
            let missing = try await node.request("POST", "/db/acme/app/v1/execute", body: Self.execute)
            #expect(missing.status == 401)
            #expect(missing.body.contains("Authorization: Bearer"))
            let none = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: Self.execute, headers: ["Authorization": "Bearer None"])
            #expect(none.status == 401)
            let garbage = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: Self.execute, headers: ["Authorization": "Bearer a.b.c"])
            #expect(garbage.status == 401)
            let other = TokenSigner()
            let forged = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: Self.execute,
                headers: ["Authorization": "Bearer \(try other.token(["id": "acme/app"]))"])
            #expect(forged.status == 401)
            #expect(forged.body.contains("signature"))
        }
    }

    @Test func tokenForAnotherDatabaseIsRefusedBeforeSQLRuns() async throws {
        try await Self.withSecuredNode { node, signer in
            let answer = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: Self.write,
                headers: ["Authorization": "Bearer \(try signer.token(["id": "acme/other"]))"])
            #expect(answer.status == 403)
            let check = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: Self.execute,
                headers: ["Authorization": "Bearer \(try signer.token(["id": "acme/app"]))"])
            #expect(check.body.contains(#""value":"0""#))
        }
    }

    @Test func readOnlyTokenReadsButCannotWrite() async throws {
        try await Self.withSecuredNode { node, signer in
            let token = try signer.token(["id": "acme/app", "a": "ro"])
            let read = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: Self.execute, headers: ["Authorization": "Bearer \(token)"])
            #expect(read.status == 200)
            let write = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: Self.write, headers: ["Authorization": "Bearer \(token)"])
            #expect(write.status != 200)
            #expect(write.body.contains("read-only"))
            // Through a stream too, including a write hidden after a read in a batch.
            let pipeline = try await node.request(
                "POST", "/db/acme/app/v3/pipeline",
                body:
                    #"{"baton":null,"requests":[{"type":"sequence","sql":"SELECT 1; DELETE FROM t"},{"type":"close"}]}"#,
                headers: ["Authorization": "Bearer \(token)"])
            #expect(pipeline.body.contains("read-only"))
        }
    }

    @Test func expiredAndRevokedTokensAre401() async throws {
        try await Self.withSecuredNode(revoked: ["stolen"]) { node, signer in
            let expired = try signer.token(["id": "acme/app", "exp": Date().timeIntervalSince1970 - 120])
            let answer = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: Self.execute, headers: ["Authorization": "Bearer \(expired)"])
            #expect(answer.status == 401)
            #expect(answer.body.contains("expired"))
            let revoked = try signer.token(["id": "acme/app", "jti": "stolen"])
            let refused = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: Self.execute, headers: ["Authorization": "Bearer \(revoked)"])
            #expect(refused.status == 401)
            #expect(refused.body.contains("revoked"))
            let valid = try signer.token(["id": "acme/app", "exp": Date().timeIntervalSince1970 + 600, "jti": "fine"])
            #expect(
                try await node.request(
                    "POST", "/db/acme/app/v1/execute", body: Self.execute, headers: ["Authorization": "Bearer \(valid)"]
                ).status == 200)
        }
    }

    @Test func tokensNotValidYetOrIssuedInTheFutureAre401WithTheReason() async throws {
        try await Self.withSecuredNode { node, signer in
            let later = Date().timeIntervalSince1970 + 600
            let notYet = try signer.token(["id": "acme/app", "nbf": later])
            let early = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: Self.execute, headers: ["Authorization": "Bearer \(notYet)"])
            #expect(early.status == 401)
            #expect(early.body.contains("the token is not valid yet"), "\(early.body)")
            let future = try signer.token(["id": "acme/app", "iat": later])
            let skewed = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: Self.execute, headers: ["Authorization": "Bearer \(future)"])
            #expect(skewed.status == 401)
            #expect(skewed.body.contains("the token was issued in the future; check the clocks"), "\(skewed.body)")
        }
    }

    @Test func syncAndAdminRoutesNeedTheirTokens() async throws {
        try await Self.withSecuredNode { node, signer in
            #expect(try await node.request("GET", "/db/acme/app/info").status == 401)
            let token = try signer.token(["id": "acme/app", "a": "ro"])
            #expect(
                try await node.request("GET", "/db/acme/app/info", headers: ["Authorization": "Bearer \(token)"]).status
                    == 200)
            #expect(try await node.request("POST", "/v1/namespaces/acme/new/create").status == 401)
            #expect(
                try await node.request(
                    "POST", "/v1/namespaces/acme/new/create", headers: ["Authorization": "Bearer wrong-secret"]
                ).status == 401)
            #expect(
                try await node.request(
                    "POST", "/v1/namespaces/acme/new/create", headers: ["Authorization": "Bearer admin-secret"]
                ).status == 200)
        }
    }

    @Test func groupTokensCoverTheGroupsDatabasesOnly() async throws {
        try await Self.withSecuredNode { node, signer in
            let admin = ["Authorization": "Bearer admin-secret"]
            #expect(
                try await node.request(
                    "POST", "/v1/namespaces/acme/app/config", body: #"{"group":"eu"}"#, headers: admin
                )
                .status == 200)
            let group = try signer.token(["gid": "acme/eu"])
            let inside = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: Self.execute, headers: ["Authorization": "Bearer \(group)"])
            #expect(inside.status == 200)
            let otherGroup = try signer.token(["gid": "acme/us"])
            let outside = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: Self.execute,
                headers: ["Authorization": "Bearer \(otherGroup)"])
            #expect(outside.status == 403)
        }
    }

    @Test func regionLockedDatabaseSyncsOnlyToAllowedLocations() async throws {
        try await Self.withSecuredNode { node, signer in
            let admin = ["Authorization": "Bearer admin-secret"]
            #expect(
                try await node.request(
                    "POST", "/v1/namespaces/acme/app/config", body: #"{"allowed_locations":["fra","ams"]}"#,
                    headers: admin
                ).status == 200)
            let fra = try signer.token(["id": "acme/app", "loc": "fra"])
            let iad = try signer.token(["id": "acme/app", "loc": "iad"])
            let unnamed = try signer.token(["id": "acme/app"])
            #expect(
                try await node.request("GET", "/db/acme/app/info", headers: ["Authorization": "Bearer \(fra)"]).status
                    == 200)
            let refused = try await node.request(
                "GET", "/db/acme/app/export/1", headers: ["Authorization": "Bearer \(iad)"])
            #expect(refused.status == 403)
            #expect(refused.body.contains("region-locked to fra, ams"))
            #expect(
                try await node.request(
                    "GET", "/db/acme/app/sync/1/1/10", headers: ["Authorization": "Bearer \(unnamed)"]
                )
                .status == 403)
            // SQL over HTTP runs on the primary, in its own location: not a replica, so not refused.
            #expect(
                try await node.request(
                    "POST", "/db/acme/app/v1/execute", body: Self.execute, headers: ["Authorization": "Bearer \(iad)"]
                ).status == 200)
        }
    }

    @Test func databaseDroppedFromThePathComesFromTheToken() async throws {
        try await Self.withSecuredNode { node, signer in
            let token = try signer.token(["id": "acme/app"])
            let answer = try await node.request(
                "POST", "/db/acme/v1/execute", body: Self.execute, headers: ["Authorization": "Bearer \(token)"])
            #expect(answer.status == 200)
            let otherOrg = try signer.token(["id": "other/app"])
            let refused = try await node.request(
                "POST", "/db/acme/v1/execute", body: Self.execute, headers: ["Authorization": "Bearer \(otherOrg)"])
            #expect(refused.status == 400)
            #expect(refused.body.contains("trailing slash"))
        }
    }

    @Test func jwksDocumentsYieldTheirEd25519Keys() throws {
        let signer = TokenSigner()
        let jwks =
            #"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"\#(Base64URL.encode(signer.publicKey))","kid":"a"},{"kty":"RSA","n":"x","e":"AQAB"}]}"#
        let keys = try TokenVerifier.keys(fromJWKS: Data(jwks.utf8))
        #expect(keys == ["a": signer.publicKey])
        let verifier = try TokenVerifier(keys: keys)
        #expect(
            try verifier.access(token: try signer.token(["id": "acme/app"], kid: "a"), to: Namespace("acme/app"))
                == .readWrite)
    }
}
