import Foundation
import ShoalModel
import ShoalTime

extension Catalog {
    static let databaseColumns =
        "d.id, d.name, d.group_id, d.primary_node, d.size_limit_bytes, d.block_reads, d.block_writes, "
        + "d.delete_protection, d.size_limit_by_operator, d.created_at, d.schema_version, d.schema_drift"
    /// The smallest size limit accepted: 16 pages of 4096 bytes. Nodes refuse a limit under one page,
    /// and a database needs a few pages for its schema before it holds any data.
    static let minimumSizeLimit: Int64 = 64 << 10
    static let nodeColumns = "id, location, url, admin_token, last_heartbeat_at, primaries"

    func nodeRecord(_ row: CatalogRow, offset: Int = 0) throws -> NodeRecord {
        let id = try row.text(offset)
        return NodeRecord(
            id: id, location: try row.text(offset + 1), url: try row.text(offset + 2),
            adminToken: try row.optionalText(offset + 3).map {
                try sealer.open($0, context: Self.adminTokenContext(node: id))
            },
            lastHeartbeat: try row.integer(offset + 4), primaries: try row.integer(offset + 5))
    }

    /// A registered node.
    func node(id: String) async throws -> NodeRecord? {
        try await read { transaction in try await self.node(id: id, in: transaction) }
    }

    func node(id: String?, in transaction: any CatalogTransaction) async throws -> NodeRecord? {
        guard let id else { return nil }
        return try await transaction.queryOne("SELECT \(Self.nodeColumns) FROM nodes WHERE id = $1", [.text(id)])
            .map { try nodeRecord($0) }
    }

    func databaseRecord(
        _ row: CatalogRow, group: GroupRecord, in transaction: any CatalogTransaction
    ) async throws -> DatabaseRecord {
        DatabaseRecord(
            id: try row.text(0), group: group, name: try row.text(1),
            primaryNode: try await node(id: try row.optionalText(3), in: transaction),
            sizeLimitBytes: try row.optionalInteger(4), sizeLimitByOperator: try row.flag(8),
            blockReads: try row.flag(5), blockWrites: try row.flag(6), deleteProtection: try row.flag(7),
            createdAt: try row.integer(9), schemaVersion: try row.integer(10), schemaDrift: try row.optionalText(11))
    }

    func database(
        _ name: String, of organization: OrganizationRecord, in transaction: any CatalogTransaction
    ) async throws -> DatabaseRecord {
        guard
            let row = try await transaction.queryOne(
                "SELECT \(Self.databaseColumns) FROM databases d WHERE d.org_id = $1 AND d.name = $2",
                [.text(organization.id), .text(name)])
        else {
            throw ControlError.notFound(
                "database '\(name.prefix(64))' does not exist in organization \(organization.slug)")
        }
        guard
            let groupRow = try await transaction.queryOne(
                "SELECT id, name, primary_location, region_rule, delete_protection FROM db_groups WHERE id = $1",
                [.text(try row.text(2))])
        else { throw ControlError.catalogUnavailable("database \(name) points at a missing group") }
        let group = try await groupRecord(groupRow, organization: organization, in: transaction)
        return try await databaseRecord(row, group: group, in: transaction)
    }

    func databases(of group: GroupRecord, in transaction: any CatalogTransaction) async throws -> [DatabaseRecord] {
        var records: [DatabaseRecord] = []
        for row in try await transaction.query(
            "SELECT \(Self.databaseColumns) FROM databases d WHERE d.group_id = $1 ORDER BY d.name", [.text(group.id)])
        {
            records.append(try await databaseRecord(row, group: group, in: transaction))
        }
        return records
    }

    /// Removes a database's row and records its removal from the nodes that may hold it (delivered
    /// by `ControlPlane.deliverDeletions`, retried until each node confirms); its pending settings
    /// pushes go with it.
    /// Its backups are kept for the grace period and then erased; those of a creation being undone
    /// are erased at once.
    func removeDatabaseRow(
        _ database: DatabaseRecord, undoingCreation: Bool = false, in transaction: any CatalogTransaction
    ) async throws {
        try await transaction.query("DELETE FROM databases WHERE id = $1", [.text(database.id)])
        try await transaction.query(
            "DELETE FROM database_settings_pushes WHERE database_id = $1", [.text(database.id)])
        try await recordDeletion(of: database, in: transaction)
        try await recordErasure(of: database, undoingCreation: undoingCreation, in: transaction)
        try await transaction.query(
            "UPDATE organizations SET database_count = database_count - 1 WHERE id = $1",
            [.text(database.organization.id)])
        if let node = database.primaryNode {
            try await transaction.query(
                "UPDATE nodes SET primaries = primaries - 1 WHERE id = $1", [.text(node.id)])
        }
    }

