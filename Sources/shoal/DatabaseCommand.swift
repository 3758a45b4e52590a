import ArgumentParser
import Foundation
import ShoalClient
import ShoalModel
import ShoalTime
import Synchronization

/// `shoal db`: databases and their tokens.
struct DatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db", abstract: "Create, list, show and destroy databases; issue and revoke tokens.",
        subcommands: [
            Create.self, List.self, Show.self, Destroy.self, Tokens.self, CreateMany.self, Shell.self, Import.self,
            Export.self, Backups.self, Restore.self, Undelete.self, Deleted.self,
        ])

    static let columns = ["Name", "group", "primaryRegion", "regions", "Hostname", "DbId"]

    /// `shoal db create`.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a database in a group.")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The database's name: 1-64 of a-z, 0-9 and -.") var name: String
        @Option(help: "The group it lives in.") var group: String
        @Flag(help: "Succeed with the existing database if the name is taken in that group.") var ifNotExists = false
        @Option(help: "Copy this database of the organization (from its backup) instead of starting empty.")
        var fromDb: String?
        @Option(help: "With --from-db: copy it as of this time (RFC 3339, e.g. 2026-12-01T18:00:00Z; default: newest).")
        var timestamp: String?

        func validate() throws {
            if timestamp != nil && fromDb == nil { throw ValidationError("--timestamp needs --from-db") }
            if let timestamp, RFC3339.microseconds(timestamp) == nil {
                throw ValidationError(
                    "--timestamp \(timestamp) is not an RFC 3339 time; write it like 2026-12-01T18:00:00Z")
            }
            if fromDb != nil && ifNotExists { throw ValidationError("--if-not-exists cannot be used with --from-db") }
        }

        func run() async throws {
            let org = try platform.organization()
            let seed = fromDb.map { Platform.DatabaseCreation.Seed(type: "database", name: $0, timestamp: timestamp) }
            if let fromDb, !platform.json {
                note("copying \(fromDb)\(timestamp.map { " as of \($0)" } ?? "") into \(name) from its backup…")
            }
            let created = try await Waiting.show(seed == nil || platform.json ? nil : "restoring \(name)") {
                try await platform.run {
                    try await $0.createDatabase(
                        organization: org, name: name, group: group, ifNotExists: ifNotExists, seed: seed)
                }
            }
            if platform.json {
                let encoder = WireJSON.encoder([.sortedKeys])
                return say(String(decoding: try encoder.encode(["database": created]), as: UTF8.self))
            }
            say("created database \(created.name) (\(created.hostname), id \(created.id))")
        }
    }

    /// `shoal db list`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the organization's databases (all pages).")
        @OptionGroup var platform: PlatformOptions
        @Option(help: "Only this group's databases.") var group: String?

        func run() async throws {
            let org = try platform.organization()
            var rows: [[String: JSONValue]] = []
            var cursor: String?
            repeat {
                var query = ["limit": "1000"]
                if let group { query["group"] = group }
                if let cursor { query["cursor"] = cursor }
                let data = try await platform.run {
                    try await $0.send("GET", "v1/organizations/\(org)/databases", query: query)
                }
                let page = try JSONValue(jsonData: data)
                rows += page["databases"]?.array?.compactMap(\.object) ?? []
                cursor = page["next_cursor"]?.string
            } while cursor != nil
            if platform.json {
                return say(JSONValue.object(["databases": .array(rows.map(JSONValue.object))]).jsonText)
            }
            say(Table.render(rows: rows, columns: DatabaseCommand.columns))
        }
    }

    /// `shoal db show`.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a database and where it is served.")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The database's name.") var name: String

        func run() async throws {
            let org = try platform.organization()
            let (database, instances) = try await platform.run { client in
                (
                    try await client.send("GET", "v1/organizations/\(org)/databases/\(name)"),
                    try await client.send("GET", "v1/organizations/\(org)/databases/\(name)/instances")
                )
            }
            if platform.json {
                let merged = JSONValue.object([
                    "database": try JSONValue(jsonData: database)["database"] ?? .object([:]),
                    "instances": try JSONValue(jsonData: instances)["instances"] ?? .array([]),
                ])
                return say(merged.jsonText)
            }
            try platform.print(database, list: "database", columns: DatabaseCommand.columns)
            say("")
            try platform.print(instances, list: "instances", columns: ["type", "region", "url"])
        }
    }

    /// `shoal db destroy`.
    struct Destroy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a database and its data.")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The database's name.") var name: String
        @Flag(help: "Confirm: the database goes now; its backups are erased after the grace period.") var yes = false

        func run() async throws {
            guard yes else {
                throw ValidationError(
                    "deleting database \(name) deletes its data (its backups are kept for the grace period, for `shoal db undelete`); add --yes to confirm"
                )
            }
            let org = try platform.organization()
            let data = try await platform.run {
                try await $0.send("DELETE", "v1/organizations/\(org)/databases/\(name)")
            }
            if platform.json { return say(String(decoding: data, as: UTF8.self)) }
            say("deleted database \(name); to undo before its backups are erased: shoal db undelete \(name)")
        }
    }

    /// `shoal db tokens create|revoke`.
    struct Tokens: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue and revoke database tokens.", subcommands: [Create.self, Revoke.self])

        /// `shoal db tokens create`.
        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Issue a token for a database; prints it.")
            @OptionGroup var platform: PlatformOptions
            @Argument(help: "The database's name.") var name: String
            @Flag(help: "A read-only token.") var readOnly = false
            @Option(help: "How long it lives: never, or a number with s, m, h, d or w (7d).") var expiration = "never"
            @Option(help: "Where its holder runs (checked against the region rule).") var location: String?

            func run() async throws {
                let org = try platform.organization()
                let jwt = try await platform.run {
                    try await $0.createToken(
                        organization: org, database: name, expiration: expiration, readOnly: readOnly,
                        location: location)
                }
                say(platform.json ? #"{"jwt":"\#(jwt)"}"# : jwt)
            }
        }

        /// `shoal db tokens revoke`.
        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke one token by its id (jti).")
            @OptionGroup var platform: PlatformOptions
            @Argument(help: "The database's name.") var name: String
            @Argument(help: "The token's jti claim.") var jti: String

            func run() async throws {
                let org = try platform.organization()
                let data = try await platform.run {
                    try await $0.send(
                        "POST", "v1/organizations/\(org)/databases/\(name)/auth/tokens/revoke", body: ["jti": jti])
                }
                if platform.json { return say(String(decoding: data, as: UTF8.self)) }
                say("revoked \(jti)")
            }
        }
    }

    /// `shoal db create-many`.
    struct CreateMany: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create-many", abstract: "Create many databases at once, with progress and a summary.")
        @OptionGroup var platform: PlatformOptions
        @Option(help: "The group they live in.") var group: String
        @Option(help: "How many.") var count: Int
        @Option(help: "Names are PREFIX0001, PREFIX0002, ….") var prefix = "tenant-"
        @Option(help: "Requests in flight at once.") var concurrency = 8

        func validate() throws {
            guard (1...1_000_000).contains(count) else { throw ValidationError("--count must be 1...1000000") }
            guard (1...64).contains(concurrency) else { throw ValidationError("--concurrency must be 1...64") }
        }

        func run() async throws {
            let org = try platform.organization()
            let client = try platform.client()
            let width = String(count).count
            let names = (1...count).map {
                prefix + String(repeating: "0", count: width - String($0).count) + String($0)
            }
            let started = ContinuousClock.now
            var created = 0
            var existing = 0
            var failures: [String: Int] = [:]
            let progress = Progress(total: count, quiet: platform.json)
            try await withThrowingTaskGroup(of: String?.self) { tasks in
                var next = 0
                func launch() {
                    guard next < names.count else { return }
                    let name = names[next]
                    next += 1
                    tasks.addTask {
                        do {
                            _ = try await client.createDatabase(organization: org, name: name, group: group)
                            return nil
                        } catch let error as PlatformClient.APIError {
                            return error.code
                        }
                    }
                }
                for _ in 0..<concurrency { launch() }
                while let outcome = try await tasks.next() {
                    switch outcome {
                    case nil: created += 1
                    case "conflict": existing += 1
                    case let code?: failures[code, default: 0] += 1
                    }
                    progress.advance()
                    launch()
                }
            }
            progress.finish()
            let elapsed = ContinuousClock.now - started
            let seconds = elapsed.inSeconds
            let summary = JSONValue.object([
                "created": .number(Double(created)), "already_existed": .number(Double(existing)),
                "failed": .object(failures.mapValues { .number(Double($0)) }),
                "seconds": .number((seconds * 100).rounded() / 100),
                "per_second": .number((Double(created) / max(seconds, 0.001)).rounded()),
            ])
            if platform.json {
                say(summary.jsonText)
            } else {
                say(
                    "created \(created), already existed \(existing), failed \(failures.values.reduce(0, +))"
                        + (failures.isEmpty
                            ? "" : " (\(failures.map { "\($0.key): \($0.value)" }.joined(separator: ", ")))")
                        + String(format: " in %.2f s (%.0f/s)", seconds, Double(created) / max(seconds, 0.001)))
            }
            if !failures.isEmpty { throw ExitCode(1) }
        }
    }
}

