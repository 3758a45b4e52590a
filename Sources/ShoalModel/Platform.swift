/// Bodies of the control plane's Platform API (`/v1/…`), shared by the server, the client library
/// and the CLI. Field names follow Turso's Platform API where one exists.
public enum Platform {
    /// Every error answer: `{"error":{"code","message"}}`.
    public struct ErrorBody: Codable, Sendable, Equatable {
        /// The error itself.
        public struct Detail: Codable, Sendable, Equatable {
            /// A stable machine-readable code (`region_lock_violation`, `quota_exceeded`, …).
            public var code: String
            /// What happened and what to do.
            public var message: String
        }
        /// The error.
        public var error: Detail

        /// An error body with `code` and `message`.
        public init(code: String, message: String) {
            error = Detail(code: code, message: message)
        }
    }

    /// Where a group's (or an organization's) data may live: jurisdictions, explicit locations, or both
    /// (a location is allowed when either list admits it).
    public struct RegionRule: Codable, Sendable, Equatable {
        /// Allowed jurisdictions (`eu`, `us`, …).
        public var jurisdictions: [String]?
        /// Allowed location codes.
        public var locations: [String]?

        /// A rule from its lists.
        public init(jurisdictions: [String]? = nil, locations: [String]? = nil) {
            self.jurisdictions = jurisdictions
            self.locations = locations
        }

        /// Whether a location in `jurisdiction` may hold data under this rule.
        public func allows(location: String, jurisdiction: String) -> Bool {
            if jurisdictions == nil && locations == nil { return true }
            return (jurisdictions ?? []).contains(jurisdiction) || (locations ?? []).contains(location)
        }

        /// The rule as a person reads it, for error messages.
        public var description: String {
            var parts: [String] = []
            if let jurisdictions { parts.append("jurisdictions [\(jurisdictions.joined(separator: ", "))]") }
            if let locations { parts.append("locations [\(locations.joined(separator: ", "))]") }
            return parts.isEmpty ? "no restriction" : parts.joined(separator: " or ")
        }
    }

    /// An organization.
    public struct Organization: Codable, Sendable, Equatable {
        /// Its unique slug (`[a-z0-9-]{1,64}`).
        public var slug: String
        /// Its plan's name.
        public var plan: String
        /// The rule every group of the organization must satisfy, if any.
        public var regionRule: RegionRule?

        enum CodingKeys: String, CodingKey {
            case slug, plan
            case regionRule = "region_rule"
        }

        /// A value with every field.
        public init(slug: String, plan: String, regionRule: RegionRule?) {
            self.slug = slug
            self.plan = plan
            self.regionRule = regionRule
        }
    }

    /// A plan: quotas as data.
    public struct Plan: Codable, Sendable, Equatable {
        /// The plan's name.
        public var name: String
        /// Its quotas.
        public var quotas: Quotas

        /// A value with every field.
        public init(name: String, quotas: Quotas) {
            self.name = name
            self.quotas = quotas
        }
    }

    /// What a plan allows.
    public struct Quotas: Codable, Sendable, Equatable {
        /// Databases per organization.
        public var databases: Int64
        /// Groups per organization.
        public var groups: Int64
        /// Locations per group.
        public var locationsPerGroup: Int64
        /// Stored bytes per organization.
        public var storageBytes: Int64
        /// How far back its databases can be restored, in seconds (`backup_retention`); older
        /// backups are pruned once newer ones cover the whole window.
        public var backupRetention: Int64

        /// A day: the retention of a plan saved without one.
        public static let defaultBackupRetention: Int64 = 86_400
        /// The longest retention a plan may have (10 years).
        public static let maxBackupRetention: Int64 = 10 * 366 * 86_400

        enum CodingKeys: String, CodingKey {
            case databases, groups
            case locationsPerGroup = "locations_per_group"
            case storageBytes = "storage_bytes"
            case backupRetention = "backup_retention"
        }

        /// A value with every field.
        public init(
            databases: Int64, groups: Int64, locationsPerGroup: Int64, storageBytes: Int64,
            backupRetention: Int64 = Quotas.defaultBackupRetention
        ) {
            self.databases = databases
            self.groups = groups
            self.locationsPerGroup = locationsPerGroup
            self.storageBytes = storageBytes
            self.backupRetention = backupRetention
        }

