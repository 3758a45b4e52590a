import Foundation
import ShoalSQLite
import ShoalTestSupport
import Testing

@testable import ShoalReplication

/// Child processes doing replication work are killed with SIGKILL at random moments; every restart
/// must find a valid database in a committed state, and then converge.
///
/// `SHOAL_CRASH_KILLS` sets how many kills each test needs (default 30).
@Suite(.serialized, .timeLimit(.minutes(5))) struct ReplicationCrashTests {
    static let kills = ProcessInfo.processInfo.environment["SHOAL_CRASH_KILLS"].flatMap { Int($0) } ?? 30

    /// The helper executable, built next to the test binary by `swift build --build-tests`.
    static func helperPath() throws -> String {
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let path = directory + "/shoal-crash-helper"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ReplicationError.io(
                "\(path) is missing; build it with `swift build --build-tests` before `swift test`")
        }
        return path
    }

    /// Runs the helper until it reports `ready`, then kills it after `delay` unless it exits
    /// first. Returns whether it was killed and how long it ran after `ready`.
    static func runAndKill(_ arguments: [String], after delay: Duration?) throws -> (killed: Bool, ran: Duration) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try helperPath())
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        var seen = ""
        while !seen.contains("ready\n") {
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { break }  // the helper exited before set-up finished
            seen += String(decoding: data, as: UTF8.self)
        }
        let ready = ContinuousClock.now
        if let delay {
            let deadline = ready.advanced(by: delay)
            while process.isRunning && ContinuousClock.now < deadline {
                usleep(200)
            }
        }
        let killed = process.isRunning && delay != nil
        if killed { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        let ran = ContinuousClock.now - ready
        if !killed && process.terminationStatus != 0 {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw ReplicationError.io("the helper failed on its own: \(message)")
        }
        return (killed, ran)
    }

    @Test func replicaKilledWhileApplyingRecoversToACommittedStateAndConverges() async throws {
        let directory = try TemporaryDirectory()
        let primaryPath = directory.file("primary")
        // Build a primary with many transactions over two generations, remembering every state.
        var states: [ReplicationPosition: DatabaseContents] = [:]
        do {
            let log = try PrimaryLog(directory: primaryPath)
            defer { log.close() }
            let writer = try log.makeConnection()
            defer { try? writer.close() }
            var random = SeededGenerator(seed: 11)
            func commit(_ sql: String, _ arguments: [any SQLiteBindable] = []) throws {
                try log.write(writer, sql, arguments)
                states[log.position] = try DatabaseContents(writer)
            }
            states[log.position] = try DatabaseContents(writer)
            try commit("CREATE TABLE item (id INTEGER PRIMARY KEY, v TEXT, data BLOB); CREATE INDEX item_v ON item (v)")
            for step in 0..<240 {
                switch Int.random(in: 0..<10, using: &random) {
                case 0..<6:
                    try commit(
                        "INSERT INTO item (v, data) VALUES (?, randomblob(?))",
                        ["v\(step)", Int.random(in: 0...9000, using: &random)])
                case 6..<8: try commit("UPDATE item SET v = v || 'u' WHERE id % 3 = ?", [step % 3])
                case 8: try commit("DELETE FROM item WHERE id % 5 = ?", [step % 5])
                default:
                    try commit("CREATE TABLE IF NOT EXISTS extra\(step % 4) (x)")
                    try commit("INSERT INTO extra\(step % 4) VALUES (?)", [step])
                }
                if step == 120 {
                    let last = log.position
                    try log.rollGeneration()
                    states[log.position] = states[last]
                }
            }
        }
        let final = try #require(states.max { $0.key < $1.key })

        // One run to the end measures how long a whole sync takes; kills then land anywhere in it.
        let calibrationPath = directory.file("replica-calibration")
        let calibration = try await onOwnThread {
            try Self.runAndKill(["replica-apply", primaryPath, calibrationPath, "0"], after: nil)
        }
        let window = max(
            2.0,
            Double(calibration.ran.components.attoseconds) / 1e15 + Double(calibration.ran.components.seconds) * 1000)
        var killed = 0
        var redoPending = 0
        var notBootstrapped = 0
        var attempt = 0
        while killed < Self.kills && attempt < Self.kills * 4 {
            attempt += 1
            let replicaPath = directory.file("replica-\(attempt)")
            let delay = Duration.milliseconds(Double.random(in: 0...window))
            let seed = attempt
            guard
                try await onOwnThread({
                    try Self.runAndKill(["replica-apply", primaryPath, replicaPath, "\(seed)"], after: delay)
                }).killed
            else { continue }
            killed += 1
            if (try? RedoLog(path: replicaPath + "/redo").read()) != nil { redoPending += 1 }
            let replica = try Replica(directory: replicaPath)
            defer { replica.close() }
            if let position = replica.position {
                #expect(try replica.integrityCheck() == "ok", "kill \(killed) at \(position)")
                let expected = try #require(states[position], "no committed state at \(position)")
                #expect(try replica.contents() == expected, "kill \(killed) at \(position)")
            } else {
                notBootstrapped += 1
            }
            let log = try PrimaryLog(directory: primaryPath)
            defer { log.close() }
            let result = try await Replicator(replica: replica, source: PrimaryLogSource(log: log)).sync()
            #expect(result.position == final.key)
            #expect(try replica.contents() == final.value)
            try? FileManager.default.removeItem(atPath: replicaPath)
        }
        #expect(killed >= Self.kills, "only \(killed) of \(attempt) runs were killed before finishing")
        // Most kills must land after the bootstrap, inside applies.
        #expect(notBootstrapped < killed / 2, "\(notBootstrapped) of \(killed) kills came before the bootstrap")
        print(
            "replica crash test: \(killed) kills over a \(Int(window)) ms sync, \(redoPending) with a batch pending in the redo log, \(notBootstrapped) before the bootstrap"
        )
    }

    @Test func primaryKilledWhileRollingRecoversAndReplicasConverge() async throws {
        let directory = try TemporaryDirectory()
        let primaryPath = directory.file("primary")
        do {
            let log = try PrimaryLog(directory: primaryPath)
            defer { log.close() }
            let writer = try log.makeConnection()
            defer { try? writer.close() }
            try log.write(writer, "CREATE TABLE seq (n INTEGER PRIMARY KEY, pad BLOB)")
        }
        let follower = try Replica(directory: directory.file("follower"))
        defer { follower.close() }
        var killed = 0
        var interruptedRolls = 0
        var attempt = 0
        while killed < Self.kills && attempt < Self.kills * 3 {
            attempt += 1
            let delay = Duration.milliseconds(Double.random(in: 1...60))
            let seed = attempt
            guard
                try await onOwnThread({ try Self.runAndKill(["primary-roll", primaryPath, "\(seed)"], after: delay) })
                    .killed
            else { continue }
            killed += 1
            let meta = try #require(try PrimaryMeta.load(directory: primaryPath))
            let generations = try FileManager.default.contentsOfDirectory(atPath: primaryPath + "/generations")
            if generations.contains("\(meta.generation).frames")
                || generations.contains(where: { $0.hasSuffix(".tmp") })
            {
                interruptedRolls += 1
            }

            let log = try PrimaryLog(directory: primaryPath)
            defer { log.close() }
            let reader = try log.makeConnection(readOnly: true)
            defer { try? reader.close() }
            #expect(try reader.queryOne("PRAGMA integrity_check")?[0] == .text("ok"))
            // A committed state: rows 1...k with no gap.
            let row = try #require(try reader.queryOne("SELECT count(*), coalesce(max(n), 0) FROM seq"))
            #expect(row[0] == row[1], "kill \(killed): rows are not 1...k")
            #expect(!FileManager.default.fileExists(atPath: primaryPath + "/generations/\(log.generation).frames"))
            // A replica that followed before the kill continues; a new one bootstraps; both converge.
            let expected = try DatabaseContents(reader)
            try await Replicator(replica: follower, source: PrimaryLogSource(log: log)).sync()
            #expect(try follower.integrityCheck() == "ok")
            #expect(try follower.contents() == expected, "kill \(killed): the follower differs")
            let fresh = try Replica(directory: directory.file("fresh-\(attempt)"))
            defer { fresh.close() }
            try await Replicator(replica: fresh, source: PrimaryLogSource(log: log)).sync()
            #expect(try fresh.contents() == expected)
        }
        #expect(killed >= Self.kills)
        print("primary crash test: \(killed) kills, \(interruptedRolls) inside a roll")
    }
}
