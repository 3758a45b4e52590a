import Foundation
import ShoalReplication
import ShoalSQLite

/// A primary and a replica in a scratch directory, for the replication benchmarks.
///
/// `@unchecked Sendable`: the writer connection is used by one thread at a time (the thread that
/// writes and applies); other threads only read through the replica, which is `Sendable`.
struct ReplicationFixture: @unchecked Sendable {
    let directory: String
    let log: PrimaryLog
    let writer: Connection
    let replica: Replica

    init(name: String, rows: Int, replicaConfiguration: Replica.Configuration = .init()) throws {
        directory =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("shoal-bench-\(name)-\(ProcessInfo.processInfo.processIdentifier)").path
        try? FileManager.default.removeItem(atPath: directory)
        let log = try PrimaryLog(
            directory: directory + "/primary", configuration: .init(rollThresholdBytes: Int64.max))
        let writer = try log.makeConnection()
        self.log = log
        self.writer = writer
        try log.withWritePermit {
            try writer.execute("CREATE TABLE kv (id INTEGER PRIMARY KEY, value TEXT NOT NULL, n INTEGER NOT NULL)")
            try writer.transaction {
                let insert = try writer.prepare("INSERT INTO kv (id, value, n) VALUES (?, ?, ?)")
                for id in 1...Int64(max(rows, 1)) {
                    insert.reset()
                    try insert.bind(id, at: 1)
                    try insert.bind("value-\(id % 100_000)", at: 2)
                    try insert.bind(id * 7, at: 3)
                    _ = try insert.step()
                }
            }
        }
        replica = try Replica(directory: directory + "/replica", configuration: replicaConfiguration)
        try log.exportBase(generation: log.generation, to: directory + "/base.db")
        try replica.bootstrap(generation: log.generation, baseFile: directory + "/base.db")
        try catchUp()
    }

    /// Applies everything the primary has committed, `maxFrames` per read; returns the results.
    @discardableResult
    func catchUp(maxFrames: Int = 4096) throws -> [Replica.ApplyResult] {
        var results: [Replica.ApplyResult] = []
        var carried: FrameChunk?
        while let position = replica.position {
            let start = position.frame + 1 + UInt64(carried?.count ?? 0)
            guard
                case .frames(let chunk) = try log.readFrames(
                    generation: position.generation, start: start, maxFrames: maxFrames)
            else { break }
            let combined =
                try carried.map {
                    try FrameChunk(generation: $0.generation, firstFrame: $0.firstFrame, bytes: $0.bytes + chunk.bytes)
                } ?? chunk
            let result = try replica.apply(combined)
            results.append(result)
            let rest = combined.count - result.framesApplied
            carried =
                rest == 0
                ? nil
                : try FrameChunk(
                    generation: combined.generation, firstFrame: combined.firstFrame + UInt64(result.framesApplied),
                    bytes: Array(combined.bytes[(result.framesApplied * WALFormat.frameSize)...]))
        }
        return results
    }

    /// Updates one row on the primary: a one-frame transaction.
    func updateOneRow(id: Int64) throws {
        try log.withWritePermit {
            try writer.execute("UPDATE kv SET n = n + 1 WHERE id = ?", [id])
        }
    }

    func close() {
        replica.close()
        try? writer.close()
        log.close()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