    /// The host name of a database: `{database}-{org}.{domain}`.
    func hostname(_ database: DatabaseRecord) -> String {
        "\(database.name)-\(database.organization.slug).\(configuration.domain)"
    }

    func model(_ database: DatabaseRecord) -> Platform.Database {
        Platform.Database(
            name: database.name, id: database.id, hostname: hostname(database), group: database.group.name,
            primaryRegion: database.group.primary, regions: database.group.locations, blockReads: database.blockReads,
            blockWrites: database.blockWrites, deleteProtection: database.deleteProtection,
            schemaVersion: database.schemaVersion,
            schemaDrift: database.schemaDrift.flatMap {
                try? JSONDecoder().decode(Platform.SchemaDrift.self, from: Data($0.utf8))
            })
    }

    /// Creates a database in a group: checks the name, the region rules of every location the group
    /// places data in, and the plan's database quota, then places its primary on the least-loaded
    /// live node of the group's primary location. The checks that need no lock run first; the
    /// organization's row is locked only for the quota bump and the inserts, so parallel creates
    /// cannot overshoot the quota and wait on each other as briefly as possible. With `ifNotExists`,
    /// an existing database of that name in that group is returned instead (`created` false).
    func createDatabase(
        organization slug: String, name: String, group groupName: String, ifNotExists: Bool, by principal: Principal
    ) async throws -> (database: DatabaseRecord, created: Bool) {
        try Self.validateName(name, "database")
        try Self.validateName(groupName, "group")
        do {
            return try await audited(
                organization: slug, actor: principal, action: "database.create", target: "\(slug)/\(name)"
            ) { transaction in
                try await insertDatabase(
                    organization: slug, name: name, group: groupName, ifNotExists: ifNotExists, by: principal,
                    in: transaction)
            }
        } catch let error as ControlError where error.code == .conflict && ifNotExists {
            // A concurrent create of the same name won the race: answer with its database.
            let existing = try await database(organization: slug, name: name, for: principal)
            guard existing.group.name == groupName else { throw error }
            return (existing, false)
        }
    }

    private func insertDatabase(
        organization slug: String, name: String, group groupName: String, ifNotExists: Bool, by principal: Principal,
        in transaction: any CatalogTransaction
    ) async throws -> (database: DatabaseRecord, created: Bool) {
        let organization = try await organization(slug, for: principal, in: transaction)
        let group = try await group(groupName, of: organization, in: transaction)
        if let row = try await transaction.queryOne(
            "SELECT \(Self.databaseColumns) FROM databases d WHERE d.org_id = $1 AND d.name = $2",
            [.text(organization.id), .text(name)])
        {
            if ifNotExists, try row.text(2) == group.id {
                return (try await databaseRecord(row, group: group, in: transaction), false)
            }
            throw ControlError.conflict("database '\(name)' already exists in organization \(slug)")
        }
        let locations = try await locationTable(transaction)
        for code in group.locations {
            guard let location = locations.first(where: { $0.code == code }) else { continue }
            try requireAllowed(
                location: location, rules: [("group's", group.regionRule), ("organization's", organization.regionRule)])
        }
        let quotas = try await quotas(plan: organization.plan, in: transaction)
        let liveSince = now() - configuration.nodeTimeout.wholeMilliseconds
        guard
            let node = try await transaction.queryOne(
                """
                SELECT \(Self.nodeColumns) FROM nodes WHERE location = $1 AND last_heartbeat_at >= $2
                ORDER BY primaries, id LIMIT 1
                """, [.text(group.primary), .integer(liveSince)]
            ).map({ try nodeRecord($0) })
        else {
            throw ControlError.noNodeAvailable(
                "no live node serves location \(group.primary); start one with `shoal node --control URL --location \(group.primary)`"
            )
        }
        // From here the organization's row is locked until commit.
        let counted = try await transaction.query(
            "UPDATE organizations SET database_count = database_count + 1 WHERE id = $1 AND database_count < $2 RETURNING database_count",
            [.text(organization.id), .integer(quotas.databases)])
        guard !counted.isEmpty else {
            throw ControlError.quotaExceeded(
                "the \(organization.plan) plan allows \(quotas.databases) databases (quota 'databases'); delete one or change plan"
            )
        }
        // A new id for every creation: a name deleted and created again is a new incarnation, which
        // no token of an earlier one opens (tokens carry it as `did`, nodes compare it).
        let id = Self.newID()
        let createdAt = now()
        do {
            try await transaction.query(
                """
                INSERT INTO databases (id, org_id, group_id, name, primary_node, size_limit_bytes, block_reads,
                    block_writes, delete_protection, tokens_not_before, created_at)
                VALUES ($1, $2, $3, $4, $5, NULL, 0, 0, 0, 0, $6)
                """,
                [.text(id), .text(organization.id), .text(group.id), .text(name), .text(node.id), .integer(createdAt)])
        } catch CatalogStoreError.uniqueViolation {
            throw ControlError.conflict("database '\(name)' already exists in organization \(slug)")
        }
        try await transaction.query("UPDATE nodes SET primaries = primaries + 1 WHERE id = $1", [.text(node.id)])
        try await audit(
            transaction, organization: organization.id, actor: principal, action: "database.create",
            target: "\(slug)/\(name)", detail: "database \(name) created in group \(groupName) on \(group.primary)")
        return (
            DatabaseRecord(
                id: id, group: group, name: name, primaryNode: node, sizeLimitBytes: nil, sizeLimitByOperator: false,
                blockReads: false, blockWrites: false, deleteProtection: false, createdAt: createdAt), true
        )
    }

