import Foundation
import Logging
import ServiceLifecycle
import ShoalPool
import ShoalReplication
import ShoalSQLite
import ShoalSyncTransport
import ShoalTime
import Synchronization

/// A database this node holds as a replica of its primary on another node: the replication
/// engine's replica (gated readers) kept current by a follower (a child task of the node's
/// `ReplicaFollowers` service) that long-polls the primary's `/sync`, so lag under steady load is one round trip. Survives restarts (the replica's
/// position is on disk), follows generation rolls and bootstraps again when too far behind.
public final class ReplicaCopy: Sendable {
    /// The database URL on the primary node (`http://host/db/org/name`).
    public let primaryURL: URL
    /// The replica: local reads go through its gated readers.
    let replica: Replica
    let credentials: Credentials
    /// What the replica applied, kept to serve `/info`, `/export` and `/sync` from this node.
    let archive: FrameArchive
    private let replicator: Replicator
    private let waiters = PositionWaiters()
    /// Woken when a pull first reaches the primary's end.
    private let synced = PositionWaiters()
    private let state = Mutex(State())
    private let followers: ReplicaFollowers
    /// Finished by `close()`: ends the follower.
    private let closing: AsyncStream<Never>
    private let closingContinuation: AsyncStream<Never>.Continuation
    private let logger: Logger
    /// Asks for a fresh sync token when the primary refuses the current one (nil: none available).
    private let renewToken: @Sendable () async -> String?

    private struct State {
        var started = false
        /// Pulls that reached the primary's end.
        var syncs = 0
        var lastCaughtUp: ContinuousClock.Instant?
        var lastError: String?
        /// The primary's last position this node heard of (sync answers, forwarded writes).
        var primaryPosition: ReplicationPosition?
        var closed = false
    }

    /// What the stats endpoint shows about the replica.
    public struct Status: Sendable, Encodable {
        let primaryURL: String
        let generation: UInt64?
        let frame: UInt64?
        let primaryFrame: UInt64?
        let lagFrames: UInt64?
        let millisecondsSinceCaughtUp: Int64?
        let lastError: String?

        enum CodingKeys: String, CodingKey {
            case primaryURL = "primary_url"
            case generation, frame
            case primaryFrame = "primary_frame"
            case lagFrames = "lag_frames"
            case millisecondsSinceCaughtUp = "ms_since_caught_up"
            case lastError = "last_error"
        }
    }

    init(
        directory: String, primaryURL: URL, syncToken: String?, longPoll: Duration, durability: Replica.Durability,
        logger: Logger, followers: ReplicaFollowers,
        prepareReader: @escaping @Sendable (Connection) throws -> Void,
        renewToken: @escaping @Sendable () async -> String?
    ) throws {
        self.primaryURL = primaryURL
        self.logger = logger
        self.renewToken = renewToken
        self.followers = followers
        (closing, closingContinuation) = AsyncStream.makeStream(of: Never.self)
        let archive = try FrameArchive(directory: directory + "/archive")
        // A replica whose archive lost its base (or never had one) starts over, so that what it
        // serves and what it applied always agree.
        if FileManager.default.fileExists(atPath: directory + "/position"),
            !(try FileManager.default.contentsOfDirectory(atPath: archive.directory)).contains(where: {
                $0.hasSuffix(".base")
            })
        {
            for name in ["data.db", "data.db-journal", "position", "redo"] {
                try? FileManager.default.removeItem(atPath: directory + "/" + name)
            }
        }
        let replica = try Replica(
            directory: directory, configuration: .init(durability: durability, prepareReader: prepareReader))
        if replica.position == nil { try archive.wipe() }
        self.replica = replica
        self.archive = archive
        credentials = Credentials(syncToken)
        let waiters = self.waiters
        replicator = Replicator(
            replica: replica,
            source: ArchivingSource(HTTPFrameSource(url: primaryURL, credentials: credentials), archive: archive),
            configuration: .init(
                longPoll: longPoll,
                onPosition: { position in waiters.reached(position) },
                onGenerationEnd: { generation, lastFrame in
                    try archive.advance(from: generation, lastFrame: lastFrame, replicaFile: replica.databasePath)
                },
                onVerifiedFrames: { chunk in try archive.store(chunk) }))
    }

