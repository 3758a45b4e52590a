import Foundation
import Logging
import ServiceLifecycle
import ShoalReplication
import ShoalSQLite
import ShoalTime
import Synchronization

/// Gives the shipper a database's primary log, opening it if it is closed.
public protocol BackupSource: Sendable {
    /// Runs `body` with the primary log of database `id`; nil when `id` is no longer a primary here
    /// (deleted, or moved away), which ends its shipping.
    func withPrimaryLog<T: Sendable>(_ id: String, _ body: @Sendable (PrimaryLog) async throws -> T) async throws -> T?
    /// How far back database `id`'s backup must stay restorable (its plan's); nil for the
    /// shipper's default.
    func retention(_ id: String) async -> Duration?
}

extension BackupSource {
    /// The shipper's default for every database.
    public func retention(_ id: String) async -> Duration? { nil }
}

/// Ships every primary's frames of one node, in order and with their commit times, to an object
/// store (see `BackupKey` for the objects).
///
/// A commit only marks its database pending (`noteCommit`: a set insertion, and on the first
/// commit since the last shipment an empty marker file, so a restart knows what was not shipped).
/// A round starts when something is pending, waits `batchDelay` for more commits to gather, then
/// ships each pending database: one object per database per round (more only past
/// `maxFramesPerSegment`), its base once, and a new snapshot of a generation's base whenever the
/// frames shipped since the last snapshot outweigh it, so a restore reads at most about twice the
/// database. An idle database costs no request at all. A store that fails delays shipping (rounds
/// back off up to `maxRetryDelay`), never a write.
///
/// Retention: a database that writes gets a new snapshot at least every half of its retention
/// (its generation is rolled for it, at most every `minimumSnapshotInterval`), and after each
/// snapshot the objects no restore within the retention reads any more are deleted
/// (`BackupCatalog.prunable`). What an idle database holds is all still needed for its state now.
public final class BackupShipper: Service, Sendable {
    /// How the shipper behaves.
    public struct Configuration: Sendable {
        /// How often rounds start at most: how long commits gather before a round ships them.
        public var batchDelay: Duration
        /// The most frames in one object.
        public var maxFramesPerSegment: Int
        /// Databases shipped at once.
        public var concurrency: Int
        /// The first wait after a failed round; it doubles up to `maxRetryDelay`.
        public var retryDelay: Duration
        /// The longest wait between failed rounds.
        public var maxRetryDelay: Duration
        /// How far back a database's backup stays restorable when its source names no retention;
        /// nil: such a database's backup is never pruned.
        public var defaultRetention: Duration?
        /// The shortest time between two snapshots taken for retention.
        public var minimumSnapshotInterval: Duration

        /// Defaults: rounds 1 s apart, 1,024 frames (4 MiB) an object, 16 databases at once, retries
        /// from 1 s to 30 s, no retention unless the source names one (nothing is pruned), snapshots
        /// for retention at most hourly.
        public init(
            batchDelay: Duration = .seconds(1), maxFramesPerSegment: Int = 1024, concurrency: Int = 16,
            retryDelay: Duration = .seconds(1), maxRetryDelay: Duration = .seconds(30),
            defaultRetention: Duration? = nil, minimumSnapshotInterval: Duration = .seconds(3600)
        ) {
            self.defaultRetention = defaultRetention
            self.minimumSnapshotInterval = minimumSnapshotInterval
            self.batchDelay = batchDelay
            self.maxFramesPerSegment = maxFramesPerSegment
            self.concurrency = concurrency
            self.retryDelay = retryDelay
            self.maxRetryDelay = maxRetryDelay
        }
    }

    /// What the shipper did so far and holds now (for metrics and the stats endpoint).
    public struct Statistics: Sendable, Equatable {
        /// Frames stored.
        public var framesShipped = 0
        /// Bytes stored (frames, snapshots and markers).
        public var bytesShipped: Int64 = 0
        /// Requests made to the store.
        public var requests = 0
        /// Databases whose shipping failed (each try counts).
        public var failures = 0
        /// Snapshots stored.
        public var snapshots = 0
        /// Databases with commits not yet shipped.
        public var pendingDatabases = 0
        /// Seconds since the oldest unshipped commit (0 when nothing is pending).
        public var lagSeconds: Double = 0
        /// Frames lost to the log before they were shipped (an archive pruned first); a fresh
        /// snapshot covers them.
        public var gaps = 0
        /// Objects deleted because no restore within the retention reads them.
        public var pruned = 0
    }

