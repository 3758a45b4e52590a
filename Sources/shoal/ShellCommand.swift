import ArgumentParser
import Foundation
import ShoalClient
import ShoalSQLite

#if canImport(Glibc)
    import Glibc
#endif

extension DatabaseCommand {
    /// `shoal db shell`: SQL against a database, interactively, from an argument or from stdin.
    struct Shell: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Run SQL on a database: interactive (history, .tables, .schema, .dump, .mode), or SQL as an argument or on stdin.",
            discussion: """
                Remote by default (every statement runs on the database's node). With --replica, the
                shell keeps an embedded replica in a temporary directory: reads run locally, writes
                go to the primary and are read back at once.
                """)
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The database's name.") var name: String
        @Argument(help: "SQL to run instead of reading it (statements separated by ;).") var sql: String?
        @Flag(help: "Read through an embedded replica (local reads, writes forwarded).") var replica = false
        @Option(help: "Use the instance in this location instead of the primary.") var location: String?
        @Option(help: "Output: table, list, csv, json or line (default: table on a terminal, list otherwise).")
        var mode: OutputMode?

        func run() async throws {
            let org = try platform.organization()
            let (url, token) = try await platform.run { client -> (URL, String) in
                let instances = try await client.instances(organization: org, database: name)
                let chosen = location.map { place in instances.first { $0.region == place } } ?? instances.first
                guard let chosen, let url = URL(string: chosen.url) else {
                    throw ValidationError(
                        location.map { "database \(name) has no instance in \($0); see shoal db show \(name)" }
                            ?? "database \(name) has no instance yet; check that a node of its group's location is up")
                }
                let token = try await client.createToken(
                    organization: org, database: name, expiration: "1d", location: location)
                return (url, token)
            }
            let interactive = sql == nil && isatty(STDIN_FILENO) != 0
            let backend: SQLBackend
            var directory: String?
            if replica {
                let path = FileManager.default.temporaryDirectory
                    .appendingPathComponent("shoal-shell-\(UUID().uuidString)").path
                directory = path
                let database = try Database(directory: path, syncURL: url, authToken: token)
                try await database.sync()
                backend = .replica(database)
            } else {
                backend = .remote(RemoteDatabase(url: url, token: token))
            }
            let shell = SQLShell(
                backend: backend,
                mode: mode ?? (isatty(STDOUT_FILENO) != 0 ? .table : .list))
            var failed = false
            if let sql {
                failed = !(await shell.run(script: sql, stopOnError: true))
            } else if interactive {
                say(
                    "Connected to \(name) at \(url.absoluteString)\(replica ? " (embedded replica)" : ""). .help for help."
                )
                await shell.interactive(
                    editor: LineEditor(
                        historyFile: ProcessInfo.processInfo.environment["HOME"].map { $0 + "/.shoal_history" }))
            } else {
                let input = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                failed = !(await shell.run(script: input, stopOnError: true))
            }
            await shell.close()
            if let directory { try? FileManager.default.removeItem(atPath: directory) }
            if failed { throw ExitCode(1) }
        }
    }
}

/// How the shell prints results.
enum OutputMode: String, ExpressibleByArgument, CaseIterable {
    case table, list, csv, json, line
}

/// Where the shell's SQL runs.
enum SQLBackend {
    case remote(RemoteDatabase)
    case replica(Database)
}

/// The columns and rows of one statement.
struct SQLResult {
    var columns: [String]
    var rows: [[SQLiteValue]]
    var changes: Int
}

/// The shell: statements, dot commands, output modes.
final class SQLShell {
    let backend: SQLBackend
    var mode: OutputMode
    /// Whether an explicit transaction is open (then an embedded replica's reads go remote too).
    private var inTransaction = false

    init(backend: SQLBackend, mode: OutputMode) {
        self.backend = backend
        self.mode = mode
    }

    func close() async {
        switch backend {
        case .remote(let remote): await remote.close()
        case .replica(let database): await database.close()
        }
    }

    // MARK: Input

