import Crypto
import Foundation
import ShoalControl
import ShoalModel
import Testing

/// Database and group tokens: claims, signatures checked against the published JWKS, locations
/// under region rules, revocation, rotation and signing-key rotation, on both catalog backends.
@Suite("Platform API: tokens", .serialized, .timeLimit(.minutes(5)))
struct TokenContractTests {
    /// Verifies `jwt` against the JWKS the control plane publishes; returns the header and claims.
    static func verify(
        _ jwt: String, cluster: LiveCluster
    ) async throws -> (
        header: [String: Any], claims: [String: Any]
    ) {
        let jwks = try await LiveCluster.send("GET", cluster.controlURL + "/.well-known/jwks.json", token: nil)
        let keys = try #require(jwks.json["keys"] as? [[String: Any]])
        let parts = jwt.split(separator: ".").map(String.init)
        try #require(parts.count == 3)
        func object(_ part: String) throws -> [String: Any] {
            guard let bytes = Base64URL.decode(part),
                let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
            else { throw ClusterError("a JWT part is not base64url JSON") }
            return object
        }
        let header = try object(parts[0])
        let claims = try object(parts[1])
        #expect(header["alg"] as? String == "EdDSA")
        let key = try #require(keys.first { $0["kid"] as? String == header["kid"] as? String })
        #expect(key["kty"] as? String == "OKP")
        #expect(key["crv"] as? String == "Ed25519")
        let x = try #require(key["x"] as? String)
        let publicKey = try Curve25519.Signing.PublicKey(rawRepresentation: try #require(Base64URL.decode(x)))
        let signature = try #require(Base64URL.decode(parts[2]))
        #expect(publicKey.isValidSignature(signature, for: Data("\(parts[0]).\(parts[1])".utf8)))
        #expect(!publicKey.isValidSignature(signature, for: Data("\(parts[0]).\(parts[1])x".utf8)))
        return (header, claims)
    }

    @Test(arguments: CatalogBackend.allCases)
    func tokensCarryTheirClaimsAndVerifyWithThePublishedKeys(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "app", "group": "default"])
            let issued = try await cluster.call(
                "POST", "/v1/organizations/acme/databases/app/auth/tokens?expiration=2w&authorization=read-only")
            let jwt = try #require(issued.json["jwt"] as? String)
            let (_, claims) = try await Self.verify(jwt, cluster: cluster)
            #expect(claims["id"] as? String == "acme/app")
            #expect(claims["a"] as? String == "ro")
            #expect(claims["jti"] is String)
            let exp = try #require(claims["exp"] as? Double)
            let expected = Double(cluster.time.now() / 1000 + 14 * 86_400)
            #expect(abs(exp - expected) < 5)
            let never = try await cluster.call("POST", "/v1/organizations/acme/databases/app/auth/tokens")
            let (_, forever) = try await Self.verify(try #require(never.json["jwt"] as? String), cluster: cluster)
            #expect(forever["exp"] == nil)
            #expect(forever["a"] as? String == "rw")
            let group = try await cluster.call("POST", "/v1/organizations/acme/groups/default/auth/tokens")
            let (_, groupClaims) = try await Self.verify(try #require(group.json["jwt"] as? String), cluster: cluster)
            #expect(groupClaims["gid"] as? String == "acme/default")
            #expect(groupClaims["id"] == nil)

            // On the node: read-only cannot write; the group token covers the database.
            let url = cluster.nodes["fra"]!.url + "/db/acme/app"
            let groupJWT = try #require(group.json["jwt"] as? String)
            #expect(!(try await LiveCluster.execute("CREATE TABLE t (x)", at: url, token: groupJWT).pipelineFailed))
            #expect(try await LiveCluster.execute("INSERT INTO t VALUES (1)", at: url, token: jwt).pipelineFailed)
            #expect(!(try await LiveCluster.execute("SELECT * FROM t", at: url, token: jwt).pipelineFailed))

            for bad in ["expiration=soon", "expiration=0d", "authorization=admin"] {
                let answer = try await cluster.call("POST", "/v1/organizations/acme/databases/app/auth/tokens?\(bad)")
                #expect(answer.status == 400, "\(bad)")
            }
            #expect(try await cluster.call("POST", "/v1/organizations/acme/databases/nope/auth/tokens").status == 404)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func tokenLocationsObeyTheRegionRule(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(
                organization: "acme", group: "eu", location: "fra", rule: ["jurisdictions": ["eu"]])
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "gdpr", "group": "eu"])
            let inside = try await cluster.call(
                "POST", "/v1/organizations/acme/databases/gdpr/auth/tokens?location=ams")
            let (_, claims) = try await Self.verify(try #require(inside.json["jwt"] as? String), cluster: cluster)
            #expect(claims["loc"] as? String == "ams")
            let outside = try await cluster.call(
                "POST", "/v1/organizations/acme/databases/gdpr/auth/tokens?location=iad")
            #expect(outside.status == 422)
            #expect(outside.errorCode == "region_lock_violation")
            #expect(outside.errorMessage.contains("iad"))
            let groupOutside = try await cluster.call(
                "POST", "/v1/organizations/acme/groups/eu/auth/tokens?location=syd")
            #expect(groupOutside.errorCode == "region_lock_violation")

            // The node enforces the rule the control plane sent with the database: a sync from a
            // location outside it is refused, from inside it works.
            let url = cluster.nodes["fra"]!.url + "/db/acme/gdpr"
            let insideJWT = try #require(inside.json["jwt"] as? String)
            #expect(try await LiveCluster.send("GET", url + "/info", token: insideJWT).status == 200)
            let noLocation = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/databases/gdpr/auth/tokens").json["jwt"]
                    as? String)
            #expect(try await LiveCluster.send("GET", url + "/info", token: noLocation).status == 403)

            // Narrowing the group's rule reaches the node: ams is now outside, fra inside.
            let narrowed = try await cluster.call(
                "PATCH", "/v1/organizations/acme/groups/eu", json: ["region_rule": ["locations": ["fra"]]])
            #expect(narrowed.status == 200)
            #expect(try await LiveCluster.send("GET", url + "/info", token: insideJWT).status == 403)
            let fra = try #require(
                try await cluster.call(
                    "POST", "/v1/organizations/acme/databases/gdpr/auth/tokens?location=fra"
                ).json["jwt"] as? String)
            #expect(try await LiveCluster.send("GET", url + "/info", token: fra).status == 200)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func revocationAndRotationReachTheNode(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "app", "group": "default"])
            let url = cluster.nodes["fra"]!.url + "/db/acme/app"
            func issue(_ path: String = "databases/app") async throws -> String {
                try #require(
                    try await cluster.call("POST", "/v1/organizations/acme/\(path)/auth/tokens").json["jwt"] as? String)
            }
            let revoked = try await issue()
            let kept = try await issue()
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: revoked).status == 200)
            let (_, claims) = try await Self.verify(revoked, cluster: cluster)
            let jti = try #require(claims["jti"] as? String)
            let answer = try await cluster.call(
                "POST", "/v1/organizations/acme/databases/app/auth/tokens/revoke", json: ["jti": jti])
            #expect(answer.status == 200)
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: revoked).status == 401)
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: kept).status == 200)

            // Rotation: every earlier token of the database stops working; new ones work.
            let groupToken = try await issue("groups/default")
            #expect(
                try await cluster.call("POST", "/v1/organizations/acme/databases/app/auth/rotate").status == 200)
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: kept).status == 401)
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: groupToken).status == 200)
            let fresh = try await issue()
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: fresh).status == 200)
            // Rotating the group covers its tokens and its databases' tokens.
            #expect(try await cluster.call("POST", "/v1/organizations/acme/groups/default/auth/rotate").status == 200)
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: groupToken).status == 401)
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: fresh).status == 401)
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: try await issue()).status == 200)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func signingKeyRotationKeepsOldTokensValidForTheOverlap(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "app", "group": "default"])
            let url = cluster.nodes["fra"]!.url + "/db/acme/app"
            let old = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/databases/app/auth/tokens").json["jwt"]
                    as? String)
            let rotated = try await cluster.call("POST", "/v1/auth/keys/rotate")
            #expect(rotated.status == 200)
            let jwks = try await LiveCluster.send("GET", cluster.controlURL + "/.well-known/jwks.json", token: nil)
            #expect((jwks.json["keys"] as? [Any])?.count == 2)
            let new = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/databases/app/auth/tokens").json["jwt"]
                    as? String)
            let (newHeader, _) = try await Self.verify(new, cluster: cluster)
            #expect(newHeader["kid"] as? String == rotated.json["kid"] as? String)
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: old).status == 200)
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: new).status == 200)
            // After the overlap window the old key is gone from the JWKS and from the node.
            cluster.time.advance(seconds: 2 * 86_400)
            let later = try await LiveCluster.send("GET", cluster.controlURL + "/.well-known/jwks.json", token: nil)
            #expect((later.json["keys"] as? [Any])?.count == 1)
            // The node's heartbeat is stale after the jump: it registers again, then the policy is
            // pushed (as a heartbeat would bring it) by revoking a token issued for the purpose.
            _ = try await cluster.call(
                "POST", "/v1/nodes",
                json: ["location": "fra", "url": cluster.nodes["fra"]!.url, "admin_token": "node-admin-fra"])
            let spare = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/databases/app/auth/tokens").json["jwt"]
                    as? String)
            let spareJTI = try #require(try await Self.verify(spare, cluster: cluster).claims["jti"] as? String)
            let pushed = try await cluster.call(
                "POST", "/v1/organizations/acme/auth/tokens/revoke", json: ["jti": spareJTI])
            #expect(pushed.status == 200)
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: old).status == 401)
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: new).status == 200)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func organizationCanRevokeOnlyTokensIssuedToIt(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            try await cluster.makeGroup(organization: "rival", group: "default")
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "app", "group": "default"])
            let url = cluster.nodes["fra"]!.url + "/db/acme/app"
            let jwt = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/databases/app/auth/tokens").json["jwt"]
                    as? String)
            let jti = try #require(try await Self.verify(jwt, cluster: cluster).claims["jti"] as? String)
            func apiToken(_ organization: String) async throws -> String {
                try #require(
                    try await cluster.call(
                        "POST", "/v1/organizations/\(organization)/api-tokens", json: ["name": "ops"]
                    ).json["token"] as? String)
            }
            let rival = try await apiToken("rival")

            // Another organization cannot revoke it: not through its own organization (the jti was not
            // issued to it), not through the token's.
            let foreign = try await cluster.call(
                "POST", "/v1/organizations/rival/auth/tokens/revoke", json: ["jti": jti], token: rival)
            #expect(foreign.status == 404)
            #expect(foreign.errorCode == "not_found")
            #expect(foreign.errorMessage.contains("no token with that jti was issued to this organization"))
            let acrossOrganizations = try await cluster.call(
                "POST", "/v1/organizations/acme/databases/app/auth/tokens/revoke", json: ["jti": jti], token: rival)
            #expect(acrossOrganizations.status == 403)
            // An id no token was issued with is refused too, even for the admin: the list cannot grow
            // with made-up ids.
            let invented = try await cluster.call(
                "POST", "/v1/organizations/acme/auth/tokens/revoke", json: ["jti": "made-up"])
            #expect(invented.status == 404)
            #expect(invented.errorCode == "not_found")
            #expect(try await cluster.catalog.tokenPolicy().revokedJti == [])
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: jwt).status == 200)

            // The organization's own API token revokes it; a group token of its own can be revoked too.
            let own = try await cluster.call(
                "POST", "/v1/organizations/acme/databases/app/auth/tokens/revoke", json: ["jti": jti],
                token: try await apiToken("acme"))
            #expect(own.status == 200, "\(own.text)")
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: jwt).status == 401)
            let groupJWT = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/groups/default/auth/tokens").json["jwt"]
                    as? String)
            let groupJTI = try #require(try await Self.verify(groupJWT, cluster: cluster).claims["jti"] as? String)
            let group = try await cluster.call(
                "POST", "/v1/organizations/acme/groups/default/auth/tokens/revoke", json: ["jti": groupJTI])
            #expect(group.status == 200, "\(group.text)")
            #expect(try await cluster.catalog.tokenPolicy().revokedJti.sorted() == [jti, groupJTI].sorted())
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func policySentToNodesOmitsRevocationsOfExpiredTokens(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "app", "group": "default"])
            func issueAndRevoke(_ path: String, expiration: String) async throws -> String {
                let jwt = try #require(
                    try await cluster.call(
                        "POST", "/v1/organizations/acme/\(path)/auth/tokens?expiration=\(expiration)"
                    ).json["jwt"] as? String)
                let jti = try #require(try await Self.verify(jwt, cluster: cluster).claims["jti"] as? String)
                let revoked = try await cluster.call(
                    "POST", "/v1/organizations/acme/auth/tokens/revoke", json: ["jti": jti])
                #expect(revoked.status == 200, "\(revoked.text)")
                return jti
            }
            let hour = try await issueAndRevoke("databases/app", expiration: "1h")
            let groupHour = try await issueAndRevoke("groups/default", expiration: "1h")
            let forever = try await issueAndRevoke("databases/app", expiration: "never")
            #expect(try await cluster.catalog.tokenPolicy().revokedJti.sorted() == [hour, groupHour, forever].sorted())

            // Two hours on, the one-hour tokens have expired: nodes refuse them anyway, so their
            // revocations are no longer sent.
            cluster.time.advance(seconds: 2 * 3600)
            #expect(try await cluster.catalog.tokenPolicy().revokedJti == [forever])
            // The next revocation removes the lapsed ones from the catalog too.
            let later = try await issueAndRevoke("databases/app", expiration: "1h")
            #expect(try await cluster.catalog.tokenPolicy().revokedJti.sorted() == [forever, later].sorted())
            let stored = try await cluster.store.transaction { transaction in
                try await transaction.query("SELECT jti FROM revoked_tokens", []).map { try $0.text(0) }
            }
            #expect(stored.sorted() == [forever, later].sorted())
            // The record of an expired token goes with its revocation: revoking it again is refused.
            let lapsed = try await cluster.call(
                "POST", "/v1/organizations/acme/auth/tokens/revoke", json: ["jti": hour])
            #expect(lapsed.status == 404)
        }
    }
}
