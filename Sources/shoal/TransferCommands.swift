import ArgumentParser
import Foundation
import ShoalClient
import ShoalReplication
import ShoalSQLite

#if canImport(Glibc)
    import Glibc
#endif

extension DatabaseCommand {
    /// Resolves a database's primary URL and a short-lived full-access token for it.
    static func endpoint(_ name: String, platform: PlatformOptions) async throws -> (URL, String) {
        let org = try platform.organization()
        return try await platform.run { client in
            let instances = try await client.instances(organization: org, database: name)
            guard let primary = instances.first(where: { $0.type == "primary" }) ?? instances.first,
                let url = URL(string: primary.url)
            else {
                throw ValidationError(
                    "database \(name) has no instance yet; check that a node of its group's primary location is up")
            }
            return (url, try await client.createToken(organization: org, database: name, expiration: "1d"))
        }
    }

    /// `shoal db export`: the database as one SQLite file.
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a database as a SQLite file (a consistent copy of everything committed).")
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The database's name.") var name: String
        @Option(name: .shortAndLong, help: "The file to write (default: NAME.db); it must not exist.") var output:
            String?

        func run() async throws {
            let target = output ?? "\(name).db"
            guard !FileManager.default.fileExists(atPath: target) else {
                throw ValidationError("\(target) exists; choose another file with --output")
            }
            let (url, token) = try await DatabaseCommand.endpoint(name, platform: platform)
            // An embedded replica pulls the base and every frame; its file is then the database.
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("shoal-export-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            FileHandle.standardError.write(Data("downloading \(name)…\n".utf8))
            let replica = try Database(directory: directory, syncURL: url, authToken: token)
            let synced: Replicator.SyncResult
            do {
                synced = try await replica.sync()
            } catch {
                await replica.close()
                throw error
            }
            await replica.close()
            try FileManager.default.copyItem(atPath: directory + "/data.db", toPath: target)
            let size = (try? FileManager.default.attributesOfItem(atPath: target)[.size] as? Int) ?? 0
            if platform.json {
                return say(
                    #"{"file":"\#(target)","bytes":\#(size),"generation":\#(synced.position.generation),"frame":\#(synced.position.frame)}"#
                )
            }
            say("wrote \(target) (\(size) bytes, position \(synced.position))")
        }
    }

    /// `shoal db import`: a SQLite file's tables, rows, indexes, triggers and views into a database.
    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Load a SQLite file into a database (created in --group when missing; it must hold no table of the same name)."
        )
        @OptionGroup var platform: PlatformOptions
        @Argument(help: "The SQLite file to load.") var file: String
        @Argument(help: "The database to load it into (default: the file's name without .db).") var name: String?
        @Option(help: "The group to create the database in when it does not exist.") var group: String?

        func run() async throws {
            let name =
                self.name ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent.lowercased()
            guard FileManager.default.fileExists(atPath: file) else { throw ValidationError("\(file) does not exist") }
            let source: Connection
            let objects: [Row]
            do {
                source = try Connection(path: file, configuration: .init(flags: [.readOnly]))
                objects = try source.query(
                    "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
                )
            } catch {
                throw ValidationError("\(file) is not a SQLite database (\(SQLShell.message(error)))")
            }
            defer { try? source.close() }
            let org = try platform.organization()
            if let group {
                _ = try await platform.run {
                    try await $0.createDatabase(organization: org, name: name, group: group, ifNotExists: true)
                }
            }
            let (url, token) = try await DatabaseCommand.endpoint(name, platform: platform)
            let remote = RemoteDatabase(url: url, token: token)
            let tables = objects.filter { SQLShell.text($0[0]) == "table" }.map { SQLShell.text($0[1]) }
            let existing = try await remote.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).rows.map { SQLShell.text($0[0]) }
            if let clash = tables.first(where: existing.contains) {
                await remote.close()
                throw ValidationError("database \(name) already has a table \(clash); import into an empty database")
            }
            var total = 0
            for table in tables {
                total += Int(
                    try source.queryOne("SELECT count(*) FROM \(Self.quoted(table))")?[0].integerValue ?? 0)
            }
            var loaded = 0
            let progress = ProgressLine(total: total, label: "rows")
            do {
                try await remote.execute("BEGIN")
                for object in objects where SQLShell.text(object[0]) == "table" {
                    try await remote.executeScript(SQLShell.text(object[2]))
                    let quoted = Self.quoted(SQLShell.text(object[1]))
                    let statement = try source.prepare("SELECT * FROM \(quoted)")
                    defer { statement.finalize() }
                    var script = ""
                    while try statement.step() {
                        let values = (0..<statement.columnCount).map { SQLShell.literal(statement.value(at: $0)) }
                        script += "INSERT INTO \(quoted) VALUES(\(values.joined(separator: ",")));"
                        loaded += 1
                        if script.utf8.count > 256 << 10 {
                            try await remote.executeScript(script)
                            script = ""
                            progress.show(loaded)
                        }
                    }
                    if !script.isEmpty { try await remote.executeScript(script) }
                    progress.show(loaded)
                }
                for object in objects where SQLShell.text(object[0]) != "table" {
                    try await remote.executeScript(SQLShell.text(object[2]))
                }
                try await remote.execute("COMMIT")
            } catch {
                progress.finish()
                await remote.close()
                throw ValidationError(
                    "the import stopped and was rolled back (\(SQLShell.message(error))); database \(name) is as it was"
                )
            }
            progress.finish()
            await remote.close()
            if platform.json {
                return say(#"{"database":"\#(name)","tables":\#(tables.count),"rows":\#(loaded)}"#)
            }
            say("imported \(tables.count) table(s), \(loaded) row(s) into \(name)")
        }

        static func quoted(_ name: String) -> String {
            "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
    }
}

/// A progress line on standard error (only on a terminal).
final class ProgressLine {
    let total: Int
    let label: String
    private let enabled = isatty(STDERR_FILENO) != 0

    init(total: Int, label: String) {
        self.total = total
        self.label = label
    }

    func show(_ done: Int) {
        guard enabled else { return }
        let percent = total == 0 ? 100 : done * 100 / total
        FileHandle.standardError.write(Data("\r\(done)/\(total) \(label) (\(percent)%)".utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

extension SQLiteValue {
    /// The integer, if it is one.
    var integerValue: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }
}
