import ArgumentParser
import CBenchBaseline
import Foundation
import Hummingbird
import Logging
import ShoalControl
import ShoalNode
import ShoalServerKit
import Synchronization

/// `provision`: databases created per second through the Platform API on loopback (catalog
/// insert, quota and rule checks, placement, the node creating the files), with a node
/// registered, on the SQLite catalog and on PostgreSQL; beside the node's own admin create over
/// HTTP (the placement step alone) measured in the same run.
struct Provision: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Databases created per second through the control plane (SQLite and PostgreSQL catalogs).")

    @Option(help: "Databases created per catalog.")
    var databases = 2000

    @Option(help: "Clients creating at once.")
    var concurrency = 8

    @Option(help: "PostgreSQL URL for the PostgreSQL catalog run (also SHOAL_BENCH_POSTGRES_URL); none skips it.")
    var postgres: String?

    func run() async throws {
        let url = postgres ?? ProcessInfo.processInfo.environment["SHOAL_BENCH_POSTGRES_URL"]
        try await Self.measure(backend: "sqlite", postgres: nil, databases: databases, concurrency: concurrency)
        if let url, !url.isEmpty {
            try await Self.measure(backend: "postgresql", postgres: url, databases: databases, concurrency: concurrency)
        } else {
            FileHandle.standardError.write(Data("provision: no PostgreSQL URL given; skipped that catalog\n".utf8))
        }
    }

    static func measure(backend: String, postgres: String?, databases: Int, concurrency: Int) async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("shoal-bench-provision-\(ProcessInfo.processInfo.processIdentifier)").path
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var logger = Logger(label: "shoal.bench")
        logger.logLevel = .critical
        let store: any CatalogStore
        if let postgres {
            let schema = "bench_\(UInt32.random(in: 0...UInt32.max))"
            store = try PostgresCatalogStore(
                url: postgres + (postgres.contains("?") ? "&" : "?") + "schema=\(schema)", logger: logger)
        } else {
            store = try SQLiteCatalogStore(path: directory + "/catalog.db")
        }
        try await store.whileRunning {
            try await store.migrate()
            let catalog = Catalog(store: store)
            guard let admin = try await catalog.bootstrapAdminToken(),
                let registrationToken = try await catalog.bootstrapNodeRegistrationToken()
            else { throw BenchError("a fresh catalog had an admin or node registration token") }
            let control = ControlPlane(catalog: catalog, logger: logger)
            let node = try Node(
                configuration: NodeConfiguration(
                    dataDirectory: directory + "/node", location: "fra",
                    authentication: .tokens(try TokenVerifier(keys: [:], allowNoKeys: true), adminToken: "bench-node")),
                logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                let controlPort = try await start(
                    { control.application(host: "127.0.0.1", port: 0, onRunning: $0) }, &group)
                let nodePort = try await start({ node.application(host: "127.0.0.1", port: 0, onRunning: $0) }, &group)
                let link = ControlPlaneLink(
                    configuration: .init(
                        controlURL: URL(string: "http://127.0.0.1:\(controlPort)")!,
                        registrationToken: registrationToken,
                        location: "fra",
                        advertisedURL: "http://127.0.0.1:\(nodePort)", nodeAdminToken: "bench-node"),
                    node: node)
                _ = try await link.register()
                group.addTask { await link.run() }

                let results = try await onThreads {
                    try Self.drive(
                        controlPort: controlPort, nodePort: nodePort, admin: admin, databases: databases,
                        concurrency: concurrency)
                }
                let stats = DurationStats(nanoseconds: results.latencies)
                let baselineStats = DurationStats(nanoseconds: results.baselineLatencies)
                BenchResult(
                    bench: "provision", metric: "\(backend)_creates_per_second", value: results.rate, unit: "1/s",
                    baseline: results.baselineRate, baselineName: "node_admin_creates_per_second"
                ).print()
                BenchResult(
                    bench: "provision", metric: "\(backend)_create_p50", value: stats.median / 1e6, unit: "ms",
                    baseline: baselineStats.median / 1e6, baselineName: "node_admin_create_p50"
                ).print()
                BenchResult(
                    bench: "provision", metric: "\(backend)_create_p99", value: stats.p99 / 1e6, unit: "ms",
                    baseline: baselineStats.p99 / 1e6, baselineName: "node_admin_create_p99"
                ).print()
                // What placement on first use costs: the first request to a new database (the node asks
                // the control plane, writes the settings, creates the file) beside a second request.
                let first = DurationStats(nanoseconds: results.firstUse)
                let second = DurationStats(nanoseconds: results.secondUse)
                BenchResult(
                    bench: "provision", metric: "\(backend)_first_request_p50", value: first.median / 1e6, unit: "ms",
                    baseline: second.median / 1e6, baselineName: "second_request_p50"
                ).print()
                BenchResult(
                    bench: "provision", metric: "\(backend)_first_request_p99", value: first.p99 / 1e6, unit: "ms",
                    baseline: second.p99 / 1e6, baselineName: "second_request_p99"
                ).print()
                group.cancelAll()
            }
            await node.shutdown()
        }
    }

    struct Results: Sendable {
        var rate = 0.0
        var latencies: [UInt64] = []
        var baselineRate = 0.0
        var baselineLatencies: [UInt64] = []
        var firstUse: [UInt64] = []
        var secondUse: [UInt64] = []
    }

    /// Blocking clients on threads of their own (the servers keep the cooperative pool).
    static func drive(
        controlPort: Int, nodePort: Int, admin: String, databases: Int, concurrency: Int
    ) throws
        -> Results
    {
        let setup = try LoopbackHTTPClient(port: controlPort)
        let auth = ["Authorization": "Bearer \(admin)", "Content-Type": "application/json"]
        _ = try setup.post(
            "/v1/plans/bench",
            body: Array(#"{"databases":1000000,"groups":10,"locations_per_group":3,"storage_bytes":0}"#.utf8),
            headers: auth, method: "PUT")
        _ = try setup.post("/v1/organizations", body: Array(#"{"slug":"bench","plan":"bench"}"#.utf8), headers: auth)
        _ = try setup.post(
            "/v1/organizations/bench/groups", body: Array(#"{"name":"default","location":"fra"}"#.utf8), headers: auth)

        var results = Results()
        // The end-to-end creates through the control plane.
        (results.rate, results.latencies) = try parallel(count: databases, concurrency: concurrency, port: controlPort)
        {
            client, index in
            _ = try client.post(
                "/v1/organizations/bench/databases",
                body: Array(#"{"name":"tenant-\#(index)","group":"default"}"#.utf8), headers: auth)
        }
        // First and second requests to a sample of the new databases, one client, with a group token.
        let token = try JSONSerialization.jsonObject(
            with: Data(try setup.post("/v1/organizations/bench/groups/default/auth/tokens", body: [], headers: auth)))
        guard let jwt = (token as? [String: Any])?["jwt"] as? String else { throw BenchError("no group token") }
        let node = try LoopbackHTTPClient(port: nodePort)
        let query = Array(#"{"requests":[{"type":"execute","stmt":{"sql":"SELECT 1"}},{"type":"close"}]}"#.utf8)
        for index in stride(from: 0, to: databases, by: max(1, databases / 200)) {
            for pass in 0..<2 {
                let begin = shoal_bench_now_ns()
                _ = try node.post(
                    "/db/bench/tenant-\(index)/v2/pipeline", body: query, headers: ["Authorization": "Bearer \(jwt)"])
                let elapsed = shoal_bench_now_ns() - begin
                if pass == 0 { results.firstUse.append(elapsed) } else { results.secondUse.append(elapsed) }
            }
        }
        // The baseline: the node's admin create alone, same count and concurrency.
        let nodeAuth = ["Authorization": "Bearer bench-node", "Content-Type": "application/json"]
        (results.baselineRate, results.baselineLatencies) = try parallel(
            count: databases, concurrency: concurrency, port: nodePort
        ) { client, index in
            _ = try client.post(
                "/v1/namespaces/direct/tenant-\(index)/create", body: Array(#"{"group":"default"}"#.utf8),
                headers: nodeAuth)
        }
        return results
    }

    /// Runs `count` calls of `body` on `concurrency` threads (one connection each); returns the
    /// rate and every call's latency.
    static func parallel(
        count: Int, concurrency: Int, port: Int, _ body: @escaping @Sendable (LoopbackHTTPClient, Int) throws -> Void
    ) throws -> (Double, [UInt64]) {
        let latencies = Mutex<[UInt64]>([])
        let failure = Mutex<String?>(nil)
        let done = DispatchGroup()
        let start = shoal_bench_now_ns()
        for worker in 0..<concurrency {
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                do {
                    let client = try LoopbackHTTPClient(port: port)
                    var mine: [UInt64] = []
                    for index in stride(from: worker, to: count, by: concurrency) {
                        let begin = shoal_bench_now_ns()
                        try body(client, index)
                        mine.append(shoal_bench_now_ns() - begin)
                    }
                    latencies.withLock { $0 += mine }
                } catch {
                    failure.withLock { $0 = "\(error)" }
                }
            }
        }
        done.wait()
        let seconds = Double(shoal_bench_now_ns() - start) / 1e9
        if let message = failure.withLock({ $0 }) { throw BenchError(message) }
        return (Double(count) / seconds, latencies.withLock { $0 })
    }

    static func start(
        _ makeApp: (@escaping @Sendable (Int) -> Void) -> Application<RouterResponder<ServerRequestContext>>,
        _ group: inout ThrowingTaskGroup<Void, any Error>
    ) async throws -> Int {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = makeApp { continuation.yield($0) }
        group.addTask { try await app.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw BenchError("a server did not start") }
        return port
    }
}

/// Runs blocking work on a thread of its own and awaits its result.
func onThreads<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}
