import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file descriptor for Shoal's own files (redo log, position, archives, WAL reads), with whole
/// reads and writes and explicit syncs. Never used on a database main file: closing a second
/// descriptor on it would drop the process's POSIX locks, so those go through SQLite's handle.
///
/// `@unchecked Sendable`: the descriptor is immutable and only used with positional `pread` /
/// `pwrite` / `fdatasync`, which the kernel makes safe from any thread; it closes once, in `deinit`.
public final class PosixFile: @unchecked Sendable {
    let descriptor: Int32
    let path: String

    /// Opens `path` with `open(2)` flags; `mode` applies when creating.
    public init(path: String, flags: Int32, mode: mode_t = 0o644) throws {
        let descriptor = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard descriptor >= 0 else {
            throw ReplicationError.io("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        self.descriptor = descriptor
        self.path = path
    }

    deinit {
        Glibc.close(descriptor)
    }

    /// Whether a file exists at `path`.
    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// The size in bytes of the file at `path`.
    public static func size(of path: String) throws -> Int64 {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw ReplicationError.io("stat of \(path) failed: \(String(cString: strerror(errno)))")
        }
        return Int64(status.st_size)
    }

    /// Reads up to `buffer.count` bytes at `offset`; returns how many were read (less at end of file).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        var done = 0
        while done < buffer.count {
            let count = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if count < 0 {
                if errno == EINTR { continue }
                throw ReplicationError.io("read of \(path) failed: \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            done += count
        }
        return done
    }

    /// Reads exactly `count` bytes at `offset`, or fewer at end of file.
    public func read(count: Int, at offset: Int64) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            initialized = try read(into: UnsafeMutableRawBufferPointer(buffer), at: offset)
        }
    }

    /// Writes all of `bytes` at `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        var done = 0
        while done < bytes.count {
            let count = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if count < 0 {
                if errno == EINTR { continue }
                throw ReplicationError.io("write to \(path) failed: \(String(cString: strerror(errno)))")
            }
            done += count
        }
    }

    /// Writes all of `bytes` at `offset`.
    public func write(_ bytes: [UInt8], at offset: Int64) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    /// Flushes data (not necessarily metadata) to stable storage.
    public func syncData() throws {
        guard fdatasync(descriptor) == 0 else {
            throw ReplicationError.io("fdatasync of \(path) failed: \(String(cString: strerror(errno)))")
        }
    }

    /// The file's size in bytes.
    public func size() throws -> Int64 {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw ReplicationError.io("fstat of \(path) failed: \(String(cString: strerror(errno)))")
        }
        return Int64(status.st_size)
    }

    /// Truncates or extends the file.
    public func truncate(to size: Int64) throws {
        guard ftruncate(descriptor, off_t(size)) == 0 else {
            throw ReplicationError.io("truncate of \(path) failed: \(String(cString: strerror(errno)))")
        }
    }
}

/// File-system operations on paths, durable where they say so.
public enum FileSystem {
    /// Every regular file's bytes under `directory`, subdirectories included (0 if it is missing).
    public static func bytes(under directory: String) -> Int64 {
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return 0 }
        var total: Int64 = 0
        while let name = walker.nextObject() as? String {
            let attributes = try? FileManager.default.attributesOfItem(atPath: directory + "/" + name)
            if attributes?[.type] as? FileAttributeType == .typeRegular {
                total += (attributes?[.size] as? NSNumber)?.int64Value ?? 0
            }
        }
        return total
    }

    /// Makes a directory and its parents; succeeds if it exists.
    public static func makeDirectory(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw ReplicationError.io("cannot create \(prefix): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Renames atomically, then syncs the directory so the rename survives a crash.
    public static func rename(_ from: String, to: String, syncing directory: String) throws {
        guard Glibc.rename(from, to) == 0 else {
            throw ReplicationError.io("cannot rename \(from) to \(to): \(String(cString: strerror(errno)))")
        }
        try syncDirectory(directory)
    }

    /// Syncs a directory's entries.
    public static func syncDirectory(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ReplicationError.io("cannot open directory \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else {
            throw ReplicationError.io("fsync of directory \(path) failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Removes a file; succeeds if it does not exist.
    public static func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT {
            throw ReplicationError.io("cannot remove \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Writes a whole file atomically: temporary file, fsync, rename, directory fsync.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, directory: String) throws {
        let temporary = path + ".tmp"
        do {
            let file = try PosixFile(path: temporary, flags: O_WRONLY | O_CREAT | O_TRUNC)
            try file.write(bytes, at: 0)
            try file.syncData()
        }
        try rename(temporary, to: path, syncing: directory)
    }

    /// The names in a directory (without `.` and `..`).
    public static func list(_ path: String) throws -> [String] {
        guard let directory = opendir(path) else {
            throw ReplicationError.io("cannot list \(path): \(String(cString: strerror(errno)))")
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
