import Synchronization

/// The bytes of results all requests of a node hold at once, capped: a request whose results would
/// pass the cap is refused (`RESPONSE_TOO_LARGE`, retry shortly) instead of the node's memory
/// growing with the number of large answers in flight.
public final class ResponseBudget: Sendable {
    /// The most bytes held at once.
    public let limit: Int
    private let held = Atomic<Int>(0)

    /// A budget of `limit` bytes.
    public init(limit: Int) {
        self.limit = limit
    }

    /// The bytes held now.
    public var inUse: Int { held.load(ordering: .relaxed) }

    /// Takes `bytes` if they fit; returns whether they did.
    func reserve(_ bytes: Int) -> Bool {
        var current = held.load(ordering: .relaxed)
        while true {
            guard current + bytes <= limit else { return false }
            let (exchanged, original) = held.compareExchange(
                expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    func release(_ bytes: Int) {
        held.subtract(bytes, ordering: .relaxed)
    }
}

/// What one request holds of the node's `ResponseBudget`, given back once (by `release()`, or when
/// the reservation goes).
final class ResponseReservation: Sendable {
    private let budget: ResponseBudget
    private let bytes = Mutex(0)

    init(_ budget: ResponseBudget) {
        self.budget = budget
    }

    /// Takes `count` more bytes; false when the node's budget has no room for them.
    func grow(by count: Int) -> Bool {
        guard budget.reserve(count) else { return false }
        bytes.withLock { $0 += count }
        return true
    }

    /// Gives everything back.
    func release() {
        let held = bytes.withLock { bytes -> Int in
            defer { bytes = 0 }
            return bytes
        }
        if held > 0 { budget.release(held) }
    }

    deinit { release() }
}
