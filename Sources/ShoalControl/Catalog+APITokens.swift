import Foundation
import ShoalModel
import ShoalTime

/// API tokens: the admin token, and organizations' tokens with their expiry, creator and right to
/// create tokens.
///
/// Who may create: the admin token, and an organization's token the admin created with
/// `can_create_tokens` (only the admin grants that right, so a token it created cannot pass it on).
/// A token created by an organization's token never outlives it: it expires no later (by default,
/// when its creator does) and is revoked with it. Secrets are random, shown once and stored as SHA-256.
extension Catalog {
    /// `last_used_at` is written at most this often per token (milliseconds), so that most requests
    /// only read the token.
    static let lastUsedResolution: Int64 = 60 * 1000

    static let apiTokenColumns = "id, name, created_at, expires_at, last_used_at, may_create_tokens, created_by"

    /// Creates the admin token if none exists and returns its secret (shown once); nil if one exists.
    public func bootstrapAdminToken() async throws -> String? {
        try await read { transaction in
            let existing = try await transaction.queryOne(
                "SELECT id FROM api_tokens WHERE org_id IS NULL LIMIT 1", [])
            guard existing == nil else { return nil }
            let secret = APISecret.generate()
            try await transaction.query(
                "INSERT INTO api_tokens (id, name, secret_hash, org_id, created_at) VALUES ($1, $2, $3, NULL, $4)",
                [.text(Self.newID()), .text("admin"), .text(APISecret.hash(secret)), .integer(now())])
            return secret
        }
    }

    /// The principal a bearer secret stands for, nil if it is unknown; an expired token is refused
    /// with `unauthorized`. Records when the token was last used (at most once a minute). Looked up
    /// on every request, so a revocation holds from the next request on, on every control-plane
    /// instance.
    public func authenticate(secret: String) async throws -> Principal? {
        let hash = APISecret.hash(secret)
        return try await read { transaction in
            guard
                let row = try await transaction.queryOne(
                    "SELECT id, name, org_id, expires_at, last_used_at, may_create_tokens FROM api_tokens WHERE secret_hash = $1",
                    [.text(hash)])
            else { return nil }
            let now = now()
            let id = try row.text(0)
            let expiresAt = try row.optionalInteger(3)
            if let expiresAt, expiresAt <= now {
                throw ControlError.unauthorized(
                    "the API token has expired; create a new one (POST /v1/organizations/{org}/api-tokens) and revoke this one"
                )
            }
            if try row.optionalInteger(4).map({ now - $0 >= Self.lastUsedResolution }) ?? true {
                try await transaction.query(
                    "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2", [.integer(now), .text(id)])
            }
            return Principal(
                name: try row.text(1), organizationID: try row.optionalText(2), tokenID: id, expiresAt: expiresAt,
                mayCreateTokens: try row.flag(5))
        }
    }

    /// Creates an API token for organization `slug` and returns it with its secret (shown once).
    /// `expiresIn` nil asks for the default, `.some(nil)` for a token that never expires. Refused
    /// (`forbidden`) unless `principal` is the admin token or a token that may create tokens, when an
    /// organization's token asks for `canCreateTokens`, and when a token created by an organization's
    /// token would outlive it.
    public func createAPIToken(
        organization slug: String, name: String, expiresIn: Duration??, canCreateTokens: Bool,
        by principal: Principal
    ) async throws -> (token: Platform.APIToken, secret: String) {
        try Self.validateName(name, "API token")
        guard principal.isAdmin || principal.mayCreateTokens else {
            throw ControlError.forbidden(
                "this API token may not create API tokens; use the admin token, or a token the admin created with can_create_tokens"
            )
        }
        guard !canCreateTokens || principal.isAdmin else {
            throw ControlError.forbidden(
                "only the admin token can create a token that may create tokens; leave can_create_tokens out")
        }
        let secret = APISecret.generate()
        return try await audited(
            organization: slug, actor: principal, action: "api_token.create", target: "\(slug)/\(name)"
        ) { transaction in
            let organization = try await lockedOrganization(slug, for: principal, in: transaction)
            let now = now()
            let requested: Int64?? = expiresIn.map { duration in
                duration.map { now + $0.wholeMilliseconds }
            }
            var expiresAt = requested ?? nil
            var createdBy: String?
            if !principal.isAdmin {
                let creator = try await currentToken(of: principal, in: organization, at: now, transaction)
                // Never later than the creator: by default when it expires; a longer expiry is refused.
                if let limit = creator.expiresAt {
                    expiresAt = requested ?? limit
                    guard let granted = expiresAt, granted <= limit else {
                        throw ControlError.forbidden(
                            "a token created by an organization's API token cannot outlive it, and this one expires in "
                                + "\(Self.describe(milliseconds: limit - now)); ask for a shorter expiration or leave it out"
                        )
                    }
                }
                createdBy = creator.id
            }
            let token = Platform.APIToken(
                id: Self.newID(), name: name, createdAt: now, expiresAt: expiresAt, lastUsedAt: nil,
                canCreateTokens: canCreateTokens, createdBy: createdBy)
            do {
                try await transaction.query(
                    """
                    INSERT INTO api_tokens (id, name, secret_hash, org_id, created_at, expires_at, last_used_at,
                        may_create_tokens, created_by)
                    VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8)
                    """,
                    [
                        .text(token.id), .text("\(slug)/\(name)"), .text(APISecret.hash(secret)),
                        .text(organization.id), .integer(now), expiresAt.map(CatalogValue.integer) ?? .null,
                        .integer(canCreateTokens ? 1 : 0), createdBy.map(CatalogValue.text) ?? .null,
                    ])
            } catch CatalogStoreError.uniqueViolation {
                throw ControlError.conflict("an API token named '\(name)' already exists; choose another name")
            }
            try await audit(
                transaction, organization: organization.id, actor: principal, action: "api_token.create",
                target: "\(slug)/\(name)",
                detail:
                    "API token \(name) (\(token.id)) created, expires \(expiresAt.map(String.init) ?? "never")\(canCreateTokens ? ", may create tokens" : "")"
            )
            return (token: token, secret: secret)
        }
    }

