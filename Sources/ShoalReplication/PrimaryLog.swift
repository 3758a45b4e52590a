import Foundation
import ShoalSQLite
import Synchronization

/// The primary side of replication for one database directory (`data.db`, `meta.json`,
/// `generations/`).
///
/// Within a generation the WAL is the log: `data.db` is never checkpointed, so it stays the
/// generation's base, and frame n of the WAL is frame n of the generation. `rollGeneration()`
/// archives the WAL's frames to `generations/G.frames`, checkpoints them into `data.db` (the base of
/// G+1) and truncates the WAL; each step is crash-safe and a restart finishes an interrupted roll.
///
/// Every connection that writes must come from `makeConnection()` (it reports commits through the
/// WAL hook and never checkpoints) and write under a permit (`withWritePermit` or
/// `acquireWritePermit`), so that a roll never races a commit.
public final class PrimaryLog: Sendable {
    /// How the log behaves.
    public struct Configuration: Sendable {
        /// Roll the generation once the WAL holds more than this many bytes.
        public var rollThresholdBytes: Int64
        /// How many archived generations to keep at least (the newest ones).
        public var retainedGenerations: Int
        /// How long to keep archived generations beyond `retainedGenerations`.
        public var retention: Duration
        /// How long writers, readers and rolls wait for locks.
        public var busyTimeout: Duration
        /// `PRAGMA synchronous = FULL` (every commit durable) instead of `NORMAL`.
        public var synchronousFull: Bool
        /// The bytes the database may take on disk, its file, WAL and archived generations counted
        /// together (nil: no budget). The WAL rolls at a quarter of it (at most
        /// `rollThresholdBytes`, at least 256 KiB), and archives are pruned, oldest first, until
        /// file + WAL + archives fit, whatever their age: the database can exceed its budget by at
        /// most the current generation's WAL. (Its file is capped by the caller, with
        /// `max_page_count`.)
        public var diskBudgetBytes: Int64?
        /// Told of every automatic roll that failed (it is tried again after the next write, so a
        /// cause that lasts, a full disk say, fails on every write): for the owner's log.
        public var onAutomaticRollFailure: (@Sendable (any Error) -> Void)?
        /// Told of every commit, on the committing thread right after it (keep it cheap: the
        /// backup shipper only marks the database pending).
        public var onCommit: (@Sendable () -> Void)?

        /// Defaults: roll at 64 MiB, keep 4 archived generations and any younger than a day,
        /// wait 5 s for locks, `synchronous = NORMAL`, no disk budget.
        public init(
            rollThresholdBytes: Int64 = 64 << 20, retainedGenerations: Int = 4,
            retention: Duration = .seconds(86_400), busyTimeout: Duration = .seconds(5),
            synchronousFull: Bool = false, diskBudgetBytes: Int64? = nil,
            onAutomaticRollFailure: (@Sendable (any Error) -> Void)? = nil, onCommit: (@Sendable () -> Void)? = nil
        ) {
            self.onAutomaticRollFailure = onAutomaticRollFailure
            self.onCommit = onCommit
            self.diskBudgetBytes = diskBudgetBytes
            self.rollThresholdBytes = rollThresholdBytes
            self.retainedGenerations = retainedGenerations
            self.retention = retention
            self.busyTimeout = busyTimeout
            self.synchronousFull = synchronousFull
        }
    }

    /// What the database takes on disk now, in bytes.
    public struct DiskUsage: Sendable, Equatable {
        /// The database file.
        public var file: Int64
        /// The WAL, as far as committed frames go.
        public var wal: Int64
        /// The archived generations.
        public var archives: Int64
        /// All of it.
        public var total: Int64 { file + wal + archives }
    }

    /// The database directory.
    public let directory: String
    /// The configuration in force.
    public let configuration: Configuration
    let state: LogState
    let gate = Gate()
    /// Where each commit's time is recorded (`generations/G.commits`).
    let clock: CommitClock
    /// The log's own connection: used at open and by rolls (with the gate exclusive).
    let control: Guarded<Connection?>
    /// A read-only descriptor on `data.db-wal` (which carries no POSIX locks), opened on first use.
    private let wal = Mutex<PosixFile?>(nil)

    /// The database file.
    public var databasePath: String { directory + "/data.db" }
    var walPath: String { databasePath + "-wal" }
    var generationsDirectory: String { directory + "/generations" }
    func archivePath(_ generation: UInt64) -> String { generationsDirectory + "/\(generation).frames" }

    /// Opens (creating if needed) a primary database directory, finishing an interrupted roll and
    /// recovering the committed frame count from the WAL.
    public init(directory: String, configuration: Configuration = Configuration()) throws {
        self.directory = directory
        self.configuration = configuration
        try FileSystem.makeDirectory(directory)
        try FileSystem.makeDirectory(directory + "/generations")
        try Self.finishInstall(in: directory)
        for name in try FileSystem.list(directory + "/generations") where name.hasSuffix(".tmp") {
            try FileSystem.remove(directory + "/generations/" + name)
        }
        let meta = try PrimaryMeta.load(directory: directory) ?? PrimaryMeta(generation: 1)
        self.state = LogState(generation: meta.generation)
        self.clock = CommitClock(generationsDirectory: directory + "/generations")
        let connection = try Self.openConnection(
            path: directory + "/data.db", configuration: configuration, state: state, clock: clock,
            readOnly: false)
        try Self.prepareDatabase(connection)
        self.control = Guarded(connection)
        if !PosixFile.exists(directory + "/meta.json") {
            try meta.save(directory: directory)
        }
        try recover()
    }

