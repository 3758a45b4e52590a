import Foundation
import ShoalTestSupport
import Synchronization
import Testing

@testable import ShoalSQLite

/// A latch that blocking work waits on (on the executor's threads, never the test's tasks).
private final class Latch: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    func open(_ count: Int = 1) { for _ in 0..<count { semaphore.signal() } }
    func wait() { semaphore.wait() }
}

/// Signals from blocking work to the test, awaited without blocking a thread.
private struct Signals: Sendable {
    let stream: AsyncStream<String>
    let continuation: AsyncStream<String>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: String.self)
    }

    func send(_ value: String) { continuation.yield(value) }

    func next(_ count: Int = 1) async -> [String] {
        var got: [String] = []
        for await value in stream {
            got.append(value)
            if got.count == count { break }
        }
        return got
    }
}

/// A value shared by the test and its blocking work.
private final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func update<T>(_ body: (inout Value) -> T) -> T { value.withLock { body(&$0) } }
    var current: Value { value.withLock { $0 } }
}

@Suite(.timeLimit(.minutes(1))) struct BlockingExecutorTests {
    /// Occupies `lane` with work that waits on the returned latch; returns once that work runs.
    private static func occupy(_ lane: BlockingExecutor.Lane) async -> (latch: Latch, work: Task<Void, any Error>) {
        let latch = Latch()
        let started = Signals()
        let work = Task {
            try await lane.run {
                started.send("occupied")
                latch.wait()
            }
        }
        _ = await started.next()
        return (latch, work)
    }

    @Test func workRunsOnTheExecutorsOwnThreads() async throws {
        let executor = BlockingExecutor(threads: 2, name: "test.own")
        defer { executor.shutdown() }
        #expect(try await executor.run { executor.ownsCurrentThread })
        #expect(!executor.ownsCurrentThread)
    }

    @Test func aLaneRunsItsWorkOneAtATimeInOrder() async throws {
        let executor = BlockingExecutor(threads: 4, name: "test.serial")
        defer { executor.shutdown() }
        let lane = executor.makeLane()
        let running = Shared(0)
        let most = Shared(0)
        let order = Shared<[Int]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            let blocker = await Self.occupy(lane)
            // Each piece is in the lane before the next is submitted: the lane's order is the loop's.
            for index in 0..<40 {
                group.addTask {
                    try await lane.run {
                        let now = running.update { value -> Int in
                            value += 1
                            return value
                        }
                        most.update { $0 = max($0, now) }
                        order.update { $0.append(index) }
                        usleep(100)
                        running.update { $0 -= 1 }
                    }
                }
                while lane.waitingCount < index + 1 { await Task.yield() }
            }
            blocker.latch.open()
            try await blocker.work.value
            try await group.waitForAll()
        }
        #expect(most.current == 1)
        #expect(order.current == Array(0..<40))
    }

    @Test func aBusyLaneHoldsNoMoreThanItsWidthOfThreads() async throws {
        let executor = BlockingExecutor(threads: 2, name: "test.share")
        defer { executor.shutdown() }
        let noisy = executor.makeLane()
        let quiet = executor.makeLane()
        let latch = Latch()
        let started = Signals()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    try await noisy.run {
                        started.send("noisy")
                        latch.wait()
                    }
                }
            }
            _ = await started.next()
            // Nine pieces of the noisy lane wait in it, holding no thread: the quiet lane's work
            // gets the second thread at once.
            let answer = try await quiet.run { 42 }
            #expect(answer == 42)
            #expect(noisy.waitingCount == 9)
            latch.open(10)
            try await group.waitForAll()
        }
    }

    @Test func workCancelledWhileWaitingNeverRuns() async throws {
        let executor = BlockingExecutor(threads: 1, name: "test.cancel")
        defer { executor.shutdown() }
        let lane = executor.makeLane()
        let ran = Shared(false)
        let blocker = await Self.occupy(lane)
        let waiting = Task {
            try await lane.run { ran.update { $0 = true } }
        }
        while lane.waitingCount == 0 { await Task.yield() }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        blocker.latch.open()
        try await blocker.work.value
        // The lane is free again: its next work runs (after the abandoned one was passed over).
        #expect(try await lane.run { 7 } == 7)
        #expect(!ran.current)
    }

    @Test func cancellingRunningWorkInterruptsItsStatement() async throws {
        let executor = BlockingExecutor(threads: 1, name: "test.interrupt")
        defer { executor.shutdown() }
        let connection = try Connection(path: ":memory:")
        let handle = connection.interruptHandle
        let started = Signals()
        // The connection is used only by the one piece of work below.
        nonisolated(unsafe) let owned = connection
        // `sqlite3_interrupt` reaches only a statement already running, so the work also checks a
        // flag from its progress handler: a cancellation just before the statement starts counts.
        let cancelled = Shared(false)
        let work = Task {
            try await executor.run(onCancel: {
                cancelled.update { $0 = true }
                handle.interrupt()
            }) {
                try owned.setProgressHandler(every: 100) { cancelled.current }
                started.send("running")
                _ = try owned.queryOne(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n")
            }
        }
        _ = await started.next()
        work.cancel()
        let error = await #expect(throws: SQLiteError.self) { try await work.value }
        #expect(error?.code == .interrupt)
    }

    @Test func aLaneWhoseWorkRunsLongIsDemotedToLowPriorityThreadsForAWhile() async throws {
        let executor = BlockingExecutor(
            threads: 1, name: "test.heavy",
            heavyWork: .init(threshold: .milliseconds(50), demotion: .seconds(5)))
        defer { executor.shutdown() }
        let lane = executor.makeLane()
        let other = executor.makeLane()
        #expect(try await lane.run { executor.runsDemotedWork } == false)
        #expect(!lane.isDemoted)
        // Waiting is not work: a long sleep costs no CPU and demotes nothing.
        try await lane.run { Thread.sleep(forTimeInterval: 0.15) }
        #expect(!lane.isDemoted)
        try await lane.run {
            let start = Job.threadCPUTime()
            while Job.threadCPUTime() - start < .milliseconds(80) {}
        }
        #expect(lane.isDemoted)
        let (demoted, niceness) = try await lane.run {
            (executor.runsDemotedWork, getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0))
        }
        #expect(demoted)
        #expect(niceness == 19)
        // Urgent work (a rollback, a close) and other lanes keep the normal threads.
        #expect(try await lane.run(priority: .urgent) { executor.runsDemotedWork } == false)
        #expect(try await other.run { executor.runsDemotedWork } == false)
        #expect(try await other.run { getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) } == 0)
        // Short work does not renew the demotion: once it is over, the lane is back.
        let demotedAt = ContinuousClock.now
        while lane.isDemoted {
            try #require(ContinuousClock.now - demotedAt < .seconds(15), "the lane is still demoted")
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try await lane.run { executor.runsDemotedWork } == false)
    }

    @Test func anExecutorWithoutHeavyWorkNeverDemotes() async throws {
        let executor = BlockingExecutor(threads: 1, name: "test.flat")
        defer { executor.shutdown() }
        let lane = executor.makeLane()
        try await lane.run {
            let start = Job.threadCPUTime()
            while Job.threadCPUTime() - start < .milliseconds(150) {}
        }
        #expect(!lane.isDemoted)
        #expect(try await lane.run { executor.runsDemotedWork } == false)
    }

    @Test func urgentWorkOvertakesNormalWorkWaitingInTheLane() async throws {
        let executor = BlockingExecutor(threads: 1, name: "test.urgent")
        defer { executor.shutdown() }
        let lane = executor.makeLane()
        let order = Shared<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            let blocker = await Self.occupy(lane)
            group.addTask { try await lane.run { order.update { $0.append("normal") } } }
            while lane.waitingCount < 1 { await Task.yield() }
            group.addTask { try await lane.run(priority: .urgent) { order.update { $0.append("urgent") } } }
            while lane.waitingCount < 2 { await Task.yield() }
            blocker.latch.open()
            try await blocker.work.value
            try await group.waitForAll()
        }
        #expect(order.current == ["urgent", "normal"])
    }

    @Test func cleanupRunsEvenWhenTheTaskThatAsksForItIsCancelled() async throws {
        let executor = BlockingExecutor(threads: 1, name: "test.cleanup")
        defer { executor.shutdown() }
        let lane = executor.makeLane()
        let ran = Shared<[String]>([])
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            let refused: Bool
            do {
                try await lane.run { ran.update { $0.append("normal") } }
                refused = false
            } catch is CancellationError {
                refused = true
            }
            try await lane.run(priority: .cleanup) { ran.update { $0.append("cleanup") } }
            return refused
        }
        #expect(try await task.value)
        #expect(ran.current == ["cleanup"])
    }

    @Test func urgentWorkThatWaitedInItsLaneStaysAheadOfOtherLanesNormalWork() async throws {
        let executor = BlockingExecutor(threads: 1, name: "test.urgent-lane")
        defer { executor.shutdown() }
        let lane = executor.makeLane()
        let other = executor.makeLane()
        let order = Shared<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            let blocker = await Self.occupy(lane)
            // Urgent work waits in the busy lane; normal work of another lane waits for the thread.
            group.addTask { try await lane.run(priority: .urgent) { order.update { $0.append("urgent") } } }
            while lane.waitingCount < 1 { await Task.yield() }
            group.addTask { try await other.run { order.update { $0.append("other") } } }
            while executor.queuedCount < 1 { await Task.yield() }
            blocker.latch.open()
            try await blocker.work.value
            try await group.waitForAll()
        }
        #expect(order.current == ["urgent", "other"])
    }

    @Test func workSubmittedAfterShutdownIsCancelled() async throws {
        let executor = BlockingExecutor(threads: 1, name: "test.shutdown")
        executor.shutdown()
        await #expect(throws: CancellationError.self) { try await executor.run { 1 } }
    }
}