/// `shoal db backups`.
struct Backups: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what can be restored of a database: the earliest and newest times, and the backup's lag.")
    @OptionGroup var platform: PlatformOptions
    @Argument(help: "The database's name.") var name: String

    func run() async throws {
        let org = try platform.organization()
        let data = try await platform.run {
            try await $0.send("GET", "v1/organizations/\(org)/databases/\(name)/backups")
        }
        if platform.json { return say(String(decoding: data, as: UTF8.self)) }
        let status = try JSONDecoder().decode(Platform.BackupStatus.self, from: data)
        say("database \(status.database)")
        say("  earliest  \(status.earliest ?? "none yet")")
        say("  latest    \(status.latest ?? "none yet")")
        say(
            "  lag       "
                + (status.pending ? String(format: "%.1f s (commits not yet in the store)", status.lagSeconds) : "0 s"))
        say("  objects   \(status.objects)")
    }
}

/// `shoal db restore`.
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore a database in place to a time; the state it replaces stays restorable (the undo point).")
    @OptionGroup var platform: PlatformOptions
    @Argument(help: "The database's name.") var name: String
    @Option(help: "The time to restore to (RFC 3339, e.g. 2026-12-01T18:00:00Z; default: the newest in its backup).")
    var timestamp: String?

    func validate() throws {
        if let timestamp, RFC3339.microseconds(timestamp) == nil {
            throw ValidationError(
                "--timestamp \(timestamp) is not an RFC 3339 time; write it like 2026-12-01T18:00:00Z")
        }
    }

    func run() async throws {
        let org = try platform.organization()
        if !platform.json { note("restoring \(name) to \(timestamp ?? "its newest backup")…") }
        let data = try await Waiting.show(platform.json ? nil : "restoring \(name)") {
            try await platform.run {
                try await $0.send(
                    "POST", "v1/organizations/\(org)/databases/\(name)/restore",
                    body: Platform.RestoreRequest(timestamp: timestamp), timeout: .seconds(900))
            }
        }
        if platform.json { return say(String(decoding: data, as: UTF8.self)) }
        let result = try JSONDecoder().decode(Platform.RestoreResult.self, from: data)
        say("restored \(result.database) to \(result.restoredTo) (\(result.bytes) bytes)")
        if let undo = result.undoTimestamp {
            say("to undo: shoal db restore \(result.database) --timestamp \(undo)")
        }
    }
}

