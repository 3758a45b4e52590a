#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The replica's redo log: the pages of the batch being applied, written (and optionally synced)
/// before the database file is touched, so a crash in the middle of an apply is finished at the
/// next open. Its header is the intent record: the position the batch reaches.
///
/// The file stays open and is never truncated (truncating and rewriting it per batch costs ext4
/// flushes); a batch is retired by zeroing the magic.
final class RedoLog {
    static let magic: UInt32 = 0x4452_4853  // "SHRD"
    static let headerSize = 64
    static let version: UInt32 = 3

    struct Record {
        let from: ReplicationPosition
        let batch: PageBatch
    }

    private let file: PosixFile

    init(path: String) throws {
        file = try PosixFile(path: path, flags: O_RDWR | O_CREAT)
    }

    /// Writes a batch that moves the replica from `from`; syncs it if `durable`.
    ///
    /// Layout: a 64-byte header, then the batch's frames exactly as received.
    func write(_ batch: PageBatch, from: ReplicationPosition, durable: Bool) throws {
        let count = batch.framesConsumed
        let checksum = batch.withConsumedFrames { BulkChecksum.of($0) }
        var header = [UInt8](repeating: 0, count: Self.headerSize)
        header.withUnsafeMutableBytes { raw in
            raw.storeLittleEndian(Self.magic, at: 0)
            raw.storeLittleEndian(Self.version, at: 4)
            raw.storeLittleEndian(batch.target.generation, at: 8)
            raw.storeLittleEndian(batch.target.frame, at: 16)
            raw.storeLittleEndian(from.frame, at: 24)
            raw.storeLittleEndian(UInt32(count), at: 32)
            raw.storeLittleEndian(checksum, at: 40)
            raw.storeLittleEndian(
                CRC32.checksum(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(raw)[0..<48])), at: 48)
        }
        try batch.withConsumedFrames { try file.write($0, at: Int64(Self.headerSize)) }
        try file.write(header, at: 0)
        if durable { try file.syncData() }
    }

    /// The batch recorded in the log, if the log holds a complete, valid one.
    func read() throws -> Record? {
        let header = try file.read(count: Self.headerSize, at: 0)
        guard header.count == Self.headerSize else { return nil }
        return try header.withUnsafeBytes { raw -> Record? in
            guard raw.littleEndianUInt32(at: 0) == Self.magic, raw.littleEndianUInt32(at: 4) == Self.version,
                CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<48])) == raw.littleEndianUInt32(at: 48)
            else { return nil }
            let generation = raw.littleEndianUInt64(at: 8)
            let target = raw.littleEndianUInt64(at: 16)
            let fromFrame = raw.littleEndianUInt64(at: 24)
            let count = Int(raw.littleEndianUInt32(at: 32))
            let frames = try file.read(count: count * WALFormat.frameSize, at: Int64(Self.headerSize))
            guard count > 0, frames.count == count * WALFormat.frameSize,
                frames.withUnsafeBytes({ BulkChecksum.of($0) }) == raw.littleEndianUInt64(at: 40)
            else { return nil }
            let chunk = try FrameChunk(generation: generation, firstFrame: fromFrame + 1, bytes: frames)
            guard let batch = try PageBatch(chunk), batch.target.frame == target else { return nil }
            return Record(from: ReplicationPosition(generation: generation, frame: fromFrame), batch: batch)
        }
    }

    /// Retires the recorded batch (no sync needed: a stale batch never reaches past the position).
    func invalidate() throws {
        try file.write([0, 0, 0, 0], at: 0)
    }
}

/// The replica's persisted position: two checksummed slots written alternately, so a torn write
/// always leaves the previous position readable.
final class PositionFile {
    static let magic: UInt32 = 0x5350_4853  // "SHPS"
    static let slotSize = 64

    private let file: PosixFile
    private var sequence: UInt64 = 0

    init(path: String) throws {
        file = try PosixFile(path: path, flags: O_RDWR | O_CREAT)
    }

    /// The newest valid position, or nil if none was ever written.
    func read() throws -> ReplicationPosition? {
        var best: (UInt64, ReplicationPosition)?
        for slot in 0..<2 {
            let bytes = try file.read(count: Self.slotSize, at: Int64(slot * Self.slotSize))
            guard bytes.count == Self.slotSize else { continue }
            bytes.withUnsafeBytes { raw in
                guard raw.littleEndianUInt32(at: 0) == Self.magic,
                    CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<32])) == raw.littleEndianUInt32(at: 32)
                else { return }
                let sequence = raw.littleEndianUInt64(at: 8)
                let position = ReplicationPosition(
                    generation: raw.littleEndianUInt64(at: 16), frame: raw.littleEndianUInt64(at: 24))
                if best == nil || sequence > best!.0 { best = (sequence, position) }
            }
        }
        sequence = best?.0 ?? 0
        return best?.1
    }

    /// Records `position` in the older slot; syncs if `durable`.
    func write(_ position: ReplicationPosition, durable: Bool) throws {
        sequence += 1
        var bytes = [UInt8](repeating: 0, count: Self.slotSize)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeLittleEndian(Self.magic, at: 0)
            raw.storeLittleEndian(UInt32(1), at: 4)
            raw.storeLittleEndian(sequence, at: 8)
            raw.storeLittleEndian(position.generation, at: 16)
            raw.storeLittleEndian(position.frame, at: 24)
            raw.storeLittleEndian(
                CRC32.checksum(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(raw)[0..<32])), at: 32)
        }
        try file.write(bytes, at: Int64(Int(sequence % 2) * Self.slotSize))
        if durable { try file.syncData() }
    }

    /// Forgets every position (before a new bootstrap).
    func clear() throws {
        try file.write([UInt8](repeating: 0, count: 2 * Self.slotSize), at: 0)
        try file.syncData()
        sequence = 0
    }
}
