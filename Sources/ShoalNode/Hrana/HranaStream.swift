import Foundation
import NIOCore
import ShoalModel
import ShoalPool
import ShoalSQLite
import Synchronization

/// A Hrana stream: one SQLite connection (and its transaction) held across HTTP requests, found by
/// a single-use baton. It holds its database's pool lease, so the database stays open while it lives,
/// and its place under the stream caps (`ticket`), given back with the lease (`Node.finish`).
final class HranaStream: @unchecked Sendable {
    // `@unchecked Sendable`: the executor (and its connection) is only used inside `lock`, and the
    // baton protocol gives a stream to one request at a time anyway.
    private let lock = NSLock()
    private var executor: HranaExecutor?
    /// What the last request's results hold of the node's response budget, until its answer is
    /// encoded (`releaseResponse`).
    private var heldResponse: ResponseReservation?
    let lease: ResourcePool<Namespace, HostedDatabase>.Lease
    let namespace: Namespace
    /// Its place under the caps on open streams.
    let ticket: AdmissionTicket
    /// On a replica: what the stream keeps between requests (it holds no connection; reads lease
    /// one of the replica's readers per request, writes go to a stream on the primary).
    let forwarding: ForwardingState?

    init(lease: ResourcePool<Namespace, HostedDatabase>.Lease, ticket: AdmissionTicket) throws {
        self.lease = lease
        self.ticket = ticket
        namespace = lease.key
        if lease.resource.replica != nil {
            forwarding = ForwardingState()
            interruptHandle = nil
        } else {
            forwarding = nil
            let executor = try HranaExecutor(database: lease.resource)
            self.executor = executor
            interruptHandle = executor.connection.interruptHandle
        }
    }

    /// The handle that interrupts the statement the stream runs now (when its request is
    /// cancelled); nil on a replica, whose stream holds no connection.
    let interruptHandle: InterruptHandle?

    /// Runs requests in order; returns the results and whether the stream closed. When `mayWait`
    /// and the requests may write while another stream holds the write turn, nothing runs: the
    /// caller waits for the turn (without a thread) and calls again.
    func run(
        _ requests: [Hrana.StreamRequest], version: Int, access: Access, deadline: ContinuousClock.Instant,
        mayWait: Bool
    ) throws -> LaneAttempt<(results: [Hrana.StreamResult], closed: Bool)> {
        lock.lock()
        defer { lock.unlock() }
        guard let executor else { throw NodeError.invalidBaton("the stream is closed") }
        executor.access = access
        executor.beginRequest(deadline: deadline)
        if mayWait, executor.needsWriteTurn(requests), !lease.resource.writers.tryAcquire(executor.owner) {
            return .waitForWriteTurn(executor.owner)
        }
        defer {
            executor.finishRequest()
            heldResponse = executor.takeReservation()
        }
        var results: [Hrana.StreamResult] = []
        for request in requests {
            results.append(try executor.run(request, version: version))
            if case .close = request {
                executor.close()
                self.executor = nil
                return .done((results, true))
            }
        }
        return .done((results, false))
    }

    /// Starts a `/v3/cursor` batch and runs its first chunk (waiting for the write turn as `run`
    /// does); `continueCursor` runs the rest, one chunk a call.
    func startCursor(
        _ batch: Hrana.Batch, access: Access, deadline: ContinuousClock.Instant, mayWait: Bool, chunkBytes: Int
    ) throws -> LaneAttempt<CursorChunk> {
        lock.lock()
        defer { lock.unlock() }
        guard let executor else { throw NodeError.invalidBaton("the stream is closed") }
        executor.access = access
        executor.beginRequest(deadline: deadline)
        if mayWait, executor.needsWriteTurn([.batch(batch)]),
            !lease.resource.writers.tryAcquire(executor.owner)
        {
            return .waitForWriteTurn(executor.owner)
        }
        do {
            try executor.startCursor(batch)
        } catch {
            executor.finishRequest()
            throw error
        }
        return .done(try chunk(of: executor, chunkBytes: chunkBytes))
    }

    /// The next chunk of the cursor `startCursor` began.
    func continueCursor(chunkBytes: Int) throws -> CursorChunk {
        lock.lock()
        defer { lock.unlock() }
        guard let executor else { throw NodeError.invalidBaton("the stream is closed") }
        return try chunk(of: executor, chunkBytes: chunkBytes)
    }

