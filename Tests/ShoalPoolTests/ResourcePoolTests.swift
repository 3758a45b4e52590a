import Synchronization
import Testing

@testable import ShoalPool

/// A fake resource world: records opens and closes, and how many were open at the peak.
final class Ledger: Sendable {
    private struct State {
        var opens: [String] = []
        var closes: [String] = []
        var openNow = 0
        var peak = 0
    }

    private let state = Mutex(State())

    func opened(_ key: String) {
        state.withLock {
            $0.opens.append(key)
            $0.openNow += 1
            $0.peak = max($0.peak, $0.openNow)
        }
    }

    func closed(_ key: String) {
        state.withLock {
            $0.closes.append(key)
            $0.openNow -= 1
        }
    }

    var opens: [String] { state.withLock { $0.opens } }
    var closes: [String] { state.withLock { $0.closes } }
    var peak: Int { state.withLock { $0.peak } }
    var openNow: Int { state.withLock { $0.openNow } }
}

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    private let instant = Mutex(ContinuousClock.now)
    var now: ContinuousClock.Instant { instant.withLock { $0 } }
    func advance(by duration: Duration) { instant.withLock { $0 = $0.advanced(by: duration) } }
}

struct OpenFailure: Error, Equatable {}

func makePool(
    capacity: Int, idle: Duration = .seconds(60), capacityWait: Duration? = nil, ledger: Ledger,
    clock: ManualClock = ManualClock(), open: (@Sendable (String) async throws -> Void)? = nil
) -> ResourcePool<String, String> {
    ResourcePool(
        configuration: .init(capacity: capacity, idleTimeout: idle, capacityWaitTimeout: capacityWait),
        now: { clock.now },
        open: { key in
            try await open?(key)
            ledger.opened(key)
            return "resource-\(key)"
        },
        close: { key, _ in ledger.closed(key) })
}

