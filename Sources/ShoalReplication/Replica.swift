import Foundation
import ShoalSQLite
import Synchronization

/// A replica of one database in a directory (`data.db`, `position`, `redo`), kept current by
/// applying frames from its primary, read through gated connections.
///
/// The database file stays in rollback-journal mode. An apply writes the batch to the redo log
/// first, then takes `BEGIN EXCLUSIVE` on its own connection and writes the page images through the
/// pager's file handle (page 1 patched: rollback mode, a new change counter, the new size), then
/// records the position. Opening a replica finishes a batch that a crash interrupted before any
/// read is served.
public final class Replica: Sendable {
    /// When the replica syncs its files to disk.
    public enum Durability: Sendable {
        /// Sync the redo log, the database and the position for every batch.
        case perBatch
        /// Never sync while applying: survives process crashes. A replica used unsynced during an
        /// earlier boot of the machine is wiped at its next open and bootstraps again, so a power
        /// loss (or any reboot) costs a download, never a torn file.
        case none
    }

    /// How the replica behaves.
    public struct Configuration: Sendable {
        /// When files are synced.
        public var durability: Durability
        /// The most read connections open at once.
        public var maxReaders: Int
        /// How long an apply waits for leased readers before giving up with `busy`.
        public var applyTimeout: Duration
        /// Bytes of the file readers map into memory (`PRAGMA mmap_size`); 0 reads with `pread`.
        /// Mapping keeps the first reads after an apply cheap: SQLite drops a reader's page cache
        /// whenever the file changes, and refilling it from the map costs no system call.
        public var readerMmapSize: Int
        /// Runs on each new read connection before its first use (a server installs its sandbox
        /// here: authorizer, limits).
        public var prepareReader: (@Sendable (Connection) throws -> Void)?

        /// Defaults: no fsync, 4 readers, 5 s, readers map up to 1 GiB.
        public init(
            durability: Durability = .none, maxReaders: Int = 4, applyTimeout: Duration = .seconds(5),
            readerMmapSize: Int = 1 << 30, prepareReader: (@Sendable (Connection) throws -> Void)? = nil
        ) {
            self.durability = durability
            self.maxReaders = maxReaders
            self.applyTimeout = applyTimeout
            self.readerMmapSize = readerMmapSize
            self.prepareReader = prepareReader
        }
    }

    /// What one apply did.
    public struct ApplyResult: Sendable, Equatable {
        /// The position reached.
        public let position: ReplicationPosition
        /// Frames consumed from the chunk (complete transactions only).
        public let framesApplied: Int
        /// Distinct pages written.
        public let pagesWritten: Int
        /// How long new reads had to wait: from closing the reader gate to opening it again.
        public let readersBlocked: Duration
    }

    /// The replica directory.
    public let directory: String
    /// The configuration in force.
    public let configuration: Configuration
    private let readers: ReaderPool
    /// The applier: its connection, redo log and position file. One apply at a time.
    private let applier: Guarded<Applier>
    /// The position, readable without the applier's lock.
    private let currentPosition: Mutex<ReplicationPosition?>

    /// The database file.
    public var databasePath: String { directory + "/data.db" }

    /// Opens (creating the directory if needed) a replica, finishing an interrupted apply.
    public init(directory: String, configuration: Configuration = Configuration()) throws {
        self.directory = directory
        self.configuration = configuration
        try FileSystem.makeDirectory(directory)
        try Self.guardAgainstLostWrites(directory: directory, durability: configuration.durability)
        readers = ReaderPool(maxConnections: max(1, configuration.maxReaders))
        let applier = try Applier(directory: directory)
        let position = try applier.recover(durable: configuration.durability == .perBatch)
        currentPosition = Mutex(position)
        self.applier = Guarded(applier)
        if position != nil { readers.setOpener(readerOpener()) }
    }

    private func readerOpener() -> () throws -> Connection {
        let path = databasePath
        let mmapSize = configuration.readerMmapSize
        let prepare = configuration.prepareReader
        return {
            let connection = try Connection(path: path, configuration: .init(flags: [.readOnly, .noMutex]))
            if mmapSize > 0 { try connection.execute("PRAGMA mmap_size = \(mmapSize)") }
            try prepare?(connection)
            return connection
        }
    }

