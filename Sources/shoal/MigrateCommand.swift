import ArgumentParser
import Foundation
import ShoalClient
import ShoalModel

#if canImport(Glibc)
    import Glibc
#endif

/// `shoal migrate`: a group's tenant schema — its migrations, and their rollouts over the group's databases.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Add migrations to a group's tenant schema and roll them out over the group's databases.",
        subcommands: [
            New.self, List.self, Apply.self, Status.self, Retry.self, Skip.self, Pause.self, Resume.self,
        ])

    /// The Platform API path of a group's migrations.
    static func path(_ org: String, _ group: String) -> String {
        "v1/organizations/\(org)/groups/\(group)/migrations"
    }

    /// `{"migration": …}`.
    struct MigrationAnswer: Decodable {
        let migration: Platform.Migration
    }

    /// `{"rollout": …}`.
    struct RolloutAnswer: Decodable {
        let rollout: Platform.Rollout
    }

    /// Decodes an answer of the Platform API; one this CLI does not understand ends it with status 1.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            FileHandle.standardError.write(
                Data(
                    ("error: the control plane's answer is not what this shoal expects; use a shoal of the "
                        + "control plane's version\n").utf8))
            throw ExitCode(1)
        }
    }

    // MARK: - Commands

    /// `shoal migrate new`.
    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a migration as the group's next version (refused when its SQL fails a dry run).")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The group's name.") var group: String
        @Argument(help: "The migration's name, unique in the group (like 0001_users).") var name: String
        @Option(help: "The file holding its SQL (- for standard input).") var file: String

        func run() async throws {
            let sql = try readSQL()
            let org = try platform.organization()
            let data = try await platform.run {
                try await $0.send(
                    "POST", MigrateCommand.path(org, group), body: Platform.MigrationCreation(name: name, sql: sql))
            }
            if platform.json { return say(String(decoding: data, as: UTF8.self)) }
            let migration = try MigrateCommand.decode(MigrationAnswer.self, from: data).migration
            say("version \(migration.version): \(migration.name), checksum \(migration.checksum)")
            say("roll it out with `shoal migrate apply \(group)`")
        }

        /// The SQL of `--file`, or of standard input for `-`.
        func readSQL() throws -> String {
            let data: Data
            if file == "-" {
                data = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                guard let contents = FileManager.default.contents(atPath: file) else {
                    throw ValidationError(
                        "cannot read \(file); pass the migration's SQL file with --file, or --file - for standard "
                            + "input")
                }
                data = contents
            }
            guard let sql = String(data: data, encoding: .utf8) else {
                throw ValidationError("\(file == "-" ? "standard input" : file) is not UTF-8 text")
            }
            guard !sql.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw ValidationError("\(file == "-" ? "standard input" : file) holds no SQL")
            }
            return sql
        }
    }

    /// `shoal migrate list`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the group's migrations and how many of its databases have each.")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The group's name.") var group: String
        @Flag(help: "Include each migration's SQL.") var sql = false

        func run() async throws {
            let org = try platform.organization()
            let data = try await platform.run {
                try await $0.send("GET", MigrateCommand.path(org, group), query: sql ? ["sql": "true"] : [:])
            }
            if platform.json { return say(String(decoding: data, as: UTF8.self)) }
            let list = try MigrateCommand.decode(Platform.MigrationList.self, from: data)
            let rows: [[String: JSONValue]] = list.migrations.map { migration in
                [
                    "version": .string("\(migration.version)"), "name": .string(migration.name),
                    "checksum": .string(String(migration.checksum.prefix(12))),
                    "applied": .string("\(migration.applied)"), "pending": .string("\(migration.pending)"),
                    "failed": .string("\(migration.failed)"),
                ]
            }
            say(
                Table.render(
                    rows: rows, columns: ["version", "name", "checksum", "applied", "pending", "failed"]))
            say("schema_version \(list.schemaVersion), databases \(list.databases), drifted \(list.drifted)")
            if list.migrations.isEmpty {
                say("no migrations yet: add one with `shoal migrate new \(group) NAME --file F.sql`")
            }
            if let rollout = list.rollout {
                say(
                    "latest rollout \(rollout.id): \(rollout.state), to version \(rollout.targetVersion), "
                        + "\(rollout.done) of \(rollout.total) done (`shoal migrate status \(group)`)")
            }
            if sql {
                for migration in list.migrations {
                    say("\n-- version \(migration.version): \(migration.name)\n\(migration.sql ?? "")")
                }
            }
        }
    }

    /// `shoal migrate apply`.
    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Roll the group's migrations out over its databases, and follow the rollout.",
            discussion: """
                Follows the rollout until it finishes or waits for you (the canary's approval, a pause); \
                the exit status is 1 when a database failed. Interrupting stops following, not the rollout.
                """)
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The group's name.") var group: String
        @Option(help: "Migrate these databases first: a count (10) or a percentage (5%).") var canary: String?
        @Option(help: "After the canary, go on by itself after this many seconds (default: wait for `resume`).")
        var soak: Int64?
        @Option(help: "Databases migrated at once on each node (1 to 64; 4 by default).") var concurrency: Int64?
        @Flag(help: "Keep going past failed databases and collect them (by default the rollout stops at one).")
        var continueOnError = false
        @Option(help: "The version to bring the databases to (default: the latest).") var targetVersion: Int64?
        @Flag(help: "Start the rollout and return at once.") var noWait = false

        func validate() throws {
            if let canary {
                let digits = canary.hasSuffix("%") ? String(canary.dropLast()) : canary
                guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else {
                    throw ValidationError("--canary takes a count (10) or a percentage (5%), not \(canary)")
                }
            }
            if let soak, soak < 0 { throw ValidationError("--soak takes seconds, 0 or more") }
            if let concurrency, !(1...64).contains(concurrency) {
                throw ValidationError("--concurrency is from 1 to 64 databases at once per node")
            }
            if let targetVersion, targetVersion < 1 {
                throw ValidationError("--target-version is a version from 1 (see `shoal migrate list \(group)`)")
            }
        }

        func run() async throws {
            let org = try platform.organization()
            let options = Platform.RolloutCreation(
                canary: canary, soakSeconds: soak, concurrency: concurrency,
                continueOnError: continueOnError ? true : nil, targetVersion: targetVersion)
            let data = try await platform.run {
                try await $0.send("POST", MigrateCommand.path(org, group) + "/apply", body: options)
            }
            let rollout = try MigrateCommand.decode(RolloutAnswer.self, from: data).rollout
            guard !noWait else {
                return try MigrateCommand.report(rollout, data: data, group: group, platform: platform, strict: false)
            }
            let (last, lastData) = try await MigrateCommand.follow(
                rollout, data: data, group: group, platform: platform)
            try MigrateCommand.report(last, data: lastData, group: group, platform: platform, strict: true)
        }
    }

    /// `shoal migrate status`.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the group's latest rollout.")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The group's name.") var group: String
        @Flag(help: "Follow it until it finishes or waits for you; exit status 1 when a database failed.")
        var watch = false

        func run() async throws {
            let org = try platform.organization()
            let data = try await platform.run { try await $0.send("GET", MigrateCommand.path(org, group) + "/rollout") }
            let rollout = try MigrateCommand.decode(RolloutAnswer.self, from: data).rollout
            guard watch else {
                return try MigrateCommand.report(rollout, data: data, group: group, platform: platform, strict: false)
            }
            let (last, lastData) = try await MigrateCommand.follow(
                rollout, data: data, group: group, platform: platform)
            try MigrateCommand.report(last, data: lastData, group: group, platform: platform, strict: true)
        }
    }

    /// `shoal migrate retry`.
    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Try the rollout's failed databases again (and go on after a stop).")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The group's name.") var group: String
        @Flag(help: "Follow the rollout afterwards; exit status 1 when a database failed.") var watch = false

        func run() async throws {
            try await MigrateCommand.control("retry", group: group, watch: watch, platform: platform)
        }
    }

    /// `shoal migrate skip`.
    struct Skip: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Leave the rollout's failed databases behind (and go on after a stop).")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The group's name.") var group: String
        @Flag(help: "Follow the rollout afterwards; exit status 1 when a database failed.") var watch = false

        func run() async throws {
            try await MigrateCommand.control("skip", group: group, watch: watch, platform: platform)
        }
    }

    /// `shoal migrate pause`.
    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pause the rollout: no more databases start until `shoal migrate resume`.")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The group's name.") var group: String

        func run() async throws {
            try await MigrateCommand.control("pause", group: group, watch: false, platform: platform)
        }
    }

    /// `shoal migrate resume`.
    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Go on after a pause, or past the canary (approval or soak) to the other databases.")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The group's name.") var group: String
        @Flag(help: "Follow the rollout afterwards; exit status 1 when a database failed.") var watch = false

        func run() async throws {
            try await MigrateCommand.control("resume", group: group, watch: watch, platform: platform)
        }
    }

    // MARK: - Rollouts

    /// Sends `action` (pause, resume, retry, skip) to the group's rollout and reports where it is then,
    /// following it first with `watch`.
    static func control(_ action: String, group: String, watch: Bool, platform: PlatformOptions) async throws {
        let org = try platform.organization()
        let data = try await platform.run { try await $0.send("POST", path(org, group) + "/rollout/\(action)") }
        let rollout = try decode(RolloutAnswer.self, from: data).rollout
        guard watch else { return try report(rollout, data: data, group: group, platform: platform, strict: false) }
        let (last, lastData) = try await follow(rollout, data: data, group: group, platform: platform)
        try report(last, data: lastData, group: group, platform: platform, strict: true)
    }

    /// Whether a rollout needs no more watching: it finished, or waits for a person (approval, paused).
    static func settled(_ rollout: Platform.Rollout) -> Bool {
        rollout.isFinished || rollout.state == "approval" || rollout.state == "paused"
    }

    /// Polls the group's rollout every 500 ms from `first` (answered as `data`) until it is settled,
    /// showing its progress unless `--json`; returns the last rollout and its answer as it came.
    static func follow(
        _ first: Platform.Rollout, data: Data, group: String, platform: PlatformOptions
    ) async throws -> (Platform.Rollout, Data) {
        let org = try platform.organization()
        var rollout = first
        var answer = data
        var progress: RolloutProgress? = platform.json ? nil : RolloutProgress(from: first)
        do {
            while !settled(rollout) {
                progress?.show(rollout)
                try await Task.sleep(for: .milliseconds(500))
                answer = try await platform.run { try await $0.send("GET", path(org, group) + "/rollout") }
                rollout = try decode(RolloutAnswer.self, from: answer).rollout
            }
        } catch {
            progress?.finish()
            throw error
        }
        progress?.finish()
        return (rollout, answer)
    }

    /// Prints a rollout (its answer as it came with `--json`); when `strict`, exits with status 1 if a
    /// database failed or the rollout stopped.
    static func report(
        _ rollout: Platform.Rollout, data: Data, group: String, platform: PlatformOptions, strict: Bool
    ) throws {
        say(platform.json ? String(decoding: data, as: UTF8.self) : summary(rollout, group: group))
        if strict, rollout.failed > 0 || rollout.state == "stopped" { throw ExitCode(1) }
    }

    /// A rollout for people: its state, its counts, its failed databases and what to do next.
    static func summary(_ rollout: Platform.Rollout, group: String) -> String {
        var lines = [
            "rollout \(rollout.id) of group \(group): \(rollout.state), to version \(rollout.targetVersion)",
            "\(rollout.done) done, \(rollout.pending) pending, \(rollout.failed) failed, \(rollout.skipped) skipped "
                + "of \(rollout.total)",
        ]
        if !rollout.failures.isEmpty {
            lines.append("failed databases:")
            let width = rollout.failures.map(\.database.count).max() ?? 0
            for failure in rollout.failures {
                let attempts = failure.attempts > 1 ? " (after \(failure.attempts) attempts)" : ""
                lines.append(
                    "  " + failure.database.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                        + failure.error + attempts)
            }
            let unlisted = rollout.failed - Int64(rollout.failures.count)
            if unlisted > 0 { lines.append("  … and \(unlisted) more") }
        }
        if let next = nextStep(rollout, group: group) { lines.append(next) }
        return lines.joined(separator: "\n")
    }

    /// What to do about a rollout in its state, if anything.
    static func nextStep(_ rollout: Platform.Rollout, group: String) -> String? {
        switch rollout.state {
        case "approval":
            return "the canary is done: check it, then `shoal migrate resume \(group)` migrates the other databases"
        case "paused":
            return "paused: `shoal migrate resume \(group)` goes on"
        case "stopped":
            return "stopped at a failed database: fix the cause and `shoal migrate retry \(group)`, "
                + "or `shoal migrate skip \(group)` to leave the failed databases behind"
        case "soaking":
            return "soaking after the canary; it goes on by itself (or now: `shoal migrate resume \(group)`)"
        case "canary", "running":
            return "under way: `shoal migrate status \(group) --watch` follows it"
        case "done" where rollout.failed > 0:
            return "fix the cause and `shoal migrate retry \(group)`, or `shoal migrate skip \(group)`"
        default:
            return nil
        }
    }
}

