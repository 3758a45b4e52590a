import ShoalTime
import Synchronization

/// A bounded pool of resources keyed by tenant: opened lazily (once, however many callers ask at
/// the same time), leased to callers, kept at most `capacity` at a time (least recently used first
/// out), closed when idle past `idleTimeout`, and never closed while leased.
///
/// The pool knows nothing of what it holds: `open` and `close` are given to it. The node keeps its
/// open databases in one; the client keeps its tenants' embedded replicas in another.
public final class ResourcePool<Key: Hashable & Sendable, Resource: Sendable>: Sendable {
    /// How the pool bounds itself.
    public struct Configuration: Sendable {
        /// The most resources open (or opening) at once.
        public var capacity: Int
        /// How long a resource may stay unleased before `evictIdle()` closes it.
        public var idleTimeout: Duration
        /// How long `acquire` waits for room while every resource is leased before it throws
        /// `PoolError.timedOut`; nil waits as long as it takes.
        public var capacityWaitTimeout: Duration?

        /// A pool of `capacity` resources closed after `idleTimeout` unused, whose callers wait at
        /// most `capacityWaitTimeout` for room (nil: as long as it takes).
        public init(capacity: Int, idleTimeout: Duration, capacityWaitTimeout: Duration? = nil) {
            self.capacity = max(1, capacity)
            self.idleTimeout = idleTimeout
            self.capacityWaitTimeout = capacityWaitTimeout
        }
    }

    /// Counters of what the pool did.
    public struct Statistics: Sendable, Equatable {
        /// Acquires served by a resource already open.
        public var hits = 0
        /// Acquires that had to open (or wait for an opening) resource.
        public var misses = 0
        /// Resources opened successfully.
        public var opens = 0
        /// Opens that failed.
        public var failedOpens = 0
        /// Resources closed to make room or because they were idle.
        public var evictions = 0
        /// Resources open now.
        public var open = 0
        /// Leases held now.
        public var leased = 0
        /// Acquires that gave up because the pool stayed full for their whole wait.
        public var capacityTimeouts = 0
    }

    /// A resource leased from the pool; give it back with `release(_:)` exactly once.
    public struct Lease: Sendable {
        /// The key it was opened for.
        public let key: Key
        /// The resource.
        public let resource: Resource

        @usableFromInline
        init(key: Key, resource: Resource) {
            self.key = key
            self.resource = resource
        }
    }

    /// A slot; its waiters are ids of `State.slotWaits`.
    @usableFromInline
    enum Slot {
        case opening(waiters: [Int])
        case open(resource: Resource, leases: Int, lastUsed: ContinuousClock.Instant)
        /// Being closed: the key cannot open again until its close has finished (a reopen would
        /// overlap the close, two owners on one file); whoever wants it waits here.
        case closing(waiters: [Int])
    }

    /// One caller waiting (for room, or for a slot to finish opening or closing), by id: between
    /// deciding to wait and registering (`pending`), registered, or ended (timed out or cancelled)
    /// before it registered.
    @usableFromInline
    enum Wait {
        case pending
        case registered(CheckedContinuation<Void, Never>)
        case ended
    }

    @usableFromInline
    struct State {
        @usableFromInline var slots: [Key: Slot] = [:]
        @usableFromInline var capacityWaits: [Int: Wait] = [:]
        /// Callers waiting for a slot that is opening or closing.
        @usableFromInline var slotWaits: [Int: Wait] = [:]
        @usableFromInline var nextCapacityWaitID = 0
        @usableFromInline var statistics = Statistics()
        @usableFromInline var closed = false

        @usableFromInline init() {}
    }

    private enum Step {
        case leased(Resource)
        case waitForOpening
        case waitForClosing
        case waitForCapacity
        case open(evicting: (Key, Resource)?)
    }

    /// The configuration in force.
    public let configuration: Configuration
    @usableFromInline let state = Mutex(State())
    private let openResource: @Sendable (Key) async throws -> Resource
    private let closeResource: @Sendable (Key, Resource) async -> Void
    @usableFromInline let now: @Sendable () -> ContinuousClock.Instant

