import Foundation
import ShoalSQLite
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What a replica keeps so it can serve the sync protocol itself, numbered exactly as on its
/// primary: the base file of its current generation, and the frames of its current and previous
/// generations (raw WAL frames at their fixed offsets). Frames are stored as they arrive and served
/// only up to the replica's applied position, so a reader of the archive never sees more than the
/// replica's own readers do.
public final class FrameArchive: Sendable {
    /// The archive's directory (`…/archive`).
    public let directory: String
    /// The last frame of the previous generation, once the replica has moved past it.
    private let previous = Mutex<(generation: UInt64, lastFrame: UInt64)?>(nil)

    /// An archive in `directory` (created if missing).
    public init(directory: String) throws {
        self.directory = directory
        try FileSystem.makeDirectory(directory)
        // The previous generation's length is what its frame file holds (trimmed at the move).
        let generations = try FileSystem.list(directory).compactMap { name -> UInt64? in
            guard name.hasSuffix(".frames") else { return nil }
            return UInt64(name.dropLast(".frames".count))
        }.sorted()
        if generations.count >= 2, let last = generations.dropLast().last {
            let size = (try? PosixFile(path: framesPath(last), flags: O_RDONLY).size()) ?? 0
            previous.withLock { $0 = (last, UInt64(size) / UInt64(WALFormat.frameSize)) }
        }
    }

    func framesPath(_ generation: UInt64) -> String { directory + "/\(generation).frames" }
    func basePath(_ generation: UInt64) -> String { directory + "/\(generation).base" }

    /// Deletes everything (the replica starts over).
    public func wipe() throws {
        for name in try FileSystem.list(directory) { try FileSystem.remove(directory + "/" + name) }
        previous.withLock { $0 = nil }
    }

    // MARK: Storing

    /// Keeps the base file of `generation` (a copy of `path`, marked as a WAL-mode database like
    /// the primary's export).
    public func storeBase(generation: UInt64, copying path: String) throws {
        let source = try PosixFile(path: path, flags: O_RDONLY)
        let size = try source.size()
        let temporary = basePath(generation) + ".tmp"
        let target = try PosixFile(path: temporary, flags: O_WRONLY | O_CREAT | O_TRUNC)
        var offset: Int64 = 0
        while offset < size {
            var chunk = try source.read(count: Int(min(Int64(1 << 20), size - offset)), at: offset)
            if chunk.isEmpty { break }
            if offset == 0, chunk.count >= 20 {
                chunk[18] = 2
                chunk[19] = 2
            }
            try target.write(chunk, at: offset)
            offset += Int64(chunk.count)
        }
        try FileSystem.rename(temporary, to: basePath(generation), syncing: directory)
    }

    /// Stores frames as they arrived (at their offsets; the same frame always has the same bytes).
    public func store(_ chunk: FrameChunk) throws {
        let file = try PosixFile(path: framesPath(chunk.generation), flags: O_WRONLY | O_CREAT)
        try file.write(chunk.bytes, at: Int64(chunk.firstFrame - 1) * Int64(WALFormat.frameSize))
    }

    /// The replica moved from `generation` (ending at `lastFrame`) to the next one, whose base is
    /// the replica's file at `replicaFile` now: keep that base, close the old generation's frames
    /// and drop what is older.
    public func advance(from generation: UInt64, lastFrame: UInt64, replicaFile: String) throws {
        try storeBase(generation: generation + 1, copying: replicaFile)
        let frames = try PosixFile(path: framesPath(generation), flags: O_WRONLY | O_CREAT)
        try frames.truncate(to: Int64(lastFrame) * Int64(WALFormat.frameSize))
        previous.withLock { $0 = (generation, lastFrame) }
        try keep(bases: [generation + 1], frames: [generation, generation + 1])
    }

    /// The replica bootstrapped into `generation`: nothing of other generations stays.
    func bootstrapped(into generation: UInt64) throws {
        previous.withLock { $0 = nil }
        try keep(bases: [generation], frames: [generation])
    }

