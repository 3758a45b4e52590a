/// The pages one apply writes: the newest image of each page among the complete transactions at
/// the start of a frame chunk, pages beyond the final database size dropped, sorted by page number.
/// The images stay in the received frames; nothing is copied.
struct PageBatch {
    /// The position the replica reaches once the batch is applied.
    let target: ReplicationPosition
    /// The database size in pages after the last transaction.
    let databaseSize: UInt32
    /// Page numbers, ascending.
    let pageNumbers: [UInt32]
    /// Where each page's image starts in `frames`, in `pageNumbers` order.
    let imageOffsets: [Int]
    /// The received frames the images live in (only the first `framesConsumed` matter).
    let frames: [UInt8]
    /// The number of the first frame.
    let firstFrame: UInt64

    /// Frames consumed from the chunk (up to and including its last commit frame).
    var framesConsumed: Int { Int(target.frame - firstFrame + 1) }

    /// Builds the batch for the complete transactions at the start of `chunk`; nil if the chunk
    /// holds no commit frame.
    init?(_ chunk: FrameChunk) throws {
        var lastCommit = -1
        var databaseSize: UInt32 = 0
        var newest: [UInt32: Int] = [:]
        try chunk.bytes.withUnsafeBytes { raw in
            var pending: [(UInt32, Int)] = []
            for index in 0..<chunk.count {
                let frame = UnsafeRawBufferPointer(
                    rebasing: raw[(index * WALFormat.frameSize)..<((index + 1) * WALFormat.frameSize)])
                let page = WALFormat.pageNumber(frame)
                guard page != 0 else {
                    throw ReplicationError.invalidFrames(
                        "frame \(chunk.firstFrame + UInt64(index)) of generation \(chunk.generation) has page number 0")
                }
                pending.append((page, index))
                let commit = WALFormat.commitSize(frame)
                if commit != 0 {
                    for (page, index) in pending { newest[page] = index }
                    pending.removeAll(keepingCapacity: true)
                    lastCommit = index
                    databaseSize = commit
                }
            }
        }
        guard lastCommit >= 0 else { return nil }
        let pages = newest.keys.filter { $0 <= databaseSize }.sorted()
        target = ReplicationPosition(generation: chunk.generation, frame: chunk.firstFrame + UInt64(lastCommit))
        self.databaseSize = databaseSize
        pageNumbers = pages
        imageOffsets = pages.map { newest[$0]! * WALFormat.frameSize + WALFormat.frameHeaderSize }
        frames = chunk.bytes
        firstFrame = chunk.firstFrame
    }

    /// Calls `body` with the image of the page at `slot`.
    func withImage<T>(at slot: Int, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try frames.withUnsafeBytes { raw in
            try body(
                UnsafeRawBufferPointer(rebasing: raw[imageOffsets[slot]..<(imageOffsets[slot] + WALFormat.pageSize)]))
        }
    }

    /// The bytes of the consumed frames.
    func withConsumedFrames<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try frames.withUnsafeBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[0..<(framesConsumed * WALFormat.frameSize)]))
        }
    }
}

/// The SQLite database header: the check that a file can replicate, and the fields a replica patches on page 1.
public enum DatabaseHeader {
    /// Patches page 1 so the replica stays in rollback-journal mode, its change counter moves past
    /// `previousCounter` (so every reader drops its cache), and its in-header size is trusted.
    static func patch(page1: inout [UInt8], previousCounter: UInt32, databaseSize: UInt32) {
        page1[18] = 1
        page1[19] = 1
        let counter = previousCounter &+ 1
        page1.storeBigEndian(counter, at: 24)
        page1.storeBigEndian(databaseSize, at: 28)
        page1.storeBigEndian(counter, at: 92)
    }

    /// Checks that `header` starts a SQLite database with 4096-byte pages.
    static func validate(_ header: [UInt8], source: String) throws {
        if let problem = problem(header) { throw ReplicationError.invalidBase("\(source) \(problem)") }
    }

    /// What keeps `header` (a file's first 100 bytes) from starting a database that replicates,
    /// said after the file's name ("is not a SQLite database"), or nil if nothing does.
    public static func problem(_ header: [UInt8]) -> String? {
        guard header.count >= 100, Array(header[0..<16]) == Array("SQLite format 3\0".utf8) else {
            return "is not a SQLite database"
        }
        let pageSize = Int(header[16]) << 8 | Int(header[17])
        guard pageSize == WALFormat.pageSize else {
            return "has \(pageSize)-byte pages; only \(WALFormat.pageSize)-byte pages replicate"
        }
        return nil
    }
}
