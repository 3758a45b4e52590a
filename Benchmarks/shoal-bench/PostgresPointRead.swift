import CBenchBaseline
import Foundation
import Logging
import PostgresNIO

/// The same point read on PostgreSQL over loopback (postgres-nio, prepared by the server on each
/// call as a client library does): the baseline `remote-read` prints beside Shoal's remote paths.
enum PostgresPointRead {
    /// What the baseline measured.
    struct Baseline: Sendable {
        var median = 0.0
        var p99 = 0.0
        var readsPerSecond = 0.0
        var concurrentReadsPerSecond = 0.0
    }

    static func measure(url: String, rows: Int, reads: Int, seed: UInt64, connections: Int) async throws -> Baseline {
        guard let components = URLComponents(string: url), let host = components.host, let user = components.user
        else { throw BenchError("the PostgreSQL URL must look like postgres://user[:password]@host[:port]/database") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user, password: components.password,
            database: database.isEmpty ? nil : database, tls: .disable)
        configuration.options.maximumConnections = connections
        var logger = Logger(label: "shoal.bench.postgres")
        logger.logLevel = .critical
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            var baseline = Baseline()
            defer { group.cancelAll() }
            let table = "shoal_bench_kv_\(ProcessInfo.processInfo.processIdentifier)"
            try await client.query("DROP TABLE IF EXISTS \(unescaped: table)")
            try await client.query(
                "CREATE TABLE \(unescaped: table) (id BIGINT PRIMARY KEY, value TEXT NOT NULL, n BIGINT NOT NULL)")
            try await client.query(
                "INSERT INTO \(unescaped: table) SELECT i, 'value-' || i, i * 7 FROM generate_series(1, \(rows)) AS i")
            try await client.query("ANALYZE \(unescaped: table)")

            func read(_ key: Int64) async throws {
                let result = try await client.query("SELECT value, n FROM \(unescaped: table) WHERE id = \(key)")
                var found = false
                for try await (_, _) in result.decode((String, Int64).self) { found = true }
                guard found else { throw BenchError("key \(key) missing on PostgreSQL") }
            }

            var generator = SeededGenerator(seed: seed)
            let keys = (0..<reads).map { _ in Int64.random(in: 1...Int64(rows), using: &generator) }
            var samples = [UInt64](repeating: 0, count: keys.count)
            let start = shoal_bench_now_ns()
            for (index, key) in keys.enumerated() {
                let begin = shoal_bench_now_ns()
                try await read(key)
                samples[index] = shoal_bench_now_ns() - begin
            }
            let seconds = Double(shoal_bench_now_ns() - start) / 1e9
            let stats = DurationStats(nanoseconds: samples)
            baseline.median = stats.median
            baseline.p99 = stats.p99
            baseline.readsPerSecond = Double(reads) / seconds

            let perConnection = max(1, reads / connections)
            let concurrentStart = shoal_bench_now_ns()
            try await withThrowingTaskGroup(of: Void.self) { readers in
                for connection in 0..<connections {
                    readers.addTask {
                        var generator = SeededGenerator(seed: seed &+ UInt64(connection))
                        for _ in 0..<perConnection {
                            try await read(Int64.random(in: 1...Int64(rows), using: &generator))
                        }
                    }
                }
                try await readers.waitForAll()
            }
            let concurrentSeconds = Double(shoal_bench_now_ns() - concurrentStart) / 1e9
            baseline.concurrentReadsPerSecond = Double(perConnection * connections) / concurrentSeconds
            try await client.query("DROP TABLE IF EXISTS \(unescaped: table)")
            return baseline
        }
    }
}
