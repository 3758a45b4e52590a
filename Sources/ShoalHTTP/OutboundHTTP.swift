import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ShoalPool
import Synchronization

/// A request Shoal sends: to a node, to the control plane, to a JWKS URL. Every call has a
/// deadline that covers the whole exchange, body included, and is enforced by a timer that does
/// not wait for the exchange to stop, so a call always ends — with the answer or with
/// `HTTPCallError`.
public struct HTTPCall: Sendable {
    /// `GET`, `POST`, …
    public var method: String
    /// Where to send it (`http` or `https`).
    public var url: URL
    /// Headers besides `Content-Length`, which is set from the body.
    public var headers: [(name: String, value: String)]
    /// The body, if any.
    public var body: Data?
    /// How long the whole exchange may take.
    public var timeout: Duration
    /// The largest answer body accepted; a larger one fails with `.tooLarge`.
    public var maxBodyBytes: Int

    /// A call to `url`; `bearer` becomes the `Authorization` header, a body gets `contentType`.
    public init(
        _ method: String, _ url: URL, bearer: String? = nil, body: Data? = nil,
        contentType: String = "application/json", timeout: Duration = .seconds(30),
        maxBodyBytes: Int = 1 << 30
    ) {
        self.method = method
        self.url = url
        self.headers = []
        if let bearer { headers.append((name: "Authorization", value: "Bearer \(bearer)")) }
        if body != nil { headers.append((name: "Content-Type", value: contentType)) }
        self.body = body
        self.timeout = timeout
        self.maxBodyBytes = maxBodyBytes
    }
}

/// An answer: status, headers (names lowercased, repeated ones joined by `, `) and body.
public struct HTTPAnswer: Sendable {
    /// The HTTP status code.
    public let status: Int
    /// Header values by lowercased name.
    public let headers: [String: String]
    /// The whole body.
    public let body: Data

    /// True for 2xx.
    public var isSuccess: Bool { (200..<300).contains(status) }
}

/// Why a call produced no answer.
public struct HTTPCallError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public enum Kind: Sendable, Equatable {
        /// No connection could be made (refused, unknown host, TLS failure, connection lost).
        case unreachable
        /// The deadline passed before the whole answer arrived.
        case timedOut
        /// The answer's body was larger than the call accepts.
        case tooLarge
        /// The URL cannot be sent to (no host, unsupported scheme).
        case invalidURL
    }

    /// What went wrong.
    public let kind: Kind
    /// The URL called.
    public let url: String
    /// The underlying cause, for logs and messages.
    public let detail: String

    /// What went wrong, for people.
    public var description: String {
        switch kind {
        case .unreachable: return "\(url) cannot be reached (\(detail))"
        case .timedOut: return "\(url) did not answer within \(detail)"
        case .tooLarge: return "the answer from \(url) is larger than \(detail) bytes"
        case .invalidURL: return "\(url) is not a URL Shoal can call (\(detail))"
        }
    }
}

