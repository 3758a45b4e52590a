import Foundation
import HTTPTypes
import Hummingbird
import ShoalModel

/// The one error type of the node: what went wrong for the caller, mapped to HTTP in one place.
public struct NodeError: Error, Sendable, CustomStringConvertible, HTTPResponseError {
    enum Code: Sendable {
        case invalidName, notFound, noDatabase, badRequest, streamExpired, invalidBaton, conflict, unavailable,
            tooLarge, unauthorized, forbidden, gone, tooManyRequests
    }

    let code: Code
    /// What happened and what to do.
    public let message: String
    /// Seconds the caller should wait before trying again (sent as `Retry-After`), if it should.
    public let retryAfter: Int?

    init(_ code: Code, _ message: String, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    /// A readable message.
    public var description: String { message }

    static func invalidName(_ message: String) -> NodeError { .init(.invalidName, message) }
    static func notFound(_ message: String) -> NodeError { .init(.notFound, message) }
    static func noDatabase(_ message: String) -> NodeError { .init(.noDatabase, message) }
    static func badRequest(_ message: String) -> NodeError { .init(.badRequest, message) }
    static func invalidBaton(_ message: String) -> NodeError { .init(.invalidBaton, message) }
    static func conflict(_ message: String) -> NodeError { .init(.conflict, message) }
    static func unavailable(_ message: String) -> NodeError { .init(.unavailable, message) }
    /// The node is busy for now (its pool of open databases is full): 503 with `Retry-After`.
    static func unavailable(_ message: String, retryAfter: Int) -> NodeError {
        .init(.unavailable, message, retryAfter: retryAfter)
    }
    /// A cap on what a token, an organization or the node holds open was reached: 429 with `Retry-After`.
    static func tooManyRequests(_ message: String, retryAfter: Int) -> NodeError {
        .init(.tooManyRequests, message, retryAfter: retryAfter)
    }
    static func tooLarge(_ message: String) -> NodeError { .init(.tooLarge, message) }
    static func unauthorized(_ message: String) -> NodeError { .init(.unauthorized, message) }
    static func forbidden(_ message: String) -> NodeError { .init(.forbidden, message) }
    static func gone(_ message: String) -> NodeError { .init(.gone, message) }
    static let streamExpired = NodeError(.streamExpired, "The stream has expired due to inactivity")

    /// The HTTP status for this error.
    public var status: HTTPResponse.Status {
        switch code {
        case .invalidName, .badRequest, .invalidBaton, .streamExpired, .noDatabase: .badRequest
        case .notFound: .notFound
        case .conflict: .conflict
        case .unavailable: .serviceUnavailable
        case .tooLarge: .contentTooLarge
        case .unauthorized: .unauthorized
        case .forbidden: .forbidden
        case .gone: .gone
        case .tooManyRequests: .tooManyRequests
        }
    }

    /// The response: libSQL's shapes (`{"error": …}` JSON for most, the Hrana error object for an
    /// expired stream, plain text for protocol errors, as sqld does).
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body: [UInt8]
        var headers: HTTPFields = [:]
        if let retryAfter { headers[.retryAfter] = "\(retryAfter)" }
        switch code {
        case .streamExpired:
            headers[.contentType] = "application/json"
            body = Array(try WireJSON.encoder().encode(["message": message, "code": "STREAM_EXPIRED"]))
        case .invalidBaton, .badRequest:
            headers[.contentType] = "text/plain; charset=utf-8"
            body = Array(message.utf8)
        default:
            headers[.contentType] = "application/json"
            body = Array(try WireJSON.encoder().encode(["error": message]))
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