    /// Removes a database row without checks or audit: undoes a creation whose placement failed.
    func undoCreation(_ database: DatabaseRecord) async throws {
        try await read { transaction in
            try await removeDatabaseRow(database, undoingCreation: true, in: transaction)
        }
    }

    /// A page of an organization's databases in name order, after `cursor` (a name), optionally
    /// of one group. Returns the page and the cursor of the next one.
    public func databases(
        organization slug: String, group: String?, limit: Int, after cursor: String?, for principal: Principal
    ) async throws -> (databases: [Platform.Database], nextCursor: String?) {
        try await read { transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            var binds: [CatalogValue] = [.text(organization.id), .text(cursor ?? ""), .integer(Int64(limit + 1))]
            var filter = ""
            if let group {
                let record = try await self.group(group, of: organization, in: transaction)
                binds.append(.text(record.id))
                filter = " AND d.group_id = $4"
            }
            let rows = try await transaction.query(
                "SELECT \(Self.databaseColumns) FROM databases d WHERE d.org_id = $1 AND d.name > $2\(filter) ORDER BY d.name LIMIT $3",
                binds)
            var groups: [String: GroupRecord] = [:]
            var page: [Platform.Database] = []
            for row in rows.prefix(limit) {
                let groupID = try row.text(2)
                let group: GroupRecord
                if let cached = groups[groupID] {
                    group = cached
                } else {
                    guard
                        let groupRow = try await transaction.queryOne(
                            "SELECT id, name, primary_location, region_rule, delete_protection FROM db_groups WHERE id = $1",
                            [.text(groupID)])
                    else { continue }
                    group = try await groupRecord(groupRow, organization: organization, in: transaction)
                    groups[groupID] = group
                }
                page.append(model(try await databaseRecord(row, group: group, in: transaction)))
            }
            return (page, rows.count > limit ? page.last?.name : nil)
        }
    }

    /// Every database of an organization, or of one of its groups (for pushing rule changes).
    func databaseRecords(
        organization slug: String, group name: String?, for principal: Principal
    ) async throws
        -> [DatabaseRecord]
    {
        try await read { transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            var groups: [GroupRecord] = []
            if let name {
                groups = [try await group(name, of: organization, in: transaction)]
            } else {
                for row in try await transaction.query(
                    "SELECT id, name, primary_location, region_rule, delete_protection FROM db_groups WHERE org_id = $1",
                    [.text(organization.id)])
                {
                    groups.append(try await groupRecord(row, organization: organization, in: transaction))
                }
            }
            var records: [DatabaseRecord] = []
            for group in groups { records += try await databases(of: group, in: transaction) }
            return records
        }
    }

    /// One database.
    func database(organization slug: String, name: String, for principal: Principal) async throws -> DatabaseRecord {
        try await read { transaction in
            try await database(name, of: try await organization(slug, for: principal, in: transaction), in: transaction)
        }
    }

    /// The database as the API shows it.
    public func databaseModel(
        organization slug: String, name: String, for principal: Principal
    ) async throws
        -> Platform.Database
    {
        model(try await database(organization: slug, name: name, for: principal))
    }

