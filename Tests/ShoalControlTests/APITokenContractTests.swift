import Crypto
import Foundation
import Logging
import ShoalControl
import ShoalMigrations
import ShoalModel
import ShoalTestSupport
import Testing

/// Organizations' API tokens: listed without secrets, expiring, revoked at once, created only by the
/// admin token or a token it allowed to and never outliving their creator, on both catalog backends.
@Suite("Platform API: API tokens", .serialized, .timeLimit(.minutes(5)))
struct APITokenContractTests {
    /// The answer to creating an API token of `organization` with `body`, as `token` (the admin's by default).
    static func create(
        _ cluster: LiveCluster, _ body: [String: Any], in organization: String = "acme", token: String? = nil
    ) async throws -> Answer {
        try await cluster.call("POST", "/v1/organizations/\(organization)/api-tokens", json: body, token: token)
    }

    /// A new token's secret and listed fields; fails the test when the creation is refused.
    static func created(
        _ cluster: LiveCluster, _ body: [String: Any], in organization: String = "acme", token: String? = nil
    ) async throws -> (secret: String, token: [String: Any]) {
        let answer = try await create(cluster, body, in: organization, token: token)
        try #require(answer.status == 200, "\(answer.text)")
        let secret = try #require(answer.json["token"] as? String)
        let token = try #require(answer.json["api_token"] as? [String: Any])
        return (secret, token)
    }

    static func list(_ cluster: LiveCluster, _ organization: String = "acme") async throws -> [[String: Any]] {
        let answer = try await cluster.call("GET", "/v1/organizations/\(organization)/api-tokens")
        try #require(answer.status == 200, "\(answer.text)")
        return try #require(answer.json["api_tokens"] as? [[String: Any]])
    }

