/// The SQLite WAL file format: a 32-byte header, then frames of a 24-byte header and one page.
///
/// Within a generation, frame n of the WAL is frame n of Shoal's replication log, and frames travel
/// to replicas byte for byte as they sit in the WAL (the libSQL sync format).
public enum WALFormat {
    /// The only page size Shoal replicates (the libSQL sync protocol requires it).
    public static let pageSize = 4096
    /// Bytes in the WAL file header.
    public static let headerSize = 32
    /// Bytes in a frame header.
    public static let frameHeaderSize = 24
    /// Bytes in one frame: header and page.
    public static let frameSize = frameHeaderSize + pageSize

    static let magicLittleEndian: UInt32 = 0x377f_0682
    static let magicBigEndian: UInt32 = 0x377f_0683
    static let version: UInt32 = 3_007_000

    /// The byte offset of frame `n` (1-based) in a WAL file.
    public static func offset(ofFrame n: UInt64) -> Int64 {
        Int64(headerSize) + Int64(n - 1) * Int64(frameSize)
    }

    /// A parsed, checksum-verified WAL header.
    struct Header: Equatable {
        let bigEndianChecksums: Bool
        let pageSize: Int
        let checkpointSequence: UInt32
        let salt1: UInt32
        let salt2: UInt32
        let checksum: (UInt32, UInt32)

        static func == (lhs: Header, rhs: Header) -> Bool {
            lhs.salt1 == rhs.salt1 && lhs.salt2 == rhs.salt2 && lhs.checksum == rhs.checksum
                && lhs.pageSize == rhs.pageSize
        }

        /// Parses and verifies a header; nil if it is not a valid WAL header.
        init?(_ bytes: UnsafeRawBufferPointer) {
            guard bytes.count >= WALFormat.headerSize else { return nil }
            let magic = bytes.bigEndianUInt32(at: 0)
            guard magic == WALFormat.magicLittleEndian || magic == WALFormat.magicBigEndian,
                bytes.bigEndianUInt32(at: 4) == WALFormat.version
            else { return nil }
            bigEndianChecksums = magic & 1 == 1
            pageSize = Int(bytes.bigEndianUInt32(at: 8))
            checkpointSequence = bytes.bigEndianUInt32(at: 12)
            salt1 = bytes.bigEndianUInt32(at: 16)
            salt2 = bytes.bigEndianUInt32(at: 20)
            let computed = WALFormat.checksum(
                UnsafeRawBufferPointer(rebasing: bytes[0..<24]), bigEndian: bigEndianChecksums, seed: (0, 0))
            guard computed.0 == bytes.bigEndianUInt32(at: 24), computed.1 == bytes.bigEndianUInt32(at: 28) else {
                return nil
            }
            checksum = computed
        }
    }

    /// SQLite's cumulative WAL checksum over 8-byte units (`walChecksumBytes`).
    static func checksum(
        _ bytes: UnsafeRawBufferPointer, bigEndian: Bool, seed: (UInt32, UInt32)
    ) -> (UInt32, UInt32) {
        var s1 = seed.0
        var s2 = seed.1
        var offset = 0
        let count = bytes.count
        if bigEndian {
            while offset < count {
                s1 = s1 &+ bytes.bigEndianUInt32(at: offset) &+ s2
                s2 = s2 &+ bytes.bigEndianUInt32(at: offset + 4) &+ s1
                offset += 8
            }
        } else {
            while offset < count {
                s1 = s1 &+ bytes.littleEndianUInt32(at: offset) &+ s2
                s2 = s2 &+ bytes.littleEndianUInt32(at: offset + 4) &+ s1
                offset += 8
            }
        }
        return (s1, s2)
    }

    /// The page number in a frame header.
    @inline(__always)
    static func pageNumber(_ frame: UnsafeRawBufferPointer) -> UInt32 {
        frame.bigEndianUInt32(at: 0)
    }

    /// The database size in pages after commit, or 0 if the frame is not a commit frame.
    @inline(__always)
    static func commitSize(_ frame: UnsafeRawBufferPointer) -> UInt32 {
        frame.bigEndianUInt32(at: 4)
    }
}

/// Finds the committed frames of a WAL the way SQLite's recovery does: frames whose salts match the
/// header and whose cumulative checksums hold, up to the last commit frame before the first bad one.
struct WALScanner {
    /// The header the scan started from, nil if the WAL is empty or its header invalid.
    private(set) var header: WALFormat.Header?
    /// The last valid commit frame: the committed frame count.
    private(set) var committedFrames: UInt64 = 0
    /// The cumulative checksum after the last commit frame; frames after it are checked again on
    /// the next scan, because a writer may overwrite an uncommitted tail.
    private var committedChecksum: (UInt32, UInt32) = (0, 0)
    private var validFrames: UInt64 = 0
    private var running: (UInt32, UInt32) = (0, 0)

    /// Scans from where the previous scan stopped, reading through `read(offset, count)`, which
    /// returns fewer bytes at end of file. Restarts if the header changed (a new WAL).
    mutating func scan(fileSize: Int64, read: (Int64, Int) throws -> [UInt8]) throws {
        let headerBytes = try read(0, WALFormat.headerSize)
        let current = headerBytes.withUnsafeBytes { WALFormat.Header($0) }
        guard let current, current.pageSize == WALFormat.pageSize else {
            self = WALScanner()
            return
        }
        if header != current {
            self = WALScanner()
            header = current
            committedChecksum = current.checksum
        }
        validFrames = committedFrames
        running = committedChecksum
        let chunkFrames = 256
        while true {
            let next = validFrames + 1
            let offset = WALFormat.offset(ofFrame: next)
            if offset + Int64(WALFormat.frameSize) > fileSize { return }
            let available = Int((fileSize - offset) / Int64(WALFormat.frameSize))
            let count = min(chunkFrames, available)
            let bytes = try read(offset, count * WALFormat.frameSize)
            let whole = bytes.count / WALFormat.frameSize
            let stop = bytes.withUnsafeBytes { raw -> Bool in
                for index in 0..<whole {
                    let frame = UnsafeRawBufferPointer(
                        rebasing: raw[(index * WALFormat.frameSize)..<((index + 1) * WALFormat.frameSize)])
                    guard accept(frame) else { return true }
                }
                return false
            }
            if stop || whole < count { return }
        }
    }

    /// Verifies one frame and advances; false at the first frame that does not belong.
    private mutating func accept(_ frame: UnsafeRawBufferPointer) -> Bool {
        guard let header else { return false }
        guard WALFormat.pageNumber(frame) != 0,
            frame.bigEndianUInt32(at: 8) == header.salt1,
            frame.bigEndianUInt32(at: 12) == header.salt2
        else { return false }
        var sum = WALFormat.checksum(
            UnsafeRawBufferPointer(rebasing: frame[0..<8]), bigEndian: header.bigEndianChecksums, seed: running)
        sum = WALFormat.checksum(
            UnsafeRawBufferPointer(rebasing: frame[WALFormat.frameHeaderSize...]),
            bigEndian: header.bigEndianChecksums, seed: sum)
        guard sum.0 == frame.bigEndianUInt32(at: 16), sum.1 == frame.bigEndianUInt32(at: 20) else { return false }
        running = sum
        validFrames += 1
        if WALFormat.commitSize(frame) != 0 {
            committedFrames = validFrames
            committedChecksum = sum
        }
        return true
    }
}