    /// Removes every base and frame file but the ones named.
    private func keep(bases: Set<UInt64>, frames: Set<UInt64>) throws {
        for name in try FileSystem.list(directory) {
            let parts = name.split(separator: ".")
            guard parts.count == 2, let number = UInt64(parts[0]) else { continue }
            let kept =
                parts[1] == "base" ? bases.contains(number) : parts[1] == "frames" ? frames.contains(number) : true
            if !kept { try FileSystem.remove(directory + "/" + name) }
        }
    }

    // MARK: Serving

    /// The base of `generation` when it is the replica's current one (`applied.generation`).
    public func exportBase(generation: UInt64, applied: ReplicationPosition?) throws -> String {
        guard let applied, generation == applied.generation, PosixFile.exists(basePath(generation)) else {
            throw ReplicationError.generationGone(
                "the base of generation \(generation) is not kept here; export the current generation \(applied.map { "\($0.generation)" } ?? "(none yet)")"
            )
        }
        return basePath(generation)
    }

    /// Up to `maxFrames` frames of `generation` from `start`, never past what the replica applied.
    public func readFrames(
        generation: UInt64, start: UInt64, maxFrames: Int, applied: ReplicationPosition?
    ) throws -> FrameRead {
        guard start >= 1, maxFrames >= 1 else {
            throw ReplicationError.invalidFrames("frame numbers start at 1 and at least one frame must be asked for")
        }
        guard let applied else {
            throw ReplicationError.generationGone("this replica has no data yet; try again shortly")
        }
        let last: UInt64
        if generation == applied.generation {
            last = applied.frame
        } else if let previous = previous.withLock({ $0 }), previous.generation == generation {
            last = previous.lastFrame
        } else {
            throw ReplicationError.generationGone(
                "generation \(generation) is not kept here; bootstrap from the current generation \(applied.generation)"
            )
        }
        guard start <= last else { return .upToDate(currentGeneration: applied.generation, lastFrame: last) }
        let count = Int(min(UInt64(maxFrames), last - start + 1))
        let file = try PosixFile(path: framesPath(generation), flags: O_RDONLY)
        let bytes = try file.read(count: count * WALFormat.frameSize, at: Int64(start - 1) * Int64(WALFormat.frameSize))
        guard bytes.count == count * WALFormat.frameSize else {
            throw ReplicationError.corruptState("the frame archive of generation \(generation) is shorter than applied")
        }
        return .frames(try FrameChunk(generation: generation, firstFrame: start, bytes: PrimaryLog.trimmed(bytes)))
    }
}

/// A frame source that keeps what passes through it in a `FrameArchive`.
public struct ArchivingSource: FrameSource {
    /// Where frames come from.
    public let source: any FrameSource
    /// Where they are kept.
    public let archive: FrameArchive

    /// Wraps `source`.
    public init(_ source: any FrameSource, archive: FrameArchive) {
        self.source = source
        self.archive = archive
    }

    /// The source's generation.
    public func currentGeneration() async throws -> UInt64 {
        try await source.currentGeneration()
    }

    /// Downloads the base and keeps a copy.
    public func exportBase(generation: UInt64, to path: String) async throws {
        try await source.exportBase(generation: generation, to: path)
        let archive = self.archive
        try await BlockingExecutor.shared.run {
            try archive.storeBase(generation: generation, copying: path)
            try archive.bootstrapped(into: generation)
        }
    }

    /// Reads frames; they are kept once the replicator has verified them (give `store` to its
    /// `onVerifiedFrames`), so the archive never holds a frame the replica refused.
    public func frames(generation: UInt64, start: UInt64, maxFrames: Int, wait: Duration?) async throws -> FrameRead {
        try await source.frames(generation: generation, start: start, maxFrames: maxFrames, wait: wait)
    }
}
