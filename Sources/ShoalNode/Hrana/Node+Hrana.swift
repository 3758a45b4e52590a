import Foundation
import HTTPTypes
import Hummingbird
import ShoalModel
import ShoalPool
import ShoalSQLite
import ShoalServerKit

extension Node {
    func addDatabaseRoutes(_ routes: some RouterMethods<ServerRequestContext>) {
        routes.post("v1/execute") { request, context in try await self.v1Execute(request, context) }
        routes.post("v1/batch") { request, context in try await self.v1Batch(request, context) }
        for version in [2, 3] {
            routes.post(RouterPath("v\(version)/pipeline")) { request, context in
                try await self.pipeline(request, context, version: version)
            }
        }
        routes.post("v3/cursor") { request, context in
            try await self.cursor(request, context)
        }
        addSyncRoutes(routes)
        addTursoSyncRoutes(routes)
    }

    /// `POST /v1/execute`: one statement on a fresh connection.
    func v1Execute(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let namespace = try self.namespace(request, context)
        let access = try await authorize(context, namespace)
        let bytes = try await self.body(of: request)
        let body = try decode(Hrana.ExecuteRequest.self, from: bytes)
        return try await runOnce(
            namespace, access: access, request: request, path: "v1/execute", body: bytes, check: .execute(body.stmt)
        ) { executor in
            do {
                return try Self.json(Hrana.ResultEnvelope(result: try executor.execute(body.stmt)))
            } catch let failure as Hrana.Failure {
                return try Self.json(failure, status: .badRequest)
            } catch let error as SQLiteError {
                return try Self.json(HranaExecutor.failure(error), status: .internalServerError)
            }
        }
    }

    /// `POST /v1/batch`: a batch on a fresh connection.
    func v1Batch(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let namespace = try self.namespace(request, context)
        let access = try await authorize(context, namespace)
        let bytes = try await self.body(of: request)
        let body = try decode(Hrana.BatchRequest.self, from: bytes)
        return try await runOnce(
            namespace, access: access, request: request, path: "v1/batch", body: bytes, check: .batch(body.batch)
        ) { executor in
            guard case .ok(.batch(let result)) = try executor.run(.batch(body.batch), version: 1) else {
                throw NodeError.badRequest("the batch could not run")
            }
            return try Self.json(Hrana.ResultEnvelope(result: result))
        }
    }

    /// Runs `body` with a fresh executor (HTTP API v1: one connection per request); on a replica,
    /// with one of its readers, or relayed to the primary when `check` must run there.
    func runOnce(
        _ namespace: Namespace, access: Access, request: Request, path: String, body bytes: [UInt8],
        check: Hrana.StreamRequest, _ body: @escaping @Sendable (HranaExecutor) throws -> Response
    ) async throws
        -> Response
    {
        try await store.withDatabase(namespace) { database in
            if let copy = database.replica {
                try await waitForReplica(copy, namespace)
                return try await replicaV1(
                    request, database: database, copy: copy, path: path, body: bytes, check: check, access: access,
                    local: body)
            }
            let deadline = requestDeadline()
            let once = OneRequestExecutor()
            do {
                let response = try await onLane(database, deadline: deadline, interrupt: { once.interrupt() }) {
                    mayWait -> LaneAttempt<Response> in
                    let executor = try once.executor(for: database)
                    executor.access = access
                    executor.beginRequest(deadline: deadline)
                    if mayWait, executor.needsWriteTurn([check]), !database.writers.tryAcquire(executor.owner) {
                        return .waitForWriteTurn(executor.owner)
                    }
                    defer { once.close() }
                    var response = try body(executor)
                    let position = try database.log.position
                    response.headers[HTTPField.Name("x-shoal-frame")!] = "\(position.generation)/\(position.frame)"
                    return .done(response)
                }
                return response
            } catch {
                // A request cancelled while it waited for the write turn still holds its connection.
                _ = try? await database.lane.run(priority: .cleanup) { once.close() }
                throw error
            }
        }
    }

