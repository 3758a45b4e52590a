import Foundation
import Synchronization

/// A fixed set of threads of its own for blocking work (SQLite calls, file I/O, lock waits), so
/// that such work never runs on Swift's cooperative pool or an event loop: the caller awaits, the
/// executor hops.
///
/// Work is taken in order of submission, urgent work first. `Lane`s give per-database serial
/// execution: the work of one lane runs at most `width` at a time, and what waits in a lane holds
/// no thread, so one busy database cannot take more than its share of the threads.
///
/// A task cancelled while its work waits gets `CancellationError` and the work never runs; while
/// it runs, cancellation calls the work's `onCancel` (a connection's `interrupt()`, say).
///
/// A lane whose work takes much CPU (`HeavyWork`) is demoted for a while: its normal work runs on a
/// second set of threads at the lowest CPU priority, so that when the cores are busy the kernel
/// gives them to everybody else's short work first. Urgent work always runs on the normal threads.
public final class BlockingExecutor: Sendable {
    /// When a lane counts as heavy, for how long, and how low its threads run.
    public struct HeavyWork: Sendable {
        /// A piece of a lane's work that takes this much CPU time demotes the lane.
        public var threshold: Duration
        /// How long a demotion lasts after the last long piece of work.
        public var demotion: Duration
        /// The nice value of the threads that run demoted work (19, the lowest priority; Linux,
        /// where nice values are per thread; elsewhere the threads keep their priority).
        public var niceness: Int32

        /// Demotion after a piece of work of 100 ms of CPU, for 10 s, at nice 19.
        public init(threshold: Duration = .milliseconds(100), demotion: Duration = .seconds(10), niceness: Int32 = 19) {
            self.threshold = threshold
            self.demotion = demotion
            self.niceness = niceness
        }
    }

    /// How urgent a piece of work is.
    public enum Priority: Sendable {
        /// In order of submission.
        case normal
        /// Ahead of everything normal: releasing what others wait for (rollbacks, closes).
        case urgent
        /// Urgent, and run even when the calling task is cancelled: the release of what others
        /// wait for (a stream's rollback and close) must not be lost with the request that failed.
        case cleanup

        var isUrgent: Bool { self != .normal }
    }

    /// The process's executor for SQLite and file work: twice as many threads as cores, at least 4,
    /// with heavy lanes demoted (`HeavyWork()`).
    public static let shared = BlockingExecutor(
        threads: max(4, 2 * ProcessInfo.processInfo.activeProcessorCount), name: "shoal.blocking",
        heavyWork: HeavyWork())

    /// How many threads run work (and as many more run demoted lanes' work).
    public let threadCount: Int
    /// What demotes a lane; nil: lanes are never demoted.
    public let heavyWork: HeavyWork?
    private let queue: WorkQueue
    /// Normal work of demoted lanes, run by threads at `heavyWork.niceness`.
    private let demoted: WorkQueue

    /// Starts `threads` threads named `name`-N and, with `heavyWork`, as many named `name`-low-N
    /// for demoted lanes; they live as long as the executor (see `shutdown()`).
    public init(threads: Int, name: String, heavyWork: HeavyWork? = nil) {
        precondition(threads > 0, "a blocking executor needs at least one thread")
        threadCount = threads
        self.heavyWork = heavyWork
        queue = WorkQueue()
        demoted = WorkQueue()
        for index in 0..<threads {
            Self.startThread(named: "\(name)-\(index)", queue: queue, niceness: nil)
            if let heavyWork {
                Self.startThread(named: "\(name)-low-\(index)", queue: demoted, niceness: heavyWork.niceness)
            }
        }
    }

    private static func startThread(named name: String, queue: WorkQueue, niceness: Int32?) {
        let thread = Thread {
            #if os(Linux)
                // Raising one's own nice value needs no privilege; on Linux it is the thread's.
                if let niceness { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness) }
            #endif
            queue.runWorker()
        }
        thread.name = name
        // SQLite's parser and the sandbox's callbacks recurse: the size of a process's main stack.
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Stops the threads once the work submitted so far has run; work submitted later fails with
    /// `CancellationError`. For executors a test or a short-lived tool made.
    public func shutdown() {
        queue.shutdown()
        demoted.shutdown()
    }

    /// Whether the calling code runs on one of this executor's threads.
    public var ownsCurrentThread: Bool {
        queue.isWorker(pthread_self()) || demoted.isWorker(pthread_self())
    }

    /// Whether the calling code runs on one of the threads of demoted lanes.
    public var runsDemotedWork: Bool { demoted.isWorker(pthread_self()) }

    /// Work waiting for a thread now (not counting work waiting in lanes).
    public var queuedCount: Int { queue.count + demoted.count }

    /// Where a lane's job goes once it may start: demoted lanes' normal work to the low threads.
    func push(_ job: Job, urgent: Bool, demoted isDemoted: Bool) {
        (isDemoted && !urgent ? demoted : queue).push(job, urgent: urgent)
    }

