import Foundation
import Testing

/// `shoal org tokens list|create|revoke` of the built binary against a running `shoal dev`, found
/// through `.shoal/dev.json` in the working directory.
@Suite("shoal org tokens", .serialized, .timeLimit(.minutes(5)))
struct OrgTokensCommandTests {
    @Test func tokensAreCreatedListedWithoutSecretsAndRevokedWithWhatTheyCreated() async throws {
        let directory = try Scratch()
        let dev = try ShoalProcess(["dev", "--data", directory.path + "/.shoal", "--port", "0"])
        _ = try await dev.waitForDevFile(directory.path + "/.shoal/dev.json")
        let environment = ["SHOAL_CONFIG": directory.path + "/none.json"]
        func shoal(_ arguments: String...) async throws -> Finished {
            try await ShoalProcess.run(arguments, in: directory.path, environment: environment)
        }

        // The admin token (from dev.json) creates a token that may create tokens, for a day.
        let manager = try await shoal(
            "org", "tokens", "create", "manager", "--expiration", "1d", "--can-create-tokens", "--json")
        #expect(manager.status == 0, "\(manager.errors)")
        let managerSecret = try #require(manager.json["token"] as? String)
        let managerToken = try #require(manager.json["api_token"] as? [String: Any])
        let managerID = try #require(managerToken["id"] as? String)
        #expect(managerToken["can_create_tokens"] as? Bool == true)

        // It creates a token of its own (printed bare), which may not create tokens nor outlive it.
        let child = try await shoal("org", "tokens", "create", "ci", "--token", managerSecret)
        #expect(child.status == 0, "\(child.errors)")
        let childSecret = child.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(childSecret.hasPrefix("shoal_"))
        let refused = try await shoal("org", "tokens", "create", "more", "--token", childSecret)
        #expect(refused.status == 1)
        #expect(refused.errors.contains("forbidden"))
        let longer = try await shoal(
            "org", "tokens", "create", "long", "--expiration", "2d", "--token", managerSecret)
        #expect(longer.status == 1)
        #expect(longer.errors.contains("outlive"), "\(longer.errors)")

        let table = try await shoal("org", "tokens", "list")
        #expect(table.status == 0, "\(table.errors)")
        #expect(table.output.hasPrefix("ID"))
        #expect(table.output.contains("manager") && table.output.contains(" ci "))
        #expect(!table.output.contains(managerSecret) && !table.output.contains(childSecret))
        let list = try await shoal("org", "tokens", "list", "--json")
        let tokens = list.json["api_tokens"] as? [[String: Any]] ?? []
        #expect(tokens.map { $0["name"] as? String } == ["manager", "ci"])
        #expect(tokens.allSatisfy { $0["token"] == nil })
        #expect(tokens.last?["created_by"] as? String == managerID)
        #expect(tokens.last?["expires_at"] as? Int == managerToken["expires_at"] as? Int)

        // Revoking the manager revokes what it created, at once.
        #expect(try await shoal("org", "list", "--token", childSecret).status == 0)
        let revoked = try await shoal("org", "tokens", "revoke", managerID)
        #expect(revoked.status == 0, "\(revoked.errors)")
        #expect(revoked.output.contains(managerID))
        let afterwards = try await shoal("org", "list", "--token", childSecret)
        #expect(afterwards.status == 1)
        #expect(afterwards.errors.contains("unauthorized"))
        let again = try await shoal("org", "tokens", "revoke", managerID)
        #expect(again.status == 3)
        #expect(again.errors.contains("not_found"))
        let empty = try await shoal("org", "tokens", "list", "--json")
        #expect((empty.json["api_tokens"] as? [Any])?.isEmpty == true)
        #expect(try await dev.stop(signal: SIGTERM) == 0)
    }
}
