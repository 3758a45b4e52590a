import Foundation
import Testing

/// The Platform API commands (`auth`, `org`, `location`, `group`, `db`) of the built binary against
/// a running `shoal dev`, found through `.shoal/dev.json` in the working directory.
@Suite("shoal auth, org, location, group, db", .serialized, .timeLimit(.minutes(5)))
struct PlatformCommandTests {
    @Test func commandsDriveThePlatformAPIWithTablesJSONAndMeaningfulExitCodes() async throws {
        let directory = try Scratch()
        let dev = try ShoalProcess(["dev", "--data", directory.path + "/.shoal", "--port", "0"])
        let file = try await dev.waitForDevFile(directory.path + "/.shoal/dev.json")
        // No saved login: the commands fall back to `.shoal/dev.json`.
        let environment = ["SHOAL_CONFIG": directory.path + "/none.json"]
        func shoal(_ arguments: String...) async throws -> Finished {
            try await ShoalProcess.run(arguments, in: directory.path, environment: environment)
        }

        let locations = try await shoal("location", "list", "--json")
        #expect(locations.status == 0)
        #expect((locations.json["locations"] as? [String: Any])?.count == 18)
        let table = try await shoal("location", "list")
        #expect(table.output.hasPrefix("CODE"))
        #expect(table.output.split(separator: "\n").contains { $0.hasPrefix("fra ") && $0.contains("Frankfurt") })
        let groups = try await shoal("group", "list")
        #expect(groups.output.contains("default") && groups.output.hasSuffix("no\n"), "\(groups.output)")
        let orgs = try await shoal("org", "list", "--json")
        #expect((orgs.json["organizations"] as? [[String: Any]])?.map { $0["slug"] as? String } == ["dev"])

        let group = try await shoal("group", "create", "eu", "--location", "fra", "--jurisdiction", "eu", "--json")
        #expect(group.status == 0, "\(group.errors)")
        #expect((group.json["group"] as? [String: Any])?["primary"] as? String == "fra")
        let outside = try await shoal("group", "locations", "add", "eu", "iad")
        #expect(outside.status == 1)
        #expect(outside.errors.contains("region_lock_violation"))
        let added = try await shoal("group", "locations", "add", "eu", "ams", "--json")
        #expect((added.json["group"] as? [String: Any])?["locations"] as? [String] == ["fra", "ams"])

        let created = try await shoal("db", "create", "shop", "--group", "eu")
        #expect(created.status == 0)
        #expect(created.output.contains("created database shop"))
        let duplicate = try await shoal("db", "create", "shop", "--group", "eu")
        #expect(duplicate.status == 1)
        #expect(duplicate.errors.contains("conflict"))
        let again = try await shoal("db", "create", "shop", "--group", "eu", "--if-not-exists")
        #expect(again.status == 0)

        let token = try await shoal("db", "tokens", "create", "shop", "--location", "ams", "--expiration", "1h")
        #expect(token.status == 0)
        let jwt = token.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let answer = try await HTTP.execute("SELECT 6 * 7", at: file.nodes["fra"]! + "/db/dev/shop", token: jwt)
        #expect(answer.text.contains("42"), "\(answer.text)")
        let locked = try await shoal("db", "tokens", "create", "shop", "--location", "iad")
        #expect(locked.status == 1)
        #expect(locked.errors.contains("region_lock_violation"))

        // Group tokens cover every database of the group; rotating the group refuses them all.
        let groupToken = try await shoal("group", "tokens", "create", "eu", "--expiration", "1h")
        #expect(groupToken.status == 0, "\(groupToken.errors)")
        let groupJWT = groupToken.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let viaGroup = try await HTTP.execute("SELECT 6 * 7", at: file.nodes["fra"]! + "/db/dev/shop", token: groupJWT)
        #expect(viaGroup.text.contains("42"), "\(viaGroup.text)")
        let rotated = try await shoal("group", "tokens", "rotate", "eu")
        #expect(rotated.status == 0, "\(rotated.errors)")
        var afterRotation = 0
        for _ in 0..<40 {
            afterRotation = try await HTTP.execute(
                "SELECT 1", at: file.nodes["fra"]! + "/db/dev/shop", token: groupJWT
            ).status
            if afterRotation == 401 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(afterRotation == 401)

        let many = try await shoal("db", "create-many", "--group", "eu", "--count", "25", "--prefix", "t-", "--json")
        #expect(many.status == 0, "\(many.errors)")
        #expect(many.json["created"] as? Int == 25)
        let rerun = try await shoal("db", "create-many", "--group", "eu", "--count", "25", "--prefix", "t-", "--json")
        #expect(rerun.json["already_existed"] as? Int == 25)
        let list = try await shoal("db", "list", "--json", "--group", "eu")
        let names = (list.json["databases"] as? [[String: Any]] ?? []).compactMap { $0["Name"] as? String }
        #expect(names.count == 26)
        #expect(names.contains("t-01") && names.contains("t-25") && names.contains("shop"))
        let shown = try await shoal("db", "show", "shop", "--json")
        let instance = (shown.json["instances"] as? [[String: Any]])?.first
        #expect(instance?["url"] as? String == file.nodes["fra"]! + "/db/dev/shop")
        let missing = try await shoal("db", "show", "nope")
        #expect(missing.status == 3)
        #expect(missing.errors.contains("not_found"))

        let unconfirmed = try await shoal("db", "destroy", "shop")
        #expect(unconfirmed.status != 0)
        #expect(unconfirmed.errors.contains("--yes"))
        #expect(try await shoal("db", "destroy", "shop", "--yes").status == 0)
        #expect(try await shoal("db", "show", "shop").status == 3)

        // A saved login takes over from dev.json; a wrong token is refused with exit status 1.
        let config = directory.path + "/config.json"
        let login = try await ShoalProcess.run(
            ["auth", "login", "--url", file.apiURL, "--token", file.adminToken, "--org", "dev"], in: directory.path,
            environment: ["SHOAL_CONFIG": config])
        #expect(login.status == 0, "\(login.errors)")
        let attributes = try FileManager.default.attributesOfItem(atPath: config)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let usage = try await ShoalProcess.run(
            ["org", "show", "--json"], in: "/", environment: ["SHOAL_CONFIG": config])
        #expect((usage.json["usage"] as? [String: Any])?["databases"] as? Int == 25)
        let refused = try await shoal("org", "list", "--token", "wrong")
        #expect(refused.status == 1)
        #expect(refused.errors.contains("unauthorized"))
        let badLogin = try await ShoalProcess.run(
            ["auth", "login", "--url", file.apiURL, "--token", "wrong"], in: directory.path,
            environment: ["SHOAL_CONFIG": directory.path + "/other.json"])
        #expect(badLogin.status == 1)
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/other.json"))
        #expect(try await dev.stop(signal: SIGTERM) == 0)
    }
}
