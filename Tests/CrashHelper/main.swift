// `shoal-crash-helper`: the child process of the replication crash tests. It does replication work
// in a loop until the test kills it with SIGKILL at a random moment.
//
//   shoal-crash-helper replica-apply PRIMARY_DIR REPLICA_DIR SEED   sync a replica in small batches
//   shoal-crash-helper primary-roll PRIMARY_DIR SEED                write and roll generations forever
import Foundation
import ShoalReplication
import ShoalSQLite
import ShoalTestSupport

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else { fail("usage: shoal-crash-helper replica-apply|primary-roll …") }

switch arguments[1] {
case "replica-apply":
    guard arguments.count == 5, let seed = UInt64(arguments[4]) else {
        fail("usage: shoal-crash-helper replica-apply PRIMARY_DIR REPLICA_DIR SEED")
    }
    var random = SeededGenerator(seed: seed)
    do {
        let log = try PrimaryLog(directory: arguments[2])
        let replica = try Replica(
            directory: arguments[3],
            configuration: .init(durability: Bool.random(using: &random) ? .perBatch : .none))
        let replicator = Replicator(
            replica: replica, source: PrimaryLogSource(log: log),
            configuration: .init(framesPerRequest: Int.random(in: 1...12, using: &random)))
        // Tell the test that set-up is over: the random kill window starts now.
        FileHandle.standardOutput.write(Data("ready\n".utf8))
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            do {
                try await replicator.sync()
            } catch {
                fail("sync failed: \(error)")
            }
            done.signal()
        }
        done.wait()
        exit(0)
    } catch {
        fail("replica-apply failed: \(error)")
    }

case "primary-roll":
    guard arguments.count == 4, let seed = UInt64(arguments[3]) else {
        fail("usage: shoal-crash-helper primary-roll PRIMARY_DIR SEED")
    }
    var random = SeededGenerator(seed: seed)
    do {
        let log = try PrimaryLog(directory: arguments[2])
        let writer = try log.makeConnection()
        FileHandle.standardOutput.write(Data("ready\n".utf8))
        var writes = 0
        while true {
            try log.withWritePermit {
                try writer.transaction {
                    try writer.execute(
                        "INSERT INTO seq (n, pad) VALUES ((SELECT coalesce(max(n), 0) + 1 FROM seq), randomblob(?))",
                        [Int.random(in: 10...20_000, using: &random)])
                }
            }
            writes += 1
            if writes % 4 == 0 {
                try log.rollGeneration()
            }
        }
    } catch {
        fail("primary-roll failed: \(error)")
    }

default:
    fail("unknown mode \(arguments[1])")
}
