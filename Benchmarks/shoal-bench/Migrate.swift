import ArgumentParser
import CBenchBaseline
import Foundation
import Logging
import ShoalControl
import ShoalNode
import ShoalSQLite

/// `migrate`: a rollout of a small migration (a column and an index) over every database of a
/// group on one node, through the control plane and the node's migrate endpoint, beside the same
/// migration applied by a plain loop over as many SQLite files in the same run.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "A schema rollout over many databases on one node, beside a plain loop.")

    @Option(help: "Databases in the group.")
    var databases = 10_000

    @Option(help: "Databases migrated at once on the node.")
    var concurrency: Int64 = 8

    static let first = "CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO items (v) VALUES ('a'), ('b');"
    static let second = "ALTER TABLE items ADD COLUMN tag TEXT; CREATE INDEX items_tag ON items (tag);"

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("shoal-bench-migrate-\(ProcessInfo.processInfo.processIdentifier)").path
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var logger = Logger(label: "shoal.bench")
        logger.logLevel = .critical
        let store = try SQLiteCatalogStore(path: directory + "/catalog.db")
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
        let count = databases
        let concurrency = concurrency
        try await withThrowingTaskGroup(of: Void.self) { group in
            let controlPort = try await Provision.start(
                { control.application(host: "127.0.0.1", port: 0, onRunning: $0) }, &group)
            let nodePort = try await Provision.start(
                { node.application(host: "127.0.0.1", port: 0, onRunning: $0) }, &group)
            let link = ControlPlaneLink(
                configuration: .init(
                    controlURL: URL(string: "http://127.0.0.1:\(controlPort)")!, registrationToken: registrationToken,
                    location: "fra", advertisedURL: "http://127.0.0.1:\(nodePort)", nodeAdminToken: "bench-node"),
                node: node)
            _ = try await link.register()
            group.addTask { await link.run() }
            group.addTask { await control.runRollouts(every: .milliseconds(100)) }
            let seconds = try await onThreads {
                try Self.drive(controlPort: controlPort, admin: admin, databases: count, concurrency: concurrency)
            }
            let baseline = try await onThreads { try Self.plainLoop(directory: directory + "/plain", count: count) }
            BenchResult(
                bench: "migrate", metric: "rollout_seconds", value: seconds, unit: "s", baseline: baseline,
                baselineName: "plain_loop_seconds"
            ).print()
            BenchResult(
                bench: "migrate", metric: "rollout_databases_per_second", value: Double(count) / seconds,
                unit: "1/s", baseline: Double(count) / baseline, baselineName: "plain_loop_databases_per_second"
            ).print()
            group.cancelAll()
        }
        await node.shutdown()
        await store.close()
    }

    static func say(_ line: String) { FileHandle.standardError.write(Data("migrate: \(line)\n".utf8)) }

    /// Creates the databases and rolls the first migration out (set-up, untimed), then times the
    /// rollout of the second from its start to its end as the API reports it.
    static func drive(controlPort: Int, admin: String, databases: Int, concurrency: Int64) throws -> Double {
        let client = try LoopbackHTTPClient(port: controlPort)
        let auth = ["Authorization": "Bearer \(admin)", "Content-Type": "application/json"]
        _ = try client.post(
            "/v1/plans/bench",
            body: Array(
                #"{"databases":1000000,"groups":10,"locations_per_group":3,"storage_bytes":1099511627776}"#.utf8),
            headers: auth, method: "PUT")
        _ = try client.post("/v1/organizations", body: Array(#"{"slug":"bench","plan":"bench"}"#.utf8), headers: auth)
        _ = try client.post(
            "/v1/organizations/bench/groups", body: Array(#"{"name":"default","location":"fra"}"#.utf8), headers: auth)
        say("creating \(databases) databases")
        _ = try Provision.parallel(count: databases, concurrency: 8, port: controlPort) { client, index in
            _ = try client.post(
                "/v1/organizations/bench/databases",
                body: Array(#"{"name":"tenant-\#(index)","group":"default"}"#.utf8), headers: auth)
        }
        let migrations = "/v1/organizations/bench/groups/default/migrations"
        func add(_ name: String, _ sql: String) throws {
            let body = try JSONSerialization.data(withJSONObject: ["name": name, "sql": sql])
            _ = try client.post(migrations, body: Array(body), headers: auth)
        }
        func rollout() throws -> Double {
            let body = Array(#"{"concurrency":\#(concurrency)}"#.utf8)
            let start = shoal_bench_now_ns()
            _ = try client.post(migrations + "/apply", body: body, headers: auth)
            var lastSaid = start
            while true {
                let answer = try JSONSerialization.jsonObject(
                    with: Data(try client.post(migrations + "/rollout", body: [], headers: auth, method: "GET")))
                let rollout = (answer as? [String: Any])?["rollout"] as? [String: Any] ?? [:]
                let state = rollout["state"] as? String ?? ""
                if state == "done" || state == "stopped" {
                    guard rollout["failed"] as? Int == 0, rollout["done"] as? Int == databases else {
                        throw BenchError("the rollout ended \(state): \(rollout)")
                    }
                    return Double(shoal_bench_now_ns() - start) / 1e9
                }
                if shoal_bench_now_ns() - lastSaid > 5_000_000_000 {
                    say("rollout: \(rollout["done"] ?? 0) of \(databases) done")
                    lastSaid = shoal_bench_now_ns()
                }
                usleep(100_000)
            }
        }
        try add("0001_items", first)
        say("rolling out the first migration (set-up)")
        _ = try rollout()
        try add("0002_tag", second)
        say("rolling out the measured migration")
        return try rollout()
    }

    /// The baseline: as many plain SQLite files with the same table (WAL mode), then the same
    /// migration applied to each in turn, one transaction per file; returns the loop's seconds.
    static func plainLoop(directory: String, count: Int) throws -> Double {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for index in 0..<count {
            let connection = try Connection(path: directory + "/\(index).db")
            try connection.execute("PRAGMA journal_mode = WAL")
            try connection.execute(first)
            try connection.close()
        }
        let start = shoal_bench_now_ns()
        for index in 0..<count {
            let connection = try Connection(path: directory + "/\(index).db")
            try connection.execute("BEGIN IMMEDIATE")
            try connection.execute(second)
            try connection.execute("COMMIT")
            try connection.close()
        }
        return Double(shoal_bench_now_ns() - start) / 1e9
    }
}
