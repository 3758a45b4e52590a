import Foundation
import Testing

/// A TCP socket listening on 127.0.0.1, on a port the kernel picked; closed when the value goes.
final class HeldPort {
    let port: Int
    private let descriptor: Int32

    init() throws {
        #if canImport(Glibc)
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { throw CLITestError("socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        guard inet_pton(AF_INET, "127.0.0.1", &address.sin_addr) == 1 else {
            close(descriptor)
            throw CLITestError("inet_pton failed")
        }
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, size) }
        }
        guard bound == 0, listen(descriptor, 16) == 0 else {
            close(descriptor)
            throw CLITestError("cannot listen on 127.0.0.1: errno \(errno)")
        }
        var length = size
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else {
            close(descriptor)
            throw CLITestError("getsockname failed: errno \(errno)")
        }
        self.descriptor = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }
}

/// A server command whose port is taken stops at once and says so, instead of running on without
/// its server.
@Suite("a server command whose port is taken", .serialized, .timeLimit(.minutes(5)))
struct PortInUseTests {
    @Test(arguments: ["dev", "control", "node"])
    func serverCommandExitsAndSaysThePortIsInUse(_ command: String) async throws {
        let held = try HeldPort()
        let directory = try Scratch()
        var arguments = [command, "--data", directory.path + "/data", "--port", "\(held.port)"]
        switch command {
        case "dev": arguments += ["--locations", "fra"]
        case "node": arguments += ["--no-auth"]
        default: break
        }
        let finished = try await ShoalProcess.runToExit(arguments, within: .seconds(30))
        let status = try #require(
            finished.status, "shoal \(command) was still running after 30 s; output:\n\(finished.output)")
        #expect(status != 0)
        #expect(
            finished.output.contains(
                "port \(held.port) on 127.0.0.1 is already in use: stop what holds it or pass --port"),
            "\(finished.output)")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/data/dev.json"))
        withExtendedLifetime(held) {}
    }
}

/// How a bounded run of the binary ended.
struct BoundedRun {
    /// The exit status; nil when the process was still running at the limit and had to be killed.
    let status: Int32?
    /// Everything it printed, both streams.
    let output: String
}

extension ShoalProcess {
    /// Runs `shoal arguments…` until it exits, killing it when it still runs after `limit`.
    static func runToExit(_ arguments: [String], within limit: Duration) async throws -> BoundedRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ShoalBinary.path)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let (exits, exited) = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { finished in
            exited.yield(finished.terminationStatus)
            exited.finish()
        }
        try process.run()
        let watchdog = Task { () -> Bool in
            guard (try? await Task.sleep(for: limit)) != nil, process.isRunning else { return false }
            kill(process.processIdentifier, SIGKILL)
            return true
        }
        // The pipe ends when the process does (or is killed), so this read is bounded.
        let output = await readToEnd(pipe.fileHandleForReading)
        var iterator = exits.makeAsyncIterator()
        let status = await iterator.next()
        watchdog.cancel()
        let killed = await watchdog.value
        return BoundedRun(status: killed ? nil : status, output: String(decoding: output, as: UTF8.self))
    }
}

/// The node's execution and admission options refuse nonsense before the node starts, naming the
/// option and what it takes.
@Suite("shoal node's capacity options", .serialized, .timeLimit(.minutes(2)))
struct NodeCapacityOptionTests {
    @Test(arguments: [
        (["--stream-limits", "100,0,5000"], "--stream-limits takes three positive numbers"),
        (["--long-poll-limits", "50,200"], "--long-poll-limits takes three positive numbers"),
        (["--sqlite-threads", "0"], "--sqlite-threads must be 1...1024"),
        (["--threads-per-database", "0"], "--threads-per-database must be positive"),
        (["--request-time-limit-seconds", "0"], "--request-time-limit-seconds must be more than 0"),
        (["--sqlite-heap-limit-mb=-1"], "--sqlite-heap-limit-mb must be 0"),
        (["--response-budget-mb", "8"], "--response-budget-mb must be at least 32"),
    ])
    func badCapacityOptionsAreRefusedWithWhatTheyTake(_ options: [String], _ message: String) async throws {
        let directory = try Scratch()
        let finished = try await ShoalProcess.runToExit(
            ["node", "--no-auth", "--data", directory.path + "/data", "--port", "0"] + options, within: .seconds(30))
        #expect(finished.status != nil && finished.status != 0)
        #expect(finished.output.contains(message), "\(finished.output)")
    }
}

/// `--sqlite-heap-limit-mb` bounds what SQLite may allocate in the node process: a statement that
/// needs more fails with SQLITE_NOMEM, and the node goes on serving.
@Suite("shoal node's SQLite heap limit", .serialized, .timeLimit(.minutes(2)))
struct NodeHeapLimitTests {
    @Test func aStatementPastTheHeapLimitFailsAndTheNodeGoesOn() async throws {
        let directory = try Scratch()
        let process = try ShoalProcess(
            [
                "node", "--no-auth", "--create-on-first-use", "--port", "0", "--data", directory.path + "/data",
                "--sqlite-heap-limit-mb", "16",
            ])
        let url = try await process.waitForLine(prefix: "shoal node (local) listening on")
        // 24 MB in one value: under the 32 MiB value cap, over the 16 MiB heap.
        let big = try await HTTP.execute("SELECT length(randomblob(24000000))", at: url + "/db/acme/mem", token: "")
        #expect(big.text.contains("SQLITE_NOMEM"), "\(big.text.prefix(300))")
        let small = try await HTTP.execute("SELECT 6 * 7", at: url + "/db/acme/mem", token: "")
        #expect(small.text.contains(#""value":"42""#), "\(small.text.prefix(300))")
        #expect(try await process.stop(signal: SIGTERM) == 0)
    }
}
