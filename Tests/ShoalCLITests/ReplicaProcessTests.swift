import Foundation
import Synchronization
import Testing

/// A replica node as its own process: killed with SIGKILL while writes flow, restarted on its
/// data directory, it loses nothing and converges with the primary.
@Suite("shoal node as a replica, killed and restarted", .serialized, .timeLimit(.minutes(5)))
struct ReplicaProcessTests {
    static func node(_ data: String, location: String, extra: [String] = []) async throws -> (ShoalProcess, String) {
        let process = try ShoalProcess(
            ["node", "--no-auth", "--port", "0", "--data", data, "--location", location] + extra)
        let line = try await process.waitForLine(prefix: "shoal node (\(location)) listening on")
        return (process, line)
    }

    static func count(_ base: String) async throws -> Int? {
        let answer = try await HTTP.send(
            "POST", base + "/v2/pipeline",
            json: [
                "requests": [
                    ["type": "execute", "stmt": ["sql": "SELECT count(*), coalesce(sum(x), 0) FROM t"]],
                    ["type": "close"],
                ]
            ], token: nil)
        let rows =
            (((answer.json["results"] as? [[String: Any]])?.first?["response"] as? [String: Any])?["result"]
            as? [String: Any])?["rows"] as? [[[String: Any]]]
        return (rows?.first?.first?["value"] as? String).flatMap { Int($0) }
    }

    @Test func aReplicaKilledDuringLoadLosesNothingAndConverges() async throws {
        let scratch = try Scratch()
        let (primary, primaryURL) = try await Self.node(
            scratch.path + "/fra", location: "fra", extra: ["--create-on-first-use"])
        var (replica, replicaURL) = try await Self.node(scratch.path + "/ams", location: "ams")
        let database = "\(primaryURL)/db/acme/load"
        let created = try await HTTP.send(
            "POST", replicaURL + "/v1/namespaces/acme/load/create", json: ["primary_url": database], token: nil)
        #expect(created.status == 200, "\(created.text)")
        #expect(!(try await HTTP.execute("CREATE TABLE t (x INTEGER)", at: database, token: "").pipelineFailed))

        // Writes through the replica until it dies; every acknowledged one must survive.
        let writeURL = replicaURL + "/db/acme/load"
        let progress = Progress()
        let acknowledged = try await withThrowingTaskGroup(of: [Int].self) { group in
            group.addTask {
                for value in 1...100_000 {
                    if progress.stopped.withLock({ $0 }) { break }
                    // Before the kill a write may be refused (503 while the replica first catches
                    // up on a loaded machine): such a value is simply not acknowledged.
                    guard
                        let answer = try? await HTTP.execute(
                            "INSERT INTO t VALUES (\(value))", at: writeURL, token: ""),
                        answer.status == 200, !answer.pipelineFailed
                    else {
                        try? await Task.sleep(for: .milliseconds(20))
                        continue
                    }
                    progress.done.withLock { $0.append(value) }
                }
                return progress.done.withLock { $0 }
            }
            // Kill it mid-load, once writes are flowing through it.
            for _ in 0..<1_200 where progress.done.withLock({ $0.count }) < 50 {
                try await Task.sleep(for: .milliseconds(50))
            }
            _ = try await replica.stop(signal: SIGKILL)
            progress.stopped.withLock { $0 = true }
            return try await group.next() ?? []
        }
        // Up to 50 are waited for; a loaded machine (the whole suite in parallel) may get fewer
        // through in the minute allowed, but never so few that the check below says nothing.
        #expect(acknowledged.count >= 10, "too few writes went through before the kill")
        // The primary keeps taking writes while the replica is down.
        for value in 10_001...10_050 {
            #expect(
                !(try await HTTP.execute("INSERT INTO t VALUES (\(value))", at: database, token: "").pipelineFailed))
        }

        (replica, replicaURL) = try await Self.node(scratch.path + "/ams", location: "ams")
        let expected = try #require(try await Self.count(database))
        #expect(expected >= acknowledged.count + 50)
        var seen: Int?
        for _ in 0..<300 {
            seen = try await Self.count(replicaURL + "/db/acme/load")
            if seen == expected { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(seen == expected, "the restarted replica did not converge")
        // Every acknowledged write is there, read locally from the replica.
        let missing = try await HTTP.send(
            "POST", replicaURL + "/db/acme/load/v2/pipeline",
            json: [
                "requests": [
                    [
                        "type": "execute",
                        "stmt": [
                            "sql":
                                "SELECT count(*) FROM t WHERE x IN (\(acknowledged.map(String.init).joined(separator: ",")))"
                        ],
                    ],
                    ["type": "close"],
                ]
            ], token: nil)
        #expect(missing.text.contains(#""value":"\#(acknowledged.count)""#), "\(missing.text.prefix(300))")
        let stats = try await HTTP.send("GET", replicaURL + "/v1/namespaces/acme/load/stats", token: nil)
        #expect(stats.json["role"] as? String == "replica")
        #expect(try await replica.stop(signal: SIGTERM) == 0)
        #expect(try await primary.stop(signal: SIGTERM) == 0)
    }
}

/// Writes acknowledged so far, shared with the writing task.
final class Progress: Sendable {
    let done = Mutex<[Int]>([])
    let stopped = Mutex(false)
}
