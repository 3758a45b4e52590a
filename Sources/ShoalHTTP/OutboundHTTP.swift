import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ShoalTime

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
        // The deadline does not wait for the exchange to stop (see `withDeadline`).
        let answer: HTTPAnswer?
        do {
            answer = try await withDeadline(timeout) {
                let response = try await client.execute(prepared, deadline: deadline)
                var headers: [String: String] = [:]
                for (name, value) in response.headers {
                    let key = name.lowercased()
                    headers[key] = headers[key].map { "\($0), \(value)" } ?? value
                }
                let buffer = try await response.body.collect(upTo: limit)
                return HTTPAnswer(
                    status: Int(response.status.code), headers: headers, body: Data(buffer.readableBytesView))
            }
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as HTTPClientError where error == .cancelled && Task.isCancelled {
            throw CancellationError()
        } catch {
            throw classify(error, url: url, timeout: timeout, limit: limit)
        }
        guard let answer else { throw HTTPCallError(kind: .timedOut, url: url, detail: "\(timeout)") }
        return answer
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
