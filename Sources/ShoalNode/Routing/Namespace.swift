import ShoalModel

/// A hosted database's name: its organization and database names, both `[a-z0-9-]{1,64}`.
public struct Namespace: Sendable, Hashable, CustomStringConvertible {
    /// The organization.
    public let organization: String
    /// The database within it.
    public let database: String

    /// Validates both names; throws `NodeError.invalidName` otherwise.
    public init(organization: String, database: String) throws {
        try Self.validate(organization, what: "organization")
        try Self.validate(database, what: "database")
        self.organization = organization
        self.database = database
    }

    /// Parses `org/database`.
    public init(_ text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw NodeError.invalidName("a namespace is written organization/database, got \(text.debugDescription)")
        }
        try self.init(organization: String(parts[0]), database: String(parts[1]))
    }

    private static func validate(_ name: String, what: String) throws {
        guard Platform.isValidName(name) else {
            throw NodeError.invalidName(
                "\(what) name \(name.debugDescription) is not valid: use 1 to 64 of a-z, 0-9 and -")
        }
    }

    /// `org/database`.
    public var description: String { "\(organization)/\(database)" }

    /// The database's directory under `dataDirectory`: sharded by a hash of the name, so that
    /// thousands of databases never share one directory listing. The only place paths are made.
    public func directory(in dataDirectory: String) -> String {
        var hash: UInt32 = 2_166_136_261
        for byte in description.utf8 {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        let shard = String(hash & 0xff, radix: 16)
        let padded = shard.count == 1 ? "0" + shard : shard
        return "\(dataDirectory)/databases/\(padded)/\(organization)/\(database)"
    }
}
