import Foundation
import ShoalSQLite
import Synchronization

/// Keeps a replica current by pulling frames from a source: bootstraps when the replica is empty or
/// too far behind, follows generation rolls, and applies complete transactions.
public final class Replicator: Sendable {
    /// How the replicator pulls.
    public struct Configuration: Sendable {
        /// Frames asked for per request.
        public var framesPerRequest: Int
        /// How long `run()` long-polls the source when the replica is current.
        public var longPoll: Duration
        /// Where base files are staged while downloading (defaults to the replica's directory).
        public var stagingDirectory: String?
        /// Called after every change of the replica's position (an applied batch, a bootstrap, a
        /// generation move), before the replicator asks for more: waiters can wake at once.
        public var onPosition: (@Sendable (ReplicationPosition) -> Void)?
        /// Called when the replica moves past a generation (`generation`, its `lastFrame`), before
        /// anything of the next one is applied: the replica's file is then the next one's base.
        public var onGenerationEnd: (@Sendable (_ generation: UInt64, _ lastFrame: UInt64) throws -> Void)?
        /// Called with every chunk of frames the source sent once its frames are verified, before
        /// they are applied (a replica node archives them here, so it never keeps a refused frame).
        public var onVerifiedFrames: (@Sendable (FrameChunk) throws -> Void)?
        /// Where applying, bootstrapping and `onGenerationEnd` run (file and SQLite work, never on
        /// Swift's cooperative pool).
        public var executor: BlockingExecutor

        /// Defaults: 1,024 frames per request, 5 s long-polls, the process's shared executor.
        public init(
            framesPerRequest: Int = 1024, longPoll: Duration = .seconds(5), stagingDirectory: String? = nil,
            onPosition: (@Sendable (ReplicationPosition) -> Void)? = nil,
            onGenerationEnd: (@Sendable (_ generation: UInt64, _ lastFrame: UInt64) throws -> Void)? = nil,
            onVerifiedFrames: (@Sendable (FrameChunk) throws -> Void)? = nil,
            executor: BlockingExecutor = .shared
        ) {
            self.onVerifiedFrames = onVerifiedFrames
            self.executor = executor
            self.framesPerRequest = framesPerRequest
            self.longPoll = longPoll
            self.stagingDirectory = stagingDirectory
            self.onPosition = onPosition
            self.onGenerationEnd = onGenerationEnd
        }
    }

    /// What one `sync()` did.
    public struct SyncResult: Sendable, Equatable {
        /// Where the replica is now.
        public var position: ReplicationPosition
        /// Frames applied.
        public var framesApplied: Int
        /// Frame bytes received.
        public var bytesReceived: Int
        /// Whether the replica was (re)bootstrapped from a base file.
        public var bootstrapped: Bool
    }

    /// The replica kept current.
    public let replica: Replica
    /// The source pulled from.
    public let source: any FrameSource
    /// The configuration in force.
    public let configuration: Configuration
    /// Frames received after the last commit frame, kept until their transaction completes.
    private let pending = Mutex<FrameChunk?>(nil)
    /// The checksum chain after the last frame received (applied or pending): each new frame is
    /// verified against it before anything is applied.
    private let chain = Mutex<FrameChain?>(nil)

    /// Creates a replicator; nothing happens until `sync()` or `run()`.
    public init(replica: Replica, source: any FrameSource, configuration: Configuration = Configuration()) {
        self.replica = replica
        self.source = source
        self.configuration = configuration
    }

    /// Pulls until the replica has everything the source has committed.
    @discardableResult
    public func sync() async throws -> SyncResult {
        try await pull(wait: nil)
    }

    /// Syncs, then keeps syncing with long-polls until the task is cancelled (then it throws
    /// `CancellationError`).
    public func run() async throws {
        while true {
            try await pull(wait: configuration.longPoll)
        }
    }

