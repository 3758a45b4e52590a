import Crypto
import Foundation
import ShoalModel

/// Who is calling the Platform API: the bootstrap admin (every organization) or an organization's
/// API token.
public struct Principal: Sendable, Equatable {
    /// The token's name, recorded as the actor in the audit log.
    public let name: String
    /// The organization the token belongs to; nil for an admin token.
    public let organizationID: String?
    /// The API token's id; nil for a caller that is not an API token.
    public internal(set) var tokenID: String? = nil
    /// When the API token expires (milliseconds since 1970); nil if never.
    public internal(set) var expiresAt: Int64? = nil
    /// Whether an organization's API token may create and revoke its organization's API tokens (the
    /// admin token always may).
    public internal(set) var mayCreateTokens = false

    /// Whether this is an admin token.
    public var isAdmin: Bool { organizationID == nil }
}

/// The control plane's rules over the catalog: names, quotas, region rules, placement, tokens and
/// the audit log. Written once against `CatalogStore`, so SQLite and PostgreSQL behave the same.
public struct Catalog: Sendable {
    /// Options of the catalog.
    public struct Configuration: Sendable {
        /// The domain of database host names (`{database}-{org}.{domain}`).
        public var domain: String
        /// A node without a heartbeat for this long counts as down.
        public var nodeTimeout: Duration
        /// How long a retired signing key still verifies tokens.
        public var keyOverlap: Duration
        /// How long a deleted database's backups are kept, so that the delete can be undone
        /// (`POST …/databases/{db}/undelete`), before they are erased for good.
        public var backupGracePeriod: Duration

        /// Defaults: `shoal.local`, 15 s, 24 h, 7 days.
        public init(
            domain: String = "shoal.local", nodeTimeout: Duration = .seconds(15),
            keyOverlap: Duration = .seconds(86_400), backupGracePeriod: Duration = .seconds(7 * 86_400)
        ) {
            self.domain = domain
            self.nodeTimeout = nodeTimeout
            self.keyOverlap = keyOverlap
            self.backupGracePeriod = backupGracePeriod
        }
    }

    let store: any CatalogStore
    let configuration: Configuration
    /// Seals the secrets the catalog must read back (nodes' admin tokens, signing keys).
    let sealer: SecretSealer
    /// Milliseconds since 1970 (injected in tests).
    let now: @Sendable () -> Int64

