import Foundation

extension PrimaryLog {
    /// Where a restored database file waits to replace a primary's (`installRestored`).
    public static func restoredFilePath(in directory: String) -> String { directory + "/restored.db" }

    static func installMarkerPath(in directory: String) -> String { directory + "/restored.generation" }

    /// The generation the primary in `directory` is at, nil when it has never been opened.
    public static func generation(in directory: String) throws -> UInt64? {
        try PrimaryMeta.load(directory: directory)?.generation
    }

    /// Replaces the database in `directory` (no log may be open on it) with the file waiting at
    /// `restoredFilePath(in:)`, as the base of `generation`, which must be past every generation
    /// the database had (its replicas and its backup then see a new one and start from its base).
    /// The WAL and every archived generation go. Crash-safe: a marker is written first, and a log
    /// opened on the directory finishes an install that was interrupted.
    public static func installRestored(in directory: String, asGeneration generation: UInt64) throws {
        guard PosixFile.exists(restoredFilePath(in: directory)) else {
            throw ReplicationError.io("no restored file at \(restoredFilePath(in: directory)) to install")
        }
        if let current = try PrimaryMeta.load(directory: directory)?.generation, generation <= current {
            throw ReplicationError.invalidBase(
                "a restored base must start a generation past the current \(current), not \(generation)")
        }
        try FileSystem.writeAtomically(
            Array("\(generation)".utf8), to: installMarkerPath(in: directory), directory: directory)
        try finishInstall(in: directory)
    }

    /// Completes an install the marker announces (every step may already be done).
    static func finishInstall(in directory: String) throws {
        let marker = installMarkerPath(in: directory)
        guard PosixFile.exists(marker) else { return }
        let file = try PosixFile(path: marker, flags: O_RDONLY)
        guard let generation = UInt64(String(decoding: try file.read(count: 32, at: 0), as: UTF8.self)) else {
            throw ReplicationError.corruptState("\(marker) does not hold a generation; remove it and restore again")
        }
        let restored = restoredFilePath(in: directory)
        if PosixFile.exists(restored) {
            try FileSystem.remove(directory + "/data.db-wal")
            try FileSystem.remove(directory + "/data.db-shm")
            let generations = directory + "/generations"
            if PosixFile.exists(generations) {
                for name in try FileSystem.list(generations) { try FileSystem.remove(generations + "/" + name) }
            }
            try FileSystem.rename(restored, to: directory + "/data.db", syncing: directory)
        }
        try PrimaryMeta(generation: generation).save(directory: directory)
        try FileSystem.remove(marker)
        try FileSystem.syncDirectory(directory)
    }
}
