import Synchronization
import Testing

@testable import ShoalPool

/// A close that the test lets finish when it chooses, awaited without blocking a thread.
private final class SlowClose: Sendable {
    private let started: AsyncStream<String>.Continuation
    let startedStream: AsyncStream<String>
    private let release = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let released = Mutex(false)

    init() {
        (startedStream, started) = AsyncStream.makeStream(of: String.self)
    }

    /// Called by the pool's close: says it started, then waits for `finish()`.
    func close(_ key: String) async {
        started.yield(key)
        await withCheckedContinuation { continuation in
            let now = released.withLock { released -> Bool in
                if released { return true }
                self.release.withLock { $0 = continuation }
                return false
            }
            if now { continuation.resume() }
        }
    }

    func finish() {
        let continuation = released.withLock { released -> CheckedContinuation<Void, Never>? in
            released = true
            return release.withLock { $0 }
        }
        continuation?.resume()
    }
}

@Suite(.timeLimit(.minutes(1))) struct ResourcePoolClosingTests {
    @Test func aWaitForAKeyThatIsClosingEndsAtOnceWhenCancelledAndLeavesNoWaiterBehind() async throws {
        let slow = SlowClose()
        let pool = ResourcePool<String, String>(
            configuration: .init(capacity: 4, idleTimeout: .seconds(60)),
            open: { $0 },
            close: { key, _ in await slow.close(key) })
        await pool.release(try await pool.acquire("tenant"))
        let eviction = Task { await pool.evict("tenant") }
        var started = slow.startedStream.makeAsyncIterator()
        #expect(await started.next() == "tenant")
        let waiting = Task { try await pool.acquire("tenant") }
        func registered() -> Int {
            pool.state.withLock { state -> Int in
                guard case .closing(let waiters) = state.slots["tenant"] else { return 0 }
                return waiters.count { state.slotWaits[$0] != nil }
            }
        }
        while registered() == 0 { await Task.yield() }
        // Cancelled while the close is still under way: it ends now, not when the close does.
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(registered() == 0)
        #expect(pool.state.withLock { $0.slotWaits.isEmpty })
        slow.finish()
        #expect(await eviction.value)
        let lease = try await pool.acquire("tenant")
        #expect(lease.resource == "tenant")
        await pool.release(lease)
        await pool.close()
    }

    @Test func aKeyReopenedWhileItsCloseIsSlowOpensOnlyOnceTheCloseHasFinished() async throws {
        let ledger = Ledger()
        let slow = SlowClose()
        let overlapped = Mutex(false)
        let pool = ResourcePool<String, String>(
            configuration: .init(capacity: 4, idleTimeout: .seconds(60)),
            open: { key in
                // Opening a key whose last resource is still closing would be two owners at once.
                if ledger.openNow > 0 { overlapped.withLock { $0 = true } }
                ledger.opened(key)
                return key
            },
            close: { key, _ in
                await slow.close(key)
                ledger.closed(key)
            })
        let lease = try await pool.acquire("tenant")
        await pool.release(lease)

        let eviction = Task { await pool.evict("tenant") }
        var started = slow.startedStream.makeAsyncIterator()
        #expect(await started.next() == "tenant")
        // The close is under way: the key is busy (not open, not free to delete) and a new lease
        // waits for the close instead of opening beside it.
        #expect(!pool.isOpen("tenant"))
        #expect(pool.isLeased("tenant"))
        let reopen = Task { try await pool.acquire("tenant") }
        while pool.state.withLock({ state -> Int in
            if case .closing(let waiters) = state.slots["tenant"] { return waiters.count }
            return 0
        }) == 0 {
            await Task.yield()
        }
        #expect(ledger.opens == ["tenant"])
        slow.finish()
        #expect(await eviction.value)
        let second = try await reopen.value
        #expect(ledger.opens == ["tenant", "tenant"])
        #expect(ledger.closes == ["tenant"])
        #expect(!overlapped.withLock { $0 })
        await pool.release(second)
    }
}
