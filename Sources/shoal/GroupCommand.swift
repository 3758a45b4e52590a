import ArgumentParser
import Foundation

/// `shoal group`: groups of locations with their region rules.
struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group", abstract: "Create, list, show and destroy groups; add and remove locations.",
        subcommands: [Create.self, List.self, Show.self, Destroy.self, Locations.self, Tokens.self])

    static let columns = ["name", "primary", "locations", "region_rule", "delete_protection"]

    /// `shoal group create`.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a group with its primary location.")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The group's name.") var name: String
        @Option(help: "The primary location (see `shoal location list`).") var location: String
        @Option(help: "Allow only these jurisdictions (repeat: --jurisdiction eu).") var jurisdiction: [String] = []
        @Option(help: "Allow only these locations (repeat).") var allowLocation: [String] = []

        func run() async throws {
            struct Rule: Encodable {
                let jurisdictions: [String]?
                let locations: [String]?
            }
            struct Body: Encodable {
                let name: String
                let location: String
                let regionRule: Rule?

                enum CodingKeys: String, CodingKey {
                    case name, location
                    case regionRule = "region_rule"
                }
            }
            let rule =
                jurisdiction.isEmpty && allowLocation.isEmpty
                ? nil
                : Rule(
                    jurisdictions: jurisdiction.isEmpty ? nil : jurisdiction,
                    locations: allowLocation.isEmpty ? nil : allowLocation)
            let org = try platform.organization()
            let data = try await platform.run {
                try await $0.send(
                    "POST", "v1/organizations/\(org)/groups",
                    body: Body(name: name, location: location, regionRule: rule))
            }
            try platform.print(data, list: "group", columns: GroupCommand.columns)
        }
    }

    /// `shoal group list`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the organization's groups.")
        @OptionGroup var platform: PlatformOptions

        func run() async throws {
            let org = try platform.organization()
            let data = try await platform.run { try await $0.send("GET", "v1/organizations/\(org)/groups") }
            try platform.print(data, list: "groups", columns: GroupCommand.columns)
        }
    }

    /// `shoal group show`.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a group.")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The group's name.") var name: String

        func run() async throws {
            let org = try platform.organization()
            let data = try await platform.run { try await $0.send("GET", "v1/organizations/\(org)/groups/\(name)") }
            try platform.print(data, list: "group", columns: GroupCommand.columns)
        }
    }

    /// `shoal group destroy`.
    struct Destroy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a group and all its databases.")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The group's name.") var name: String
        @Flag(help: "Do not ask (required when not on a terminal).") var yes = false

        func run() async throws {
            guard yes else {
                throw ValidationError("deleting group \(name) deletes its databases; add --yes to confirm")
            }
            let org = try platform.organization()
            let data = try await platform.run { try await $0.send("DELETE", "v1/organizations/\(org)/groups/\(name)") }
            if platform.json { return say(String(decoding: data, as: UTF8.self)) }
            say("deleted group \(name)")
        }
    }

    /// `shoal group locations add|remove`.
    struct Locations: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add or remove a group's replica locations.", subcommands: [Add.self, Remove.self])

        /// `shoal group locations add`.
        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Add a location to a group.")
            @OptionGroup var platform: PlatformOptions
            @Argument(help: "The group's name.") var group: String
            @Argument(help: "The location code.") var location: String

            func run() async throws {
                let org = try platform.organization()
                let data = try await platform.run {
                    try await $0.send("POST", "v1/organizations/\(org)/groups/\(group)/locations/\(location)")
                }
                try platform.print(data, list: "group", columns: GroupCommand.columns)
            }
        }

        /// `shoal group locations remove`.
        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove a replica location from a group.")
            @OptionGroup var platform: PlatformOptions
            @Argument(help: "The group's name.") var group: String
            @Argument(help: "The location code.") var location: String

            func run() async throws {
                let org = try platform.organization()
                let data = try await platform.run {
                    try await $0.send("DELETE", "v1/organizations/\(org)/groups/\(group)/locations/\(location)")
                }
                try platform.print(data, list: "group", columns: GroupCommand.columns)
            }
        }
    }

    /// `shoal group tokens create|rotate`: tokens for every database of a group.
    struct Tokens: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue group tokens (valid for every database of the group) and invalidate them all.",
            subcommands: [Create.self, Rotate.self])

        /// `shoal group tokens create`.
        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Issue a group token; prints it.")
            @OptionGroup var platform: PlatformOptions
            @Argument(help: "The group's name.") var group: String
            @Flag(help: "A read-only token.") var readOnly = false
            @Option(help: "How long it lives: never, or a number with s, m, h, d or w (7d).") var expiration = "never"
            @Option(help: "Where its holder runs (checked against the region rule).") var location: String?

            func run() async throws {
                let org = try platform.organization()
                let jwt = try await platform.run {
                    try await $0.createGroupToken(
                        organization: org, group: group, expiration: expiration, readOnly: readOnly,
                        location: location)
                }
                say(platform.json ? #"{"jwt":"\#(jwt)"}"# : jwt)
            }
        }

        /// `shoal group tokens rotate`.
        struct Rotate: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Invalidate every token issued so far for the group and its databases.")
            @OptionGroup var platform: PlatformOptions
            @Argument(help: "The group's name.") var group: String

            func run() async throws {
                let org = try platform.organization()
                let data = try await platform.run {
                    try await $0.send("POST", "v1/organizations/\(org)/groups/\(group)/auth/rotate")
                }
                if platform.json { return say(String(decoding: data, as: UTF8.self)) }
                say("rotated: tokens of group \(group) issued before now are refused")
            }
        }
    }
}
