import Crypto
import Foundation
import ShoalModel
import Synchronization

/// What a verified token lets its bearer do with one database.
public enum Access: Sendable, Equatable {
    /// Read and write.
    case readWrite
    /// Read only: statements that write are refused.
    case readOnly
}

/// What a verified token says, for the checks that need the database's settings.
public struct Grant: Sendable, Equatable {
    /// Read-write or read-only.
    public let access: Access
    /// The token's location (`loc`), if any.
    public let location: String?
    /// Whom the caps on open streams and long-polls count the request against: the token's `jti`,
    /// else a hash of the token; nil without authentication (see `holder(for:)`).
    var tokenHolder: String?

    /// The prefix of a holder that is an organization (a node without authentication).
    static let organizationHolderPrefix = "org:"

    /// The holder the caps count this request against on `namespace`: the token's, or without
    /// authentication the organization's.
    func holder(for namespace: Namespace) -> String {
        tokenHolder ?? Self.organizationHolderPrefix + namespace.organization
    }
}

/// Verifies database tokens offline: JWTs signed with Ed25519 (`alg: EdDSA`) by the control plane,
/// checked against configured public keys. Claims: `id` (the database, `org/database`) or `gid`
/// (its group, `org/group`), `a` (`ro` or `rw`, default `rw`), `exp`, `nbf` and `iat` (seconds
/// since 1970, enforced with `leeway` for clocks that disagree), `jti` (refused if revoked), `loc`
/// (the bearer's location, for region rules), `did` (with `id`: the database's incarnation).
public struct TokenVerifier: Sendable {
    /// How far the node's clock and the issuer's may disagree, in seconds: a token expired less
    /// than this long ago, or valid or issued less than this far in the future, is accepted.
    public static let defaultLeeway: TimeInterval = 60

    /// A token's claims, read once its signature matched a trusted key.
    struct Claims: Decodable, Sendable {
        /// The database, `org/database`.
        let id: String?
        /// `ro` or `rw`.
        let a: String?
        /// Expiry, seconds since 1970.
        let exp: Double?
        /// Not valid before, seconds since 1970.
        let nbf: Double?
        /// The token's id, for revocation.
        let jti: String?
        /// The group, `org/group`.
        let gid: String?
        /// The bearer's location.
        let loc: String?
        /// Issued at, seconds since 1970.
        let iat: Double?
        /// With `id`: the database's incarnation (its catalog id); see `checkIncarnation`.
        let did: String?
        /// With `gid`: the group's incarnation (its catalog id); see `checkIncarnation`.
        let gdid: String?
    }

    /// What the verifier trusts and refuses; replaced as a whole when the control plane sends a
    /// new policy.
    struct Policy: Sendable {
        /// Raw public keys by key id (`""` for keys without one), checked to be valid Ed25519 keys.
        var keys: [String: [UInt8]]
        /// Revoked token ids.
        var revoked: Set<String>
        /// Tokens issued (`iat`) before these times, in milliseconds since 1970, are refused, by
        /// scope: `db:org/name` or `group:org/name`.
        var notBefore: [String: Int64]
        /// The same, by the hex SHA-256 of the scope, as a control plane's public JWKS document
        /// publishes them.
        var notBeforeHashed: [String: Int64] = [:]
        /// When the policy last came from its source (a control plane or a JWKS URL).
        var refreshedAt: Date
    }

    /// Shared by every copy of the verifier, so a policy update reaches all requests at once.
    private final class PolicyBox: Sendable {
        let policy: Mutex<Policy>
        init(_ policy: Policy) { self.policy = Mutex(policy) }
    }

    private let box: PolicyBox
    let now: @Sendable () -> Date
    /// How far clocks may disagree, in seconds (see `defaultLeeway`).
    let leeway: TimeInterval
    /// How old the policy may grow before every token is refused (503): revocations and rotations
    /// only reach the node with a fresh policy, so a node cut off from its source stops trusting
    /// tokens after this long instead of honouring revoked ones forever. Nil: keys given at start
    /// are trusted as long as the node runs.
    let maxPolicyAge: TimeInterval?

    /// A verifier trusting `keys` (raw 32-byte Ed25519 public keys by key id). With no keys (a node
    /// waiting for its control plane's policy) every token is refused until `update` brings some.
    /// `leeway` (seconds) is how far the issuer's clock and `now` may disagree.
    public init(
        keys: [String: [UInt8]], revoked: Set<String> = [], allowNoKeys: Bool = false,
        leeway: TimeInterval = TokenVerifier.defaultLeeway, maxPolicyAge: TimeInterval? = nil,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        let parsed = try Self.validated(keys)
        guard !parsed.isEmpty || allowNoKeys else {
            throw NodeError.badRequest("give at least one Ed25519 public key")
        }
        box = PolicyBox(Policy(keys: parsed, revoked: revoked, notBefore: [:], refreshedAt: now()))
        self.leeway = max(0, leeway)
        self.maxPolicyAge = maxPolicyAge
        self.now = now
    }

