import Foundation
import ShoalReplication
import ShoalSQLite
import ShoalTestSupport
import Testing

@testable import ShoalBackup

@Suite(.timeLimit(.minutes(3))) struct BackupTests {
    /// A primary whose WAL rolls after a few frames, so workloads cross generations.
    static func makeLog(_ directory: TemporaryDirectory, roll: Int64 = 48 << 10) throws -> PrimaryLog {
        try PrimaryLog(directory: directory.file("db"), configuration: .init(rollThresholdBytes: roll))
    }

    @Test func commitTimesAreRecordedPerCommitAndSurviveARoll() throws {
        let directory = try TemporaryDirectory()
        let log = try Self.makeLog(directory)
        defer { log.close() }
        let connection = try log.makeConnection()
        defer { try? connection.close() }
        var bounds: [(before: Int64, after: Int64, frame: UInt64)] = []
        for index in 0..<5 {
            let before = CommitTime.now()
            try log.write(connection, index == 0 ? "CREATE TABLE t (v)" : "INSERT INTO t VALUES (\(index))")
            bounds.append((before, CommitTime.now(), log.committedFrames))
        }
        let times = try log.commitTimes(generation: 1)
        #expect(times.map(\.frame) == bounds.map(\.frame))
        for (time, bound) in zip(times, bounds) {
            #expect(time.microseconds >= bound.before && time.microseconds <= bound.after)
        }
        #expect(try log.commitTimes(generation: 1, after: bounds[2].frame).map(\.frame) == bounds[3...].map(\.frame))
        try log.rollGeneration()
        #expect(try log.commitTimes(generation: 1) == times)
        try log.write(connection, "INSERT INTO t VALUES (9)")
        #expect(try log.commitTimes(generation: 2).map(\.frame) == [log.committedFrames])
    }

    @Test func aTornCommitRecordIsCutAtOpen() throws {
        let directory = try TemporaryDirectory()
        do {
            let log = try Self.makeLog(directory)
            let connection = try log.makeConnection()
            try log.write(connection, "CREATE TABLE t (v)")
            try connection.close()
            log.close()
        }
        // Half a record, as a crash inside the write would leave it.
        let path = directory.file("db/generations/1.commits")
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data([1, 2, 3, 4, 5, 6, 7]))
        try handle.close()
        let log = try Self.makeLog(directory)
        defer { log.close() }
        let connection = try log.makeConnection()
        defer { try? connection.close() }
        try log.write(connection, "INSERT INTO t VALUES (1)")
        let times = try log.commitTimes(generation: 1)
        #expect(times.map(\.frame) == [times[0].frame, log.committedFrames])
        #expect(try PosixFile.size(of: path) == 32)
    }

    @Test func signaturesMatchBotocores() {
        // Computed by botocore's S3SigV4Auth (the AWS SDK for Python) for the same requests.
        let date = Date(timeIntervalSince1970: 1_796_359_480)  // 2026-12-04T04:44:40Z
        let endpoint = URL(string: "http://127.0.0.1:5000")!
        let list = SignatureV4.sign(
            method: "GET", endpoint: endpoint, path: "/shoal-backups",
            query: [("list-type", "2"), ("prefix", "databases/db-1/")], body: [], region: "us-east-1",
            accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", date: date)
        #expect(list.url == "http://127.0.0.1:5000/shoal-backups?list-type=2&prefix=databases%2Fdb-1%2F")
        #expect(
            list.headers.first { $0.name == "Authorization" }?.value
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261204/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=c928f8a7abc66d7ebab547582c6482ca26d789ae47c3d2d6e3bbe96488eb4de6"
        )
        let put = SignatureV4.sign(
            method: "PUT", endpoint: endpoint, path: "/shoal-backups/databases/db-1/seg/x", query: [],
            body: Array("hello".utf8), region: "us-east-1", accessKey: "AKIAIOSFODNN7EXAMPLE",
            secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", date: date)
        #expect(
            put.headers.first { $0.name == "Authorization" }?.value.hasSuffix(
                "Signature=3de3207a6801480bdc20aa3b7291433af1b1e7e29c0f838093cf2d2cf8c350cb") == true)
    }

    @Test func directoryStoreKeepsListsAndDeletesObjectsAndRefusesBadKeys() async throws {
        let directory = try TemporaryDirectory()
        let store = try DirectoryObjectStore(root: directory.file("store"))
        try await store.put("databases/a/seg/1", [1, 2, 3])
        try await store.put("databases/a/snap/1", [4])
        try await store.put("databases/ab/seg/1", [5])
        #expect(try await store.get("databases/a/seg/1") == [1, 2, 3])
        #expect(try await store.get("databases/a/nothing") == nil)
        #expect(try await store.list(prefix: "databases/a/") == ["databases/a/seg/1", "databases/a/snap/1"])
        #expect(try await store.list(prefix: "databases/a").count == 3)
        try await store.delete(["databases/a/seg/1", "databases/a/missing"])
        #expect(try await store.list(prefix: "databases/a/") == ["databases/a/snap/1"])
        for bad in ["../escape", "databases/../x", "/abs", "a//b", "spaced key", ""] {
            await #expect(throws: ObjectStoreError.self) { try await store.put(bad, [0]) }
        }
    }

    @Test func keysRoundTripAndSortByPosition() {
        let keys: [BackupKey] = [
            .snapshot(generation: 2, frame: 0, microseconds: 77),
            .segment(generation: 1, first: 5, last: 9, firstCommit: 10, lastCommit: 20),
            .end(generation: 1, last: 9),
            .segment(generation: 1, first: 1, last: 4, firstCommit: 1, lastCommit: 2),
        ]
        for key in keys { #expect(BackupKey(parsing: key.key("db-1"), id: "db-1") == key) }
        #expect(BackupKey(parsing: keys[0].key("db-1"), id: "db-2") == nil)
        #expect(BackupKey(parsing: "databases/db-1/seg/1-x", id: "db-1") == nil)
        #expect(keys.sorted() == [keys[3], keys[1], keys[2], keys[0]])
        let sortedNames = keys.map { $0.key("db-1") }.sorted()
        #expect(
            sortedNames.compactMap { BackupKey(parsing: $0, id: "db-1") }.filter {
                if case .segment = $0 { return true } else { return false }
            } == [keys[3], keys[1]])
    }

    @Test func aSegmentThatLiesAboutItsCommitsIsRefused() throws {
        let directory = try TemporaryDirectory()
        let log = try Self.makeLog(directory)
        defer { log.close() }
        let connection = try log.makeConnection()
        defer { try? connection.close() }
        try log.write(connection, "CREATE TABLE t (v)")
        guard case .frames(let chunk) = try log.readFrames(generation: 1, start: 1) else {
            Issue.record("no frames")
            return
        }
        #expect(throws: BackupError.self) { try Segment(chunk: chunk, commits: []) }
        let segment = try Segment(chunk: chunk, commits: [CommitTime(frame: chunk.lastFrame, microseconds: 5)])
        let decoded = try Segment(decoding: segment.encoded(), generation: 1, first: chunk.firstFrame)
        #expect(decoded == segment)
        var damaged = segment.encoded()
        damaged[3] ^= 0xFF
        #expect(throws: BackupError.self) { try Segment(decoding: damaged, generation: 1, first: 1) }
        #expect(throws: BackupError.self) {
            try Segment(decoding: Array(segment.encoded().prefix(20)), generation: 1, first: 1)
        }
    }
}
