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

    init(maxConnections: Int) {
        self.maxConnections = maxConnections
    }

    /// Sets how new connections are opened (nil while the replica has no database).
    func setOpener(_ opener: (() throws -> Connection)?) {
        condition.lock()
        open = opener
        condition.unlock()
    }

    /// Leases a connection inside its read transaction; waits while an apply runs or waits.
    func lease() throws -> ReaderConnection {
        condition.lock()
        while applying || applyWaiting || (idle.isEmpty && count >= maxConnections) {
            condition.wait()
        }
        defer { condition.unlock() }
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
        condition.broadcast()
        condition.unlock()
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
                condition.broadcast()
                condition.unlock()
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
        condition.broadcast()
        condition.unlock()
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