    /// Deletes a database; refused while it is delete-protected. Returns it, so its node is told.
    func deleteDatabase(
        organization slug: String, name: String, by principal: Principal
    ) async throws
        -> DatabaseRecord
    {
        try await audited(organization: slug, actor: principal, action: "database.delete", target: "\(slug)/\(name)") {
            transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            let database = try await database(name, of: organization, in: transaction)
            guard !database.deleteProtection else {
                throw ControlError.deleteProtected(
                    "database \(name) has delete protection on; turn it off with PATCH …/databases/\(name)/configuration"
                )
            }
            try await removeDatabaseRow(database, in: transaction)
            try await audit(
                transaction, organization: organization.id, actor: principal, action: "database.delete",
                target: database.namespace, detail: "database \(name) deleted")
            return database
        }
    }

    /// A database's configuration as the API shows it.
    func configuration(of database: DatabaseRecord) -> Platform.DatabaseConfiguration {
        Platform.DatabaseConfiguration(
            sizeLimit: database.sizeLimitBytes.map(String.init) ?? "", blockReads: database.blockReads,
            blockWrites: database.blockWrites, deleteProtection: database.deleteProtection)
    }

    /// Changes a database's settings; fields left nil stay as they are. `block_reads` and
    /// `block_writes` are the platform operator's (an admin token's) to change, and so is a size limit
    /// the operator set; an organization's token may change its own size limit, up to its plan's
    /// `storage_bytes`, and delete protection. Everything a node would refuse is refused here, before
    /// anything is stored; the change records, in its transaction, a settings push to every node
    /// that may hold the database (sent by `ControlPlane.deliverSettingsPushes`, retried until each
    /// node confirms).
    func updateConfiguration(
        organization slug: String, name: String, patch: Platform.DatabaseConfiguration, by principal: Principal
    ) async throws -> DatabaseRecord {
        let sizeLimit: Int64?? = try patch.sizeLimit.map { try Self.parseSizeLimit($0) }
        return try await audited(
            organization: slug, actor: principal, action: "database.configure", target: "\(slug)/\(name)"
        ) { transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            let database = try await database(name, of: organization, in: transaction)
            if !principal.isAdmin {
                try Self.requireTenantMayApply(patch, sizeLimit: sizeLimit, to: database)
                try Self.requireWithinPlan(
                    sizeLimit, of: database, plan: organization.plan,
                    quotas: try await quotas(plan: organization.plan, in: transaction))
            }
            // An operator's size limit is theirs until they clear it; a tenant never changes who owns it
            // (it may only send the operator's value unchanged).
            var sizeLimitByOperator = database.sizeLimitByOperator
            if let sizeLimit, principal.isAdmin {
                sizeLimitByOperator = sizeLimit != nil
            }
            let updated = DatabaseRecord(
                id: database.id, group: database.group, name: database.name, primaryNode: database.primaryNode,
                sizeLimitBytes: sizeLimit ?? database.sizeLimitBytes, sizeLimitByOperator: sizeLimitByOperator,
                blockReads: patch.blockReads ?? database.blockReads,
                blockWrites: patch.blockWrites ?? database.blockWrites,
                deleteProtection: patch.deleteProtection ?? database.deleteProtection, createdAt: database.createdAt)
            try await transaction.query(
                """
                UPDATE databases SET size_limit_bytes = $1, block_reads = $2, block_writes = $3, delete_protection = $4,
                    size_limit_by_operator = $5 WHERE id = $6
                """,
                [
                    updated.sizeLimitBytes.map(CatalogValue.integer) ?? .null, .integer(updated.blockReads ? 1 : 0),
                    .integer(updated.blockWrites ? 1 : 0), .integer(updated.deleteProtection ? 1 : 0),
                    .integer(updated.sizeLimitByOperator ? 1 : 0), .text(database.id),
                ])
            try await recordSettingsPush(of: updated, in: transaction)
            try await audit(
                transaction, organization: organization.id, actor: principal, action: "database.configure",
                target: database.namespace,
                detail:
                    "size limit \(updated.sizeLimitBytes.map(String.init) ?? "none"), block reads \(updated.blockReads), block writes \(updated.blockWrites), delete protection \(updated.deleteProtection)"
            )
            return updated
        }
    }

