import Foundation
import ShoalModel
import ShoalNodeTestSupport
import ShoalReplication
import ShoalSQLite
import Testing

@testable import ShoalNode

/// A database's size limit is a disk budget: its file, WAL and archived generations together, and
/// its TEMP tables, cannot outgrow it by more than one WAL segment.
@Suite(.timeLimit(.minutes(2))) struct DiskBudgetTests {
    static func pipeline(_ requests: [String]) -> String {
        #"{"baton":null,"requests":[\#(requests.joined(separator: ",")),{"type":"close"}]}"#
    }

    static func execute(_ sql: String) -> String {
        #"{"type":"execute","stmt":{"sql":"\#(sql)"}}"#
    }

    /// Every byte under a database's directory.
    static func bytesOnDisk(_ directory: String) throws -> Int64 {
        var total: Int64 = 0
        let enumerator = FileManager.default.enumerator(atPath: directory)
        while let entry = enumerator?.nextObject() as? String {
            let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/" + entry)
            if attributes[.type] as? FileAttributeType == .typeRegular {
                total += (attributes[.size] as? Int64) ?? 0
            }
        }
        return total
    }

    static func errorCodes(_ body: String) throws -> [String?] {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        return json.results.dropLast().map { result in
            result["type"] as? String == "ok" ? nil : ((result["error"] as? [String: Any])?["code"] as? String ?? "?")
        }
    }

    @Test func aOneMebibyteDatabaseStaysWithinItsBudgetWhateverItsWritesChurn() async throws {
        try await LiveNode.with({ _ in }) { node in
            let namespace = try Namespace("tight/db")
            let budget: Int64 = 1 << 20
            try await node.node.store.create(namespace, settings: DatabaseSettings(maxSizeBytes: budget))
            let path = "/db/tight/db/v2/pipeline"
            let created = try await node.request("POST", path, body: Self.pipeline([Self.execute("CREATE TABLE t(x)")]))
            #expect(try Self.errorCodes(created.body) == [nil])
            // 100 transactions that each write 200 KB and delete it again: 20 MB through the WAL,
            // never more than 200 KB of live data.
            for _ in 0..<100 {
                let answer = try await node.request(
                    "POST", path,
                    body: Self.pipeline([
                        Self.execute("BEGIN"),
                        Self.execute(
                            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200) INSERT INTO t SELECT randomblob(1000) FROM s"
                        ),
                        Self.execute("COMMIT"),
                        Self.execute("DELETE FROM t"),
                    ]))
                #expect(answer.status == 200)
            }
            let directory = namespace.directory(in: node.node.configuration.dataDirectory)
            let onDisk = try Self.bytesOnDisk(directory)
            let segment = PrimaryLog.Configuration(diskBudgetBytes: budget).effectiveRollThreshold
            // One WAL segment, and the transaction that crossed it (200 pages and their headers).
            let slack = segment + 210 * 4120
            #expect(onDisk <= budget + slack, "\(onDisk) bytes on disk for a budget of \(budget)")

            // Past the budget a write is refused, and the message says which limit it hit.
            let full = try await node.request(
                "POST", path,
                body: Self.pipeline([
                    Self.execute(
                        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 2000) INSERT INTO t SELECT randomblob(1000) FROM s"
                    )
                ])
            )
            #expect(try Self.errorCodes(full.body) == ["SQLITE_FULL"])
            #expect(full.body.contains("size limit"))
            #expect(try Self.bytesOnDisk(directory) <= budget + slack)
        }
    }

    @Test func tempTablesAreCappedAtTheDatabasesSizeLimit() async throws {
        try await LiveNode.with({ _ in }) { node in
            let namespace = try Namespace("tight/temp")
            try await node.node.store.create(namespace, settings: DatabaseSettings(maxSizeBytes: 1 << 20))
            let answer = try await node.request(
                "POST", "/db/tight/temp/v2/pipeline",
                body: Self.pipeline([
                    Self.execute("CREATE TEMP TABLE scratch(x)"),
                    Self.execute(
                        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 40000) INSERT INTO scratch SELECT randomblob(1000) FROM s"
                    ),
                ]))
            // 40 MB into TEMP: refused once it passes the database's 1 MiB.
            #expect(try Self.errorCodes(answer.body) == [nil, "SQLITE_FULL"])
        }
    }

    @Test func sortsAndTransientIndicesAreCappedAtTheDatabasesSizeLimit() async throws {
        try await LiveNode.with({ _ in }) { node in
            // 500-byte keys: a key over about 1,000 bytes would take an overflow page each.
            let rows = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 40000)"
            let queries = [
                // A sort of 20 MB of keys spills to a temporary file.
                Self.execute("\(rows) SELECT i FROM s ORDER BY randomblob(500)"),
                // DISTINCT keeps a transient index of 20 MB of keys.
                Self.execute("\(rows) SELECT count(*) FROM (SELECT DISTINCT randomblob(500) FROM s)"),
            ]
            let tight = try Namespace("tight/sorts")
            try await node.node.store.create(tight, settings: DatabaseSettings(maxSizeBytes: 1 << 20))
            let refused = try await node.request(
                "POST", "/db/tight/sorts/v2/pipeline", body: Self.pipeline(queries))
            #expect(try Self.errorCodes(refused.body) == ["SQLITE_FULL", "SQLITE_FULL"])
            #expect(refused.body.contains("temporary files"))
            // Within the node's 64 MiB the same statements run.
            try await node.node.store.create(try Namespace("roomy/sorts"))
            let answered = try await node.request(
                "POST", "/db/roomy/sorts/v2/pipeline", body: Self.pipeline(queries))
            #expect(try Self.errorCodes(answered.body) == [nil, nil], "\(answered.body.suffix(600))")
        }
    }
}