    /// Runs `body` on one of the executor's threads and returns its result.
    public func run<T: Sendable>(
        priority: Priority = .normal, onCancel: @escaping @Sendable () -> Void = {},
        _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        try await submit(priority: priority, onCancel: onCancel, body) { job, priority in
            queue.push(job, urgent: priority.isUrgent)
        }
    }

    /// A lane onto this executor whose work runs at most `width` at a time.
    public func makeLane(width: Int = 1) -> Lane {
        Lane(executor: self, width: width)
    }

    func submit<T: Sendable>(
        priority: Priority, onCancel: @escaping @Sendable () -> Void, _ body: @escaping @Sendable () throws -> T,
        enqueue: (Job, Priority) -> Void
    ) async throws -> T {
        let job = Job()
        guard priority != .cleanup else {
            // Cleanup runs whatever happens to the task that asked for it.
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                job.prepare(
                    work: { continuation.resume(with: job.timed(body)) },
                    abandon: { continuation.resume(throwing: CancellationError()) },
                    onCancel: {})
                enqueue(job, priority)
            }
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                job.prepare(
                    work: { continuation.resume(with: job.timed(body)) },
                    abandon: { continuation.resume(throwing: CancellationError()) },
                    onCancel: onCancel)
                if Task.isCancelled {
                    job.cancel()
                    return
                }
                enqueue(job, priority)
            }
        } onCancel: {
            job.cancel()
        }
    }

    /// Work of one lane (one database) runs at most `width` at a time, in order of submission with
    /// urgent work first; work waiting in a lane holds no thread.
    public final class Lane: Sendable {
        private struct State {
            var running = 0
            var waiting = JobQueue()
            /// Until when the lane is demoted (its last long piece of work, plus the demotion).
            var demotedUntil: ContinuousClock.Instant?
        }

        /// The executor whose threads run the lane's work.
        public let executor: BlockingExecutor
        /// How many of the lane's pieces of work may run at once.
        public let width: Int
        private let state = Mutex(State())

        init(executor: BlockingExecutor, width: Int) {
            precondition(width > 0, "a lane needs a width of at least one")
            self.executor = executor
            self.width = width
        }

        /// Work submitted to the lane and not started yet.
        public var waitingCount: Int { state.withLock { $0.waiting.count } }

        /// Whether the lane's normal work runs on the low-priority threads now.
        public var isDemoted: Bool { state.withLock { Self.isDemoted($0, now: .now) } }

        private static func isDemoted(_ state: State, now: ContinuousClock.Instant) -> Bool {
            state.demotedUntil.map { now < $0 } ?? false
        }

        /// Runs `body` on one of the executor's threads once the lane has room, and returns its result.
        public func run<T: Sendable>(
            priority: Priority = .normal, onCancel: @escaping @Sendable () -> Void = {},
            _ body: @escaping @Sendable () throws -> T
        ) async throws -> T {
            try await executor.submit(priority: priority, onCancel: onCancel, body) { job, priority in
                job.lane = self
                let start = state.withLock { state -> Bool? in
                    if state.running < width {
                        state.running += 1
                        return Self.isDemoted(state, now: .now)
                    }
                    state.waiting.push(job, urgent: priority.isUrgent)
                    return nil
                }
                if let demoted = start { executor.push(job, urgent: priority.isUrgent, demoted: demoted) }
            }
        }

        /// Called by a thread when a piece of the lane's work took `ran` of CPU time, before its
        /// caller resumes: a heavy one demotes the lane.
        func ran(_ ran: Duration) {
            guard let heavy = executor.heavyWork, ran >= heavy.threshold else { return }
            let until = ContinuousClock.now.advanced(by: heavy.demotion)
            state.withLock { $0.demotedUntil = until }
        }

        /// Called by a thread when a piece of the lane's work is over (run or abandoned): the next
        /// one waiting, if any, goes to the executor.
        func finished() {
            let now = ContinuousClock.now
            let next = state.withLock { state -> (job: Job, urgent: Bool, demoted: Bool)? in
                guard let next = state.waiting.pop() else {
                    state.running -= 1
                    return nil
                }
                return (next.job, next.urgent, Self.isDemoted(state, now: now))
            }
            // Urgent work that had to wait in the lane stays urgent in the executor's queue.
            if let next { executor.push(next.job, urgent: next.urgent, demoted: next.demoted) }
        }
    }
}

/// One piece of work: it runs once, or is abandoned (cancelled before it started) once.
final class Job: Sendable {
    private enum Phase {
        case created
        case queued
        case running
        case done
    }

    private struct State {
        var phase = Phase.created
        var work: (@Sendable () -> Void)?
        var abandon: (@Sendable () -> Void)?
        var onCancel: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())
    private let laneSlot = Mutex<BlockingExecutor.Lane?>(nil)

    /// The lane the job counts under, told when the job is over.
    var lane: BlockingExecutor.Lane? {
        get { laneSlot.withLock { $0 } }
        set { laneSlot.withLock { $0 = newValue } }
    }

