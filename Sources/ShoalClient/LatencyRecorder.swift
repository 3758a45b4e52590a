import Synchronization

/// Durations of an operation: a count, the slowest, and the last 1,024 for percentiles.
public final class LatencyRecorder: Sendable {
    /// What was recorded.
    public struct Summary: Sendable, Equatable {
        /// How many durations were recorded.
        public let count: Int
        /// The median of the recent ones.
        public let median: Duration
        /// The 99th percentile of the recent ones.
        public let p99: Duration
        /// The slowest ever.
        public let max: Duration
    }

    private struct State {
        var recent: [Duration] = []
        var next = 0
        var count = 0
        var max: Duration = .zero
    }

    private let state = Mutex(State())
    private let window = 1024

    /// An empty recorder.
    public init() {}

    /// Records one duration.
    public func record(_ duration: Duration) {
        state.withLock { state in
            if state.recent.count < window {
                state.recent.append(duration)
            } else {
                state.recent[state.next] = duration
            }
            state.next = (state.next + 1) % window
            state.count += 1
            state.max = Swift.max(state.max, duration)
        }
    }

    /// The summary now.
    public var summary: Summary {
        let (recent, count, max) = state.withLock { ($0.recent, $0.count, $0.max) }
        let sorted = recent.sorted()
        func percentile(_ p: Double) -> Duration {
            sorted.isEmpty ? .zero : sorted[Swift.min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
        return Summary(count: count, median: percentile(0.5), p99: percentile(0.99), max: max)
    }
}
