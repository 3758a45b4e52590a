import Crypto
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Seals the catalog's secrets that the control plane must read back — nodes' admin tokens and
/// signing keys — with ChaCha20-Poly1305 under a key from the control plane's configuration (the
/// catalog never sees the key). A sealed value is `sealed:v1:<key id>:<base64 of nonce, ciphertext
/// and tag>`, bound to its place (`context`: the table, column and row it belongs to), so a value
/// copied into another row does not open. Secrets that are only compared (API tokens, node
/// credentials, the node registration token) are stored as SHA-256 instead.
public struct SecretSealer: Sendable {
    /// The key's 32 bytes. A `SymmetricKey` is made for each use: it is not `Sendable`.
    private let keyBytes: [UInt8]
    /// The first 8 hex digits of the key's SHA-256. Every sealed value names its key with it, so a
    /// value sealed with another key is told apart from a damaged one.
    public let keyID: String

    static let prefix = "sealed:v1:"

    /// A sealer over a 32-byte key.
    public init(key: [UInt8]) throws {
        guard key.count == 32 else {
            throw ControlError.unprocessable(
                "a sealing key is 32 bytes (base64, like the output of `openssl rand -base64 32`); this one has \(key.count)"
            )
        }
        keyBytes = key
        keyID = String(SHA256.hash(data: key).map { String(format: "%02x", $0) }.joined().prefix(8))
    }

    /// A sealer over a key given as base64 text (surrounding whitespace is ignored).
    public init(base64 text: String) throws {
        guard let bytes = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ControlError.unprocessable(
                "the sealing key is not base64; make one with `openssl rand -base64 32`")
        }
        try self.init(key: Array(bytes))
    }

    /// A sealer over a new random key.
    public static func random() -> SecretSealer {
        let key = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        // 32 bytes by construction.
        return try! SecretSealer(key: key)
    }

    /// One random key for the whole process: what a catalog uses when it is given none (tests and
    /// benchmarks, whose catalogs do not outlive the process). A control plane whose catalog outlives
    /// it is given its configured key.
    public static let processLocal = random()

    /// The sealer over the key kept in `path` (base64, one line). When the file does not exist and
    /// `createIfMissing` is set, a new key is written there (mode 0600, never replacing a file that
    /// appeared meanwhile); `created` says so.
    public static func load(file path: String, createIfMissing: Bool) throws -> (sealer: SecretSealer, created: Bool) {
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            do {
                return (try SecretSealer(base64: text), false)
            } catch let error as ControlError {
                throw ControlError.unprocessable("\(path): \(error.message)")
            }
        }
        guard createIfMissing, !FileManager.default.fileExists(atPath: path) else {
            throw ControlError.unprocessable(
                "cannot read the sealing key file \(path); give the file that holds the catalog's key")
        }
        let sealer = random()
        let text = Data(sealer.keyBytes).base64EncodedString() + "\n"
        guard try writeNewPrivateFile(text, to: path) else {
            // Another process created it first: use its key.
            return try load(file: path, createIfMissing: false)
        }
        return (sealer, true)
    }

    /// Whether `stored` is a sealed value (anything else is a value an earlier version left in clear).
    public static func isSealed(_ stored: String) -> Bool { stored.hasPrefix(prefix) }

    /// `secret` sealed for `context` (a fresh random nonce each time).
    public func seal(_ secret: String, context: String) throws -> String {
        let box = try ChaChaPoly.seal(
            Data(secret.utf8), using: SymmetricKey(data: keyBytes), authenticating: Data(context.utf8))
        return Self.prefix + keyID + ":" + box.combined.base64EncodedString()
    }

    /// The secret in `stored`, sealed for `context`. A value that is not sealed (left by an earlier
    /// version, before `Catalog.sealStoredSecrets` ran) comes back as it is. Throws
    /// `catalogUnavailable`, saying which key it needs, for a value sealed with another key, and for a
    /// damaged one or one moved from another place; the message never holds the value.
    public func open(_ stored: String, context: String) throws -> String {
        guard Self.isSealed(stored) else { return stored }
        let parts = stored.dropFirst(Self.prefix.count).split(separator: ":", maxSplits: 1)
        guard parts.count == 2 else { throw Self.damaged(context) }
        guard parts[0] == keyID else {
            throw ControlError.catalogUnavailable(
                "the catalog's secrets are sealed with key \(parts[0].prefix(8)), but this control plane has key \(keyID); "
                    + "start it with the sealing key the catalog was sealed with (--sealing-key-file or SHOAL_SEALING_KEY)"
            )
        }
        guard let combined = Data(base64Encoded: String(parts[1])) else { throw Self.damaged(context) }
        do {
            let box = try ChaChaPoly.SealedBox(combined: combined)
            let plain = try ChaChaPoly.open(
                box, using: SymmetricKey(data: keyBytes), authenticating: Data(context.utf8))
            guard let text = String(data: plain, encoding: .utf8) else { throw Self.damaged(context) }
            return text
        } catch {
            throw Self.damaged(context)
        }
    }

    private static func damaged(_ context: String) -> ControlError {
        let place = context.split(separator: ":", maxSplits: 1).first.map(String.init) ?? "a secret"
        return ControlError.catalogUnavailable(
            "a sealed secret in the catalog (\(place)) is damaged or was moved from another row; "
                + "register the node again, or rotate the signing keys")
    }
}

/// Writes `text` to a new file at `path` with mode 0600, through a temporary file linked into place,
/// so the file is never readable by others nor seen half-written. Returns false, writing nothing,
/// when `path` exists already.
func writeNewPrivateFile(_ text: String, to path: String) throws -> Bool {
    let temporary = path + ".new-\(getpid())"
    unlink(temporary)
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
        throw ControlError.unprocessable(
            "cannot create \(temporary): \(String(cString: strerror(errno))); check the data directory")
    }
    defer { unlink(temporary) }
    let bytes = Array(text.utf8)
    let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    let synced = fsync(descriptor) == 0
    close(descriptor)
    guard written == bytes.count, synced else {
        throw ControlError.unprocessable("cannot write \(temporary); check the disk")
    }
    if link(temporary, path) != 0 {
        if errno == EEXIST { return false }
        throw ControlError.unprocessable("cannot create \(path): \(String(cString: strerror(errno)))")
    }
    return true
}
