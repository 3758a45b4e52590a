import Foundation
import Testing

/// `shoal db backups`, `shoal db restore`, `shoal db create --from-db`, `shoal db deleted` and
/// `shoal db undelete` against `shoal dev`,
/// whose nodes ship to a directory under its data directory.
@Suite("shoal db backups, restore, create --from-db", .serialized, .timeLimit(.minutes(3)))
struct BackupCommandTests {
    @Test func restoreInPlaceUndoAndCopyFromTheCommandLine() async throws {
        let directory = try Scratch()
        let dev = try ShoalProcess(["dev", "--data", directory.path + "/.shoal", "--port", "0"])
        let file = try await dev.waitForDevFile(directory.path + "/.shoal/dev.json")
        let environment = ["SHOAL_CONFIG": directory.path + "/none.json"]
        func shoal(_ arguments: String...) async throws -> Finished {
            try await ShoalProcess.run(arguments, in: directory.path, environment: environment)
        }
        func values(_ database: String) async throws -> String {
            let token = try await shoal("db", "tokens", "create", database)
            let jwt = token.output.trimmingCharacters(in: .whitespacesAndNewlines)
            let answer = try await HTTP.execute(
                "SELECT group_concat(x) FROM t", at: file.nodes["fra"]! + "/db/dev/\(database)", token: jwt)
            let rows =
                (((answer.json["results"] as? [[String: Any]])?.first?["response"] as? [String: Any])?["result"]
                as? [String: Any])?["rows"] as? [[[String: Any]]]
            return rows?.first?.first?["value"] as? String ?? answer.text
        }

        #expect(try await shoal("db", "create", "shop", "--group", "default").status == 0)
        let jwt = try await shoal("db", "tokens", "create", "shop").output.trimmingCharacters(
            in: .whitespacesAndNewlines)
        let url = file.nodes["fra"]! + "/db/dev/shop"
        #expect(!(try await HTTP.execute("CREATE TABLE t (x)", at: url, token: jwt).pipelineFailed))
        #expect(!(try await HTTP.execute("INSERT INTO t VALUES (1)", at: url, token: jwt).pipelineFailed))
        // To the microsecond, between the two writes.
        let now = Date().timeIntervalSince1970
        let whole = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: now.rounded(.down)))
        let middle = whole.dropLast() + String(format: ".%06dZ", Int((now - now.rounded(.down)) * 1_000_000))
        #expect(!(try await HTTP.execute("INSERT INTO t VALUES (2)", at: url, token: jwt).pipelineFailed))

        let backups = try await shoal("db", "backups", "shop")
        #expect(backups.status == 0, "\(backups.errors)")
        #expect(backups.output.contains("earliest"))

        let bad = try await shoal("db", "restore", "shop", "--timestamp", "yesterday")
        #expect(bad.status != 0)
        #expect(bad.errors.contains("RFC 3339"))

        let restored = try await shoal("db", "restore", "shop", "--timestamp", String(middle))
        #expect(restored.status == 0, "\(restored.errors)")
        #expect(restored.output.contains("restored shop to"))
        #expect(try await values("shop") == "1")
        let undo = try #require(
            restored.output.split(separator: "\n").first { $0.hasPrefix("to undo: ") }.map {
                String($0.split(separator: " ").last!)
            })
        #expect(try await shoal("db", "restore", "shop", "--timestamp", undo).status == 0)
        #expect(try await values("shop") == "1,2")

        let copy = try await shoal(
            "db", "create", "shop-copy", "--group", "default", "--from-db", "shop", "--timestamp", String(middle))
        #expect(copy.status == 0, "\(copy.errors)")
        #expect(try await values("shop-copy") == "1")

        // Deleted, listed, undeleted with its rows; then nothing is left to undelete.
        #expect(try await shoal("db", "destroy", "shop", "--yes").output.contains("shoal db undelete shop"))
        let deleted = try await shoal("db", "deleted")
        #expect(deleted.status == 0, "\(deleted.errors)")
        #expect(deleted.output.contains("shop  group default"))
        let undeleted = try await shoal("db", "undelete", "shop")
        #expect(undeleted.status == 0, "\(undeleted.errors)")
        #expect(undeleted.output.contains("undeleted database shop as of"))
        #expect(try await values("shop") == "1,2")
        let again = try await shoal("db", "undelete", "shop")
        #expect(again.status != 0)
        #expect(again.errors.contains("can be undeleted"))
        #expect(try await shoal("db", "deleted").output.contains("no deleted database"))
        #expect(try await dev.stop(signal: SIGTERM) == 0)
    }
}