    /// Where a database stands in the store, as this process knows it.
    struct Cursor: Sendable {
        var position: ReplicationPosition
        var bytesSinceSnapshot: Int64
        var lastCommit: Int64
        /// The newest snapshot's time.
        var snapshotTime: Int64
    }

    private struct Pending {
        var epoch: UInt64
        var since: ContinuousClock.Instant
    }

    private struct State {
        var pending: [String: Pending] = [:]
        var nextEpoch: UInt64 = 1
        var cursors: [String: Cursor] = [:]
        /// Databases whose log started over (restored in place): their next shipment begins with a
        /// snapshot, whatever the store holds.
        var startingOver: Set<String> = []
        var statistics = Statistics()
        var wake: AsyncStream<Void>.Continuation?
    }

    /// The store objects go to.
    public let store: any ObjectStore
    /// The configuration in force.
    public let configuration: Configuration
    private let source: any BackupSource
    private let markers: String
    private let logger: Logger
    private let state = Mutex(State())
    private let locks = KeyedLock()
    private let wakes: AsyncStream<Void>
    private let wakeContinuation: AsyncStream<Void>.Continuation

    /// A shipper to `store` for the logs `source` gives; pending markers live in
    /// `pendingDirectory` (created if missing) and those found there are pending from the start.
    public init(
        store: any ObjectStore, source: any BackupSource, pendingDirectory: String,
        configuration: Configuration = Configuration(), logger: Logger = Logger(label: "shoal.backup")
    ) throws {
        self.store = store
        self.source = source
        self.markers = pendingDirectory
        self.configuration = configuration
        self.logger = logger
        (wakes, wakeContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        try FileSystem.makeDirectory(pendingDirectory)
        let now = ContinuousClock.now
        let found = try FileSystem.list(pendingDirectory).filter { BackupKey.isValid(id: $0) }
        state.withLock { state in
            for id in found {
                state.pending[id] = Pending(epoch: 0, since: now)
            }
        }
    }

    // MARK: Commits

    /// Marks database `id` as having frames to ship; cheap enough for every commit (called from
    /// the WAL hook, on the committing thread).
    public func noteCommit(_ id: String) {
        let first = state.withLock { state -> Bool in
            let epoch = state.nextEpoch
            state.nextEpoch += 1
            if state.pending[id] != nil {
                state.pending[id]!.epoch = epoch
                return false
            }
            state.pending[id] = Pending(epoch: epoch, since: .now)
            return true
        }
        guard first else { return }
        if BackupKey.isValid(id: id) {
            let descriptor = open(markers + "/" + id, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
            if descriptor >= 0 { close(descriptor) }
        }
        wakeContinuation.yield()
    }

    /// Forgets database `id` (deleted or moved away): nothing more is shipped for it.
    public func forget(_ id: String) {
        state.withLock { state in
            state.pending[id] = nil
            state.cursors[id] = nil
        }
        unlink(markers + "/" + id)
    }

    /// Database `id`'s log started over at a new generation (it was restored in place): its next
    /// shipment starts with a snapshot of the new base, after what the store holds; it is pending
    /// from now on.
    public func startOver(_ id: String) {
        state.withLock { state in
            state.cursors[id] = nil
            state.startingOver.insert(id)
        }
        noteCommit(id)
    }

    /// The counts so far.
    public var statistics: Statistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.pendingDatabases = state.pending.count
            if let oldest = state.pending.values.map(\.since).min() {
                statistics.lagSeconds = (ContinuousClock.now - oldest).inSeconds
            }
            return statistics
        }
    }

    /// Since when database `id` has had commits not yet shipped (nil: none).
    public func pendingSince(_ id: String) -> ContinuousClock.Instant? {
        state.withLock { $0.pending[id]?.since }
    }

    /// The databases with commits not yet shipped.
    public var pendingDatabases: [String] { state.withLock { Array($0.pending.keys).sorted() } }

    // MARK: Running

