import Crypto
import Foundation
import ShoalModel
import ShoalTime

extension Catalog {
    /// What a database token covers.
    public enum TokenTarget: Sendable {
        /// One database (`id` claim).
        case database(String)
        /// Every database of a group (`gid` claim).
        case group(String)
    }

    struct Claims: Codable {
        var id: String?
        /// With `id`: the database's id, its incarnation. A database deleted and created again under
        /// the same name has a new one, so nodes refuse the old incarnation's tokens.
        var did: String?
        var gid: String?
        /// With `gid`: the group's id, its incarnation, checked by nodes like `did`.
        var gdid: String? = nil
        var a: String
        var exp: Int64?
        /// Seconds since 1970 with millisecond precision (compared with rotations).
        var iat: Double
        var jti: String
        var loc: String?
    }

    /// The newest signing key, created on first use.
    func signingKey(
        in transaction: any CatalogTransaction
    ) async throws -> (kid: String, key: Curve25519.Signing.PrivateKey) {
        if let row = try await transaction.queryOne(
            "SELECT kid, private_key FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC, kid LIMIT 1",
            [])
        {
            let kid = try row.text(0)
            // Sealed with the control plane's key (`SecretSealer`); one from before sealing opens as it is.
            let stored = try sealer.open(try row.text(1), context: Self.signingKeyContext(kid: kid))
            guard let raw = Data(base64Encoded: stored),
                let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
            else { throw ControlError.catalogUnavailable("the catalog's signing key is damaged; rotate keys") }
            return (kid, key)
        }
        return try await addSigningKey(in: transaction)
    }

    func addSigningKey(
        in transaction: any CatalogTransaction
    ) async throws -> (
        kid: String, key: Curve25519.Signing.PrivateKey
    ) {
        let key = Curve25519.Signing.PrivateKey()
        let kid = String(Self.newID().prefix(8))
        try await transaction.query(
            "INSERT INTO signing_keys (kid, private_key, public_key, created_at, retired_at) VALUES ($1, $2, $3, $4, NULL)",
            [
                .text(kid),
                .text(
                    try sealer.seal(
                        key.rawRepresentation.base64EncodedString(), context: Self.signingKeyContext(kid: kid))),
                .text(Base64URL.encode(Array(key.publicKey.rawRepresentation))), .integer(now()),
            ])
        return (kid, key)
    }

    /// How long after its token's expiry a revocation is still sent to nodes: a node whose clock is
    /// behind the control plane's would otherwise accept a revoked token for a while.
    static let revocationClockMargin: Int64 = 10 * 60 * 1000

    /// Issues a database or group token: Ed25519-signed JWT with `id` and `did` (the database's id)
    /// or `gid`, `a`, `exp`, `iat`, `jti` and, when given, `loc` — refused when the group's or
    /// organization's rule forbids that location. Its `jti` is recorded as issued to the
    /// organization, which may then revoke it.
    public func issueToken(
        organization slug: String, target: TokenTarget, expiresIn: Duration?, readOnly: Bool, location: String?,
        by principal: Principal
    ) async throws -> String {
        let targetName =
            switch target {
            case .database(let name): "\(slug)/\(name)"
            case .group(let name): "\(slug)/group:\(name)"
            }
        return try await audited(organization: slug, actor: principal, action: "token.create", target: targetName) {
            transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            let group: GroupRecord
            var claims = Claims(
                id: nil, did: nil, gid: nil, a: readOnly ? "ro" : "rw", exp: nil, iat: Double(now()) / 1000,
                jti: Self.newID(), loc: location)
            switch target {
            case .database(let name):
                let database = try await database(name, of: organization, in: transaction)
                group = database.group
                claims.id = database.namespace
                claims.did = database.id
            case .group(let name):
                group = try await self.group(name, of: organization, in: transaction)
                claims.gid = group.scope
                claims.gdid = group.id
            }
            if let location {
                let place = try await self.location(location, in: transaction)
                try requireAllowed(
                    location: place,
                    rules: [("group's", group.regionRule), ("organization's", organization.regionRule)])
            }
            if let expiresIn {
                claims.exp = now() / 1000 + expiresIn.components.seconds
            }
            let (kid, key) = try await signingKey(in: transaction)
            let token = try Self.sign(claims, kid: kid, key: key)
            try await transaction.query(
                "INSERT INTO issued_tokens (jti, org_id, expires_at, issued_at) VALUES ($1, $2, $3, $4)",
                [
                    .text(claims.jti), .text(organization.id),
                    claims.exp.map { CatalogValue.integer($0 * 1000) } ?? .null, .integer(now()),
                ])
            try await audit(
                transaction, organization: organization.id, actor: principal, action: "token.create",
                target: targetName,
                detail:
                    "\(readOnly ? "read-only" : "full-access") token \(claims.jti)\(location.map { " for \($0)" } ?? ""), expires \(claims.exp.map(String.init) ?? "never")"
            )
            return token
        }
    }