    private static func validated(_ keys: [String: [UInt8]]) throws -> [String: [UInt8]] {
        var parsed: [String: [UInt8]] = [:]
        for (id, bytes) in keys {
            do {
                _ = try Curve25519.Signing.PublicKey(rawRepresentation: bytes)
                parsed[id] = bytes
            } catch {
                throw NodeError.badRequest("the public key \(id.isEmpty ? "given" : id) is not a 32-byte Ed25519 key")
            }
        }
        return parsed
    }

    /// Replaces what the verifier trusts with the control plane's policy.
    public func update(with policy: Platform.TokenPolicy) throws {
        let parsed = try Self.validated(try Self.keys(policy.keys))
        let time = now()
        box.policy.withLock {
            $0 = Policy(
                keys: parsed, revoked: Set(policy.revokedJti), notBefore: policy.notBefore, refreshedAt: time)
        }
    }

    /// Replaces what the verifier trusts with a JWKS document's keys (plus `extraKeys`, which win),
    /// its revoked ids (plus `extraRevoked`) and its hashed rotations.
    public func update(
        with document: Platform.PublishedKeys, extraKeys: [String: [UInt8]] = [:], extraRevoked: Set<String> = []
    ) throws {
        let parsed = try Self.validated(try Self.keys(document.keys).merging(extraKeys) { _, given in given })
        let time = now()
        box.policy.withLock {
            $0 = Policy(
                keys: parsed, revoked: extraRevoked.union(document.revokedJti ?? []), notBefore: [:],
                notBeforeHashed: document.notBeforeSHA256 ?? [:], refreshedAt: time)
        }
    }

    /// Records that the source confirmed the policy in force is current (it sent no new one).
    public func confirmCurrent() {
        let time = now()
        box.policy.withLock { $0.refreshedAt = time }
    }

    private static func keys(_ keys: [Platform.JSONWebKey]) throws -> [String: [UInt8]] {
        var parsed: [String: [UInt8]] = [:]
        for key in keys where key.kty == "OKP" && key.crv == "Ed25519" {
            guard let bytes = Base64URL.decode(key.x) else {
                throw NodeError.badRequest("the policy's key \(key.kid) is not base64url")
            }
            parsed[key.kid] = bytes
        }
        return parsed
    }

    /// The number of trusted keys (for status).
    public var keyCount: Int { box.policy.withLock { $0.keys.count } }

