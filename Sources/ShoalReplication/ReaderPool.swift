import Foundation
import ShoalSQLite
import ShoalTime

/// The read side of a replica: a pool of read-only connections behind a gate.
///
/// An idle connection keeps its read transaction open, so a read costs a b-tree lookup and no
/// locking. An apply closes the gate: it waits for leased connections to come back (new leases
/// wait), ends the idle connections' transactions, writes, and opens the gate; the next lease
/// starts a fresh transaction that sees the new data. Prepared statements survive.
final class ReaderPool: @unchecked Sendable {
    // `@unchecked Sendable`: the fields are only touched with `condition` locked, and each
    // connection is used by one thread at a time: the one that leased it, or the applier while it
    // holds the gate and the connection sits idle in the pool.
    private let condition = NSCondition()
    private var idle: [ReaderConnection] = []
    private var leased = 0
    private var applying = false
    private var applyWaiting = false
    private var open: (() throws -> Connection)?
    private let maxConnections: Int
    private var count = 0
    /// Async leases waiting for the gate to open or a connection to come back, by id: resumed (to
    /// try again) whenever either happens, or when their task is cancelled. They hold no thread
    /// while they wait.
    private var waiters: [Int: AsyncWait] = [:]
    private var nextWaiterID = 0

    /// One async lease's wait: between deciding to wait and registering (`pending`), registered,
    /// or cancelled before it registered (`ended`).
    private enum AsyncWait {
        case pending
        case registered(CheckedContinuation<Void, Never>)
        case ended
    }

    init(maxConnections: Int) {
        self.maxConnections = maxConnections
    }

    /// Sets how new connections are opened (nil while the replica has no database).
    func setOpener(_ opener: (() throws -> Connection)?) {
        condition.lock()
        open = opener
        condition.unlock()
    }

    /// Whether a lease must wait now (with `condition` locked).
    private var mustWait: Bool { applying || applyWaiting || (idle.isEmpty && count >= maxConnections) }

    /// Leases a connection inside its read transaction; blocks the calling thread while an apply
    /// runs or waits.
    func lease() throws -> ReaderConnection {
        condition.lock()
        while mustWait {
            condition.wait()
        }
        defer { condition.unlock() }
        return try takeLease()
    }

    /// Leases a connection as `lease()` does, but waits for an apply without holding the thread:
    /// the calling task suspends until the gate opens. Without an apply it does not suspend.
    /// Throws `CancellationError` when its task is cancelled while it waits.
    func lease() async throws -> ReaderConnection {
        while true {
            if let reader = try leaseIfFree() { return reader }
            try Task.checkCancellation()
            let id = registerPending()
            await withTaskCancellationHandler {
                await withCheckedContinuation { waitOrResume(id, $0) }
            } onCancel: {
                endWait(id)
            }
            try Task.checkCancellation()
        }
    }

    /// A new wait id, pending.
    private func registerPending() -> Int {
        condition.lock()
        defer { condition.unlock() }
        nextWaiterID &+= 1
        waiters[nextWaiterID] = .pending
        return nextWaiterID
    }

    /// Ends wait `id` (its task was cancelled): resumed if registered, marked if not yet.
    private func endWait(_ id: Int) {
        condition.lock()
        var continuation: CheckedContinuation<Void, Never>?
        switch waiters[id] {
        case .registered(let registered):
            waiters[id] = nil
            continuation = registered
        case .pending:
            waiters[id] = .ended
        case .ended, nil:
            break
        }
        condition.unlock()
        continuation?.resume()
    }

    /// A lease if none must wait now; nil otherwise.
    private func leaseIfFree() throws -> ReaderConnection? {
        condition.lock()
        defer { condition.unlock() }
        return mustWait ? nil : try takeLease()
    }

    /// Keeps wait `id` until the next wake, or resumes it at once if a lease need not wait now (or
    /// it was cancelled already).
    private func waitOrResume(_ id: Int, _ waiter: CheckedContinuation<Void, Never>) {
        condition.lock()
        if mustWait, case .pending = waiters[id] {
            waiters[id] = .registered(waiter)
            condition.unlock()
        } else {
            waiters[id] = nil
            condition.unlock()
            waiter.resume()
        }
    }

    /// Wakes every waiting lease, threads and tasks (with `condition` locked); the tasks are
    /// resumed by the caller after it unlocks. Pending waits stay (they see the change when they
    /// register).
    private func wakeAll() -> [CheckedContinuation<Void, Never>] {
        condition.broadcast()
        var woken: [CheckedContinuation<Void, Never>] = []
        for (id, wait) in waiters {
            if case .registered(let continuation) = wait {
                woken.append(continuation)
                waiters[id] = nil
            }
        }
        return woken
    }

    /// Async leases waiting now (registered or about to).
    var asyncWaiting: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiters.count
    }

    /// Takes an idle connection or opens one (with `condition` locked and no reason to wait).
    private func takeLease() throws -> ReaderConnection {
        let reader: ReaderConnection
        if let last = idle.popLast() {
            reader = last
        } else {
            guard let open else {
                throw ReplicationError.notBootstrapped("the replica has no database yet; sync it first")
            }
            reader = ReaderConnection(connection: try open())
            count += 1
        }
        leased += 1
        return reader
    }

    /// Returns a leased connection.
    func release(_ reader: ReaderConnection) {
        condition.lock()
        leased -= 1
        idle.append(reader)
        let woken = wakeAll()
        condition.unlock()
        for waiter in woken { waiter.resume() }
    }

    /// Closes the gate for an apply: waits up to `timeout` for leases to come back, then ends every
    /// idle read transaction. Returns false (gate open again) on timeout.
    func closeGate(timeout: Duration) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout.inSeconds)
        condition.lock()
        applyWaiting = true
        while leased > 0 {
            if !condition.wait(until: deadline) && leased > 0 {
                applyWaiting = false
                let woken = wakeAll()
                condition.unlock()
                for waiter in woken { waiter.resume() }
                return false
            }
        }
        applyWaiting = false
        applying = true
        var kept: [ReaderConnection] = []
        for reader in idle {
            if reader.endTransaction() {
                kept.append(reader)
            } else {
                count -= 1
            }
        }
        idle = kept
        condition.unlock()
        return true
    }

    /// Opens the gate after an apply.
    func openGate() {
        condition.lock()
        applying = false
        let woken = wakeAll()
        condition.unlock()
        for waiter in woken { waiter.resume() }
    }

    /// Closes every idle connection (with the gate closed), e.g. before the file is replaced.
    func closeIdleConnections() {
        condition.lock()
        for reader in idle { try? reader.connection.close() }
        count -= idle.count
        idle.removeAll()
        condition.unlock()
    }
}

/// A pooled read-only connection and whether it holds a read transaction.
final class ReaderConnection {
    let connection: Connection
    private var inTransaction = false

    init(connection: Connection) {
        self.connection = connection
    }

    /// Starts the held read transaction if none is open.
    @inline(__always)
    func beginIfNeeded() throws {
        if !inTransaction {
            try connection.execute("BEGIN")
            inTransaction = true
        }
    }

    /// Notes that the caller's SQL may have ended the transaction.
    @inline(__always)
    func refreshState() {
        if inTransaction && connection.isAutocommit { inTransaction = false }
    }

    /// Ends the held read transaction; false if the connection is unusable and was closed.
    func endTransaction() -> Bool {
        guard inTransaction else { return true }
        connection.resetAllStatements()
        do {
            try connection.execute("COMMIT")
            inTransaction = false
            return true
        } catch {
            try? connection.close()
            return false
        }
    }
}