    /// The position of the data readers see; nil before the first bootstrap.
    public var position: ReplicationPosition? {
        currentPosition.withLock { $0 }
    }

    /// Closes every connection and file. Leased readers must have been returned.
    public func close() {
        _ = readers.closeGate(timeout: configuration.applyTimeout)
        readers.closeIdleConnections()
        readers.setOpener(nil)
        applier.withLock { $0.close() }
        readers.openGate()
    }

    // MARK: Unsynced replicas and power loss

    /// The marker of a replica used unsynced: the boot id of the machine it was used on. It stays
    /// (a clean close does not make unsynced writes durable either); it is written, durably, once
    /// per boot.
    static func markerPath(_ directory: String) -> String { directory + "/unsynced-boot" }

    /// This boot of the machine (Linux); a fixed value elsewhere, where no reboot is detected.
    static let bootID: String = {
        (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
    }()

    /// A replica used unsynced during another boot may have lost writes the page cache held: wipe
    /// it (it bootstraps again). Then mark it for this boot when it runs unsynced; one that turns
    /// to syncing is synced first and loses its marker.
    static func guardAgainstLostWrites(directory: String, durability: Durability) throws {
        let marker = markerPath(directory)
        let recorded = try? String(contentsOfFile: marker, encoding: .utf8)
        if let recorded, recorded != bootID {
            for name in ["data.db", "data.db-journal", "position", "redo"] {
                try FileSystem.remove(directory + "/" + name)
            }
            try FileSystem.remove(marker)
            try FileSystem.syncDirectory(directory)
        } else if recorded != nil, durability == .perBatch {
            for name in ["data.db", "position", "redo"] {
                guard let file = try? PosixFile(path: directory + "/" + name, flags: O_RDONLY) else { continue }
                try file.syncData()
            }
            try FileSystem.remove(marker)
            try FileSystem.syncDirectory(directory)
        }
        if durability == .none, recorded != bootID {
            try FileSystem.writeAtomically(Array(bootID.utf8), to: marker, directory: directory)
        }
    }

    // MARK: Reading

    /// Runs `body` with a read-only connection inside a read transaction that shows one applied
    /// position. Keep it short: applies wait for it. Prepared statements (e.g. from
    /// `cachedStatement`) survive applies, schema changes included.
    ///
    /// This blocks the calling thread while an apply runs; from async code, `await` the async
    /// `read`, which waits for the apply without holding a thread of the cooperative pool.
    public func read<T>(_ body: (Connection) throws -> T) throws -> T {
        try read(body, with: try readers.lease())
    }

    /// Runs `body` as the synchronous `read` does, on the calling task's thread; while an apply
    /// runs, the task suspends (holding no thread) until the apply is done.
    public func read<T>(_ body: (Connection) throws -> T) async throws -> T {
        try read(body, with: try await readers.lease())
    }

    private func read<T>(_ body: (Connection) throws -> T, with reader: ReaderConnection) throws -> T {
        defer {
            reader.refreshState()
            readers.release(reader)
        }
        try reader.beginIfNeeded()
        return try body(reader.connection)
    }

    // MARK: Bootstrapping

    /// Replaces the replica's data with the base file of `generation` (position `generation/0`).
    /// Readers are closed first and reopen on their next lease.
    public func bootstrap(generation: UInt64, baseFile: String) throws {
        guard readers.closeGate(timeout: configuration.applyTimeout) else {
            throw ReplicationError.busy("readers of \(directory) did not let go for a bootstrap; try again")
        }
        defer { readers.openGate() }
        readers.closeIdleConnections()
        readers.setOpener(nil)
        try applier.withLock { applier in
            try applier.bootstrap(
                generation: generation, baseFile: baseFile, durable: configuration.durability == .perBatch)
        }
        currentPosition.withLock { $0 = ReplicationPosition(generation: generation, frame: 0) }
        readers.setOpener(readerOpener())
    }

    // MARK: Applying

    /// Applies the complete transactions at the start of `chunk`, which must continue the position.
    /// Frames after the last commit frame are left for the next chunk.
    @discardableResult
    public func apply(_ chunk: FrameChunk) throws -> ApplyResult {
        try applier.withLock { applier in
            guard let position = currentPosition.withLock({ $0 }) else {
                throw ReplicationError.notBootstrapped("\(directory) has no data yet; bootstrap it from a base file")
            }
            guard chunk.generation == position.generation, chunk.firstFrame == position.frame + 1 else {
                throw ReplicationError.positionMismatch(
                    "frames \(chunk.generation)/\(chunk.firstFrame)… do not continue the replica at \(position)")
            }
            guard let batch = try PageBatch(chunk) else {
                return ApplyResult(position: position, framesApplied: 0, pagesWritten: 0, readersBlocked: .zero)
            }
            let blocked = try applier.apply(
                batch, from: position, readers: readers, timeout: configuration.applyTimeout,
                durable: configuration.durability == .perBatch)
            currentPosition.withLock { $0 = batch.target }
            return ApplyResult(
                position: batch.target, framesApplied: batch.framesConsumed, pagesWritten: batch.pageNumbers.count,
                readersBlocked: blocked)
        }
    }

    /// Moves to `position.generation + 1` once every frame of the current generation (its last is
    /// `lastFrame`) is applied: the next generation's base is exactly that state.
    public func advanceGeneration(lastFrameOfCurrent lastFrame: UInt64) throws {
        try applier.withLock { applier in
            guard let position = currentPosition.withLock({ $0 }) else {
                throw ReplicationError.notBootstrapped("\(directory) has no data yet; bootstrap it from a base file")
            }
            guard position.frame == lastFrame else {
                throw ReplicationError.positionMismatch(
                    "the replica is at \(position) but generation \(position.generation) ends at frame \(lastFrame)")
            }
            let next = ReplicationPosition(generation: position.generation + 1, frame: 0)
            try applier.positions.write(next, durable: configuration.durability == .perBatch)
            currentPosition.withLock { $0 = next }
        }
    }
}

/// The replica's write side, used under the replica's applier lock.
final class Applier {
    let directory: String
    var connection: Connection?
    let redo: RedoLog
    let positions: PositionFile

