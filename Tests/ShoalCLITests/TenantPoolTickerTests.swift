import Foundation
import ShoalClient
import ShoalSQLite
import Synchronization
import Testing

/// A `TenantPool` driving 1,000 tenants (opening, syncing, reading and evicting them, 4 at a time,
/// through a pool of 100) never holds a thread of the cooperative pool long enough to stall an
/// unrelated task: a ticker sleeping 1 ms at a time on that pool is never woken more than 10 ms late.
/// The node runs in a child process, so that only the pool's work competes with the ticker here; the
/// baseline, measured in the same run and printed beside it, puts the same CPU load on this process
/// without any cooperative-pool blocking: as many tasks doing only non-blocking awaits, and as much CPU
/// time as the pool phase used, burnt on the blocking executor's threads.
///
/// On two cores that CPU load alone sometimes wakes the ticker over 10 ms late (the kernel's
/// scheduling of more runnable threads than cores; measured 3.9 to 16.5 ms at worst). So the checks
/// are: the 99th percentile of the pool phase's stalls under 10 ms, and its worst stall within 10 ms
/// or the baseline's own worst, whichever is larger, plus 5 ms for the run-to-run spread of that
/// worst. Before replica reads waited for applies without their thread, this measured a p99 of 18 ms
/// and a worst stall of 146 ms.
@Suite("TenantPool: syncing tenants never stalls the cooperative pool", .serialized, .timeLimit(.minutes(5)))
struct TenantPoolTickerTests {
    static let tenants = 1_000
    static let capacity = 100
    static let concurrency = 4
    static let tick = Duration.milliseconds(1)
    static let allowedStall = Duration.milliseconds(10)

