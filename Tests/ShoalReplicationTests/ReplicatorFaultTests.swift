import Foundation
import ShoalSQLite
import ShoalTestSupport
import Testing

@testable import ShoalReplication

/// The replicator's failure paths, reached through a scripted frame source over a real primary:
/// whatever the source does wrong, the replica never shows a state the primary did not have, and
/// a later sync from a well-behaved source converges.
@Suite(.timeLimit(.minutes(2))) struct ReplicatorFaultTests {
    struct Outage: Error, Equatable {}

    struct Setup {
        let directory: TemporaryDirectory
        let log: PrimaryLog
        let writer: Connection
        let replica: Replica
        let source: ScriptedFrameSource
        let replicator: Replicator

        init(framesPerRequest: Int = 1024) throws {
            directory = try TemporaryDirectory()
            log = try PrimaryLog(directory: directory.file("primary"))
            writer = try log.makeConnection()
            replica = try Replica(directory: directory.file("replica"))
            source = ScriptedFrameSource(PrimaryLogSource(log: log))
            replicator = Replicator(
                replica: replica, source: source, configuration: .init(framesPerRequest: framesPerRequest))
        }

        func write(_ sql: String) throws { try log.write(writer, sql) }

        /// A sync from the source without faults left: the replica equals the primary.
        func convergeAndCompare(sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let result = try await replicator.sync()
            #expect(result.position == log.position, sourceLocation: sourceLocation)
            #expect(try replica.integrityCheck() == "ok", sourceLocation: sourceLocation)
            #expect(try replica.contents() == DatabaseContents(writer), sourceLocation: sourceLocation)
        }

        func rows() async throws -> Int64? {
            try await replica.read { try $0.queryOne("SELECT count(*) FROM t")?[0].integerValue }
        }

        func close() {
            try? writer.close()
            replica.close()
            log.close()
        }
    }

    @Test func aSourceThatFailsMidwayLeavesTheAppliedPrefixAndTheNextSyncResumesFromIt() async throws {
        let setup = try Setup(framesPerRequest: 2)
        defer { setup.close() }
        try setup.write("CREATE TABLE t (x)")
        try await setup.convergeAndCompare()
        for value in 0..<6 { try setup.write("INSERT INTO t VALUES (\(value))") }
        // Two requests answer, the third fails.
        setup.source.script(.frames, .truncate(frames: 2), .truncate(frames: 2), .fail(Outage()))
        await #expect(throws: Outage.self) { try await setup.replicator.sync() }
        let stopped = try #require(setup.replica.position)
        #expect(stopped.frame > 0 && stopped < setup.log.position)
        #expect(try setup.replica.integrityCheck() == "ok")
        let before = setup.source.calls.count
        try await setup.convergeAndCompare()
        // The next sync asked for the frame after what was applied, not from the start.
        guard case .frames(_, let start) = setup.source.calls[before] else {
            Issue.record("the sync did not ask for frames first: \(setup.source.calls[before...])")
            return
        }
        #expect(start == stopped.frame + 1)
    }

    @Test func aTransactionCutAcrossAnswersIsShownOnlyWhenItsCommitFrameArrives() async throws {
        let setup = try Setup()
        defer { setup.close() }
        try setup.write("CREATE TABLE t (x)")
        try await setup.convergeAndCompare()
        // One transaction that dirties several pages: several frames, the last one its commit.
        try setup.write(
            "BEGIN; WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 2000) "
                + "INSERT INTO t SELECT v FROM s; CREATE INDEX i ON t (x); COMMIT")
        let framesOfIt = setup.log.position.frame - (setup.replica.position?.frame ?? 0)
        #expect(framesOfIt > 2)
        // The first answer stops before the commit frame, the second fails: nothing of it shows.
        setup.source.script(.frames, .truncate(frames: Int(framesOfIt) - 1), .fail(Outage()))
        await #expect(throws: Outage.self) { try await setup.replicator.sync() }
        #expect(try await setup.rows() == 0)
        try await setup.convergeAndCompare()
        #expect(try await setup.rows() == 2000)
    }

    @Test(arguments: [0, 7, 10, 20, 24, 100, 4119])
    func anAlteredFrameIsRefusedBeforeAnythingOfItIsApplied(offsetInSecondFrame: Int) async throws {
        let setup = try Setup()
        defer { setup.close() }
        try setup.write("CREATE TABLE t (x)")
        try await setup.convergeAndCompare()
        try setup.write(
            "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 500) "
                + "INSERT INTO t SELECT randomblob(100) FROM s")
        #expect(setup.log.position.frame - (setup.replica.position?.frame ?? 0) > 2)
        let before = try #require(setup.replica.position)
        // One byte of the second frame (header or page) flipped on the way.
        setup.source.script(.frames, .flipByte(offset: WALFormat.frameSize + offsetInSecondFrame))
        let refused = await #expect(throws: ReplicationError.self) { try await setup.replicator.sync() }
        #expect(refused?.isSameKind(as: .invalidFrames("")) == true, "\(String(describing: refused))")
        #expect(setup.replica.position == before)
        #expect(try await setup.rows() == 0)
        try await setup.convergeAndCompare()
    }

    @Test func aNextFrameThatDoesNotContinueTheChainMeansTheSourceDivergedAndTheReplicaStartsOver() async throws {
        let setup = try Setup()
        defer { setup.close() }
        try setup.write("CREATE TABLE t (x)")
        try setup.write("INSERT INTO t VALUES (1)")
        try await setup.convergeAndCompare()
        try setup.write("INSERT INTO t VALUES (2)")
        // The answer's first frame is not the one the replica's last frame chains to: a primary
        // that lost its last commits, or a restored WAL, would send that for ever. The replicator
        // does not retry it; it bootstraps from the source's base, and nothing of the frame shows.
        setup.source.script(.frames, .flipByte(offset: 2000))
        let result = try await setup.replicator.sync()
        #expect(result.bootstrapped)
        #expect(setup.source.calls.contains(.exportBase(generation: 1)))
        try await setup.convergeAndCompare()
        #expect(try await setup.rows() == 2)
    }

    @Test func aBaseThatBreaksOffLeavesNoReplicaAndTheNextSyncBootstrapsCleanly() async throws {
        let setup = try Setup()
        defer { setup.close() }
        try setup.write("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        setup.source.script(.exportBase, .partialBase(bytes: 1000, then: Outage()))
        await #expect(throws: Outage.self) { try await setup.replicator.sync() }
        #expect(setup.replica.position == nil)
        // The staging file is gone.
        let left = try FileManager.default.contentsOfDirectory(atPath: setup.replica.directory)
        #expect(!left.contains { $0.hasSuffix(".download") }, "\(left)")
        try await setup.convergeAndCompare()
    }

    @Test func aGenerationGoneOrAPositionTheSourceNeverHadBootstrapsAgain() async throws {
        let setup = try Setup()
        defer { setup.close() }
        try setup.write("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
        try await setup.convergeAndCompare()
        try setup.write("INSERT INTO t VALUES (2)")
        setup.source.script(.frames, .fail(ReplicationError.generationGone("pruned")))
        let gone = try await setup.replicator.sync()
        #expect(gone.bootstrapped)
        try await setup.convergeAndCompare()
        // A source that says its generation ends before the replica's frame: the replica holds
        // frames the source never had, and starts over from a base.
        let position = try #require(setup.replica.position)
        setup.source.script(
            .frames, .answer(.upToDate(currentGeneration: position.generation + 1, lastFrame: position.frame - 1)))
        let restarted = try await setup.replicator.sync()
        #expect(restarted.bootstrapped)
        try await setup.convergeAndCompare()
        #expect(setup.source.unusedFaults == 0)
    }
}
