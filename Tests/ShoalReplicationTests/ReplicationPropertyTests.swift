import Foundation
import ShoalSQLite
import ShoalTestSupport
import Testing

@testable import ShoalReplication

/// Seeded random workloads replicated from a primary to a replica; after every sync the replica
/// must pass `integrity_check` and hold exactly the primary's rows.
///
/// `SHOAL_PROPERTY_SEED` picks the base seed (each workload's own seed is printed on failure and can
/// be given back as the base seed with `SHOAL_PROPERTY_WORKLOADS=1`); `SHOAL_PROPERTY_WORKLOADS`
/// sets how many workloads run (default 200).
@Suite(.timeLimit(.minutes(5))) struct ReplicationPropertyTests {
    static let baseSeed =
        ProcessInfo.processInfo.environment["SHOAL_PROPERTY_SEED"].flatMap { UInt64($0) } ?? 0x5EED_2026
    static let workloads = ProcessInfo.processInfo.environment["SHOAL_PROPERTY_WORKLOADS"].flatMap { Int($0) } ?? 200

    @Test func randomWorkloadsReplicateExactly() async throws {
        var totalSyncs = 0
        for index in 0..<Self.workloads {
            let seed = index == 0 ? Self.baseSeed : Self.baseSeed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15
            do {
                var workload = Workload(seed: seed)
                totalSyncs += try await workload.run()
            } catch {
                Issue.record(
                    "workload with seed \(seed) failed (rerun: SHOAL_PROPERTY_SEED=\(seed) SHOAL_PROPERTY_WORKLOADS=1): \(error)"
                )
                return
            }
        }
        #expect(totalSyncs >= Self.workloads * 2)
    }
}

/// One random workload.
struct Workload {
    let seed: UInt64
    var random: SeededGenerator

    init(seed: UInt64) {
        self.seed = seed
        random = SeededGenerator(seed: seed)
    }

