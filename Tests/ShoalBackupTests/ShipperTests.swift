import Foundation
import ShoalReplication
import ShoalSQLite
import ShoalTestSupport
import Testing

@testable import ShoalBackup

@Suite(.timeLimit(.minutes(2))) struct ShipperTests {
    struct Node {
        let directory: TemporaryDirectory
        let log: PrimaryLog
        let connection: Connection
        let shelf = LogShelf()

        init() throws {
            directory = try TemporaryDirectory()
            log = try PrimaryLog(directory: directory.file("db"), configuration: .init(rollThresholdBytes: 64 << 10))
            connection = try log.makeConnection()
            shelf.add("db-1", log)
            try log.write(connection, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
        }

        func insert(_ rows: Int) throws {
            try log.write(
                connection,
                "WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < \(rows)) INSERT INTO t (v) SELECT randomblob(300) FROM s"
            )
        }

        func close() {
            try? connection.close()
            log.close()
        }
    }

    @Test func anIdleDatabaseCostsNoRequests() async throws {
        let node = try Node()
        defer { node.close() }
        let store = OutageStore(try DirectoryObjectStore(root: node.directory.file("store")))
        let shipper = try BackupShipper(
            store: store, source: node.shelf, pendingDirectory: node.directory.file("pending"))
        shipper.noteCommit("db-1")
        #expect(FileManager.default.fileExists(atPath: node.directory.file("pending/db-1")))
        #expect(await shipper.shipPending() == 0)
        #expect(shipper.pendingDatabases.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: node.directory.file("pending/db-1")))
        let calls = store.calls
        #expect(calls >= 2)  // the listing that found nothing, the base, the frames
        for _ in 0..<5 { #expect(await shipper.shipPending() == 0) }
        #expect(store.calls == calls)
        // A restarted shipper finds nothing pending either.
        let again = try BackupShipper(
            store: store, source: node.shelf, pendingDirectory: node.directory.file("pending"))
        #expect(await again.shipPending() == 0)
        #expect(store.calls == calls)
        #expect(shipper.statistics.requests == calls)
    }

    /// A database that keeps writing gets snapshots for its retention, and what no restore within
    /// the retention reads is deleted; the newest state and every time within it stay restorable.
    @Test func retentionPrunesWhatNoRestoreWithinItReads() async throws {
        let node = try Node()
        defer { node.close() }
        let store = try DirectoryObjectStore(root: node.directory.file("store"))
        // A retention of 0.4 s: a snapshot every 0.2 s of writing.
        node.shelf.setRetention("db-1", .milliseconds(400))
        let shipper = try BackupShipper(
            store: store, source: node.shelf, pendingDirectory: node.directory.file("pending"),
            configuration: .init(minimumSnapshotInterval: .zero))
        try await shipper.ship("db-1")
        var rounds = 0
        // Writes and shipments go on until pruning has happened twice (bounded by the suite's limit).
        while shipper.statistics.pruned == 0 || shipper.statistics.snapshots < 4 {
            try node.insert(3)
            try await shipper.ship("db-1")
            rounds += 1
        }
        let before = CommitTime.now()
        let catalog = try await BackupCatalog.load(store, id: "db-1")
        let snapshots = catalog.keys.filter { if case .snapshot = $0 { return true } else { return false } }
        #expect(snapshots.count < shipper.statistics.snapshots, "older snapshots were deleted")
        #expect(catalog.earliest.map { before - $0 < 5_000_000 } == true, "nothing from long ago is kept")
        let latest = node.directory.file("latest.db")
        _ = try await BackupRestore.restore("db-1", from: store, at: nil, to: latest)
        #expect(try contents(ofFile: latest) == (try DatabaseContents(node.connection)))
        #expect(rounds > 1)
    }

    @Test func aStoreThatIsDownDelaysShippingNotWritesAndTheBacklogDrains() async throws {
        let node = try Node()
        defer { node.close() }
        let store = OutageStore(try DirectoryObjectStore(root: node.directory.file("store")))
        let shipper = try BackupShipper(
            store: store, source: node.shelf, pendingDirectory: node.directory.file("pending"))
        shipper.noteCommit("db-1")
        #expect(await shipper.shipPending() == 0)
        store.down = true
        for _ in 0..<20 {
            try node.insert(20)
            shipper.noteCommit("db-1")
        }
        #expect(node.log.generation > 1, "the writes rolled generations while the store was down")
        #expect(await shipper.shipPending() == 1)
        #expect(shipper.pendingDatabases == ["db-1"])
        #expect(shipper.statistics.failures == 1)
        store.down = false
        #expect(await shipper.flush())
        let restored = node.directory.file("restored.db")
        _ = try await BackupRestore.restore("db-1", from: store.inner, at: nil, to: restored)
        #expect(try contents(ofFile: restored) == (try DatabaseContents(node.connection)))
    }

    @Test func aRestartedShipperResumesWithoutDuplicatingOrLosingFrames() async throws {
        let node = try Node()
        defer { node.close() }
        let store = try DirectoryObjectStore(root: node.directory.file("store"))
        let first = try BackupShipper(
            store: store, source: node.shelf, pendingDirectory: node.directory.file("pending"))
        try node.insert(10)
        first.noteCommit("db-1")
        #expect(await first.shipPending() == 0)
        try node.insert(10)
        first.noteCommit("db-1")
        // The process stops here: the marker says db-1 has unshipped frames.
        let second = try BackupShipper(
            store: store, source: node.shelf, pendingDirectory: node.directory.file("pending"))
        #expect(second.pendingDatabases == ["db-1"])
        #expect(await second.shipPending() == 0)
        let catalog = try await BackupCatalog.load(store, id: "db-1")
        var covered: [UInt64: Set<UInt64>] = [:]
        for key in catalog.keys {
            if case .segment(let generation, let first, let last, _, _) = key {
                for frame in first...last {
                    #expect(covered[generation, default: []].insert(frame).inserted, "frame \(frame) shipped twice")
                }
            }
        }
        let restored = node.directory.file("restored.db")
        _ = try await BackupRestore.restore("db-1", from: store, at: nil, to: restored)
        #expect(try contents(ofFile: restored) == (try DatabaseContents(node.connection)))
    }

    @Test func aDatabaseThatIsNoLongerHereStopsShipping() async throws {
        let node = try Node()
        defer { node.close() }
        let store = try DirectoryObjectStore(root: node.directory.file("store"))
        let shipper = try BackupShipper(
            store: store, source: node.shelf, pendingDirectory: node.directory.file("pending"))
        node.shelf.remove("db-1")
        shipper.noteCommit("db-1")
        #expect(await shipper.shipPending() == 0)
        #expect(shipper.pendingDatabases.isEmpty)
        #expect(try await store.list(prefix: "databases/").isEmpty)
    }

    @Test func theServiceShipsOnCommitsAndStopsWhenCancelled() async throws {
        let node = try Node()
        defer { node.close() }
        let store = try DirectoryObjectStore(root: node.directory.file("store"))
        let shipper = try BackupShipper(
            store: store, source: node.shelf, pendingDirectory: node.directory.file("pending"),
            configuration: .init(batchDelay: .milliseconds(20)))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await shipper.run() }
            try node.insert(5)
            shipper.noteCommit("db-1")
            try await waitUntil("the shipper shipped db-1", limit: .seconds(20)) {
                shipper.pendingDatabases.isEmpty && shipper.statistics.framesShipped > 0
            }
            group.cancelAll()
        }
        let restored = node.directory.file("restored.db")
        _ = try await BackupRestore.restore("db-1", from: store, at: nil, to: restored)
        #expect(try contents(ofFile: restored) == (try DatabaseContents(node.connection)))
    }
}

