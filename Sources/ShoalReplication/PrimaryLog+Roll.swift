import Foundation
import ShoalSQLite
import ShoalTime

extension PrimaryLog {
    /// Ends the current generation G: archives its frames to `generations/G.frames`, checkpoints
    /// them into `data.db` (the base of G+1), truncates the WAL and records G+1. Waits for write
    /// permits, exports and frame reads to finish first. Returns false if G has no frames.
    ///
    /// Crash-safe at every step: the archive is written under a temporary name and renamed; a restart
    /// that finds the archive of the current generation finishes the roll.
    @discardableResult
    public func rollGeneration() throws -> Bool {
        try ensureOpenForRoll()
        guard gate.acquireExclusive(timeout: configuration.busyTimeout) else {
            throw ReplicationError.busy(
                "the generation roll of \(directory) waited \(configuration.busyTimeout) for writers and readers; try again"
            )
        }
        defer { gate.releaseExclusive() }
        return try withControl { connection in
            let generation = state.snapshot().generation
            let committed = try scanWAL()
            guard committed > 0 else { return false }
            try writeArchive(generation: generation, frames: committed)
            do {
                try checkpointTruncate(connection)
            } catch {
                // Not rolled: the archive must not claim otherwise.
                try? FileSystem.remove(archivePath(generation))
                throw error
            }
            try finishRoll(from: generation)
            return true
        }
    }

    private func ensureOpenForRoll() throws {
        if state.isClosed { throw ReplicationError.closed("the primary log of \(directory) is closed") }
    }

    /// Runs `body` with the log's own connection.
    func withControl<T>(_ body: (Connection) throws -> T) throws -> T {
        try control.withLock { connection in
            guard let connection else { throw ReplicationError.closed("the primary log of \(directory) is closed") }
            return try body(connection)
        }
    }

    /// Scans the WAL from the start and returns its committed frame count.
    func scanWAL() throws -> UInt64 {
        guard PosixFile.exists(walPath) else { return 0 }
        let file = try PosixFile(path: walPath, flags: O_RDONLY)
        var scanner = WALScanner()
        try scanner.scan(fileSize: try file.size()) { offset, count in try file.read(count: count, at: offset) }
        return scanner.committedFrames
    }

    private func writeArchive(generation: UInt64, frames: UInt64) throws {
        let source = try PosixFile(path: walPath, flags: O_RDONLY)
        let temporary = archivePath(generation) + ".tmp"
        let archive = try PosixFile(path: temporary, flags: O_WRONLY | O_CREAT | O_TRUNC)
        let total = Int64(frames) * Int64(WALFormat.frameSize)
        var copied: Int64 = 0
        while copied < total {
            let count = Int(min(Int64(4 << 20), total - copied))
            let bytes = try source.read(count: count, at: Int64(WALFormat.headerSize) + copied)
            guard bytes.count == count else {
                throw ReplicationError.corruptState("the WAL of \(directory) ended inside its committed frames")
            }
            try archive.write(bytes, at: copied)
            copied += Int64(count)
        }
        try archive.syncData()
        try FileSystem.rename(temporary, to: archivePath(generation), syncing: generationsDirectory)
    }

    private func checkpointTruncate(_ connection: Connection) throws {
        do {
            let result = try connection.checkpoint(.truncate)
            guard result.logFrames == 0 else {
                throw ReplicationError.busy("the checkpoint of \(directory) left \(result.logFrames) frames; try again")
            }
        } catch let error as SQLiteError where ResultCode.busy ~= error.code || ResultCode.locked ~= error.code {
            throw ReplicationError.busy(
                "the checkpoint of \(directory) waited for readers (\(error.message)); try the roll again")
        }
    }

    /// Records G+1 once G's frames are archived and checkpointed, then prunes old archives.
    private func finishRoll(from generation: UInt64) throws {
        try PrimaryMeta(generation: generation + 1).save(directory: directory)
        clock.closeFile()
        state.reset(generation: generation + 1, committed: 0)
        try pruneArchives(current: generation + 1)
    }

    /// Called at open: finishes an interrupted roll, then recovers the committed frame count.
    func recover() throws {
        try withControl { connection in
            let generation = state.snapshot().generation
            if PosixFile.exists(archivePath(generation)) {
                // The archive of the current generation exists: a roll stopped after archiving.
                let archive = try PosixFile(path: archivePath(generation), flags: O_RDONLY)
                let archived = UInt64(try archive.size()) / UInt64(WALFormat.frameSize)
                _ = try connection.queryOne("SELECT count(*) FROM sqlite_schema")
                let inWAL = try scanWAL()
                guard inWAL == 0 || inWAL == archived else {
                    throw ReplicationError.corruptState(
                        "\(directory): generation \(generation) archived \(archived) frames but the WAL holds \(inWAL)")
                }
                try checkpointTruncate(connection)
                try finishRoll(from: generation)
            }
            _ = try connection.queryOne("SELECT count(*) FROM sqlite_schema")
            let committed = try scanWAL()
            try clock.repair(generation: state.snapshot().generation, committed: committed)
            state.reset(generation: state.snapshot().generation, committed: committed)
        }
    }

    /// Removes archives beyond the newest `retainedGenerations` once they are older than `retention`;
    /// then, with a disk budget, the oldest archives until file + WAL + archives fit in it.
    func pruneArchives(current: UInt64, now: Date = Date()) throws {
        let archived = try archivedGenerations()
        var kept: [UInt64] = []
        for (index, generation) in archived.enumerated() {
            let path = archivePath(generation)
            if index >= configuration.retainedGenerations {
                let modified =
                    (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? now
                if now.timeIntervalSince(modified) >= configuration.retention.inSeconds {
                    try FileSystem.remove(path)
                    try FileSystem.remove(clock.path(generation))
                    continue
                }
            }
            kept.append(generation)
        }
        guard let budget = configuration.diskBudgetBytes else { return }
        var usage = try diskUsage()
        // Oldest first: a replica behind the pruned ones bootstraps from the current base instead.
        for generation in kept.reversed() where usage.total > budget {
            let path = archivePath(generation)
            usage.archives -= (try? PosixFile.size(of: path)) ?? 0
            try FileSystem.remove(path)
            try FileSystem.remove(clock.path(generation))
        }
    }

    /// The archived generations, newest first.
    private func archivedGenerations() throws -> [UInt64] {
        try FileSystem.list(generationsDirectory).compactMap { name -> UInt64? in
            guard name.hasSuffix(".frames") else { return nil }
            return UInt64(name.dropLast(".frames".count))
        }.sorted(by: >)
    }

    /// What the database takes on disk now: its file, its WAL's committed frames, its archives.
    public func diskUsage() throws -> DiskUsage {
        let archives = try archivedGenerations().reduce(Int64(0)) { sum, generation in
            sum + ((try? PosixFile.size(of: archivePath(generation))) ?? 0)
        }
        return DiskUsage(file: (try? PosixFile.size(of: databasePath)) ?? 0, wal: walBytes(), archives: archives)
    }
}

extension PrimaryLog.Configuration {
    /// Where the WAL rolls: `rollThresholdBytes`, or within a disk budget a quarter of it (at
    /// least 256 KiB).
    public var effectiveRollThreshold: Int64 {
        guard let budget = diskBudgetBytes else { return rollThresholdBytes }
        return min(rollThresholdBytes, max(256 << 10, budget / 4))
    }
}
