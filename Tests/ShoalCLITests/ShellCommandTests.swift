import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `shoal db shell` against a running `shoal dev`: SQL as an argument, on stdin, through an
/// embedded replica, `.dump` read back into another database, and the interactive shell on a
/// pseudo-terminal (prompt, history with the up arrow, dot commands).
@Suite("shoal db shell", .serialized, .timeLimit(.minutes(5)))
struct ShellCommandTests {
    @Test func theShellRunsSQLFromArgumentsStdinAndATerminal() async throws {
        let directory = try Scratch()
        let dev = try ShoalProcess(["dev", "--data", directory.path + "/.shoal", "--port", "0"])
        _ = try await dev.waitForDevFile(directory.path + "/.shoal/dev.json")
        let environment = ["SHOAL_CONFIG": directory.path + "/none.json", "HOME": directory.path]
        func shoal(_ arguments: [String], input: String? = nil) async throws -> Finished {
            try await ShoalProcess.run(arguments, in: directory.path, environment: environment, input: input)
        }
        #expect(try await shoal(["db", "create", "notes", "--group", "default"]).status == 0)
        #expect(try await shoal(["db", "create", "copy", "--group", "default"]).status == 0)

        let setup = try await shoal([
            "db", "shell", "notes",
            "CREATE TABLE n (id INTEGER PRIMARY KEY, body TEXT, score REAL, raw BLOB); INSERT INTO n (body, score, raw) VALUES ('hello', 1.5, x'00ff'), ('it''s', NULL, NULL);",
        ])
        #expect(setup.status == 0, "\(setup.errors)")
        let csv = try await shoal(
            ["db", "shell", "notes"], input: ".mode csv\nSELECT id, body\n  FROM n ORDER BY id;\n")
        #expect(csv.output == "id,body\n1,hello\n2,it's\n", "\(csv.output) \(csv.errors)")
        let json = try await shoal(["db", "shell", "notes", "SELECT count(*) AS c FROM n", "--mode", "json"])
        #expect(json.output.trimmingCharacters(in: .whitespacesAndNewlines) == #"[{"c":2}]"#)
        let table = try await shoal([
            "db", "shell", "notes", "SELECT body, score FROM n ORDER BY id", "--mode", "table",
        ])
        #expect(table.output.contains("│ hello │ 1.5   │"), "\(table.output)")
        #expect(table.output.contains("│ it's  │ NULL  │"), "\(table.output)")

        // .dump read back into another database gives the same rows.
        let dump = try await shoal(["db", "shell", "notes"], input: ".dump\n")
        #expect(dump.output.contains("INSERT INTO \"n\" VALUES(2,'it''s',NULL,NULL);"), "\(dump.output)")
        #expect(dump.output.contains("X'00FF'"))
        let restored = try await shoal(["db", "shell", "copy"], input: dump.output)
        #expect(restored.status == 0, "\(restored.errors)")
        let check = try await shoal(["db", "shell", "copy", "SELECT body, score, hex(raw) FROM n ORDER BY id"])
        #expect(check.output == "hello|1.5|00FF\nit's||\n", "\(check.output)")

        // Export to a file, import that file into a new database, read it back.
        let exported = try await shoal(["db", "export", "notes", "--output", directory.path + "/notes.db", "--json"])
        #expect(exported.status == 0, "\(exported.errors)")
        #expect((exported.json["bytes"] as? Int ?? 0) >= 4096)
        let again = try await shoal(["db", "export", "notes", "--output", directory.path + "/notes.db"])
        #expect(again.status != 0)
        #expect(again.errors.contains("exists"))
        let imported = try await shoal([
            "db", "import", directory.path + "/notes.db", "imported", "--group", "default", "--json",
        ])
        #expect(imported.status == 0, "\(imported.errors)")
        #expect(imported.json["rows"] as? Int == 2)
        let importedRows = try await shoal(["db", "shell", "imported", "SELECT body, hex(raw) FROM n ORDER BY id"])
        #expect(importedRows.output == "hello|00FF\nit's|\n", "\(importedRows.output)")
        let clash = try await shoal(["db", "import", directory.path + "/notes.db", "imported"])
        #expect(clash.status != 0)
        #expect(clash.errors.contains("already has a table n"))
        let notSQLite = directory.path + "/not.db"
        try Data("hello".utf8).write(to: URL(fileURLWithPath: notSQLite))
        let bad = try await shoal(["db", "import", notSQLite, "x", "--group", "default"])
        #expect(bad.status != 0)
        #expect(bad.errors.contains("not a SQLite database"))

        // Through an embedded replica: the write goes to the primary, the read is local and sees it.
        let replica = try await shoal([
            "db", "shell", "notes", "--replica", "INSERT INTO n (body) VALUES ('local'); SELECT count(*) FROM n;",
        ])
        #expect(replica.status == 0, "\(replica.errors)")
        #expect(replica.output == "3\n")

        // Errors say what happened and stop a script with status 1.
        let failed = try await shoal(["db", "shell", "notes", "SELEC 1"])
        #expect(failed.status == 1)
        #expect(failed.errors.contains("syntax error"))
        let unknown = try await shoal(["db", "shell", "notes"], input: ".nope\n")
        #expect(unknown.status == 1)
        #expect(unknown.errors.contains(".help"))

        // The demo: a database per card holder, both read paths, a card expired and seen locally.
        let demo = try await shoal(["demo", "--holders", "2", "--cards", "20", "--reads", "200"])
        #expect(demo.status == 0, "\(demo.output) \(demo.errors)")
        #expect(demo.output.contains("remote (Hrana over HTTP)"))
        #expect(demo.output.contains("embedded replica (local SQLite)"))
        #expect(demo.output.contains("× faster (medians)"))
        #expect(demo.output.contains("5. Validated"))
        let simulated = try await shoal(["demo", "--holders", "1", "--reads", "20", "--simulate-rtt", "2ms"])
        #expect(simulated.status == 0, "\(simulated.errors)")
        #expect(simulated.output.contains("+2ms simulated RTT"))
        let badDelay = try await shoal(["demo", "--simulate-rtt", "fast"])
        #expect(badDelay.status != 0)
        #expect(badDelay.errors.contains("like 20ms"))

        // Interactive, on a pseudo-terminal.
        let session = try Terminal(
            [ShoalBinary.path, "db", "shell", "notes"], directory: directory.path, environment: environment)
        try await session.expect("shoal> ")
        session.type("SELECT 40 +\r")
        try await session.expect("  ...> ")
        session.type(" 2;\r")
        try await session.expect("42")
        session.type("\u{1b}[A\r")  // up arrow: the last statement again
        try await session.expect("42", occurrences: 2)
        session.type(".tables\r")
        try await session.expect("n\r\nshoal> ")
        session.type(".quit\r")
        #expect(try await session.waitForExit() == 0)
        let history = try String(contentsOfFile: directory.path + "/.shoal_history", encoding: .utf8)
        #expect(history.contains("SELECT 40 +\\n 2;"), "\(history)")
        _ = try await dev.stop(signal: SIGTERM)
    }
}

