import Foundation
import Testing

/// `shoal migrate` of the built binary against a running `shoal dev`, found through `.shoal/dev.json`
/// in the working directory: a migration added, rolled out over a group's databases and listed;
/// an applied migration never edited; one that fails its dry run refused.
@Suite("shoal migrate", .serialized, .timeLimit(.minutes(5)))
struct MigrateCommandTests {
    /// Runs `shoal arguments…` in `directory` to its end like `ShoalProcess.run`, but for at most
    /// `limit`: a child still running then (a watch that never ends) is killed and the test fails.
    static func run(
        _ arguments: [String], in directory: String, environment: [String: String], input: String? = nil,
        limit: Duration = .seconds(60)
    ) async throws -> Finished {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ShoalBinary.path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        let errors = Pipe()
        let stdin = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        let (exits, exited) = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in exited.finish() }
        try process.run()
        // The time limit: past it the child is killed, which closes its pipes and so ends the waits below.
        let watchdog = Task { () -> Bool in
            guard (try? await Task.sleep(for: limit)) != nil, process.isRunning else { return false }
            kill(process.processIdentifier, SIGKILL)
            return true
        }
        if let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
        async let out = ShoalProcess.readToEnd(output.fileHandleForReading)
        async let err = ShoalProcess.readToEnd(errors.fileHandleForReading)
        let (outData, errData) = await (out, err)
        // The termination handler's event: the status is final once it came.
        for await _ in exits {}
        watchdog.cancel()
        let finished = Finished(
            status: process.terminationStatus, output: String(decoding: outData, as: UTF8.self),
            errors: String(decoding: errData, as: UTF8.self))
        let killed = await watchdog.value
        guard !killed else {
            throw CLITestError(
                "shoal \(arguments.joined(separator: " ")) did not finish within \(limit); output:\n"
                    + finished.output + finished.errors)
        }
        return finished
    }

    @Test func migrationsRollOutToEveryDatabaseAndAreNeverEditedOrAddedWhenTheirDryRunFails() async throws {
        let directory = try Scratch()
        let dev = try ShoalProcess(["dev", "--data", directory.path + "/.shoal", "--port", "0"])
        let file = try await dev.waitForDevFile(directory.path + "/.shoal/dev.json")
        // No saved login: the commands fall back to `.shoal/dev.json`.
        let environment = ["SHOAL_CONFIG": directory.path + "/none.json"]
        func shoal(_ arguments: String..., input: String? = nil) async throws -> Finished {
            try await Self.run(arguments, in: directory.path, environment: environment, input: input)
        }
        func write(_ sql: String, to name: String) throws {
            try sql.write(toFile: directory.path + "/" + name, atomically: true, encoding: .utf8)
        }

        let group = try await shoal("group", "create", "app", "--location", "fra")
        try #require(group.status == 0, "\(group.errors)")
        let databases = ["app-1", "app-2", "app-3"]
        for name in databases {
            let created = try await shoal("db", "create", name, "--group", "app")
            try #require(created.status == 0, "\(created.errors)")
        }

        let users = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);\n"
        try write(users, to: "F.sql")
        let added = try await shoal("migrate", "new", "app", "0001_users", "--file", "F.sql")
        #expect(added.status == 0, "\(added.errors)")
        #expect(added.output.contains("version 1: 0001_users, checksum "), "\(added.output)")
        // The same name and SQL again, from standard input, answers the migration as it is.
        let again = try await shoal("migrate", "new", "app", "0001_users", "--file", "-", input: users)
        #expect(again.status == 0, "\(again.errors)")
        #expect(again.output.contains("version 1: 0001_users"), "\(again.output)")

        let applied = try await shoal("migrate", "apply", "app")
        #expect(applied.status == 0, "\(applied.output)\(applied.errors)")
        #expect(applied.output.contains(": done, to version 1"), "\(applied.output)")
        #expect(applied.output.contains("3 done, 0 pending, 0 failed, 0 skipped of 3"), "\(applied.output)")

        let listed = try await shoal("migrate", "list", "app", "--json")
        #expect(listed.status == 0, "\(listed.errors)")
        let migrations = listed.json["migrations"] as? [[String: Any]] ?? []
        #expect(migrations.count == 1, "\(listed.output)")
        #expect(migrations.first?["name"] as? String == "0001_users")
        #expect(migrations.first?["applied"] as? Int == 3, "\(listed.output)")
        #expect(migrations.first?["pending"] as? Int == 0)
        #expect(listed.json["schema_version"] as? Int == 1)
        let table = try await shoal("migrate", "list", "app")
        #expect(table.output.hasPrefix("VERSION"), "\(table.output)")
        #expect(table.output.contains("schema_version 1, databases 3, drifted 0"), "\(table.output)")
        let status = try await shoal("migrate", "status", "app", "--watch", "--json")
        #expect(status.status == 0, "\(status.errors)")
        #expect((status.json["rollout"] as? [String: Any])?["state"] as? String == "done", "\(status.output)")

        // Every database has the table.
        let token = try await shoal("group", "tokens", "create", "app", "--expiration", "1h")
        try #require(token.status == 0, "\(token.errors)")
        let jwt = token.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let node = try #require(file.nodes["fra"])
        for name in databases {
            let answer = try await HTTP.execute("SELECT count(*) FROM users", at: node + "/db/dev/" + name, token: jwt)
            #expect(answer.status == 200 && !answer.pipelineFailed, "\(name): \(answer.text)")
        }

        // An applied migration is never edited.
        try write("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, name TEXT);\n", to: "G.sql")
        let edited = try await shoal("migrate", "new", "app", "0001_users", "--file", "G.sql")
        #expect(edited.status != 0)
        #expect(edited.errors.contains("never edited"), "\(edited.errors)")

        // SQL that fails on top of the group's migrations is refused before any database sees it.
        try write("CREATE TABLE users (id INTEGER);\n", to: "D.sql")
        let duplicate = try await shoal("migrate", "new", "app", "0002_dup", "--file", "D.sql")
        #expect(duplicate.status != 0)
        #expect(duplicate.errors.contains("dry run"), "\(duplicate.errors)")
        let after = try await shoal("migrate", "list", "app", "--json")
        #expect((after.json["migrations"] as? [[String: Any]])?.count == 1, "\(after.output)")

        #expect(try await dev.stop(signal: SIGTERM) == 0)
    }
}