        /// Decodes quotas; a missing `backup_retention` is a day.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            databases = try container.decode(Int64.self, forKey: .databases)
            groups = try container.decode(Int64.self, forKey: .groups)
            locationsPerGroup = try container.decode(Int64.self, forKey: .locationsPerGroup)
            storageBytes = try container.decode(Int64.self, forKey: .storageBytes)
            backupRetention =
                try container.decodeIfPresent(Int64.self, forKey: .backupRetention) ?? Self.defaultBackupRetention
        }
    }

    /// What an organization uses, beside its quotas.
    public struct Usage: Codable, Sendable, Equatable {
        /// Databases in the organization.
        public var databases: Int64
        /// Groups in the organization.
        public var groups: Int64
        /// Bytes its databases take on their primaries' disks (file, WAL and archived generations),
        /// as the nodes last reported them: what the plan's `storage_bytes` is checked against.
        public var storageBytes: Int64

        /// A value with every field.
        public init(databases: Int64, groups: Int64, storageBytes: Int64) {
            self.databases = databases
            self.groups = groups
            self.storageBytes = storageBytes
        }

        enum CodingKeys: String, CodingKey {
            case databases, groups
            case storageBytes = "storage_bytes"
        }

        /// Decodes usage; `storage_bytes` is 0 from control planes that do not report it.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            databases = try container.decode(Int64.self, forKey: .databases)
            groups = try container.decode(Int64.self, forKey: .groups)
            storageBytes = try container.decodeIfPresent(Int64.self, forKey: .storageBytes) ?? 0
        }
    }

    /// A location.
    public struct Location: Codable, Sendable, Equatable {
        /// Its code (`fra`).
        public var code: String
        /// Its display name.
        public var name: String
        /// Its jurisdiction (`eu`).
        public var jurisdiction: String

        /// A value with every field.
        public init(code: String, name: String, jurisdiction: String) {
            self.code = code
            self.name = name
            self.jurisdiction = jurisdiction
        }
    }

    /// A group: a primary location, replica locations, a region rule.
    public struct Group: Codable, Sendable, Equatable {
        /// The group's name.
        public var name: String
        /// Its immutable id.
        public var uuid: String
        /// Every location of the group, the primary first.
        public var locations: [String]
        /// The primary location.
        public var primary: String
        /// The group's own rule, if any.
        public var regionRule: RegionRule?
        /// Whether deleting the group is refused.
        public var deleteProtection: Bool

        enum CodingKeys: String, CodingKey {
            case name, uuid, locations, primary
            case regionRule = "region_rule"
            case deleteProtection = "delete_protection"
        }

        /// A value with every field.
        public init(
            name: String, uuid: String, locations: [String], primary: String, regionRule: RegionRule?,
            deleteProtection: Bool
        ) {
            self.name = name
            self.uuid = uuid
            self.locations = locations
            self.primary = primary
            self.regionRule = regionRule
            self.deleteProtection = deleteProtection
        }
    }

    /// The short answer to a database creation.
    public struct CreatedDatabase: Codable, Sendable, Equatable {
        /// The immutable id.
        public var id: String
        /// `{database}-{org}.{domain}`.
        public var hostname: String
        /// The name.
        public var name: String

        /// A value with every field.
        public init(id: String, hostname: String, name: String) {
            self.id = id
            self.hostname = hostname
            self.name = name
        }

        enum CodingKeys: String, CodingKey {
            case id = "DbId"
            case hostname = "Hostname"
            case name = "Name"
        }
    }

    /// A database as listed.
    public struct Database: Codable, Sendable, Equatable {
        /// The name.
        public var name: String
        /// The immutable id.
        public var id: String
        /// `{database}-{org}.{domain}`.
        public var hostname: String
        /// The group's name.
        public var group: String
        /// The primary location.
        public var primaryRegion: String
        /// Every location holding the database.
        public var regions: [String]
        /// Whether reads are refused.
        public var blockReads: Bool
        /// Whether writes are refused.
        public var blockWrites: Bool
        /// Whether deleting it is refused.
        public var deleteProtection: Bool
        /// The version of its group's tenant schema it last reported applying (0: none).
        public var schemaVersion: Int64?
        /// How its schema differs from what its applied migrations make; nil when it did not differ
        /// at its last check.
        public var schemaDrift: SchemaDrift?

        /// A value with every field.
        public init(
            name: String, id: String, hostname: String, group: String, primaryRegion: String, regions: [String],
            blockReads: Bool, blockWrites: Bool, deleteProtection: Bool, schemaVersion: Int64? = nil,
            schemaDrift: SchemaDrift? = nil
        ) {
            self.schemaVersion = schemaVersion
            self.schemaDrift = schemaDrift
            self.name = name
            self.id = id
            self.hostname = hostname
            self.group = group
            self.primaryRegion = primaryRegion
            self.regions = regions
            self.blockReads = blockReads
            self.blockWrites = blockWrites
            self.deleteProtection = deleteProtection
        }

        enum CodingKeys: String, CodingKey {
            case name = "Name"
            case id = "DbId"
            case hostname = "Hostname"
            case group
            case primaryRegion
            case regions
            case blockReads = "block_reads"
            case blockWrites = "block_writes"
            case deleteProtection = "delete_protection"
            case schemaVersion = "schema_version"
            case schemaDrift = "schema_drift"
        }
    }

    /// A database's settings (`GET|PATCH …/configuration`).
    public struct DatabaseConfiguration: Codable, Sendable, Equatable {
        /// The size limit (`"500mb"`, `"2gb"`, bytes as digits), or `""`/nil for none.
        public var sizeLimit: String?
        /// Refuse reads.
        public var blockReads: Bool?
        /// Refuse writes.
        public var blockWrites: Bool?
        /// Refuse deletion.
        public var deleteProtection: Bool?

        /// A configuration (nil fields are left as they are by a PATCH).
        public init(
            sizeLimit: String? = nil, blockReads: Bool? = nil, blockWrites: Bool? = nil,
            deleteProtection: Bool? = nil
        ) {
            self.sizeLimit = sizeLimit
            self.blockReads = blockReads
            self.blockWrites = blockWrites
            self.deleteProtection = deleteProtection
        }

        enum CodingKeys: String, CodingKey {
            case sizeLimit = "size_limit"
            case blockReads = "block_reads"
            case blockWrites = "block_writes"
            case deleteProtection = "delete_protection"
        }
    }

    /// Where a copy of a database is served.
    public struct Instance: Codable, Sendable, Equatable {
        /// The copy's id.
        public var uuid: String
        /// The copy's name (its location code).
        public var name: String
        /// `primary` or `replica`.
        public var type: String
        /// The location code.
        public var region: String
        /// The host name clients use (`{database}-{org}.{domain}`).
        public var hostname: String
        /// The base URL of the database on its node (`http://…/db/{org}/{db}`).
        public var url: String

        /// A value with every field.
        public init(uuid: String, name: String, type: String, region: String, hostname: String, url: String) {
            self.uuid = uuid
            self.name = name
            self.type = type
            self.region = region
            self.hostname = hostname
            self.url = url
        }
    }

    /// One audited change or refusal.
    public struct AuditLog: Codable, Sendable, Equatable {
        /// Increasing id (the pagination cursor).
        public var id: Int64
        /// Milliseconds since 1970.
        public var at: Int64
        /// Who did it (the API token's name).
        public var actor: String
        /// What (`database.create`, `group.location.add`, …).
        public var action: String
        /// On what (`org/db`, `org/group`, …).
        public var target: String
        /// `ok` or the refusal's error code.
        public var outcome: String
        /// A sentence about it.
        public var detail: String

        /// A value with every field.
        public init(
            id: Int64, at: Int64, actor: String, action: String, target: String, outcome: String, detail: String
        ) {
            self.id = id
            self.at = at
            self.actor = actor
            self.action = action
            self.target = target
            self.outcome = outcome
            self.detail = detail
        }
    }

    /// A data-plane node as the control plane sees it.
    public struct Node: Codable, Sendable, Equatable {
        /// The node's id.
        public var id: String
        /// The location it serves.
        public var location: String
        /// Its base URL.
        public var url: String
        /// `up` or `down` (no heartbeat lately).
        public var status: String
        /// How many primaries it holds.
        public var databases: Int64

        /// A value with every field.
        public init(id: String, location: String, url: String, status: String, databases: Int64) {
            self.id = id
            self.location = location
            self.url = url
            self.status = status
            self.databases = databases
        }
    }

    /// The control plane's answer to a node's registration.
    public struct NodeRegistrationAnswer: Codable, Sendable, Equatable {
        /// The node as registered.
        public var node: Node
        /// How often it heartbeats.
        public var heartbeatSeconds: Int64
        /// The token policy in force.
        public var policy: TokenPolicy
        /// The credential issued to the node (shown once); absent when it keeps the one it has.
        public var credential: String?

        /// An answer.
        public init(node: Node, heartbeatSeconds: Int64, policy: TokenPolicy, credential: String?) {
            self.node = node
            self.heartbeatSeconds = heartbeatSeconds
            self.policy = policy
            self.credential = credential
        }

        enum CodingKeys: String, CodingKey {
            case node, policy, credential
            case heartbeatSeconds = "heartbeat_seconds"
        }
    }

    /// A node's registration (`POST /v1/nodes`).
    public struct NodeRegistration: Codable, Sendable, Equatable {
        /// The location it serves.
        public var location: String
        /// The base URL others reach it at.
        public var url: String
        /// The secret of its admin API, for the control plane's calls.
        public var adminToken: String?
        /// The id the control plane gave it before, so a restart on another URL keeps its databases.
        public var id: String?

        /// A registration.
        public init(location: String, url: String, adminToken: String?, id: String? = nil) {
            self.location = location
            self.url = url
            self.adminToken = adminToken
            self.id = id
        }

        enum CodingKeys: String, CodingKey {
            case location
            case url
            case adminToken = "admin_token"
            case id
        }
    }

    /// What a node must enforce on tokens, sent with every heartbeat answer and pushed on change.
    public struct TokenPolicy: Codable, Sendable, Equatable {
        /// Public keys as a JWKS document's `keys`.
        public var keys: [JSONWebKey]
        /// Revoked token ids.
        public var revokedJti: [String]
        /// Tokens issued before these times (milliseconds since 1970) are refused, by scope: `db:org/name`
        /// or `group:org/name`.
        public var notBefore: [String: Int64]

        /// A policy.
        public init(keys: [JSONWebKey], revokedJti: [String], notBefore: [String: Int64]) {
            self.keys = keys
            self.revokedJti = revokedJti
            self.notBefore = notBefore
        }

        enum CodingKeys: String, CodingKey {
            case keys
            case revokedJti = "revoked_jti"
            case notBefore = "not_before"
        }
    }

    /// What a node's heartbeat sends: the version of the token policy it holds, so the answer
    /// carries the policy only when it changed.
    public struct HeartbeatRequest: Codable, Sendable, Equatable {
        /// The `policy_version` of the last answer that carried a policy; nil for none yet.
        public var policyVersion: String?
        /// What the node's primaries take on disk now, for those that changed since the node last
        /// reported them (at most `maxStorageReports`); nil or empty when none did.
        public var storage: [DatabaseStorage]?
        /// Tenant-schema versions primaries reached when they were brought up to date on opening
        /// (at most `maxStorageReports`); nil or empty when none did since the last heartbeat.
        public var schemaVersions: [SchemaVersionReport]?

        /// The most storage reports one heartbeat carries; a node with more sends the rest next time.
        public static let maxStorageReports = 2_000

        /// A heartbeat naming the policy version held and the storage that changed.
        public init(
            policyVersion: String?, storage: [DatabaseStorage]? = nil, schemaVersions: [SchemaVersionReport]? = nil
        ) {
            self.policyVersion = policyVersion
            self.storage = storage
            self.schemaVersions = schemaVersions
        }

        enum CodingKeys: String, CodingKey {
            case policyVersion = "policy_version"
            case storage
            case schemaVersions = "schema_versions"
        }
    }

    /// A primary's tenant-schema version after the node migrated it on opening.
    public struct SchemaVersionReport: Codable, Sendable, Equatable, Hashable {
        /// The database's id in the catalog.
        public var databaseID: String
        /// The version it is at.
        public var schemaVersion: Int64

        /// A report.
        public init(databaseID: String, schemaVersion: Int64) {
            self.databaseID = databaseID
            self.schemaVersion = schemaVersion
        }

        enum CodingKeys: String, CodingKey {
            case databaseID = "database_id"
            case schemaVersion = "schema_version"
        }
    }

    /// What one database takes on its primary's disk: its file, WAL and archived generations.
    public struct DatabaseStorage: Codable, Sendable, Equatable, Hashable {
        /// The database's id in the catalog (its incarnation).
        public var databaseID: String
        /// Bytes on disk.
        public var bytes: Int64

        /// A report.
        public init(databaseID: String, bytes: Int64) {
            self.databaseID = databaseID
            self.bytes = bytes
        }

        enum CodingKeys: String, CodingKey {
            case databaseID = "database_id"
            case bytes
        }
    }

    /// An organization whose databases take more than its plan's `storage_bytes`: its primaries
    /// refuse writes until it is back within the quota.
    public struct StorageExceeded: Codable, Sendable, Equatable {
        /// The organization's slug.
        public var organization: String
        /// Its plan.
        public var plan: String
        /// What its databases take, as last reported.
        public var storedBytes: Int64
        /// What its plan allows.
        public var storageBytes: Int64

        /// A value with every field.
        public init(organization: String, plan: String, storedBytes: Int64, storageBytes: Int64) {
            self.organization = organization
            self.plan = plan
            self.storedBytes = storedBytes
            self.storageBytes = storageBytes
        }

        enum CodingKeys: String, CodingKey {
            case organization, plan
            case storedBytes = "stored_bytes"
            case storageBytes = "storage_bytes"
        }
    }

    /// The control plane's answer to a heartbeat: the current policy's version, and the policy
    /// itself when the node's version is not it.
    public struct HeartbeatAnswer: Codable, Sendable, Equatable {
        /// The policy, absent when the node already holds this version.
        public var policy: TokenPolicy?
        /// The current policy's version (hex SHA-256 of its canonical JSON).
        public var policyVersion: String?
        /// The organizations with a database whose primary is this node that are over their plan's
        /// `storage_bytes` (the whole list each time: an organization not in it is within its quota).
        /// Nil from control planes that do not check storage.
        public var storageExceeded: [StorageExceeded]?

        /// An answer.
        public init(policy: TokenPolicy?, policyVersion: String?, storageExceeded: [StorageExceeded]? = nil) {
            self.policy = policy
            self.policyVersion = policyVersion
            self.storageExceeded = storageExceeded
        }

        enum CodingKeys: String, CodingKey {
            case policy
            case policyVersion = "policy_version"
            case storageExceeded = "storage_exceeded"
        }
    }

    /// The control plane's public JWKS document (`/.well-known/jwks.json`): its keys, and for nodes
    /// that verify tokens from it without registering (`shoal node --jwks-url`), the revoked token
    /// ids and the rotations. A rotation's scope (`db:org/name`, `group:org/name`) is published as
    /// the hex SHA-256 of its text, so the document names no database.
    public struct PublishedKeys: Codable, Sendable, Equatable {
        /// The public keys.
        public var keys: [JSONWebKey]
        /// Revoked token ids (absent in documents of other issuers).
        public var revokedJti: [String]?
        /// Tokens issued before these times (milliseconds since 1970) are refused, by the SHA-256
        /// (hex) of their scope.
        public var notBeforeSHA256: [String: Int64]?

        /// A document.
        public init(keys: [JSONWebKey], revokedJti: [String]? = nil, notBeforeSHA256: [String: Int64]? = nil) {
            self.keys = keys
            self.revokedJti = revokedJti
            self.notBeforeSHA256 = notBeforeSHA256
        }

        enum CodingKeys: String, CodingKey {
            case keys
            case revokedJti = "revoked_jti"
            case notBeforeSHA256 = "not_before_sha256"
        }
    }

    /// An Ed25519 public key in JWKS form.
    public struct JSONWebKey: Codable, Sendable, Equatable {
        /// `OKP`.
        public var kty: String
        /// `Ed25519`.
        public var crv: String
        /// The raw key, base64url without padding.
        public var x: String
        /// The key's id.
        public var kid: String
        /// `EdDSA`.
        public var alg: String
        /// `sig`.
        public var use: String

        /// An Ed25519 key with id `kid` and raw key `x` (base64url).
        public init(kid: String, x: String) {
            kty = "OKP"
            crv = "Ed25519"
            self.x = x
            self.kid = kid
            alg = "EdDSA"
            use = "sig"
        }
    }
}

extension Platform {
    /// Whether `name` is a valid organization, group or database name: `[a-z0-9-]{1,64}`.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
    }
}
