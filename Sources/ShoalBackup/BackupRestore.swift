import Foundation
import ShoalReplication
import ShoalSQLite

/// What a store holds of one database's backup, from one listing.
public struct BackupCatalog: Sendable, Equatable {
    /// The database.
    public let id: String
    /// Its objects, in position order.
    public let keys: [BackupKey]

    /// Lists database `id`'s objects in `store` (one LIST, a few for a long history).
    public static func load(_ store: any ObjectStore, id: String) async throws -> BackupCatalog {
        let keys = try await store.list(prefix: BackupKey.prefix(id)).compactMap { BackupKey(parsing: $0, id: id) }
        return BackupCatalog(id: id, keys: keys.sorted())
    }

    /// A catalog of `keys`.
    public init(id: String, keys: [BackupKey]) {
        self.id = id
        self.keys = keys.sorted()
    }

    /// The earliest time a restore can reach (the oldest snapshot's), nil with none.
    public var earliest: Int64? {
        keys.compactMap { key -> Int64? in
            if case .snapshot(_, _, let time) = key { return time }
            return nil
        }.min()
    }

    /// The time of the newest snapshot, nil with none.
    public var latestSnapshot: Int64? {
        keys.compactMap { key -> Int64? in
            if case .snapshot(_, _, let time) = key { return time }
            return nil
        }.max()
    }

    /// The objects no restore to `cutoff` or later reads (microseconds): every snapshot older than
    /// the one a restore to `cutoff` starts from, and every segment and end marker before the
    /// oldest snapshot kept. Empty when no snapshot is as old as `cutoff` (everything kept is then
    /// still needed).
    public func prunable(before cutoff: Int64) -> [BackupKey] {
        let snapshots = keys.compactMap { key -> (time: Int64, position: ReplicationPosition)? in
            if case .snapshot(let generation, let frame, let time) = key {
                return (time, ReplicationPosition(generation: generation, frame: frame))
            }
            return nil
        }
        func order(_ time: Int64, _ position: ReplicationPosition) -> (Int64, UInt64, UInt64) {
            (time, position.generation, position.frame)
        }
        // The snapshot `plan(at: cutoff)` starts from, and every later one, stay.
        guard
            let base = snapshots.filter({ $0.time <= cutoff }).max(by: {
                order($0.time, $0.position) < order($1.time, $1.position)
            })
        else { return [] }
        let kept = snapshots.filter { order($0.time, $0.position) >= order(base.time, base.position) }
        guard
            let oldest = kept.map(\.position).min(by: { ($0.generation, $0.frame) < ($1.generation, $1.frame) })
        else { return [] }
        return keys.filter { key in
            switch key {
            case .snapshot(let generation, let frame, let time):
                return order(time, ReplicationPosition(generation: generation, frame: frame))
                    < order(base.time, base.position)
            case .segment(let generation, _, let last, _, _):
                return generation < oldest.generation || (generation == oldest.generation && last <= oldest.frame)
            case .end(let generation, _):
                return generation < oldest.generation
            }
        }
    }

    /// The time of the newest commit shipped (or the newest snapshot's, if later), nil with none.
    public var latest: Int64? { keys.map(\.latestTime).max() }

    /// The furthest position shipped.
    public var position: ReplicationPosition? {
        keys.map(\.position).max { ($0.generation, $0.frame) < ($1.generation, $1.frame) }
    }

    /// The bytes of frames shipped after the newest snapshot (what a restore of now would replay).
    public var bytesSinceSnapshot: Int64 {
        guard let snapshot = keys.lastIndex(where: { if case .snapshot = $0 { return true } else { return false } })
        else { return 0 }
        return keys[(snapshot + 1)...].reduce(Int64(0)) { sum, key in
            if case .segment(_, let first, let last, _, _) = key {
                return sum + Int64(last - first + 1) * Int64(WALFormat.frameSize)
            }
            return sum
        }
    }

