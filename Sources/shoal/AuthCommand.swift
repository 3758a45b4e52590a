import ArgumentParser
import Foundation
import ShoalModel

/// `shoal auth`: where the Platform API is and which token to use.
struct AuthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auth", abstract: "Save or show the control plane URL and API token the CLI uses.",
        subcommands: [Login.self, Show.self])

    /// `shoal auth login`.
    struct Login: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a URL and token against the control plane and save them (mode 0600).")

        @Option(help: "The control plane's URL, e.g. http://127.0.0.1:8090.")
        var url: String

        @Option(help: "An API token (the admin token or an organization's).")
        var token: String

        @Option(help: "The organization commands act on by default.")
        var org: String?

        func run() async throws {
            let options = try PlatformOptions.parse(["--url", url, "--token", token])
            _ = try await options.run { try await $0.send("GET", "v1/organizations") }
            let path = PlatformOptions.configPath
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let encoder = WireJSON.encoder([.prettyPrinted, .sortedKeys])
            let data = try encoder.encode(PlatformOptions.Login(url: url, token: token, org: org))
            guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600])
            else { throw ValidationError("cannot write \(path)") }
            say("logged in to \(url); saved in \(path)")
        }
    }

    /// `shoal auth show`.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show where the CLI's settings come from.")

        func run() async throws {
            guard let login = PlatformOptions.savedLogin() else {
                say("not logged in: run `shoal auth login --url URL --token TOKEN`")
                throw ExitCode(1)
            }
            say("url   \(login.url)\ntoken \(login.token.prefix(12))…\norg   \(login.org ?? "-")")
        }
    }
}