    /// Reads the `OKP`/`Ed25519` keys of a JWKS document (`{"keys":[{"kty","crv","x","kid"}]}`).
    public static func keys(fromJWKS data: Data) throws -> [String: [UInt8]] {
        struct Document: Decodable {
            struct Key: Decodable {
                let kty: String
                let crv: String?
                let x: String?
                let kid: String?
            }
            let keys: [Key]
        }
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: data)
        } catch {
            throw NodeError.badRequest("the JWKS document is not valid JSON with a keys array")
        }
        var keys: [String: [UInt8]] = [:]
        for key in document.keys where key.kty == "OKP" && key.crv == "Ed25519" {
            guard let x = key.x, let bytes = Base64URL.decode(x) else {
                throw NodeError.badRequest("a JWKS key has no valid x")
            }
            keys[key.kid ?? ""] = bytes
        }
        return keys
    }

    /// The access a bearer token grants to `namespace`; throws `unauthorized` with the reason.
    public func access(token: String, to namespace: Namespace) throws -> Access {
        try grant(token: token, to: namespace, group: { nil }).access
    }

    /// What a bearer token grants on `namespace`. `group` gives the database's group (`org/group`);
    /// it is only asked for when the token names a group instead of the database.
    public func grant(token: String, to namespace: Namespace, group: () -> String?) throws -> Grant {
        try grant(try verify(token), to: namespace, group: group)
    }

    /// The claims of `token` once its signature matches a trusted key, its time claims hold and it
    /// is not revoked; throws `unauthorized` with the reason. Costs one signature check, no I/O:
    /// it comes before anything that costs more.
    func verify(_ token: String) throws -> Claims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64URL.decode(String(parts[0])),
            let payloadBytes = Base64URL.decode(String(parts[1])), let signature = Base64URL.decode(String(parts[2]))
        else { throw NodeError.unauthorized("the token is not a JWT") }
        struct Header: Decodable {
            let alg: String
            let kid: String?
        }
        guard let header = try? JSONDecoder().decode(Header.self, from: Data(headerBytes)), header.alg == "EdDSA" else {
            throw NodeError.unauthorized("the token must be signed with EdDSA (Ed25519)")
        }
        let signed = Data("\(parts[0]).\(parts[1])".utf8)
        let policy = box.policy.withLock { $0 }
        if let maxPolicyAge, now().timeIntervalSince(policy.refreshedAt) > maxPolicyAge {
            throw NodeError.unavailable(
                "the node has not heard from its token source for over \(Int(maxPolicyAge)) s, so it cannot know "
                    + "which tokens were revoked; it accepts tokens again once its control plane answers")
        }
        let candidates = header.kid.flatMap { policy.keys[$0].map { [$0] } } ?? Array(policy.keys.values)
        let valid = candidates.contains { raw in
            (try? Curve25519.Signing.PublicKey(rawRepresentation: raw))?.isValidSignature(signature, for: signed)
                == true
        }
        guard valid else {
            throw NodeError.unauthorized("the token's signature does not match any trusted key")
        }
        guard let claims = try? JSONDecoder().decode(Claims.self, from: Data(payloadBytes)) else {
            throw NodeError.unauthorized("the token's claims are not valid JSON")
        }
        let time = self.now().timeIntervalSince1970
        if let exp = claims.exp, time >= exp + leeway {
            throw NodeError.unauthorized("the token expired; ask for a new one")
        }
        if let nbf = claims.nbf, nbf > time + leeway {
            throw NodeError.unauthorized("the token is not valid yet")
        }
        if let iat = claims.iat, iat > time + leeway {
            throw NodeError.unauthorized("the token was issued in the future; check the clocks")
        }
        if let jti = claims.jti, policy.revoked.contains(jti) {
            throw NodeError.unauthorized("the token was revoked")
        }
        return claims
    }

    /// Throws `forbidden` unless the token can cover `namespace`: it names the database, or a group
    /// of the database's organization (which group the database is in is for `grant` to check).
    func checkScope(_ claims: Claims, for namespace: Namespace) throws {
        guard claims.id == namespace.description || claims.gid?.hasPrefix(namespace.organization + "/") == true
        else { throw Self.notFor(claims, namespace) }
    }

    /// What verified `claims` grant on `namespace`. `group` gives the database's group
    /// (`org/group`); it is only asked for when the token names a group instead of the database.
    func grant(_ claims: Claims, to namespace: Namespace, group: () -> String?) throws -> Grant {
        let policy = box.policy.withLock { $0 }
        let coversDatabase = claims.id == namespace.description
        let databaseGroup = coversDatabase ? nil : group()
        let coversGroup = !coversDatabase && claims.gid != nil && claims.gid == databaseGroup
        guard coversDatabase || coversGroup else { throw Self.notFor(claims, namespace) }
        if !policy.notBefore.isEmpty {
            // A database's rotation covers its tokens; a group's covers the group's tokens and the
            // tokens of its databases.
            var rotated = coversDatabase ? policy.notBefore["db:\(namespace)"] : nil
            if let group = databaseGroup ?? (policy.notBefore.keys.contains { $0.hasPrefix("group:") } ? group() : nil),
                let groupRotation = policy.notBefore["group:\(group)"]
            {
                rotated = max(rotated ?? 0, groupRotation)
            }
            let issued = Int64(((claims.iat ?? 0) * 1000).rounded())
            if let rotated, issued < rotated {
                throw NodeError.unauthorized("the token was issued before its tokens were rotated; ask for a new one")
            }
        }
        if !policy.notBeforeHashed.isEmpty {
            func hashed(_ scope: String) -> Int64? {
                policy.notBeforeHashed[SHA256.hash(data: Data(scope.utf8)).map { String(format: "%02x", $0) }.joined()]
            }
            var rotated = coversDatabase ? hashed("db:\(namespace)") : nil
            if let group = databaseGroup ?? group(), let groupRotation = hashed("group:\(group)") {
                rotated = max(rotated ?? 0, groupRotation)
            }
            let issued = Int64(((claims.iat ?? 0) * 1000).rounded())
            if let rotated, issued < rotated {
                throw NodeError.unauthorized("the token was issued before its tokens were rotated; ask for a new one")
            }
        }
        let access: Access
        switch claims.a ?? "rw" {
        case "rw", "full-access": access = .readWrite
        case "ro", "read-only": access = .readOnly
        case let other: throw NodeError.unauthorized("the token's access \(other) is neither ro nor rw")
        }
        return Grant(access: access, location: claims.loc)
    }

    /// The holder key of a verified token for the caps: `jti:` and its id, else `sha256:` and the
    /// token's hash (the token itself is never kept).
    static func holder(of token: String, claims: Claims) -> String {
        if let jti = claims.jti { return "jti:" + jti }
        return "sha256:" + SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    private static func notFor(_ claims: Claims, _ namespace: Namespace) -> NodeError {
        NodeError.forbidden(
            "the token is for \(claims.id ?? claims.gid.map { "group " + $0 } ?? "no database"), not \(namespace)")
    }
}
