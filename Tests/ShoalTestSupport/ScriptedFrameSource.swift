import Foundation
import ShoalReplication
import Synchronization

/// A frame source that passes calls to a real one, except where a test scripted a fault for the
/// next call of a kind: an error, a shortened or altered answer, another answer, a partial base.
/// Every call is recorded, so a test can say what the replicator asked for.
public final class ScriptedFrameSource: FrameSource {
    /// A call the replicator made.
    public enum Call: Sendable, Equatable {
        case currentGeneration
        case exportBase(generation: UInt64)
        case frames(generation: UInt64, start: UInt64)
    }

    /// What the next call of its kind does instead of (or to) the real answer.
    public enum Fault: Sendable {
        /// `currentGeneration`, `exportBase` or `frames` throws `error`.
        case fail(any Error)
        /// `frames` answers only the first `frames` frames of the real answer.
        case truncate(frames: Int)
        /// `frames` answers the real frames with the byte at `offset` (from the first frame's start)
        /// flipped.
        case flipByte(offset: Int)
        /// `frames` answers `read`.
        case answer(FrameRead)
        /// `exportBase` writes only the first `bytes` bytes of the real base, then throws `error`.
        case partialBase(bytes: Int, then: any Error)
    }

    /// The kinds of call faults are scripted for.
    public enum Kind: Sendable, Hashable {
        case currentGeneration, exportBase, frames
    }

    private let source: any FrameSource
    private let state = Mutex<(faults: [Kind: [Fault]], calls: [Call])>(([:], []))

    /// A source over `source`.
    public init(_ source: any FrameSource) {
        self.source = source
    }

    /// Queues `faults` for the next calls of `kind`, in order.
    public func script(_ kind: Kind, _ faults: Fault...) {
        state.withLock { $0.faults[kind, default: []] += faults }
    }

    /// The calls made so far.
    public var calls: [Call] { state.withLock { $0.calls } }

    /// Faults scripted and not yet used.
    public var unusedFaults: Int { state.withLock { $0.faults.values.reduce(0) { $0 + $1.count } } }

    private func next(_ kind: Kind, _ call: Call) -> Fault? {
        state.withLock { state in
            state.calls.append(call)
            guard var queue = state.faults[kind], !queue.isEmpty else { return nil }
            let fault = queue.removeFirst()
            state.faults[kind] = queue
            return fault
        }
    }

    /// The real source's generation, unless a fault is scripted.
    public func currentGeneration() async throws -> UInt64 {
        if case .fail(let error) = next(.currentGeneration, .currentGeneration) { throw error }
        return try await source.currentGeneration()
    }

    /// The real source's base, unless a fault is scripted.
    public func exportBase(generation: UInt64, to path: String) async throws {
        switch next(.exportBase, .exportBase(generation: generation)) {
        case .fail(let error):
            throw error
        case .partialBase(let bytes, let error):
            try await source.exportBase(generation: generation, to: path)
            let whole = try Data(contentsOf: URL(fileURLWithPath: path))
            try whole.prefix(bytes).write(to: URL(fileURLWithPath: path))
            throw error
        default:
            try await source.exportBase(generation: generation, to: path)
        }
    }

    /// The real source's frames, unless a fault is scripted.
    public func frames(generation: UInt64, start: UInt64, maxFrames: Int, wait: Duration?) async throws -> FrameRead {
        let fault = next(.frames, .frames(generation: generation, start: start))
        if case .fail(let error) = fault { throw error }
        if case .answer(let read) = fault { return read }
        let read = try await source.frames(generation: generation, start: start, maxFrames: maxFrames, wait: wait)
        guard case .frames(let chunk) = read else { return read }
        switch fault {
        case .truncate(let frames):
            let kept = Array(chunk.bytes.prefix(max(1, frames) * WALFormat.frameSize))
            return .frames(try FrameChunk(generation: chunk.generation, firstFrame: chunk.firstFrame, bytes: kept))
        case .flipByte(let offset):
            var bytes = chunk.bytes
            bytes[offset % bytes.count] ^= 0xff
            return .frames(try FrameChunk(generation: chunk.generation, firstFrame: chunk.firstFrame, bytes: bytes))
        default:
            return read
        }
    }
}