    /// Before a replica just opened serves reads, it catches up with its primary (bounded).
    func waitForReplica(_ copy: ReplicaCopy, _ namespace: Namespace) async throws {
        guard await !copy.waitUntilSynced(timeout: configuration.replicaCatchUpTimeout) else { return }
        guard copy.position != nil else {
            throw NodeError.unavailable(
                "the replica of \(namespace) has not reached its primary at \(copy.primaryURL) yet; try again")
        }
        logger.warning("replica.stale", metadata: ["db.namespace": "\(namespace)", "primary": "\(copy.primaryURL)"])
    }

    /// The stream a baton names (checked against the database), or a new one: counted under the
    /// stream caps of the grant's holder (429 past them) before it leases its database.
    func stream(baton: String?, namespace: Namespace, grant: Grant) async throws -> HranaStream {
        if let baton {
            let stream = try streams.take(baton)
            guard stream.namespace == namespace else {
                await close(stream)
                throw NodeError.invalidBaton("the baton belongs to another database's stream")
            }
            return stream
        }
        let ticket = try streams.admit(holder: grant.holder(for: namespace), namespace: namespace)
        let lease: ResourcePool<Namespace, HostedDatabase>.Lease
        do {
            lease = try await store.acquire(namespace)
        } catch {
            ticket.release()
            throw error
        }
        do {
            if let copy = lease.resource.replica { try await waitForReplica(copy, namespace) }
            return try await lease.resource.lane.run { try HranaStream(lease: lease, ticket: ticket) }
        } catch {
            ticket.release()
            await store.release(lease)
            throw error
        }
    }

    /// Ends a stream whose connection is closed: its lease goes back to the pool and its place
    /// under the stream caps is given back.
    func finish(_ stream: HranaStream) async {
        stream.ticket.release()
        await store.release(stream.lease)
    }