    var databasePath: String { directory + "/data.db" }

    init(directory: String) throws {
        self.directory = directory
        redo = try RedoLog(path: directory + "/redo")
        positions = try PositionFile(path: directory + "/position")
    }

    func close() {
        try? connection?.close()
        connection = nil
    }

    private func openConnection() throws -> Connection {
        let connection = try Connection(path: databasePath, configuration: .init(flags: [.readWrite, .noMutex]))
        try connection.execute("PRAGMA cache_size = 8")
        // Readers hold the gate, not SQLite locks, in this process; other processes get short waits.
        try connection.setBusyTimeout(.milliseconds(200))
        return connection
    }

    /// Reads the position and finishes an interrupted apply; nil if never bootstrapped.
    func recover(durable: Bool) throws -> ReplicationPosition? {
        guard let position = try positions.read(), PosixFile.exists(databasePath) else {
            // A bootstrap that did not finish leaves nothing usable.
            try FileSystem.remove(databasePath)
            try FileSystem.remove(databasePath + "-journal")
            return nil
        }
        connection = try openConnection()
        if let record = try redo.read(), record.from == position, record.batch.target > position {
            try write(record.batch, durable: durable)
            try positions.write(record.batch.target, durable: durable)
            try redo.invalidate()
            return record.batch.target
        }
        return position
    }

    func bootstrap(generation: UInt64, baseFile: String, durable: Bool) throws {
        close()
        let source = try PosixFile(path: baseFile, flags: O_RDONLY)
        let size = try source.size()
        let header = try source.read(count: 100, at: 0)
        try DatabaseHeader.validate(header, source: baseFile)
        guard size > 0, size % Int64(WALFormat.pageSize) == 0 else {
            throw ReplicationError.invalidBase("\(baseFile) is \(size) bytes, not a whole number of 4096-byte pages")
        }
        try positions.clear()
        try redo.invalidate()
        let temporary = databasePath + ".tmp"
        do {
            let destination = try PosixFile(path: temporary, flags: O_WRONLY | O_CREAT | O_TRUNC)
            var offset: Int64 = 0
            while offset < size {
                var chunk = try source.read(count: Int(min(Int64(4 << 20), size - offset)), at: offset)
                if offset == 0 {
                    let previous = chunk.bigEndianUInt32(at: 24)
                    DatabaseHeader.patch(
                        page1: &chunk, previousCounter: previous,
                        databaseSize: UInt32(size / Int64(WALFormat.pageSize)))
                }
                try destination.write(chunk, at: offset)
                offset += Int64(chunk.count)
            }
            try destination.syncData()
        }
        try FileSystem.remove(databasePath + "-journal")
        try FileSystem.rename(temporary, to: databasePath, syncing: directory)
        try positions.write(ReplicationPosition(generation: generation, frame: 0), durable: true)
        connection = try openConnection()
        _ = durable
    }