    /// A catalog over `store`. `sealer` holds the control plane's sealing key; the default is a key
    /// that lives as long as the process (for tests and benchmarks): a catalog that outlives the
    /// process needs its configured key, or it cannot open what it sealed.
    public init(
        store: any CatalogStore, configuration: Configuration = Configuration(),
        sealer: SecretSealer = .processLocal,
        now: @escaping @Sendable () -> Int64 = { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
    ) {
        self.store = store
        self.configuration = configuration
        self.sealer = sealer
        self.now = now
    }

    // MARK: - Records

    struct OrganizationRecord: Sendable {
        let id: String
        let slug: String
        let plan: String
        let regionRule: Platform.RegionRule?

        var model: Platform.Organization { .init(slug: slug, plan: plan, regionRule: regionRule) }
    }

    struct GroupRecord: Sendable {
        let id: String
        let organization: OrganizationRecord
        let name: String
        let primary: String
        let locations: [String]
        let regionRule: Platform.RegionRule?
        let deleteProtection: Bool

        var model: Platform.Group {
            .init(
                name: name, uuid: id, locations: locations, primary: primary, regionRule: regionRule,
                deleteProtection: deleteProtection)
        }

        /// The token and node scope of the group: `org/group`.
        var scope: String { "\(organization.slug)/\(name)" }
    }

    struct NodeRecord: Sendable {
        let id: String
        let location: String
        let url: String
        /// The node's admin token, unsealed (the catalog holds it sealed).
        let adminToken: String?
        let lastHeartbeat: Int64
        let primaries: Int64
    }

    struct DatabaseRecord: Sendable {
        let id: String
        let group: GroupRecord
        let name: String
        let primaryNode: NodeRecord?
        let sizeLimitBytes: Int64?
        /// Whether the platform operator (an admin token) set the size limit; an organization's
        /// token may not change it then.
        let sizeLimitByOperator: Bool
        let blockReads: Bool
        let blockWrites: Bool
        let deleteProtection: Bool
        /// When this incarnation of the name was created (milliseconds since 1970); nodes accept a
        /// token without `did` only if it was issued since.
        var createdAt: Int64 = 0
        /// The tenant-schema version it last reported applying.
        var schemaVersion: Int64 = 0
        /// How its schema differed from its migrations' at its last check (JSON), nil if it did not.
        var schemaDrift: String? = nil

        var organization: OrganizationRecord { group.organization }
        /// `org/db`, as tokens and nodes name it.
        var namespace: String { "\(organization.slug)/\(name)" }
    }

    // MARK: - Helpers shared by the extensions

    static func newID() -> String { UUID().uuidString.lowercased() }

    static func encode(_ rule: Platform.RegionRule?) throws -> CatalogValue {
        guard let rule, rule.jurisdictions != nil || rule.locations != nil else { return .null }
        let encoder = WireJSON.encoder([.sortedKeys])
        return .text(String(decoding: try encoder.encode(rule), as: UTF8.self))
    }

    /// A stored region rule. It fails closed: a rule that no longer decodes, or that decodes with
    /// neither list (`{}`, a misspelt key: "no rule" is stored as NULL, never as text), reads as
    /// one that allows no location at all (never as "no rule", which would let the data go
    /// anywhere), so nothing it governs is placed, and no replica is given a sync token for it,
    /// until the rule is set again; the group or organization still reads and shows it
    /// (`{"jurisdictions":[],"locations":[]}`).
    static func decodeRule(_ text: String?) -> Platform.RegionRule? {
        guard let text else { return nil }
        guard let rule = try? JSONDecoder().decode(Platform.RegionRule.self, from: Data(text.utf8)),
            rule.jurisdictions != nil || rule.locations != nil
        else { return unreadableRule }
        return rule
    }

    /// What a stored rule that cannot be read stands for: nowhere.
    static let unreadableRule = Platform.RegionRule(jurisdictions: [], locations: [])

    static func validateName(_ name: String, _ what: String) throws {
        guard Platform.isValidName(name) else {
            throw ControlError.invalidName(
                "the \(what) name '\(name.prefix(80))' is invalid: use 1 to 64 characters from a-z, 0-9 and '-'")
        }
    }

    /// Checks a rule names only known jurisdictions and locations.
    func validate(rule: Platform.RegionRule?, in transaction: any CatalogTransaction) async throws {
        guard let rule else { return }
        let known = try await locationTable(transaction)
        let jurisdictions = Set(known.map(\.jurisdiction))
        for jurisdiction in rule.jurisdictions ?? [] where !jurisdictions.contains(jurisdiction) {
            throw ControlError.unprocessable(
                "the region rule names an unknown jurisdiction '\(jurisdiction.prefix(40))'; known: \(jurisdictions.sorted().joined(separator: ", "))"
            )
        }
        for location in rule.locations ?? [] where !known.contains(where: { $0.code == location }) {
            throw ControlError.unprocessable(
                "the region rule names an unknown location '\(location.prefix(40))'; see GET /v1/locations")
        }
        if (rule.jurisdictions ?? []).isEmpty && (rule.locations ?? []).isEmpty {
            throw ControlError.unprocessable("a region rule must allow at least one jurisdiction or location")
        }
    }

    /// Refuses `location` unless every rule allows it; the message names the location, its
    /// jurisdiction and the rule.
    func requireAllowed(
        location: Platform.Location, rules: [(String, Platform.RegionRule?)]
    ) throws {
        for (owner, rule) in rules {
            guard let rule else { continue }
            if !rule.allows(location: location.code, jurisdiction: location.jurisdiction) {
                throw ControlError.regionLockViolation(
                    "location \(location.code) (\(location.name)) is in jurisdiction \(location.jurisdiction), "
                        + "which the \(owner) region rule (\(rule.description)) does not allow; choose a location the rule allows"
                )
            }
        }
    }

    func locationTable(_ transaction: any CatalogTransaction) async throws -> [Platform.Location] {
        try await transaction.query("SELECT code, name, jurisdiction FROM locations ORDER BY code", []).map {
            Platform.Location(code: try $0.text(0), name: try $0.text(1), jurisdiction: try $0.text(2))
        }
    }

    func location(_ code: String, in transaction: any CatalogTransaction) async throws -> Platform.Location {
        guard
            let row = try await transaction.queryOne(
                "SELECT code, name, jurisdiction FROM locations WHERE code = $1", [.text(code)])
        else {
            throw ControlError.notFound("location '\(code.prefix(40))' does not exist; see GET /v1/locations")
        }
        return Platform.Location(code: try row.text(0), name: try row.text(1), jurisdiction: try row.text(2))
    }

    /// The organization `slug`, if `principal` may act on it.
    func organization(
        _ slug: String, for principal: Principal, in transaction: any CatalogTransaction
    ) async throws -> OrganizationRecord {
        guard
            let row = try await transaction.queryOne(
                "SELECT id, slug, plan, region_rule FROM organizations WHERE slug = $1", [.text(slug)])
        else {
            // An organization's token learns nothing about other slugs: unknown ones look foreign.
            guard principal.isAdmin else {
                throw ControlError.forbidden("this API token belongs to another organization")
            }
            throw ControlError.notFound("organization '\(slug.prefix(64))' does not exist")
        }
        let record = OrganizationRecord(
            id: try row.text(0), slug: try row.text(1), plan: try row.text(2),
            regionRule: Self.decodeRule(try row.optionalText(3)))
        guard principal.isAdmin || principal.organizationID == record.id else {
            throw ControlError.forbidden("this API token belongs to another organization")
        }
        return record
    }

    /// The organization `slug`, if `principal` may act on it, with its row locked until the
    /// transaction ends (`CatalogTransaction.lockOrganization`). Every change whose rule or quota
    /// check reads the organization's state (its rule and plan, its groups' rules, locations and
    /// count, its API tokens) starts here, so such checks never run on state a concurrent change is
    /// replacing. The record is read again once the lock is held: the first read may predate a change
    /// that committed while this transaction waited for the lock.
    func lockedOrganization(
        _ slug: String, for principal: Principal, in transaction: any CatalogTransaction
    ) async throws -> OrganizationRecord {
        let found = try await organization(slug, for: principal, in: transaction)
        try await transaction.lockOrganization(id: found.id)
        return try await organization(slug, for: principal, in: transaction)
    }

    func quotas(plan: String, in transaction: any CatalogTransaction) async throws -> Platform.Quotas {
        guard
            let row = try await transaction.queryOne(
                """
                SELECT max_databases, max_groups, max_locations_per_group, max_storage_bytes, backup_retention_seconds
                FROM plans WHERE name = $1
                """,
                [.text(plan)])
        else { throw ControlError.unprocessable("plan '\(plan.prefix(40))' does not exist") }
        return Platform.Quotas(
            databases: try row.integer(0), groups: try row.integer(1), locationsPerGroup: try row.integer(2),
            storageBytes: try row.integer(3), backupRetention: try row.integer(4))
    }

    /// Records a change in the audit log, in the change's transaction.
    func audit(
        _ transaction: any CatalogTransaction, organization: String?, actor: Principal, action: String,
        target: String, outcome: String = "ok", detail: String
    ) async throws {
        try await transaction.query(
            "INSERT INTO audit_logs (org_id, at, actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                organization.map(CatalogValue.text) ?? .null, .integer(now()), .text(actor.name), .text(action),
                .text(target), .text(outcome), .text(detail),
            ])
    }