    /// Ships rounds until cancelled or the service group shuts down, then one last round (bounded by
    /// the group's escalation to cancellation). Rounds start at most every `batchDelay`: a commit
    /// waits for the next start, then for the round that ships it.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var delay = self.configuration.retryDelay
            var iterator = self.wakes.makeAsyncIterator()
            var lastStart: ContinuousClock.Instant?
            while !Task.isCancelled {
                if self.pendingDatabases.isEmpty {
                    guard await iterator.next() != nil else { return }
                    continue
                }
                let next = (lastStart ?? .now) + self.configuration.batchDelay
                if next > .now { await CancellableSleep.sleep(for: next - .now) }
                if Task.isCancelled { return }
                lastStart = .now
                let failed = await self.shipPending()
                if failed > 0 {
                    await CancellableSleep.sleep(for: delay)
                    delay = min(delay * 2, self.configuration.maxRetryDelay)
                } else {
                    delay = self.configuration.retryDelay
                }
            }
        }
        _ = await shipPending()
    }

    /// Ships every pending database once; returns how many failed.
    @discardableResult
    public func shipPending() async -> Int {
        let round = state.withLock { state in state.pending.map { ($0.key, $0.value.epoch) } }
        var failed = 0
        await withTaskGroup(of: Bool.self) { group in
            var running = 0
            for (id, epoch) in round {
                if running >= configuration.concurrency {
                    if await group.next() == false { failed += 1 }
                    running -= 1
                }
                group.addTask { await self.shipOne(id, epoch: epoch) }
                running += 1
            }
            for await ok in group where !ok { failed += 1 }
        }
        return failed
    }

    /// Ships everything pending until nothing is, or `limit` passes; true when nothing is left.
    public func flush(within limit: Duration = .seconds(30)) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while !pendingDatabases.isEmpty, ContinuousClock.now < deadline, !Task.isCancelled {
            if await shipPending() > 0 { await CancellableSleep.sleep(for: .milliseconds(50)) }
        }
        return pendingDatabases.isEmpty
    }

    private func shipOne(_ id: String, epoch: UInt64) async -> Bool {
        do {
            let shipped = try await ship(id)
            state.withLock { state in
                // A commit after the round began leaves the database pending.
                if !shipped || state.pending[id]?.epoch == epoch {
                    state.pending[id] = nil
                    unlink(markers + "/" + id)
                }
            }
            return true
        } catch is CancellationError {
            return true
        } catch {
            state.withLock { $0.statistics.failures += 1 }
            logger.warning("backup.ship_failed", metadata: ["database": "\(id)", "error": "\(error)"])
            return false
        }
    }

    /// Runs `body` while no shipment of database `id` runs or starts (a restore in place holds it
    /// from its last shipment until the new files are installed). Not re-entrant: inside, ship
    /// with `ship(_:holdingLock: true)`.
    public func exclusively<T: Sendable>(_ id: String, _ body: () async throws -> T) async throws -> T {
        await locks.lock(id)
        do {
            let result = try await body()
            locks.unlock(id)
            return result
        } catch {
            locks.unlock(id)
            throw error
        }
    }

    /// Ships database `id` up to its log's position now; false when it is not a primary here any
    /// more. One shipment of a database runs at a time (`holdingLock`: the caller holds it, in
    /// `exclusively`).
    @discardableResult
    public func ship(_ id: String, holdingLock: Bool = false) async throws -> Bool {
        if !holdingLock { return try await exclusively(id) { try await ship(id, holdingLock: true) } }
        guard BackupKey.isValid(id: id) else {
            throw BackupError.diverged("'\(id)' cannot name a database in the backup store")
        }
        let known = try await self.cursor(id)
        let result: Cursor? = try await source.withPrimaryLog(id) { log in
            try await self.ship(id, log: log, from: known)
        }
        guard let result else {
            forget(id)
            return false
        }
        state.withLock { state in
            state.cursors[id] = result
            state.startingOver.remove(id)
        }
        return true
    }

    /// What the store holds for `id` (listed once per process, then remembered).
    private func cursor(_ id: String) async throws -> Cursor? {
        let (known, fresh) = state.withLock { ($0.cursors[id], $0.startingOver.contains(id)) }
        if let known { return known }
        if fresh { return nil }
        let catalog = try await BackupCatalog.load(store, id: id)
        count(requests: 1, bytes: 0)
        guard let position = catalog.position else { return nil }
        return Cursor(
            position: position, bytesSinceSnapshot: catalog.bytesSinceSnapshot, lastCommit: catalog.latest ?? 0,
            snapshotTime: catalog.latestSnapshot ?? 0)
    }

    private func count(requests: Int, bytes: Int, frames: Int = 0, snapshots: Int = 0) {
        state.withLock { state in
            state.statistics.requests += requests
            state.statistics.bytesShipped += Int64(bytes)
            state.statistics.framesShipped += frames
            state.statistics.snapshots += snapshots
        }
    }

    private func put(_ key: String, _ bytes: [UInt8], frames: Int = 0, snapshot: Bool = false) async throws {
        try await store.put(key, bytes)
        count(requests: 1, bytes: bytes.count, frames: frames, snapshots: snapshot ? 1 : 0)
    }

    /// Stores the base of the log's current generation as a snapshot current from `time`.
    private func snapshot(_ id: String, log: PrimaryLog, generation: UInt64, time: Int64) async throws -> Int64 {
        let base = try await BlockingExecutor.shared.run { () -> [UInt8] in
            var bytes: [UInt8] = []
            try log.exportBase(generation: generation) { bytes += $0 }
            return bytes
        }
        try await put(
            BackupKey.snapshot(generation: generation, frame: 0, microseconds: time).key(id), base, snapshot: true)
        return Int64(base.count)
    }

    private func ship(_ id: String, log: PrimaryLog, from known: Cursor?) async throws -> Cursor {
        let maxFrames = configuration.maxFramesPerSegment
        var cursor: Cursor
        if let known {
            cursor = known
        } else {
            // Nothing in the store: the base of the current generation starts the backup, current
            // from just before its first recorded commit (the empty file of a new database is the
            // state until then).
            let generation = log.generation
            let first = try await BlockingExecutor.shared.run { try log.commitTimes(generation: generation).first }
            let time = first.map { $0.microseconds - 1 } ?? CommitTime.now()
            _ = try await snapshot(id, log: log, generation: generation, time: time)
            cursor = Cursor(
                position: ReplicationPosition(generation: generation, frame: 0), bytesSinceSnapshot: 0,
                lastCommit: time,
                snapshotTime: time)
            await prune(id)
        }
        var rolledForRetention = false
        while !Task.isCancelled {
            let position = cursor.position
            let read: FrameRead
            do {
                read = try await BlockingExecutor.shared.run {
                    try log.readFrames(generation: position.generation, start: position.frame + 1, maxFrames: maxFrames)
                }
            } catch ReplicationError.kindGenerationGone {
                guard log.generation > position.generation else {
                    throw BackupError.diverged(
                        "the backup of \(id) is at generation \(position.generation), ahead of its log (at \(log.position)); it needs a new backup"
                    )
                }
                // The log pruned frames before they were shipped: a fresh snapshot covers them.
                let generation = log.generation
                logger.warning(
                    "backup.gap",
                    metadata: ["database": "\(id)", "from": "\(position)", "to_generation": "\(generation)"])
                state.withLock { $0.statistics.gaps += 1 }
                let time = CommitTime.now()
                _ = try await snapshot(id, log: log, generation: generation, time: time)
                cursor = Cursor(
                    position: ReplicationPosition(generation: generation, frame: 0), bytesSinceSnapshot: 0,
                    lastCommit: time, snapshotTime: time)
                await prune(id)
                continue
            }
            switch read {
            case .frames(var chunk):
                // A transaction larger than one read comes in pieces: read on to its commit frame.
                while Segment.commitFrames(chunk).last != chunk.lastFrame {
                    let next = chunk.lastFrame + 1
                    let generation = chunk.generation
                    let first = chunk.firstFrame
                    let bytes = chunk.bytes
                    let more = try await BlockingExecutor.shared.run {
                        try log.readFrames(generation: generation, start: next, maxFrames: maxFrames)
                    }
                    guard case .frames(let piece) = more else {
                        throw BackupError.corrupt(
                            "generation \(generation) of \(id) ends at frame \(next - 1), inside a transaction")
                    }
                    chunk = try FrameChunk(generation: generation, firstFrame: first, bytes: bytes + piece.bytes)
                }
                let generation = chunk.generation
                let times = try await BlockingExecutor.shared.run {
                    try log.commitTimes(generation: generation, after: position.frame)
                }
                let segment = try Segment(
                    chunk: chunk, commits: Self.assign(times, to: chunk, after: cursor.lastCommit))
                try await put(segment.key(id), segment.encoded(), frames: chunk.count)
                cursor.position = ReplicationPosition(generation: chunk.generation, frame: chunk.lastFrame)
                cursor.bytesSinceSnapshot += Int64(chunk.bytes.count)
                cursor.lastCommit = segment.commits.last?.microseconds ?? cursor.lastCommit
            case .upToDate(let current, let last):
                if current == position.generation {
                    guard last >= position.frame else {
                        throw BackupError.diverged(
                            "the backup of \(id) holds frame \(position.frame) of generation \(position.generation) but the log ends at \(last); it needs a new backup"
                        )
                    }
                    // Shipped up to now. A snapshot due for retention rolls the generation: the
                    // next read finds the new one, whose base is then stored.
                    guard !rolledForRetention, cursor.bytesSinceSnapshot > 0, await snapshotDue(id, cursor) else {
                        return cursor
                    }
                    rolledForRetention = true
                    let rolled = try? await BlockingExecutor.shared.run { try log.rollGeneration() }
                    if rolled != true { return cursor }
                    continue
                }
                guard last == position.frame else {
                    throw BackupError.diverged(
                        "generation \(position.generation) of \(id) ended at frame \(last) but its backup holds \(position.frame)"
                    )
                }
                try await put(BackupKey.end(generation: position.generation, last: last).key(id), [])
                cursor.position = ReplicationPosition(generation: position.generation + 1, frame: 0)
                // A new snapshot once replaying the frames since the last would cost more than it,
                // or when one is due for retention.
                let base = (try? PosixFile.size(of: log.databasePath)) ?? 0
                if current == position.generation + 1, rolledForRetention || cursor.bytesSinceSnapshot >= base {
                    do {
                        _ = try await snapshot(id, log: log, generation: current, time: cursor.lastCommit)
                        cursor.bytesSinceSnapshot = 0
                        cursor.snapshotTime = cursor.lastCommit
                        await prune(id)
                    } catch ReplicationError.kindGenerationGone {
                        // Rolled again meanwhile: the frames still chain there.
                    }
                }
            }
        }
        throw CancellationError()
    }

    /// How far back database `id` stays restorable; nil: for ever.
    private func retention(_ id: String) async -> Duration? {
        await source.retention(id) ?? configuration.defaultRetention
    }

    /// Whether database `id` is due a snapshot for retention: its newest is older than half its
    /// retention (and than `minimumSnapshotInterval`).
    private func snapshotDue(_ id: String, _ cursor: Cursor) async -> Bool {
        let age = Double(CommitTime.now() - cursor.snapshotTime) / 1_000_000
        guard age >= configuration.minimumSnapshotInterval.inSeconds, let retention = await retention(id) else {
            return false
        }
        return age >= retention.inSeconds / 2
    }

    /// Deletes the objects of database `id` that no restore within its retention reads; a failure
    /// only leaves them for the next snapshot's pass.
    private func prune(_ id: String) async {
        guard let retention = await retention(id) else { return }
        let cutoff = CommitTime.now() - Int64(retention.inSeconds * 1_000_000)
        do {
            let catalog = try await BackupCatalog.load(store, id: id)
            count(requests: 1, bytes: 0)
            let keys = catalog.prunable(before: cutoff).map { $0.key(id) }
            guard !keys.isEmpty else { return }
            try await store.delete(keys)
            count(requests: keys.count, bytes: 0)
            state.withLock { $0.statistics.pruned += keys.count }
            logger.debug("backup.pruned", metadata: ["database": "\(id)", "objects": "\(keys.count)"])
        } catch {
            logger.warning("backup.prune_failed", metadata: ["database": "\(id)", "error": "\(error)"])
        }
    }

    /// Gives every commit frame of `chunk` its recorded time; a commit whose record was lost takes
    /// the next recorded time, or now (never an earlier one), and times never go backwards.
    static func assign(_ recorded: [CommitTime], to chunk: FrameChunk, after previous: Int64) -> [CommitTime] {
        let byFrame = Dictionary(recorded.map { ($0.frame, $0.microseconds) }, uniquingKeysWith: { first, _ in first })
        let frames = Segment.commitFrames(chunk)
        var result: [CommitTime] = []
        var floor = previous
        for frame in frames {
            let time =
                byFrame[frame] ?? recorded.first(where: { $0.frame > frame })?.microseconds ?? CommitTime.now()
            floor = max(floor, time)
            result.append(CommitTime(frame: frame, microseconds: floor))
        }
        return result
    }
}

/// One holder at a time per key; waiters are handed the lock in order.
final class KeyedLock: Sendable {
    private let held = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    func lock(_ key: String) async {
        if held.withLock({ held in
            guard held[key] == nil else { return false }
            held[key] = []
            return true
        }) {
            return
        }
        await withCheckedContinuation { continuation in
            let now = held.withLock { held -> Bool in
                if held[key] == nil {
                    held[key] = []
                    return true
                }
                held[key]!.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    func unlock(_ key: String) {
        let next = held.withLock { held -> CheckedContinuation<Void, Never>? in
            guard var waiters = held[key], !waiters.isEmpty else {
                held[key] = nil
                return nil
            }
            let first = waiters.removeFirst()
            held[key] = waiters
            return first
        }
        next?.resume()
    }
}
