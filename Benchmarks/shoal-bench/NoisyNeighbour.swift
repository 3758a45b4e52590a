import ArgumentParser
import CBenchBaseline
import Foundation
import ShoalNode
import ShoalSQLite
import Synchronization

/// `noisy-neighbour`: point reads of 100 quiet tenants on one node, first alone, then while one
/// noisy tenant does the worst it can with valid tokens: a write transaction held open on a parked
/// stream with writers piling up behind it, statements that run until the time limit stops them,
/// and results as large as the response cap allows. The quiet tenants' p50 and p99 are printed
/// beside the same reads measured with the noisy tenant absent, in the same run.
struct NoisyNeighbour: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "noisy-neighbour",
        abstract: "Quiet tenants' point reads with and without one noisy tenant on the same node.")

    @Option(help: "Quiet tenants, each with its own database.")
    var tenants = 100

    @Option(help: "Timed reads per phase (spread over the quiet tenants).")
    var reads = 4_000

    @Option(help: "Threads sending the quiet tenants' reads.")
    var readers = 2

    @Option(help: "The noisy tenant's writers waiting behind its held write transaction.")
    var noisyWriters = 8

    @Option(help: "The noisy tenant's clients running statements until the time limit stops them.")
    var noisySpinners = 2

    @Option(help: "The noisy tenant's clients asking for the largest results allowed.")
    var noisyReaders = 1

    @Option(help: "Seconds a statement may run on the node (the noisy spinners' statements hit it).")
    var statementSeconds = 2

    @Flag(help: "Never demote the noisy tenant's lane to low-priority threads (to compare).")
    var noDemotion = false

    func run() async throws {
        let options = self
        try await InProcessNode.run(
            name: "noisy-neighbour",
            configure: {
                // The shared executor's shape, with or without the demotion of heavy lanes.
                $0.executor = BlockingExecutor(
                    threads: BlockingExecutor.shared.threadCount, name: "shoal.bench",
                    heavyWork: options.noDemotion ? nil : BlockingExecutor.HeavyWork())
                $0.statementTimeLimit = .seconds(Int64(options.statementSeconds))
                $0.requestTimeLimit = .seconds(Int64(options.statementSeconds))
            }
        ) { port, _ in
            try await Task.detached { try options.measure(port: port) }.value
        }
    }

    static func execute(_ sql: String) -> String {
        #"{"type":"execute","stmt":{"sql":"\#(sql)"}}"#
    }

    static func pipeline(baton: String?, _ requests: [String]) -> [UInt8] {
        let batonJSON = baton.map { #""\#($0)""# } ?? "null"
        return Array(#"{"baton":\#(batonJSON),"requests":[\#(requests.joined(separator: ","))]}"#.utf8)
    }

    func measure(port: Int) throws {
        let setup = try LoopbackHTTPClient(port: port)
        for tenant in 0..<tenants {
            _ = try setup.post(
                "/db/quiet/t\(tenant)/v2/pipeline",
                body: Self.pipeline(
                    baton: nil,
                    [
                        #"{"type":"sequence","sql":"CREATE TABLE kv (id INTEGER PRIMARY KEY, value TEXT NOT NULL); WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1000) INSERT INTO kv SELECT i, 'value-' || i FROM s"}"#,
                        #"{"type":"close"}"#,
                    ]))
        }
        _ = try setup.post(
            "/db/noisy/db/v2/pipeline",
            body: Self.pipeline(baton: nil, [Self.execute("CREATE TABLE t (x)"), #"{"type":"close"}"#]))

        let quiet = try quietReads(port: port)

        // The noisy tenant: a held write transaction on a parked stream...
        let holder = try LoopbackHTTPClient(port: port)
        let held = try holder.post(
            "/db/noisy/db/v2/pipeline",
            body: Self.pipeline(
                baton: nil, [Self.execute("BEGIN IMMEDIATE"), Self.execute("INSERT INTO t VALUES (0)")]))
        guard
            let answer = try JSONSerialization.jsonObject(with: Data(held)) as? [String: Any],
            answer["baton"] is String
        else { throw BenchError("the noisy tenant's holder got no stream") }
        // ...and clients that keep at it until the quiet reads are done.
        let stop = Atomic<Bool>(false)
        var noisy: [Thread] = []
        let finished = DispatchGroup()
        func keepGoing(_ body: @escaping @Sendable (LoopbackHTTPClient) throws -> Void) throws {
            let client = try LoopbackHTTPClient(port: port)
            let box = ClientBox(client)
            finished.enter()
            let thread = Thread {
                while !stop.load(ordering: .relaxed) {
                    do { try body(box.client) } catch { break }
                }
                finished.leave()
            }
            thread.stackSize = 1 << 20
            noisy.append(thread)
            thread.start()
        }
        for _ in 0..<noisyWriters {
            try keepGoing { client in
                _ = try client.post(
                    "/db/noisy/db/v2/pipeline",
                    body: Self.pipeline(baton: nil, [Self.execute("INSERT INTO t VALUES (1)"), #"{"type":"close"}"#]))
            }
        }
        for _ in 0..<noisySpinners {
            try keepGoing { client in
                _ = try client.post(
                    "/db/noisy/db/v2/pipeline",
                    body: Self.pipeline(
                        baton: nil,
                        [
                            Self.execute(
                                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
                            ),
                            #"{"type":"close"}"#,
                        ]))
            }
        }
        for _ in 0..<noisyReaders {
            try keepGoing { client in
                _ = try client.post(
                    "/db/noisy/db/v2/pipeline",
                    body: Self.pipeline(
                        baton: nil,
                        Array(repeating: Self.execute("SELECT zeroblob(30000000)"), count: 4) + [#"{"type":"close"}"#]))
            }
        }
        // Warm-up: half a second for every noisy client to have its first request in flight.
        Thread.sleep(forTimeInterval: 0.5)
        let loud = try quietReads(port: port)
        stop.store(true, ordering: .relaxed)
        // The writers finish at their request's time limit, the spinners at the statement's.
        _ = finished.wait(timeout: .now() + .seconds(statementSeconds * 3 + 10))

        for (metric, value, baseline) in [
            ("quiet_tenants_p50", loud.median, quiet.median), ("quiet_tenants_p99", loud.p99, quiet.p99),
        ] {
            BenchResult(
                bench: "noisy-neighbour", metric: metric, value: value / 1000, unit: "us", baseline: baseline / 1000,
                baselineName: metric + "_without_the_noisy_tenant"
            ).print()
        }
    }

    /// `reads` point reads spread over the quiet tenants by `readers` threads, each on its own
    /// keep-alive connection; returns their latencies.
    func quietReads(port: Int) throws -> DurationStats {
        let latencies = Mutex<[UInt64]>([])
        let failures = Mutex<[String]>([])
        let group = DispatchGroup()
        let (tenants, reads, readers) = (self.tenants, self.reads, self.readers)
        for reader in 0..<readers {
            let box = ClientBox(try LoopbackHTTPClient(port: port))
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                var generator = SeededGenerator(seed: UInt64(reader + 1))
                var mine: [UInt64] = []
                for index in stride(from: reader, to: reads, by: readers) {
                    let tenant = index % tenants
                    let key = Int.random(in: 1...1000, using: &generator)
                    let start = shoal_bench_now_ns()
                    do {
                        _ = try box.client.post(
                            "/db/quiet/t\(tenant)/v2/pipeline",
                            body: Self.pipeline(
                                baton: nil,
                                [Self.execute("SELECT value FROM kv WHERE id = \(key)"), #"{"type":"close"}"#]))
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                        return
                    }
                    mine.append(shoal_bench_now_ns() - start)
                }
                latencies.withLock { $0 += mine }
            }
            thread.start()
        }
        group.wait()
        if let failure = failures.withLock({ $0.first }) { throw BenchError("a quiet read failed: \(failure)") }
        return DurationStats(nanoseconds: latencies.withLock { $0 })
    }
}

/// A blocking loopback client used by one thread only.
final class ClientBox: @unchecked Sendable {
    // `@unchecked Sendable`: handed to the one thread that uses it, never shared.
    let client: LoopbackHTTPClient
    init(_ client: LoopbackHTTPClient) { self.client = client }
}