/// Cancelling an HTTP API v1 request interrupts the statement it runs (its executor is made inside
/// the attempt, so the interrupt reaches it through `OneRequestExecutor`).
@Suite(.timeLimit(.minutes(1))) struct OneRequestCancellationTests {
    @Test func cancellingAOneRequestAttemptInterruptsItsStatement() async throws {
        try await LiveNode.with({ _ in }) { node in
            let namespace = try Namespace("acme/spin")
            try await node.node.store.create(namespace)
            try await node.node.store.withDatabase(namespace) { database in
                let once = OneRequestExecutor()
                let started = ContinuousClock.now
                let request = Task {
                    try await node.node.onLane(
                        database, deadline: .now + .seconds(30), interrupt: { once.interrupt() }
                    ) { _ -> LaneAttempt<Int> in
                        let executor = try once.executor(for: database)
                        defer { once.close() }
                        _ = try executor.connection.query(
                            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n")
                        return .done(0)
                    }
                }
                try await Task.sleep(for: .milliseconds(300))
                request.cancel()
                await #expect {
                    try await request.value
                } throws: {
                    ($0 as? SQLiteError)?.code.primary == .interrupt
                }
                // Interrupted at once, not at the node's 10 s statement limit.
                #expect(ContinuousClock.now - started < .seconds(5))
            }
        }
    }

    @Test func aCancellationBeforeTheExecutorIsMadeIsKept() async throws {
        try await LiveNode.with({ _ in }) { node in
            let namespace = try Namespace("acme/early")
            try await node.node.store.create(namespace)
            try await node.node.store.withDatabase(namespace) { database in
                let once = OneRequestExecutor()
                once.interrupt()
                await #expect(throws: CancellationError.self) {
                    try await database.lane.run { _ = try once.executor(for: database) }
                }
                try await database.lane.run { once.close() }
            }
        }
    }
}

/// A node that starts counts its primaries at rest for the control plane, not only those it opens.
@Suite(.timeLimit(.minutes(1))) struct StorageLedgerTests {
    @Test func primariesAtRestAreMeasuredOnceAndThoseWithoutACatalogIdAreNot() async throws {
        try await LiveNode.with({ _ in }) { node in
            try await node.node.store.create(
                try Namespace("acme/rest"), settings: DatabaseSettings(databaseID: "db-rest"))
            let wrote = try await node.request(
                "POST", "/db/acme/rest/v2/pipeline",
                body: DiskBudgetTests.pipeline([
                    DiskBudgetTests.execute("CREATE TABLE t (x)"),
                    DiskBudgetTests.execute("INSERT INTO t VALUES (randomblob(100000))"),
                ]))
            #expect(try DiskBudgetTests.errorCodes(wrote.body) == [nil, nil])
            // An operator's database without a catalog id is not the control plane's to count.
            try await node.node.store.create(try Namespace("acme/anonymous"))

            let ledger = StorageLedger()
            await ledger.measureAtRest(dataDirectory: node.node.configuration.dataDirectory)
            let changes = await ledger.changes()
            #expect(changes.map(\.databaseID) == ["db-rest"])
            #expect((changes.first?.bytes ?? 0) > 100_000)
            // Once the control plane confirmed it, it is not sent again.
            ledger.confirm(changes)
            #expect(await ledger.changes().isEmpty)
        }
    }
}