@Suite(.timeLimit(.minutes(2)), .enabled(if: ProcessInfo.processInfo.environment["SHOAL_TEST_S3_URL"] != nil))
struct S3StoreTests {
    static func store(bucket: String) throws -> S3ObjectStore {
        let url = try #require(ProcessInfo.processInfo.environment["SHOAL_TEST_S3_URL"].flatMap(URL.init(string:)))
        return try S3ObjectStore(
            .init(endpoint: url, bucket: bucket, accessKey: "testing", secretKey: "testing", keyPrefix: "shoal/"))
    }

    @Test func putGetListDeleteAgainstAnS3Endpoint() async throws {
        let store = try Self.store(bucket: "shoal-\(UInt32.random(in: 0...UInt32.max))")
        try await store.createBucket()
        try await store.createBucket()  // owning it already is fine
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try await store.put("databases/a/seg/1", big)
        try await store.put("databases/a/snap/2", [])
        for index in 0..<5 { try await store.put("databases/b/seg/\(index)", [UInt8(index)]) }
        #expect(try await store.get("databases/a/seg/1") == big)
        #expect(try await store.get("databases/a/snap/2") == [])
        #expect(try await store.get("databases/a/none") == nil)
        #expect(try await store.list(prefix: "databases/a/") == ["databases/a/seg/1", "databases/a/snap/2"])
        #expect(try await store.list(prefix: "databases/").count == 7)
        try await store.delete(["databases/a/seg/1", "databases/a/none"])
        #expect(try await store.list(prefix: "databases/a/") == ["databases/a/snap/2"])
    }

    @Test func aBackupShippedToS3Restores() async throws {
        let directory = try TemporaryDirectory()
        let store = try Self.store(bucket: "shoal-\(UInt32.random(in: 0...UInt32.max))")
        try await store.createBucket()
        let log = try PrimaryLog(directory: directory.file("db"), configuration: .init(rollThresholdBytes: 64 << 10))
        defer { log.close() }
        let connection = try log.makeConnection()
        defer { try? connection.close() }
        let shelf = LogShelf()
        shelf.add("db-1", log)
        let shipper = try BackupShipper(store: store, source: shelf, pendingDirectory: directory.file("pending"))
        try log.write(connection, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
        for _ in 0..<8 {
            try log.write(
                connection,
                "WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 30) INSERT INTO t (v) SELECT randomblob(500) FROM s"
            )
            shipper.noteCommit("db-1")
            #expect(await shipper.shipPending() == 0)
        }
        let restored = directory.file("restored.db")
        _ = try await BackupRestore.restore("db-1", from: store, at: nil, to: restored)
        #expect(try contents(ofFile: restored) == (try DatabaseContents(connection)))
    }

    @Test func aMissingBucketIsAClearError() async throws {
        let store = try Self.store(bucket: "shoal-missing-\(UInt32.random(in: 0...UInt32.max))")
        let error = await #expect(throws: ObjectStoreError.self) { try await store.put("databases/a/x", [1]) }
        #expect(error?.message.contains("NoSuchBucket") == true)
    }
}
