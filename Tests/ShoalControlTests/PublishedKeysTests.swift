import Crypto
import Foundation
import Testing

/// The public JWKS document carries revocations and rotations for nodes that read it instead of
/// registering (`shoal node --jwks-url`), naming no database.
@Suite("Platform API: published keys", .timeLimit(.minutes(2)))
struct PublishedKeysTests {
    @Test func jwksPublishesRevokedIdsAndRotationsWithHashedScopes() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "app", "group": "default"])
            let jwt = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/databases/app/auth/tokens").json["jwt"]
                    as? String)
            let jti = try #require(try await TokenContractTests.verify(jwt, cluster: cluster).claims["jti"] as? String)
            #expect(
                try await cluster.call(
                    "POST", "/v1/organizations/acme/databases/app/auth/tokens/revoke", json: ["jti": jti]
                ).status == 200)
            #expect(try await cluster.call("POST", "/v1/organizations/acme/databases/app/auth/rotate").status == 200)

            let jwks = try await LiveCluster.send("GET", cluster.controlURL + "/.well-known/jwks.json", token: nil)
            #expect(jwks.status == 200)
            #expect((jwks.json["keys"] as? [Any])?.isEmpty == false)
            #expect((jwks.json["revoked_jti"] as? [String])?.contains(jti) == true)
            let scope = SHA256.hash(data: Data("db:acme/app".utf8)).map { String(format: "%02x", $0) }.joined()
            let rotations = try #require(jwks.json["not_before_sha256"] as? [String: Any])
            #expect(rotations[scope] != nil, "\(jwks.text)")
            #expect(!jwks.text.contains("acme/app"))
        }
    }

    @Test func heartbeatsCarryThePolicyOnlyWhenItChanged() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            let fra = try #require(cluster.nodes["fra"])
            let heartbeat = "/v1/nodes/\(fra.id)/heartbeat"
            // A node that sends no version (an older one) always gets the policy.
            let plain = try await cluster.call("POST", heartbeat, token: try fra.credential())
            #expect(plain.status == 200)
            #expect(plain.json["policy"] is [String: Any])
            let version = try #require(plain.json["policy_version"] as? String)
            // Holding the current version: no policy, the same version.
            let same = try await cluster.call(
                "POST", heartbeat, json: ["policy_version": version], token: try fra.credential())
            #expect(same.status == 200)
            #expect(same.json["policy"] == nil, "\(same.text)")
            #expect(same.json["policy_version"] as? String == version)
            // After a rotation the policy changed: it comes again, with a new version.
            try await cluster.makeGroup(organization: "acme", group: "default")
            #expect(try await cluster.call("POST", "/v1/organizations/acme/groups/default/auth/rotate").status == 200)
            let changed = try await cluster.call(
                "POST", heartbeat, json: ["policy_version": version], token: try fra.credential())
            #expect(changed.json["policy"] is [String: Any])
            #expect(changed.json["policy_version"] as? String != version)
        }
    }
}