    /// `POST /v3/cursor`: a batch on a stream, answered as newline-delimited JSON entries.
    func cursor(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let namespace = try self.namespace(request, context)
        let grant = try await self.grant(context, namespace)
        let access = grant.access
        let bytes = try await self.body(of: request)
        let body = try decode(Hrana.CursorRequest.self, from: bytes)
        let stream = try await self.stream(baton: body.baton, namespace: namespace, grant: grant)
        if let copy = stream.lease.resource.replica {
            do {
                if let response = try await replicaCursor(
                    request, stream: stream, copy: copy, cursor: body, body: bytes, access: access)
                {
                    return response
                }
            } catch {
                await close(stream)
                throw error
            }
        }
        let batch = body.batch
        let deadline = requestDeadline()
        let handle = stream.interruptHandle
        let first: CursorChunk
        do {
            first = try await onLane(stream.lease.resource, deadline: deadline, interrupt: { handle?.interrupt() }) {
                mayWait in
                try stream.startCursor(
                    batch, access: access, deadline: deadline, mayWait: mayWait, chunkBytes: Self.cursorChunkBytes)
            }
        } catch {
            await close(stream)
            throw error
        }
        let baton = StreamRegistry.newBaton()
        var head = ByteBuffer()
        head.writeBytes(try WireJSON.encoder().encode(Hrana.CursorHeader(baton: baton)))
        head.writeInteger(UInt8(ascii: "\n"))
        let headers: HTTPFields = [.contentType: "text/plain"]
        guard !first.finished else {
            // The whole answer fits in one chunk: no streaming.
            head.writeImmutableBuffer(first.lines)
            first.reservation?.release()
            streams.park(stream, baton: baton)
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: head))
        }
        // The rest is stepped while the answer is written; the stream is parked (its baton
        // usable) once the last entry is out of SQLite, and closed if the answer fails.
        streams.beginStreaming(
            stream, baton: baton,
            until: deadline.advanced(by: configuration.connectionLimits.writeStallTimeout + .seconds(30)))
        let unwritten = UnwrittenCursor(streams: streams, baton: baton)
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { [head] writer in
                unwritten.start()
                try await self.writeCursor(stream, baton: baton, head: head, first: first, writer: &writer)
            })
    }

    /// The entries a cursor's answer carries in each chunk (a row larger than this is a chunk of
    /// its own): what one cursor holds in memory at a time.
    static let cursorChunkBytes = 64 << 10

    /// Writes a streamed cursor's answer: each chunk written before the next is stepped, on the
    /// database's lane, so that a slow reader holds no thread and no more than a chunk in memory.
    private func writeCursor(
        _ stream: HranaStream, baton: String, head: ByteBuffer, first: CursorChunk,
        writer: inout any ResponseBodyWriter
    ) async throws {
        var chunk = first
        var pending = head
        let handle = stream.interruptHandle
        do {
            while true {
                pending.writeImmutableBuffer(chunk.lines)
                if chunk.finished {
                    chunk.reservation?.release()
                    // Parked before the last bytes go out: a client that reads them may use the
                    // baton at once.
                    _ = streams.endStreaming(baton: baton, park: true)
                    try await writer.write(pending)
                    break
                }
                try await writer.write(pending)
                chunk.reservation?.release()
                pending = ByteBuffer()
                chunk = try await stream.lease.resource.lane.run(onCancel: { handle?.interrupt() }) {
                    try stream.continueCursor(chunkBytes: Self.cursorChunkBytes)
                }
            }
        } catch {
            chunk.reservation?.release()
            if streams.endStreaming(baton: baton, park: false) { await close(stream) }
            throw error
        }
        try await writer.finish(nil)
    }

    func pipeline(_ request: Request, _ context: ServerRequestContext, version: Int) async throws -> Response {
        let namespace = try self.namespace(request, context)
        let grant = try await self.grant(context, namespace)
        let bytes = try await self.body(of: request)
        return try await pipeline(
            namespace, grant: grant, authorization: request.headers[.authorization], body: bytes, version: version)
    }

    /// Runs a pipeline body (`/v2|v3/pipeline`, and each request on a Hrana WebSocket's stream) for
    /// a caller `grant` admits. A `pinned` stream is parked without the idle expiry: a WebSocket's
    /// stream lives as long as its connection, which closes it.
    func pipeline(
        _ namespace: Namespace, grant: Grant, authorization: String?, body bytes: [UInt8], version: Int,
        pinned: Bool = false
    ) async throws -> Response {
        let access = grant.access
        let body = try decode(Hrana.PipelineRequest.self, from: bytes)
        let stream = try await self.stream(baton: body.baton, namespace: namespace, grant: grant)
        let requests = body.requests
        if let copy = stream.lease.resource.replica {
            do {
                return try await replicaPipeline(
                    authorization: authorization, stream: stream, copy: copy, requests: requests, body: bytes,
                    version: version, access: access, pinned: pinned)
            } catch {
                await close(stream)
                throw error
            }
        }
        // The answer is encoded on the lane too (a large one costs its database's share of the
        // SQLite threads, not the event loops'), under a baton that is handed out once it is parked.
        let baton = StreamRegistry.newBaton()
        let outcome: (response: Response, closed: Bool)
        do {
            let deadline = requestDeadline()
            let handle = stream.interruptHandle
            outcome = try await onLane(stream.lease.resource, deadline: deadline, interrupt: { handle?.interrupt() }) {
                mayWait -> LaneAttempt<(response: Response, closed: Bool)> in
                try stream.run(requests, version: version, access: access, deadline: deadline, mayWait: mayWait)
                    .map { results, closed in
                        defer { stream.releaseResponse() }
                        let answer = Hrana.PipelineResponse(baton: closed ? nil : baton, results: results)
                        return (try Self.json(answer), closed)
                    }
            }
        } catch {
            await close(stream)
            throw error
        }
        // The primary's position after the requests: a replica that reaches it sees their writes.
        let position = try stream.lease.resource.log.position
        if outcome.closed {
            await finish(stream)
        } else {
            streams.park(stream, baton: baton, pinned: pinned)
        }
        var response = outcome.response
        response.headers[HTTPField.Name("x-shoal-frame")!] = "\(position.generation)/\(position.frame)"
        return response
    }
}
