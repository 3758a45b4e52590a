import Testing

@testable import ShoalReplication

/// The replica's readers behind their gate: an async lease waits for an apply without a thread,
/// and its task's cancellation ends the wait at once.
@Suite(.timeLimit(.minutes(1))) struct ReaderPoolTests {
    @Test func anAsyncLeaseWaitingForAnApplyEndsAtOnceWhenCancelledAndLeavesNoWaiter() async throws {
        let pool = ReaderPool(maxConnections: 1)
        // No lease out: the gate closes at once, as for an apply.
        #expect(pool.closeGate(timeout: .seconds(1)))
        let waiting = Task { _ = try await pool.lease() }
        while pool.asyncWaiting == 0 { await Task.yield() }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(pool.asyncWaiting == 0)
        // A lease cancelled before it waits never registers.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            _ = try await pool.lease()
        }
        await #expect(throws: CancellationError.self) { try await early.value }
        #expect(pool.asyncWaiting == 0)
        pool.openGate()
    }
}
