import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ShoalReplication
import ShoalServerKit
import SwiftProtobuf
import Synchronization

/// Turso Sync's pull protocol (`POST /pull-updates`, protobuf), which pyturso and the other SDKs
/// built on Turso's sync engine use to bootstrap and pull. It is served from the same log as
/// `/sync`: a revision names a position of the log, and an answer is the pages that changed since
/// the client's revision, or every page when the revision is not one this log can continue.
extension Node {
    /// The most a long-poll on `/pull-updates` waits, whatever the client asks.
    static let pullUpdatesLongPollCap = 60_000
    /// The largest request body `/pull-updates` reads (the requests clients send are a few dozen
    /// bytes; partial-sync selectors are refused anyway).
    static let pullUpdatesMaxRequestBytes = 64 * 1024

    func addTursoSyncRoutes(_ routes: some RouterMethods<ServerRequestContext>) {
        routes.post("pull-updates") { request, context in
            try await self.pullUpdates(request, context)
        }
    }

    func pullUpdates(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let namespace = try self.namespace(request, context)
        let grant = try await self.grant(context, namespace)
        let pull = try await Self.pullRequest(request)
        let since = pull.clientRevision.isEmpty ? nil : TursoRevision(pull.clientRevision)
        let wait = min(Int(pull.longPollTimeoutMs), Self.pullUpdatesLongPollCap)
        let answerPull = { (database: HostedDatabase) async throws -> PullAnswer in
            try Self.refuseIfBlocked(database)
            try self.checkRegion(grant, database)
            return try await self.pullAnswer(database, since: since, holder: grant.holder(for: namespace))
        }
        var answer = try await store.withDatabase(namespace, answerPull)
        if wait > 0, answer.pages == nil, since != nil {
            // As `/sync?wait_ms=`: the wait holds the log, not the database's lease, and counts
            // against the same caps.
            let ticket = try longPolls.admit(holder: grant.holder(for: namespace), organization: namespace.organization)
            let moved = await answer.waitForMore(.milliseconds(wait))
            ticket.release()
            try store.refuseIfDeleted(namespace)
            if moved { answer = try await store.withDatabase(namespace, answerPull) }
        }
        return try Self.pullResponse(answer)
    }