/// What following a rollout shows while it polls: on a terminal, one line on standard output
/// rewritten in place (a bar, the databases processed, the rate since the watch began and an ETA);
/// elsewhere a plain line on standard error at most every 2 s.
struct RolloutProgress {
    private let onTerminal = isatty(STDOUT_FILENO) != 0
    private let started = ContinuousClock.now
    private let processedAtStart: Int64
    private var lastPlain: ContinuousClock.Instant?
    private var drawn = false

    /// Progress measured from `rollout` as it is now.
    init(from rollout: Platform.Rollout) {
        processedAtStart = Self.processed(rollout)
    }

    /// Databases the rollout is through with: done, failed or skipped.
    static func processed(_ rollout: Platform.Rollout) -> Int64 {
        rollout.done + rollout.failed + rollout.skipped
    }

    /// Shows where `rollout` is.
    mutating func show(_ rollout: Platform.Rollout) {
        let now = ContinuousClock.now
        let processed = Self.processed(rollout)
        let elapsed = started.duration(to: now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? Double(max(0, processed - processedAtStart)) / seconds : 0
        // In the canary phase only the canary databases are next.
        let remaining = rollout.state == "canary" ? max(0, rollout.canaryCount - processed) : rollout.pending
        let eta = rate > 0 ? Self.duration(Double(remaining) / rate) : "-"
        let speed = String(format: "%.1f/s", rate)
        if onTerminal {
            let width: Int64 = 24
            let filled = rollout.total > 0 ? Int(min(processed, rollout.total) * width / rollout.total) : Int(width)
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: Int(width) - filled)
            var line = "\r[\(bar)] \(processed)/\(rollout.total) \(rollout.state)  \(speed)  ETA \(eta)"
            if rollout.failed > 0 { line += "  \(rollout.failed) failed" }
            FileHandle.standardOutput.write(Data((line + "\u{1B}[K").utf8))
            drawn = true
        } else if lastPlain.map({ $0.duration(to: now) >= .seconds(2) }) ?? true {
            lastPlain = now
            FileHandle.standardError.write(
                Data(
                    ("rollout \(rollout.state): \(processed)/\(rollout.total) databases (\(rollout.failed) failed, "
                        + "\(rollout.skipped) skipped), \(speed), ETA \(eta)\n").utf8))
        }
    }

    /// Clears the live line, if one was drawn, so what follows starts on a clean line.
    mutating func finish() {
        if drawn { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)) }
        drawn = false
    }

    /// `42s`, `3m04s` or `1h02m`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "-" }
        let total = Int(min(seconds, 360_000_000).rounded(.up))
        if total < 60 { return "\(total)s" }
        if total < 3600 { return "\(total / 60)m" + String(format: "%02ds", total % 60) }
        return "\(total / 3600)h" + String(format: "%02dm", total / 60 % 60)
    }
}
