/// What went wrong talking to a node's database URL, and what to do next.
public struct TransportError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The kind of failure.
    public enum Kind: Sendable, Equatable {
        /// The token is missing, invalid, expired or revoked.
        case unauthorized
        /// The token does not cover this database, or a region rule forbids this location.
        case forbidden
        /// The database does not exist on the node.
        case notFound
        /// The node failed or answered an unexpected status.
        case server
        /// The node could not be reached, or did not answer in time.
        case unreachable
        /// The node's answer broke the protocol.
        case protocolViolation
    }

    /// The kind of failure.
    public let kind: Kind
    /// What happened and what to do next.
    public let message: String

    /// A failure of `kind`, described by `message`.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message.
    public var description: String { message }

    /// Failures of the same kind are equal (messages are for people).
    public static func == (lhs: TransportError, rhs: TransportError) -> Bool { lhs.kind == rhs.kind }
}
