import Foundation
import ShoalNodeTestSupport
import ShoalReplication
import ShoalSQLite
import ShoalTestSupport
import Testing

@testable import ShoalNode

@Suite(.timeLimit(.minutes(2))) struct NodeSyncTests {
    @Test func infoExportAndFramesFollowWrites() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            _ = try await node.request(
                "POST", "/db/acme/app/v2/pipeline",
                body:
                    #"{"baton":null,"requests":[{"type":"sequence","sql":"CREATE TABLE t (x); INSERT INTO t VALUES (1)"},{"type":"close"}]}"#
            )
            #expect(try await node.request("GET", "/db/acme/app/info").body == #"{"current_generation":1}"#)
            let export = try await node.requestData("GET", "/db/acme/app/export/1")
            #expect(export.status == 200)
            #expect(export.body.count % 4096 == 0 && export.body.count >= 4096)
            let frames = try await node.requestData("GET", "/db/acme/app/sync/1/1/129")
            #expect(frames.status == 200)
            #expect(frames.body.count > 0 && frames.body.count % WALFormat.frameSize == 0)
            let last = UInt64(frames.body.count / WALFormat.frameSize)
            #expect(frames.headers["x-shoal-frame"] == "1/\(last)")
            let done = try await node.request("GET", "/db/acme/app/sync/1/\(last + 1)/\(last + 129)")
            #expect(done.status == 400)
            #expect(done.body.contains(#""status":"checkpoint_needed""#))
            #expect(done.body.contains(#""max_frame_no":\#(last)"#))
            let future = try await node.request("GET", "/db/acme/app/export/9")
            #expect(future.status != 200)
        }
    }

    @Test func longPollReturnsAsSoonAsAFrameIsCommitted() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            _ = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: #"{"stmt":{"sql":"CREATE TABLE t (x)"}}"#)
            let info = try await node.requestData("GET", "/db/acme/app/sync/1/1/1000")
            let next = UInt64(info.body.count / WALFormat.frameSize) + 1
            async let polled = node.requestData("GET", "/db/acme/app/sync/1/\(next)/\(next + 100)?wait_ms=20000")
            // The commit comes once the poll is parked on the node (its count says so).
            try await waitUntil("the long-poll parked", limit: .seconds(10), every: .milliseconds(1)) {
                node.node.longPolls.total == 1
            }
            let clock = ContinuousClock()
            let start = clock.now
            _ = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: #"{"stmt":{"sql":"INSERT INTO t VALUES (1)"}}"#)
            let answer = try await polled
            #expect(answer.status == 200)
            #expect(clock.now - start < .seconds(10))
        }
    }

    @Test func replicaSyncedOverHTTPEqualsThePrimary() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            _ = try await node.request(
                "POST", "/db/acme/app/v2/pipeline",
                body:
                    #"{"baton":null,"requests":[{"type":"sequence","sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b')"},{"type":"close"}]}"#
            )
            let base = try await node.requestData("GET", "/db/acme/app/export/1")
            let frames = try await node.requestData("GET", "/db/acme/app/sync/1/1/1000")
            let directory = node.dataDirectory + "/replica"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try base.body.write(to: URL(fileURLWithPath: directory + "/base.db"))
            let replica = try Replica(directory: directory + "/r")
            defer { replica.close() }
            try replica.bootstrap(generation: 1, baseFile: directory + "/base.db")
            try replica.apply(try FrameChunk(generation: 1, firstFrame: 1, bytes: Array(frames.body)))
            let values = try await replica.read { try $0.query("SELECT v FROM t ORDER BY id").map { $0[0] } }
            #expect(values == [.text("a"), .text("b")])
        }
    }
}
