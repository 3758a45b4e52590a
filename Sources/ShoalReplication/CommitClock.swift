import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// When a transaction committed: the generation's frame that ends it and the wall-clock time.
public struct CommitTime: Sendable, Equatable, Hashable {
    /// The commit frame (1-based, within its generation).
    public let frame: UInt64
    /// Microseconds since 1970-01-01 UTC.
    public let microseconds: Int64

    /// A commit at `frame`, at `microseconds` since the epoch.
    public init(frame: UInt64, microseconds: Int64) {
        self.frame = frame
        self.microseconds = microseconds
    }

    /// The time as a `Date`.
    public var date: Date { Date(timeIntervalSince1970: Double(microseconds) / 1_000_000) }

    /// Microseconds since the epoch, now.
    public static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000
    }

    /// 16 bytes a record: the frame and the time, little-endian.
    static let recordSize = 16
}

/// Appends each commit's time to `generations/G.commits` as it happens (from the WAL hook, on the
/// committing thread). One `write(2)` of 16 bytes per commit on an `O_APPEND` descriptor, as
/// durable as the WAL itself with `synchronous = NORMAL`: a killed process loses nothing the kernel
/// was given. A record that cannot be written is skipped; readers of the log then take the next
/// recorded time (never an earlier one), so a restore to a time never includes a commit made after
/// it.
final class CommitClock: Sendable {
    private struct Open {
        var generation: UInt64
        var descriptor: Int32
    }

    private let directory: String
    private let file = Mutex<Open?>(nil)

    init(generationsDirectory: String) {
        self.directory = generationsDirectory
    }

    deinit {
        file.withLock { open in
            if let open { Glibc.close(open.descriptor) }
        }
    }

    func path(_ generation: UInt64) -> String { directory + "/\(generation).commits" }

    /// Records a commit ending at `frame` of `generation`, now.
    func record(generation: UInt64, frame: UInt64) {
        var record = [UInt8](repeating: 0, count: CommitTime.recordSize)
        record.withUnsafeMutableBytes { raw in
            raw.storeLittleEndian(frame, at: 0)
            raw.storeLittleEndian(UInt64(bitPattern: CommitTime.now()), at: 8)
        }
        file.withLock { open in
            if let current = open, current.generation != generation {
                Glibc.close(current.descriptor)
                open = nil
            }
            if open == nil {
                let descriptor = Glibc.open(path(generation), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
                guard descriptor >= 0 else { return }
                open = Open(generation: generation, descriptor: descriptor)
            }
            guard let descriptor = open?.descriptor else { return }
            _ = record.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress!, $0.count) }
        }
    }

    /// Closes the open descriptor (at a roll and at close).
    func closeFile() {
        file.withLock { open in
            if let open { Glibc.close(open.descriptor) }
            open = nil
        }
    }

    /// At open: cuts a record torn by a crash from the end of `generation`'s file, and records of
    /// frames past `committed` (a WAL that lost its tail with the machine), which new commits will
    /// number again.
    func repair(generation: UInt64, committed: UInt64) throws {
        closeFile()
        let path = path(generation)
        guard PosixFile.exists(path) else { return }
        let file = try PosixFile(path: path, flags: O_RDWR)
        let size = try file.size()
        var whole = size - size % Int64(CommitTime.recordSize)
        let kept = try read(generation: generation, after: 0).filter { $0.frame <= committed }.count
        whole = min(whole, Int64(kept * CommitTime.recordSize))
        if whole != size { try file.truncate(to: whole) }
    }

    /// The recorded commits of `generation` ending after `frame`, in frame order (an empty list when
    /// none were recorded). Records out of order (a clock stepped back is still kept; a frame number
    /// that does not grow is dropped) are skipped.
    func read(generation: UInt64, after frame: UInt64) throws -> [CommitTime] {
        let path = path(generation)
        guard PosixFile.exists(path) else { return [] }
        let file = try PosixFile(path: path, flags: O_RDONLY)
        let count = Int(try file.size()) / CommitTime.recordSize
        // Frames grow record by record: find the first record past `frame` by bisection.
        func frameAt(_ index: Int) throws -> UInt64 {
            try file.read(count: 8, at: Int64(index * CommitTime.recordSize)).withUnsafeBytes {
                $0.littleEndianUInt64(at: 0)
            }
        }
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if try frameAt(middle) <= frame { low = middle + 1 } else { high = middle }
        }
        let bytes = try file.read(count: (count - low) * CommitTime.recordSize, at: Int64(low * CommitTime.recordSize))
        var times: [CommitTime] = []
        times.reserveCapacity(bytes.count / CommitTime.recordSize)
        bytes.withUnsafeBytes { raw in
            for index in 0..<(raw.count / CommitTime.recordSize) {
                let offset = index * CommitTime.recordSize
                let recordFrame = raw.littleEndianUInt64(at: offset)
                let micros = Int64(bitPattern: raw.littleEndianUInt64(at: offset + 8))
                if let last = times.last, recordFrame <= last.frame { continue }
                times.append(CommitTime(frame: recordFrame, microseconds: micros))
            }
        }
        return times
    }
}