    private func chunk(of executor: HranaExecutor, chunkBytes: Int) throws -> CursorChunk {
        var lines = ByteBuffer()
        let finished: Bool
        do {
            finished = try executor.advanceCursor(into: &lines, chunkBytes: chunkBytes)
        } catch {
            executor.abandonCursor()
            executor.finishRequest()
            _ = executor.takeReservation()
            throw error
        }
        if finished {
            executor.finishRequest()
        } else {
            executor.releaseWriteTurnBetweenChunks()
        }
        return CursorChunk(lines: lines, finished: finished, reservation: executor.takeReservation())
    }

    /// Gives back what the last request's results held of the node's response budget (its answer
    /// is encoded).
    func releaseResponse() {
        lock.lock()
        defer { lock.unlock() }
        heldResponse?.release()
        heldResponse = nil
    }

    /// Closes the connection (rolling back), idempotently.
    func close() {
        lock.lock()
        defer { lock.unlock() }
        heldResponse?.release()
        heldResponse = nil
        executor?.close()
        executor = nil
    }
}

/// A streamed cursor answer's claim on its stream until its body starts being written: if the
/// answer is dropped unwritten (Hummingbird calls a body only once the head went out, so a client
/// gone by then never gets it), the stream expires at the next upkeep instead of at its late
/// `until`.
final class UnwrittenCursor: Sendable {
    private let streams: StreamRegistry
    private let baton: String
    private let started = Atomic<Bool>(false)

    init(streams: StreamRegistry, baton: String) {
        self.streams = streams
        self.baton = baton
    }

    /// The body is being written: its writer ends the stream from now on.
    func start() { started.store(true, ordering: .relaxed) }

    deinit {
        if !started.load(ordering: .relaxed) { streams.expireStreaming(baton: baton) }
    }
}

/// Entries of a cursor's answer, encoded, with what their rows hold of the node's response budget
/// until they are written.
struct CursorChunk: Sendable {
    let lines: ByteBuffer
    /// Whether the cursor ended with these entries.
    let finished: Bool
    let reservation: ResponseReservation?
}

/// What a try at running requests on a database's lane came to: done, or nothing ran because the
/// requests may write and another stream holds the database's write turn (wait for it, then try
/// again).
enum LaneAttempt<Value: Sendable>: Sendable {
    /// The requests ran.
    case done(Value)
    /// Nothing ran: wait for the write turn for this owner, then try again.
    case waitForWriteTurn(WriterQueue.Owner)

    /// The same try with its value transformed (on the lane, where the try ran).
    func map<Other: Sendable>(_ transform: (Value) throws -> Other) rethrows -> LaneAttempt<Other> {
        switch self {
        case .done(let value): .done(try transform(value))
        case .waitForWriteTurn(let owner): .waitForWriteTurn(owner)
        }
    }
}

/// Open streams by baton, with tombstones for expired ones so clients learn `STREAM_EXPIRED`, and
/// for those closed because their database was deleted. Every open stream (parked or running a
/// request) counts under `admission` from `admit` until its ticket is given back.
final class StreamRegistry: Sendable {
    private struct Parked {
        let stream: HranaStream
        let since: ContinuousClock.Instant
        /// Never expired as idle (a WebSocket's stream: its connection closes it).
        var pinned = false
    }

    private struct State {
        var parked: [String: Parked] = [:]
        /// Streams answering a cursor whose baton is already sent, by baton, with the moment they
        /// are closed if their answer has not ended by then.
        var streaming: [String: (stream: HranaStream, until: ContinuousClock.Instant)] = [:]
        var expired: [String: ContinuousClock.Instant] = [:]
        var deleted: [String: ContinuousClock.Instant] = [:]
    }

    private let state = Mutex(State())
    let idleTimeout: Duration
    /// The open streams by token and organization, capped.
    let admission: AdmissionLedger

    init(idleTimeout: Duration, limits: NodeConfiguration.AdmissionLimits) {
        self.idleTimeout = idleTimeout
        admission = AdmissionLedger(
            what: "open Hrana streams",
            remedy: "close the streams no longer needed (a close request ends one) or let idle ones expire, then retry",
            limits: limits)
    }

    /// Takes a place for a new stream of `holder` on `namespace`, or throws `tooManyRequests`
    /// naming the cap that is reached.
    func admit(holder: String, namespace: Namespace) throws(NodeError) -> AdmissionTicket {
        try admission.admit(holder: holder, organization: namespace.organization)
    }

