internal import CSQLite

/// Raw access to a file that a connection's pager has open: the main database file or its journal
/// (the `-wal` file in WAL mode), through SQLite's own `sqlite3_file` and its I/O methods.
///
/// Going through the pager's handle matters: opening and closing a second descriptor on a database
/// file would drop every POSIX lock this process holds on it. The handle is valid while the
/// connection is open; every call checks that and throws `ResultCode.misuse` afterwards.
public struct DatabaseFile {
    /// The connection whose pager owns the file; kept alive by this reference.
    let connection: Connection
    /// SQLite's file object; valid while `connection` is open (checked before each use).
    let file: UnsafeMutablePointer<sqlite3_file>

    @inline(__always)
    private func checked() throws -> UnsafeMutablePointer<sqlite3_file> {
        guard !connection.isClosed else { throw SQLiteError.closed }
        return file
    }

    private func check(_ rc: Int32, _ what: String) throws {
        guard rc == SQLITE_OK else {
            throw SQLiteError(code: ResultCode(rawValue: rc), message: "\(what) of \(connection.path) failed")
        }
    }

    /// The most bytes SQLite's unix VFS moves in one read or write call (it masks counts with
    /// 0x1ffff), rounded down to whole pages; larger requests are split.
    static let maxTransfer = 31 * 4096

    /// Reads `buffer.count` bytes at `offset`. Returns false if the file ended first (the rest of
    /// the buffer is then zero-filled).
    @discardableResult
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Bool {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return true }
        let file = try checked()
        var done = 0
        while done < buffer.count {
            let count = min(Self.maxTransfer, buffer.count - done)
            let rc = shoal_file_read(file, base + done, Int32(count), offset + Int64(done))
            if rc == ResultCode.ioErrorShortRead.rawValue {
                // SQLite zero-filled the rest of this piece; do the same for the pieces not read.
                (base + done + count).initializeMemory(as: UInt8.self, repeating: 0, count: buffer.count - done - count)
                return false
            }
            try check(rc, "read")
            done += count
        }
        return true
    }

    /// Reads `count` bytes at `offset`; throws `ResultCode.ioErrorShortRead` if the file ends first.
    public func read(count: Int, at offset: Int64) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let complete = try bytes.withUnsafeMutableBytes { try read(into: $0, at: offset) }
        guard complete else {
            throw SQLiteError(
                code: .ioErrorShortRead, message: "\(connection.path) ended before byte \(offset + Int64(count))")
        }
        return bytes
    }

    /// Writes bytes at `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        let file = try checked()
        var done = 0
        while done < bytes.count {
            let count = min(Self.maxTransfer, bytes.count - done)
            try check(shoal_file_write(file, base + done, Int32(count), offset + Int64(done)), "write")
            done += count
        }
    }

    /// Writes bytes at `offset`.
    public func write(_ bytes: [UInt8], at offset: Int64) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    /// Truncates (or extends) the file to `size` bytes.
    public func truncate(to size: Int64) throws {
        try check(shoal_file_truncate(try checked(), size), "truncate")
    }

    /// The file's size in bytes.
    public func size() throws -> Int64 {
        var size: Int64 = 0
        try check(shoal_file_size(try checked(), &size), "size")
        return size
    }

    /// Flushes the file to stable storage (`full` asks for `SQLITE_SYNC_FULL`).
    public func sync(full: Bool = false) throws {
        try check(shoal_file_sync(try checked(), full ? SQLITE_SYNC_FULL : SQLITE_SYNC_NORMAL), "sync")
    }
}

@available(*, unavailable, message: "a DatabaseFile is used by the thread that owns its connection")
extension DatabaseFile: Sendable {}

extension Connection {
    /// Which of a database's files to reach.
    public enum FileKind: Sendable {
        /// The main database file.
        case main
        /// The journal: the `-wal` file in WAL mode, the rollback journal otherwise.
        case journal
    }

    /// The pager's own handle on a database file (`SQLITE_FCNTL_FILE_POINTER` /
    /// `SQLITE_FCNTL_JOURNAL_POINTER`). Throws if the file is not open (e.g. no WAL yet).
    public func file(_ kind: FileKind, database: String = "main") throws -> DatabaseFile {
        let db = try openHandle()
        var pointer: UnsafeMutablePointer<sqlite3_file>?
        let op = kind == .main ? SQLITE_FCNTL_FILE_POINTER : SQLITE_FCNTL_JOURNAL_POINTER
        try check(sqlite3_file_control(db, database, op, &pointer))
        guard let pointer, shoal_file_is_open(pointer) != 0 else {
            throw SQLiteError(
                code: .misuse,
                message:
                    "the \(kind == .main ? "database" : "journal") file of \(path) is not open; read from the database first"
            )
        }
        return DatabaseFile(connection: self, file: pointer)
    }

    /// The data version of a database (`SQLITE_FCNTL_DATA_VERSION`): it differs from an earlier
    /// reading once a read transaction of this connection has seen a commit made by any connection.
    public func dataVersion(database: String = "main") throws -> UInt32 {
        var version: UInt32 = 0
        try check(sqlite3_file_control(try openHandle(), database, SQLITE_FCNTL_DATA_VERSION, &version))
        return version
    }

    /// Sets or reads the persistent-WAL flag (`SQLITE_FCNTL_PERSIST_WAL`): when on, the WAL file is
    /// kept (truncated, not deleted) when the last connection closes. Pass nil to only read it.
    @discardableResult
    public func persistentWAL(_ enabled: Bool?, database: String = "main") throws -> Bool {
        var value: Int32 = enabled.map { $0 ? 1 : 0 } ?? -1
        try check(sqlite3_file_control(try openHandle(), database, SQLITE_FCNTL_PERSIST_WAL, &value))
        return value != 0
    }

    /// How a WAL checkpoint waits for readers and writers.
    public enum CheckpointMode: Sendable {
        /// Copy what can be copied without waiting.
        case passive
        /// Wait for writers, then copy everything.
        case full
        /// Like `full`, then wait for readers so the next writer restarts the WAL.
        case restart
        /// Like `restart`, then truncate the WAL file to zero bytes.
        case truncate

        var code: Int32 {
            switch self {
            case .passive: SQLITE_CHECKPOINT_PASSIVE
            case .full: SQLITE_CHECKPOINT_FULL
            case .restart: SQLITE_CHECKPOINT_RESTART
            case .truncate: SQLITE_CHECKPOINT_TRUNCATE
            }
        }
    }

    /// What a checkpoint did.
    public struct CheckpointResult: Sendable, Equatable {
        /// Frames in the WAL (0 after a successful truncate).
        public let logFrames: Int
        /// Frames copied into the database file.
        public let checkpointedFrames: Int
    }

    /// Runs a WAL checkpoint.
    @discardableResult
    public func checkpoint(_ mode: CheckpointMode = .passive, database: String = "main") throws -> CheckpointResult {
        var log: Int32 = 0
        var copied: Int32 = 0
        try check(sqlite3_wal_checkpoint_v2(try openHandle(), database, mode.code, &log, &copied))
        return CheckpointResult(logFrames: Int(log), checkpointedFrames: Int(copied))
    }

    /// Sets the automatic checkpoint threshold in frames (0 turns it off).
    public func setAutoCheckpoint(frames: Int) throws {
        try check(sqlite3_wal_autocheckpoint(try openHandle(), Int32(frames)))
    }
}