    /// Decodes a request body, refusing what Shoal does not serve with a message that says so.
    static func pullRequest(_ request: Request) async throws -> Shoal_Tursosync_PullUpdatesRequest {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: pullUpdatesMaxRequestBytes)
        } catch {
            throw NodeError.tooLarge("a /pull-updates request is larger than \(pullUpdatesMaxRequestBytes) bytes")
        }
        let pull: Shoal_Tursosync_PullUpdatesRequest
        do {
            pull = try Shoal_Tursosync_PullUpdatesRequest(serializedBytes: Array(body.readableBytesView))
        } catch {
            throw NodeError.badRequest("the body is not a protobuf PullUpdatesReqProtoBody: \(error)")
        }
        if !pull.serverPagesSelector.isEmpty || !pull.serverQuerySelector.isEmpty || !pull.clientPages.isEmpty {
            throw NodeError.badRequest(
                "partial sync (a page or query selector) is not served here; pull the whole database")
        }
        if pull.logicalUpdates {
            throw NodeError.badRequest("logical (MVCC) updates are not served here; pull pages")
        }
        if !pull.serverRevision.isEmpty, pull.serverRevision != pull.clientRevision {
            throw NodeError.badRequest(
                "only the newest revision is served; send no server_revision to get it")
        }
        return pull
    }

    /// The pages a client at `since` needs to reach the newest revision, written to a scratch file
    /// (unlinked at once, so nothing is left behind whatever happens to the request).
    func pullAnswer(_ database: HostedDatabase, since: TursoRevision?, holder: String) async throws -> PullAnswer {
        var attempts = 0
        while true {
            attempts += 1
            do {
                let current = try await currentPosition(database)
                if let since, since.position.generation == current.generation {
                    if since.position.frame == 0, current.frame == 0 {
                        let read = try await syncRead(
                            database, generation: current.generation, start: 1, maxFrames: 1)
                        return PullAnswer(
                            revision: since, databasePages: try await baseSize(database, current.generation),
                            pages: nil, waitForMore: read.waitForMore)
                    }
                    if since.position.frame >= 1, since.position.frame <= current.frame,
                        let answer = try await changedPages(database, since: since)
                    {
                        return answer
                    }
                }
                return try await snapshot(database, generation: current.generation, holder: holder)
            } catch let error where Self.isGenerationGone(error) {
                // The generation rolled while the answer was made: make it again.
                if attempts < 3 { continue }
                throw NodeError.unavailable(
                    "the database's log moved on while its pages were read; try again", retryAfter: 1)
            }
        }
    }

    /// A generation no longer kept, as the log reports it or as `readingLog` turned it into 410.
    static func isGenerationGone(_ error: any Error) -> Bool {
        if let error = error as? NodeError { return error.code == .gone }
        if let error = error as? ReplicationError { return error == .kindGenerationGone }
        return false
    }

    /// Where a database's log stands (on a replica, what it applied).
    func currentPosition(_ database: HostedDatabase) async throws -> ReplicationPosition {
        if let copy = database.replica {
            try await waitForReplica(copy, database.namespace)
            guard let position = copy.position else {
                throw NodeError.unavailable("the replica of \(database.namespace) has no data yet; try again")
            }
            return position
        }
        return try database.log.position
    }

    /// The size in pages of a generation's base, from its file's size (nothing is copied).
    func baseSize(_ database: HostedDatabase, _ generation: UInt64) async throws -> UInt64 {
        let path: String
        if let copy = database.replica {
            path = try copy.archive.exportBase(generation: generation, applied: copy.position)
        } else {
            path = try database.log.databasePath
        }
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber
        return (size?.uint64Value ?? 0) / UInt64(WALFormat.pageSize)
    }

    /// Every page of the newest revision: the generation's base with its frames laid over it.
    func snapshot(_ database: HostedDatabase, generation: UInt64, holder: String) async throws -> PullAnswer {
        // Counted until the answer is sent or dropped (the scratch file holds the ticket).
        let ticket = try snapshots.admit(holder: holder, organization: database.namespace.organization)
        let scratch = try PageScratch(directory: configuration.dataDirectory + "/tmp", holding: ticket)
        try await copyBase(database, generation: generation, into: scratch)
        var databasePages = try await BlockingWork.run {
            UInt64(try scratch.file.size()) / UInt64(WALFormat.pageSize)
        }
        var revision = TursoRevision(position: ReplicationPosition(generation: generation, frame: 0), checksum: 0)
        var start: UInt64 = 1
        while true {
            let read = try await syncRead(database, generation: generation, start: start, maxFrames: 1024)
            guard case .frames(let chunk) = read.read else {
                let size = Int64(databasePages) * Int64(WALFormat.pageSize)
                try await BlockingWork.run { try scratch.file.truncate(to: size) }
                return PullAnswer(
                    revision: revision, databasePages: databasePages, pages: .whole(scratch),
                    waitForMore: read.waitForMore)
            }
            let last = try await BlockingWork.run { () throws -> FrameSummary in
                try FrameSummary.lay(chunk) { page, image in
                    try scratch.file.write(image, at: Int64(page - 1) * Int64(WALFormat.pageSize))
                }
            }
            if let commit = last.lastCommit {
                databasePages = UInt64(commit.databasePages)
                revision = TursoRevision(
                    position: ReplicationPosition(generation: generation, frame: commit.frame),
                    checksum: commit.checksum)
            }
            start = chunk.lastFrame + 1
        }
    }

    /// The pages changed after `since`, or nil when `since` is not a revision of this log (its
    /// frame there has another checksum: another database, or one created again under the name).
    func changedPages(_ database: HostedDatabase, since: TursoRevision) async throws -> PullAnswer? {
        let generation = since.position.generation
        let first = try await syncRead(database, generation: generation, start: since.position.frame, maxFrames: 1024)
        guard case .frames(let firstChunk) = first.read, firstChunk.firstFrame == since.position.frame,
            firstChunk.frameChecksum(0) == since.checksum
        else { return nil }
        let scratch = try PageScratch(directory: configuration.dataDirectory + "/tmp")
        let slots = PageSlots()
        var revision = since
        var databasePages: UInt64? = nil
        var chunk = firstChunk
        var skip = 1  // the client has frame `since.frame` already
        while true {
            let summary = try await BlockingWork.run { [chunk, skip] () throws -> FrameSummary in
                try FrameSummary.lay(chunk, skipping: skip) { page, image in
                    try scratch.file.write(image, at: Int64(slots.slot(for: page)) * Int64(WALFormat.pageSize))
                }
            }
            skip = 0
            if let commit = summary.lastCommit {
                databasePages = UInt64(commit.databasePages)
                revision = TursoRevision(
                    position: ReplicationPosition(generation: generation, frame: commit.frame),
                    checksum: commit.checksum)
            }
            let next = try await syncRead(database, generation: generation, start: chunk.lastFrame + 1, maxFrames: 1024)
            guard case .frames(let more) = next.read else {
                guard let databasePages else {
                    // Nothing after the client's revision: it is current (at the size its frame says).
                    return PullAnswer(
                        revision: since, databasePages: UInt64(firstChunk.bytes.bigEndianUInt32(at: 4)), pages: nil,
                        waitForMore: next.waitForMore)
                }
                return PullAnswer(
                    revision: revision, databasePages: databasePages,
                    pages: .some(scratch, slots.sorted(upTo: databasePages)), waitForMore: next.waitForMore)
            }
            chunk = more
        }
    }

    /// Copies the base of `generation` into `scratch`: a primary's database file, or the base a
    /// replica node archived.
    func copyBase(_ database: HostedDatabase, generation: UInt64, into scratch: PageScratch) async throws {
        if let copy = database.replica {
            let archive = copy.archive
            let applied = copy.position
            try await BlockingWork.run {
                let base = try PosixFile(
                    path: try archive.exportBase(generation: generation, applied: applied), flags: O_RDONLY)
                let size = try base.size()
                var offset: Int64 = 0
                while offset < size {
                    let bytes = try base.read(count: Int(min(Int64(1 << 20), size - offset)), at: offset)
                    guard !bytes.isEmpty else { break }
                    try scratch.file.write(bytes, at: offset)
                    offset += Int64(bytes.count)
                }
            }
            return
        }
        let log = try database.log
        try await BlockingWork.run {
            var offset: Int64 = 0
            try log.exportBase(generation: generation) { chunk in
                try scratch.file.write(chunk, at: offset)
                offset += Int64(chunk.count)
            }
        }
    }

    /// The answer: a varint-delimited header, then one varint-delimited `PageData` per page, read
    /// from the scratch file a megabyte at a time.
    static func pullResponse(_ answer: PullAnswer) throws -> Response {
        var header = Shoal_Tursosync_PullUpdatesHeader()
        header.serverRevision = answer.revision.description
        header.rawEncoding = Shoal_Tursosync_RawPageEncoding()
        header.dbSize = answer.databasePages
        let headerBytes = try Self.delimited(header)
        let headers: HTTPFields = [
            .contentType: "application/protobuf",
            HTTPField.Name("x-shoal-frame")!: answer.revision.position.description,
        ]
        guard let pages = answer.pages else {
            // Nothing new. `db_size` is what the client has; it applies nothing either way.
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: headerBytes)))
        }
        let count = pages.count(databasePages: answer.databasePages)
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                try await writer.write(ByteBuffer(bytes: headerBytes))
                var index = 0
                while index < count {
                    let batch = pages.batch(index..<min(index + 256, count))
                    let bytes = try await BlockingWork.run { [batch] () throws -> [UInt8] in
                        var out: [UInt8] = []
                        out.reserveCapacity(batch.count * (WALFormat.pageSize + 16))
                        for (page, slot) in batch {
                            var message = Shoal_Tursosync_PageData()
                            message.pageID = UInt64(page - 1)
                            message.encodedPage = Data(
                                try pages.scratch.file.read(
                                    count: WALFormat.pageSize, at: Int64(slot) * Int64(WALFormat.pageSize)))
                            out += try Self.delimited(message)
                        }
                        return out
                    }
                    try await writer.write(ByteBuffer(bytes: bytes))
                    index += batch.count
                }
                try await writer.finish(nil)
            })
    }

    /// A message with its length in front as a varint (protobuf's delimited form).
    static func delimited(_ message: some SwiftProtobuf.Message) throws -> [UInt8] {
        let body: [UInt8] = try message.serializedBytes()
        var out: [UInt8] = []
        var length = UInt64(body.count)
        while length >= 0x80 {
            out.append(UInt8(length & 0x7f) | 0x80)
            length >>= 7
        }
        out.append(UInt8(length))
        return out + body
    }
}

