import Foundation
import HTTPTypes
import Hummingbird
import ShoalModel

/// The one error type of the control plane: a stable code, a message that says what to do, and
/// the HTTP mapping, in one place. Answers are always `{"error":{"code","message"}}`.
public struct ControlError: Error, Sendable, CustomStringConvertible, HTTPResponseError {
    enum Code: String, Sendable {
        case badRequest = "bad_request"
        case invalidName = "invalid_name"
        case unauthorized = "unauthorized"
        case forbidden = "forbidden"
        case notFound = "not_found"
        case conflict = "conflict"
        case quotaExceeded = "quota_exceeded"
        case regionLockViolation = "region_lock_violation"
        case deleteProtected = "delete_protected"
        case noNodeAvailable = "no_node_available"
        case placementFailed = "placement_failed"
        case unprocessable = "unprocessable"
        case catalogUnavailable = "catalog_unavailable"
    }

    let code: Code
    /// What happened and what to do.
    public let message: String

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The stable machine-readable code.
    public var codeName: String { code.rawValue }
    /// A readable message.
    public var description: String { "\(code.rawValue): \(message)" }

    static func badRequest(_ message: String) -> Self { .init(.badRequest, message) }
    static func invalidName(_ message: String) -> Self { .init(.invalidName, message) }
    static func unauthorized(_ message: String) -> Self { .init(.unauthorized, message) }
    static func forbidden(_ message: String) -> Self { .init(.forbidden, message) }
    static func notFound(_ message: String) -> Self { .init(.notFound, message) }
    static func conflict(_ message: String) -> Self { .init(.conflict, message) }
    static func quotaExceeded(_ message: String) -> Self { .init(.quotaExceeded, message) }
    static func regionLockViolation(_ message: String) -> Self { .init(.regionLockViolation, message) }
    static func deleteProtected(_ message: String) -> Self { .init(.deleteProtected, message) }
    static func noNodeAvailable(_ message: String) -> Self { .init(.noNodeAvailable, message) }
    static func placementFailed(_ message: String) -> Self { .init(.placementFailed, message) }
    static func unprocessable(_ message: String) -> Self { .init(.unprocessable, message) }
    static func catalogUnavailable(_ message: String) -> Self { .init(.catalogUnavailable, message) }

    /// The HTTP status for this error.
    public var status: HTTPResponse.Status {
        switch code {
        case .badRequest: .badRequest
        case .invalidName, .regionLockViolation, .unprocessable: .unprocessableContent
        case .unauthorized: .unauthorized
        case .forbidden, .quotaExceeded, .deleteProtected: .forbidden
        case .notFound: .notFound
        case .conflict: .conflict
        case .noNodeAvailable, .placementFailed, .catalogUnavailable: .serviceUnavailable
        }
    }

    /// `{"error":{"code","message"}}` with the mapped status.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = try WireJSON.encoder().encode(Platform.ErrorBody(code: code.rawValue, message: message))
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
