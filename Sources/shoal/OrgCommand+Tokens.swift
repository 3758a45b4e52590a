import ArgumentParser
import Foundation
import ShoalModel

extension OrgCommand {
    /// `shoal org tokens list|create|revoke`: the organization's API tokens.
    struct Tokens: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, create and revoke the organization's API tokens.",
            subcommands: [List.self, Create.self, Revoke.self])

        static let columns = ["id", "name", "created_at", "expires_at", "last_used_at", "can_create_tokens"]

        /// A listed token with its times in ISO 8601 (UTC), for people.
        static func readable(_ token: [String: JSONValue]) -> [String: JSONValue] {
            var row = token
            let formatter = ISO8601DateFormatter()
            for key in ["created_at", "expires_at", "last_used_at"] {
                if let milliseconds = token[key]?.double {
                    row[key] = .string(formatter.string(from: Date(timeIntervalSince1970: milliseconds / 1000)))
                }
            }
            if token["expires_at"] == nil || token["expires_at"] == .null { row["expires_at"] = .string("never") }
            return row
        }

        /// `shoal org tokens list`.
        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List the organization's API tokens (never their secrets).")
            @OptionGroup var platform: PlatformOptions

            func run() async throws {
                let org = try platform.organization()
                let data = try await platform.run { try await $0.send("GET", "v1/organizations/\(org)/api-tokens") }
                if platform.json { return say(String(decoding: data, as: UTF8.self)) }
                let tokens = try JSONValue(jsonData: data)["api_tokens"]?.array?.compactMap(\.object) ?? []
                say(Table.render(rows: tokens.map(Tokens.readable), columns: Tokens.columns))
            }
        }

        /// `shoal org tokens create`.
        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Create an API token (admin token, or one that may create tokens); prints its secret once.")
            @OptionGroup var platform: PlatformOptions
            @Argument(help: "The token's name: 1-64 of a-z, 0-9 and -.") var name: String
            @Option(
                help: """
                    How long it lives: never, or a number with s, m, h, d or w (90d). Default: never from the \
                    admin token, the creating token's own expiry otherwise.
                    """)
            var expiration: String?
            @Flag(help: "Let it create and revoke the organization's API tokens (admin token only).")
            var canCreateTokens = false

            func run() async throws {
                let org = try platform.organization()
                let body = Platform.APITokenCreation(
                    name: name, expiration: expiration, canCreateTokens: canCreateTokens ? true : nil)
                let data = try await platform.run {
                    try await $0.send("POST", "v1/organizations/\(org)/api-tokens", body: body)
                }
                if platform.json { return say(String(decoding: data, as: UTF8.self)) }
                say(try JSONValue(jsonData: data)["token"]?.string ?? "")
            }
        }

        /// `shoal org tokens revoke`.
        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Revoke an API token, and the tokens it created; they are refused at once.")
            @OptionGroup var platform: PlatformOptions
            @Argument(help: "The token's id (see `shoal org tokens list`).") var id: String

            func run() async throws {
                let org = try platform.organization()
                let data = try await platform.run {
                    try await $0.send("DELETE", "v1/organizations/\(org)/api-tokens/\(id)")
                }
                if platform.json { return say(String(decoding: data, as: UTF8.self)) }
                let revoked = try JSONValue(jsonData: data)["revoked"]?.array?.compactMap(\.string) ?? []
                say("revoked \(revoked.joined(separator: ", "))")
            }
        }
    }
}
