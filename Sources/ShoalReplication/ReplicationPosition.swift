/// Where a replica stands: the base of `generation` with its frames `1...frame` applied.
public struct ReplicationPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The generation (starts at 1).
    public var generation: UInt64
    /// The last applied frame of the generation (0: just its base).
    public var frame: UInt64

    /// Creates a position.
    public init(generation: UInt64, frame: UInt64) {
        self.generation = generation
        self.frame = frame
    }

    /// Orders by generation, then frame.
    public static func < (lhs: ReplicationPosition, rhs: ReplicationPosition) -> Bool {
        (lhs.generation, lhs.frame) < (rhs.generation, rhs.frame)
    }

    /// `G/F`.
    public var description: String { "\(generation)/\(frame)" }
}

/// Consecutive whole WAL frames of one generation, as they travel on the wire.
public struct FrameChunk: Sendable, Equatable {
    /// The generation the frames belong to.
    public let generation: UInt64
    /// The number of the first frame (1-based).
    public let firstFrame: UInt64
    /// The frames, `WALFormat.frameSize` bytes each.
    public let bytes: [UInt8]

    /// Wraps frames; `bytes` must hold whole frames.
    public init(generation: UInt64, firstFrame: UInt64, bytes: [UInt8]) throws {
        guard firstFrame >= 1 else { throw ReplicationError.invalidFrames("frame numbers start at 1") }
        guard !bytes.isEmpty, bytes.count % WALFormat.frameSize == 0 else {
            throw ReplicationError.invalidFrames(
                "a frame chunk must hold whole \(WALFormat.frameSize)-byte frames, got \(bytes.count) bytes")
        }
        self.generation = generation
        self.firstFrame = firstFrame
        self.bytes = bytes
    }

    /// The number of frames.
    public var count: Int { bytes.count / WALFormat.frameSize }

    /// The number of the last frame.
    public var lastFrame: UInt64 { firstFrame + UInt64(count) - 1 }
}

/// The answer to a request for frames.
public enum FrameRead: Sendable, Equatable {
    /// Frames starting at the requested one (possibly fewer than asked).
    case frames(FrameChunk)
    /// No frame at or after the requested one exists in the requested generation: it ends at
    /// `lastFrame`, and the source is now at `currentGeneration` (higher if the requested one was
    /// rolled).
    case upToDate(currentGeneration: UInt64, lastFrame: UInt64)
}