    /// Creates a pool that opens resources with `open` and closes them with `close`; `now` is the
    /// clock used for idleness (injectable for tests).
    public init(
        configuration: Configuration,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now },
        open: @escaping @Sendable (Key) async throws -> Resource,
        close: @escaping @Sendable (Key, Resource) async -> Void
    ) {
        self.configuration = configuration
        self.now = now
        self.openResource = open
        self.closeResource = close
    }

    /// What the pool has done so far.
    public var statistics: Statistics {
        state.withLock { $0.statistics }
    }

    /// Leases the resource for `key`, opening it if needed; waits while the pool is full of
    /// leased resources, at most `capacityWaitTimeout` (then throws `PoolError.timedOut`), and
    /// throws `CancellationError` when cancelled while it waits. An open that fails throws to every
    /// caller that waited for it.
    public func acquire(_ key: Key) async throws -> Lease {
        var counted = false
        var deadline: ContinuousClock.Instant?
        while true {
            let instant = now()
            let step = try state.withLock { state -> Step in
                guard !state.closed else { throw PoolError.closed }
                switch state.slots[key] {
                case .open(let resource, let leases, _):
                    state.slots[key] = .open(resource: resource, leases: leases + 1, lastUsed: instant)
                    if !counted { state.statistics.hits += 1 }
                    state.statistics.leased += 1
                    return .leased(resource)
                case .opening:
                    if !counted { state.statistics.misses += 1 }
                    return .waitForOpening
                case .closing:
                    if !counted { state.statistics.misses += 1 }
                    return .waitForClosing
                case nil:
                    if !counted { state.statistics.misses += 1 }
                    var victim: (Key, Resource)?
                    if state.slots.count >= configuration.capacity {
                        guard let evicted = Self.evictLeastRecentlyUsed(&state) else { return .waitForCapacity }
                        victim = evicted
                    }
                    state.slots[key] = .opening(waiters: [])
                    return .open(evicting: victim)
                }
            }
            counted = true
            switch step {
            case .leased(let resource):
                return Lease(key: key, resource: resource)
            case .waitForOpening, .waitForClosing:
                await waitWhileOpeningOrClosing(key)
                try Task.checkCancellation()
            case .waitForCapacity:
                try Task.checkCancellation()
                if deadline == nil, let timeout = configuration.capacityWaitTimeout {
                    deadline = ContinuousClock.now + timeout
                }
                if let deadline, ContinuousClock.now >= deadline {
                    state.withLock { $0.statistics.capacityTimeouts += 1 }
                    throw PoolError.timedOut
                }
                await waitForCapacity(until: deadline)
            case .open(let victim):
                if let (victimKey, victimResource) = victim {
                    await close(victimKey, victimResource)
                }
                return try await open(key)
            }
        }
    }

    /// Waits until the slot of `key` is no longer opening or closing (at once if it is not now),
    /// or until the task is cancelled; the wait is off the list when this returns.
    private func waitWhileOpeningOrClosing(_ key: Key) async {
        let id = state.withLock { state -> Int in
            state.nextCapacityWaitID &+= 1
            state.slotWaits[state.nextCapacityWaitID] = .pending
            return state.nextCapacityWaitID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    guard case .pending = state.slotWaits[id] else {
                        state.slotWaits[id] = nil
                        return true
                    }
                    switch state.slots[key] {
                    case .opening(var waiters):
                        waiters.append(id)
                        state.slots[key] = .opening(waiters: waiters)
                    case .closing(var waiters):
                        waiters.append(id)
                        state.slots[key] = .closing(waiters: waiters)
                    case .open, nil:
                        state.slotWaits[id] = nil
                        return true
                    }
                    state.slotWaits[id] = .registered(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            endWait(id, in: \.slotWaits)
        }
        state.withLock { _ = $0.slotWaits.removeValue(forKey: id) }
    }

    /// Takes the waits of a slot's list that are still registered, for the caller to wake.
    private static func takeSlotWaiters(_ ids: [Int], _ state: inout State) -> [CheckedContinuation<Void, Never>] {
        ids.compactMap { id in
            guard case .registered(let continuation) = state.slotWaits.removeValue(forKey: id) else { return nil }
            return continuation
        }
    }

    /// Waits until a release, an eviction or a failed open may have made room (or the pool closed),
    /// until `deadline`, or until the task is cancelled. The wait is off the list when this returns,
    /// however it ended.
    private func waitForCapacity(until deadline: ContinuousClock.Instant?) async {
        let id = state.withLock { state -> Int in
            state.nextCapacityWaitID &+= 1
            state.capacityWaits[state.nextCapacityWaitID] = .pending
            return state.nextCapacityWaitID
        }
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.registerCapacityWait(id) }
                if let deadline {
                    group.addTask {
                        if await CancellableSleep.sleep(for: deadline - ContinuousClock.now) {
                            self.endWait(id, in: \.capacityWaits)
                        }
                    }
                }
                await group.next()
                // Woken, timed out or cancelled: the timer goes (freed at once), the wait ends.
                group.cancelAll()
                self.endWait(id, in: \.capacityWaits)
                await group.waitForAll()
            }
        } onCancel: {
            endWait(id, in: \.capacityWaits)
        }
        state.withLock { _ = $0.capacityWaits.removeValue(forKey: id) }
    }

    /// Registers wait `id` for the next wake-up, unless it ended already or there is room now.
    private func registerCapacityWait(_ id: Int) async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                guard case .pending = state.capacityWaits[id] else {
                    state.capacityWaits[id] = nil
                    return true
                }
                let full = state.slots.count >= configuration.capacity
                let anyIdle = state.slots.values.contains { slot in
                    if case .open(_, 0, _) = slot { return true }
                    return false
                }
                if !full || anyIdle || state.closed {
                    state.capacityWaits[id] = nil
                    return true
                }
                state.capacityWaits[id] = .registered(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Ends wait `id` of `table` (capacity or slot waits): resumes it if it is registered, or marks
    /// it so it ends as soon as it registers; nothing if it was woken already. A slot wait's id
    /// stays in its slot's list and is skipped when the slot wakes.
    private func endWait(_ id: Int, in table: any WritableKeyPath<State, [Int: Wait]> & Sendable) {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            switch state[keyPath: table][id] {
            case .registered(let continuation):
                state[keyPath: table][id] = nil
                return continuation
            case .pending:
                state[keyPath: table][id] = .ended
                return nil
            case .ended, nil:
                return nil
            }
        }
        continuation?.resume()
    }

    /// How many callers wait for room now.
    var capacityWaiting: Int {
        state.withLock { $0.capacityWaits.count }
    }

    /// Opens the resource for a slot marked `.opening` and wakes whoever waited for it.
    private func open(_ key: Key) async throws -> Lease {
        do {
            let resource = try await openResource(key)
            let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                guard case .opening(let waiters) = state.slots[key] else { return [] }
                state.slots[key] = .open(resource: resource, leases: 1, lastUsed: now())
                state.statistics.opens += 1
                state.statistics.open += 1
                state.statistics.leased += 1
                return Self.takeSlotWaiters(waiters, &state)
            }
            for waiter in waiters { waiter.resume() }
            return Lease(key: key, resource: resource)
        } catch {
            let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                guard case .opening(let waiters) = state.slots[key] else { return [] }
                state.slots[key] = nil
                state.statistics.failedOpens += 1
                return Self.takeSlotWaiters(waiters, &state) + Self.takeCapacityWaiters(&state)
            }
            // Waiters try again: the next one opens anew (an error is not cached).
            for waiter in waiters { waiter.resume() }
            throw error
        }
    }

    /// The fast path of a hit: leases the resource for `key` if it is open, without suspending;
    /// nil when it is not (then `acquire`). Inlined into the caller, so it runs specialized.
    @inlinable
    public func leaseIfOpen(_ key: Key) -> Lease? {
        let instant = now()
        return state.withLock { state -> Lease? in
            guard !state.closed, case .open(let resource, let leases, _) = state.slots[key] else { return nil }
            state.slots[key] = .open(resource: resource, leases: leases + 1, lastUsed: instant)
            state.statistics.hits += 1
            state.statistics.leased += 1
            return Lease(key: key, resource: resource)
        }
    }

    /// The fast path of giving a lease back: done without suspending when nobody waits for
    /// capacity and the pool is not closing (true); otherwise nothing is done (false) and
    /// `release` must be called.
    @inlinable
    public func releaseIfUncontended(_ lease: Lease) -> Bool {
        let instant = now()
        return state.withLock { state -> Bool in
            guard !state.closed, state.capacityWaits.isEmpty,
                case .open(let resource, let leases, _) = state.slots[lease.key]
            else { return false }
            state.slots[lease.key] = .open(resource: resource, leases: leases - 1, lastUsed: instant)
            state.statistics.leased -= 1
            return true
        }
    }

    /// Gives a lease back. The resource stays open for the next caller until it is evicted.
    public func release(_ lease: Lease) async {
        let instant = now()
        let (wake, closeNow) = state.withLock { state -> ([CheckedContinuation<Void, Never>], Resource?) in
            guard case .open(let resource, let leases, _) = state.slots[lease.key] else { return ([], nil) }
            state.statistics.leased -= 1
            if leases == 1 && state.closed {
                state.slots[lease.key] = .closing(waiters: [])
                state.statistics.open -= 1
                return ([], resource)
            }
            state.slots[lease.key] = .open(resource: resource, leases: leases - 1, lastUsed: instant)
            return (leases == 1 ? Self.takeCapacityWaiters(&state) : [], nil)
        }
        for waiter in wake { waiter.resume() }
        if let closeNow { await close(lease.key, closeNow) }
    }

    /// Runs `body` with the resource for `key` leased.
    public func withLease<T>(_ key: Key, _ body: (Resource) async throws -> T) async throws -> T {
        let lease = try await acquire(key)
        do {
            let result = try await body(lease.resource)
            await release(lease)
            return result
        } catch {
            await release(lease)
            throw error
        }
    }

    /// Closes every resource unleased for at least `idleTimeout`; returns how many.
    @discardableResult
    public func evictIdle() async -> Int {
        let instant = now()
        let idle = state.withLock { state -> [(Key, Resource)] in
            var idle: [(Key, Resource)] = []
            for (key, slot) in state.slots {
                if case .open(let resource, 0, let lastUsed) = slot, instant - lastUsed >= configuration.idleTimeout {
                    idle.append((key, resource))
                    state.slots[key] = .closing(waiters: [])
                }
            }
            state.statistics.evictions += idle.count
            state.statistics.open -= idle.count
            return idle
        }
        for (key, resource) in idle { await close(key, resource) }
        return idle.count
    }

    /// Whether the resource for `key` is open (leased or not).
    public func isOpen(_ key: Key) -> Bool {
        state.withLock { state in
            if case .open = state.slots[key] { return true }
            return false
        }
    }

    /// The keys of the resources open now.
    public var openKeys: [Key] {
        state.withLock { state in
            state.slots.compactMap { key, slot in
                if case .open = slot { return key }
                return nil
            }
        }
    }

    /// Whether the resource for `key` is leased right now, or being opened or closed.
    public func isLeased(_ key: Key) -> Bool {
        state.withLock { state in
            switch state.slots[key] {
            case .open(_, let leases, _): return leases > 0
            case .opening, .closing: return true
            case nil: return false
            }
        }
    }

    /// Closes a resource now if it is open and unleased (e.g. its tenant was deleted); returns
    /// whether it did.
    @discardableResult
    public func evict(_ key: Key) async -> Bool {
        let victim = state.withLock { state -> Resource? in
            guard case .open(let resource, 0, _) = state.slots[key] else { return nil }
            state.slots[key] = .closing(waiters: [])
            state.statistics.evictions += 1
            state.statistics.open -= 1
            return resource
        }
        guard let victim else { return false }
        await close(key, victim)
        return true
    }

    /// Stops the pool: no new leases; unleased resources close now, leased ones when released.
    public func close() async {
        let (idle, waiters) = state.withLock { state -> ([(Key, Resource)], [CheckedContinuation<Void, Never>]) in
            state.closed = true
            var idle: [(Key, Resource)] = []
            for (key, slot) in state.slots {
                if case .open(let resource, 0, _) = slot {
                    idle.append((key, resource))
                    state.slots[key] = .closing(waiters: [])
                }
            }
            state.statistics.open -= idle.count
            return (idle, Self.takeCapacityWaiters(&state))
        }
        for waiter in waiters { waiter.resume() }
        for (key, resource) in idle { await close(key, resource) }
    }

    /// Closes a resource whose slot was marked `.closing`, then frees the slot and wakes whoever
    /// waited for the key or for room.
    private func close(_ key: Key, _ resource: Resource) async {
        await closeResource(key, resource)
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            var waiters: [CheckedContinuation<Void, Never>] = []
            if case .closing(let waiting) = state.slots[key] {
                state.slots[key] = nil
                waiters = Self.takeSlotWaiters(waiting, &state)
            }
            return waiters + Self.takeCapacityWaiters(&state)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Removes the least recently used unleased resource, if any, for the caller to close.
    private static func evictLeastRecentlyUsed(_ state: inout State) -> (Key, Resource)? {
        var oldest: (Key, Resource, ContinuousClock.Instant)?
        for (key, slot) in state.slots {
            if case .open(let resource, 0, let lastUsed) = slot, oldest == nil || lastUsed < oldest!.2 {
                oldest = (key, resource, lastUsed)
            }
        }
        guard let oldest else { return nil }
        state.slots[oldest.0] = .closing(waiters: [])
        state.statistics.evictions += 1
        state.statistics.open -= 1
        return (oldest.0, oldest.1)
    }

    /// Takes every registered capacity wait, oldest first, for the caller to wake (they try
    /// again; those still pending see the room when they register).
    private static func takeCapacityWaiters(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        var woken: [(id: Int, continuation: CheckedContinuation<Void, Never>)] = []
        for (id, wait) in state.capacityWaits {
            if case .registered(let continuation) = wait { woken.append((id, continuation)) }
        }
        for waiter in woken { state.capacityWaits[waiter.id] = nil }
        return woken.sorted { $0.id < $1.id }.map(\.continuation)
    }
}

/// Errors of the pool itself (errors of `open` pass through unchanged).
public enum PoolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The pool was closed; nothing more can be leased.
    case closed
    /// Every resource stayed leased for the whole `capacityWaitTimeout`.
    case timedOut

    /// A readable message.
    public var description: String {
        switch self {
        case .closed: "the pool is closed; open a new one"
        case .timedOut: "every resource of the pool stayed in use for the whole wait; try again later"
        }
    }
}
