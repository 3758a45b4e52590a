import Crypto
import Foundation
import ShoalModel
import ShoalTestSupport
import Testing

@testable import ShoalControl

/// Nodes' own credentials: what each secret may do on the node routes, rotation, and what the
/// catalog keeps of them and of the other secrets (SHA-256, or sealed with the control plane's key).
@Suite("Node credentials and secrets at rest", .serialized, .timeLimit(.minutes(5)))
struct NodeCredentialTests {
    /// Found by schemathesis: the admin token re-registered a live node holding an EU-only group's
    /// database in iad, and the registration wiped the node's admin token.
    @Test(arguments: CatalogBackend.allCases)
    func registrationNeverMovesANodeToAnotherLocationNorDropsItsAdminToken(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(
                organization: "acme", group: "eu", location: "fra", rule: ["jurisdictions": ["eu"]])
            #expect(
                try await cluster.call(
                    "POST", "/v1/organizations/acme/databases", json: ["name": "ada", "group": "eu"]
                )
                .status == 200)
            let fra = try #require(cluster.nodes["fra"])
            let moved = try await cluster.call("POST", "/v1/nodes", json: ["location": "iad", "url": fra.url])
            #expect(moved.status == 409, "\(moved.text)")
            #expect(moved.text.contains("cannot move"))
            let instances = try await cluster.call("GET", "/v1/organizations/acme/databases/ada/instances")
            #expect(instances.text.contains("fra") && !instances.text.contains("iad"), "\(instances.text)")
            // The same location without an admin token keeps the one on record: the control plane
            // still reaches the node's admin API.
            let again = try await cluster.call("POST", "/v1/nodes", json: ["location": "fra", "url": fra.url])
            #expect(again.status == 200, "\(again.text)")
            let configured = try await cluster.call(
                "PATCH", "/v1/organizations/acme/databases/ada/configuration", json: ["delete_protection": false])
            #expect(configured.status == 200, "\(configured.text)")
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func heartbeatsAndPlacementLookupsTakeOnlyTheNodesOwnCredential(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend, locations: ["fra", "ams"]) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            let created = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "shop", "group": "default"])
            #expect(created.status == 200)
            let fra = try #require(cluster.nodes["fra"])
            let ams = try #require(cluster.nodes["ams"])
            let heartbeat = "/v1/nodes/\(fra.id)/heartbeat"
            let placement = "/v1/nodes/\(fra.id)/databases/acme/shop"
            let own = try fra.credential()
            #expect(own.hasPrefix("shoal_node_"))
            #expect(try await cluster.call("POST", heartbeat, token: own).status == 200)
            let placed = try await cluster.call("GET", placement, token: own)
            #expect(placed.status == 200, "\(placed.text)")
            #expect(placed.json["group"] as? String == "default")
            // ams asks about its own id with its own credential: shop is not placed there.
            let elsewhere = try await cluster.call(
                "GET", "/v1/nodes/\(ams.id)/databases/acme/shop", token: try ams.credential())
            #expect(elsewhere.status == 404)

            // Every other secret the control plane knows is refused for fra: 403.
            let others = [
                ("another node's credential", try ams.credential()),
                ("the node registration token", cluster.registrationToken),
                ("the admin token", cluster.adminToken),
            ]
            for (what, secret) in others {
                let beat = try await cluster.call("POST", heartbeat, token: secret)
                #expect(beat.status == 403, "\(what): \(beat.text)")
                #expect(beat.errorCode == "forbidden", "\(what)")
                let lookup = try await cluster.call("GET", placement, token: secret)
                #expect(lookup.status == 403, "\(what): \(lookup.text)")
            }
            // A secret it does not know, or none at all: 401.
            let unknown = "shoal_node_" + String(repeating: "0", count: 64)
            #expect(try await cluster.call("POST", heartbeat, token: unknown).status == 401)
            #expect(try await cluster.call("GET", placement, token: unknown).status == 401)
            #expect(try await LiveCluster.send("POST", cluster.controlURL + heartbeat, token: nil).status == 401)
            #expect(try await LiveCluster.send("GET", cluster.controlURL + placement, token: nil).status == 401)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func registrationTokenRegistersNewNodesButNeverTakesOverALiveOne(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            let fra = try #require(cluster.nodes["fra"])
            let spareURL = "http://127.0.0.1:9"
            // A new node is registered and issued a credential of its own, which heartbeats for it.
            let joined = try await cluster.call(
                "POST", "/v1/nodes", json: ["location": "fra", "url": spareURL, "admin_token": "spare-admin"],
                token: cluster.registrationToken)
            #expect(joined.status == 200, "\(joined.text)")
            let spareID = try #require((joined.json["node"] as? [String: Any])?["id"] as? String)
            let spare = try #require(joined.json["credential"] as? String)
            #expect(try await cluster.call("POST", "/v1/nodes/\(spareID)/heartbeat", token: spare).status == 200)

            // Its credential registers it again, keeping the credential, but never as another node.
            let again = try await cluster.call(
                "POST", "/v1/nodes", json: ["location": "fra", "url": spareURL, "id": spareID], token: spare)
            #expect(again.status == 200, "\(again.text)")
            #expect(again.json["credential"] == nil)
            #expect(try await cluster.call("POST", "/v1/nodes/\(spareID)/heartbeat", token: spare).status == 200)
            let impostor = try await cluster.call(
                "POST", "/v1/nodes", json: ["location": "fra", "url": fra.url, "id": fra.id], token: spare)
            #expect(impostor.status == 403, "\(impostor.text)")

            // The registration token cannot take the live fra node over, by its id or by its URL.
            let takeovers: [[String: Any]] = [
                ["location": "fra", "url": "http://127.0.0.1:10", "id": fra.id], ["location": "fra", "url": fra.url],
            ]
            for body in takeovers {
                let takeover = try await cluster.call("POST", "/v1/nodes", json: body, token: cluster.registrationToken)
                #expect(takeover.status == 403, "\(takeover.text)")
            }
            let fraBeat = try await cluster.call("POST", "/v1/nodes/\(fra.id)/heartbeat", token: try fra.credential())
            #expect(fraBeat.status == 200)

            // Once a node is down (no heartbeat for longer than the node timeout), the registration token
            // registers it again with a new credential, and the old one is void.
            cluster.time.advance(seconds: 60)
            let taken = try await cluster.call(
                "POST", "/v1/nodes", json: ["location": "fra", "url": spareURL, "id": spareID],
                token: cluster.registrationToken)
            #expect(taken.status == 200, "\(taken.text)")
            let renewed = try #require(taken.json["credential"] as? String)
            #expect(renewed != spare)
            #expect(try await cluster.call("POST", "/v1/nodes/\(spareID)/heartbeat", token: spare).status == 401)
            #expect(try await cluster.call("POST", "/v1/nodes/\(spareID)/heartbeat", token: renewed).status == 200)

            // An organization's API token registers nothing.
            try await cluster.makeGroup(organization: "acme", group: "default")
            let apiToken = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/api-tokens", json: ["name": "ops"]).json["token"]
                    as? String)
            let byOrganization = try await cluster.call(
                "POST", "/v1/nodes", json: ["location": "fra", "url": "http://127.0.0.1:11"], token: apiToken)
            #expect(byOrganization.status == 403, "\(byOrganization.text)")
            // Nor does it, or no token at all, replace the registration token or rotate a credential.
            for path in [
                "/v1/nodes/registration-token", "/v1/nodes/\(try #require(cluster.nodes["fra"]).id)/credential/rotate",
            ] {
                #expect(try await LiveCluster.send("POST", cluster.controlURL + path, token: nil).status == 401)
                #expect(try await cluster.call("POST", path, token: apiToken).status == 403, "\(path)")
            }
            // The admin replaces the registration token: the old one registers nothing any more.
            let replaced = try await cluster.call("POST", "/v1/nodes/registration-token")
            #expect(replaced.status == 200)
            let newToken = try #require(replaced.json["registration_token"] as? String)
            #expect(newToken != cluster.registrationToken)
            let late = ["location": "fra", "url": "http://127.0.0.1:12"]
            #expect(
                try await cluster.call("POST", "/v1/nodes", json: late, token: cluster.registrationToken).status == 401)
            #expect(try await cluster.call("POST", "/v1/nodes", json: late, token: newToken).status == 200)
            #expect(try await cluster.call("POST", "/v1/nodes/registration-token", token: newToken).status == 401)
            // fra keeps working with its credential.
            let stillBeats = try await cluster.call(
                "POST", "/v1/nodes/\(fra.id)/heartbeat", token: try fra.credential())
            #expect(stillBeats.status == 200)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func rotatingANodesCredentialVoidsItAndTheNodeRegistersAgainWithANewOne(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            let fra = try #require(cluster.nodes["fra"])
            let old = try fra.credential()
            let rotate = "/v1/nodes/\(fra.id)/credential/rotate"
            // Only the admin token rotates a credential.
            #expect(try await cluster.call("POST", rotate, token: old).status == 401)
            #expect(try await cluster.call("POST", rotate, token: cluster.registrationToken).status == 401)
            let unknownNode = UUID().uuidString.lowercased()
            #expect(try await cluster.call("POST", "/v1/nodes/\(unknownNode)/credential/rotate").status == 404)
            let rotated = try await cluster.call("POST", rotate)
            #expect(rotated.status == 200, "\(rotated.text)")
            #expect(try await cluster.call("POST", "/v1/nodes/\(fra.id)/heartbeat", token: old).status == 401)

            // Refused at its next heartbeat (every 5 s), the node registers again with the registration
            // token and keeps the new credential.
            var renewed = old
            for _ in 0..<300 where renewed == old {
                try await Task.sleep(for: .milliseconds(100))
                renewed = (try? fra.credential()) ?? old
            }
            #expect(renewed != old)
            #expect(try await cluster.call("POST", "/v1/nodes/\(fra.id)/heartbeat", token: renewed).status == 200)
            #expect(try await cluster.call("POST", "/v1/nodes/\(fra.id)/heartbeat", token: old).status == 401)
            // Its placement lookups carry the new one: a database created now is served on first use.
            let created = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "late", "group": "default"])
            #expect(created.status == 200)
            let jwt = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/databases/late/auth/tokens").json["jwt"]
                    as? String)
            let first = try await LiveCluster.execute("SELECT 1", at: fra.url + "/db/acme/late", token: jwt)
            #expect(first.status == 200 && !first.pipelineFailed, "\(first.text)")
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func catalogHoldsNoNodeCredentialOrAdminSecretInClear(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "app", "group": "default"])
            // Issuing a token creates the signing key.
            _ = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/databases/app/auth/tokens").json["jwt"]
                    as? String)
            let fra = try #require(cluster.nodes["fra"])
            let secrets = [
                ("the node's credential", try fra.credential()),
                ("the node registration token", cluster.registrationToken),
                ("the admin token", cluster.adminToken),
                ("the node's admin token", "node-admin-fra"),
            ]
            var texts: [String] = []
            for table in ["nodes", "node_registration_tokens", "signing_keys", "api_tokens", "audit_logs"] {
                let rows = try await cluster.store.transaction { transaction in
                    try await transaction.query("SELECT * FROM \(table)", [])
                }
                #expect(!rows.isEmpty, "\(table) is empty")
                for row in rows {
                    for case .text(let text) in row.values { texts.append(text) }
                }
            }
            for (what, secret) in secrets {
                #expect(!texts.contains { $0.contains(secret) }, "\(what) is in the catalog in clear")
            }
            // The signing keys' private halves and the node's admin token are sealed, and still serve.
            let keys = try await cluster.store.transaction { transaction in
                try await transaction.query("SELECT private_key FROM signing_keys", []).map { try $0.text(0) }
            }
            #expect(!keys.isEmpty)
            for key in keys {
                #expect(key.hasPrefix("sealed:v1:"))
                #expect(Data(base64Encoded: key) == nil)
            }
            let adminToken = try await cluster.store.transaction { transaction in
                try await transaction.queryOne("SELECT admin_token FROM nodes WHERE id = $1", [.text(fra.id)])?
                    .text(0)
            }
            #expect(adminToken?.hasPrefix("sealed:v1:") == true)
            #expect(try await cluster.catalog.node(id: fra.id)?.adminToken == "node-admin-fra")
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func startingSealsWhatAnEarlierVersionLeftInClearAndRefusesAnotherKey(_ backend: CatalogBackend) async throws {
        let scratch = try TemporaryDirectory()
        let directory = scratch.path
        defer { withExtendedLifetime(scratch) {} }
        let schema = "s_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12)
        let store = try backend.makeStore(directory: directory, schema: String(schema))
        try await store.whileRunning {
            try await store.migrate()
            // As an earlier version left them: a node's admin token and a signing key in clear.
            let key = Curve25519.Signing.PrivateKey()
            let clearKey = key.rawRepresentation.base64EncodedString()
            let publicKey = Base64URL.encode(Array(key.publicKey.rawRepresentation))
            try await store.transaction { transaction in
                try await transaction.query(
                    """
                    INSERT INTO nodes (id, location, url, admin_token, primaries, registered_at, last_heartbeat_at)
                    VALUES ('n1', 'fra', 'http://127.0.0.1:9', 'clear-admin', 0, 0, 0)
                    """, [])
                try await transaction.query(
                    """
                    INSERT INTO signing_keys (kid, private_key, public_key, created_at, retired_at)
                    VALUES ('k1', $1, $2, 0, NULL)
                    """,
                    [.text(clearKey), .text(publicKey)])
            }
            let sealer = SecretSealer.random()
            let catalog = Catalog(store: store, sealer: sealer)
            #expect(try await catalog.sealStoredSecrets() == 2)
            #expect(try await catalog.sealStoredSecrets() == 0)
            let stored = try await store.transaction { transaction in
                [
                    try await transaction.queryOne("SELECT admin_token FROM nodes WHERE id = 'n1'", [])?.text(0),
                    try await transaction.queryOne("SELECT private_key FROM signing_keys WHERE kid = 'k1'", [])?.text(
                        0),
                ]
            }
            #expect(stored.allSatisfy { $0?.hasPrefix("sealed:v1:") == true })
            #expect(!stored.contains { $0?.contains("clear-admin") == true || $0?.contains(clearKey) == true })
            // What was sealed still serves: the node's admin token, and the same signing key.
            #expect(try await catalog.node(id: "n1")?.adminToken == "clear-admin")
            let signing = try await catalog.read { transaction in
                let (kid, key) = try await catalog.signingKey(in: transaction)
                return (kid, key.rawRepresentation)
            }
            #expect(signing.0 == "k1")
            #expect(signing.1 == key.rawRepresentation)
            // A control plane with another key refuses to start, naming the key the catalog needs.
            let refused = await #expect(throws: ControlError.self) {
                try await Catalog(store: store, sealer: .random()).sealStoredSecrets()
            }
            #expect(refused?.codeName == "catalog_unavailable")
            #expect(refused?.message.contains(sealer.keyID) == true)
        }
    }

    @Test func sealedSecretsOpenOnlyWithTheirKeyAndInTheirRow() throws {
        let sealer = SecretSealer.random()
        let sealed = try sealer.seal("node-admin-secret", context: "nodes.admin_token:n1")
        #expect(!sealed.contains("node-admin-secret"))
        #expect(try sealer.open(sealed, context: "nodes.admin_token:n1") == "node-admin-secret")
        // A fresh nonce each time.
        #expect(try sealer.seal("node-admin-secret", context: "nodes.admin_token:n1") != sealed)
        #expect(throws: ControlError.self) { try sealer.open(sealed, context: "nodes.admin_token:n2") }
        let other = #expect(throws: ControlError.self) {
            try SecretSealer.random().open(sealed, context: "nodes.admin_token:n1")
        }
        #expect(other?.message.contains(sealer.keyID) == true)
        #expect(other?.message.contains("node-admin-secret") == false)
        #expect(throws: ControlError.self) { try SecretSealer(base64: Data(count: 16).base64EncodedString()) }
        #expect(throws: ControlError.self) { try SecretSealer(base64: "not base64!") }
    }

    @Test func sealingKeyFileIsCreatedOnceAndReadableByItsOwnerOnly() throws {
        let scratch = try TemporaryDirectory()
        let directory = scratch.path
        defer { withExtendedLifetime(scratch) {} }
        let file = directory + "/sealing-key"
        #expect(throws: ControlError.self) { try SecretSealer.load(file: file, createIfMissing: false) }
        let (created, wasCreated) = try SecretSealer.load(file: file, createIfMissing: true)
        #expect(wasCreated)
        let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let (loaded, createdAgain) = try SecretSealer.load(file: file, createIfMissing: true)
        #expect(!createdAgain)
        #expect(loaded.keyID == created.keyID)
        #expect(try loaded.open(try created.seal("secret", context: "c"), context: "c") == "secret")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["sealing-key"])
    }
}
