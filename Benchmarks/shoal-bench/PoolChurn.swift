import ArgumentParser
import CBenchBaseline
import Foundation
import Hummingbird
import Logging
import ShoalClient
import ShoalNode
import Synchronization

/// `pool-churn`: many distinct tenants through a `TenantPool` of bounded capacity, each opened
/// (bootstrapped from a node), read once and evicted later. Open file descriptors, resident memory
/// and the C heap of this process are sampled as it goes; the baseline is their value once the pool
/// has turned over once (2 × capacity tenants: the pool and the node's own pool both full), measured
/// in the same run. The node runs in a child process by default, so that what is measured is the
/// pool's process alone (the node's resident memory is sampled beside it).
struct PoolChurn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool-churn",
        abstract: "Tenants churned through a bounded TenantPool: file descriptors and memory must stay flat.")

    @Option(help: "Distinct tenants.") var tenants = 100_000
    @Option(help: "The pool's capacity.") var capacity = 1_000
    @Option(help: "Tenants opened at once.") var concurrency = 8
    @Option(help: "The pool's disk budget in MiB (closed replicas deleted beyond it).") var diskMib = 512
    @Option(help: "A running node that creates databases on first use (default: one in a child process).")
    var node: String?
    @Flag(help: "Run the node in this process instead of a child (its memory then counts too).")
    var inProcessNode = false
    @Flag(help: "Also print every sample (each 1 % of the run) as a JSON line.")
    var series = false

    func run() async throws {
        let (tenants, capacity, concurrency, diskMib) = (self.tenants, self.capacity, self.concurrency, self.diskMib)
        let maxOpen = min(64, capacity)
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("shoal-bench-churn-\(ProcessInfo.processInfo.processIdentifier)").path
        if inProcessNode {
            try await InProcessNode.run(name: "churn", configure: { $0.maxOpenDatabases = maxOpen }) {
                port, directory in
                try await Self.churn(
                    url: "http://127.0.0.1:\(port)", nodeProcess: nil, directory: directory + "/tenants",
                    tenants: tenants, capacity: capacity, concurrency: concurrency, diskBytes: Int64(diskMib) << 20,
                    series: series)
            }
            return
        }
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        if let node {
            try await Self.churn(
                url: node, nodeProcess: nil, directory: scratch + "/tenants", tenants: tenants, capacity: capacity,
                concurrency: concurrency, diskBytes: Int64(diskMib) << 20, series: series)
            return
        }
        let child = try ChildNode(maxOpen: maxOpen)
        defer { child.stop() }
        try await Self.churn(
            url: "http://127.0.0.1:\(child.port)", nodeProcess: child.pid, directory: scratch + "/tenants",
            tenants: tenants, capacity: capacity, concurrency: concurrency, diskBytes: Int64(diskMib) << 20,
            series: series)
    }

    static func churn(
        url: String, nodeProcess: Int32?, directory: String, tenants: Int, capacity: Int, concurrency: Int,
        diskBytes: Int64, series: Bool = false
    ) async throws {
        let pool = TenantPool(
            configuration: .init(
                directory: directory, capacity: capacity, idleTimeout: .seconds(3600), maxDiskBytes: diskBytes),
            resolver: { tenant in TenantEndpoint(url: URL(string: "\(url)/db/bench/\(tenant)")!) })
        let samples = ChurnSamples(nodeProcess: nodeProcess)
        let next = Counter()
        let begin = ContinuousClock.now
        let step = max(1, tenants / 100)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while true {
                        let index = next.take()
                        guard index < tenants else { return }
                        let tables = try await pool.withDatabase("t\(index)") { database in
                            try database.queryOne("SELECT count(*) FROM sqlite_schema")?[0]
                        }
                        guard tables != nil else { throw BenchError("tenant t\(index) answered nothing") }
                        if index == 2 * capacity || index % step == 0 { samples.take(at: index) }
                    }
                }
            }
            try await group.waitForAll()
        }
        samples.take(at: tenants)
        let seconds =
            Double((ContinuousClock.now - begin).components.seconds)
            + Double((ContinuousClock.now - begin).components.attoseconds) / 1e18
        let metrics = pool.metrics
        await pool.close()
        let all = samples.all
        let turnover = all.first { $0.index >= 2 * capacity } ?? all.last!
        let half = all.first { $0.index >= tenants / 2 } ?? all.last!
        let end = all.last!
        let afterTurnover = all.filter { $0.index >= turnover.index }
        func result(_ metric: String, _ value: Int, _ baseline: Int, unit: String = "MiB", from: String) {
            let scale = unit == "MiB" ? 1_048_576.0 : 1
            BenchResult(
                bench: "pool-churn", metric: metric, value: Double(value) / scale, unit: unit,
                baseline: Double(baseline) / scale, baselineName: from
            ).print()
        }
        let fromTurnover = "after_one_turnover"
        result(
            "open_fds_max_after_full", afterTurnover.map(\.fds).max()!, turnover.fds, unit: "fds", from: fromTurnover)
        result("open_fds_end", end.fds, turnover.fds, unit: "fds", from: fromTurnover)
        result("rss_max_after_full", afterTurnover.map(\.rss).max()!, turnover.rss, from: fromTurnover)
        result("rss_end", end.rss, turnover.rss, from: fromTurnover)
        result("heap_in_use_end", end.heapInUse, turnover.heapInUse, from: fromTurnover)
        result("heap_held_end", end.heapHeld, turnover.heapHeld, from: fromTurnover)
        result("sqlite_memory_end", end.sqlite, turnover.sqlite, from: fromTurnover)
        if nodeProcess != nil { result("node_rss_end", end.nodeRSS, turnover.nodeRSS, from: fromTurnover) }
        // The second half of the run against its middle: growth that goes on with the tenants.
        result("rss_end_vs_half", end.rss, half.rss, from: "at_half_of_the_tenants")
        result("heap_in_use_end_vs_half", end.heapInUse, half.heapInUse, from: "at_half_of_the_tenants")
        if series {
            for sample in all {
                let line: [String: Int] = [
                    "tenants": sample.index, "fds": sample.fds, "rss": sample.rss, "heap_in_use": sample.heapInUse,
                    "heap_held": sample.heapHeld, "sqlite": sample.sqlite, "node_rss": sample.nodeRSS,
                ]
                let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
                print("{\"bench\":\"pool-churn\",\"sample\":\(String(decoding: data, as: UTF8.self))}")
            }
        }
        BenchResult(
            bench: "pool-churn", metric: "tenants_per_second", value: Double(tenants) / seconds, unit: "1/s",
            baseline: nil, baselineName: nil
        ).print()
        BenchResult(
            bench: "pool-churn", metric: "evictions", value: Double(metrics.evictions), unit: "count",
            baseline: Double(tenants - capacity), baselineName: "tenants_minus_capacity"
        ).print()
    }
}