    /// Sets the page size and WAL mode on a new database and checks an existing one.
    private static func prepareDatabase(_ connection: Connection) throws {
        try connection.execute("PRAGMA page_size = \(WALFormat.pageSize)")
        try connection.setJournalMode(.wal)
        let pageSize = try connection.queryOne("PRAGMA page_size")?[0].integerValue
        guard pageSize == Int64(WALFormat.pageSize) else {
            throw ReplicationError.invalidBase(
                "\(connection.path) has \(pageSize ?? 0)-byte pages; Shoal replicates 4096-byte pages only (VACUUM it with page_size 4096 first)"
            )
        }
    }

    private static func openConnection(
        path: String, configuration: Configuration, state: LogState, clock: CommitClock, readOnly: Bool
    ) throws -> Connection {
        let settings = Connection.Configuration(
            flags: readOnly ? [.readOnly, .noMutex] : [.readWrite, .create, .noMutex],
            busyTimeout: configuration.busyTimeout,
            prepare: { connection in
                try connection.setConfig(.noCheckpointOnClose, true)
                // The WAL hook replaces automatic checkpoints: nothing checkpoints within a generation.
                try connection.setWALHook { _, frames in
                    // A write permit is held: the generation cannot change under the commit.
                    clock.record(generation: state.snapshot().generation, frame: UInt64(frames))
                    state.noteCommitted(frames: UInt64(frames))
                    configuration.onCommit?()
                }
                try connection.execute("PRAGMA synchronous = \(configuration.synchronousFull ? "FULL" : "NORMAL")")
            })
        return try Connection(path: path, configuration: settings)
    }

    /// A connection to the primary database, set up for the log: WAL hook reporting commits, no
    /// checkpoints. Writes through it must hold a write permit.
    public func makeConnection(readOnly: Bool = false) throws -> Connection {
        try ensureOpen()
        return try Self.openConnection(
            path: databasePath, configuration: configuration, state: state, clock: clock, readOnly: readOnly)
    }

    /// Closes the log's own connection and descriptors. Connections made by `makeConnection()` are
    /// the caller's to close.
    public func close() {
        gate.acquireShared()
        defer { gate.releaseShared() }
        state.close()
        control.withLock { connection in
            try? connection?.close()
            connection = nil
        }
        wal.withLock { $0 = nil }
        clock.closeFile()
    }

    func ensureOpen() throws {
        if state.isClosed { throw ReplicationError.closed("the primary log of \(directory) is closed") }
    }

    // MARK: Position

    /// The current generation.
    public var generation: UInt64 { state.snapshot().generation }

    /// The number of committed frames in the current generation.
    public var committedFrames: UInt64 { state.snapshot().committed }

    /// The current generation and its committed frame count, read together.
    public var position: ReplicationPosition {
        let snapshot = state.snapshot()
        return ReplicationPosition(generation: snapshot.generation, frame: snapshot.committed)
    }

    /// The recorded commits of `generation` that end after `frame`, in frame order, for the current
    /// generation and for archived ones (empty once an archive is pruned). A commit whose record
    /// was lost is missing: take the next one's time.
    public func commitTimes(generation: UInt64, after frame: UInt64 = 0) throws -> [CommitTime] {
        try clock.read(generation: generation, after: frame)
    }

    // MARK: Writing

    /// Takes a write permit: rolls wait until every permit is released. Not re-entrant.
    public func acquireWritePermit() {
        gate.acquireShared()
    }

    /// Releases a write permit; rolls the generation if the WAL has outgrown the threshold.
    public func releaseWritePermit() {
        gate.releaseShared()
        if walBytes() > configuration.effectiveRollThreshold, state.beginAutomaticRoll() {
            defer { state.endAutomaticRoll() }
            // A roll that cannot get its locks now is retried after the next write; its owner is
            // told of each failure.
            do {
                _ = try rollGeneration()
            } catch {
                configuration.onAutomaticRollFailure?(error)
            }
        }
    }

    /// Runs `body` holding a write permit.
    public func withWritePermit<T>(_ body: () throws -> T) rethrows -> T {
        acquireWritePermit()
        defer { releaseWritePermit() }
        return try body()
    }

    /// The WAL's size in bytes implied by the committed frames.
    func walBytes() -> Int64 {
        let committed = state.snapshot().committed
        return committed == 0 ? 0 : WALFormat.offset(ofFrame: committed + 1)
    }

    // MARK: Reading the log