    /// Redo log first, then the database, then the position. Returns how long readers waited.
    func apply(
        _ batch: PageBatch, from position: ReplicationPosition, readers: ReaderPool, timeout: Duration, durable: Bool
    ) throws -> Duration {
        try redo.write(batch, from: position, durable: durable)
        let clock = ContinuousClock()
        let closing = clock.now
        guard readers.closeGate(timeout: timeout) else {
            throw ReplicationError.busy(
                "readers of \(directory) held on longer than \(timeout); the batch will be retried")
        }
        do {
            defer { readers.openGate() }
            try write(batch, durable: false)
        }
        let blocked = clock.now - closing
        if durable { try connection?.file(.main).sync() }
        try positions.write(batch.target, durable: durable)
        try redo.invalidate()
        return blocked
    }

    /// Writes pages with consecutive numbers in one call each (copied into one buffer), so a batch
    /// costs a few large writes instead of one system call per page.
    private func writeRuns(of batch: PageBatch, from firstSlot: Int, to file: DatabaseFile) throws {
        // SQLite's unix VFS writes at most 0x1ffff bytes per call: 31 pages.
        let maxRun = 31
        var buffer = [UInt8](repeating: 0, count: maxRun * WALFormat.pageSize)
        var slot = firstSlot
        while slot < batch.pageNumbers.count {
            var end = slot + 1
            while end < batch.pageNumbers.count, end - slot < maxRun,
                batch.pageNumbers[end] == batch.pageNumbers[end - 1] + 1
            {
                end += 1
            }
            let offset = Int64(batch.pageNumbers[slot] - 1) * Int64(WALFormat.pageSize)
            if end - slot == 1 {
                try batch.withImage(at: slot) { try file.write($0, at: offset) }
            } else {
                try buffer.withUnsafeMutableBytes { destination in
                    for index in slot..<end {
                        batch.withImage(at: index) { image in
                            destination.baseAddress!.advanced(by: (index - slot) * WALFormat.pageSize)
                                .copyMemory(from: image.baseAddress!, byteCount: WALFormat.pageSize)
                        }
                    }
                    try file.write(
                        UnsafeRawBufferPointer(rebasing: destination[0..<((end - slot) * WALFormat.pageSize)]),
                        at: offset)
                }
            }
            slot = end
        }
    }

    /// Writes the pages under `BEGIN EXCLUSIVE` through the pager's own file handle.
    func write(_ batch: PageBatch, durable: Bool) throws {
        guard let connection else { throw ReplicationError.closed("the replica \(directory) is closed") }
        try connection.execute("BEGIN EXCLUSIVE")
        do {
            let file = try connection.file(.main)
            let previousCounter = try file.read(count: 100, at: 0).bigEndianUInt32(at: 24)
            var page1: [UInt8]
            var firstSlot = 0
            if batch.pageNumbers.first == 1 {
                page1 = batch.withImage(at: 0) { Array($0) }
                firstSlot = 1
            } else {
                page1 = try file.read(count: WALFormat.pageSize, at: 0)
            }
            DatabaseHeader.patch(page1: &page1, previousCounter: previousCounter, databaseSize: batch.databaseSize)
            try writeRuns(of: batch, from: firstSlot, to: file)
            try file.write(page1, at: 0)
            let size = Int64(batch.databaseSize) * Int64(WALFormat.pageSize)
            if try file.size() > size {
                try file.truncate(to: size)
            }
            if durable { try file.sync() }
            try connection.execute("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }
}
