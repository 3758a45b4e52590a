import Foundation
import ShoalReplication
import ShoalSQLite

/// Where backups live: a flat namespace of immutable objects under keys. The narrow protocol every
/// backup goes through, with two implementations: a directory (`DirectoryObjectStore`, the
/// default) and S3-compatible storage (`S3ObjectStore`: AWS S3, R2, MinIO).
///
/// Keys are made by `BackupKey` only: ASCII letters, digits, `-`, `_`, `.` and `/`, never `..`,
/// at most 512 bytes.
public protocol ObjectStore: Sendable {
    /// Stores `bytes` under `key`, replacing what was there; done once this returns.
    func put(_ key: String, _ bytes: [UInt8]) async throws
    /// The object under `key`, or nil when there is none.
    func get(_ key: String) async throws -> [UInt8]?
    /// Every key that starts with `prefix`, sorted.
    func list(prefix: String) async throws -> [String]
    /// Removes the objects; a key with no object is not an error.
    func delete(_ keys: [String]) async throws
    /// Where the store is, for messages (never a secret).
    var location: String { get }
}

/// Why the object store did not do what was asked.
public struct ObjectStoreError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The message, saying what to do next.
    public let message: String

    /// An error with `message`.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }

    /// Checks a key against the rule every store applies.
    static func check(_ key: String) throws {
        let allowed = key.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x5F || byte == 0x2E || byte == 0x2F
        }
        guard !key.isEmpty, key.utf8.count <= 512, allowed, !key.hasPrefix("/"),
            !key.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == ".." || $0.isEmpty })
        else {
            throw ObjectStoreError("'\(key)' is not a backup object key (letters, digits, -, _, . and / only)")
        }
    }
}

/// An object store in a local directory: one file per object, written to a temporary name,
/// synced and renamed, so an object is either whole or absent, also after a crash.
public struct DirectoryObjectStore: ObjectStore {
    /// The directory objects live under.
    public let root: String

    /// A store under `root` (created if missing).
    public init(root: String) throws {
        self.root = root
        try FileSystem.makeDirectory(root)
    }

    /// The directory.
    public var location: String { root }

    /// Writes the object atomically and durably.
    public func put(_ key: String, _ bytes: [UInt8]) async throws {
        try ObjectStoreError.check(key)
        let path = root + "/" + key
        let directory = (path as NSString).deletingLastPathComponent
        try await BlockingExecutor.shared.run {
            try FileSystem.makeDirectory(directory)
            try FileSystem.writeAtomically(bytes, to: path, directory: directory)
        }
    }

    /// Reads the object.
    public func get(_ key: String) async throws -> [UInt8]? {
        try ObjectStoreError.check(key)
        let path = root + "/" + key
        return try await BlockingExecutor.shared.run {
            guard PosixFile.exists(path) else { return nil }
            let file = try PosixFile(path: path, flags: O_RDONLY)
            return try file.read(count: Int(try file.size()), at: 0)
        }
    }

    /// Walks the directory below the prefix's last `/`.
    public func list(prefix: String) async throws -> [String] {
        let root = self.root
        return try await BlockingExecutor.shared.run {
            let base = prefix.contains("/") ? String(prefix[..<prefix.lastIndex(of: "/")!]) : ""
            let start = base.isEmpty ? root : root + "/" + base
            guard let walker = FileManager.default.enumerator(atPath: start) else { return [] }
            var keys: [String] = []
            while let name = walker.nextObject() as? String {
                let key = base.isEmpty ? name : base + "/" + name
                guard key.hasPrefix(prefix), !key.hasSuffix(".tmp") else { continue }
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: root + "/" + key, isDirectory: &isDirectory),
                    !isDirectory.boolValue
                {
                    keys.append(key)
                }
            }
            return keys.sorted()
        }
    }

    /// Unlinks the files.
    public func delete(_ keys: [String]) async throws {
        for key in keys { try ObjectStoreError.check(key) }
        let root = self.root
        try await BlockingExecutor.shared.run {
            for key in keys where unlink(root + "/" + key) != 0 && errno != ENOENT {
                throw ObjectStoreError("cannot remove \(root)/\(key): \(String(cString: strerror(errno)))")
            }
        }
    }
}
