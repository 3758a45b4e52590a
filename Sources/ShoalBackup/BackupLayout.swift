import Foundation
import ShoalReplication

/// The objects a database's backup is made of, all under `databases/{id}/`, each named so that a
/// single listing plans a restore without reading any of them (numbers zero-padded to 20 digits,
/// so names sort as numbers do):
///
/// - `snap/{G}-{F}-{t}`: the whole database file as of frame F of generation G (F = 0: the
///   generation's base), current from time t (microseconds since 1970) at the latest;
/// - `seg/{G}-{first}-{last}-{t0}-{t1}`: frames first…last of G as the WAL holds them (salts and
///   chained checksums included), with the time of each commit; t0 and t1 are its first and last
///   commit's times;
/// - `end/{G}-{last}`: generation G ended at frame `last` (its successor's base is G's base with
///   all its frames applied).
public enum BackupKey: Sendable, Hashable, Comparable {
    /// A whole database file.
    case snapshot(generation: UInt64, frame: UInt64, microseconds: Int64)
    /// A run of frames.
    case segment(generation: UInt64, first: UInt64, last: UInt64, firstCommit: Int64, lastCommit: Int64)
    /// The end of a generation.
    case end(generation: UInt64, last: UInt64)

    /// The prefix of every object of database `id`.
    public static func prefix(_ id: String) -> String { "databases/\(id)/" }

    /// Whether `id` can name a database in keys.
    public static func isValid(id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 200 && !id.contains("..")
            && id.utf8.allSatisfy {
                $0 == 0x2E || ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A)
                    || $0 == 0x2D
                    || $0 == 0x5F
            }
    }

    /// The object's key for database `id`.
    public func key(_ id: String) -> String {
        func pad<N: BinaryInteger>(_ value: N) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
        }
        switch self {
        case .snapshot(let generation, let frame, let time):
            return Self.prefix(id) + "snap/\(pad(generation))-\(pad(frame))-\(pad(max(0, time)))"
        case .segment(let generation, let first, let last, let firstCommit, let lastCommit):
            return Self.prefix(id)
                + "seg/\(pad(generation))-\(pad(first))-\(pad(last))-\(pad(max(0, firstCommit)))-\(pad(max(0, lastCommit)))"
        case .end(let generation, let last):
            return Self.prefix(id) + "end/\(pad(generation))-\(pad(last))"
        }
    }

    /// Reads a key made by `key(_:)` for database `id`; nil for anything else.
    public init?(parsing key: String, id: String) {
        let prefix = Self.prefix(id)
        guard key.hasPrefix(prefix) else { return nil }
        let parts = key.dropFirst(prefix.count).split(separator: "/")
        guard parts.count == 2 else { return nil }
        let fields = parts[1].split(separator: "-")
        let numbers = fields.compactMap { UInt64($0) }
        guard numbers.count == fields.count else { return nil }
        switch (parts[0], numbers.count) {
        case ("snap", 3):
            self = .snapshot(generation: numbers[0], frame: numbers[1], microseconds: Int64(clamping: numbers[2]))
        case ("seg", 5) where numbers[1] >= 1 && numbers[2] >= numbers[1]:
            self = .segment(
                generation: numbers[0], first: numbers[1], last: numbers[2],
                firstCommit: Int64(clamping: numbers[3]), lastCommit: Int64(clamping: numbers[4]))
        case ("end", 2):
            self = .end(generation: numbers[0], last: numbers[1])
        default:
            return nil
        }
    }

    /// The position the object brings a backup to (a generation's end: frame 0 of the next).
    public var position: ReplicationPosition {
        switch self {
        case .snapshot(let generation, let frame, _): return ReplicationPosition(generation: generation, frame: frame)
        case .segment(let generation, _, let last, _, _):
            return ReplicationPosition(generation: generation, frame: last)
        case .end(let generation, _): return ReplicationPosition(generation: generation + 1, frame: 0)
        }
    }

    /// The latest time the object covers.
    public var latestTime: Int64 {
        switch self {
        case .snapshot(_, _, let time): return time
        case .segment(_, _, _, _, let time): return time
        case .end: return 0
        }
    }

    /// Orders by position, then kind (snapshot, segment, end).
    public static func < (lhs: BackupKey, rhs: BackupKey) -> Bool {
        func rank(_ key: BackupKey) -> (UInt64, UInt64, Int, UInt64) {
            switch key {
            case .snapshot(let generation, let frame, _): return (generation, frame, 0, 0)
            case .segment(let generation, let first, let last, _, _): return (generation, first, 1, last)
            case .end(let generation, let last): return (generation, last, 2, 0)
            }
        }
        return rank(lhs) < rank(rhs)
    }
}

