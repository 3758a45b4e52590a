import Crypto
import Foundation
import ShoalModel

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
}

/// Verifies database tokens offline: JWTs signed with Ed25519 (`alg: EdDSA`) by the control plane,
/// checked against configured public keys. Claims: `id` (the database, `org/database`) or `gid`
/// (its group, `org/group`), `a` (`ro` or `rw`, default `rw`), `exp` (seconds since 1970,
/// enforced), `jti` (refused if revoked), `loc` (the bearer's location, for region rules).
public struct TokenVerifier: Sendable {
    /// Raw public keys by key id (`""` for keys without one), checked to be valid Ed25519 keys.
    let keys: [String: [UInt8]]
    /// Revoked token ids.
    let revoked: Set<String>
    let now: @Sendable () -> Date

    /// A verifier trusting `keys` (raw 32-byte Ed25519 public keys by key id).
    public init(
        keys: [String: [UInt8]], revoked: Set<String> = [], now: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        var parsed: [String: [UInt8]] = [:]
        for (id, bytes) in keys {
            do {
                _ = try Curve25519.Signing.PublicKey(rawRepresentation: bytes)
                parsed[id] = bytes
            } catch {
                throw NodeError.badRequest("the public key \(id.isEmpty ? "given" : id) is not a 32-byte Ed25519 key")
            }
        }
        guard !parsed.isEmpty else { throw NodeError.badRequest("give at least one Ed25519 public key") }
        self.keys = parsed
        self.revoked = revoked
        self.now = now
    }

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
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64URL.decode(String(parts[0])),
            let payloadBytes = Base64URL.decode(String(parts[1])), let signature = Base64URL.decode(String(parts[2]))
        else { throw NodeError.unauthorized("the token is not a JWT") }
        struct Header: Decodable {
            let alg: String
            let kid: String?
        }
        struct Claims: Decodable {
            let id: String?
            let a: String?
            let exp: Double?
            let jti: String?
            let gid: String?
            let loc: String?
        }
        guard let header = try? JSONDecoder().decode(Header.self, from: Data(headerBytes)), header.alg == "EdDSA" else {
            throw NodeError.unauthorized("the token must be signed with EdDSA (Ed25519)")
        }
        let signed = Data("\(parts[0]).\(parts[1])".utf8)
        let candidates = header.kid.flatMap { keys[$0].map { [$0] } } ?? Array(keys.values)
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
        if let exp = claims.exp, now().timeIntervalSince1970 >= exp {
            throw NodeError.unauthorized("the token expired; ask for a new one")
        }
        if let jti = claims.jti, revoked.contains(jti) {
            throw NodeError.unauthorized("the token was revoked")
        }
        let coversDatabase = claims.id == namespace.description
        let coversGroup = !coversDatabase && claims.gid != nil && claims.gid == group()
        guard coversDatabase || coversGroup else {
            throw NodeError.forbidden(
                "the token is for \(claims.id ?? claims.gid.map { "group " + $0 } ?? "no database"), not \(namespace)")
        }
        let access: Access
        switch claims.a ?? "rw" {
        case "rw", "full-access": access = .readWrite
        case "ro", "read-only": access = .readOnly
        case let other: throw NodeError.unauthorized("the token's access \(other) is neither ro nor rw")
        }
        return Grant(access: access, location: claims.loc)
    }
}

/// Base64url without padding, as JWTs use it.
public enum Base64URL {
    /// Encodes bytes.
    public static func encode(_ bytes: [UInt8]) -> String {
        Base64.encode(bytes, padded: false).replacingOccurrences(of: "+", with: "-").replacingOccurrences(
            of: "/", with: "_")
    }

    /// Decodes, with or without padding; nil if invalid.
    public static func decode(_ text: String) -> [UInt8]? {
        Base64.decode(text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/"))
    }
}