    /// Pulls until current. With `wait`, the first request that finds nothing new long-polls once.
    @discardableResult
    public func pull(wait: Duration?) async throws -> SyncResult {
        var result = SyncResult(
            position: replica.position ?? ReplicationPosition(generation: 0, frame: 0), framesApplied: 0,
            bytesReceived: 0, bootstrapped: false)
        var mayWait = wait
        while true {
            try Task.checkCancellation()
            guard let position = replica.position else {
                try await bootstrap(&result)
                continue
            }
            let start = position.frame + 1 + UInt64(pending.withLock { $0?.count ?? 0 })
            let read: FrameRead
            do {
                read = try await source.frames(
                    generation: position.generation, start: start, maxFrames: configuration.framesPerRequest,
                    wait: mayWait)
            } catch ReplicationError.kindGenerationGone {
                try await bootstrap(&result)
                continue
            }
            mayWait = nil
            switch read {
            case .frames(let chunk):
                result.bytesReceived += chunk.bytes.count
                let before = chain.withLock { $0 }
                let verified: FrameChain
                do throws(FrameChain.Break) {
                    verified = try FrameChain.verify(chunk, after: before)
                } catch {
                    // The frame after the replica's last one is not the one it built on: the
                    // source's log diverged (a primary that lost its last commits, a restored
                    // WAL). Retrying would fail for ever; start over from its base.
                    guard error.index == 0, FrameChain.continues(before, chunk) else { throw error.error }
                    try await bootstrap(&result)
                    continue
                }
                try Task.checkCancellation()
                if let onVerifiedFrames = configuration.onVerifiedFrames {
                    try await configuration.executor.run { try onVerifiedFrames(chunk) }
                }
                let combined = try combine(chunk)
                let replica = self.replica
                let applied = try await configuration.executor.run { try replica.apply(combined) }
                result.framesApplied += applied.framesApplied
                result.position = applied.position
                if applied.framesApplied > 0 { configuration.onPosition?(applied.position) }
                let rest = combined.count - applied.framesApplied
                pending.withLock { pending in
                    pending =
                        rest == 0
                        ? nil
                        : try? FrameChunk(
                            generation: combined.generation,
                            firstFrame: combined.firstFrame + UInt64(applied.framesApplied),
                            bytes: Array(combined.bytes[(applied.framesApplied * WALFormat.frameSize)...]))
                }
                chain.withLock { $0 = verified }
            case .upToDate(let current, let lastFrame):
                pending.withLock { $0 = nil }
                if current == position.generation {
                    result.position = position
                    return result
                }
                if position.frame == lastFrame, current > position.generation {
                    let replica = self.replica
                    let onGenerationEnd = configuration.onGenerationEnd
                    try await configuration.executor.run {
                        try replica.advanceGeneration(lastFrameOfCurrent: lastFrame)
                        try onGenerationEnd?(position.generation, lastFrame)
                    }
                    chain.withLock { $0 = nil }
                    result.position = replica.position ?? result.position
                    configuration.onPosition?(result.position)
                } else {
                    // The replica claims frames its generation never had: start over from a base.
                    try await bootstrap(&result)
                }
            }
        }
    }

    /// Joins frames kept from the last request with new ones.
    private func combine(_ chunk: FrameChunk) throws -> FrameChunk {
        guard let kept = pending.withLock({ $0 }) else { return chunk }
        guard kept.generation == chunk.generation, kept.lastFrame + 1 == chunk.firstFrame else { return chunk }
        return try FrameChunk(generation: kept.generation, firstFrame: kept.firstFrame, bytes: kept.bytes + chunk.bytes)
    }

    private func bootstrap(_ result: inout SyncResult) async throws {
        pending.withLock { $0 = nil }
        chain.withLock { $0 = nil }
        let generation = try await source.currentGeneration()
        let staging = (configuration.stagingDirectory ?? replica.directory) + "/base-\(generation).download"
        let replica = self.replica
        do {
            try await source.exportBase(generation: generation, to: staging)
            try await configuration.executor.run {
                defer { try? FileSystem.remove(staging) }
                try replica.bootstrap(generation: generation, baseFile: staging)
            }
        } catch {
            _ = try? await configuration.executor.run { try FileSystem.remove(staging) }
            throw error
        }
        result.bootstrapped = true
        result.position = ReplicationPosition(generation: generation, frame: 0)
        configuration.onPosition?(result.position)
    }
}
