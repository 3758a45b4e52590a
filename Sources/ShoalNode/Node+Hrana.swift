import Foundation
import HTTPTypes
import Hummingbird
import ShoalModel
import ShoalPool
import ShoalSQLite

extension Node {
    func addDatabaseRoutes(_ routes: some RouterMethods<BasicRequestContext>) {
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
    }

    /// `POST /v1/execute`: one statement on a fresh connection.
    func v1Execute(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let namespace = try self.namespace(request, context)
        let access = try await authorize(request, namespace)
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
    func v1Batch(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let namespace = try self.namespace(request, context)
        let access = try await authorize(request, namespace)
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
    func cursor(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let namespace = try self.namespace(request, context)
        let grant = try await self.grant(request, namespace)
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
        let result: Hrana.BatchResult
        do {
            let deadline = requestDeadline()
            let handle = stream.interruptHandle
            result = try await onLane(stream.lease.resource, deadline: deadline, interrupt: { handle?.interrupt() }) {
                mayWait in
                try stream.runBatch(batch, access: access, deadline: deadline, mayWait: mayWait)
            }
        } catch {
            await close(stream)
            throw error
        }
        let encoder = WireJSON.encoder()
        var lines = [try encoder.encode(Hrana.CursorHeader(baton: streams.park(stream)))]
        for step in result.stepResults.indices {
            if let failure = result.stepErrors[step] {
                lines.append(try encoder.encode(Hrana.CursorEntry.stepError(step: step, error: failure)))
            } else if let statement = result.stepResults[step] {
                lines.append(try encoder.encode(Hrana.CursorEntry.stepBegin(step: step, columns: statement.columns)))
                for row in statement.rows {
                    lines.append(try encoder.encode(Hrana.CursorEntry.row(row)))
                }
                lines.append(
                    try encoder.encode(
                        Hrana.CursorEntry.stepEnd(
                            affectedRowCount: statement.affectedRowCount, lastInsertRowID: statement.lastInsertRowID)))
            }
        }
        var buffer = ByteBuffer()
        for line in lines {
            buffer.writeBytes(line)
            buffer.writeString("\n")
        }
        stream.releaseResponse()
        return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: buffer))
    }

    func pipeline(_ request: Request, _ context: BasicRequestContext, version: Int) async throws -> Response {
        let namespace = try self.namespace(request, context)
        let grant = try await self.grant(request, namespace)
        let access = grant.access
        let bytes = try await self.body(of: request)
        let body = try decode(Hrana.PipelineRequest.self, from: bytes)
        let stream = try await self.stream(baton: body.baton, namespace: namespace, grant: grant)
        let requests = body.requests
        if let copy = stream.lease.resource.replica {
            do {
                return try await replicaPipeline(
                    request, stream: stream, copy: copy, requests: requests, body: bytes, version: version,
                    access: access)
            } catch {
                await close(stream)
                throw error
            }
        }
        let outcome: (results: [Hrana.StreamResult], closed: Bool)
        do {
            let deadline = requestDeadline()
            let handle = stream.interruptHandle
            outcome = try await onLane(stream.lease.resource, deadline: deadline, interrupt: { handle?.interrupt() }) {
                mayWait in
                try stream.run(requests, version: version, access: access, deadline: deadline, mayWait: mayWait)
            }
        } catch {
            await close(stream)
            throw error
        }
        // The primary's position after the requests: a replica that reaches it sees their writes.
        let position = try stream.lease.resource.log.position
        var baton: String?
        if outcome.closed {
            await finish(stream)
        } else {
            baton = streams.park(stream)
        }
        let encoded = Result { try Self.json(Hrana.PipelineResponse(baton: baton, results: outcome.results)) }
        stream.releaseResponse()
        var response = try encoded.get()
        response.headers[HTTPField.Name("x-shoal-frame")!] = "\(position.generation)/\(position.frame)"
        return response
    }
}