    /// Refuses what an organization's token may not change: `block_reads`, `block_writes`, and a size
    /// limit the operator set. Sending the current value is not a change.
    static func requireTenantMayApply(
        _ patch: Platform.DatabaseConfiguration, sizeLimit: Int64??, to database: DatabaseRecord
    ) throws {
        let changesReads = patch.blockReads.map { $0 != database.blockReads } ?? false
        let changesWrites = patch.blockWrites.map { $0 != database.blockWrites } ?? false
        if changesReads || changesWrites {
            throw ControlError.forbidden(
                "block_reads and block_writes are set by the platform operator; an organization's API token cannot "
                    + "change them (leave them out of the request, or ask the operator)")
        }
        if let sizeLimit, sizeLimit != database.sizeLimitBytes, database.sizeLimitByOperator {
            throw ControlError.forbidden(
                "this database's size_limit was set by the platform operator; an organization's API token cannot "
                    + "change it (leave it out of the request, or ask the operator)")
        }
    }

    /// Refuses a size limit an organization's token sets above its plan's `storage_bytes`, and its
    /// removal (no limit is more than any plan allows): only the operator may go past the plan.
    /// Sending the current value is not a change.
    static func requireWithinPlan(
        _ sizeLimit: Int64??, of database: DatabaseRecord, plan: String, quotas: Platform.Quotas
    ) throws {
        guard let sizeLimit, sizeLimit != database.sizeLimitBytes else { return }
        let maximum = quotas.storageBytes
        guard let bytes = sizeLimit else {
            throw ControlError.quotaExceeded(
                "the \(plan) plan allows a size_limit of at most \(maximum) bytes (quota 'storage_bytes'), so an "
                    + "organization's API token cannot remove the limit; set one no larger, or ask the platform "
                    + "operator")
        }
        guard bytes <= maximum else {
            throw ControlError.quotaExceeded(
                "the \(plan) plan allows a size_limit of at most \(maximum) bytes (quota 'storage_bytes'); set one "
                    + "no larger, or ask the platform operator")
        }
    }

    /// Parses a size limit (see `parseSize`) and refuses one below `minimumSizeLimit`, before anything
    /// is stored: a node refuses a limit under one page, and a database under a few pages is unusable.
    static func parseSizeLimit(_ text: String) throws -> Int64? {
        guard let bytes = try parseSize(text) else { return nil }
        guard bytes >= minimumSizeLimit else {
            throw ControlError.badRequest(
                "size_limit must be 64kb (\(minimumSizeLimit) bytes) or more; use \"\" or \"0\" for no limit")
        }
        return bytes
    }

