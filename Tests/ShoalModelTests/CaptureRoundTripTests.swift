import Foundation
import ShoalModel
import Testing

@Suite(.timeLimit(.minutes(1)))
struct CaptureRoundTripTests {
    @Test func everyBundledCaptureFileHasARoundTripTest() throws {
        #expect(try Captures.bundledKinds() == Set(Captures.kinds))
    }

    @Test func v1ExecuteRequestsRoundTrip() throws {
        try RoundTrip.check(Hrana.ExecuteRequest.self, "requests-v1-execute")
    }

    @Test func v1BatchRequestsRoundTrip() throws {
        try RoundTrip.check(Hrana.BatchRequest.self, "requests-v1-batch")
    }

    @Test func v3PipelineRequestsRoundTrip() throws {
        try RoundTrip.check(Hrana.PipelineRequest.self, "requests-v3-pipeline")
    }

    @Test func v3CursorRequestsRoundTrip() throws {
        try RoundTrip.check(Hrana.CursorRequest.self, "requests-v3-cursor")
    }

    @Test func v1ExecuteResponsesRoundTrip() throws {
        try RoundTrip.check(Hrana.ResultEnvelope<Hrana.StatementResult>.self, "responses-v1-execute")
    }

    @Test func v1BatchResponsesRoundTrip() throws {
        try RoundTrip.check(Hrana.ResultEnvelope<Hrana.BatchResult>.self, "responses-v1-batch")
    }

    @Test func v1ErrorResponsesRoundTrip() throws {
        try RoundTrip.check(Hrana.Failure.self, "responses-v1-errors")
    }

    @Test func v3PipelineResponsesRoundTrip() throws {
        try RoundTrip.check(Hrana.PipelineResponse.self, "responses-v3-pipeline")
    }

    @Test func v3CursorHeadersRoundTrip() throws {
        try RoundTrip.check(Hrana.CursorHeader.self, "responses-v3-cursor-headers")
    }

    @Test func v3CursorEntriesRoundTrip() throws {
        try RoundTrip.check(Hrana.CursorEntry.self, "responses-v3-cursor-entries")
    }

    @Test func infoResponsesRoundTrip() throws {
        try RoundTrip.check(SyncProtocol.GenerationInfo.self, "responses-info")
    }

    @Test func syncPullResponsesRoundTrip() throws {
        try RoundTrip.check(SyncProtocol.CheckpointNeeded.self, "responses-sync-pull")
    }

    @Test func syncPushResponsesRoundTrip() throws {
        try RoundTrip.check(SyncProtocol.PushResult.self, "responses-sync-push")
    }

    @Test func capturedPipelineResponsesKeepTheirReplicationIndexes() throws {
        var indexes: [String] = []
        for body in try Captures.bodies("responses-v3-pipeline") {
            for case .ok(.batch(let batch)) in try JSONDecoder().decode(Hrana.PipelineResponse.self, from: body).results
            {
                indexes += batch.stepResults.compactMap { $0?.replicationIndex }
            }
        }
        #expect(!indexes.isEmpty)
        #expect(indexes.allSatisfy { UInt64($0) != nil })
    }

    @Test func capturedCursorEntriesGiveTheRowIDAsNumberOrStringTheSameValue() throws {
        let rowIDs = try Captures.bodies("responses-v3-cursor-entries").compactMap { body -> Int64? in
            guard case .stepEnd(_, let rowID) = try JSONDecoder().decode(Hrana.CursorEntry.self, from: body)
            else { return nil }
            return rowID
        }
        // E10: the same step end once with `"last_insert_rowid": 7`, once with `"7"`.
        #expect(rowIDs.filter { $0 == 7 }.count == 2)
    }

    @Test func capturedErrorsWithoutACodeDecode() throws {
        var failures: [Hrana.Failure] = []
        for body in try Captures.bodies("responses-v3-pipeline") {
            for case .ok(.batch(let batch)) in try JSONDecoder().decode(Hrana.PipelineResponse.self, from: body).results
            {
                failures += batch.stepErrors.compactMap { $0 }
            }
        }
        // E13: one error with `SQLITE_ERROR`, one without a code, one with a null code.
        #expect(failures.contains { $0.code == "SQLITE_ERROR" })
        #expect(failures.filter { $0.code == Hrana.Failure.unknownCode }.count == 2)
    }
}