    /// The token a replica node in `location` syncs `database` with: read-only, for that database
    /// only, `loc` = the node's location (so the primary's region check applies), valid 7 days;
    /// the node asks for its placement again when the primary refuses it. Not recorded as issued to
    /// the organization: it is the platform's, and rotating the database's tokens covers it.
    func replicaSyncToken(for database: DatabaseRecord, location: String) async throws -> String {
        try await store.transaction { transaction in
            let (kid, key) = try await signingKey(in: transaction)
            let claims = Claims(
                id: database.namespace, did: database.id, gid: nil, a: "ro", exp: now() / 1000 + 7 * 86_400,
                iat: Double(now()) / 1000, jti: Self.newID(), loc: location)
            return try Self.sign(claims, kid: kid, key: key)
        }
    }

    static func sign(_ claims: Claims, kid: String, key: Curve25519.Signing.PrivateKey) throws -> String {
        struct Header: Encodable {
            let alg = "EdDSA"
            let typ = "JWT"
            let kid: String
        }
        let encoder = WireJSON.encoder([.sortedKeys])
        let header = Base64URL.encode(Array(try encoder.encode(Header(kid: kid))))
        let payload = Base64URL.encode(Array(try encoder.encode(claims)))
        let signature = try key.signature(for: Data("\(header).\(payload)".utf8))
        return "\(header).\(payload).\(Base64URL.encode(Array(signature)))"
    }

    /// Revokes one token by its `jti` (nodes refuse it once the policy reaches them). Only a token
    /// issued to the organization can be revoked; the revocation lapses with the token's expiry, and
    /// lapsed revocations (and records of expired tokens) are removed here, so the list nodes get
    /// holds only tokens that could still be used.
    public func revoke(organization slug: String, jti: String, by principal: Principal) async throws {
        guard !jti.isEmpty, jti.count <= 128 else {
            throw ControlError.badRequest("give the token's jti (1 to 128 characters) as {\"jti\": …}")
        }
        try await audited(organization: slug, actor: principal, action: "token.revoke", target: jti) { transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            guard
                let issued = try await transaction.queryOne(
                    "SELECT expires_at FROM issued_tokens WHERE jti = $1 AND org_id = $2",
                    [.text(jti), .text(organization.id)])
            else {
                throw ControlError.notFound(
                    "no token with that jti was issued to this organization; give the jti of one of its tokens")
            }
            let expiresAt = try issued.optionalInteger(0)
            let lapsedBefore = now() - Self.revocationClockMargin
            try await transaction.query(
                "DELETE FROM revoked_tokens WHERE expires_at IS NOT NULL AND expires_at < $1", [.integer(lapsedBefore)])
            try await transaction.query(
                "DELETE FROM issued_tokens WHERE expires_at IS NOT NULL AND expires_at < $1", [.integer(lapsedBefore)])
            // A token that has expired needs no revocation: nodes refuse it anyway.
            if expiresAt.map({ $0 >= lapsedBefore }) ?? true {
                try await transaction.query(
                    """
                    INSERT INTO revoked_tokens (jti, org_id, revoked_at, expires_at) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (jti) DO NOTHING
                    """,
                    [.text(jti), .text(organization.id), .integer(now()), expiresAt.map(CatalogValue.integer) ?? .null])
            }
            try await audit(
                transaction, organization: organization.id, actor: principal, action: "token.revoke", target: jti,
                detail: "token \(jti) revoked")
        }
    }