    /// The objects to read for the state as of `time` (microseconds; nil: the newest): the newest
    /// snapshot current by then, and the segments after it, in order, up to the last one with a
    /// commit at or before `time`; a gap in the frames ends the plan there.
    public func plan(at time: Int64?) throws -> RestorePlan {
        let limit = time ?? Int64.max
        let snapshots = keys.compactMap { key -> (UInt64, UInt64, Int64)? in
            if case .snapshot(let generation, let frame, let taken) = key, taken <= limit {
                return (generation, frame, taken)
            }
            return nil
        }
        guard let snapshot = snapshots.max(by: { ($0.2, $0.0, $0.1) < ($1.2, $1.0, $1.1) }) else {
            if let earliest {
                throw BackupError.notRestorable(
                    "database \(id) has no backup as early as \(Self.format(limit)); the earliest restorable time is \(Self.format(earliest))"
                )
            }
            throw BackupError.notRestorable(
                "database \(id) has no backup in \(id.isEmpty ? "the store" : "this store")")
        }
        // Per generation: the segments (the longest for each first frame) and the end marker.
        var segments: [UInt64: [(first: UInt64, last: UInt64, t0: Int64, t1: Int64)]] = [:]
        var ends: [UInt64: UInt64] = [:]
        for key in keys {
            switch key {
            case .segment(let generation, let first, let last, let t0, let t1):
                segments[generation, default: []].append((first, last, t0, t1))
            case .end(let generation, let last):
                ends[generation] = last
            case .snapshot:
                break
            }
        }
        var steps: [RestorePlan.Step] = []
        var generation = snapshot.0
        var next = snapshot.1 + 1
        var reached = ReplicationPosition(generation: snapshot.0, frame: snapshot.1)
        var reachedTime = snapshot.2
        walk: while true {
            let runs = (segments[generation] ?? []).sorted { ($0.first, $1.last) < ($1.first, $0.last) }
            for run in runs where run.last >= next {
                guard run.first <= next else { break walk }  // a gap: nothing after it is reachable
                guard run.t0 <= limit else { break walk }
                steps.append(
                    .init(
                        generation: generation, first: run.first, last: run.last, skip: next - run.first,
                        key: .segment(
                            generation: generation, first: run.first, last: run.last, firstCommit: run.t0,
                            lastCommit: run.t1)))
                next = run.last + 1
                reached = ReplicationPosition(generation: generation, frame: run.last)
                reachedTime = max(reachedTime, min(run.t1, limit))
                if run.t1 > limit { break walk }
            }
            guard let end = ends[generation], end == next - 1 else { break }
            generation += 1
            next = 1
        }
        return RestorePlan(
            id: id, snapshot: .snapshot(generation: snapshot.0, frame: snapshot.1, microseconds: snapshot.2),
            steps: steps, time: limit, reached: reached, reachedTime: reachedTime)
    }

    /// A time for messages, RFC 3339 in UTC.
    public static func format(_ microseconds: Int64) -> String {
        if microseconds == Int64.max { return "now" }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(microseconds) / 1_000_000))
    }
}

/// The objects a restore reads, in order.
public struct RestorePlan: Sendable, Equatable {
    /// One segment to read and how much of it to apply.
    public struct Step: Sendable, Equatable {
        /// Its generation.
        public let generation: UInt64
        /// Its first frame.
        public let first: UInt64
        /// Its last frame.
        public let last: UInt64
        /// Frames at its start already applied (it overlaps the one before).
        public let skip: UInt64
        /// Its object.
        public let key: BackupKey
    }

    /// The database.
    public let id: String
    /// The snapshot it starts from.
    public let snapshot: BackupKey
    /// The segments after it.
    public let steps: [Step]
    /// The time asked for (`Int64.max`: the newest).
    public let time: Int64
    /// The last frame the plan may reach (its last segment's end; the restore stops at the last commit
    /// at or before `time`).
    public let reached: ReplicationPosition
    /// The latest commit time it may reach.
    public let reachedTime: Int64
}

/// Where a restore ended: the last transaction applied.
public struct RestoredPoint: Sendable, Equatable {
    /// The generation and frame of the last commit applied (frame 0: the snapshot itself).
    public let position: ReplicationPosition
    /// That commit's time (the snapshot's for frame 0).
    public let microseconds: Int64
    /// The database's size in bytes.
    public let bytes: Int64
}

/// How far a restore is, for progress output.
public struct RestoreProgress: Sendable, Equatable {
    /// Objects read so far.
    public let objectsRead: Int
    /// Objects the plan reads.
    public let objectsTotal: Int
    /// Bytes read so far.
    public let bytesRead: Int64
}