/// A process on a pseudo-terminal, driven like a person at a keyboard.
final class Terminal: @unchecked Sendable {
    private let process = Process()
    private let master: Int32
    private var output = ""

    init(_ command: [String], directory: String, environment: [String: String]) throws {
        var master: Int32 = 0
        var slave: Int32 = 0
        guard openpty(&master, &slave, nil, nil, nil) == 0 else { throw CLITestError("openpty failed") }
        self.master = master
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let handle = FileHandle(fileDescriptor: slave, closeOnDealloc: true)
        process.standardInput = handle
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    deinit {
        if process.isRunning { process.terminate() }
        close(master)
    }

    func type(_ text: String) {
        _ = text.utf8CString.withUnsafeBufferPointer { write(master, $0.baseAddress, text.utf8.count) }
    }

    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(master, &buffer, buffer.count)
            guard count > 0 else { return }
            output += String(decoding: buffer[0..<count], as: UTF8.self)
        }
    }

    /// Waits (up to 30 s) until `text` has appeared `occurrences` times.
    func expect(_ text: String, occurrences: Int = 1) async throws {
        for _ in 0..<600 {
            drain()
            if output.components(separatedBy: text).count - 1 >= occurrences { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw CLITestError("'\(text)' did not appear \(occurrences) time(s); the terminal shows:\n\(output)")
    }

    func waitForExit() async throws -> Int32 {
        for _ in 0..<600 where process.isRunning {
            drain()
            try await Task.sleep(for: .milliseconds(50))
        }
        guard !process.isRunning else { throw CLITestError("the shell did not exit; it shows:\n\(output)") }
        return process.terminationStatus
    }
}
