/// Per-database settings the control plane (or an operator) sets through a node's admin API
/// (`POST /v1/namespaces/{ns}/create` and `/config`); the node stores them in the database's
/// directory as `config.json` and applies them when the database opens.
public struct DatabaseSettings: Sendable, Codable, Equatable {
    /// Refuse every read and write (e.g. an unpaid account).
    public var blockReads: Bool
    /// Refuse statements that write.
    public var blockWrites: Bool
    /// The largest the database may grow, in bytes (rounded down to whole pages); nil for no limit.
    public var maxSizeBytes: Int64?
    /// The group the database belongs to: group tokens (`gid`) for it are accepted.
    public var group: String?
    /// Where its region rule lets its data go (resolved to location codes by the control plane);
    /// nil for no rule. Sync requests (`/info`, `/export`, `/sync`) then need a token whose `loc`
    /// is one of these.
    public var allowedLocations: [String]?
    /// Set on a replica: the database's URL on its primary node (`http://host/db/org/name`). The
    /// node then keeps a replica that follows it, serves reads locally and forwards writes.
    public var primaryURL: String?
    /// The token a replica sends to its primary's sync protocol (a read-only token for this
    /// database whose `loc` is this node's location); nil when the primary does not check tokens.
    public var syncToken: String?
    /// The database's id in the control plane's catalog: which incarnation of the name this is (a
    /// database deleted and created again under the same name gets a new id). Database tokens name
    /// it as `did`; a token for another incarnation is refused. Nil for settings written by an
    /// operator or by a control plane from before incarnation ids.
    public var databaseID: String?
    /// When this incarnation was created, in milliseconds since 1970: a database token without
    /// `did` (issued before incarnation ids) is accepted only if it was issued after this.
    public var createdAt: Int64?
    /// The group's id in the catalog: which incarnation of the group's name this database is in.
    /// Group tokens name it as `gdid`; a token of a group deleted and created again is refused.
    public var groupID: String?
    /// How far back its backup must stay restorable, in seconds (its plan's `backup_retention`);
    /// nil for the node's default.
    public var backupRetention: Int64?

    /// Settings that block nothing and set no limit.
    public init(
        blockReads: Bool = false, blockWrites: Bool = false, maxSizeBytes: Int64? = nil, group: String? = nil,
        allowedLocations: [String]? = nil, primaryURL: String? = nil, syncToken: String? = nil,
        databaseID: String? = nil, createdAt: Int64? = nil, groupID: String? = nil, backupRetention: Int64? = nil
    ) {
        self.backupRetention = backupRetention
        self.groupID = groupID
        self.databaseID = databaseID
        self.createdAt = createdAt
        self.primaryURL = primaryURL
        self.syncToken = syncToken
        self.blockReads = blockReads
        self.blockWrites = blockWrites
        self.maxSizeBytes = maxSizeBytes
        self.group = group
        self.allowedLocations = allowedLocations
    }

    enum CodingKeys: String, CodingKey {
        case blockReads = "block_reads"
        case blockWrites = "block_writes"
        case maxSizeBytes = "max_size_bytes"
        case group
        case allowedLocations = "allowed_locations"
        case primaryURL = "primary_url"
        case syncToken = "sync_token"
        case databaseID = "database_id"
        case createdAt = "created_at"
        case groupID = "group_id"
        case backupRetention = "backup_retention"
    }

    /// Decodes settings; absent keys keep their defaults.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        blockReads = try container.decodeIfPresent(Bool.self, forKey: .blockReads) ?? false
        blockWrites = try container.decodeIfPresent(Bool.self, forKey: .blockWrites) ?? false
        maxSizeBytes = try container.decodeIfPresent(Int64.self, forKey: .maxSizeBytes)
        group = try container.decodeIfPresent(String.self, forKey: .group)
        allowedLocations = try container.decodeIfPresent([String].self, forKey: .allowedLocations)
        primaryURL = try container.decodeIfPresent(String.self, forKey: .primaryURL)
        syncToken = try container.decodeIfPresent(String.self, forKey: .syncToken)
        databaseID = try container.decodeIfPresent(String.self, forKey: .databaseID)
        createdAt = try container.decodeIfPresent(Int64.self, forKey: .createdAt)
        groupID = try container.decodeIfPresent(String.self, forKey: .groupID)
        backupRetention = try container.decodeIfPresent(Int64.self, forKey: .backupRetention)
        if let backupRetention, backupRetention < 1 {
            throw DecodingError.dataCorruptedError(
                forKey: .backupRetention, in: container, debugDescription: "backup_retention must be at least 1 second")
        }
        if let maxSizeBytes, maxSizeBytes < 4096 {
            throw DecodingError.dataCorruptedError(
                forKey: .maxSizeBytes, in: container, debugDescription: "max_size_bytes must be at least 4096")
        }
    }
}
