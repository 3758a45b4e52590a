import Foundation
import ShoalSQLite
import ShoalTestSupport
import Synchronization
import Testing

@testable import ShoalReplication

/// Readers on several threads while transactions that keep a constant sum are applied continuously
/// (with schema changes and generation rolls among them): no reader may ever see a broken invariant
/// or get an error.
@Suite(.timeLimit(.minutes(2))) struct ReplicaConcurrencyTests {
    static let accounts = 100
    static let total: Int64 = 100 * 1000

    @Test func readersNeverSeeATornOrRolledBackState() async throws {
        let directory = try TemporaryDirectory()
        let log = try PrimaryLog(directory: directory.file("primary"))
        defer { log.close() }
        let writer = try log.makeConnection()
        defer { try? writer.close() }
        try log.write(
            writer, "CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, version INTEGER)")
        try log.withWritePermit {
            try writer.transaction {
                for id in 1...Self.accounts {
                    try writer.execute("INSERT INTO account (id, balance, version) VALUES (?, 1000, 0)", [id])
                }
            }
        }
        let replica = try Replica(directory: directory.file("replica"), configuration: .init(maxReaders: 4))
        defer { replica.close() }
        let replicator = Replicator(replica: replica, source: PrimaryLogSource(log: log))
        try await replicator.sync()

        let done = Atomic<Bool>(false)
        let reads = Atomic<Int>(0)
        let violations = Atomic<Int>(0)
        let errors = Mutex<[String]>([])
        let finished = DispatchGroup()
        for thread in 0..<3 {
            finished.enter()
            Thread {
                defer { finished.leave() }
                var lastVersion: Int64 = 0
                while !done.load(ordering: .acquiring) {
                    do {
                        let (sum, count, version) = try replica.read { connection in
                            let statement = try connection.cachedStatement(
                                "SELECT sum(balance), count(*), max(version) FROM account")
                            defer { statement.reset() }
                            _ = try statement.step()
                            return (statement.int64(at: 0), statement.int64(at: 1), statement.int64(at: 2))
                        }
                        if sum != Self.total || count != Int64(Self.accounts) || version < lastVersion {
                            violations.add(1, ordering: .relaxed)
                        }
                        lastVersion = version
                        // A point read through a kept statement, as an application would do.
                        let id = Int64(1 + (thread * 31 + Int(version)) % Self.accounts)
                        _ = try replica.read { connection in
                            let point = try connection.cachedStatement("SELECT balance FROM account WHERE id = ?")
                            defer { point.reset() }
                            try point.bind(id, at: 1)
                            return try point.step() ? point.int64(at: 0) : -1
                        }
                        reads.add(2, ordering: .relaxed)
                    } catch {
                        errors.withLock { $0.append("\(error)") }
                    }
                }
            }.start()
        }

        var random = SeededGenerator(seed: 7)
        var applies = 0
        for round in 1...1500 {
            try log.withWritePermit {
                try writer.transaction {
                    for _ in 0..<Int.random(in: 1...5, using: &random) {
                        let from = Int.random(in: 1...Self.accounts, using: &random)
                        let to = Int.random(in: 1...Self.accounts, using: &random)
                        let amount = Int.random(in: 1...50, using: &random)
                        try writer.execute(
                            "UPDATE account SET balance = balance - ?, version = ? WHERE id = ?", [amount, round, from])
                        try writer.execute(
                            "UPDATE account SET balance = balance + ?, version = ? WHERE id = ?", [amount, round, to])
                    }
                }
            }
            // A transaction that is rolled back must never reach a reader.
            if round % 17 == 0 {
                try log.withWritePermit {
                    try writer.execute("BEGIN")
                    try writer.execute("UPDATE account SET balance = 0")
                    try writer.execute("ROLLBACK")
                }
            }
            if round % 50 == 0 {
                try log.write(writer, "CREATE INDEX IF NOT EXISTS account_v\(round) ON account (version)")
            }
            if round % 120 == 0 { try log.write(writer, "ALTER TABLE account ADD COLUMN note\(round) TEXT") }
            if round % 90 == 0 { try log.rollGeneration() }
            if round % 2 == 0 {
                applies += try await replicator.sync().framesApplied > 0 ? 1 : 0
            }
        }
        try await replicator.sync()
        done.store(true, ordering: .releasing)
        try await onOwnThread { finished.wait() }

        #expect(errors.withLock { $0 } == [])
        #expect(violations.load(ordering: .relaxed) == 0)
        #expect(applies >= 600)
        #expect(reads.load(ordering: .relaxed) > 1000)
        #expect(try replica.integrityCheck() == "ok")
        #expect(try replica.contents() == DatabaseContents(writer))
    }
}