    /// Reads up to `maxFrames` committed frames of `generation` starting at `start` (1-based), from
    /// the WAL for the current generation or from the archive for an older one.
    public func readFrames(generation: UInt64, start: UInt64, maxFrames: Int = 1024) throws -> FrameRead {
        try ensureOpen()
        guard start >= 1, maxFrames >= 1 else {
            throw ReplicationError.invalidFrames("frame numbers start at 1 and at least one frame must be asked for")
        }
        return try gate.withShared {
            let snapshot = state.snapshot()
            if generation > snapshot.generation {
                throw ReplicationError.generationGone(
                    "generation \(generation) does not exist yet (the primary is at \(snapshot.generation)); bootstrap again"
                )
            }
            if generation == snapshot.generation {
                guard start <= snapshot.committed else {
                    return .upToDate(currentGeneration: snapshot.generation, lastFrame: snapshot.committed)
                }
                let count = Int(min(UInt64(maxFrames), snapshot.committed - start + 1))
                let bytes = try walFile().read(count: count * WALFormat.frameSize, at: WALFormat.offset(ofFrame: start))
                guard bytes.count == count * WALFormat.frameSize else {
                    throw ReplicationError.corruptState("the WAL of \(directory) is shorter than its committed frames")
                }
                return .frames(try FrameChunk(generation: generation, firstFrame: start, bytes: Self.trimmed(bytes)))
            }
            let path = archivePath(generation)
            guard PosixFile.exists(path) else {
                throw ReplicationError.generationGone(
                    "generation \(generation) of \(directory) is no longer kept; bootstrap from the current generation \(snapshot.generation)"
                )
            }
            let archive = try PosixFile(path: path, flags: O_RDONLY)
            let last = UInt64(try archive.size()) / UInt64(WALFormat.frameSize)
            guard start <= last else {
                return .upToDate(currentGeneration: snapshot.generation, lastFrame: last)
            }
            let count = Int(min(UInt64(maxFrames), last - start + 1))
            let bytes = try archive.read(
                count: count * WALFormat.frameSize, at: Int64(start - 1) * Int64(WALFormat.frameSize))
            return .frames(try FrameChunk(generation: generation, firstFrame: start, bytes: Self.trimmed(bytes)))
        }
    }

    /// Cuts frames after the last commit frame, so replicas get whole transactions; a chunk inside
    /// one transaction larger than the request stays whole (the replicator assembles it).
    static func trimmed(_ frames: [UInt8]) -> [UInt8] {
        let count = frames.count / WALFormat.frameSize
        let lastCommit = frames.withUnsafeBytes { raw -> Int? in
            for index in stride(from: count - 1, through: 0, by: -1)
            where raw.bigEndianUInt32(at: index * WALFormat.frameSize + 4) != 0 {
                return index
            }
            return nil
        }
        guard let lastCommit, lastCommit < count - 1 else { return frames }
        return Array(frames[0..<((lastCommit + 1) * WALFormat.frameSize)])
    }

    private func walFile() throws -> PosixFile {
        try wal.withLock { file in
            if let file { return file }
            let opened = try PosixFile(path: walPath, flags: O_RDONLY)
            file = opened
            return opened
        }
    }

    /// Waits until the current generation has a committed frame after `frame`, or it rolled, or
    /// `timeout` passed. Returns the position then.
    public func waitForFrame(after frame: UInt64, generation: UInt64, timeout: Duration) async -> ReplicationPosition {
        await state.wait(after: frame, generation: generation, timeout: timeout)
        return position
    }

    /// Streams the base file of the current generation to `write` in chunks; the base cannot
    /// change while it streams (a roll waits). Throws `generationGone` for another generation.
    public func exportBase(generation: UInt64, chunkSize: Int = 1 << 20, _ write: ([UInt8]) throws -> Void) throws {
        try ensureOpen()
        try gate.withShared {
            let current = state.snapshot().generation
            guard generation == current else {
                throw ReplicationError.generationGone(
                    "the base of generation \(generation) of \(directory) is gone; export the current generation \(current)"
                )
            }
            let connection = try makeConnection(readOnly: true)
            defer { try? connection.close() }
            try connection.transaction {
                _ = try connection.queryOne("SELECT count(*) FROM sqlite_schema")
                let file = try connection.file(.main)
                let size = try file.size()
                var offset: Int64 = 0
                while offset < size {
                    let count = Int(min(Int64(chunkSize), size - offset))
                    try write(try file.read(count: count, at: offset))
                    offset += Int64(count)
                }
            }
        }
    }

    /// Writes the base file of the current generation to `path` (atomically); with `durable`,
    /// synced to disk too (a scratch copy about to be streamed and deleted need not be).
    public func exportBase(generation: UInt64, to path: String, durable: Bool = true) throws {
        let temporary = path + ".tmp"
        let file = try PosixFile(path: temporary, flags: O_WRONLY | O_CREAT | O_TRUNC)
        var offset: Int64 = 0
        try exportBase(generation: generation) { chunk in
            try file.write(chunk, at: offset)
            offset += Int64(chunk.count)
        }
        if durable {
            try file.syncData()
            try FileSystem.rename(temporary, to: path, syncing: (path as NSString).deletingLastPathComponent)
        } else if Glibc.rename(temporary, path) != 0 {
            throw ReplicationError.io("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
        }
    }
}