    @Test(arguments: CatalogBackend.allCases)
    func listedTokensShowTheirFieldsButNeverTheirSecrets(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            _ = try await cluster.call("POST", "/v1/organizations", json: ["slug": "acme"])
            _ = try await cluster.call("POST", "/v1/organizations", json: ["slug": "rival"])
            let before = Int(cluster.time.now())
            let (secret, token) = try await Self.created(cluster, ["name": "ci"])
            #expect(secret.hasPrefix("shoal_") && secret.count == 70)
            let id = try #require(token["id"] as? String)
            #expect(token["name"] as? String == "ci")
            #expect((token["created_at"] as? Int).map { $0 >= before } == true)
            #expect(token["expires_at"] == nil)
            #expect(token["can_create_tokens"] as? Bool == false)
            #expect(token["created_by"] == nil)

            let listed = try #require(try await Self.list(cluster).first)
            #expect(Set(listed.keys) == ["id", "name", "created_at", "can_create_tokens"])
            #expect(listed["id"] as? String == id)
            // Using the token records when; neither the secret nor its hash is ever shown.
            #expect(try await cluster.call("GET", "/v1/organizations/acme", token: secret).status == 200)
            let own = try await cluster.call("GET", "/v1/organizations/acme/api-tokens", token: secret)
            #expect(own.status == 200)
            let used = try #require((own.json["api_tokens"] as? [[String: Any]])?.first)
            #expect((used["last_used_at"] as? Int).map { $0 >= before } == true)
            let hash = SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
            #expect(!own.text.contains(secret) && !own.text.contains(hash))
            #expect(try await Self.list(cluster, "rival").isEmpty)

            // No token: 401 on every call of the API.
            let calls: [(String, String, [String: Any]?)] = [
                ("GET", "", nil), ("POST", "", ["name": "x"]), ("DELETE", "/\(id)", nil),
            ]
            for (method, suffix, body) in calls {
                let path = "/v1/organizations/acme/api-tokens" + suffix
                let anonymous = try await cluster.call(method, path, json: body, token: "")
                #expect(anonymous.status == 401, "\(method) \(path)")
                #expect(anonymous.errorCode == "unauthorized")
            }
            // Another organization's token: 403, even one that may create tokens.
            let (rival, _) = try await Self.created(cluster, ["name": "ops", "can_create_tokens": true], in: "rival")
            for (method, suffix, body) in calls {
                let path = "/v1/organizations/acme/api-tokens" + suffix
                let foreign = try await cluster.call(method, path, json: body, token: rival)
                #expect(foreign.status == 403, "\(method) \(path)")
                #expect(foreign.errorCode == "forbidden")
            }
            // Through another organization's path, the id is unknown, even to the admin.
            let elsewhere = try await cluster.call("DELETE", "/v1/organizations/rival/api-tokens/\(id)")
            #expect(elsewhere.status == 404)
            #expect(elsewhere.errorCode == "not_found")
            let invented = try await cluster.call("DELETE", "/v1/organizations/acme/api-tokens/made-up")
            #expect(invented.status == 404)
            #expect(try await cluster.call("GET", "/v1/organizations/ghost/api-tokens").status == 404)
            #expect(try await cluster.call("GET", "/v1/organizations/acme", token: secret).status == 200)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func revokedTokensAreRefusedAtOnceOnEveryInstance(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            _ = try await cluster.call("POST", "/v1/organizations", json: ["slug": "acme"])
            // A second control plane over the same catalog, as behind a load balancer.
            var logger = Logger(label: "shoal.control.test.second")
            logger.logLevel = .critical
            let second = ControlPlane(catalog: cluster.catalog, logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { servers in
                let port = try await LiveCluster.start(
                    "second control plane", { second.application(host: "127.0.0.1", port: 0, onRunning: $0) },
                    in: &servers)
                let secondURL = "http://127.0.0.1:\(port)"
                let (secret, token) = try await Self.created(cluster, ["name": "ci"])
                let id = try #require(token["id"] as? String)
                func status(at base: String) async throws -> Int {
                    try await LiveCluster.send("GET", base + "/v1/organizations/acme", token: secret).status
                }
                #expect(try await status(at: cluster.controlURL) == 200)
                #expect(try await status(at: secondURL) == 200)

                let revoked = try await cluster.call("DELETE", "/v1/organizations/acme/api-tokens/\(id)")
                #expect(revoked.status == 200, "\(revoked.text)")
                #expect(revoked.json["revoked"] as? [String] == [id])
                #expect(try await status(at: cluster.controlURL) == 401)
                #expect(try await status(at: secondURL) == 401)
                #expect(try await Self.list(cluster).isEmpty)
                let again = try await cluster.call("DELETE", "/v1/organizations/acme/api-tokens/\(id)")
                #expect(again.status == 404)
                // The name is free again; the audit log has both changes.
                #expect(try await Self.create(cluster, ["name": "ci"]).status == 200)
                let audit = try await cluster.call("GET", "/v1/organizations/acme/audit-logs")
                let actions = (audit.json["audit_logs"] as? [[String: Any]] ?? []).compactMap {
                    $0["action"] as? String
                }
                #expect(actions.prefix(3) == ["api_token.create", "api_token.revoke", "api_token.create"])
                servers.cancelAll()
            }
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func expiredTokensAreRefusedWithAMessageThatSaysSo(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            _ = try await cluster.call("POST", "/v1/organizations", json: ["slug": "acme"])
            let (secret, token) = try await Self.created(cluster, ["name": "short", "expiration": "1h"])
            let expiresAt = try #require(token["expires_at"] as? Int)
            #expect(abs(expiresAt - Int(cluster.time.now()) - 3_600_000) < 5000)
            #expect(try await cluster.call("GET", "/v1/organizations/acme", token: secret).status == 200)
            let (_, forever) = try await Self.created(cluster, ["name": "forever", "expiration": "never"])
            #expect(forever["expires_at"] == nil)

            cluster.time.advance(seconds: 2 * 3600)
            let expired = try await cluster.call("GET", "/v1/organizations/acme", token: secret)
            #expect(expired.status == 401)
            #expect(expired.errorCode == "unauthorized")
            #expect(expired.errorMessage.contains("expired"), "\(expired.errorMessage)")
            // It stays listed, with its expiry, until revoked.
            let listed = try await Self.list(cluster)
            #expect(Set(listed.compactMap { $0["name"] as? String }) == ["short", "forever"])
            #expect(listed.first(where: { $0["name"] as? String == "short" })?["expires_at"] as? Int == expiresAt)

            for bad in ["soon", "0d", "99999d", "12"] {
                let answer = try await Self.create(cluster, ["name": "bad", "expiration": bad])
                #expect(answer.status == 400, "\(bad)")
                #expect(answer.errorCode == "bad_request")
            }
            #expect(try await Self.create(cluster, ["name": "Bad Name"]).errorCode == "invalid_name")
            #expect(try await Self.create(cluster, ["name": "forever"]).status == 409)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func onlyAllowedTokensCreateTokensAndNoneOutlivesItsCreator(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            _ = try await cluster.call("POST", "/v1/organizations", json: ["slug": "acme"])
            // An ordinary token may not create tokens.
            let (plain, _) = try await Self.created(cluster, ["name": "plain"])
            let refused = try await Self.create(cluster, ["name": "more"], token: plain)
            #expect(refused.status == 403)
            #expect(refused.errorCode == "forbidden")
            #expect(refused.errorMessage.contains("may not create"), "\(refused.errorMessage)")

            // The admin allows a token to; it cannot pass the right on.
            let (manager, managerToken) = try await Self.created(
                cluster, ["name": "manager", "can_create_tokens": true, "expiration": "2d"])
            #expect(managerToken["can_create_tokens"] as? Bool == true)
            let managerID = try #require(managerToken["id"] as? String)
            let managerExpiry = try #require(managerToken["expires_at"] as? Int)
            let passedOn = try await Self.create(
                cluster, ["name": "deputy", "can_create_tokens": true], token: manager)
            #expect(passedOn.status == 403)
            #expect(passedOn.errorMessage.contains("only the admin"), "\(passedOn.errorMessage)")

            // What it creates expires with it by default, and never later.
            let (child, childToken) = try await Self.created(cluster, ["name": "child"], token: manager)
            #expect(childToken["expires_at"] as? Int == managerExpiry)
            #expect(childToken["created_by"] as? String == managerID)
            #expect(childToken["can_create_tokens"] as? Bool == false)
            for expiration in ["3d", "never"] {
                let outliving = try await Self.create(
                    cluster, ["name": "long", "expiration": expiration], token: manager)
                #expect(outliving.status == 403, "\(expiration)")
                #expect(outliving.errorMessage.contains("outlive"), "\(outliving.errorMessage)")
            }
            let (brief, briefToken) = try await Self.created(
                cluster, ["name": "brief", "expiration": "1h"], token: manager)
            #expect((briefToken["expires_at"] as? Int).map { $0 < managerExpiry } == true)
            #expect(try await Self.create(cluster, ["name": "grandchild"], token: child).status == 403)
            #expect(try await cluster.call("GET", "/v1/organizations/acme/groups", token: child).status == 200)

            // An ordinary token revokes only itself; the manager revokes any of the organization's.
            let childID = try #require(childToken["id"] as? String)
            let plainID = try #require(
                try await Self.list(cluster).first(where: { $0["name"] as? String == "plain" })?["id"] as? String)
            let notItself = try await cluster.call(
                "DELETE", "/v1/organizations/acme/api-tokens/\(childID)", token: plain)
            #expect(notItself.status == 403)
            #expect(notItself.errorCode == "forbidden")
            let itself = try await cluster.call("DELETE", "/v1/organizations/acme/api-tokens/\(plainID)", token: plain)
            #expect(itself.status == 200, "\(itself.text)")
            #expect(try await cluster.call("GET", "/v1/organizations/acme", token: plain).status == 401)
            let (other, otherToken) = try await Self.created(cluster, ["name": "other"])
            let otherID = try #require(otherToken["id"] as? String)
            let byManager = try await cluster.call(
                "DELETE", "/v1/organizations/acme/api-tokens/\(otherID)", token: manager)
            #expect(byManager.status == 200, "\(byManager.text)")
            #expect(try await cluster.call("GET", "/v1/organizations/acme", token: other).status == 401)

            // Revoking the manager revokes what it created.
            let revoked = try await cluster.call("DELETE", "/v1/organizations/acme/api-tokens/\(managerID)")
            #expect(revoked.status == 200, "\(revoked.text)")
            let ids = try #require(revoked.json["revoked"] as? [String])
            let briefID = try #require(briefToken["id"] as? String)
            #expect(ids.first == managerID)
            #expect(Set(ids) == [managerID, childID, briefID])
            for secret in [manager, child, brief] {
                #expect(try await cluster.call("GET", "/v1/organizations/acme", token: secret).status == 401)
            }
            #expect(try await Self.list(cluster).isEmpty)

            // A manager that never expires creates tokens that never expire by default.
            let (steward, _) = try await Self.created(cluster, ["name": "steward", "can_create_tokens": true])
            let (_, app) = try await Self.created(cluster, ["name": "app"], token: steward)
            #expect(app["expires_at"] == nil)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func aTokenCreatedWhileItsCreatorIsRevokedDoesNotSurviveIt(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            _ = try await cluster.call("POST", "/v1/organizations", json: ["slug": "acme"])
            let catalog = cluster.catalog
            let admin = try #require(try await catalog.authenticate(secret: cluster.adminToken))
            for round in 0..<20 {
                let (secret, token) = try await Self.created(
                    cluster, ["name": "manager-\(round)", "can_create_tokens": true])
                let managerID = try #require(token["id"] as? String)
                // Authenticated before the revocation, as a request in flight would be.
                let manager = try #require(try await catalog.authenticate(secret: secret))
                let outcomes = try await withThrowingTaskGroup(of: String.self, returning: [String].self) { group in
                    group.addTask {
                        await OrganizationLockTests.outcome {
                            _ = try await catalog.createAPIToken(
                                organization: "acme", name: "child-\(round)", expiresIn: nil, canCreateTokens: false,
                                by: manager)
                        }
                    }
                    group.addTask {
                        await OrganizationLockTests.outcome {
                            _ = try await catalog.revokeAPIToken(organization: "acme", id: managerID, by: admin)
                        }
                    }
                    var outcomes: [String] = []
                    for try await outcome in group { outcomes.append(outcome) }
                    return outcomes.sorted()
                }
                // Either the creation came first (and the revocation took the child with it) or it
                // was refused because its creator was gone.
                #expect(outcomes == ["ok", "ok"] || outcomes == ["ok", "unauthorized"], "round \(round): \(outcomes)")
                let left = try await catalog.apiTokens(organization: "acme", for: admin)
                #expect(left.isEmpty, "round \(round): \(left.map(\.name))")
            }
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func upgradeKeepsEarlierTokensWorkingButUnableToCreateTokens(_ backend: CatalogBackend) async throws {
        let scratch = try TemporaryDirectory()
        let directory = scratch.path
        defer { withExtendedLifetime(scratch) {} }
        let schema = "k_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12)
        let store = try backend.makeStore(directory: directory, schema: String(schema))
        try await store.whileRunning {
            let migrations = backend == .sqlite ? CatalogMigrations.sqlite : CatalogMigrations.postgresql
            let secret = "shoal_" + String(repeating: "ab", count: 32)
            let hash = SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
            // A catalog at version 2, as an earlier control plane left it, with an organization's token.
            try await store.transaction { transaction in
                if backend == .postgresql {
                    try await transaction.query("CREATE SCHEMA IF NOT EXISTS \(schema)", [])
                }
                try await transaction.query(
                    "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
                        + "applied_at BIGINT NOT NULL)", [])
                for migration in migrations where migration.version <= 2 {
                    for statement in CatalogSchemaTests.statements(of: migration.sql) {
                        try await transaction.query(statement, [])
                    }
                    try await transaction.query(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, 0)",
                        [.integer(Int64(migration.version)), .text(migration.name)])
                }
                try await transaction.query(
                    "INSERT INTO organizations (id, slug, plan, created_at) VALUES ('o1', 'acme', 'free', 0)", [])
                try await transaction.query(
                    "INSERT INTO api_tokens (id, name, secret_hash, org_id, created_at) VALUES ('t1', 'acme/old', $1, 'o1', 0)",
                    [.text(hash)])
            }
            try await store.migrate()
            let catalog = Catalog(store: store)
            let principal = try #require(try await catalog.authenticate(secret: secret))
            #expect(principal.organizationID == "o1")
            #expect(principal.expiresAt == nil)
            #expect(!principal.mayCreateTokens)
            let outcome = await OrganizationLockTests.outcome {
                _ = try await catalog.createAPIToken(
                    organization: "acme", name: "new", expiresIn: nil, canCreateTokens: false, by: principal)
            }
            #expect(outcome == "forbidden")
            let listed = try await catalog.apiTokens(organization: "acme", for: principal)
            #expect(listed.map(\.name) == ["old"])
            #expect(listed.first?.lastUsedAt != nil)
        }
    }
}
