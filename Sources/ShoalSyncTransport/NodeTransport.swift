import Foundation
import ShoalHTTP
import Synchronization

/// The bearer token a database's requests carry; replaced in place when it is refreshed, so an
/// open replica keeps working without being reopened.
public final class Credentials: Sendable {
    private let current: Mutex<String?>

    /// Credentials holding `token`.
    public init(_ token: String?) { current = Mutex(token) }

    /// The token now in use.
    public var token: String? { current.withLock { $0 } }

    /// Replaces the token for every later request.
    public func replace(with token: String?) { current.withLock { $0 = token } }
}

/// Requests to a node's database URL (`http://host/db/org/database`), with the bearer token.
public struct NodeTransport: Sendable {
    /// The database's URL on the node.
    public let baseURL: URL
    /// The token every request carries.
    public let credentials: Credentials

    /// A transport to the database at `baseURL`, sending the token `credentials` holds.
    public init(baseURL: URL, credentials: Credentials) {
        self.baseURL = baseURL
        self.credentials = credentials
    }

    /// A node's answer.
    public struct Answer: Sendable {
        /// The HTTP status.
        public let status: Int
        /// The whole body.
        public let body: Data
        /// The headers, names in lower case.
        public let headers: [String: String]
    }

    /// Sends `method` to `path` under the database's URL.
    public func send(
        _ method: String, _ path: String, body: Data? = nil, timeout: TimeInterval = 60
    ) async throws -> Answer {
        try await send(method, url: baseURL.appendingPathComponent(path), body: body, timeout: timeout)
    }

    /// Sends to an absolute URL (one with a query string, say), with the bearer token.
    public func send(
        _ method: String, url: URL?, body: Data? = nil, timeout: TimeInterval = 60
    ) async throws -> Answer {
        guard let url else { throw TransportError(.protocolViolation, "could not build the request URL") }
        let call = HTTPCall(
            method, url, bearer: credentials.token, body: body,
            timeout: .milliseconds(Int64(timeout * 1000)))
        do {
            let answer = try await OutboundHTTP.send(call)
            return Answer(status: answer.status, body: answer.body, headers: answer.headers)
        } catch let error as HTTPCallError {
            throw TransportError(.unreachable, error.description)
        }
    }

    /// The `error` (or `message`) a node's error body carries.
    private struct ErrorBody: Decodable {
        let error: String?
        let message: String?
    }

    /// Turns an unsuccessful answer into a clear error.
    public func failure(_ answer: Answer, doing what: String) -> TransportError {
        let decoded = try? JSONDecoder().decode(ErrorBody.self, from: answer.body)
        let detail =
            decoded?.error ?? decoded?.message ?? String(decoding: answer.body.prefix(300), as: UTF8.self)
        switch answer.status {
        case 401: return TransportError(.unauthorized, "\(what) was refused: \(detail); get a new token")
        case 403: return TransportError(.forbidden, "\(what) was refused: \(detail)")
        case 404: return TransportError(.notFound, "\(what) failed: \(detail)")
        default: return TransportError(.server, "\(what) failed with HTTP \(answer.status): \(detail)")
        }
    }

    /// The `x-shoal-frame: G/F` header: the primary's position after a write.
    public static func position(_ headers: [String: String]) -> (generation: UInt64, frame: UInt64)? {
        guard let value = headers["x-shoal-frame"] else { return nil }
        let parts = value.split(separator: "/")
        guard parts.count == 2, let generation = UInt64(parts[0]), let frame = UInt64(parts[1]) else { return nil }
        return (generation, frame)
    }
}
