import Dispatch
import Synchronization

/// Sleeping that lets go of its timer the moment it is cancelled.
///
/// A cancelled `Task.sleep` keeps its timer, and the memory behind it, until the original deadline:
/// a request raced against a 10-minute deadline leaves 10 minutes' worth of memory behind every
/// time it finishes early, which a process serving thousands of tenants feels as steady growth
/// (about 0.5 KB per pending sleep; see `shoal-bench pool-churn` in docs/BENCHMARKS.md). Use this
/// for timeouts that usually do not fire.
public enum CancellableSleep {
    /// Waits `duration`, or less if the calling task is cancelled: true when the time passed, false
    /// when the sleep ended by cancellation (then its timer is already released).
    @discardableResult
    public static func sleep(for duration: Duration) async -> Bool {
        await sleep(for: duration, on: SleepTimer())
    }

    /// `sleep(for:)` on a given timer (tests hold it weakly to see it freed).
    static func sleep(for duration: Duration, on timer: SleepTimer) async -> Bool {
        if Task.isCancelled { return false }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                timer.start(after: duration, continuation)
            }
        } onCancel: {
            timer.finish(elapsed: false)
        }
    }
}

/// One sleep: a dispatch timer that resumes the sleeper once, from whichever of the timer and the
/// cancellation comes first, and is cancelled (freed) by that.
final class SleepTimer: Sendable {
    /// A dispatch timer, used only to resume and cancel it (both thread-safe).
    private struct Source: @unchecked Sendable {
        let timer: any DispatchSourceTimer
    }

    private enum Phase: Sendable {
        case notStarted
        case waiting(CheckedContinuation<Bool, Never>, Source)
        case finished
    }

    private let phase = Mutex<Phase>(.notStarted)

    func start(after duration: Duration, _ continuation: CheckedContinuation<Bool, Never>) {
        let source = DispatchSource.makeTimerSource(queue: .global())
        source.schedule(deadline: .now() + Self.interval(duration))
        // The handler holds the timer until the source is cancelled, which `finish` always does.
        source.setEventHandler { self.finish(elapsed: true) }
        let started = phase.withLock { phase -> Bool in
            guard case .notStarted = phase else { return false }  // cancelled before it started
            phase = .waiting(continuation, Source(timer: source))
            return true
        }
        // A source is created suspended and may not be released suspended: resume it either way,
        // cancelled first when the sleep is already over.
        if !started { source.cancel() }
        source.resume()
        if !started { continuation.resume(returning: false) }
    }

    func finish(elapsed: Bool) {
        let waiting = phase.withLock { phase -> (CheckedContinuation<Bool, Never>, Source)? in
            defer { phase = .finished }
            guard case .waiting(let continuation, let source) = phase else { return nil }
            return (continuation, source)
        }
        guard let (continuation, source) = waiting else { return }
        source.timer.cancel()
        continuation.resume(returning: elapsed)
    }

    /// `duration` as a dispatch interval, at most about 292 years.
    private static func interval(_ duration: Duration) -> DispatchTimeInterval {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return .nanoseconds(0) }
        let (nanoseconds, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return .nanoseconds(Int.max) }
        let (total, overflowAgain) = nanoseconds.addingReportingOverflow(attoseconds / 1_000_000_000)
        return .nanoseconds(overflowAgain ? Int.max : Int(total))
    }
}
