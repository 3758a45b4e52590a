import ShoalSyncTransport

/// The one error type of ShoalClient: what went wrong and what to do.
public struct ClientError: Error, Sendable, CustomStringConvertible, Equatable {
    enum Code: Sendable, Equatable {
        case unauthorized, forbidden, notFound, server, unreachable, protocolViolation, sql, corruptReplica,
            foreignReplica, replicaBehind
    }

    let code: Code
    /// What happened and what to do next.
    public let message: String
    /// The Hrana error code for SQL errors (`SQLITE_CONSTRAINT`, …).
    public let sqlCode: String?

    init(_ code: Code, _ message: String, sqlCode: String? = nil) {
        self.code = code
        self.message = message
        self.sqlCode = sqlCode
    }

    /// The client's form of a failure of the sync protocol or of a request to the node.
    init(_ error: TransportError) {
        let code: Code =
            switch error.kind {
            case .unauthorized: .unauthorized
            case .forbidden: .forbidden
            case .notFound: .notFound
            case .server: .server
            case .unreachable: .unreachable
            case .protocolViolation: .protocolViolation
            }
        self.init(code, error.message)
    }

    /// Runs `body`, throwing a `TransportError` it throws as a `ClientError` (the one error type
    /// the library's callers see); other errors pass unchanged.
    @discardableResult
    static func translating<T>(
        isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T
    ) async throws -> T {
        do {
            return try await body()
        } catch let error as TransportError {
            throw ClientError(error)
        }
    }

    /// A readable message.
    public var description: String { message }

    /// Errors of the same kind are equal (messages are for people).
    public static func == (lhs: ClientError, rhs: ClientError) -> Bool { lhs.code == rhs.code }

    /// The token is missing, invalid, expired or revoked: get a new one.
    public static let unauthorized = ClientError(.unauthorized, "unauthorized")
    /// The token does not cover this database, or the region rule forbids this location.
    public static let forbidden = ClientError(.forbidden, "forbidden")
    /// The database does not exist on the node.
    public static let notFound = ClientError(.notFound, "not found")
    /// The server failed or answered something unexpected.
    public static let server = ClientError(.server, "server error")
    /// The server could not be reached, or did not answer in time.
    public static let unreachable = ClientError(.unreachable, "unreachable")
    /// The server broke the protocol.
    public static let protocolViolation = ClientError(.protocolViolation, "protocol violation")
    /// A SQL statement failed on the primary.
    public static let sql = ClientError(.sql, "sql error")
    /// The local replica file is damaged; `Database.rebuild` replaces it.
    public static let corruptReplica = ClientError(.corruptReplica, "corrupt replica")
    /// The local replica belongs to another database; use another directory or `Database.rebuild`.
    public static let foreignReplica = ClientError(.foreignReplica, "foreign replica")
    /// A write committed on the primary, but the replica did not reach it in time (read-your-writes);
    /// the write must not be sent again.
    public static let replicaBehind = ClientError(.replicaBehind, "replica behind")
}
