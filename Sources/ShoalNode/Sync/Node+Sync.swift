import Foundation
import HTTPTypes
import Hummingbird
import ShoalReplication
import ShoalServerKit
import Synchronization

extension Node {
    /// The sync protocol of libSQL's embedded replicas, served from the primary log.
    func addSyncRoutes(_ routes: some RouterMethods<ServerRequestContext>) {
        routes.get("info") { request, context in
            let namespace = try self.namespace(request, context)
            let grant = try await self.grant(context, namespace)
            return try await self.store.withDatabase(namespace) { database in
                try Self.refuseIfBlocked(database)
                try self.checkRegion(grant, database)
                if let copy = database.replica {
                    try await self.waitForReplica(copy, namespace)
                    guard let position = copy.position else {
                        throw NodeError.unavailable("the replica of \(namespace) has no data yet; try again")
                    }
                    return try Self.json(["current_generation": position.generation])
                }
                return try Self.json(["current_generation": try database.log.generation])
            }
        }
        routes.get("export/:generation") { request, context in
            let namespace = try self.namespace(request, context)
            let grant = try await self.grant(context, namespace)
            let generation = try Self.number(context, "generation")
            return try await self.store.withDatabase(namespace) { database in
                try Self.refuseIfBlocked(database)
                try self.checkRegion(grant, database)
                // The base goes out from a file, a megabyte at a time: memory stays bounded
                // whatever the database's size. A primary's base is copied to a scratch file first
                // (the copy cannot change while it is made; the stream then needs no lock).
                let file: FileHandle
                if let copy = database.replica {
                    try await self.waitForReplica(copy, namespace)
                    file = try await Self.readingLog {
                        let path = try copy.archive.exportBase(generation: generation, applied: copy.position)
                        // Opened now: a later roll may delete the path, the open file stays readable.
                        return try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
                    }
                } else {
                    let log = try database.log
                    let scratch = self.configuration.dataDirectory + "/tmp/export-\(UUID().uuidString)"
                    file = try await Self.readingLog {
                        try FileManager.default.createDirectory(
                            atPath: self.configuration.dataDirectory + "/tmp", withIntermediateDirectories: true)
                        defer { try? FileManager.default.removeItem(atPath: scratch) }
                        try log.exportBase(generation: generation, to: scratch, durable: false)
                        return try FileHandle(forReadingFrom: URL(fileURLWithPath: scratch))
                    }
                }
                let size = Int(try file.seekToEnd())
                try file.seek(toOffset: 0)
                let reader = ExportReader(file)
                return Response(
                    status: .ok, headers: [.contentType: "application/octet-stream"],
                    body: ResponseBody(contentLength: size) { writer in
                        defer { reader.close() }
                        while let chunk = try await reader.next() {
                            try await writer.write(ByteBuffer(bytes: chunk))
                        }
                        try await writer.finish(nil)
                    })
            }
        }
        routes.get("sync/:generation/:start/:end") { request, context in
            let namespace = try self.namespace(request, context)
            let grant = try await self.grant(context, namespace)
            let generation = try Self.number(context, "generation")
            let start = try Self.number(context, "start")
            let end = try Self.number(context, "end")
            guard start >= 1, end > start else {
                throw NodeError.badRequest(
                    "frames are asked for as /sync/{generation}/{start}/{end} with 1 <= start < end")
            }
            let wait = request.uri.queryParameters.get("wait_ms").flatMap { Int($0) }.map { min(max($0, 0), 60_000) }
            let maxFrames = Int(min(end - start, 4096))
            let readFrames = { (database: HostedDatabase) async throws -> SyncRead in
                try Self.refuseIfBlocked(database)
                try self.checkRegion(grant, database)
                return try await self.syncRead(database, generation: generation, start: start, maxFrames: maxFrames)
            }
            var sync = try await self.store.withDatabase(namespace, readFrames)
            if let wait, wait > 0, case .upToDate(let current, _) = sync.read, current == generation {
                // The long-poll waits on the log alone: the database's lease went back first, so
                // waiting replicas never fill the pool. The log wakes it when a frame commits, the
                // generation rolls, or the pool closes the database (then it answers what it read).
                let ticket = try self.longPolls.admit(
                    holder: grant.holder(for: namespace), organization: namespace.organization)
                let moved = await sync.waitForMore(.milliseconds(wait))
                ticket.release()
                try self.store.refuseIfDeleted(namespace)
                if moved { sync = try await self.store.withDatabase(namespace, readFrames) }
            }
            let position = sync.position
            var headers: HTTPFields = [HTTPField.Name("x-shoal-frame")!: "\(position.generation)/\(position.frame)"]
            switch sync.read {
            case .frames(let chunk):
                self.metrics.framesServed(chunk.count)
                headers[.contentType] = "application/octet-stream"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: chunk.bytes)))
            case .upToDate(let current, let lastFrame):
                var response = try Self.json(
                    CheckpointNeeded(generation: current, maxFrameNumber: lastFrame), status: .badRequest)
                response.headers[HTTPField.Name("x-shoal-frame")!] = "\(position.generation)/\(position.frame)"
                return response
            }
        }
    }

    /// What one read of `/sync` found, and how to wait for more without holding the database.
    struct SyncRead: Sendable {
        /// The frames, or "up to date".
        let read: FrameRead
        /// The position the answer reports.
        let position: ReplicationPosition
        /// Waits (up to the duration) for frames after the ones read, holding the log or replica
        /// but not the database's lease; true when something may have changed (read again), false
        /// when nothing did (the timeout passed, or the database was closed meanwhile).
        let waitForMore: @Sendable (Duration) async -> Bool
    }

    /// Reads frames of `generation` from `start` on a leased database: a primary's log, or what a
    /// replica has applied (numbered as on the primary).
    func syncRead(
        _ database: HostedDatabase, generation: UInt64, start: UInt64, maxFrames: Int
    ) async throws -> SyncRead {
        if let copy = database.replica {
            try await waitForReplica(copy, database.namespace)
            let archive = copy.archive
            let read = try await Self.readingLog {
                try archive.readFrames(
                    generation: generation, start: start, maxFrames: maxFrames, applied: copy.position)
            }
            return SyncRead(
                read: read, position: copy.position ?? ReplicationPosition(generation: generation, frame: 0),
                waitForMore: { timeout in
                    await copy.waitUntilApplied(
                        ReplicationPosition(generation: generation, frame: start), timeout: timeout)
                })
        }
        let log = try database.log
        let read = try await Self.readingLog {
            try log.readFrames(generation: generation, start: start, maxFrames: maxFrames)
        }
        return SyncRead(
            read: read, position: log.position,
            waitForMore: { timeout in
                let reached = await log.waitForFrame(after: start - 1, generation: generation, timeout: timeout)
                return reached.generation != generation || reached.frame >= start
            })
    }

    /// The sync protocol's "nothing more" answer.
    struct CheckpointNeeded: Encodable {
        let status = "checkpoint_needed"
        let generation: UInt64
        let maxFrameNumber: UInt64

        enum CodingKeys: String, CodingKey {
            case status, generation
            case maxFrameNumber = "max_frame_no"
        }
    }

    /// Runs a log read, answering 410 Gone when the generation is no longer kept (the replica
    /// must bootstrap again from the current one).
    static func readingLog<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        do {
            return try await BlockingWork.run(body)
        } catch let error as ReplicationError where error == .kindGenerationGone {
            throw NodeError.gone(error.message)
        }
    }

    static func refuseIfBlocked(_ database: HostedDatabase) throws {
        if database.settings.blockReads {
            throw NodeError.forbidden("database \(database.namespace) is blocked by its operator")
        }
    }

    static func number(_ context: ServerRequestContext, _ name: String) throws -> UInt64 {
        guard let text = context.parameters.get(name), let value = UInt64(text) else {
            throw NodeError.badRequest("\(name) must be a non-negative integer")
        }
        return value
    }
}

/// Reads an exported base file in chunks off the event loops; closes it once.
final class ExportReader: Sendable {
    private let file: Mutex<FileHandle?>

    init(_ file: FileHandle) { self.file = Mutex(file) }

    /// The next megabyte, or nil at the end.
    func next() async throws -> [UInt8]? {
        try await BlockingWork.run {
            try self.file.withLock { file -> [UInt8]? in
                guard let file, let data = try file.read(upToCount: 1 << 20), !data.isEmpty else { return nil }
                return Array(data)
            }
        }
    }

    func close() {
        file.withLock { file in
            try? file?.close()
            file = nil
        }
    }
}