/// A Turso Sync revision: a position in a database's log and the checksum SQLite wrote into the
/// frame there (bytes 16–23 of its header; 0 at a generation's base). The checksum is cumulative
/// over the WAL and seeded by its random salts, so it tells this log's frame from the same-numbered
/// frame of another database, or of this one created again. The text is opaque to clients.
struct TursoRevision: Sendable, Equatable, CustomStringConvertible {
    let position: ReplicationPosition
    let checksum: UInt64

    init(position: ReplicationPosition, checksum: UInt64) {
        self.position = position
        self.checksum = checksum
    }

    /// Parses `shoal-G-F-CHECKSUM`; nil for anything else (a revision of another server).
    init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "shoal", let generation = UInt64(parts[1]), generation >= 1,
            let frame = UInt64(parts[2]), let checksum = UInt64(parts[3], radix: 16)
        else { return nil }
        self.init(position: ReplicationPosition(generation: generation, frame: frame), checksum: checksum)
    }

    var description: String {
        "shoal-\(position.generation)-\(position.frame)-\(String(checksum, radix: 16))"
    }
}

/// What `/pull-updates` answers.
struct PullAnswer: Sendable {
    /// The revision the client reaches by applying the pages.
    let revision: TursoRevision
    /// The database's size in pages at that revision.
    let databasePages: UInt64
    /// The pages, or nil when nothing changed.
    let pages: PulledPages?
    /// Waits for the log to move past the revision (the long-poll).
    let waitForMore: @Sendable (Duration) async -> Bool
}

