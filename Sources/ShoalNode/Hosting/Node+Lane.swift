import ShoalSQLite
import Synchronization

extension Node {
    /// Runs `attempt` on the database's lane (its share of the node's SQLite threads). When the
    /// attempt finds that its requests may write while another stream holds the database's write
    /// turn, nothing has run: the turn is waited for here, holding no thread, until `deadline`,
    /// and the attempt runs once more (statements that write without the turn then fail with
    /// `SQLITE_BUSY`). Cancelling the calling task interrupts the statement running then.
    func onLane<T: Sendable>(
        _ database: HostedDatabase, deadline: ContinuousClock.Instant,
        interrupt: @escaping @Sendable () -> Void,
        _ attempt: @escaping @Sendable (_ mayWait: Bool) throws -> LaneAttempt<T>
    ) async throws -> T {
        var mayWait = true
        while true {
            let waiting = mayWait
            let outcome = try await database.lane.run(onCancel: interrupt) { try attempt(waiting) }
            switch outcome {
            case .done(let value):
                return value
            case .waitForWriteTurn(let owner):
                _ = await database.writers.acquire(owner, until: deadline)
                try Task.checkCancellation()
                mayWait = false
            }
        }
    }

    /// The deadline of a request that starts now.
    func requestDeadline() -> ContinuousClock.Instant {
        .now.advanced(by: configuration.requestTimeLimit)
    }
}

/// The executor of one HTTP API v1 request, made on the database's lane by its first attempt and
/// closed there when the request ends.
final class OneRequestExecutor: @unchecked Sendable {
    // `@unchecked Sendable`: `executor` is used only inside the database's lane, by one request's
    // attempts, which run one after another; `handle` is behind its mutex.
    private var executor: HranaExecutor?
    /// The executor's connection's interrupt handle once made, and whether the request was
    /// cancelled (kept: a cancellation before the handle exists must not be lost).
    private let interruption = Mutex<(handle: InterruptHandle?, cancelled: Bool)>((nil, false))

    /// The request's executor, made on first use; throws `CancellationError` once cancelled.
    func executor(for database: HostedDatabase) throws -> HranaExecutor {
        if let executor { return executor }
        let made = try HranaExecutor(database: database)
        executor = made
        let cancelled = interruption.withLock { state in
            state.handle = made.connection.interruptHandle
            return state.cancelled
        }
        if cancelled { throw CancellationError() }
        return made
    }

    /// Interrupts the statement the request runs now, and marks the request cancelled so that an
    /// executor made afterwards refuses to run (from any thread).
    func interrupt() {
        interruption.withLock { state in
            state.cancelled = true
            return state.handle
        }?.interrupt()
    }

    /// Closes the executor (rolling back what it left open), idempotently.
    func close() {
        executor?.close()
        executor = nil
    }
}
