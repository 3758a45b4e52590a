import ArgumentParser
import Foundation
import ShoalClient
import ShoalHTTP
import ShoalModel

/// Where the Platform API is and who is calling: flags, then `SHOAL_API_URL` / `SHOAL_API_TOKEN` /
/// `SHOAL_ORG`, then the config file written by `shoal auth login`, then `.shoal/dev.json` of a
/// running `shoal dev` in the current directory.
struct PlatformOptions: ParsableArguments {
    @Option(help: "The control plane's URL (default: from the environment or `shoal auth login`).")
    var url: String?

    @Option(help: "The API token (default: SHOAL_API_TOKEN or `shoal auth login`).")
    var token: String?

    @Option(help: "The organization (default: SHOAL_ORG or `shoal auth login`).")
    var org: String?

    @Flag(help: "Print JSON instead of tables.")
    var json = false

    /// The saved login.
    struct Login: Codable {
        var url: String
        var token: String
        var org: String?
    }

    static var configPath: String {
        if let path = ProcessInfo.processInfo.environment["SHOAL_CONFIG"], !path.isEmpty { return path }
        let base =
            ProcessInfo.processInfo.environment["XDG_CONFIG_HOME"]
            ?? (NSHomeDirectory() + "/.config")
        return base + "/shoal/config.json"
    }

    static func savedLogin() -> Login? {
        if let data = FileManager.default.contents(atPath: configPath),
            let login = try? JSONDecoder().decode(Login.self, from: data)
        {
            return login
        }
        if let data = FileManager.default.contents(atPath: ".shoal/dev.json"),
            let dev = try? JSONDecoder().decode(DevCommand.DevFile.self, from: data)
        {
            return Login(url: dev.apiURL, token: dev.adminToken, org: dev.org)
        }
        return nil
    }

    /// A client for the resolved URL and token.
    func client() throws -> PlatformClient {
        let environment = ProcessInfo.processInfo.environment
        let saved = Self.savedLogin()
        guard let url = url ?? environment["SHOAL_API_URL"] ?? saved?.url, let base = URL(string: url) else {
            throw ValidationError("no control plane URL: run `shoal auth login --url URL --token TOKEN`, or pass --url")
        }
        guard let token = token ?? environment["SHOAL_API_TOKEN"] ?? saved?.token else {
            throw ValidationError("no API token: run `shoal auth login --url URL --token TOKEN`, or pass --token")
        }
        return PlatformClient(baseURL: base, token: token)
    }

    /// The organization to act on.
    func organization() throws -> String {
        guard let org = org ?? ProcessInfo.processInfo.environment["SHOAL_ORG"] ?? Self.savedLogin()?.org else {
            throw ValidationError("no organization: pass --org, set SHOAL_ORG, or `shoal auth login --org`")
        }
        return org
    }

    /// Runs a Platform call; an API refusal exits with status 1 and its code and message.
    func run<T>(_ body: (PlatformClient) async throws -> T) async throws -> T {
        do {
            return try await body(try client())
        } catch let error as PlatformClient.APIError {
            FileHandle.standardError.write(Data("error: \(error.code): \(error.message)\n".utf8))
            throw ExitCode(error.status == 404 ? 3 : 1)
        } catch let error as HTTPCallError {
            FileHandle.standardError.write(Data("error: \(error); is the control plane running?\n".utf8))
            throw ExitCode(4)
        }
    }

    /// Prints a JSON answer as JSON, or as a table of `columns` from the array under `key`.
    func print(_ data: Data, list key: String? = nil, columns: [String]) throws {
        if json {
            say(String(decoding: data, as: UTF8.self))
            return
        }
        let object = try JSONValue(jsonData: data)
        var rows: [[String: JSONValue]] = []
        if let key, let list = object[key]?.array {
            rows = list.compactMap(\.object)
        } else if let key, let single = object[key]?.object {
            rows = [single]
        } else if let dictionary = object.object {
            rows = [dictionary]
        }
        say(Table.render(rows: rows, columns: columns))
    }
}

/// Plain-text tables for people.
enum Table {
    /// A cell: `-` for nothing, `yes`/`no` for booleans, lists joined by commas, objects as
    /// `key=value` pairs.
    static func text(_ value: JSONValue?) -> String {
        switch value {
        case nil, .null: "-"
        case .array(let list): list.map { text($0) }.joined(separator: ",")
        case .object(let members): members.keys.sorted().map { "\($0)=\(text(members[$0]))" }.joined(separator: " ")
        case .bool(let flag): flag ? "yes" : "no"
        case .number, .string: value?.displayText ?? "-"
        }
    }

    /// A table of text cells.
    static func render(rows: [[String: String]], columns: [String]) -> String {
        render(rows: rows.map { $0.mapValues(JSONValue.string) }, columns: columns)
    }

    static func render(rows: [[String: JSONValue]], columns: [String]) -> String {
        let cells = rows.map { row in columns.map { text(row[$0]) } }
        let widths = columns.indices.map { index in
            max(columns[index].count, cells.map { $0[index].count }.max() ?? 0)
        }
        func line(_ values: [String]) -> String {
            zip(values, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        return ([line(columns.map { $0.uppercased() })] + cells.map(line)).joined(separator: "\n")
    }
}
