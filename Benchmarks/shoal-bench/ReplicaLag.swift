import ArgumentParser
import CBenchBaseline
import Foundation
import Hummingbird
import Logging
import ShoalHTTP
import ShoalNode
import ShoalReplication
import Synchronization

/// `replica-lag`: two nodes on loopback in this process, a primary (`fra`) and a replica node
/// (`ams`) following it with long-polled `/sync`. Writes go to the primary at a steady rate; for
/// each one, the time from the primary's acknowledgement of the commit until the replica node has
/// applied it. The baseline is the write's own round trip, measured in the same run.
struct ReplicaLag: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replica-lag",
        abstract: "Lag between a commit on a primary node and its visibility on a replica node, under steady writes.")

    @Option(help: "Writes sent to the primary.")
    var writes = 5_000

    @Option(help: "Target writes per second.")
    var rate = 1_000

    @Option(help: "Concurrent writers sharing the schedule.")
    var writers = 4

    @Flag(help: "The replica fsyncs every applied batch (the node's default does not; see NodeConfiguration).")
    var fsync = false

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("shoal-bench-replica-lag-\(ProcessInfo.processInfo.processIdentifier)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var logger = Logger(label: "shoal.bench")
        logger.logLevel = .critical
        let primary = try Node(
            configuration: NodeConfiguration(
                dataDirectory: directory + "/fra", location: "fra", createOnFirstUse: true),
            logger: logger)
        let replica = try Node(
            configuration: {
                var configuration = NodeConfiguration(dataDirectory: directory + "/ams", location: "ams")
                configuration.replicaDurability = fsync ? .perBatch : .none
                return configuration
            }(), logger: logger)
        let (writes, rate, writers) = (self.writes, self.rate, max(1, self.writers))
        try await withThrowingTaskGroup(of: Void.self) { group in
            let primaryPort = try await Self.start(primary, in: &group)
            let replicaPort = try await Self.start(replica, in: &group)
            try await Self.measure(
                primary: "http://127.0.0.1:\(primaryPort)", replica: "http://127.0.0.1:\(replicaPort)",
                replicaNode: replica, writes: writes, rate: rate, writers: writers)
            group.cancelAll()
        }
        await replica.shutdown()
        await primary.shutdown()
    }

    static func start(_ node: Node, in group: inout ThrowingTaskGroup<Void, any Error>) async throws -> Int {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = node.application(host: "127.0.0.1", port: 0) { continuation.yield($0) }
        group.addTask { try await app.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw BenchError("a node did not start") }
        return port
    }

    static func call(_ url: String, _ json: String) async throws -> HTTPAnswer {
        let answer = try await OutboundHTTP.send(HTTPCall("POST", URL(string: url)!, body: Data(json.utf8)))
        guard answer.status == 200 else {
            throw BenchError("\(url) answered \(answer.status): \(String(decoding: answer.body, as: UTF8.self))")
        }
        return answer
    }

    static func measure(
        primary: String, replica: String, replicaNode: Node, writes: Int, rate: Int, writers: Int
    ) async throws {
        let database = primary + "/db/bench/lag"
        _ = try await call(
            database + "/v3/pipeline",
            #"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER)"}},{"type":"close"}]}"#
        )
        _ = try await call(
            replica + "/v1/namespaces/bench/lag/create", #"{"primary_url":"\#(database)"}"#)
        // The first read opens the replica (bootstrap from the primary's export).
        _ = try await call(
            replica + "/db/bench/lag/v3/pipeline",
            #"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"SELECT count(*) FROM t"}},{"type":"close"}]}"#
        )
        let namespace = try Namespace("bench/lag")
        let copy = try await replicaNode.store.withDatabase(namespace) { database in
            guard let copy = database.replica else {
                throw BenchError("bench/lag is not a replica on the replica node")
            }
            return copy
        }

        let samples = LagSamples(count: writes)
        let interval = 1_000_000_000 / UInt64(max(1, rate))
        let begin = shoal_bench_now_ns()
        // Several writers share the schedule (write i is due at begin + i × interval), so the rate
        // does not depend on one connection's round trip.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    try await withThrowingTaskGroup(of: Void.self) { waiters in
                        for index in stride(from: writer, to: writes, by: writers) {
                            let slot = begin + UInt64(index) * interval
                            let now = shoal_bench_now_ns()
                            if slot > now { try await Task.sleep(for: .nanoseconds(Int64(slot - now))) }
                            let start = shoal_bench_now_ns()
                            let answer = try await call(
                                database + "/v3/pipeline",
                                #"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"INSERT INTO t (at) VALUES (\#(index))"}},{"type":"close"}]}"#
                            )
                            let acknowledged = shoal_bench_now_ns()
                            samples.recordRoundTrip(index, acknowledged - start)
                            guard let header = answer.headers["x-shoal-frame"],
                                case let parts = header.split(separator: "/"),
                                parts.count == 2, let generation = UInt64(parts[0]), let frame = UInt64(parts[1])
                            else { throw BenchError("the primary's answer has no x-shoal-frame header") }
                            let target = ReplicationPosition(generation: generation, frame: frame)
                            waiters.addTask {
                                let applied = await copy.waitUntilApplied(target, timeout: .seconds(10))
                                samples.record(index, lag: shoal_bench_now_ns() - acknowledged, applied: applied)
                            }
                        }
                        try await waiters.waitForAll()
                    }
                }
            }
            try await group.waitForAll()
        }
        let seconds = Double(shoal_bench_now_ns() - begin) / 1e9
        let (lags, missed) = samples.result
        guard missed == 0 else { throw BenchError("\(missed) writes were not applied on the replica within 10 s") }
        let lag = DurationStats(nanoseconds: lags)
        let write = DurationStats(nanoseconds: samples.roundTrips)
        for (metric, value, baseline) in [("p50", lag.median, write.median), ("p99", lag.p99, write.p99)] {
            BenchResult(
                bench: "replica-lag", metric: "commit_to_replica_\(metric)", value: value / 1e6, unit: "ms",
                baseline: baseline / 1e6, baselineName: "write_round_trip_\(metric)"
            ).print()
        }
        BenchResult(
            bench: "replica-lag", metric: "writes_per_second", value: Double(writes) / seconds, unit: "1/s",
            baseline: Double(rate), baselineName: "target_rate"
        ).print()
    }
}

/// Lag samples written by the waiting tasks.
final class LagSamples: Sendable {
    private let state: Mutex<(lags: [UInt64], missed: Int)>
    private let trips: Mutex<[UInt64]>

    init(count: Int) {
        state = Mutex(([UInt64](repeating: 0, count: count), 0))
        trips = Mutex([UInt64](repeating: 0, count: count))
    }

    func recordRoundTrip(_ index: Int, _ nanoseconds: UInt64) { trips.withLock { $0[index] = nanoseconds } }

    var roundTrips: [UInt64] { trips.withLock { $0 } }

    func record(_ index: Int, lag: UInt64, applied: Bool) {
        state.withLock { state in
            state.lags[index] = lag
            if !applied { state.missed += 1 }
        }
    }

    var result: (lags: [UInt64], missed: Int) { state.withLock { $0 } }
}
