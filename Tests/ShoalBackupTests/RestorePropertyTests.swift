import Foundation
import ShoalReplication
import ShoalSQLite
import ShoalTestSupport
import Testing

@testable import ShoalBackup

/// Random workloads with the time of every commit bounded from outside (read before the write was
/// sent and after it returned); a restore to any time between two commits must give exactly the
/// state after the first, every table compared. Workloads roll the generation (by size and by
/// hand), and the shipper ships at random moments, so restores start from different snapshots and
/// cross generations and segment boundaries.
@Suite(.timeLimit(.minutes(4))) struct RestorePropertyTests {
    struct Commit {
        let before: Int64
        let after: Int64
        let contents: DatabaseContents
    }

    static let seeds: [UInt64] = [1, 2, 3, 4, 5, 6]

    @Test(arguments: seeds) func restoringToAnyTimeGivesThePrimarysStateThen(seed: UInt64) async throws {
        var random = SeededGenerator(seed: seed)
        let directory = try TemporaryDirectory()
        let log = try PrimaryLog(
            directory: directory.file("db"),
            configuration: .init(rollThresholdBytes: Int64.random(in: 40_000...160_000, using: &random)))
        defer { log.close() }
        let store = try DirectoryObjectStore(root: directory.file("store"))
        let shelf = LogShelf()
        shelf.add("db-1", log)
        let shipper = try BackupShipper(
            store: store, source: shelf, pendingDirectory: directory.file("pending"),
            configuration: .init(maxFramesPerSegment: Int.random(in: 2...40, using: &random)))
        let connection = try log.makeConnection()
        defer { try? connection.close() }

        var commits: [Commit] = []
        func commit(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws {
            let before = CommitTime.now()
            try log.write(connection, sql, arguments)
            let after = CommitTime.now()
            commits.append(Commit(before: before, after: after, contents: try DatabaseContents(connection)))
        }
        try commit("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, body BLOB)")
        // A node's shipper sees a new database within its first round, before any roll.
        try await shipper.ship("db-1")
        var tables = ["items"]
        let steps = Int.random(in: 60...120, using: &random)
        for step in 0..<steps {
            let table = tables.randomElement(using: &random)!
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<4:
                let size = Int.random(in: 0...6000, using: &random)
                let body = (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
                try commit("INSERT INTO \(table) (name, body) VALUES (?, ?)", ["n\(step)", SQLiteValue.blob(body)])
            case 4..<6:
                let many = Int.random(in: 2...30, using: &random)
                try commit(
                    "WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < \(many)) INSERT INTO \(table) (name, body) SELECT 'bulk' || value, randomblob(200) FROM s"
                )
            case 6:
                try commit("UPDATE \(table) SET name = name || 'x' WHERE id % 3 = \(step % 3)")
            case 7:
                try commit("DELETE FROM \(table) WHERE id % 4 = \(step % 4)")
            case 8 where tables.count < 4:
                let name = "extra\(step)"
                try commit("CREATE TABLE \(name) (id INTEGER PRIMARY KEY, name TEXT, body BLOB)")
                tables.append(name)
            default:
                // By hand too, between any two commits.
                if Bool.random(using: &random) { try log.rollGeneration() }
            }
            if Int.random(in: 0..<8, using: &random) == 0 { try await shipper.ship("db-1") }
        }
        try await shipper.ship("db-1")
        #expect(log.generation > 1, "the workload should cross generations")
        #expect(shipper.statistics.pruned == 0, "a database without a retention keeps everything")

        let catalog = try await BackupCatalog.load(store, id: "db-1")
        let snapshots = catalog.keys.filter { if case .snapshot = $0 { return true } else { return false } }
        #expect(!snapshots.isEmpty)

        // Every gap between two commits wide enough to hold a time: a random time inside it.
        var checked = 0
        var fromSnapshots = Set<BackupKey>()
        let gaps = (0..<commits.count).filter { index in
            index + 1 == commits.count || commits[index].after < commits[index + 1].before
        }
        for index in gaps.shuffled(using: &random).prefix(14) {
            let upper = index + 1 == commits.count ? commits[index].after + 1_000_000 : commits[index + 1].before
            let time = Int64.random(in: commits[index].after..<upper, using: &random)
            let plan = try catalog.plan(at: time)
            fromSnapshots.insert(plan.snapshot)
            let path = directory.file("restored-\(index).db")
            let point = try await BackupRestore.restore(plan, from: store, to: path)
            #expect(point.microseconds <= time)
            #expect(try integrity(ofFile: path) == "ok")
            let restored = try contents(ofFile: path)
            #expect(restored == commits[index].contents, "seed \(seed): restore to commit \(index) of \(commits.count)")
            checked += 1
        }
        #expect(checked >= 5)
        // The newest restore is the primary now.
        let latest = directory.file("latest.db")
        _ = try await BackupRestore.restore("db-1", from: store, at: nil, to: latest)
        #expect(try contents(ofFile: latest) == commits.last!.contents)
        // Before the first commit nothing is restorable, and the message says from when it is.
        #expect(throws: BackupError.self) {
            _ = try catalog.plan(at: commits[0].before - 1_000_000)
        }
        // Pruning for a retention that starts at a random commit keeps every time since restorable.
        let start = Int.random(in: (commits.count / 2)..<commits.count, using: &random)
        let cutoff = commits[start].after
        let prunable = catalog.prunable(before: cutoff)
        let olderSnapshots = snapshots.filter {
            if case .snapshot(_, _, let t) = $0 { return t <= cutoff } else { return false }
        }
        #expect(prunable.isEmpty == (olderSnapshots.count <= 1), "seed \(seed): everything before the base goes")
        try await store.delete(prunable.map { $0.key("db-1") })
        let pruned = try await BackupCatalog.load(store, id: "db-1")
        #expect(pruned.earliest.map { $0 <= cutoff } == true)
        #expect(pruned.latest == catalog.latest)
        for index in gaps.filter({ $0 >= start }).shuffled(using: &random).prefix(6) {
            let upper = index + 1 == commits.count ? commits[index].after + 1_000_000 : commits[index + 1].before
            let time = Int64.random(in: max(commits[index].after, cutoff)..<max(upper, cutoff + 1), using: &random)
            let path = directory.file("pruned-\(index).db")
            _ = try await BackupRestore.restore(try pruned.plan(at: time), from: store, to: path)
            #expect(
                try contents(ofFile: path) == commits[index].contents,
                "seed \(seed): restore to commit \(index) after pruning before commit \(start)")
        }
        // Restores started from more than one snapshot across the seeds (printed for the record).
        print(
            "seed \(seed): \(commits.count) commits, \(snapshots.count) snapshots, \(catalog.keys.count) objects, restores from \(fromSnapshots.count) snapshots, \(prunable.count) pruned before commit \(start)"
        )
    }
}
