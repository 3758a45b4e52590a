/// The one error type of ShoalClient: what went wrong and what to do.
public struct ClientError: Error, Sendable, CustomStringConvertible, Equatable {
    enum Code: Sendable, Equatable {
        case unauthorized, forbidden, notFound, server, unreachable, protocolViolation, sql, corruptReplica,
            foreignReplica
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
}
