import ArgumentParser
import Foundation
import ShoalClient
import ShoalSQLite
import ShoalTime

/// `shoal demo`: the key-card reader. A door reader checks cards on every swipe; each card holder's
/// organization is a tenant with its own database. Reads from an embedded replica against reads
/// over the network, then a card expired at the primary and seen locally right after.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract:
            "The key-card reader, end to end: a database per card holder, local reads vs. remote reads, a card expired.",
        discussion:
            "Runs against the Shoal found like the other commands (shoal auth login, or shoal dev in this folder).")

    @OptionGroup var platform: PlatformOptions
    @Option(help: "Card holders, one database each.") var holders = 3
    @Option(help: "Cards per holder.") var cards = 50
    @Option(help: "Serial reads timed on each path.") var reads = 1_000
    @Option(help: "The location the group and the reader are in.") var location = "fra"
    @Option(help: "Add this delay to every remote read, like a region away (e.g. 20ms); labelled as simulated.")
    var simulateRtt: String?

    func validate() throws {
        guard (1...50).contains(holders) else { throw ValidationError("--holders must be 1...50") }
        guard (1...100_000).contains(cards) else { throw ValidationError("--cards must be 1...100000") }
        guard (10...1_000_000).contains(reads) else { throw ValidationError("--reads must be 10...1000000") }
        if let simulateRtt { _ = try Self.duration(simulateRtt) }
    }

    static func duration(_ text: String) throws -> Duration {
        let lowered = text.lowercased()
        if lowered.hasSuffix("ms"), let value = Int64(lowered.dropLast(2)), value >= 0, value <= 10_000 {
            return .milliseconds(value)
        }
        if lowered.hasSuffix("us"), let value = Int64(lowered.dropLast(2)), value >= 0, value <= 10_000_000 {
            return .microseconds(value)
        }
        throw ValidationError("--simulate-rtt takes a delay like 20ms or 500us")
    }

    func run() async throws {
        let org = try platform.organization()
        let rtt = try simulateRtt.map(Self.duration)
        let names = (1...holders).map { "card-holder-\($0)" }
        say("1. A group \"cards\" in \(location) and a database per card holder (\(names.joined(separator: ", ")))")
        let tokens = try await platform.run { client -> [String: (URL, String)] in
            _ = try? await client.send(
                "POST", "v1/organizations/\(org)/groups", body: ["name": "cards", "location": location])
            var endpoints: [String: (URL, String)] = [:]
            for name in names {
                _ = try await client.createDatabase(organization: org, name: name, group: "cards", ifNotExists: true)
                let instances = try await client.instances(organization: org, database: name)
                guard let primary = instances.first(where: { $0.type == "primary" }), let url = URL(string: primary.url)
                else { throw ValidationError("database \(name) has no primary instance; is a node in \(location) up?") }
                endpoints[name] = (
                    url,
                    try await client.createToken(
                        organization: org, database: name, expiration: "1d", location: location)
                )
            }
            return endpoints
        }

        say("2. Seeding \(cards) cards per holder (on each database's primary)")
        for name in names {
            guard let (url, token) = tokens[name] else { continue }
            let remote = RemoteDatabase(url: url, token: token)
            try await remote.executeScript(
                "CREATE TABLE IF NOT EXISTS cards (id INTEGER PRIMARY KEY, holder TEXT NOT NULL, door TEXT NOT NULL, valid_until INTEGER NOT NULL); DELETE FROM cards;"
            )
            var script = "BEGIN;"
            for card in 1...cards {
                script += "INSERT INTO cards VALUES (\(card), '\(name)', 'door-\(card % 7)', 4102444800);"
            }
            try await remote.executeScript(script + "COMMIT;")
            await remote.close()
        }

        let reader = names[0]
        guard let (url, token) = tokens[reader] else { return }
        say("3. The reader of \(reader) checks \(reads) swipes on each path")
        let sql = "SELECT valid_until FROM cards WHERE id = ?"
        // Remote: every swipe asks the node over HTTP (Hrana v3, one stream, keep-alive).
        let remote = RemoteDatabase(url: url, token: token)
        var remoteTimes: [Duration] = []
        for index in 0..<reads {
            let start = ContinuousClock.now
            if let rtt { try await Task.sleep(for: rtt) }
            let result = try await remote.execute(sql, [.integer(Int64(index % cards + 1))])
            remoteTimes.append(ContinuousClock.now - start)
            guard result.rows.count == 1 else { throw ValidationError("card \(index % cards + 1) is missing remotely") }
        }
        await remote.close()
        // Embedded replica: a local copy, synced once, read in-process.
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("shoal-demo-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let replica = try Database(directory: directory, syncURL: url, authToken: token)
        try await replica.sync()
        var localTimes: [Duration] = []
        for index in 0..<reads {
            let start = ContinuousClock.now
            let row = try await replica.queryOne(sql, [Int64(index % cards + 1)])
            localTimes.append(ContinuousClock.now - start)
            guard row != nil else { throw ValidationError("card \(index % cards + 1) is missing locally") }
        }
        let remoteMedian = Self.median(remoteTimes)
        let localMedian = Self.median(localTimes)
        say(
            Table.render(
                rows: [
                    [
                        "path": rtt == nil
                            ? "remote (Hrana over HTTP)"
                            : "remote (Hrana over HTTP, +\(simulateRtt ?? "") simulated RTT)",
                        "reads": "\(reads)", "median": Self.format(remoteMedian),
                        "mean": Self.format(remoteTimes.reduce(.zero, +) / reads),
                    ],
                    [
                        "path": "embedded replica (local SQLite)", "reads": "\(reads)",
                        "median": Self.format(localMedian), "mean": Self.format(localTimes.reduce(.zero, +) / reads),
                    ],
                ], columns: ["path", "reads", "median", "mean"]))
        let ratio = Self.seconds(remoteMedian) / max(Self.seconds(localMedian), 1e-9)
        say(
            "   the embedded replica answers \(String(format: "%.0f", ratio))× faster (medians)\(rtt == nil ? "" : "; the remote delay is simulated")"
        )

        say("4. Card 1 of \(reader) is expired: the write goes to the primary")
        try await replica.execute("UPDATE cards SET valid_until = 0 WHERE id = 1")
        try await replica.sync()
        let validUntil = try await replica.queryOne("SELECT valid_until FROM cards WHERE id = 1")?[0]
        await replica.close()
        guard validUntil == .integer(0) else {
            throw ValidationError("the expired card still reads as valid locally (\(String(describing: validUntil)))")
        }
        say("5. Validated: the reader's local copy refuses card 1 right after the write (read-your-writes)")
    }

    static func median(_ times: [Duration]) -> Duration {
        times.sorted()[times.count / 2]
    }

    static func seconds(_ duration: Duration) -> Double {
        duration.inSeconds
    }

    static func format(_ duration: Duration) -> String {
        let seconds = seconds(duration)
        if seconds >= 1e-3 { return String(format: "%.2f ms", seconds * 1e3) }
        return String(format: "%.2f µs", seconds * 1e6)
    }
}