@Suite(.timeLimit(.minutes(2))) struct ResourcePoolTests {
    @Test func concurrentFirstRequestsOpenOnce() async throws {
        let ledger = Ledger()
        let pool = makePool(capacity: 4, ledger: ledger, open: { _ in try await Task.sleep(for: .milliseconds(20)) })
        try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<50 {
                group.addTask { try await pool.withLease("tenant") { $0 } }
            }
            for try await resource in group {
                #expect(resource == "resource-tenant")
            }
        }
        #expect(ledger.opens == ["tenant"])
        #expect(pool.statistics.opens == 1)
        #expect(pool.statistics.hits + pool.statistics.misses == 50)
        #expect(pool.statistics.leased == 0)
    }

    @Test func evictsLeastRecentlyUsedWhenFull() async throws {
        let ledger = Ledger()
        let clock = ManualClock()
        let pool = makePool(capacity: 2, ledger: ledger, clock: clock)
        _ = try await pool.withLease("a") { $0 }
        clock.advance(by: .seconds(1))
        _ = try await pool.withLease("b") { $0 }
        clock.advance(by: .seconds(1))
        _ = try await pool.withLease("a") { $0 }  // a is now the most recent
        clock.advance(by: .seconds(1))
        _ = try await pool.withLease("c") { $0 }
        #expect(ledger.closes == ["b"])
        #expect(pool.statistics.evictions == 1)
        #expect(pool.statistics.open == 2)
    }

    @Test func neverEvictsALeasedResourceAndWaitsForRoom() async throws {
        let ledger = Ledger()
        let pool = makePool(capacity: 1, ledger: ledger)
        let held = try await pool.acquire("a")
        let second = Task { try await pool.withLease("b") { $0 } }
        // b cannot open while a is leased; await the condition that b is waiting (bounded).
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while pool.statistics.misses < 2 && ContinuousClock.now < deadline { await Task.yield() }
        #expect(ledger.opens == ["a"])
        #expect(ledger.closes == [])
        await pool.release(held)
        #expect(try await second.value == "resource-b")
        #expect(ledger.closes == ["a"])
        #expect(ledger.peak == 1)
    }

    @Test func waitForCapacityGivesUpAtItsTimeoutAndLeavesNoWaiterBehind() async throws {
        let ledger = Ledger()
        let pool = makePool(capacity: 1, capacityWait: .milliseconds(50), ledger: ledger)
        let held = try await pool.acquire("a")
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: PoolError.timedOut) { try await pool.acquire("b") }
        // It gives up (without the timeout it would wait for the lease forever, past the suite's
        // time limit); how soon after 50 ms depends on how loaded the machine is, so only the lower
        // bound is checked.
        #expect(clock.now - start >= .milliseconds(50))
        #expect(pool.capacityWaiting == 0)
        #expect(pool.statistics.capacityTimeouts == 1)
        // Nobody is left on the wait list, so the fast path of a release applies.
        #expect(pool.releaseIfUncontended(held))
        #expect(try await pool.withLease("b") { $0 } == "resource-b")
        #expect(ledger.opens == ["a", "b"])
    }

    @Test func cancelledWaitForCapacityEndsAtOnceAndLeavesNoWaiterBehind() async throws {
        let ledger = Ledger()
        let pool = makePool(capacity: 1, ledger: ledger)
        let held = try await pool.acquire("a")
        let waiter = Task { try await pool.acquire("b") }
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while pool.capacityWaiting == 0 && ContinuousClock.now < deadline { await Task.yield() }
        #expect(pool.capacityWaiting == 1)
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(pool.capacityWaiting == 0)
        #expect(pool.releaseIfUncontended(held))
        #expect(ledger.opens == ["a"])
    }

    @Test func closesResourcesIdlePastTheTimeout() async throws {
        let ledger = Ledger()
        let clock = ManualClock()
        let pool = makePool(capacity: 10, idle: .seconds(30), ledger: ledger, clock: clock)
        _ = try await pool.withLease("old") { $0 }
        clock.advance(by: .seconds(20))
        let leased = try await pool.acquire("busy")
        _ = try await pool.withLease("recent") { $0 }
        #expect(await pool.evictIdle() == 0)
        clock.advance(by: .seconds(15))
        #expect(await pool.evictIdle() == 1)
        #expect(ledger.closes == ["old"])
        clock.advance(by: .seconds(60))
        #expect(await pool.evictIdle() == 1)  // "recent"; "busy" is leased
        #expect(Set(ledger.closes) == ["old", "recent"])
        await pool.release(leased)
        clock.advance(by: .seconds(31))
        #expect(await pool.evictIdle() == 1)
        #expect(ledger.openNow == 0)
    }

    @Test func failedOpenReachesEveryWaiterAndIsNotCached() async throws {
        let ledger = Ledger()
        let attempts = Mutex(0)
        let pool = makePool(capacity: 2, ledger: ledger) { _ in
            let attempt = attempts.withLock { value -> Int in
                value += 1
                return value
            }
            try await Task.sleep(for: .milliseconds(10))
            if attempt == 1 { throw OpenFailure() }
        }
        await #expect(throws: OpenFailure.self) { try await pool.withLease("t") { $0 } }
        #expect(pool.statistics.failedOpens == 1)
        #expect(try await pool.withLease("t") { $0 } == "resource-t")
        #expect(ledger.opens == ["t"])
    }

    @Test func openResourcesNeverExceedTheCapacity() async throws {
        let ledger = Ledger()
        let pool = makePool(capacity: 10, ledger: ledger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for index in 0..<250 {
                        _ = try await pool.withLease("tenant-\((index * 7 + worker * 13) % 1000)") { $0 }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(ledger.peak <= 10)
        #expect(ledger.opens.count > 100)
        #expect(pool.statistics.open == ledger.openNow)
    }

    @Test func closingClosesIdleNowAndLeasedOnRelease() async throws {
        let ledger = Ledger()
        let pool = makePool(capacity: 4, ledger: ledger)
        _ = try await pool.withLease("idle") { $0 }
        let leased = try await pool.acquire("leased")
        await pool.close()
        #expect(ledger.closes == ["idle"])
        await #expect(throws: PoolError.closed) { try await pool.acquire("new") }
        await pool.release(leased)
        #expect(ledger.closes == ["idle", "leased"])
    }
}