/// A node in a child process (`shoal-bench churn-node`), creating databases on first use; it stops
/// when its standard input closes.
final class ChildNode: Sendable {
    let process: Process
    let input: Pipe
    let port: Int
    var pid: Int32 { process.processIdentifier }

    init(maxOpen: Int) throws {
        let process = Process()
        process.executableURL = URL(
            fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        process.arguments = ["churn-node", "--max-open", String(maxOpen)]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        // The child prints its port on its first line.
        var line = Data()
        while line.last != UInt8(ascii: "\n") {
            let byte = output.fileHandleForReading.readData(ofLength: 1)
            guard !byte.isEmpty else {
                process.waitUntilExit()
                throw BenchError("the node process exited (status \(process.terminationStatus)) before it listened")
            }
            line.append(byte)
        }
        guard let port = Int(String(decoding: line.dropLast(), as: UTF8.self)) else {
            process.terminate()
            throw BenchError("the node process printed \(String(decoding: line, as: UTF8.self).debugDescription)")
        }
        self.process = process
        self.input = input
        self.port = port
    }

    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

/// `churn-node`: the node of `pool-churn` when it runs in its own process.
struct ChurnNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "churn-node", abstract: "The node of pool-churn (internal).", shouldDisplay: false)

    @Option(help: "The most databases open at once.") var maxOpen = 64

    func run() async throws {
        try await InProcessNode.run(name: "churn-node", configure: { [maxOpen] in $0.maxOpenDatabases = maxOpen }) {
            port, _ in
            FileHandle.standardOutput.write(Data("\(port)\n".utf8))
            // Until the parent closes our standard input (or exits).
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async {
                    _ = FileHandle.standardInput.readDataToEndOfFile()
                    done.resume()
                }
            }
        }
    }
}

/// Open descriptors, resident memory and heap of this process (and the node's resident memory, when
/// it runs in a child) over the run.
final class ChurnSamples: Sendable {
    struct Sample: Sendable {
        let index: Int
        let fds: Int
        let rss: Int
        let heapInUse: Int
        let heapHeld: Int
        let sqlite: Int
        let nodeRSS: Int
    }

    private let samples = Mutex<[Sample]>([])
    let nodeProcess: Int32?

    init(nodeProcess: Int32?) {
        self.nodeProcess = nodeProcess
    }

    static func residentBytes(of process: String) -> Int {
        let statm = (try? String(contentsOfFile: "/proc/\(process)/statm", encoding: .utf8)) ?? ""
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return pages * Int(getpagesize())
    }

    func take(at index: Int) {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
        var (inUse, held, sqlite): (Int64, Int64, Int64) = (0, 0, 0)
        shoal_bench_heap(&inUse, &held, &sqlite)
        let sample = Sample(
            index: index, fds: fds, rss: Self.residentBytes(of: "self"), heapInUse: Int(inUse), heapHeld: Int(held),
            sqlite: Int(sqlite), nodeRSS: nodeProcess.map { Self.residentBytes(of: String($0)) } ?? 0)
        samples.withLock { $0.append(sample) }
    }

    var all: [Sample] { samples.withLock { $0 }.sorted { $0.index < $1.index } }
}

/// Hands out 0, 1, 2, … to concurrent workers.
final class Counter: Sendable {
    private let value = Mutex(0)

    func take() -> Int {
        value.withLock { value in
            defer { value += 1 }
            return value
        }
    }
}