    /// Takes the stream a baton names; the baton is used up.
    func take(_ baton: String) throws -> HranaStream {
        try state.withLock { state in
            if let parked = state.parked.removeValue(forKey: baton) { return parked.stream }
            if state.expired.removeValue(forKey: baton) != nil { throw NodeError.streamExpired }
            if state.deleted.removeValue(forKey: baton) != nil {
                throw NodeError.notFound("the stream was closed because its database was deleted")
            }
            if state.streaming[baton] != nil {
                throw NodeError.invalidBaton(
                    "the stream is still answering a cursor; read the cursor to its end before the next request")
            }
            throw NodeError.invalidBaton("Received an invalid baton: it was used already, or never issued")
        }
    }

    /// Parks a stream until its next request and returns the baton for it; a `pinned` one does
    /// not expire when idle.
    func park(_ stream: HranaStream, pinned: Bool = false) -> String {
        let baton = Self.newBaton()
        park(stream, baton: baton, pinned: pinned)
        return baton
    }

    /// Parks a stream under a baton made by `newBaton()`.
    func park(_ stream: HranaStream, baton: String, pinned: Bool = false) {
        state.withLock { $0.parked[baton] = Parked(stream: stream, since: .now, pinned: pinned) }
    }

    /// A fresh baton: 24 random bytes, URL-safe base64.
    static func newBaton() -> String {
        var bytes = [UInt8](repeating: 0, count: 24)
        var generator = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = generator.next() }
        return Base64.encode(bytes, padded: false).replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "+", with: "-")
    }

    /// Holds a stream whose cursor answer carries `baton` but is still being written: the baton
    /// is refused until `endStreaming`, and past `until` the stream is expired as if idle (for an
    /// answer that never finishes being written).
    func beginStreaming(_ stream: HranaStream, baton: String, until: ContinuousClock.Instant) {
        state.withLock { $0.streaming[baton] = (stream, until) }
    }

    /// Makes a cursor answer's stream expire at the next upkeep (`expire`): its answer was dropped
    /// before its body was written, so nobody else will end it.
    func expireStreaming(baton: String) {
        state.withLock { state in
            guard let streaming = state.streaming[baton] else { return }
            state.streaming[baton] = (streaming.stream, .now)
        }
    }

    /// Ends a cursor answer: parks its stream under its baton (`park`), or only takes it back.
    /// Returns false when the stream was taken already (expired, or removed at shutdown): its
    /// closing is someone else's then.
    func endStreaming(baton: String, park: Bool) -> Bool {
        state.withLock { state in
            guard let streaming = state.streaming.removeValue(forKey: baton) else { return false }
            if park { state.parked[baton] = Parked(stream: streaming.stream, since: .now) }
            return true
        }
    }

    /// Removes streams idle past the timeout (and tombstones older than five minutes); returns the
    /// streams for the caller to close.
    func expire(now: ContinuousClock.Instant = .now) -> [HranaStream] {
        state.withLock { state in
            var expired: [HranaStream] = []
            for (baton, parked) in state.parked where !parked.pinned && now - parked.since >= idleTimeout {
                state.parked[baton] = nil
                state.expired[baton] = now
                expired.append(parked.stream)
            }
            for (baton, streaming) in state.streaming where now >= streaming.until {
                state.streaming[baton] = nil
                state.expired[baton] = now
                expired.append(streaming.stream)
            }
            state.expired = state.expired.filter { now - $0.value < .seconds(300) }
            state.deleted = state.deleted.filter { now - $0.value < .seconds(300) }
            return expired
        }
    }

    /// Removes the parked streams of a database being deleted (their batons answer that it was
    /// deleted from now on), and those answering a cursor (whose answer then stops); returns them
    /// for the caller to close. A stream running a request now is parked again when the request
    /// ends, and is removed by the next call.
    func remove(namespace: Namespace, now: ContinuousClock.Instant = .now) -> [HranaStream] {
        state.withLock { state in
            var removed: [HranaStream] = []
            for (baton, parked) in state.parked where parked.stream.namespace == namespace {
                state.parked[baton] = nil
                state.deleted[baton] = now
                removed.append(parked.stream)
            }
            for (baton, streaming) in state.streaming where streaming.stream.namespace == namespace {
                state.streaming[baton] = nil
                state.deleted[baton] = now
                removed.append(streaming.stream)
            }
            return removed
        }
    }

    /// Removes every stream (at shutdown), those answering a cursor too.
    func removeAll() -> [HranaStream] {
        state.withLock { state in
            defer {
                state.parked.removeAll()
                state.streaming.removeAll()
            }
            return state.parked.values.map(\.stream) + state.streaming.values.map(\.stream)
        }
    }

    /// Streams parked now.
    var count: Int { state.withLock { $0.parked.count } }
}