/// Builds a database file from a backup.
public enum BackupRestore {
    /// Writes to `path` database `id` as of the last transaction committed at or before `time`
    /// (microseconds; nil: the newest shipped), from its newest snapshot current by then and the
    /// frames after it (each verified against its chain). The file appears only when whole
    /// (written beside it, synced, renamed).
    public static func restore(
        _ id: String, from store: any ObjectStore, at time: Int64?, to path: String,
        progress: @Sendable (RestoreProgress) -> Void = { _ in }
    ) async throws -> RestoredPoint {
        let catalog = try await BackupCatalog.load(store, id: id)
        let plan = try catalog.plan(at: time)
        return try await restore(plan, from: store, to: path, progress: progress)
    }

    /// Carries out `plan`.
    public static func restore(
        _ plan: RestorePlan, from store: any ObjectStore, to path: String,
        progress: @Sendable (RestoreProgress) -> Void = { _ in }
    ) async throws -> RestoredPoint {
        let temporary = path + ".restoring"
        let total = plan.steps.count + 1
        guard let base = try await store.get(plan.snapshot.key(plan.id)) else {
            throw BackupError.notRestorable(
                "the snapshot \(plan.snapshot.key(plan.id)) was removed while the restore began; restore again")
        }
        if let problem = DatabaseHeader.problem(Array(base.prefix(100))) {
            throw BackupError.corrupt("the snapshot \(plan.snapshot.key(plan.id)) \(problem)")
        }
        var bytesRead = Int64(base.count)
        progress(RestoreProgress(objectsRead: 1, objectsTotal: total, bytesRead: bytesRead))
        let file = try PosixFile(path: temporary, flags: O_RDWR | O_CREAT | O_TRUNC)
        try file.write(base, at: 0)
        var pages = UInt32(base.count / WALFormat.pageSize)
        var point = RestoredPoint(
            position: plan.snapshot.position, microseconds: plan.snapshot.latestTime, bytes: Int64(base.count))
        var chain: FrameChain?
        var done = false
        for (index, step) in plan.steps.enumerated() where !done {
            let key = step.key.key(plan.id)
            guard let bytes = try await store.get(key) else {
                throw BackupError.notRestorable("\(key) was removed during the restore; restore again")
            }
            bytesRead += Int64(bytes.count)
            let segment = try Segment(decoding: bytes, generation: step.generation, first: step.first)
            do {
                chain = try FrameChain.verify(segment.chunk, after: chain)
            } catch {
                throw BackupError.corrupt("\(key): \(error.error)")
            }
            let times = Dictionary(uniqueKeysWithValues: segment.commits.map { ($0.frame, $0.microseconds) })
            // A transaction's pages are written once its commit frame is reached and its time is not
            // past the one asked for; the file is cut to the size of the last commit applied.
            try segment.chunk.bytes.withUnsafeBytes { raw in
                var pending: [Int] = []
                for offset in Int(step.skip)..<segment.chunk.count {
                    let number = step.first + UInt64(offset)
                    pending.append(offset)
                    guard let commitTime = times[number] else { continue }
                    if commitTime > plan.time {
                        done = true
                        return
                    }
                    for index in pending {
                        let frame = UnsafeRawBufferPointer(
                            rebasing: raw[(index * WALFormat.frameSize)..<((index + 1) * WALFormat.frameSize)])
                        let page = frame.bigEndianUInt32(at: 0)
                        try file.write(
                            UnsafeRawBufferPointer(rebasing: frame[WALFormat.frameHeaderSize...]),
                            at: Int64(page - 1) * Int64(WALFormat.pageSize))
                    }
                    pending.removeAll(keepingCapacity: true)
                    let frame = UnsafeRawBufferPointer(
                        rebasing: raw[(offset * WALFormat.frameSize)..<((offset + 1) * WALFormat.frameSize)])
                    pages = frame.bigEndianUInt32(at: 4)
                    point = RestoredPoint(
                        position: ReplicationPosition(generation: step.generation, frame: number),
                        microseconds: commitTime, bytes: Int64(pages) * Int64(WALFormat.pageSize))
                }
            }
            progress(RestoreProgress(objectsRead: index + 2, objectsTotal: total, bytesRead: bytesRead))
        }
        try file.truncate(to: Int64(pages) * Int64(WALFormat.pageSize))
        try file.syncData()
        try FileSystem.rename(temporary, to: path, syncing: (path as NSString).deletingLastPathComponent)
        return point
    }
}
