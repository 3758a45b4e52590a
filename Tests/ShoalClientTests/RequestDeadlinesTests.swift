import Testing

@testable import ShoalHTTP

/// The deadline a server connection is under, without I/O (the live tests are in ShoalNodeTests
/// and ShoalControlTests).
@Suite(.timeLimit(.minutes(2))) struct RequestDeadlinesTests {
    typealias Event = (inout RequestDeadlines) -> RequestDeadlines.Action

    /// Feeds `events` to a fresh connection's deadlines; returns each action and the phase after.
    static func run(_ events: [Event]) -> (actions: [RequestDeadlines.Action], phase: RequestDeadlines.Phase) {
        var deadlines = RequestDeadlines()
        var actions: [RequestDeadlines.Action] = []
        for event in events { actions.append(event(&deadlines)) }
        return (actions, deadlines.phase)
    }

    @Test func theFirstHeadIsUnderTheHeaderDeadlineFromTheOpening() {
        // Opened (reported twice: added to an active channel, then channelActive), then the head's
        // bytes over several reads: one deadline, started at the opening.
        let (actions, phase) = Self.run([
            { $0.opened() }, { $0.opened() }, { $0.bytesReceived() }, { $0.bytesReceived() }, { $0.bytesReceived() },
        ])
        #expect(actions == [.start(.header), .keep, .keep, .keep, .keep])
        #expect(phase == .awaitingHead)
    }

    @Test func aBodyIsUnderTheBodyDeadlineFromItsHead() {
        let (actions, phase) = Self.run([
            { $0.opened() }, { $0.headReceived() }, { $0.bytesReceived() }, { $0.requestEnded() },
        ])
        #expect(actions == [.start(.header), .start(.body), .keep, .stop])
        #expect(phase == .betweenRequests)
    }

    @Test func aKeptAliveConnectionHasNoDeadlineUntilTheNextRequestsFirstByte() {
        // After a request's end only the idle timeout runs (while the response is written, and
        // after); the next request's first byte starts the header deadline, its head the body's.
        let (actions, phase) = Self.run([
            { $0.opened() }, { $0.headReceived() }, { $0.requestEnded() },
            { $0.bytesReceived() }, { $0.bytesReceived() }, { $0.headReceived() },
        ])
        #expect(actions == [.start(.header), .start(.body), .stop, .start(.header), .keep, .start(.body)])
        #expect(phase == .readingBody)
    }
}
