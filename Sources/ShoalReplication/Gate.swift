import Foundation
import ShoalTime

/// A shared/exclusive gate that prefers the exclusive side: once an exclusive holder waits, no new
/// shared holder enters. Not re-entrant. Used by the primary log (writers, exports and frame reads
/// shared; a generation roll exclusive).
final class Gate: @unchecked Sendable {
    // `@unchecked Sendable`: every field is read and written only with `condition` locked.
    private let condition = NSCondition()
    private var sharedHolders = 0
    private var exclusiveHeld = false
    private var exclusiveWaiting = 0

    /// How many hold the gate shared now (the primary log's write permits, exports, frame reads).
    var sharedCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return sharedHolders
    }

    /// Enters shared; waits while an exclusive holder is inside or waiting.
    func acquireShared() {
        condition.lock()
        while exclusiveHeld || exclusiveWaiting > 0 {
            condition.wait()
        }
        sharedHolders += 1
        condition.unlock()
    }

    /// Leaves shared.
    func releaseShared() {
        condition.lock()
        sharedHolders -= 1
        if sharedHolders == 0 { condition.broadcast() }
        condition.unlock()
    }

    /// Enters exclusive once every shared holder has left; false if that takes longer than `timeout`.
    func acquireExclusive(timeout: Duration) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout.inSeconds)
        condition.lock()
        exclusiveWaiting += 1
        while sharedHolders > 0 || exclusiveHeld {
            if !condition.wait(until: deadline) && (sharedHolders > 0 || exclusiveHeld) {
                exclusiveWaiting -= 1
                condition.broadcast()
                condition.unlock()
                return false
            }
        }
        exclusiveWaiting -= 1
        exclusiveHeld = true
        condition.unlock()
        return true
    }

    /// Leaves exclusive.
    func releaseExclusive() {
        condition.lock()
        exclusiveHeld = false
        condition.broadcast()
        condition.unlock()
    }

    /// Runs `body` holding the gate shared.
    func withShared<T>(_ body: () throws -> T) rethrows -> T {
        acquireShared()
        defer { releaseShared() }
        return try body()
    }
}
