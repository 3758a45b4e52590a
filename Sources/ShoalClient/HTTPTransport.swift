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
struct HTTPTransport: Sendable {
    let baseURL: URL
    let credentials: Credentials

    struct Answer {
        let status: Int
        let body: Data
        let headers: [String: String]
    }

    func send(_ method: String, _ path: String, body: Data? = nil, timeout: TimeInterval = 60) async throws -> Answer {
        try await send(method, url: baseURL.appendingPathComponent(path), body: body, timeout: timeout)
    }

    /// Sends to an absolute URL (one with a query string, say), with the bearer token.
    func send(_ method: String, url: URL?, body: Data? = nil, timeout: TimeInterval = 60) async throws -> Answer {
        guard let url else { throw ClientError(.protocolViolation, "could not build the request URL") }
        let call = HTTPCall(
            method, url, bearer: credentials.token, body: body,
            timeout: .milliseconds(Int64(timeout * 1000)))
        do {
            let answer = try await OutboundHTTP.send(call)
            return Answer(status: answer.status, body: answer.body, headers: answer.headers)
        } catch let error as HTTPCallError {
            throw ClientError(.unreachable, error.description)
        }
    }

    /// Turns an unsuccessful answer into a clear error.
    func failure(_ answer: Answer, doing what: String) -> ClientError {
        let detail =
            (try? JSONSerialization.jsonObject(with: answer.body) as? [String: Any])
            .flatMap { ($0?["error"] ?? $0?["message"]) as? String }
            ?? String(decoding: answer.body.prefix(300), as: UTF8.self)
        switch answer.status {
        case 401: return ClientError(.unauthorized, "\(what) was refused: \(detail); get a new token")
        case 403: return ClientError(.forbidden, "\(what) was refused: \(detail)")
        case 404: return ClientError(.notFound, "\(what) failed: \(detail)")
        default: return ClientError(.server, "\(what) failed with HTTP \(answer.status): \(detail)")
        }
    }

    /// Parses the `x-shoal-frame: G/F` header.
    static func position(_ headers: [String: String]) -> (generation: UInt64, frame: UInt64)? {
        guard let value = headers["x-shoal-frame"] else { return nil }
        let parts = value.split(separator: "/")
        guard parts.count == 2, let generation = UInt64(parts[0]), let frame = UInt64(parts[1]) else { return nil }
        return (generation, frame)
    }
}