    /// Runs a script: dot commands on their own lines, SQL up to each complete statement.
    /// Returns false if something failed (and, with `stopOnError`, stops there).
    func run(script: String, stopOnError: Bool) async -> Bool {
        var pending = ""
        var ok = true
        for line in script.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if pending.isEmpty, trimmed.hasPrefix(".") {
                if !(await dot(trimmed)) {
                    ok = false
                    if stopOnError { return false }
                }
                continue
            }
            pending += line + "\n"
            if SQLText.isComplete(pending) {
                if !(await execute(pending)) {
                    ok = false
                    if stopOnError { return false }
                }
                pending = ""
            }
        }
        if !pending.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            if !(await execute(pending + ";")) { ok = false }
        }
        return ok
    }

    /// The interactive loop, until `.quit` or end of input.
    func interactive(editor: LineEditor) async {
        var pending = ""
        while let line = editor.readLine(prompt: pending.isEmpty ? "shoal> " : "  ...> ") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if pending.isEmpty {
                if trimmed.isEmpty { continue }
                if trimmed == ".quit" || trimmed == ".exit" { return }
                if trimmed.hasPrefix(".") {
                    editor.remember(trimmed)
                    _ = await dot(trimmed)
                    continue
                }
            }
            pending += line + "\n"
            if SQLText.isComplete(pending) {
                editor.remember(pending)
                _ = await execute(pending)
                pending = ""
            }
        }
    }

    // MARK: Statements

    /// Runs every statement in `sql`, printing results; false on the first error.
    func execute(_ sql: String) async -> Bool {
        for statement in SQLText.statements(sql) {
            do {
                print(try await run(statement))
            } catch {
                FileHandle.standardError.write(Data("error: \(Self.message(error))\n".utf8))
                return false
            }
        }
        return true
    }

    static func message(_ error: any Error) -> String {
        if let error = error as? ClientError { return error.message }
        if let error = error as? SQLiteError { return error.message }
        return "\(error)"
    }

    /// One statement: on an embedded replica, a read outside a transaction runs locally.
    func run(_ statement: String) async throws -> SQLResult {
        let word = statement.trimmingWhitespaceAndComments.prefix { $0.isLetter }.uppercased()
        defer {
            if word == "BEGIN" || word == "SAVEPOINT" { inTransaction = true }
            if word == "COMMIT" || word == "END" { inTransaction = false }
            if word == "ROLLBACK", !statement.uppercased().contains(" TO ") { inTransaction = false }
        }
        switch backend {
        case .remote(let remote):
            let result = try await remote.execute(statement)
            return SQLResult(columns: result.columns, rows: result.rows, changes: result.affectedRowCount)
        case .replica(let database):
            if !inTransaction, !["BEGIN", "SAVEPOINT", "COMMIT", "END", "ROLLBACK", "RELEASE"].contains(word),
                let local = try? Self.readLocally(statement, in: database)
            {
                return local
            }
            let result = try await database.execute(statement)
            return SQLResult(columns: result.columns, rows: result.rows, changes: result.affectedRowCount)
        }
    }

    /// Runs a read-only statement on the replica; nil when it writes or does not prepare there.
    static func readLocally(_ sql: String, in database: Database) throws -> SQLResult? {
        try database.read { connection in
            guard let statement = try connection.prepareFirst(sql), statement.isReadOnly else { return nil }
            defer { statement.finalize() }
            var rows: [[SQLiteValue]] = []
            while try statement.step() {
                rows.append((0..<statement.columnCount).map { statement.value(at: $0) })
            }
            return SQLResult(columns: statement.columnNames, rows: rows, changes: 0)
        }
    }

    /// A query's rows (for dot commands).
    func rows(_ sql: String) async throws -> [[SQLiteValue]] {
        try await run(sql).rows
    }

    // MARK: Dot commands

    static let help = """
        .tables               list tables
        .schema [TABLE]       show CREATE statements
        .dump                 the database as SQL
        .mode MODE            table, list, csv, json or line
        .help                 this help
        .quit                 leave
        """

    func dot(_ command: String) async -> Bool {
        let words = command.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        do {
            switch words.first {
            case ".tables":
                let names = try await rows(
                    "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
                say(names.map { Self.text($0[0]) }.joined(separator: "  "))
            case ".schema":
                var sql = "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
                if words.count > 1 { sql += " AND tbl_name = \(Self.literal(.text(words[1])))" }
                for row in try await rows(sql + " ORDER BY rowid") { say(Self.text(row[0]) + ";") }
            case ".dump":
                for line in try await dump() { say(line) }
            case ".mode":
                guard words.count == 2, let mode = OutputMode(rawValue: words[1]) else {
                    throw ValidationError(
                        "usage: .mode MODE, with MODE one of \(OutputMode.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                self.mode = mode
            case ".help":
                say(Self.help)
            case ".quit", ".exit":
                break
            default:
                throw ValidationError("unknown command \(words.first ?? command); .help lists them")
            }
            return true
        } catch {
            FileHandle.standardError.write(Data("error: \(Self.message(error))\n".utf8))
            return false
        }
    }

    /// The database as SQL that recreates it: tables with their rows, then indexes, triggers, views.
    func dump() async throws -> [String] {
        var lines = ["PRAGMA foreign_keys=OFF;", "BEGIN TRANSACTION;"]
        let objects = try await rows(
            "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
        )
        for object in objects where Self.text(object[0]) == "table" {
            let name = Self.text(object[1])
            lines.append(Self.text(object[2]) + ";")
            let quoted = "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            for row in try await rows("SELECT * FROM \(quoted)") {
                lines.append("INSERT INTO \(quoted) VALUES(\(row.map(Self.literal).joined(separator: ",")));")
            }
        }
        for object in objects where Self.text(object[0]) != "table" {
            lines.append(Self.text(object[2]) + ";")
        }
        lines.append("COMMIT;")
        return lines
    }

    // MARK: Output

    func print(_ result: SQLResult) {
        guard !result.columns.isEmpty else { return }
        switch mode {
        case .list:
            for row in result.rows { say(row.map { Self.text($0, null: "") }.joined(separator: "|")) }
        case .csv:
            say(result.columns.map(Self.csv).joined(separator: ","))
            for row in result.rows { say(row.map { Self.csv(Self.text($0, null: "")) }.joined(separator: ",")) }
        case .json:
            let objects = result.rows.map { row in
                Dictionary(uniqueKeysWithValues: zip(result.columns, row.map(Self.json)))
            }
            let data =
                (try? JSONSerialization.data(withJSONObject: objects, options: [.sortedKeys, .withoutEscapingSlashes]))
                ?? Data("[]".utf8)
            say(String(decoding: data, as: UTF8.self))
        case .line:
            let width = result.columns.map(\.count).max() ?? 0
            for (index, row) in result.rows.enumerated() {
                if index > 0 { say("") }
                for (column, value) in zip(result.columns, row) {
                    say(String(repeating: " ", count: width - column.count) + column + " = " + Self.text(value))
                }
            }
        case .table:
            func cell(_ text: String) -> String { text.replacingOccurrences(of: "\n", with: "\\n") }
            let cells = result.rows.map { $0.map { cell(Self.text($0)) } }
            let columns = result.columns.map(cell)
            var widths = columns.map(\.count)
            for row in cells {
                for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
            }
            func line(_ values: [String]) -> String {
                "│ "
                    + zip(values, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }.joined(
                        separator: " │ ")
                    + " │"
            }
            func rule(_ left: String, _ middle: String, _ right: String) -> String {
                left + widths.map { String(repeating: "─", count: $0 + 2) }.joined(separator: middle) + right
            }
            say(rule("┌", "┬", "┐"))
            say(line(columns))
            say(rule("├", "┼", "┤"))
            for row in cells { say(line(row)) }
            say(rule("└", "┴", "┘"))
        }
    }

    static func text(_ value: SQLiteValue, null: String = "NULL") -> String {
        switch value {
        case .null: null
        case .integer(let integer): String(integer)
        case .real(let double): String(double)
        case .text(let text): text
        case .blob(let bytes): "X'" + bytes.map { String(format: "%02X", $0) }.joined() + "'"
        }
    }

    static func csv(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func json(_ value: SQLiteValue) -> Any {
        switch value {
        case .null: NSNull()
        case .integer(let integer): integer
        case .real(let double): double.isFinite ? double : String(double)
        case .text(let text): text
        case .blob(let bytes): Data(bytes).base64EncodedString()
        }
    }

    /// A SQL literal that reads back as the same value.
    static func literal(_ value: SQLiteValue) -> String {
        switch value {
        case .null: "NULL"
        case .integer(let integer): String(integer)
        case .real(let double):
            double.isNaN ? "NULL" : double.isInfinite ? (double > 0 ? "1e999" : "-1e999") : "\(double)"
        case .text(let text): "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
        case .blob(let bytes): "X'" + bytes.map { String(format: "%02X", $0) }.joined() + "'"
        }
    }
}

extension String {
    /// The text past leading whitespace and SQL comments.
    var trimmingWhitespaceAndComments: Substring {
        var rest = Substring(self)
        while true {
            rest = rest.drop(while: { $0.isWhitespace })
            if rest.hasPrefix("--") {
                rest = rest.drop(while: { $0 != "\n" })
            } else if rest.hasPrefix("/*"), let end = rest.range(of: "*/") {
                rest = rest[end.upperBound...]
            } else {
                return rest
            }
        }
    }
}