    /// The API tokens of organization `slug`, oldest first, without their secrets.
    public func apiTokens(organization slug: String, for principal: Principal) async throws -> [Platform.APIToken] {
        try await read { transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            let prefix = "\(organization.slug)/"
            return try await transaction.query(
                "SELECT \(Self.apiTokenColumns) FROM api_tokens WHERE org_id = $1 ORDER BY created_at, name",
                [.text(organization.id)]
            ).map { row in
                let stored = try row.text(1)
                return Platform.APIToken(
                    id: try row.text(0),
                    name: stored.hasPrefix(prefix) ? String(stored.dropFirst(prefix.count)) : stored,
                    createdAt: try row.integer(2), expiresAt: try row.optionalInteger(3),
                    lastUsedAt: try row.optionalInteger(4), canCreateTokens: try row.flag(5),
                    createdBy: try row.optionalText(6))
            }
        }
    }

    /// Revokes the API token `id` of organization `slug`, and the tokens it created; each is refused
    /// from the next request on. The admin token and a token that may create tokens revoke any of the
    /// organization's tokens, any other token only itself. Returns the revoked ids, `id` first.
    public func revokeAPIToken(organization slug: String, id: String, by principal: Principal) async throws -> [String]
    {
        let target = "\(slug)/\(id.prefix(64))"
        return try await audited(organization: slug, actor: principal, action: "api_token.revoke", target: target) {
            transaction in
            let organization = try await lockedOrganization(slug, for: principal, in: transaction)
            if !principal.isAdmin {
                let caller = try await currentToken(of: principal, in: organization, at: now(), transaction)
                guard caller.mayCreateTokens || caller.id == id else {
                    throw ControlError.forbidden(
                        "this API token may revoke only itself; use the admin token, or a token that may create tokens")
                }
            }
            guard
                let row = try await transaction.queryOne(
                    "SELECT name FROM api_tokens WHERE id = $1 AND org_id = $2", [.text(id), .text(organization.id)])
            else {
                throw ControlError.notFound(
                    "organization \(slug) has no API token with that id; list them with GET /v1/organizations/\(slug)/api-tokens"
                )
            }
            let name = try row.text(0)
            let revoked = try await transaction.query(
                "DELETE FROM api_tokens WHERE org_id = $1 AND (id = $2 OR created_by = $2) RETURNING id",
                [.text(organization.id), .text(id)]
            ).map { try $0.text(0) }
            let created = revoked.filter { $0 != id }.sorted()
            try await audit(
                transaction, organization: organization.id, actor: principal, action: "api_token.revoke",
                target: target,
                detail:
                    "API token \(name) (\(id)) revoked\(created.isEmpty ? "" : " with the \(created.count) tokens it created")"
            )
            return [id] + created
        }
    }

    /// The calling organization token as the catalog holds it now, in a transaction that holds the
    /// organization's lock: a token revoked (or expired) since the request was authenticated acts no more.
    private func currentToken(
        of principal: Principal, in organization: OrganizationRecord, at now: Int64,
        _ transaction: any CatalogTransaction
    ) async throws -> (id: String, expiresAt: Int64?, mayCreateTokens: Bool) {
        guard let id = principal.tokenID,
            let row = try await transaction.queryOne(
                "SELECT expires_at, may_create_tokens FROM api_tokens WHERE id = $1 AND org_id = $2",
                [.text(id), .text(organization.id)])
        else {
            throw ControlError.unauthorized("the API token has been revoked; use another one")
        }
        let expiresAt = try row.optionalInteger(0)
        if let expiresAt, expiresAt <= now {
            throw ControlError.unauthorized("the API token has expired; create a new one and revoke this one")
        }
        let mayCreateTokens = try row.flag(1)
        return (id, expiresAt, mayCreateTokens)
    }

    /// A span of milliseconds as a person reads it: `3d 4h`, `12m`, `40s`.
    static func describe(milliseconds: Int64) -> String {
        let seconds = max(0, milliseconds / 1000)
        let (days, hours, minutes) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60)
        if days > 0 { return hours > 0 ? "\(days)d \(hours)h" : "\(days)d" }
        if hours > 0 { return minutes > 0 ? "\(hours)h \(minutes)m" : "\(hours)h" }
        return minutes > 0 ? "\(minutes)m" : "\(seconds)s"
    }
}
