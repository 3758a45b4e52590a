import Foundation
import ShoalReplication
import Synchronization

/// Keeps the replicas under a pool's directory within a number of bytes: when a tenant's replica
/// closes and the directory holds more, the files of closed tenants are deleted, least recently
/// closed first. Open replicas are never touched; a tenant being opened is taken off the list first,
/// under the same lock, so its files are never deleted under it. Sizes are measured once per open
/// and once per close (an open replica counts with its size when it opened), so an event costs one
/// directory's worth of `stat`s, not the whole pool's; replicas already on disk when the pool starts
/// count as closed, oldest first.
final class DiskBudget: Sendable {
    private struct State {
        /// Closed tenants on disk: their bytes and when they closed (a sequence number).
        var closed: [String: (bytes: Int64, order: UInt64)] = [:]
        /// Replicas of a tenant open now (a reopen can start before the last close finished).
        var open: [String: Int] = [:]
        /// Bytes of open tenants' replicas, measured when they opened.
        var openBytes: [String: Int64] = [:]
        var sequence: UInt64 = 0
        var deletions = 0
        var lastTotal: Int64 = 0
    }

    let limit: Int64
    let root: String
    private let state = Mutex(State())

    init(limit: Int64, root: String) {
        self.limit = limit
        self.root = root
        // Replicas left by an earlier run: closed, least recently modified first.
        let existing = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).map { name in
            let modified =
                (try? FileManager.default.attributesOfItem(atPath: root + "/" + name))?[.modificationDate] as? Date
            return (name, modified ?? .distantPast, FileSystem.bytes(under: root + "/" + name))
        }.sorted { $0.1 < $1.1 }
        state.withLock { state in
            for (name, _, bytes) in existing {
                state.sequence += 1
                state.closed[name] = (bytes, state.sequence)
            }
        }
    }

    /// Called before a tenant's replica opens: its files are in use from now on.
    func opening(_ tenant: String) {
        state.withLock { state in
            state.closed[tenant] = nil
            state.open[tenant, default: 0] += 1
            state.openBytes[tenant] = state.openBytes[tenant] ?? 0
        }
    }

    /// Called after a tenant's replica closed: counts it, then enforces the limit.
    func closed(_ tenant: String) {
        let bytes = FileSystem.bytes(under: root + "/" + tenant)
        state.withLock { state in
            let stillOpen = (state.open[tenant] ?? 1) - 1
            state.open[tenant] = stillOpen > 0 ? stillOpen : nil
            guard stillOpen <= 0 else { return }
            state.openBytes[tenant] = nil
            state.sequence += 1
            state.closed[tenant] = (bytes, state.sequence)
            enforce(&state)
        }
    }

    /// Called after a tenant's replica opened (its files now exist): counts it, enforces the limit.
    func opened(_ tenant: String) {
        let bytes = FileSystem.bytes(under: root + "/" + tenant)
        state.withLock { state in
            if state.open[tenant] != nil { state.openBytes[tenant] = bytes }
            enforce(&state)
        }
    }

    /// Deletes closed tenants' files, least recently closed first, while the directory holds more
    /// than the limit.
    private func enforce(_ state: inout State) {
        var total = state.closed.values.reduce(0) { $0 + $1.bytes } + state.openBytes.values.reduce(0, +)
        while total > limit, let oldest = state.closed.min(by: { $0.value.order < $1.value.order }) {
            try? FileManager.default.removeItem(atPath: root + "/" + oldest.key)
            state.closed[oldest.key] = nil
            total -= oldest.value.bytes
            state.deletions += 1
        }
        state.lastTotal = total
    }

    /// Bytes under the directory after the last enforcement, and how many replicas were deleted.
    var usage: (bytes: Int64, deletions: Int) { state.withLock { ($0.lastTotal, $0.deletions) } }
}
