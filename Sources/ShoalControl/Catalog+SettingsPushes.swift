import Foundation
import ShoalModel

extension Catalog {
    /// A database's settings owed to one node, pending until the node confirms it holds them. What
    /// is sent is the database's settings as the catalog holds them when it is sent, never a copy
    /// taken when the change was made.
    struct PendingSettingsPush: Sendable {
        /// The database whose settings the node is to hold.
        let databaseID: String
        /// The node to tell.
        let node: NodeRecord
        /// The change this push was recorded for: a newer change of the database replaces it (a new
        /// id), and a confirmation completes the push only while it still has this one.
        let pushID: String
        /// Failed attempts so far.
        let attempts: Int64
    }

    /// How long a claimed push is left to the instance that claimed it before another may try
    /// (longer than a node call's timeout).
    static let settingsPushClaim: Int64 = 60_000
    /// The longest wait between two attempts of one push.
    static let settingsPushBackoffLimit: Int64 = 60_000

    /// Records, in the transaction of a change to `database`'s settings, that every node that may
    /// hold it must get them: its primary's node and every registered node of its group's other
    /// locations (each may keep a replica), whether up or down. A push still pending for the same
    /// node is replaced (the new one sends the newer settings). Each is recorded as claimed by the
    /// changing call, which sends it at once (`settingsPushes(of:)`); if that call never gets to it,
    /// the claim lapses and the retries take it. Unless `claimed` is false: then the retries take it
    /// at once (a change that touches more databases than one call should send).
    func recordSettingsPush(
        of database: DatabaseRecord, claimed: Bool = true, in transaction: any CatalogTransaction
    ) async throws {
        // Without a primary there is nothing to hold the settings, and no primary for replicas.
        guard let primary = database.primaryNode else { return }
        var nodeIDs: Set<String> = [primary.id]
        for location in Set(database.group.locations).subtracting([database.group.primary]) {
            for row in try await transaction.query("SELECT id FROM nodes WHERE location = $1", [.text(location)]) {
                nodeIDs.insert(try row.text(0))
            }
        }
        let now = now()
        let pushID = Self.newID()
        for nodeID in nodeIDs.sorted() {
            try await transaction.query(
                """
                INSERT INTO database_settings_pushes (database_id, node_id, push_id, requested_at, attempts, next_attempt_at)
                VALUES ($1, $2, $3, $4, 0, $5)
                ON CONFLICT (database_id, node_id) DO UPDATE SET push_id = excluded.push_id,
                    requested_at = excluded.requested_at, attempts = 0, next_attempt_at = excluded.next_attempt_at,
                    last_error = NULL
                """,
                [
                    .text(database.id), .text(nodeID), .text(pushID), .integer(now),
                    .integer(claimed ? now + Self.settingsPushClaim : now),
                ])
        }
    }

    /// Records a settings push for every database of `group` (a region rule it follows changed), in
    /// the change's transaction.
    func recordSettingsPushes(
        of group: GroupRecord, claimed: Bool = true, in transaction: any CatalogTransaction
    ) async throws {
        for database in try await databases(of: group, in: transaction) {
            try await recordSettingsPush(of: database, claimed: claimed, in: transaction)
        }
    }

    /// Records a settings push for every database of `organization` (its region rule changed), in
    /// the change's transaction.
    func recordSettingsPushes(
        of organization: OrganizationRecord, claimed: Bool = true, in transaction: any CatalogTransaction
    ) async throws {
        for row in try await transaction.query(
            "SELECT id, name, primary_location, region_rule, delete_protection FROM db_groups WHERE org_id = $1 ORDER BY name",
            [.text(organization.id)])
        {
            try await recordSettingsPushes(
                of: try await groupRecord(row, organization: organization, in: transaction), claimed: claimed,
                in: transaction)
        }
    }

    /// The pending pushes of `databaseIDs`, just changed by the caller (which holds their claim: see
    /// `recordSettingsPush`).
    func settingsPushes(of databaseIDs: [String]) async throws -> [PendingSettingsPush] {
        try await read { transaction in
            var pushes: [PendingSettingsPush] = []
            for id in databaseIDs {
                for row in try await transaction.query(
                    """
                    SELECT database_id, node_id, push_id, attempts FROM database_settings_pushes
                    WHERE database_id = $1 ORDER BY node_id
                    """, [.text(id)])
                {
                    if let push = try await pendingSettingsPush(row, in: transaction) { pushes.append(push) }
                }
            }
            return pushes
        }
    }

    /// Claims the pushes that are due, at most `limit`, oldest first: each is set aside for
    /// `settingsPushClaim`, so that another control-plane instance sharing the catalog does not send
    /// the same one meanwhile.
    func claimDueSettingsPushes(limit: Int = 100) async throws -> [PendingSettingsPush] {
        let now = now()
        return try await read { transaction in
            let rows = try await transaction.query(
                """
                SELECT database_id, node_id, push_id, attempts, next_attempt_at FROM database_settings_pushes
                WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, database_id, node_id LIMIT $2
                """, [.integer(now), .integer(Int64(limit))])
            var claimed: [PendingSettingsPush] = []
            for row in rows {
                // Taken only if no other instance took it, and no newer change replaced it, since it
                // was read.
                let taken = try await transaction.query(
                    """
                    UPDATE database_settings_pushes SET next_attempt_at = $1
                    WHERE database_id = $2 AND node_id = $3 AND push_id = $4 AND next_attempt_at = $5
                    RETURNING attempts
                    """,
                    [
                        .integer(now + Self.settingsPushClaim), .text(try row.text(0)), .text(try row.text(1)),
                        .text(try row.text(2)), .integer(try row.integer(4)),
                    ])
                guard !taken.isEmpty else { continue }
                if let push = try await pendingSettingsPush(row, in: transaction) { claimed.append(push) }
            }
            return claimed
        }
    }