/// `shoal db undelete`.
struct Undelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Create a deleted database again from its backups (until they are erased, 7 days after the delete by default)."
    )
    @OptionGroup var platform: PlatformOptions
    @Argument(help: "The deleted database's name.") var name: String
    @Option(help: "Which deletion of the name to undo (its id, as `shoal db deleted` shows it; default: the newest).")
    var id: String?

    func run() async throws {
        let org = try platform.organization()
        let data = try await Waiting.show(platform.json ? nil : "undeleting \(name)") {
            try await platform.run {
                try await $0.send(
                    "POST", "v1/organizations/\(org)/databases/\(name)/undelete",
                    body: Platform.UndeleteRequest(id: id), timeout: .seconds(900))
            }
        }
        if platform.json { return say(String(decoding: data, as: UTF8.self)) }
        let answer = try JSONDecoder().decode(Platform.UndeleteResult.self, from: data)
        say("undeleted database \(answer.database.name) as of \(answer.restoredTo) (new id \(answer.database.id))")
        say("tokens of the deleted database do not open it; issue new ones with: shoal db tokens create \(name)")
    }
}

/// `shoal db deleted`.
struct Deleted: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the deleted databases that can still be undeleted, and when their backups are erased.")
    @OptionGroup var platform: PlatformOptions

    func run() async throws {
        let org = try platform.organization()
        let data = try await platform.run { try await $0.send("GET", "v1/organizations/\(org)/deleted-databases") }
        if platform.json { return say(String(decoding: data, as: UTF8.self)) }
        let list = try JSONDecoder().decode([String: [Platform.DeletedDatabase]].self, from: data)["databases"] ?? []
        guard !list.isEmpty else { return say("no deleted database can be undeleted") }
        for deleted in list {
            say(
                "\(deleted.name)  group \(deleted.group)  deleted \(deleted.deletedAt)  erased \(deleted.eraseAt)  id \(deleted.id)"
            )
        }
    }
}

/// Shows, on a terminal's standard error, how long a call has been running (one request that
/// reports nothing until done: a restore).
enum Waiting {
    static func show<T: Sendable>(_ label: String?, _ body: @escaping @Sendable () async throws -> T) async throws -> T
    {
        guard let label, isatty(STDERR_FILENO) == 1 else { return try await body() }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                var seconds = 0
                while !Task.isCancelled {
                    FileHandle.standardError.write(Data("\r\(label)… \(seconds) s".utf8))
                    guard await CancellableSleep.sleep(for: .seconds(1)) else { break }
                    seconds += 1
                }
                FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
                return nil
            }
            group.addTask { try await body() }
            while let next = try await group.next() {
                if let value = next {
                    group.cancelAll()
                    return value
                }
            }
            throw CancellationError()
        }
    }
}

/// A progress bar on standard error (only on a terminal, unless forced off).
final class Progress: Sendable {
    private let total: Int
    private let done = Mutex(0)
    private let visible: Bool
    private let quiet: Bool

    init(total: Int, quiet: Bool) {
        self.total = total
        self.quiet = quiet
        visible = !quiet && isatty(STDERR_FILENO) == 1
    }

    func advance() {
        let count = done.withLock { value -> Int in
            value += 1
            return value
        }
        if visible {
            guard count == total || count % max(1, total / 200) == 0 else { return }
            let filled = count * 30 / max(total, 1)
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled)
            FileHandle.standardError.write(Data("\r[\(bar)] \(count)/\(total)".utf8))
        } else if !quiet, total >= 100, count % (total / 10) == 0 {
            // Not a terminal (a log): a line every tenth.
            FileHandle.standardError.write(Data("\(count)/\(total)\n".utf8))
        }
    }

    func finish() {
        if visible { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
