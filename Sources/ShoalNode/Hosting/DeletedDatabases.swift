import Synchronization

/// The databases a node is deleting, and the incarnations it deleted lately. A database being
/// deleted refuses every request until its files are gone (a deletion that could not finish, because
/// requests still held the database, keeps refusing until one does). A deleted incarnation, known by
/// its catalog id, is refused if a placement answer still in flight names it again.
final class DeletedDatabases: Sendable {
    private struct State {
        var deleting: Set<Namespace> = []
        var incarnations: [String: ContinuousClock.Instant] = [:]
    }

    private let state = Mutex(State())
    /// The most deleted incarnations remembered at once (the oldest are forgotten first).
    let capacity: Int

    init(capacity: Int = 10_000) {
        self.capacity = max(1, capacity)
    }

    /// Whether `namespace` is being deleted now.
    func isDeleting(_ namespace: Namespace) -> Bool {
        state.withLock { $0.deleting.contains(namespace) }
    }

    /// Marks `namespace` as being deleted: refused from now on.
    func begin(_ namespace: Namespace) {
        state.withLock { state in _ = state.deleting.insert(namespace) }
    }

    /// The files of `namespace` are gone: it is no longer refused as such, and `incarnation` (its
    /// catalog id, when known) is remembered as deleted.
    func finish(_ namespace: Namespace, incarnation: String?) {
        state.withLock { state in
            state.deleting.remove(namespace)
            if let incarnation { Self.remember(incarnation, in: &state, capacity: capacity) }
        }
    }

    /// Remembers that `incarnation` was deleted (a deletion for a database this node does not hold).
    func remember(_ incarnation: String) {
        state.withLock { Self.remember(incarnation, in: &$0, capacity: capacity) }
    }

    /// Whether `incarnation` was deleted here lately.
    func wasDeleted(_ incarnation: String?) -> Bool {
        guard let incarnation else { return false }
        return state.withLock { $0.incarnations[incarnation] != nil }
    }

    private static func remember(_ incarnation: String, in state: inout State, capacity: Int) {
        if state.incarnations[incarnation] == nil, state.incarnations.count >= capacity,
            let oldest = state.incarnations.min(by: { $0.value < $1.value })?.key
        {
            state.incarnations[oldest] = nil
        }
        state.incarnations[incarnation] = .now
    }
}
