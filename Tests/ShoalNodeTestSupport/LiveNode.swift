import Foundation
import Hummingbird
import Logging
import ShoalHTTP
import ShoalNode
import ShoalTestSupport
import Synchronization

/// A real node on a loopback port chosen by the kernel, for one test.
public struct LiveNode: Sendable {
    /// The node's URL (`http://127.0.0.1:PORT`).
    public let url: String
    /// The node.
    public let node: Node
    /// Its data directory (removed after the test).
    public let dataDirectory: String

    /// Starts a node, runs `body` against it, then shuts it down; with `logs`, what the node logs
    /// at notice and above is kept there.
    public static func with(
        logs: CapturedLogs? = nil, _ configure: (inout NodeConfiguration) -> Void = { _ in },
        _ body: @Sendable (LiveNode) async throws -> Void
    ) async throws {
        let scratch = try TemporaryDirectory()
        let directory = scratch.path
        defer { withExtendedLifetime(scratch) {} }
        var configuration = NodeConfiguration(dataDirectory: directory)
        configure(&configuration)
        var logger = Logger(label: "shoal.node.test")
        logger.logLevel = .warning
        if let logs {
            logger = Logger(label: "shoal.node.test") { _ in CapturedLogs.Handler(logs: logs) }
            logger.logLevel = .notice
        }
        let node = try Node(configuration: configuration, logger: logger)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = node.application(host: "127.0.0.1", port: 0) { continuation.yield($0) }
        let state = TeardownState()
        defer { state.watch.withLock { $0?.cancel() } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                state.serving.withLock { $0 = true }
                defer { state.serving.withLock { $0 = false } }
                try await app.run()
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw NodeTestError("the server did not start") }
            let live = LiveNode(url: "http://127.0.0.1:\(port)", node: node, dataDirectory: directory)
            func tearDown() async {
                // A teardown that hangs says so, and whether the server or the node is what waits.
                state.watch.withLock {
                    $0 = Task.detached {
                        guard (try? await Task.sleep(for: .seconds(30))) != nil else { return }
                        FileHandle.standardError.write(
                            Data(
                                "LiveNode teardown still waits after 30 s: server running \(state.serving.withLock { $0 }), node shut down \(state.shutDown.withLock { $0 })\n"
                                    .utf8))
                    }
                }
                group.cancelAll()
                await node.shutdown()
                state.shutDown.withLock { $0 = true }
            }
            do {
                try await body(live)
                await tearDown()
            } catch {
                await tearDown()
                throw error
            }
        }
    }

    /// Sends a request; returns the status, the body and the headers (names lowercased). A call
    /// not answered within `timeout` throws.
    public func request(
        _ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:],
        timeout: Duration = .seconds(30)
    ) async throws -> (status: Int, body: String, headers: [String: String]) {
        let (status, data, headers) = try await requestData(
            method, path, body: body.map { Data($0.utf8) }, headers: headers, timeout: timeout)
        return (status, String(decoding: data, as: UTF8.self), headers)
    }

    /// Sends a request; returns the status, the body as bytes and the headers.
    public func requestData(
        _ method: String, _ path: String, body: Data? = nil, headers: [String: String] = [:],
        timeout: Duration = .seconds(30)
    ) async throws -> (status: Int, body: Data, headers: [String: String]) {
        var call = HTTPCall(method, URL(string: url + path)!, body: body, timeout: timeout)
        call.headers = headers.map { (name: $0.key, value: $0.value) }
        let answer = try await OutboundHTTP.send(call)
        return (answer.status, answer.body, answer.headers)
    }

    /// Posts a pipeline and decodes the JSON answer.
    public func pipeline(
        _ database: String, _ json: String, version: Int = 3
    ) async throws -> (status: Int, json: [String: Any]) {
        let (status, body, _) = try await request("POST", "/db/\(database)/v\(version)/pipeline", body: json)
        let object = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? ["text": body]
        return (status, object)
    }
}

/// What a LiveNode's teardown has done, for the report of one that hangs.
final class TeardownState: Sendable {
    let serving = Mutex(false)
    let shutDown = Mutex(false)
    let watch = Mutex<Task<Void, Never>?>(nil)
}

/// A node test's failure, with what went wrong.
public struct NodeTestError: Error, CustomStringConvertible {
    /// What went wrong.
    public let description: String
    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}

extension Dictionary where Key == String, Value == Any {
    /// The results array of a pipeline answer.
    public var results: [[String: Any]] { self["results"] as? [[String: Any]] ?? [] }
    /// The baton of a pipeline answer.
    public var baton: String? { self["baton"] as? String }
}

/// Log lines a node wrote, kept for a test to read: each message with its metadata.
public final class CapturedLogs: Sendable {
    /// Nothing logged yet.
    public init() {}

    private let lines = Mutex<[(message: String, metadata: [String: String])]>([])

    /// What was logged so far.
    public var entries: [(message: String, metadata: [String: String])] { lines.withLock { $0 } }

    /// A log handler that keeps what it is given in `logs`.
    public struct Handler: LogHandler {
        let logs: CapturedLogs
        /// Metadata of the logger.
        public var metadata: Logger.Metadata = [:]
        /// The level.
        public var logLevel: Logger.Level = .notice

        /// A handler keeping lines in `logs`.
        public init(logs: CapturedLogs) { self.logs = logs }

        /// Metadata by key.
        public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        /// Keeps the line.
        public func log(event: LogEvent) {
            var all = metadata.mapValues { "\($0)" }
            for (key, value) in event.metadata ?? [:] { all[key] = "\(value)" }
            let entry = (message: "\(event.message)", metadata: all)
            logs.lines.withLock { $0.append(entry) }
        }
    }
}