    /// Runs the workload; returns how many syncs it compared.
    mutating func run() async throws -> Int {
        let directory = try TemporaryDirectory()
        let log = try PrimaryLog(
            directory: directory.file("primary"),
            configuration: .init(retainedGenerations: Int.random(in: 1...3, using: &random)))
        defer { log.close() }
        let writer = try log.makeConnection()
        defer { try? writer.close() }
        let replica = try Replica(directory: directory.file("replica"))
        defer { replica.close() }
        let replicator = Replicator(
            replica: replica, source: PrimaryLogSource(log: log),
            configuration: .init(framesPerRequest: [2, 7, 64, 1024].randomElement(using: &random)!))

        func write(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws {
            try log.write(writer, sql, arguments)
        }

        try write(
            """
            CREATE TABLE plain (a, b, c);
            CREATE TABLE keyed (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER, data BLOB);
            CREATE TABLE compact (k TEXT PRIMARY KEY, v BLOB, w INTEGER) WITHOUT ROWID;
            CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, keyed_id INTEGER, at TEXT);
            CREATE INDEX keyed_n ON keyed (n);
            CREATE VIRTUAL TABLE docs USING fts5(title, body);
            CREATE TRIGGER keyed_audit AFTER INSERT ON keyed BEGIN
              INSERT INTO audit (keyed_id, at) VALUES (new.id, 'insert');
            END;
            """)
        var extraColumns: [String] = []
        var columnCounter = 0
        var indexes: [String] = []
        var syncs = 0

        func compare(_ step: String) async throws {
            try await replicator.sync()
            syncs += 1
            let check = try replica.integrityCheck()
            guard check == "ok" else {
                throw ReplicationError.corruptState("integrity_check after \(step): \(check)")
            }
            let expected = try DatabaseContents(writer)
            let actual = try replica.contents()
            guard expected == actual else {
                throw ReplicationError.corruptState(
                    "replica differs after \(step): primary \(expected), replica \(actual)")
            }
            guard replica.position == log.position else {
                throw ReplicationError.corruptState(
                    "replica at \(String(describing: replica.position)) after \(step), primary at \(log.position)")
            }
        }

        let steps = Int.random(in: 6...14, using: &random)
        let bigBlobStep = seed % 8 == 0 ? Int.random(in: 0..<steps, using: &random) : -1
        for step in 0..<steps {
            let choice = Int.random(in: 0..<100, using: &random)
            var label = ""
            if step == bigBlobStep {
                label = "big blob"
                let size = Int.random(in: 1_100_000...1_600_000, using: &random)
                try write("INSERT INTO keyed (name, n, data) VALUES ('big', 0, randomblob(?))", [size])
            } else if choice < 25 {
                label = "inserts"
                let count = Int.random(in: 1...40, using: &random)
                try log.withWritePermit {
                    try writer.transaction {
                        for _ in 0..<count {
                            let n = Int.random(in: 0...1000, using: &random)
                            try writer.execute(
                                "INSERT INTO keyed (name, n, data) VALUES (?, ?, randomblob(?))",
                                ["k\(n)", n, Int.random(in: 0...600, using: &random)])
                            try writer.execute(
                                "INSERT INTO plain (a, b, c) VALUES (?, ?, ?)", [n, "p\(n)", Double(n) / 7])
                            try writer.execute(
                                "INSERT OR REPLACE INTO compact (k, v, w) VALUES (?, randomblob(?), ?)",
                                ["c\(n % 97)", Int.random(in: 1...3000, using: &random), n])
                        }
                    }
                }
            } else if choice < 35 {
                label = "updates"
                try write(
                    "UPDATE keyed SET n = n + 1, name = name || 'u' WHERE id % ? = 0",
                    [Int.random(in: 2...5, using: &random)])
                try write("UPDATE plain SET c = c * 2 WHERE rowid % 3 = 0")
            } else if choice < 45 {
                label = "deletes"
                try write("DELETE FROM keyed WHERE n % ? = 0", [Int.random(in: 2...6, using: &random)])
                try write("DELETE FROM compact WHERE w % 2 = 1")
                try write("DELETE FROM plain WHERE rowid IN (SELECT rowid FROM plain ORDER BY random() LIMIT 5)")
            } else if choice < 52 {
                label = "fts"
                let words = ["shoal", "replica", "frame", "tenant", "region", "lease", "gate", "wal"]
                for _ in 0..<Int.random(in: 1...8, using: &random) {
                    let body = (0..<6).map { _ in words.randomElement(using: &random)! }.joined(separator: " ")
                    try write("INSERT INTO docs (title, body) VALUES (?, ?)", ["t\(step)", body])
                }
                if Bool.random(using: &random) { try write("DELETE FROM docs WHERE rowid % 3 = 0") }
            } else if choice < 60 {
                label = "add column"
                columnCounter += 1
                let name = "x\(columnCounter)"
                try write("ALTER TABLE plain ADD COLUMN \(name) TEXT DEFAULT 'd\(columnCounter)'")
                extraColumns.append(name)
                try write("UPDATE plain SET \(name) = 'v' || rowid WHERE rowid % 2 = 0")
            } else if choice < 65, let old = extraColumns.randomElement(using: &random) {
                label = "rename column"
                columnCounter += 1
                let new = "r\(columnCounter)"
                try write("ALTER TABLE plain RENAME COLUMN \(old) TO \(new)")
                extraColumns[extraColumns.firstIndex(of: old)!] = new
            } else if choice < 70, let victim = extraColumns.randomElement(using: &random) {
                label = "drop column"
                try write("ALTER TABLE plain DROP COLUMN \(victim)")
                extraColumns.removeAll { $0 == victim }
            } else if choice < 76 {
                if let index = indexes.popLast(), Bool.random(using: &random) {
                    label = "drop index"
                    try write("DROP INDEX \(index)")
                } else {
                    label = "create index"
                    let name = "idx\(step)"
                    try write("CREATE INDEX \(name) ON compact (w, k)")
                    indexes.append(name)
                }
            } else if choice < 82 {
                label = "delete and vacuum"
                try write("DELETE FROM keyed WHERE id % 4 != 0")
                try write("DELETE FROM compact")
                try log.withWritePermit { try writer.execute("VACUUM") }
            } else if choice < 92 {
                label = "roll"
                try log.rollGeneration()
                if Bool.random(using: &random) {
                    try write("INSERT INTO plain (a) VALUES ('after roll')")
                }
            } else {
                label = "sync"
            }
            if Int.random(in: 0..<3, using: &random) > 0 {
                try await compare("step \(step) (\(label))")
            }
        }
        try await compare("the end")
        return syncs
    }
}
