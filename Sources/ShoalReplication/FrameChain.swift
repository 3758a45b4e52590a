/// Checks that frames arriving at a replica were not corrupted on the way (an integrity check, not
/// authentication: TLS and the token are what keep an attacker out): every frame carries the
/// WAL's salts and a checksum that SQLite chains from the frame before it (over its header's first
/// 8 bytes and its page), so a frame is verified against the one before. The chain's state is the
/// last verified frame; without one (the first frame of a generation, or the first after the
/// replicator started or bootstrapped) the first frame of a chunk seeds it unverified.
public struct FrameChain: Sendable, Equatable {
    /// The generation and number of the frame the state is after.
    var generation: UInt64
    var frame: UInt64
    var salts: (UInt32, UInt32)
    var checksum: (UInt32, UInt32)
    /// The byte order of the checksums, once a pair of frames has shown it.
    var bigEndian: Bool?

    /// Chains are equal when they stand after the same frame with the same checksum state.
    public static func == (lhs: FrameChain, rhs: FrameChain) -> Bool {
        lhs.generation == rhs.generation && lhs.frame == rhs.frame && lhs.salts == rhs.salts
            && lhs.checksum == rhs.checksum && lhs.bigEndian == rhs.bigEndian
    }

    /// A frame that breaks the chain: its index in the chunk, and what is wrong.
    public struct Break: Error {
        /// The frame's index in the chunk.
        public let index: Int
        /// What is wrong with it.
        public let error: ReplicationError
    }

    /// Whether `chunk` continues `chain` (its first frame is checked against the chain).
    static func continues(_ chain: FrameChain?, _ chunk: FrameChunk) -> Bool {
        guard let chain else { return false }
        return chain.generation == chunk.generation && chain.frame + 1 == chunk.firstFrame
    }

    /// Verifies `chunk` against `chain` (the state after the frame before it, if known) and returns
    /// the state after its last frame; throws `Break` at the first frame that breaks it.
    public static func verify(_ chunk: FrameChunk, after chain: FrameChain?) throws(Break) -> FrameChain {
        do {
            return try check(chunk, after: chain)
        } catch let error as Break {
            throw error
        } catch {
            throw Break(index: 0, error: .invalidFrames("\(error)"))
        }
    }

    private static func check(_ chunk: FrameChunk, after chain: FrameChain?) throws -> FrameChain {
        try chunk.bytes.withUnsafeBytes { raw in
            func frame(_ index: Int) -> UnsafeRawBufferPointer {
                UnsafeRawBufferPointer(
                    rebasing: raw[(index * WALFormat.frameSize)..<((index + 1) * WALFormat.frameSize)])
            }
            var state: FrameChain
            var next = 0
            if let chain, continues(chain, chunk) {
                state = chain
            } else {
                let first = frame(0)
                state = FrameChain(
                    generation: chunk.generation, frame: chunk.firstFrame,
                    salts: (first.bigEndianUInt32(at: 8), first.bigEndianUInt32(at: 12)),
                    checksum: (first.bigEndianUInt32(at: 16), first.bigEndianUInt32(at: 20)), bigEndian: nil)
                next = 1
            }
            while next < chunk.count {
                let bytes = frame(next)
                let number = chunk.firstFrame + UInt64(next)
                guard bytes.bigEndianUInt32(at: 8) == state.salts.0, bytes.bigEndianUInt32(at: 12) == state.salts.1
                else {
                    throw Break(
                        index: next,
                        error: .invalidFrames(
                            "frame \(number) of generation \(chunk.generation) belongs to another WAL (its salts differ); the source sent frames that are not its log's"
                        ))
                }
                let stored = (bytes.bigEndianUInt32(at: 16), bytes.bigEndianUInt32(at: 20))
                let orders = state.bigEndian.map { [$0] } ?? [false, true]
                guard
                    let order = orders.first(where: { order in
                        let sum = Self.checksum(of: bytes, bigEndian: order, seed: state.checksum)
                        return sum == stored
                    })
                else {
                    throw Break(
                        index: next,
                        error: .invalidFrames(
                            "frame \(number) of generation \(chunk.generation) fails its checksum: it was corrupted on the way; nothing of it was applied"
                        ))
                }
                state.bigEndian = order
                state.checksum = stored
                state.frame = number
                next += 1
            }
            return state
        }
    }

    private static func checksum(
        of frame: UnsafeRawBufferPointer, bigEndian: Bool, seed: (UInt32, UInt32)
    ) -> (UInt32, UInt32) {
        let header = WALFormat.checksum(
            UnsafeRawBufferPointer(rebasing: frame[0..<8]), bigEndian: bigEndian, seed: seed)
        return WALFormat.checksum(
            UnsafeRawBufferPointer(rebasing: frame[WALFormat.frameHeaderSize...]), bigEndian: bigEndian, seed: header)
    }
}
