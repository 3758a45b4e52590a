import Foundation
import Hummingbird

/// The bearer token of a request's `Authorization` header, parsed one way for both servers.
public enum BearerToken {
    /// What a request's `Authorization` header holds.
    public enum Presented: Sendable, Equatable {
        /// No `Authorization` header.
        case missing
        /// A header that is not `Bearer <token>`.
        case malformed
        /// A bearer token (trimmed; possibly one a client sends for "none", such as `None`).
        case token(String)
    }

    /// Parses `request`'s `Authorization` header (the scheme is case-insensitive).
    public static func presented(in request: Request) -> Presented {
        guard let header = request.headers[.authorization] else { return .missing }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return .malformed }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? .malformed : .token(token)
    }

    /// The request's bearer token, or nil when it has none or a malformed header.
    public static func token(in request: Request) -> String? {
        if case .token(let token) = presented(in: request) { return token }
        return nil
    }
}

/// Refuses, before any handler runs, a request that carries no bearer token: the routes of a
/// group with this middleware cannot be reached without one, whatever their handlers forget.
/// Handlers still verify the token and what it grants; this is the floor under them.
public struct BearerTokenRequired: RouterMiddleware {
    /// The context of both servers.
    public typealias Context = ServerRequestContext
    let refusal: @Sendable (BearerToken.Presented) -> any Error

    /// A middleware that throws `refusal(presented)` (an error the server renders as 401) for a
    /// request without a well-formed bearer token.
    public init(refusal: @escaping @Sendable (BearerToken.Presented) -> any Error) {
        self.refusal = refusal
    }

    /// Passes a request with a bearer token on; refuses any other.
    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard case .token = context.presented else { throw refusal(context.presented) }
        return try await next(request, context)
    }
}

/// The request context of both servers: Hummingbird's core context and the request's bearer
/// token, read once by `BearerTokenParsing` at the router's root. Handlers take the token from
/// here (`bearerToken`), never from the headers; on secured routes `BearerTokenRequired` has
/// already refused a request without one.
public struct ServerRequestContext: RequestContext {
    /// Hummingbird's part.
    public var coreContext: CoreRequestContextStorage
    /// What the request's `Authorization` header holds.
    public var presented: BearerToken.Presented = .missing

    /// A context for a request from `source`.
    public init(source: Source) {
        coreContext = .init(source: source)
    }

    /// The request's bearer token, nil when it has none or a malformed header.
    public var bearerToken: String? {
        if case .token(let token) = presented { return token }
        return nil
    }
}

/// Reads the request's bearer token into its context, once, before any route runs.
public struct BearerTokenParsing: RouterMiddleware {
    /// The context of both servers.
    public typealias Context = ServerRequestContext

    /// The middleware.
    public init() {}

    /// Sets `context.presented` and passes the request on.
    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var context = context
        context.presented = BearerToken.presented(in: request)
        return try await next(request, context)
    }
}