/// A segment object's body: `SHOALSEG`, a version (1), the commit count, each commit's frame and
/// time (little-endian 64-bit), then the frames.
public struct Segment: Sendable, Equatable {
    /// The frames.
    public let chunk: FrameChunk
    /// The time of every commit frame in the chunk, in frame order.
    public let commits: [CommitTime]

    static let magic = Array("SHOALSEG".utf8)

    /// A segment; every commit frame of `chunk` must have exactly one time, and it must end on one.
    public init(chunk: FrameChunk, commits: [CommitTime]) throws {
        let commitFrames = Self.commitFrames(chunk)
        guard commitFrames == commits.map(\.frame) else {
            throw BackupError.corrupt(
                "a segment of generation \(chunk.generation) from frame \(chunk.firstFrame) names commits \(commits.map(\.frame)) but its frames commit at \(commitFrames)"
            )
        }
        guard commitFrames.last == chunk.lastFrame else {
            throw BackupError.corrupt(
                "a segment of generation \(chunk.generation) ends at frame \(chunk.lastFrame), inside a transaction")
        }
        self.chunk = chunk
        self.commits = commits
    }

    /// The numbers of `chunk`'s commit frames.
    static func commitFrames(_ chunk: FrameChunk) -> [UInt64] {
        chunk.bytes.withUnsafeBytes { raw in
            (0..<chunk.count).compactMap { index in
                raw.bigEndianUInt32(at: index * WALFormat.frameSize + 4) == 0 ? nil : chunk.firstFrame + UInt64(index)
            }
        }
    }

    /// The object key for database `id`.
    public func key(_ id: String) -> String {
        BackupKey.segment(
            generation: chunk.generation, first: chunk.firstFrame, last: chunk.lastFrame,
            firstCommit: commits.first?.microseconds ?? 0, lastCommit: commits.last?.microseconds ?? 0
        ).key(id)
    }

    /// The bytes stored.
    public func encoded() -> [UInt8] {
        var bytes = Self.magic
        bytes.reserveCapacity(16 + commits.count * 16 + chunk.bytes.count)
        func append(_ value: UInt64) {
            for shift in stride(from: 0, to: 64, by: 8) {
                bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
            }
        }
        append(1 | UInt64(commits.count) << 32)
        for commit in commits {
            append(commit.frame)
            append(UInt64(bitPattern: commit.microseconds))
        }
        bytes += chunk.bytes
        return bytes
    }

    /// Reads a segment stored under `key` (generation and first frame come from it).
    public init(decoding bytes: [UInt8], generation: UInt64, first: UInt64) throws {
        func read(_ offset: Int) -> UInt64 {
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << UInt64($1 * 8) }
        }
        guard bytes.count >= 16, Array(bytes[0..<8]) == Self.magic, read(8) & 0xFFFF_FFFF == 1 else {
            throw BackupError.corrupt(
                "an object of generation \(generation) from frame \(first) is not a Shoal segment")
        }
        let count = Int(read(8) >> 32)
        let framesStart = 16 + count * 16
        guard bytes.count > framesStart else {
            throw BackupError.corrupt("the segment of generation \(generation) from frame \(first) is cut short")
        }
        let commits = (0..<count).map { index in
            CommitTime(frame: read(16 + index * 16), microseconds: Int64(bitPattern: read(24 + index * 16)))
        }
        let chunk: FrameChunk
        do {
            chunk = try FrameChunk(generation: generation, firstFrame: first, bytes: Array(bytes[framesStart...]))
        } catch {
            throw BackupError.corrupt("the segment of generation \(generation) from frame \(first): \(error)")
        }
        try self.init(chunk: chunk, commits: commits)
    }
}

/// Why a backup or a restore failed.
public enum BackupError: Error, Sendable, CustomStringConvertible, Equatable {
    /// An object is not what its key says.
    case corrupt(String)
    /// Nothing restorable at the time asked for.
    case notRestorable(String)
    /// The database's log and its backup disagree.
    case diverged(String)

    /// The message.
    public var description: String {
        switch self {
        case .corrupt(let message): return "a backup object is damaged: \(message)"
        case .notRestorable(let message): return message
        case .diverged(let message): return message
        }
    }
}
