/// The one error type of ShoalReplication: what went wrong, and what to do about it.
public struct ReplicationError: Error, Sendable, CustomStringConvertible, Equatable {
    private enum Code: Sendable, Equatable {
        case invalidFrames
        case generationGone
        case positionMismatch
        case notBootstrapped
        case corruptState
        case closed
        case busy
        case io
        case invalidBase
    }

    private let code: Code
    /// What happened and what to do next.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// A readable summary.
    public var description: String { message }

    /// Frames that are not whole 4120-byte WAL frames, or break the log's order.
    public static func invalidFrames(_ message: String) -> ReplicationError { .init(.invalidFrames, message) }
    /// The requested generation is no longer kept; the replica must bootstrap again.
    public static func generationGone(_ message: String) -> ReplicationError { .init(.generationGone, message) }
    /// Frames do not continue the replica's position.
    public static func positionMismatch(_ message: String) -> ReplicationError { .init(.positionMismatch, message) }
    /// The replica has no data yet; bootstrap it from a base file first.
    public static func notBootstrapped(_ message: String) -> ReplicationError { .init(.notBootstrapped, message) }
    /// On-disk state that cannot be explained by any crash; needs an operator.
    public static func corruptState(_ message: String) -> ReplicationError { .init(.corruptState, message) }
    /// The object was closed.
    public static func closed(_ message: String) -> ReplicationError { .init(.closed, message) }
    /// Something held a lock for longer than allowed; try again later.
    public static func busy(_ message: String) -> ReplicationError { .init(.busy, message) }
    /// A file operation failed.
    public static func io(_ message: String) -> ReplicationError { .init(.io, message) }
    /// A base file is not a usable SQLite database with 4096-byte pages.
    public static func invalidBase(_ message: String) -> ReplicationError { .init(.invalidBase, message) }

    /// Errors are equal when they are of the same kind; messages are for people.
    public static func == (lhs: ReplicationError, rhs: ReplicationError) -> Bool {
        lhs.code == rhs.code
    }

    /// Whether two errors are of the same kind (messages aside).
    public func isSameKind(as other: ReplicationError) -> Bool { code == other.code }

    /// A pattern that matches errors of the same kind: `catch ReplicationError.kindGenerationGone`.
    public static func ~= (pattern: ReplicationError, error: any Error) -> Bool {
        (error as? ReplicationError)?.isSameKind(as: pattern) ?? false
    }

    /// A pattern value for `generationGone`.
    public static let kindGenerationGone = generationGone("")
    /// A pattern value for `positionMismatch`.
    public static let kindPositionMismatch = positionMismatch("")
    /// A pattern value for `busy`.
    public static let kindBusy = busy("")
    /// A pattern value for `notBootstrapped`.
    public static let kindNotBootstrapped = notBootstrapped("")
    /// A pattern value for `invalidFrames`.
    public static let kindInvalidFrames = invalidFrames("")
    /// A pattern value for `corruptState`.
    public static let kindCorruptState = corruptState("")
    /// A pattern value for `invalidBase`.
    public static let kindInvalidBase = invalidBase("")
}