    @Test func aPoolOfAThousandSyncingTenantsNeverStallsATickerForMoreThanTenMilliseconds() async throws {
        let scratch = try Scratch()
        let node = try ShoalProcess([
            "node", "--no-auth", "--port", "0", "--data", scratch.path + "/node", "--location", "fra",
            "--create-on-first-use", "--max-open-databases", "128",
        ])
        let nodeURL = try await node.waitForLine(prefix: "shoal node (fra) listening on")
        // The node stands in for a server on another machine: on two cores it would otherwise take
        // the CPU the ticker measures.
        try node.yieldCPU()

        // Every tenant gets a table with one row, written through the node, for its replica to pull.
        let setupStarted = ContinuousClock.now
        try await Self.within(.seconds(120), "creating \(Self.tenants) tenants") {
            try await Self.forEach(0..<Self.tenants, concurrency: 16) { index in
                let answer = try await HTTP.send(
                    "POST", "\(nodeURL)/db/acme/\(Self.tenant(index))/v2/pipeline",
                    json: [
                        "requests": [
                            ["type": "execute", "stmt": ["sql": "CREATE TABLE t (v INTEGER)"]],
                            ["type": "execute", "stmt": ["sql": "INSERT INTO t VALUES (\(index))"]],
                            ["type": "close"],
                        ]
                    ], token: nil)
                let failed = (answer.json["results"] as? [[String: Any]])?.contains { $0["type"] as? String != "ok" }
                guard answer.status == 200, failed == false else {
                    throw CLITestError(
                        "creating \(Self.tenant(index)) failed: \(answer.status) \(answer.text.prefix(300))")
                }
            }
        }
        print("ticker: \(Self.tenants) tenants created in \(Self.milliseconds(ContinuousClock.now - setupStarted)) ms")

        // The pool phase: every tenant opened (bootstrapped), synced and read once, evicting as it goes,
        // with the pool's own shared sync loop running beside it.
        let pool = TenantPool(
            configuration: .init(directory: scratch.path + "/replicas", capacity: Self.capacity),
            resolver: { tenant in TenantEndpoint(url: URL(string: "\(nodeURL)/db/acme/\(tenant)")!) })
        let poolPhase: StallReport
        let cpuBefore = Self.processCPUTime()
        do {
            poolPhase = try await Self.measureStalls {
                try await Self.within(.seconds(180), "driving \(Self.tenants) tenants through the pool") {
                    try await Self.drive(pool)
                }
            }
        } catch {
            await pool.close()
            throw error
        }
        let poolCPU = Self.processCPUTime() - cpuBefore
        let metrics = pool.metrics
        try await Self.within(.seconds(60), "closing the pool") { await pool.close() }

        // The baseline: as long (within 2 to 30 s), as many tasks, but only non-blocking awaits,
        // and the pool phase's CPU time (scaled to the baseline's length) burnt off the cooperative pool.
        let baselineLength = min(max(poolPhase.length, .seconds(2)), .seconds(30))
        let burn = poolCPU * (baselineLength / poolPhase.length)
        let baseline = try await Self.measureStalls {
            async let burnt: Void = Self.burn(burn, over: baselineLength)
            try await Self.awaitOnly(for: baselineLength, tasks: Self.concurrency)
            try await burnt
        }
        print(
            "ticker: CPU time of the pool phase \(Self.milliseconds(poolCPU)) ms; burnt in the baseline "
                + "\(Self.milliseconds(burn)) ms")

        print("ticker: pool phase     \(poolPhase)")
        print("ticker: baseline phase \(baseline)")
        print(
            "ticker: pool opens \(metrics.opens), failed opens \(metrics.failedOpens), evictions \(metrics.evictions)")

        // Every tenant passed through: opened once at least, and all but `capacity` evicted again.
        #expect(metrics.opens >= Self.tenants)
        #expect(metrics.evictions >= Self.tenants - Self.capacity)
        // Enough ticks for the measurement to say something (a starved ticker also fails below).
        #expect(poolPhase.ticks >= 100, "the ticker woke only \(poolPhase.ticks) times beside the pool")
        #expect(baseline.ticks >= 100, "the ticker woke only \(baseline.ticks) times in the baseline")
        #expect(
            poolPhase.p99 < Self.allowedStall,
            "the pool stalled the cooperative pool: \(poolPhase); baseline without the pool: \(baseline)")
        #expect(
            poolPhase.maximum < max(Self.allowedStall, baseline.maximum) + Self.allowedStall / 2,
            "the pool stalled the cooperative pool: \(poolPhase); baseline without the pool: \(baseline)")

        #expect(try await node.stop(signal: SIGTERM) == 0)
    }

    /// The tenant id (and database name on the node) of tenant `index`.
    static func tenant(_ index: Int) -> String {
        "tenant-\(String(index + 10_000).dropFirst())"
    }

    /// Every tenant through `pool`, `concurrency` at a time: its replica leased (opened on first
    /// use), synced, and its row read locally; with the pool's shared sync loop running meanwhile.
    static func drive(_ pool: TenantPool) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await pool.run(every: .milliseconds(250)) }
            try await forEach(0..<tenants, concurrency: concurrency) { index in
                let matches = try await pool.withDatabase(tenant(index)) { (database: Database) async throws -> Bool in
                    try await database.sync()
                    return try await database.queryOne("SELECT v FROM t")?[0] == .integer(Int64(index))
                }
                guard matches else { throw CLITestError("\(tenant(index)) did not read back its row") }
            }
            group.cancelAll()
        }
    }

    /// The CPU time (user and system) this process has used.
    static func processCPUTime() -> Duration {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func duration(_ time: timeval) -> Duration {
            .seconds(Int64(time.tv_sec)) + .microseconds(Int64(time.tv_usec))
        }
        return duration(usage.ru_utime) + duration(usage.ru_stime)
    }

    /// Spends `total` CPU time spinning on the blocking executor's threads, spread evenly over
    /// `length`, in 1 ms slices from as many tasks as the executor has threads.
    static func burn(_ total: Duration, over length: Duration) async throws {
        let workers = BlockingExecutor.shared.threadCount
        let slice = Duration.milliseconds(1)
        let slices = Int(total / slice) / workers
        guard slices > 0 else { return }
        let pause = max(.zero, length / slices - slice)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<workers {
                group.addTask {
                    for _ in 0..<slices {
                        try await BlockingExecutor.shared.run {
                            let end = ContinuousClock.now + slice
                            while ContinuousClock.now < end {}
                        }
                        try await Task.sleep(for: pause)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// The baseline's load: `tasks` tasks that only sleep and yield until `length` has passed.
    static func awaitOnly(for length: Duration, tasks: Int) async throws {
        let end = ContinuousClock.now + length
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<tasks {
                group.addTask {
                    while ContinuousClock.now < end {
                        try await Task.sleep(for: .microseconds(Int.random(in: 200...2_000)))
                        await Task.yield()
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Runs `body` for each of `indices`, at most `concurrency` at once; the first error ends it.
    static func forEach(
        _ indices: Range<Int>, concurrency: Int, _ body: @escaping @Sendable (Int) async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = indices.lowerBound
            while next < indices.upperBound, next - indices.lowerBound < concurrency {
                group.addTask { [next] in try await body(next) }
                next += 1
            }
            while try await group.next() != nil {
                guard next < indices.upperBound else { continue }
                group.addTask { [next] in try await body(next) }
                next += 1
            }
        }
    }

    /// Runs `body`, or throws when it has not finished within `limit` (cancelling it).
    static func within<T: Sendable>(
        _ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw CLITestError("\(what) took longer than \(limit)")
            }
            return value
        }
    }

    /// Runs `work` while a ticker task on the cooperative pool sleeps 1 ms at a time; returns how
    /// late each wake was beyond the 1 ms asked (the gap between consecutive wakes, less 1 ms).
    static func measureStalls(_ work: () async throws -> Void) async throws -> StallReport {
        let stop = StopSignal()
        let started = ContinuousClock.now
        async let stalls = ticker(until: stop)
        do {
            try await work()
        } catch {
            stop.raise()
            _ = await stalls
            throw error
        }
        stop.raise()
        let measured = await stalls
        return StallReport(stalls: measured, length: ContinuousClock.now - started)
    }

    /// Sleeps `tick` at a time until `stop` is raised (or the task is cancelled), recording how late
    /// each wake came.
    static func ticker(until stop: StopSignal) async -> [Duration] {
        var stalls: [Duration] = []
        stalls.reserveCapacity(200_000)
        var last = ContinuousClock.now
        while !stop.isRaised {
            do {
                try await Task.sleep(for: tick)
            } catch {
                break
            }
            let now = ContinuousClock.now
            stalls.append(max(.zero, now - last - tick))
            last = now
        }
        return stalls
    }

    static func milliseconds(_ duration: Duration) -> String {
        let value = Double(duration.components.seconds) * 1e3 + Double(duration.components.attoseconds) / 1e15
        return String(format: "%.2f", value)
    }

    /// How late a ticker's wakes came over one phase.
    struct StallReport: CustomStringConvertible {
        /// Wakes recorded.
        let ticks: Int
        /// The latest wake beyond the sleep asked for.
        let maximum: Duration
        /// The 99th percentile of the same.
        let p99: Duration
        /// How long the phase took.
        let length: Duration
        /// Wakes more than `allowedStall` late.
        let overTen: Int

        init(stalls: [Duration], length: Duration) {
            let sorted = stalls.sorted()
            ticks = sorted.count
            maximum = sorted.last ?? .zero
            p99 = sorted.isEmpty ? .zero : sorted[(sorted.count - 1) * 99 / 100]
            overTen = sorted.count { $0 > TenantPoolTickerTests.allowedStall }
            self.length = length
        }

        var description: String {
            let ms = TenantPoolTickerTests.milliseconds
            return
                "ticks \(ticks) in \(ms(length)) ms, max stall \(ms(maximum)) ms, p99 stall \(ms(p99)) ms, "
                + "\(overTen) stalls over 10 ms"
        }
    }

    /// Tells the ticker to stop.
    final class StopSignal: Sendable {
        private let raised = Mutex(false)

        var isRaised: Bool { raised.withLock { $0 } }

        func raise() { raised.withLock { $0 = true } }
    }
}
