import Testing

@testable import ShoalTime

@Suite(.timeLimit(.minutes(1))) struct DurationUnitsTests {
    @Test(arguments: [
        (Duration.milliseconds(1_500), 1.5, 1_500.0, Int64(1_500)),
        (Duration.seconds(3), 3.0, 3_000.0, Int64(3_000)),
        (Duration.microseconds(2_500), 0.0025, 2.5, Int64(2)),
        (Duration.zero, 0.0, 0.0, Int64(0)),
    ])
    func durationsConvertAcrossWholeSeconds(
        duration: Duration, seconds: Double, milliseconds: Double, whole: Int64
    ) {
        #expect(abs(duration.inSeconds - seconds) < 1e-12)
        #expect(abs(duration.inMilliseconds - milliseconds) < 1e-9)
        #expect(duration.wholeMilliseconds == whole)
    }
}