    /// Runs a change; a refusal (region rule, quota, protection) is recorded in the audit log in a
    /// transaction of its own, since the change's transaction rolled back.
    func audited<T: Sendable>(
        organization slug: String?, actor: Principal, action: String, target: String,
        _ body: @Sendable @escaping (any CatalogTransaction) async throws -> T
    ) async throws -> T {
        do {
            return try await store.transaction(body)
        } catch let error as ControlError
            where [.regionLockViolation, .quotaExceeded, .deleteProtected].contains(error.code)
        {
            try? await store.transaction { transaction in
                let organizationID = try await slug.asyncMap { slug in
                    try await transaction.queryOne("SELECT id FROM organizations WHERE slug = $1", [.text(slug)])?
                        .text(0)
                }
                try await audit(
                    transaction, organization: organizationID ?? nil, actor: actor, action: action, target: target,
                    outcome: error.codeName, detail: error.message)
            }
            throw error
        } catch let error as CatalogStoreError {
            throw Self.translate(error)
        }
    }

    static func translate(_ error: CatalogStoreError) -> ControlError {
        switch error {
        case .uniqueViolation: .conflict("that name is already taken")
        case .unexpectedValue(let column):
            .catalogUnavailable("the catalog holds an unexpected value (column \(column))")
        case .backend(let message): .catalogUnavailable("the catalog failed: \(message)")
        }
    }

    /// Runs a read or an unaudited change, translating store errors.
    func read<T: Sendable>(_ body: @Sendable @escaping (any CatalogTransaction) async throws -> T) async throws -> T {
        do {
            return try await store.transaction(body)
        } catch let error as CatalogStoreError {
            throw Self.translate(error)
        }
    }
}

extension Optional {
    func asyncMap<U>(_ transform: (Wrapped) async throws -> U) async rethrows -> U? {
        guard let self else { return nil }
        return try await transform(self)
    }
}

/// API token secrets: random, shown once, stored as SHA-256.
enum APISecret {
    static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return "shoal_" + bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func hash(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
