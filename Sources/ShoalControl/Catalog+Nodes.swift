import Foundation
import ShoalModel

/// Nodes' registration and credentials.
///
/// Three kinds of secret reach the node routes. The admin token is the operator's and may do
/// anything. The node registration token registers a new node, or a known one that has no
/// credential or is down, and nothing else. Each node's own credential, issued when it registers,
/// heartbeats, asks for that node's placements and registers that node again. All three are stored
/// as SHA-256 only, and a node never holds the admin token. What the control plane must read back
/// (nodes' admin tokens, signing keys) is sealed with its `SecretSealer`.
extension Catalog {
    /// Who calls a node route.
    public enum NodeCaller: Sendable, Equatable {
        /// An API token: the admin token, or an organization's (which node routes refuse).
        case apiToken(Principal)
        /// The node registration token.
        case registration
        /// The credential of node `id`.
        case node(id: String)
    }

    /// Where a node's admin token is sealed (binds the sealed value to its row).
    static func adminTokenContext(node id: String) -> String { "nodes.admin_token:\(id)" }

    /// Where a signing key's private half is sealed (binds the sealed value to its row).
    static func signingKeyContext(kid: String) -> String { "signing_keys.private_key:\(kid)" }

    /// A random secret: `prefix` and 64 hex digits (256 bits).
    static func randomSecret(prefix: String) -> String {
        var generator = SystemRandomNumberGenerator()
        return prefix
            + (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    // MARK: - The node registration token

    /// Creates the node registration token if the catalog has none and returns it (shown once); nil
    /// if there is one.
    public func bootstrapNodeRegistrationToken() async throws -> String? {
        try await read { transaction in
            guard try await transaction.queryOne("SELECT id FROM node_registration_tokens LIMIT 1", []) == nil else {
                return nil
            }
            let secret = Self.randomSecret(prefix: "shoal_reg_")
            try await transaction.query(
                "INSERT INTO node_registration_tokens (id, secret_hash, created_at) VALUES ($1, $2, $3)",
                [.text(Self.newID()), .text(APISecret.hash(secret)), .integer(now())])
            return secret
        }
    }

    /// Replaces the node registration token (admin only) and returns the new one (shown once). Nodes
    /// keep working with their credentials; the old token registers nothing any more.
    public func replaceNodeRegistrationToken(by principal: Principal) async throws -> String {
        guard principal.isAdmin else {
            throw ControlError.forbidden("only an admin token can replace the node registration token")
        }
        let secret = Self.randomSecret(prefix: "shoal_reg_")
        return try await read { transaction in
            try await transaction.query("DELETE FROM node_registration_tokens", [])
            try await transaction.query(
                "INSERT INTO node_registration_tokens (id, secret_hash, created_at) VALUES ($1, $2, $3)",
                [.text(Self.newID()), .text(APISecret.hash(secret)), .integer(now())])
            try await audit(
                transaction, organization: nil, actor: principal, action: "node.registration_token.replace",
                target: "node-registration-token", detail: "node registration token replaced; the previous one is void")
            return secret
        }
    }

    // MARK: - Credentials

    /// What a bearer secret is on the node routes: a node's credential or the registration token;
    /// nil for anything else (an API token, or a secret the catalog does not know).
    func nodeCaller(secret: String) async throws -> NodeCaller? {
        let hash = APISecret.hash(secret)
        return try await read { transaction in
            if let row = try await transaction.queryOne(
                "SELECT id FROM nodes WHERE credential_hash = $1", [.text(hash)])
            {
                return .node(id: try row.text(0))
            }
            if try await transaction.queryOne(
                "SELECT id FROM node_registration_tokens WHERE secret_hash = $1", [.text(hash)]) != nil
            {
                return .registration
            }
            return nil
        }
    }

    /// Registers a node, or refreshes the registration of a known one (found by id, else by URL), and
    /// returns it with the credential issued to it, if one was (shown once):
    /// - the admin token registers any node; a new one is issued a credential, a known one keeps its;
    /// - the registration token registers a new node, or a known one that has no credential or is
    ///   down, and issues it a new credential (the old one, if any, stops working);
    /// - a node's own credential registers only that node, which keeps its credential.
    public func registerNode(
        _ registration: Platform.NodeRegistration, by caller: NodeCaller
    ) async throws -> (node: Platform.Node, credential: String?) {
        let actor: String
        switch caller {
        case .apiToken(let principal):
            guard principal.isAdmin else {
                throw ControlError.forbidden(
                    "an organization's API token cannot register nodes; nodes register with the node registration token"
                )
            }
            actor = principal.name
        case .registration:
            actor = "node-registration-token"
        case .node(let id):
            actor = "node \(id)"
            if let claimed = registration.id, claimed != id {
                throw ControlError.forbidden("this is another node's credential; a node registers only itself")
            }
        }
        guard let url = URL(string: registration.url), ["http", "https"].contains(url.scheme), url.host != nil else {
            throw ControlError.unprocessable("the node URL must be an http(s) URL, like http://10.0.0.5:8080")
        }
        let base = registration.url.hasSuffix("/") ? String(registration.url.dropLast()) : registration.url
        let liveSince = now() - Int64(configuration.nodeTimeout.components.seconds * 1000)
        return try await read { transaction in
            _ = try await location(registration.location, in: transaction)
            let now = now()
            let columns = "SELECT id, credential_hash, last_heartbeat_at, location FROM nodes"
            var claimedID = registration.id
            if case .node(let own) = caller { claimedID = own }
            let known = try await claimedID.asyncMap { id in
                try await transaction.queryOne("\(columns) WHERE id = $1", [.text(id)])
            }
            var row = known ?? nil
            if row == nil {
                row = try await transaction.queryOne("\(columns) WHERE url = $1", [.text(base)])
            }
            let existing = try row.map {
                (
                    id: try $0.text(0), hasCredential: try $0.optionalText(1) != nil, lastHeartbeat: try $0.integer(2),
                    location: try $0.text(3)
                )
            }
            // A node's location is where its disks are: the databases and replicas placed on it were
            // placed for that location (and its jurisdiction), so a registration never moves it.
            if let existing, existing.location != registration.location {
                throw ControlError.conflict(
                    "node \(existing.id) serves location \(existing.location); a node cannot move to "
                        + "\(registration.location.prefix(16)) (its databases were placed for its location): register "
                        + "the machine in its new location as a new node, with a new URL and data directory")
            }
            if case .node(let own) = caller, existing?.id != own {
                throw ControlError.notFound(
                    "node \(own.prefix(40)) is not registered; register with the registration token")
            }
            if caller == .registration, let existing, existing.hasCredential, existing.lastHeartbeat >= liveSince {
                throw ControlError.forbidden(
                    "node \(existing.id) is registered and up: a node registers again with its own credential "
                        + "(node-credential in its data directory); the registration token takes a known node "
                        + "over only once it is down or the operator rotated its credential "
                        + "(POST /v1/nodes/{id}/credential/rotate)")
            }
            let id = existing?.id ?? registration.id ?? Self.newID()
            let adminToken = try registration.adminToken.map {
                CatalogValue.text(try sealer.seal($0, context: Self.adminTokenContext(node: id)))
            }
            do {
                if existing != nil {
                    // A known node: same id, its current URL (a restart may have moved it).
                    try await transaction.query(
                        // A registration without an admin token keeps the one on record.
                        """
                        UPDATE nodes SET admin_token = COALESCE($1, admin_token), last_heartbeat_at = $2, url = $3
                        WHERE id = $4
                        """,
                        [adminToken ?? .null, .integer(now), .text(base), .text(id)])
                } else {
                    try await transaction.query(
                        """
                        INSERT INTO nodes (id, location, url, admin_token, primaries, registered_at, last_heartbeat_at)
                        VALUES ($1, $2, $3, $4, 0, $5, $5)
                        """,
                        [.text(id), .text(registration.location), .text(base), adminToken ?? .null, .integer(now)])
                }
            } catch CatalogStoreError.uniqueViolation {
                throw ControlError.conflict(
                    "another registered node already uses \(base); stop it or give this node another --advertise URL")
            }
            let credential: String?
            switch caller {
            case .registration: credential = Self.randomSecret(prefix: "shoal_node_")
            case .apiToken: credential = existing == nil ? Self.randomSecret(prefix: "shoal_node_") : nil
            case .node: credential = nil
            }
            if let credential {
                try await transaction.query(
                    "UPDATE nodes SET credential_hash = $1, credential_issued_at = $2 WHERE id = $3",
                    [.text(APISecret.hash(credential)), .integer(now), .text(id)])
            }
            try await transaction.query(
                "INSERT INTO audit_logs (org_id, at, actor, action, target, outcome, detail) VALUES (NULL, $1, $2, $3, $4, 'ok', $5)",
                [
                    .integer(now), .text(actor), .text("node.register"), .text(base),
                    .text(
                        "node \(id) serves \(registration.location)" + (credential == nil ? "" : "; credential issued")),
                ])
            let primaries =
                try await transaction.queryOne("SELECT primaries FROM nodes WHERE id = $1", [.text(id)])?
                .integer(0) ?? 0
            let node = Platform.Node(
                id: id, location: registration.location, url: base, status: "up", databases: primaries)
            return (node: node, credential: credential)
        }
    }

    /// Rotates a node's credential (admin only): the current one stops working at once. The node,
    /// refused at its next heartbeat, registers again with the registration token, which issues it a
    /// new one (after a node was compromised, replace the registration token first).
    public func rotateNodeCredential(node id: String, by principal: Principal) async throws {
        guard principal.isAdmin else {
            throw ControlError.forbidden("only an admin token can rotate a node's credential")
        }
        try await read { transaction in
            let updated = try await transaction.query(
                "UPDATE nodes SET credential_hash = NULL, credential_issued_at = NULL WHERE id = $1 RETURNING id",
                [.text(id)])
            guard !updated.isEmpty else {
                throw ControlError.notFound("node \(id.prefix(40)) is not registered; see GET /v1/nodes")
            }
            try await audit(
                transaction, organization: nil, actor: principal, action: "node.credential.rotate", target: id,
                detail: "node \(id)'s credential is void; it registers again with the registration token")
        }
    }

    /// A database as a node asks for its placement (the route has checked the node's credential).
    func placementDatabase(organization slug: String, name: String) async throws -> DatabaseRecord {
        try await read { transaction in
            guard
                let row = try await transaction.queryOne(
                    "SELECT id, slug, plan, region_rule FROM organizations WHERE slug = $1", [.text(slug)])
            else {
                throw ControlError.notFound("organization '\(slug.prefix(64))' does not exist")
            }
            let organization = OrganizationRecord(
                id: try row.text(0), slug: try row.text(1), plan: try row.text(2),
                regionRule: Self.decodeRule(try row.optionalText(3)))
            return try await database(name, of: organization, in: transaction)
        }
    }

    // MARK: - Secrets at rest

    /// Seals what an earlier version left in clear (nodes' admin tokens, signing keys) and checks
    /// that every sealed value opens with this catalog's key; returns how many values it sealed.
    /// Throws `catalogUnavailable`, naming the key the catalog was sealed with, when one does not.
    /// The control plane runs it once at start, after `migrate()`.
    @discardableResult
    public func sealStoredSecrets() async throws -> Int {
        try await read { transaction in
            var sealed = 0
            for row in try await transaction.query(
                "SELECT id, admin_token FROM nodes WHERE admin_token IS NOT NULL ORDER BY id", [])
            {
                let id = try row.text(0)
                let stored = try row.text(1)
                let context = Self.adminTokenContext(node: id)
                if SecretSealer.isSealed(stored) {
                    _ = try sealer.open(stored, context: context)
                } else {
                    try await transaction.query(
                        "UPDATE nodes SET admin_token = $1 WHERE id = $2",
                        [.text(try sealer.seal(stored, context: context)), .text(id)])
                    sealed += 1
                }
            }
            for row in try await transaction.query("SELECT kid, private_key FROM signing_keys ORDER BY kid", []) {
                let kid = try row.text(0)
                let stored = try row.text(1)
                let context = Self.signingKeyContext(kid: kid)
                if SecretSealer.isSealed(stored) {
                    _ = try sealer.open(stored, context: context)
                } else {
                    try await transaction.query(
                        "UPDATE signing_keys SET private_key = $1 WHERE kid = $2",
                        [.text(try sealer.seal(stored, context: context)), .text(kid)])
                    sealed += 1
                }
            }
            return sealed
        }
    }
}