    func prepare(
        work: @escaping @Sendable () -> Void, abandon: @escaping @Sendable () -> Void,
        onCancel: @escaping @Sendable () -> Void
    ) {
        state.withLock { state in
            state.work = work
            state.abandon = abandon
            state.onCancel = onCancel
            state.phase = .queued
        }
    }

    /// Cancels the job: abandoned at once if it has not started, its `onCancel` called if it runs.
    func cancel() {
        enum Action {
            case none
            case abandon(@Sendable () -> Void)
            case interrupt(@Sendable () -> Void)
        }
        let action = state.withLock { state -> Action in
            switch state.phase {
            case .created:
                return .none
            case .queued:
                state.phase = .done
                let abandon = state.abandon
                state.work = nil
                state.abandon = nil
                return abandon.map { .abandon($0) } ?? .none
            case .running:
                return state.onCancel.map { .interrupt($0) } ?? .none
            case .done:
                return .none
            }
        }
        switch action {
        case .none: break
        case .abandon(let abandon): abandon()
        case .interrupt(let interrupt): interrupt()
        }
    }

    /// Runs the work on the calling thread, unless it was abandoned; then tells its lane.
    func execute() {
        let work = state.withLock { state -> (@Sendable () -> Void)? in
            guard state.phase == .queued, let work = state.work else { return nil }
            state.phase = .running
            state.work = nil
            state.abandon = nil
            return work
        }
        if let work {
            work()
            state.withLock { state in
                state.phase = .done
                state.onCancel = nil
            }
        }
        lane?.finished()
    }

    /// Runs `body`, telling the job's lane how long it ran before the result goes to the caller
    /// (so that the caller's next piece of work already finds the lane demoted).
    func timed<T>(_ body: () throws -> T) -> Result<T, any Error> {
        let start = Self.threadCPUTime()
        let result = Result { try body() }
        lane?.ran(Self.threadCPUTime() - start)
        return result
    }

    /// The CPU time the calling thread has used: what a job costs, whatever it waited for (a
    /// loaded machine stretches wall time, not this).
    static func threadCPUTime() -> Duration {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return .seconds(time.tv_sec) + .nanoseconds(time.tv_nsec)
    }

    /// Fails the work with `CancellationError` if it has not started (at shutdown).
    func abandonIfQueued() {
        let abandon = state.withLock { state -> (@Sendable () -> Void)? in
            guard state.phase == .queued else { return nil }
            state.phase = .done
            defer {
                state.work = nil
                state.abandon = nil
            }
            return state.abandon
        }
        abandon?()
    }
}

/// The executor's queue of work ready to run, and its threads' loop.
final class WorkQueue: @unchecked Sendable {
    // `@unchecked Sendable`: every stored property is read and written only with `condition` locked.
    private let condition = NSCondition()
    private var ready = JobQueue()
    private var stopping = false
    private var workers: Set<pthread_t> = []

    func isWorker(_ thread: pthread_t) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return workers.contains(thread)
    }

    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return ready.count
    }

    func push(_ job: Job, urgent isUrgent: Bool) {
        condition.lock()
        guard !stopping else {
            condition.unlock()
            job.abandonIfQueued()
            job.lane?.finished()
            return
        }
        ready.push(job, urgent: isUrgent)
        condition.signal()
        condition.unlock()
    }

    func shutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    /// A thread's life: take the next job (urgent first), run it, until shut down and empty.
    func runWorker() {
        condition.lock()
        workers.insert(pthread_self())
        condition.unlock()
        while let job = next() {
            job.execute()
        }
    }

    private func next() -> Job? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let next = ready.pop() { return next.job }
            if stopping { return nil }
            condition.wait()
        }
    }
}

/// Jobs in order of submission, urgent ones first: a lane's waiting work and the executor's ready
/// work. Not synchronized: its owner's lock guards it.
struct JobQueue {
    private var urgent: [Job] = []
    private var normal: [Job] = []
    private var urgentHead = 0
    private var normalHead = 0

    /// How many jobs wait.
    var count: Int { urgent.count - urgentHead + normal.count - normalHead }

    mutating func push(_ job: Job, urgent isUrgent: Bool) {
        if isUrgent { urgent.append(job) } else { normal.append(job) }
    }

    /// The next job, urgent first, and whether it is urgent.
    mutating func pop() -> (job: Job, urgent: Bool)? {
        if let job = Self.take(from: &urgent, head: &urgentHead) { return (job, true) }
        if let job = Self.take(from: &normal, head: &normalHead) { return (job, false) }
        return nil
    }

    /// The job at `head`, moving it on; the array is emptied when all is taken and compacted
    /// once more than half of it is taken.
    private static func take(from jobs: inout [Job], head: inout Int) -> Job? {
        guard head < jobs.count else { return nil }
        let job = jobs[head]
        head += 1
        if head == jobs.count {
            jobs.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 64, head * 2 > jobs.count {
            jobs.removeFirst(head)
            head = 0
        }
        return job
    }
}
