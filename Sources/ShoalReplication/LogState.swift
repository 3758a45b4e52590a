import ShoalTime
import Synchronization

/// The primary log's shared, mutable state: generation, committed frames and long-poll waiters.
final class LogState: Sendable {
    struct Snapshot {
        let generation: UInt64
        let committed: UInt64
    }

    private enum Slot {
        case registered(generation: UInt64, after: UInt64, continuation: CheckedContinuation<Void, Never>)
        case resolved
    }

    private struct Inner {
        var generation: UInt64
        var committed: UInt64 = 0
        var closed = false
        var rolling = false
        var slots: [Int: Slot] = [:]
        var nextID = 0

        func isReady(generation waited: UInt64, after: UInt64) -> Bool {
            closed || generation != waited || committed > after
        }
    }

    private let inner: Mutex<Inner>

    init(generation: UInt64) {
        inner = Mutex(Inner(generation: generation))
    }

    func snapshot() -> Snapshot {
        inner.withLock { Snapshot(generation: $0.generation, committed: $0.committed) }
    }

    var isClosed: Bool { inner.withLock { $0.closed } }

    /// Records a commit reported by a WAL hook (the WAL's frame count after it).
    func noteCommitted(frames: UInt64) {
        let ready = inner.withLock { inner -> [CheckedContinuation<Void, Never>] in
            guard frames > inner.committed else { return [] }
            inner.committed = frames
            return Self.takeReady(&inner)
        }
        for continuation in ready { continuation.resume() }
    }

    /// Sets the generation and committed count (at open, after recovery, after a roll).
    func reset(generation: UInt64, committed: UInt64) {
        let ready = inner.withLock { inner -> [CheckedContinuation<Void, Never>] in
            inner.generation = generation
            inner.committed = committed
            return Self.takeReady(&inner)
        }
        for continuation in ready { continuation.resume() }
    }

    func close() {
        let ready = inner.withLock { inner -> [CheckedContinuation<Void, Never>] in
            inner.closed = true
            return Self.takeReady(&inner)
        }
        for continuation in ready { continuation.resume() }
    }

    /// Claims the one automatic roll allowed at a time.
    func beginAutomaticRoll() -> Bool {
        inner.withLock { inner in
            if inner.rolling { return false }
            inner.rolling = true
            return true
        }
    }

    func endAutomaticRoll() {
        inner.withLock { $0.rolling = false }
    }

    private static func takeReady(_ inner: inout Inner) -> [CheckedContinuation<Void, Never>] {
        var ready: [CheckedContinuation<Void, Never>] = []
        for (id, slot) in inner.slots {
            if case .registered(let generation, let after, let continuation) = slot,
                inner.isReady(generation: generation, after: after)
            {
                ready.append(continuation)
                inner.slots[id] = nil
            }
        }
        return ready
    }

    /// Waits until a frame after `after` is committed in `generation`, the generation changes, the
    /// log closes, `timeout` passes, or the task is cancelled.
    func wait(after: UInt64, generation: UInt64, timeout: Duration) async {
        let id: Int? = inner.withLock { inner in
            if inner.isReady(generation: generation, after: after) { return nil }
            inner.nextID += 1
            return inner.nextID
        }
        guard let id else { return }
        await withTaskCancellationHandler {
            await waitSlot(id, after: after, generation: generation, timeout: timeout)
        } onCancel: {
            resolve(id)
        }
        inner.withLock { _ = $0.slots.removeValue(forKey: id) }
    }

    private func waitSlot(_ id: Int, after: UInt64, generation: UInt64, timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let resumeNow = self.inner.withLock { inner -> Bool in
                        if case .resolved = inner.slots[id] {
                            inner.slots[id] = nil
                            return true
                        }
                        if inner.isReady(generation: generation, after: after) { return true }
                        inner.slots[id] = .registered(generation: generation, after: after, continuation: continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            group.addTask {
                await CancellableSleep.sleep(for: timeout)
                self.resolve(id)
            }
            await group.next()
            group.cancelAll()
            self.resolve(id)
            await group.waitForAll()
        }
    }

    /// Ends a wait: resumes its continuation, or marks it so it ends as soon as it registers.
    private func resolve(_ id: Int) {
        let continuation = inner.withLock { inner -> CheckedContinuation<Void, Never>? in
            switch inner.slots[id] {
            case .registered(_, _, let continuation):
                inner.slots[id] = nil
                return continuation
            case .resolved:
                return nil
            case nil:
                inner.slots[id] = .resolved
                return nil
            }
        }
        continuation?.resume()
    }
}
