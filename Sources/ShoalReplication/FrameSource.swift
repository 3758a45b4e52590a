import ShoalSQLite

/// Where a replicator pulls from: a primary (in process, or over HTTP in the node and the client).
public protocol FrameSource: Sendable {
    /// The source's current generation.
    func currentGeneration() async throws -> UInt64

    /// Writes the base file of `generation` to `path`; throws `generationGone` if it is not the
    /// current one any more.
    func exportBase(generation: UInt64, to path: String) async throws

    /// Up to `maxFrames` committed frames of `generation` from `start`. With `wait`, a source that
    /// has nothing new may hold the request up to that long for frames to arrive (a long-poll).
    func frames(generation: UInt64, start: UInt64, maxFrames: Int, wait: Duration?) async throws -> FrameRead
}

/// A frame source over a `PrimaryLog` in the same process.
public struct PrimaryLogSource: FrameSource {
    /// The log frames come from.
    public let log: PrimaryLog
    /// Where the log's files are read (never Swift's cooperative pool).
    public let executor: BlockingExecutor

    /// Wraps a primary log.
    public init(log: PrimaryLog, executor: BlockingExecutor = .shared) {
        self.log = log
        self.executor = executor
    }

    /// The log's generation.
    public func currentGeneration() async throws -> UInt64 {
        log.generation
    }

    /// Copies the current base file.
    public func exportBase(generation: UInt64, to path: String) async throws {
        let log = self.log
        try await executor.run { try log.exportBase(generation: generation, to: path) }
    }

    /// Reads frames, waiting for new ones up to `wait` when the log has none yet.
    public func frames(generation: UInt64, start: UInt64, maxFrames: Int, wait: Duration?) async throws -> FrameRead {
        let log = self.log
        let read = try await executor.run {
            try log.readFrames(generation: generation, start: start, maxFrames: maxFrames)
        }
        guard let wait, case .upToDate(let current, _) = read, current == generation else { return read }
        _ = await log.waitForFrame(after: start - 1, generation: generation, timeout: wait)
        return try await executor.run { try log.readFrames(generation: generation, start: start, maxFrames: maxFrames) }
    }
}