    /// Invalidates every token of a database or group issued before now.
    public func rotateTokens(organization slug: String, target: TokenTarget, by principal: Principal) async throws {
        let targetName =
            switch target {
            case .database(let name): "\(slug)/\(name)"
            case .group(let name): "\(slug)/group:\(name)"
            }
        try await audited(organization: slug, actor: principal, action: "token.rotate", target: targetName) {
            transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            switch target {
            case .database(let name):
                let database = try await database(name, of: organization, in: transaction)
                try await transaction.query(
                    "UPDATE databases SET tokens_not_before = $1 WHERE id = $2", [.integer(now()), .text(database.id)])
            case .group(let name):
                let group = try await self.group(name, of: organization, in: transaction)
                try await transaction.query(
                    "UPDATE db_groups SET tokens_not_before = $1 WHERE id = $2", [.integer(now()), .text(group.id)])
            }
            try await audit(
                transaction, organization: organization.id, actor: principal, action: "token.rotate",
                target: targetName,
                detail: "tokens issued before now are invalid")
        }
    }

    /// Adds a new signing key; the old one still verifies tokens for the overlap window (admin only).
    public func rotateSigningKey(by principal: Principal) async throws -> String {
        guard principal.isAdmin else { throw ControlError.forbidden("only an admin token can rotate signing keys") }
        return try await audited(organization: nil, actor: principal, action: "key.rotate", target: "signing-key") {
            transaction in
            try await transaction.query(
                "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL", [.integer(now())])
            let (kid, _) = try await addSigningKey(in: transaction)
            try await audit(
                transaction, organization: nil, actor: principal, action: "key.rotate", target: kid,
                detail: "signing key \(kid) added; older keys verify for the overlap window")
            return kid
        }
    }

    /// The public keys tokens may be signed with: the current one and those retired within the
    /// overlap window.
    public func publicKeys() async throws -> [Platform.JSONWebKey] {
        try await read { transaction in try await publicKeys(in: transaction) }
    }

    func publicKeys(in transaction: any CatalogTransaction) async throws -> [Platform.JSONWebKey] {
        _ = try await signingKey(in: transaction)
        let overlap = configuration.keyOverlap.wholeMilliseconds
        return try await transaction.query(
            "SELECT kid, public_key FROM signing_keys WHERE retired_at IS NULL OR retired_at >= $1 ORDER BY created_at DESC, kid",
            [.integer(now() - overlap)]
        ).map { Platform.JSONWebKey(kid: try $0.text(0), x: try $0.text(1)) }
    }

    /// What nodes enforce: keys, revoked ids and rotations. Revocations of tokens that have expired
    /// (beyond `revocationClockMargin`) are left out: nodes refuse expired tokens anyway.
    public func tokenPolicy() async throws -> Platform.TokenPolicy {
        try await read { transaction in
            let keys = try await publicKeys(in: transaction)
            let revoked = try await transaction.query(
                "SELECT jti FROM revoked_tokens WHERE expires_at IS NULL OR expires_at >= $1 ORDER BY jti",
                [.integer(now() - Self.revocationClockMargin)]
            ).map { try $0.text(0) }
            var notBefore: [String: Int64] = [:]
            for row in try await transaction.query(
                """
                SELECT o.slug, d.name, d.tokens_not_before FROM databases d JOIN organizations o ON o.id = d.org_id
                WHERE d.tokens_not_before > 0
                """, [])
            {
                notBefore["db:\(try row.text(0))/\(try row.text(1))"] = try row.integer(2)
            }
            for row in try await transaction.query(
                """
                SELECT o.slug, g.name, g.tokens_not_before FROM db_groups g JOIN organizations o ON o.id = g.org_id
                WHERE g.tokens_not_before > 0
                """, [])
            {
                notBefore["group:\(try row.text(0))/\(try row.text(1))"] = try row.integer(2)
            }
            return Platform.TokenPolicy(keys: keys, revokedJti: revoked, notBefore: notBefore)
        }
    }

    /// Parses an expiration: `never`, or a number with `s`, `m`, `h`, `d` or `w` (`2w`, `12h`).
    static func parseExpiration(_ text: String?) throws -> Duration? {
        guard let text, text != "never", !text.isEmpty else { return nil }
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
        guard let unit = text.last, let scale = units[unit], let count = Int64(text.dropLast()), count > 0,
            count <= 3_650 * 86_400 / scale
        else {
            throw ControlError.badRequest(
                "expiration '\(text.prefix(20))' is not valid: use never or a number with s, m, h, d or w (like 2w)")
        }
        return .seconds(count * scale)
    }
}