/// Pages in a scratch file: a whole database image, or changed pages each in a slot.
enum PulledPages: Sendable {
    case whole(PageScratch)
    case some(PageScratch, [(page: UInt32, slot: Int)])

    var scratch: PageScratch {
        switch self {
        case .whole(let scratch), .some(let scratch, _): scratch
        }
    }

    /// How many pages go out.
    func count(databasePages: UInt64) -> Int {
        switch self {
        case .whole: Int(databasePages)
        case .some(_, let slots): slots.count
        }
    }

    /// The pages at `range` of the answer (in page order), with where each is in the file.
    func batch(_ range: Range<Int>) -> [(page: UInt32, slot: Int)] {
        switch self {
        case .whole: range.map { (page: UInt32($0 + 1), slot: $0) }
        case .some(_, let slots): Array(slots[range])
        }
    }
}

/// A scratch file for pages, removed from its directory as soon as it is open; it holds its
/// admission ticket, if any, for as long as it lives.
final class PageScratch: Sendable {
    let file: PosixFile
    private let ticket: AdmissionTicket?

    init(directory: String, holding ticket: AdmissionTicket? = nil) throws {
        self.ticket = ticket
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/pull-\(UUID().uuidString)"
        file = try PosixFile(path: path, flags: O_RDWR | O_CREAT | O_EXCL, mode: 0o600)
        unlink(path)
    }
}

/// Which slot of a scratch file holds each changed page.
final class PageSlots: Sendable {
    private let slots = Mutex<[UInt32: Int]>([:])

    func slot(for page: UInt32) -> Int {
        slots.withLock { slots in
            if let slot = slots[page] { return slot }
            let slot = slots.count
            slots[page] = slot
            return slot
        }
    }

    /// The pages within the database's size, in page order.
    func sorted(upTo databasePages: UInt64) -> [(page: UInt32, slot: Int)] {
        slots.withLock { slots in
            slots.filter { UInt64($0.key) <= databasePages }.sorted { $0.key < $1.key }.map {
                (page: $0.key, slot: $0.value)
            }
        }
    }
}

/// The last commit frame of a chunk, after its pages were handed on.
struct FrameSummary {
    struct Commit {
        let frame: UInt64
        let databasePages: UInt32
        let checksum: UInt64
    }
    var lastCommit: Commit?

    /// Hands each frame's page number and image to `lay`, in log order (a later image of a page
    /// replaces an earlier one), skipping the first `skipping` frames.
    static func lay(
        _ chunk: FrameChunk, skipping: Int = 0, _ lay: (UInt32, [UInt8]) throws -> Void
    ) throws -> FrameSummary {
        var summary = FrameSummary()
        for index in skipping..<chunk.count {
            let offset = index * WALFormat.frameSize
            let page = chunk.bytes.bigEndianUInt32(at: offset)
            let commitSize = chunk.bytes.bigEndianUInt32(at: offset + 4)
            guard page >= 1 else {
                throw NodeError.unavailable("the log holds a frame for page 0; the database needs repair")
            }
            try lay(page, Array(chunk.bytes[(offset + WALFormat.frameHeaderSize)..<(offset + WALFormat.frameSize)]))
            if commitSize != 0 {
                summary.lastCommit = Commit(
                    frame: chunk.firstFrame + UInt64(index), databasePages: commitSize,
                    checksum: chunk.frameChecksum(index))
            }
        }
        return summary
    }
}

extension FrameChunk {
    /// The cumulative checksum in the header of the chunk's `index`th frame.
    func frameChecksum(_ index: Int) -> UInt64 {
        let offset = index * WALFormat.frameSize
        return UInt64(bytes.bigEndianUInt32(at: offset + 16)) << 32 | UInt64(bytes.bigEndianUInt32(at: offset + 20))
    }
}

extension [UInt8] {
    fileprivate func bigEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8
            | UInt32(self[offset + 3])
    }
}
