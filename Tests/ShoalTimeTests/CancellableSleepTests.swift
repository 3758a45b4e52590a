import Testing

@testable import ShoalTime

@Suite("CancellableSleep", .timeLimit(.minutes(2)))
struct CancellableSleepTests {
    @Test func aSleepThatRunsOutSaysSo() async {
        let started = ContinuousClock.now
        let elapsed = await CancellableSleep.sleep(for: .milliseconds(30))
        #expect(elapsed)
        #expect(ContinuousClock.now - started >= .milliseconds(30))
    }

    @Test func cancelledSleepsEndAndReleaseTheirTimers() async throws {
        // An hour each: only cancellation can end them, and their timers must be freed then, not
        // in an hour.
        var watched: [WeakTimer] = []
        let results = await withTaskGroup(of: Bool.self, returning: [Bool].self) { group in
            for _ in 0..<1_000 {
                let timer = SleepTimer()
                watched.append(WeakTimer(timer))
                group.addTask { await CancellableSleep.sleep(for: .seconds(3_600), on: timer) }
            }
            try? await Task.sleep(for: .milliseconds(50))
            group.cancelAll()
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 1_000)
        #expect(results.allSatisfy { $0 == false })
        // Nothing but the cancelled dispatch timers could still hold them; dispatch lets go of a
        // cancelled timer's handler shortly after.
        var alive = watched.count { $0.timer != nil }
        for _ in 0..<100 where alive > 0 {
            try await Task.sleep(for: .milliseconds(20))
            alive = watched.count { $0.timer != nil }
        }
        #expect(alive == 0, "\(alive) of 1,000 cancelled sleeps still hold their timers")
    }

    @Test func aTaskCancelledBeforeItSleepsDoesNotSleep() async {
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await CancellableSleep.sleep(for: .seconds(3_600))
        }
        #expect(await task.value == false)
    }
}

final class WeakTimer: @unchecked Sendable {
    weak var timer: SleepTimer?

    init(_ timer: SleepTimer) {
        self.timer = timer
    }
}
