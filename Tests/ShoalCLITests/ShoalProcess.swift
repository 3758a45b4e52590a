import Foundation
import ShoalHTTP
import ShoalTestSupport
import Synchronization
import Testing

/// The `shoal` binary under test: `SHOAL_BIN`, or the debug build next to the sources.
enum ShoalBinary {
    static var path: String {
        if let path = ProcessInfo.processInfo.environment["SHOAL_BIN"], !path.isEmpty { return path }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/shoal").path
    }
}

/// A temporary directory removed when the value goes away.
typealias Scratch = TemporaryDirectory

/// A running `shoal` process with its combined output collected.
final class ShoalProcess: Sendable {
    private let process: Process
    private let collected = Collected()

    /// Output gathered by the pipe's handler thread.
    final class Collected: Sendable {
        let text = Mutex("")
    }

    init(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ShoalBinary.path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let collected = self.collected
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { collected.text.withLock { $0 += String(decoding: data, as: UTF8.self) } }
        }
        try process.run()
        self.process = process
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    /// Everything printed so far.
    var output: String { collected.text.withLock { $0 } }

    /// Waits (up to 30 s) for a line starting with `prefix`; returns the rest of that line.
    func waitForLine(prefix: String) async throws -> String {
        for _ in 0..<600 {
            if let line = output.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                return String(line.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces)
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw CLITestError("no line starting with '\(prefix)'; output:\n\(output)")
    }

    /// What `shoal dev` writes for scripts.
    struct DevFile: Decodable {
        let apiURL: String
        let adminToken: String
        let org: String
        let nodes: [String: String]

        enum CodingKeys: String, CodingKey {
            case apiURL = "api_url"
            case adminToken = "admin_token"
            case org, nodes
        }
    }

    /// Waits for `shoal dev` to say it runs, then reads its file (one whose API URL differs from
    /// `previous`, when given).
    func waitForDevFile(_ path: String, after previous: String? = nil) async throws -> DevFile {
        _ = try await waitForLine(prefix: "shoal dev is running")
        let file = try JSONDecoder().decode(DevFile.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        if let previous, file.apiURL == previous { throw CLITestError("dev.json was not rewritten") }
        return file
    }

    /// Sends `signal` and waits for the exit status.
    /// Lowers the process's scheduling priority to the least (nice 19), for tests that measure
    /// this process's own latency while the child serves it: the child then takes only the CPU this
    /// process leaves, as a server on another machine would.
    func yieldCPU() throws {
        guard setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(process.processIdentifier), 19) == 0 else {
            throw CLITestError("setpriority failed: \(String(cString: strerror(errno)))")
        }
    }

    func stop(signal: Int32) async throws -> Int32 {
        kill(process.processIdentifier, signal)
        return try await waitForExit()
    }

    /// Waits (up to 30 s) for the process to end; returns its status.
    func waitForExit() async throws -> Int32 {
        for _ in 0..<600 where process.isRunning {
            try await Task.sleep(for: .milliseconds(50))
        }
        guard !process.isRunning else {
            process.terminate()
            throw CLITestError("the process did not stop; output:\n\(output)")
        }
        return process.terminationStatus
    }
}

/// HTTP calls for the tests.
enum HTTP {
    struct Answer {
        let status: Int
        let data: Data
        var text: String { String(decoding: data, as: UTF8.self) }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:] }
        var pipelineFailed: Bool {
            ((json["results"] as? [[String: Any]])?.first?["type"] as? String) == "error"
        }
    }

    static func send(_ method: String, _ url: String, json: Any? = nil, token: String?) async throws -> Answer {
        let body = try json.map { try JSONSerialization.data(withJSONObject: $0) }
        let answer = try await OutboundHTTP.send(HTTPCall(method, URL(string: url)!, bearer: token, body: body))
        return Answer(status: answer.status, data: answer.body)
    }

    static func execute(_ sql: String, at base: String, token: String) async throws -> Answer {
        try await send(
            "POST", base + "/v2/pipeline",
            json: ["requests": [["type": "execute", "stmt": ["sql": sql]], ["type": "close"]]], token: token)
    }
}

struct CLITestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension ShoalProcess {
    /// Reads a handle to its end on a dispatch thread.
    static func readToEnd(_ handle: FileHandle) async -> Data {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: handle.readDataToEndOfFile()) }
        }
    }
}

/// One finished run of the binary.
struct Finished {
    let status: Int32
    let output: String
    let errors: String

    /// Standard output as a JSON object.
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(output.utf8))) as? [String: Any] ?? [:] }
}

extension ShoalProcess {
    /// Runs `shoal arguments…` in `directory` with `environment` added, to the end (30 s at most).
    static func run(
        _ arguments: [String], in directory: String, environment: [String: String] = [:], input: String? = nil,
        executable: String = ShoalBinary.path
    ) async throws
        -> Finished
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        let stdin = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        try process.run()
        if let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
        // Read both pipes to the end on threads of their own (not the cooperative pool, which a
        // long-running child would otherwise starve), so a full pipe never blocks the child.
        async let out = Self.readToEnd(output.fileHandleForReading)
        async let err = Self.readToEnd(errors.fileHandleForReading)
        let (outData, errData) = await (out, err)
        for _ in 0..<600 where process.isRunning {
            try await Task.sleep(for: .milliseconds(50))
        }
        guard !process.isRunning else {
            process.terminate()
            throw CLITestError("shoal \(arguments.joined(separator: " ")) did not finish")
        }
        return Finished(
            status: process.terminationStatus, output: String(decoding: outData, as: UTF8.self),
            errors: String(decoding: errData, as: UTF8.self))
    }
}