@Suite(.timeLimit(.minutes(1))) struct LockWaitDeadlineTests {
    @Test func aLockWaitEndsAtTheDeadlineHoweverLongTheBusyTimeout() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/locked.db"
        let holder = try Connection(path: path)
        try holder.execute("PRAGMA journal_mode = WAL")
        try holder.execute("CREATE TABLE t(x)")
        try holder.execute("BEGIN IMMEDIATE")
        try holder.execute("INSERT INTO t VALUES (1)")
        let waiter = try Connection(path: path)
        // As long as SQLite allows: without the deadline this write would wait 24 days.
        try waiter.setBusyTimeout(.milliseconds(Int64(Int32.max)))
        let start = ContinuousClock.now
        try waiter.setDeadline(start + .milliseconds(200))
        let error = try #require(throws: SQLiteError.self) { try waiter.execute("INSERT INTO t VALUES (2)") }
        let waited = ContinuousClock.now - start
        #expect(error.code.primary == .busy)
        #expect(waited >= .milliseconds(200))
        #expect(waited < .seconds(5))
        // With the deadline removed, the busy timeout is back: the write waits for the holder.
        try waiter.setDeadline(nil)
        try waiter.setBusyTimeout(.seconds(5))
        try holder.execute("COMMIT")
        try waiter.execute("INSERT INTO t VALUES (2)")
        #expect(try waiter.queryOne("SELECT count(*) FROM t")?[0] == .integer(2))
    }
}