/// The process's one HTTP client: a connection pool on NIO's shared event loops, kept for the
/// life of the process (keep-alive connections are reused across every caller).
public enum OutboundHTTP {
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(10)),
            connectionPool: .init(idleTimeout: .seconds(60)),
            decompression: .disabled
        )
        configuration.httpVersion = .http1Only
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// Sends `call` and returns the whole answer, or throws `HTTPCallError` (or `CancellationError`
    /// when the calling task is cancelled).
    public static func send(_ call: HTTPCall) async throws -> HTTPAnswer {
        let url = call.url.absoluteString
        guard let scheme = call.url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            call.url.host != nil
        else { throw HTTPCallError(kind: .invalidURL, url: url, detail: "an http:// or https:// URL is needed") }

        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: call.method)
        for header in call.headers { request.headers.add(name: header.name, value: header.value) }
        if let body = call.body {
            request.body = .bytes(ByteBuffer(bytes: body))
        } else if call.method != "GET" && call.method != "HEAD" {
            request.headers.replaceOrAdd(name: "Content-Length", value: "0")
        }

        let prepared = request
        let timeout = call.timeout
        let limit = call.maxBodyBytes
        let deadline = NIODeadline.now() + TimeAmount(timeout)
        // The exchange and the deadline race as two tasks; the first to finish answers and the
        // other is cancelled but not awaited, so a call ends at its deadline even if the client
        // library is slow to give up on the exchange.
        let race = Race<HTTPAnswer>()
        let exchange = Task {
            do {
                let response = try await client.execute(prepared, deadline: deadline)
                var headers: [String: String] = [:]
                for (name, value) in response.headers {
                    let key = name.lowercased()
                    headers[key] = headers[key].map { "\($0), \(value)" } ?? value
                }
                let buffer = try await response.body.collect(upTo: limit)
                race.finish(
                    .success(
                        HTTPAnswer(
                            status: Int(response.status.code), headers: headers,
                            body: Data(buffer.readableBytesView))))
            } catch {
                race.finish(.failure(error))
            }
        }
        let timer = Task {
            // Not `Task.sleep`: cancelled, it would hold its memory until the deadline.
            if await CancellableSleep.sleep(for: timeout) {
                race.finish(.failure(HTTPCallError(kind: .timedOut, url: url, detail: "\(timeout)")))
            }
        }
        defer {
            exchange.cancel()
            timer.cancel()
        }
        let result = await withTaskCancellationHandler {
            await race.result()
        } onCancel: {
            race.finish(.failure(CancellationError()))
        }
        switch result {
        case .success(let answer):
            return answer
        case .failure(let error as HTTPCallError):
            throw error
        case .failure(is CancellationError):
            throw CancellationError()
        case .failure(let error as HTTPClientError) where error == .cancelled && Task.isCancelled:
            throw CancellationError()
        case .failure(let error):
            throw classify(error, url: url, timeout: timeout, limit: limit)
        }
    }

    static func classify(_ error: any Error, url: String, timeout: Duration, limit: Int) -> HTTPCallError {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return HTTPCallError(kind: .timedOut, url: url, detail: "\(timeout)")
            case .connectTimeout:
                return HTTPCallError(kind: .unreachable, url: url, detail: "connecting timed out")
            case .bodyLengthMismatch:
                return HTTPCallError(kind: .tooLarge, url: url, detail: "\(limit)")
            case .invalidURL, .emptyHost, .emptyScheme:
                return HTTPCallError(kind: .invalidURL, url: url, detail: "\(error)")
            default:
                return HTTPCallError(kind: .unreachable, url: url, detail: "\(error)")
            }
        }
        if error is NIOTooManyBytesError {
            return HTTPCallError(kind: .tooLarge, url: url, detail: "\(limit)")
        }
        return HTTPCallError(kind: .unreachable, url: url, detail: "\(error)")
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// The first of several finishers wins: its result is handed to the one waiter, later ones are
/// dropped.
final class Race<Value: Sendable>: Sendable {
    private enum State {
        case open(waiter: CheckedContinuation<Result<Value, any Error>, Never>?)
        case finished(Result<Value, any Error>?)
    }

    private let state = Mutex<State>(.open(waiter: nil))

    /// Ends the race with `result`, unless it already ended.
    func finish(_ result: Result<Value, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<Result<Value, any Error>, Never>? in
            guard case .open(let waiter) = state else { return nil }
            state = .finished(waiter == nil ? result : nil)
            return waiter
        }
        waiter?.resume(returning: result)
    }

    /// Waits for the race's result (called once).
    func result() async -> Result<Value, any Error> {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Result<Value, any Error>? in
                switch state {
                case .open:
                    state = .open(waiter: continuation)
                    return nil
                case .finished(let result):
                    state = .finished(nil)
                    return result
                }
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