    /// Parses `"500mb"`, `"2gb"`, `"64kb"` or a byte count; `""` or `"0"` means no limit.
    static func parseSize(_ text: String) throws -> Int64? {
        let lowered = text.lowercased().trimmingCharacters(in: .whitespaces)
        if lowered.isEmpty || lowered == "0" { return nil }
        let units: [(String, Int64)] = [("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30), ("tb", 1 << 40), ("b", 1)]
        for (suffix, scale) in units where lowered.hasSuffix(suffix) {
            if let number = Int64(lowered.dropLast(suffix.count)), number > 0, number <= Int64.max / scale {
                return number * scale
            }
        }
        if let bytes = Int64(lowered), bytes > 0 { return bytes }
        throw ControlError.unprocessable(
            "size_limit '\(text.prefix(40))' is not a size: use bytes or a number with kb, mb, gb or tb")
    }

    /// Where the database is served: its primary, and a replica on every live node of the
    /// group's other locations (each keeps one once the database is first used there).
    func instances(of database: DatabaseRecord) async throws -> [Platform.Instance] {
        guard let primary = database.primaryNode else { return [] }
        let path = "/db/\(database.organization.slug)/\(database.name)"
        var instances = [
            Platform.Instance(
                uuid: primary.id, name: primary.location, type: "primary", region: primary.location,
                hostname: hostname(database), url: primary.url + path)
        ]
        let replicaLocations = Set(database.group.locations).subtracting([database.group.primary])
        for node in try await liveNodes().sorted(by: { ($0.location, $0.url) < ($1.location, $1.url) })
        where replicaLocations.contains(node.location) {
            instances.append(
                Platform.Instance(
                    uuid: node.id, name: node.location, type: "replica", region: node.location,
                    hostname: hostname(database), url: node.url + path))
        }
        return instances
    }

    // MARK: - Nodes

    /// The largest size a node may report for one database (256 TiB): sums stay far from overflow.
    static let maxReportedBytes: Int64 = 1 << 48

    // Registration, credentials and the registration token: `Catalog+Nodes.swift`.

    /// Records a node's heartbeat and what its primaries report they take on disk; throws not found
    /// for an unknown node (it registers again). A report for a database whose primary is not this
    /// node (moved, deleted, or never its own) is ignored. Returns the organizations with a primary on
    /// this node that are over their plan's `storage_bytes`.
    ///
    /// An organization's use is summed over its databases' rows when read, so that no report and
    /// no deletion contends for the organization's row.
    public func heartbeat(
        node id: String, storage: [Platform.DatabaseStorage] = [], schemaVersions: [Platform.SchemaVersionReport] = []
    ) async throws -> [Platform.StorageExceeded] {
        guard storage.count <= Platform.HeartbeatRequest.maxStorageReports,
            schemaVersions.count <= Platform.HeartbeatRequest.maxStorageReports
        else {
            throw ControlError.unprocessable(
                "a heartbeat carries at most \(Platform.HeartbeatRequest.maxStorageReports) storage reports; "
                    + "send the rest with the next one")
        }
        guard storage.allSatisfy({ (0...Self.maxReportedBytes).contains($0.bytes) }) else {
            throw ControlError.unprocessable(
                "a storage report's bytes must be between 0 and \(Self.maxReportedBytes) (256 TiB)")
        }
        let now = now()
        return try await read { transaction in
            guard
                try await transaction.queryOne("SELECT id FROM nodes WHERE id = $1", [.text(id)]) != nil
            else { throw ControlError.notFound("node \(id.prefix(40)) is not registered") }
            // Database rows first, in id order, then the node's: the order a deletion takes them in
            // too (its database row, then its primary's node), so the two never deadlock.
            for report in storage.sorted(by: { $0.databaseID < $1.databaseID }) {
                try await transaction.query(
                    "UPDATE databases SET stored_bytes = $1 WHERE id = $2 AND primary_node = $3 AND stored_bytes <> $1",
                    [.integer(report.bytes), .text(report.databaseID), .text(id)])
            }
            // A version only moves forward, and only the database's primary reports it.
            for report in schemaVersions.sorted(by: { $0.databaseID < $1.databaseID })
            where (0...Int64(Self.maxMigrations)).contains(report.schemaVersion) {
                try await transaction.query(
                    """
                    UPDATE databases SET schema_version = $1
                    WHERE id = $2 AND primary_node = $3 AND schema_version < $1
                    """, [.integer(report.schemaVersion), .text(report.databaseID), .text(id)])
            }
            try await transaction.query(
                "UPDATE nodes SET last_heartbeat_at = $1 WHERE id = $2", [.integer(now), .text(id)])
            return try await transaction.query(
                """
                SELECT o.slug, p.name, s.total, p.max_storage_bytes
                FROM (
                    SELECT org_id, CAST(SUM(stored_bytes) AS BIGINT) AS total FROM databases
                    WHERE org_id IN (SELECT org_id FROM databases WHERE primary_node = $1)
                    GROUP BY org_id
                ) s
                JOIN organizations o ON o.id = s.org_id
                JOIN plans p ON p.name = o.plan
                WHERE s.total > p.max_storage_bytes
                ORDER BY o.slug
                """, [.text(id)]
            ).map {
                Platform.StorageExceeded(
                    organization: try $0.text(0), plan: try $0.text(1), storedBytes: try $0.integer(2),
                    storageBytes: try $0.integer(3))
            }
        }
    }

    /// Every node with its status.
    public func nodes() async throws -> [Platform.Node] {
        let liveSince = now() - configuration.nodeTimeout.wholeMilliseconds
        return try await read { transaction in
            try await transaction.query("SELECT \(Self.nodeColumns) FROM nodes ORDER BY location, url", []).map {
                let node = try nodeRecord($0)
                return Platform.Node(
                    id: node.id, location: node.location, url: node.url,
                    status: node.lastHeartbeat >= liveSince ? "up" : "down", databases: node.primaries)
            }
        }
    }

    /// The live nodes with their admin tokens, for pushes.
    func liveNodes() async throws -> [NodeRecord] {
        let liveSince = now() - configuration.nodeTimeout.wholeMilliseconds
        return try await read { transaction in
            try await transaction.query(
                "SELECT \(Self.nodeColumns) FROM nodes WHERE last_heartbeat_at >= $1", [.integer(liveSince)]
            ).map { try nodeRecord($0) }
        }
    }
}
