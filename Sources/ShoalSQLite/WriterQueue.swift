import ShoalTime
import Synchronization

/// One writer at a time for one database, waited for without a thread: writers queue here (first
/// come, first served) before their work takes a thread of a `BlockingExecutor`, so a transaction
/// that holds the database's write lock is never stuck behind writers waiting for it inside SQLite.
///
/// The turn belongs to an owner (a connection's user: a stream, a request) until it gives it back;
/// taking it again while holding it is a no-op.
public final class WriterQueue: Sendable {
    /// Who holds or waits for the turn: unique for the life of the process (never reused, unlike
    /// an object's address).
    public struct Owner: Hashable, Sendable {
        private static let next = Atomic<UInt64>(0)
        private let id: UInt64

        /// A new owner, unlike any other.
        public init() {
            id = Self.next.add(1, ordering: .relaxed).newValue
        }
    }

    private struct Waiter {
        let id: UInt64
        let owner: Owner
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var holder: Owner?
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    /// A queue with nobody holding the turn.
    public init() {}

    /// Who holds the turn now.
    public var holder: Owner? { state.withLock { $0.holder } }

    /// How many owners wait for the turn.
    public var waitingCount: Int { state.withLock { $0.waiters.count } }

    /// Whether `owner` holds the turn.
    public func isHeld(by owner: Owner) -> Bool {
        state.withLock { $0.holder == owner }
    }

    /// Takes the turn if nobody holds it or nobody waits for it; returns whether `owner` holds it.
    /// Never waits (for use on a thread of the executor).
    public func tryAcquire(_ owner: Owner) -> Bool {
        state.withLock { state in
            if state.holder == owner { return true }
            guard state.holder == nil, state.waiters.isEmpty else { return false }
            state.holder = owner
            return true
        }
    }

    /// Waits (without a thread) until `owner` holds the turn, at most until `deadline`; returns
    /// whether it does. A cancelled wait returns false at once.
    public func acquire(_ owner: Owner, until deadline: ContinuousClock.Instant) async -> Bool {
        if tryAcquire(owner) { return true }
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                        let granted = self.state.withLock { state -> Bool? in
                            if state.holder == owner { return true }
                            if state.holder == nil, state.waiters.isEmpty {
                                state.holder = owner
                                return true
                            }
                            if Task.isCancelled { return false }
                            state.waiters.append(Waiter(id: id, owner: owner, continuation: continuation))
                            return nil
                        }
                        if let granted { continuation.resume(returning: granted) }
                    }
                } onCancel: {
                    self.giveUp(id)
                }
            }
            group.addTask {
                _ = await CancellableSleep.sleep(for: deadline - .now)
                return nil
            }
            let first = await group.next() ?? nil
            if let granted = first {
                group.cancelAll()
                return granted
            }
            // The deadline passed first: stop waiting, unless the turn came at the same moment.
            group.cancelAll()
            let granted = await group.next() ?? nil
            return granted ?? false
        }
    }

    /// Gives the turn back if `owner` holds it; the longest waiter gets it.
    public func release(_ owner: Owner) {
        let next = state.withLock { state -> Waiter? in
            guard state.holder == owner else { return nil }
            guard !state.waiters.isEmpty else {
                state.holder = nil
                return nil
            }
            let next = state.waiters.removeFirst()
            state.holder = next.owner
            return next
        }
        next?.continuation.resume(returning: true)
    }

    /// Removes a waiter that stopped waiting (cancelled, or past its deadline).
    private func giveUp(_ id: UInt64) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(returning: false)
    }
}
