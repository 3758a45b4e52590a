import ArgumentParser
import Foundation

/// `shoal org`: organizations.
struct OrgCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "org", abstract: "Create, list and show organizations; manage their API tokens.",
        subcommands: [List.self, Create.self, Show.self, Tokens.self])

    static let columns = ["slug", "plan", "region_rule"]

    /// `shoal org list`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the organizations the token may see.")
        @OptionGroup var platform: PlatformOptions

        func run() async throws {
            let data = try await platform.run { try await $0.send("GET", "v1/organizations") }
            try platform.print(data, list: "organizations", columns: OrgCommand.columns)
        }
    }

    /// `shoal org create`.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an organization (admin token).")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The slug: 1-64 of a-z, 0-9 and -.") var slug: String
        @Option(help: "The plan (see GET /v1/plans).") var plan = "free"

        func run() async throws {
            struct Body: Encodable {
                let slug: String
                let plan: String
            }
            let data = try await platform.run {
                try await $0.send("POST", "v1/organizations", body: Body(slug: slug, plan: plan))
            }
            try platform.print(data, list: "organization", columns: OrgCommand.columns)
        }
    }

    /// `shoal org show`.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an organization with its usage and quotas.")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The slug (default: the current organization).") var slug: String?

        func run() async throws {
            let slug = try self.slug ?? platform.organization()
            let data = try await platform.run { try await $0.send("GET", "v1/organizations/\(slug)/usage") }
            if platform.json { return say(String(decoding: data, as: UTF8.self)) }
            let answer = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
            let usage = answer["usage"] as? [String: Any] ?? [:]
            let quotas = answer["quotas"] as? [String: Any] ?? [:]
            say(
                Table.render(
                    rows: [
                        ["what": "databases", "used": usage["databases"] ?? 0, "quota": quotas["databases"] ?? 0],
                        ["what": "groups", "used": usage["groups"] ?? 0, "quota": quotas["groups"] ?? 0],
                        [
                            "what": "storage bytes", "used": usage["storage_bytes"] ?? 0,
                            "quota": quotas["storage_bytes"] ?? 0,
                        ],
                    ], columns: ["what", "used", "quota"]))
        }
    }
}

/// `shoal location list`.
struct LocationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "location", abstract: "List locations.", subcommands: [List.self])

    /// `shoal location list`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List locations with their jurisdictions.")
        @OptionGroup var platform: PlatformOptions

        func run() async throws {
            let data = try await platform.run { try await $0.send("GET", "v1/locations") }
            if platform.json { return say(String(decoding: data, as: UTF8.self)) }
            let names =
                (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["locations"] as? [String: String]
            say(
                Table.render(
                    rows: (names ?? [:]).sorted { $0.key < $1.key }.map { ["code": $0.key, "name": $0.value] },
                    columns: ["code", "name"]))
        }
    }
}
