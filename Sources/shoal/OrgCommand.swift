import ArgumentParser
import Foundation
import ShoalModel

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
            let answer = try JSONValue(jsonData: data)
            let usage = answer["usage"]?.object ?? [:]
            let quotas = answer["quotas"]?.object ?? [:]
            let measures: [(what: String, key: String)] = [
                ("databases", "databases"), ("groups", "groups"), ("storage bytes", "storage_bytes"),
            ]
            let rows = measures.map { measure -> [String: JSONValue] in
                [
                    "what": .string(measure.what), "used": usage[measure.key] ?? .number(0),
                    "quota": quotas[measure.key] ?? .number(0),
                ]
            }
            say(Table.render(rows: rows, columns: ["what", "used", "quota"]))
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
            let names = try JSONValue(jsonData: data)["locations"]?.object ?? [:]
            say(
                Table.render(
                    rows: names.sorted { $0.key < $1.key }.map { ["code": .string($0.key), "name": $0.value] },
                    columns: ["code", "name"]))
        }
    }
}
