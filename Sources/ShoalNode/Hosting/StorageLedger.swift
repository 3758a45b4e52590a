import Foundation
import ShoalModel
import ShoalReplication
import Synchronization

/// What the node's primaries take on disk, for the control plane, and which organizations it said
/// are over their plan's `storage_bytes`, whose primaries then refuse writes.
///
/// A primary counts from when it opens until it closes; what it took when it closed is kept until
/// reported (a closed database's files do not change). Each heartbeat carries the sizes that changed
/// since the last one the control plane confirmed, and its answer replaces the list of organizations
/// over quota. The check is as fresh as the last heartbeat: an organization can overshoot its quota
/// by what it writes in one heartbeat interval (each database stays within its own `size_limit`).
public final class StorageLedger: Sendable {
    private struct State {
        /// The open primaries with a catalog id, by that id.
        var open: [String: PrimaryLog] = [:]
        /// What closed primaries took when they closed, not yet reported.
        var closed: [String: Int64] = [:]
        /// What the control plane last confirmed, by database id.
        var reported: [String: Int64] = [:]
        /// The organizations over quota, by slug.
        var exceeded: [String: Platform.StorageExceeded] = [:]
    }

    private let state = Mutex(State())

    /// An empty ledger.
    public init() {}

    /// Counts an opened primary from now on.
    func opened(databaseID: String, log: PrimaryLog) {
        state.withLock { state in
            state.open[databaseID] = log
            state.closed[databaseID] = nil
        }
    }

    /// Stops counting a primary that closed; `bytes` is what it took then.
    func closed(databaseID: String, bytes: Int64?) {
        state.withLock { state in
            state.open[databaseID] = nil
            if let bytes, state.reported[databaseID] != bytes { state.closed[databaseID] = bytes }
        }
    }

    /// The sizes that changed since the control plane last confirmed them, at most `limit`: the
    /// open primaries' measured now (file work, on the blocking executor), the closed ones' as they
    /// closed.
    func changes(limit: Int = Platform.HeartbeatRequest.maxStorageReports) async -> [Platform.DatabaseStorage] {
        let (open, closed, reported) = state.withLock { ($0.open, $0.closed, $0.reported) }
        var changes: [Platform.DatabaseStorage] = []
        for (id, bytes) in closed where reported[id] != bytes && changes.count < limit {
            changes.append(.init(databaseID: id, bytes: bytes))
        }
        let room = limit - changes.count
        guard room > 0, !open.isEmpty else { return changes }
        let measured =
            await
            (try? BlockingWork.run { () -> [Platform.DatabaseStorage] in
                var sizes: [Platform.DatabaseStorage] = []
                for (id, log) in open {
                    guard let usage = try? log.diskUsage(), reported[id] != usage.total else { continue }
                    sizes.append(.init(databaseID: id, bytes: usage.total))
                    if sizes.count == room { break }
                }
                return sizes
            }) ?? []
        return changes + measured
    }

    /// Counts the primaries on disk that are not open, as they are at rest (every file under each
    /// database's directory): run when the node starts, so that databases nobody opens are
    /// reported too (after an upgrade their catalog rows say 0). A database opened meanwhile is
    /// counted by its log instead.
    func measureAtRest(dataDirectory: String) async {
        let root = dataDirectory + "/databases"
        let found =
            (try? await BlockingWork.run { () -> [String: Int64] in
                var sizes: [String: Int64] = [:]
                let manager = FileManager.default
                for shard in (try? manager.contentsOfDirectory(atPath: root)) ?? [] {
                    for organization in (try? manager.contentsOfDirectory(atPath: "\(root)/\(shard)")) ?? [] {
                        let parent = "\(root)/\(shard)/\(organization)"
                        for database in (try? manager.contentsOfDirectory(atPath: parent)) ?? [] {
                            let directory = "\(parent)/\(database)"
                            guard !manager.fileExists(atPath: directory + "/" + DatabaseStore.deletionMarker),
                                let settings = try? DatabaseSettings.load(directory: directory),
                                settings.primaryURL == nil, let id = settings.databaseID
                            else { continue }
                            sizes[id] = FileSystem.bytes(under: directory)
                        }
                    }
                }
                return sizes
            }) ?? [:]
        state.withLock { state in
            for (id, bytes) in found where state.open[id] == nil && state.closed[id] == nil {
                state.closed[id] = bytes
            }
        }
    }

    /// Records what the control plane confirmed.
    func confirm(_ sent: [Platform.DatabaseStorage]) {
        state.withLock { state in
            for report in sent {
                state.reported[report.databaseID] = report.bytes
                if state.closed[report.databaseID] == report.bytes { state.closed[report.databaseID] = nil }
            }
        }
    }

    /// Forgets what was confirmed (a new registration: the control plane may be another one), so
    /// that the next heartbeats report every open primary again.
    func forgetReported() {
        state.withLock { $0.reported = [:] }
    }

    /// Forgets a deleted database.
    func forget(databaseID: String) {
        state.withLock { state in
            state.open[databaseID] = nil
            state.closed[databaseID] = nil
            state.reported[databaseID] = nil
        }
    }

    /// Replaces the organizations over quota with those of a heartbeat's answer.
    func setExceeded(_ exceeded: [Platform.StorageExceeded]) {
        let byOrganization = Dictionary(exceeded.map { ($0.organization, $0) }, uniquingKeysWith: { $1 })
        state.withLock { $0.exceeded = byOrganization }
    }

    /// Why `organization`'s writes are refused, if it is over its plan's quota.
    public func exceeded(_ organization: String) -> Platform.StorageExceeded? {
        state.withLock { $0.exceeded[organization] }
    }
}

extension Platform.StorageExceeded {
    /// What a refused write is told.
    var refusal: String {
        "organization \(organization) stores \(storedBytes) bytes, more than the \(storageBytes) bytes its plan "
            + "'\(plan)' allows (quota 'storage_bytes'); writes are refused until it deletes databases or moves "
            + "to a larger plan, and reads still work"
    }
}