    /// The position readers see (nil before the first bootstrap).
    public var position: ReplicationPosition? { replica.position }

    /// Starts following the primary (once `followers` runs).
    func start() {
        let first = state.withLock { state in
            defer { state.started = true }
            return !state.started && !state.closed
        }
        if first { followers.follow(self) }
    }

    /// Stops following and closes the replica's files.
    func close() {
        state.withLock { $0.closed = true }
        closingContinuation.finish()
        waiters.close()
        synced.close()
        replica.close()
    }

    /// Pulls from the primary until the copy is closed or the calling task cancelled.
    func follow() async {
        guard !state.withLock({ $0.closed }) else { return }
        let closing = self.closing
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.pullUntilCancelled() }
            group.addTask { for await _ in closing {} }
            await group.next()
            group.cancelAll()
        }
    }

    private func pullUntilCancelled() async {
        var backoff = Duration.milliseconds(100)
        var wait: Duration? = nil
        while !Task.isCancelled {
            do {
                let result = try await replicator.pull(wait: wait)
                wait = replicator.configuration.longPoll
                backoff = .milliseconds(100)
                caughtUp(at: result.position)
            } catch is CancellationError {
                return
            } catch let error as TransportError where error.kind == .unauthorized {
                state.withLock { $0.lastError = error.message }
                if let token = await renewToken() {
                    credentials.replace(with: token)
                    continue
                }
                logger.warning("replica.sync.refused", metadata: ["primary": "\(primaryURL)", "error": "\(error)"])
                await CancellableSleep.sleep(for: .seconds(5))
            } catch {
                if Task.isCancelled { return }
                state.withLock { $0.lastError = "\(error)" }
                logger.warning("replica.sync.failed", metadata: ["primary": "\(primaryURL)", "error": "\(error)"])
                await CancellableSleep.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    private func caughtUp(at position: ReplicationPosition) {
        state.withLock { state in
            state.syncs += 1
            state.lastCaughtUp = .now
            state.lastError = nil
            state.primaryPosition = max(state.primaryPosition ?? position, position)
        }
        waiters.reached(position)
        synced.reached(position)
    }

    /// Records a position the primary reported (a forwarded write's answer).
    func heard(of position: ReplicationPosition) {
        state.withLock { state in
            state.primaryPosition = max(state.primaryPosition ?? position, position)
        }
    }

    /// Waits until the replica has applied `target` (true), or `timeout` passes (false).
    public func waitUntilApplied(_ target: ReplicationPosition, timeout: Duration) async -> Bool {
        await waiters.wait(for: target, timeout: timeout) { [replica] in replica.position }
    }

    /// Waits (up to `timeout`) for the first pull since opening to reach the primary's end; true
    /// when it did. Reads wait for this so a replica opened after a while is not served stale.
    func waitUntilSynced(timeout: Duration) async -> Bool {
        await synced.wait(for: ReplicationPosition(generation: 0, frame: 0), timeout: timeout) { [self] in
            state.withLock { $0.syncs > 0 } ? replica.position : nil
        }
    }

    /// The replica's state for the stats endpoint.
    var status: Status {
        let position = replica.position
        return state.withLock { state in
            Status(
                primaryURL: primaryURL.absoluteString, generation: position?.generation, frame: position?.frame,
                primaryFrame: state.primaryPosition?.frame,
                lagFrames: {
                    guard let position, let primary = state.primaryPosition,
                        primary.generation == position.generation
                    else { return nil }
                    return primary.frame > position.frame ? primary.frame - position.frame : 0
                }(),
                millisecondsSinceCaughtUp: state.lastCaughtUp.map {
                    let elapsed = ContinuousClock.now - $0
                    return elapsed.wholeMilliseconds
                },
                lastError: state.lastError)
        }
    }
}

/// Tasks waiting for a replica to reach a position, woken as soon as it applies it.
final class PositionWaiters: Sendable {
    private struct Waiter {
        let target: ReplicationPosition
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var waiters: [UInt64: Waiter] = [:]
        var next: UInt64 = 0
        var reached: ReplicationPosition?
        var closed = false
        /// Waits whose time ran out before they were registered.
        var expired: Set<UInt64> = []
    }

    private let state = Mutex(State())

    /// The replica is at `position`: wake everyone waiting for it or less.
    func reached(_ position: ReplicationPosition) {
        let ready: [Waiter] = state.withLock { state in
            state.reached = max(state.reached ?? position, position)
            let done = state.waiters.filter { position >= $0.value.target }
            for key in done.keys { state.waiters[key] = nil }
            return Array(done.values)
        }
        for waiter in ready { waiter.continuation.resume(returning: true) }
    }

    /// Wakes every waiter with false; later waits return false at once.
    func close() {
        let all = state.withLock { state in
            state.closed = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in all { waiter.continuation.resume(returning: false) }
    }

    /// Waits until `target` is reached (true) or `timeout` passes (false); `current` reads the
    /// replica's position.
    func wait(
        for target: ReplicationPosition, timeout: Duration, current: @escaping @Sendable () -> ReplicationPosition?
    ) async -> Bool {
        if let position = current(), position >= target { return true }
        let id = state.withLock { state -> UInt64 in
            state.next += 1
            return state.next
        }
        return await withTaskGroup(of: Bool.self) { group in
            // The timer: when it fires (or the caller is cancelled), the wait ends with false.
            group.addTask {
                await CancellableSleep.sleep(for: timeout)
                self.expire(id)
                return false
            }
            group.addTask {
                await withCheckedContinuation { continuation in
                    let now: Bool? = self.state.withLock { state in
                        if state.closed || state.expired.contains(id) { return false }
                        if let position = current(), position >= target { return true }
                        state.waiters[id] = Waiter(target: target, continuation: continuation)
                        return nil
                    }
                    if let now { continuation.resume(returning: now) }
                }
            }
            let first = await group.next() ?? false
            group.cancelAll()
            _ = await group.next()
            state.withLock { _ = $0.expired.remove(id) }
            return first
        }
    }

    /// Ends wait `id` with false (or marks it expired if it is not registered yet).
    private func expire(_ id: UInt64) {
        let waiter = state.withLock { state in
            guard let waiter = state.waiters.removeValue(forKey: id) else {
                state.expired.insert(id)
                return nil as Waiter?
            }
            return waiter
        }
        waiter?.continuation.resume(returning: false)
    }
}

/// The node's replica followers, a service: every replica the node holds follows its primary in a
/// child task of `run()`, so the follower's lifetime is the service's. A replica opened before the
/// service runs waits for it; a closed replica ends its follower. Run by the node's `application`
/// (one application per node: once `run()` has ended, the node follows no replica again).
public final class ReplicaFollowers: Service, Sendable {
    private let requests: AsyncStream<ReplicaCopy>
    private let continuation: AsyncStream<ReplicaCopy>.Continuation
    private let running = Atomic<Bool>(false)

    init() {
        (requests, continuation) = AsyncStream.makeStream(of: ReplicaCopy.self)
    }

    func follow(_ copy: ReplicaCopy) {
        continuation.yield(copy)
    }

    /// No more followers (the node is shutting down).
    func finish() {
        continuation.finish()
    }

    /// Runs every follower until a graceful shutdown or cancellation (then they are cancelled).
    public func run() async {
        guard running.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else {
            // A second application of the same node: the first runs the followers.
            try? await gracefulShutdown()
            return
        }
        await withDiscardingTaskGroup { group in
            for await copy in requests.cancelOnGracefulShutdown() {
                group.addTask { await copy.follow() }
            }
            group.cancelAll()
        }
    }
}
