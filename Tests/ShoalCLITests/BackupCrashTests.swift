import Foundation
import ShoalBackup
import ShoalReplication
import ShoalSQLite
import ShoalTestSupport
import Synchronization
import Testing

/// A node killed with SIGKILL while it ships backups under writes: restarted on the same data and
/// store, it ships what was left and nothing twice. Every generation's segments chain frame after
/// frame with no overlap, and a restore of each database from the store equals what the node holds,
/// which holds every write it acknowledged.
@Suite("Backups across a node crash", .serialized, .timeLimit(.minutes(4)))
struct BackupCrashTests {
    /// What the writers did, and whether they are to stop.
    final class Progress: Sendable {
        let acknowledged = Mutex([Int: [Int]]())
        let stop = Mutex(false)
    }

    static let databases = 8

    /// The node, no authentication, creating databases on first use, shipping to `store`.
    static func startNode(_ directory: Scratch) async throws -> (ShoalProcess, String) {
        let node = try ShoalProcess([
            "node", "--data", directory.path + "/node", "--port", "0", "--location", "ams", "--no-auth",
            "--create-on-first-use", "--backup-dir", directory.path + "/store",
        ])
        let url = try await node.waitForLine(prefix: "shoal node (ams) listening on ")
        return (node, url)
    }

    static func run(_ sql: String, on url: String, database: Int) async throws -> HTTP.Answer {
        try await HTTP.send(
            "POST", url + "/db/acme/t\(database)/v2/pipeline",
            json: ["requests": [["type": "execute", "stmt": ["sql": sql]], ["type": "close"]]], token: nil)
    }

    /// The `seq` values of database `database`, in order.
    static func values(on url: String, database: Int) async throws -> [Int] {
        let answer = try await run("SELECT seq FROM t ORDER BY seq", on: url, database: database)
        guard answer.status == 200, !answer.pipelineFailed else { throw CLITestError("read: \(answer.text)") }
        let rows =
            (((answer.json["results"] as? [[String: Any]])?.first?["response"] as? [String: Any])?["result"]
            as? [String: Any])?["rows"] as? [[[String: Any]]] ?? []
        return rows.compactMap { ($0.first?["value"] as? String).flatMap { Int($0) } }
    }

    @Test func aNodeKilledWhileShippingLosesNothingAndShipsNothingTwice() async throws {
        let directory = try Scratch()
        var (node, url) = try await Self.startNode(directory)
        for database in 0..<Self.databases {
            let created = try await Self.run(
                "CREATE TABLE t (seq INTEGER PRIMARY KEY, pad BLOB)", on: url, database: database)
            #expect(created.status == 200 && !created.pipelineFailed, "\(created.text)")
        }
        // One writer per database: each acknowledged insert is recorded; the one in flight when the
        // node dies may or may not have committed.
        let progress = Progress()
        let store = try DirectoryObjectStore(root: directory.path + "/store")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for database in 0..<Self.databases {
                let target = url
                group.addTask {
                    var seq = 1
                    while !progress.stop.withLock({ $0 }) {
                        let answer = try? await Self.run(
                            "INSERT INTO t (seq, pad) VALUES (\(seq), randomblob(\(200 + seq % 3000)))", on: target,
                            database: database)
                        guard let answer, answer.status == 200, !answer.pipelineFailed else { break }
                        progress.acknowledged.withLock { $0[database, default: []].append(seq) }
                        seq += 1
                    }
                }
            }
            // Killed once every database has frames in the store and has gone on writing since.
            do {
                try await waitUntil("segments of every database in the store", limit: .seconds(60)) {
                    for database in 0..<Self.databases {
                        let keys = try await store.list(prefix: BackupKey.prefix("acme.t\(database)") + "seg/")
                        if keys.isEmpty { return false }
                    }
                    return progress.acknowledged.withLock {
                        $0.count == Self.databases && $0.values.allSatisfy { $0.count >= 40 }
                    }
                }
            } catch {
                progress.stop.withLock { $0 = true }
                throw error
            }
            let status = try await node.stop(signal: SIGKILL)
            #expect(status == SIGKILL)
            progress.stop.withLock { $0 = true }
            try await group.waitForAll()
        }
        // Restarted on the same data: the pending markers left behind are shipped.
        (node, url) = try await Self.startNode(directory)
        let restartedURL = url
        try await waitUntil("the shipper to drain what the crash left", limit: .seconds(60)) {
            let metrics = try PrometheusSamples(
                try await HTTP.send("GET", restartedURL + "/metrics", token: nil).text)
            return metrics["shoal_node_backup_pending_databases"] == 0
        }
        for database in 0..<Self.databases {
            let id = "acme.t\(database)"
            let catalog = try await BackupCatalog.load(store, id: id)
            // Frame after frame, each stored once.
            var runs: [UInt64: [(UInt64, UInt64)]] = [:]
            var ends: [UInt64: UInt64] = [:]
            for key in catalog.keys {
                switch key {
                case .segment(let generation, let first, let last, _, _):
                    runs[generation, default: []].append((first, last))
                case .end(let generation, let last): ends[generation] = last
                case .snapshot: break
                }
            }
            #expect(!runs.isEmpty)
            for (generation, segments) in runs {
                var next: UInt64 = 1
                for (first, last) in segments.sorted(by: { $0.0 < $1.0 }) {
                    #expect(first == next, "\(id) generation \(generation): a segment from \(first), expected \(next)")
                    next = last + 1
                }
                if let end = ends[generation] { #expect(end == next - 1, "\(id) generation \(generation) ends") }
            }
            let live = try await Self.values(on: url, database: database)
            let restoredPath = directory.path + "/restored-\(database).db"
            _ = try await BackupRestore.restore(id, from: store, at: nil, to: restoredPath)
            let connection = try Connection(path: restoredPath, configuration: .init(flags: [.readWrite, .noMutex]))
            let restored = try connection.query("SELECT seq FROM t ORDER BY seq").compactMap {
                $0[0].integerValue.map { Int($0) }
            }
            try connection.close()
            #expect(restored == live, "\(id): the backup holds what the node holds")
            let acked = progress.acknowledged.withLock { $0[database] ?? [] }
            #expect(Set(acked).isSubset(of: Set(live)), "\(id): every acknowledged write survived")
            #expect(live.count >= acked.count && live.count <= acked.count + 1)
        }
        #expect(try await node.stop(signal: SIGTERM) == 0)
    }
}