    /// A push row (`database_id, node_id, push_id, attempts`) with its node; a push whose node is no
    /// longer registered is dropped (nil).
    private func pendingSettingsPush(
        _ row: CatalogRow, in transaction: any CatalogTransaction
    ) async throws
        -> PendingSettingsPush?
    {
        let databaseID = try row.text(0)
        let nodeID = try row.text(1)
        guard let node = try await node(id: nodeID, in: transaction) else {
            try await transaction.query(
                "DELETE FROM database_settings_pushes WHERE database_id = $1 AND node_id = $2",
                [.text(databaseID), .text(nodeID)])
            return nil
        }
        return PendingSettingsPush(
            databaseID: databaseID, node: node, pushID: try row.text(2), attempts: try row.integer(3))
    }

    /// The database with id `id` as a push sends it, or nil once it is deleted.
    func settingsPushDatabase(id: String) async throws -> DatabaseRecord? {
        try await read { transaction in
            guard
                let row = try await transaction.queryOne(
                    """
                    SELECT o.id, o.slug, o.plan, o.region_rule, d.name FROM databases d
                    JOIN organizations o ON o.id = d.org_id WHERE d.id = $1
                    """, [.text(id)])
            else { return nil }
            let organization = OrganizationRecord(
                id: try row.text(0), slug: try row.text(1), plan: try row.text(2),
                regionRule: Self.decodeRule(try row.optionalText(3)))
            return try await database(try row.text(4), of: organization, in: transaction)
        }
    }

    /// The node confirmed the push. Returns true when that completes it; false when a newer change
    /// replaced it meanwhile, or another sender completed it: what this one sent may then have
    /// reached the node after newer settings did, so the push is recorded again, due now, and the
    /// next attempt sends the settings as they are.
    @discardableResult
    func completeSettingsPush(_ push: PendingSettingsPush) async throws -> Bool {
        let now = now()
        return try await read { transaction in
            let completed = try await transaction.query(
                """
                DELETE FROM database_settings_pushes WHERE database_id = $1 AND node_id = $2 AND push_id = $3
                RETURNING node_id
                """, [.text(push.databaseID), .text(push.node.id), .text(push.pushID)])
            guard completed.isEmpty else { return true }
            // Only while the database exists: a deletion drops its pushes for good.
            try await transaction.query(
                """
                INSERT INTO database_settings_pushes (database_id, node_id, push_id, requested_at, attempts, next_attempt_at)
                SELECT id, $2, $3, $4, 0, $4 FROM databases WHERE id = $1
                ON CONFLICT (database_id, node_id) DO UPDATE SET push_id = excluded.push_id,
                    next_attempt_at = excluded.next_attempt_at
                """, [.text(push.databaseID), .text(push.node.id), .text(Self.newID()), .integer(now)])
            return false
        }
    }

    /// The push needs nothing more: its database was deleted, or the node is not one that may hold it.
    func dropSettingsPush(_ push: PendingSettingsPush) async throws {
        try await read { transaction in
            _ = try await transaction.query(
                "DELETE FROM database_settings_pushes WHERE database_id = $1 AND node_id = $2 AND push_id = $3",
                [.text(push.databaseID), .text(push.node.id), .text(push.pushID)])
        }
    }

    /// The attempt failed: the next one waits 1 s after the first failure, twice as long after each
    /// further one, at most `settingsPushBackoffLimit`. Returns when it is due (milliseconds since
    /// 1970). A push a newer change replaced meanwhile is left as that change recorded it.
    @discardableResult
    func postponeSettingsPush(_ push: PendingSettingsPush, error: String) async throws -> Int64 {
        let attempts = push.attempts + 1
        let wait = min(Int64(1000) << min(attempts - 1, 20), Self.settingsPushBackoffLimit)
        let due = now() + wait
        try await read { transaction in
            _ = try await transaction.query(
                """
                UPDATE database_settings_pushes SET attempts = $1, next_attempt_at = $2, last_error = $3
                WHERE database_id = $4 AND node_id = $5 AND push_id = $6
                """,
                [
                    .integer(attempts), .integer(due), .text(String(error.prefix(500))), .text(push.databaseID),
                    .text(push.node.id), .text(push.pushID),
                ])
        }
        return due
    }

    /// The nodes that have not confirmed `databaseID`'s current settings yet, by location and id.
    func pendingSettingsNodes(of databaseID: String) async throws -> [NodeRecord] {
        try await read { transaction in
            var nodes: [NodeRecord] = []
            for row in try await transaction.query(
                "SELECT node_id FROM database_settings_pushes WHERE database_id = $1 ORDER BY node_id",
                [.text(databaseID)])
            {
                if let node = try await node(id: try row.text(0), in: transaction) { nodes.append(node) }
            }
            return nodes.sorted { ($0.location, $0.id) < ($1.location, $1.id) }
        }
    }

    /// How many settings pushes nodes have not confirmed yet (all of them, or those of one database).
    public func pendingSettingsPushCount(databaseID: String? = nil) async throws -> Int {
        try await read { transaction in
            var sql = "SELECT count(*) FROM database_settings_pushes"
            var binds: [CatalogValue] = []
            if let databaseID {
                sql += " WHERE database_id = $1"
                binds.append(.text(databaseID))
            }
            let rows = try await transaction.query(sql, binds)
            return Int(try rows.first?.integer(0) ?? 0)
        }
    }
}
