import Foundation
import ShoalModel
import Testing

@Suite(.timeLimit(.minutes(1)))
struct SyncProtocolCodingTests {
    @Test func generationInfoRoundTrips() throws {
        let info = SyncProtocol.GenerationInfo(currentGeneration: 3)
        #expect(try encodedJSON(info) == ["current_generation": 3])
        #expect(try roundTripped(info) == info)
    }

    @Test func checkpointNeededWithoutMaxFrameNumberDecodes() throws {
        let answer = try decode(SyncProtocol.CheckpointNeeded.self, #"{"status":"checkpoint_needed","generation":2}"#)
        #expect(answer == SyncProtocol.CheckpointNeeded(generation: 2, maxFrameNumber: nil))
    }

    @Test func checkpointNeededEncodesAllThreeKeys() throws {
        #expect(
            try encodedJSON(SyncProtocol.CheckpointNeeded(generation: 2, maxFrameNumber: 41))
                == ["status": "checkpoint_needed", "generation": 2, "max_frame_no": 41])
        let json = try encodedJSON(SyncProtocol.CheckpointNeeded(generation: 2, maxFrameNumber: nil))
        #expect(json.object?["max_frame_no"] == .null)
        #expect(json["status"] == "checkpoint_needed")
    }

    @Test func anAnswerWithAnotherStatusIsNotACheckpointNeeded() {
        #expect(throws: DecodingError.self) {
            try decode(SyncProtocol.CheckpointNeeded.self, #"{"status":"ok","generation":1,"max_frame_no":6}"#)
        }
    }

    @Test func pushResultRoundTripsAndToleratesMissingFields() throws {
        let result = SyncProtocol.PushResult(status: "ok", generation: 1, maxFrameNumber: 6, baton: "p.1")
        #expect(try roundTripped(result) == result)
        #expect(
            try decode(SyncProtocol.PushResult.self, #"{"status":"conflict","generation":4}"#)
                == SyncProtocol.PushResult(status: "conflict", generation: 4, maxFrameNumber: nil))
    }
}
