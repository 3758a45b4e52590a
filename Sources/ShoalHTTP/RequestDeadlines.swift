/// The deadline one server connection is under, as a value: what happened on the connection goes
/// in, what to do with its timer comes out (`RequestDeadlineHandler` does it).
///
/// - From the connection's opening until the first request head is in: the header deadline.
/// - From a head until its request's end: the body deadline.
/// - From a request's end until the next byte arrives: none (the response may take as long as it
///   takes; a connection kept alive with nothing to say is the idle timeout's, which Hummingbird
///   keeps); the first byte of the next request starts the header deadline again.
///
/// Bytes of a next request that arrive in the same read as the end of the one before (a pipelining
/// client) do not start the header deadline; the idle timeout bounds such a connection instead.
struct RequestDeadlines: Equatable {
    /// Where the connection is in its requests.
    enum Phase: Equatable {
        /// Not open yet.
        case new
        /// Waiting for a request head, which has a deadline.
        case awaitingHead
        /// Reading a request body, which has a deadline.
        case readingBody
        /// A request read whole; nothing of the next one has arrived.
        case betweenRequests
    }

    /// What to do with the connection's timer.
    enum Action: Equatable {
        /// Cancel any deadline and start this one from now.
        case start(ConnectionLimits.Deadline)
        /// Cancel the deadline.
        case stop
        /// Leave the timer as it is.
        case keep
    }

    private(set) var phase = Phase.new

    /// The connection opened (reported once or more; only the first counts).
    mutating func opened() -> Action {
        guard phase == .new else { return .keep }
        phase = .awaitingHead
        return .start(.header)
    }

    /// Bytes arrived from the client, before the request decoder has seen them.
    mutating func bytesReceived() -> Action {
        guard phase == .betweenRequests else { return .keep }
        phase = .awaitingHead
        return .start(.header)
    }

    /// The decoder produced a request head.
    mutating func headReceived() -> Action {
        phase = .readingBody
        return .start(.body)
    }

    /// The decoder produced the end of a request.
    mutating func requestEnded() -> Action {
        phase = .betweenRequests
        return .stop
    }
}
