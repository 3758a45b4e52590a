import Foundation
import ShoalModel

extension Catalog {
    /// A deleted database whose backups are kept until `eraseAt` (see `deleted_databases`).
    struct DeletedDatabase: Sendable {
        let databaseID: String
        let organizationID: String
        let name: String
        let group: String
        /// The group's id: an undelete goes back to that group only.
        let groupID: String
        /// Its primary's location (an erasure goes to a node there).
        let location: String
        /// Its backup's name in the object store (`org.name.id`).
        let backupID: String
        let deletedAt: Int64
        let eraseAt: Int64
        let attempts: Int64
        /// The node asked to erase the backups: the database's last primary's when still
        /// registered (nil: any live node).
        let nodeID: String?

        var model: Platform.DeletedDatabase {
            Platform.DeletedDatabase(
                name: name, id: databaseID, group: group,
                deletedAt: RFC3339.format(microseconds: deletedAt * 1000),
                eraseAt: RFC3339.format(microseconds: eraseAt * 1000))
        }
    }

    /// A due erasure and the node to send it to.
    struct PendingErasure: Sendable {
        let deleted: DeletedDatabase
        let node: NodeRecord
    }

    static let erasureColumns =
        "database_id, org_id, name, group_name, backup_id, deleted_at, erase_at, attempts, node_id, group_id, location"

    /// How long an erasure or an undelete holds a row: past the node call's time limit.
    static let erasureClaim: Int64 = 900_000
    /// `restored_as` while an undelete restores.
    static let undeleting = "(undeleting)"

    private func deletedDatabase(_ row: CatalogRow) throws -> DeletedDatabase {
        DeletedDatabase(
            databaseID: try row.text(0), organizationID: try row.text(1), name: try row.text(2),
            group: try row.text(3), groupID: try row.text(9), location: try row.text(10), backupID: try row.text(4),
            deletedAt: try row.integer(5), eraseAt: try row.integer(6), attempts: try row.integer(7),
            nodeID: try row.optionalText(8))
    }

    /// Records, in the deletion's transaction, that `database`'s backups are kept for the grace
    /// period (`Configuration.backupGracePeriod`) and then erased; those of a creation being undone
    /// are erased at once and are not offered for undeletion.
    func recordErasure(
        of database: DatabaseRecord, undoingCreation: Bool, in transaction: any CatalogTransaction
    ) async throws {
        let now = now()
        let eraseAt = undoingCreation ? now : now + configuration.backupGracePeriod.wholeMilliseconds
        try await transaction.query(
            """
            INSERT INTO deleted_databases (database_id, org_id, name, group_name, backup_id, node_id, deleted_at,
                erase_at, restored_as, attempts, next_attempt_at, group_id, location)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $8, $10, $11) ON CONFLICT (database_id) DO NOTHING
            """,
            [
                .text(database.id), .text(database.organization.id), .text(database.name),
                .text(database.group.name),
                .text("\(database.organization.slug).\(database.name).\(database.id)"),
                database.primaryNode.map { .text($0.id) } ?? .null, .integer(now), .integer(eraseAt),
                undoingCreation ? .text("") : .null, .text(database.group.id), .text(database.group.primary),
            ])
    }

    /// The organization's deleted databases whose backups are not erased yet and that were not
    /// undeleted, newest first.
    func deletedDatabases(organization slug: String, for principal: Principal) async throws -> [DeletedDatabase] {
        try await read { transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            return try await transaction.query(
                """
                SELECT \(Self.erasureColumns) FROM deleted_databases
                WHERE org_id = $1 AND restored_as IS NULL AND erase_at > $2 ORDER BY deleted_at DESC, name LIMIT 1000
                """, [.text(organization.id), .integer(now())]
            ).map(deletedDatabase)
        }
    }

    /// Takes the newest deletion of `name` (or the one with id `id`) that can still be undone (its
    /// grace period not over, not undeleted, not being erased): from now on no erasure starts on it and no other undelete
    /// takes it, until `recordUndeletion` or `releaseUndeletion` (or, should the caller die, until
    /// `erasureClaim` has passed).
    func claimUndeletion(
        organization slug: String, name: String, id: String? = nil, for principal: Principal
    ) async throws
        -> DeletedDatabase
    {
        try Self.validateName(name, "database")
        if let id, id.isEmpty || id.utf8.count > 64 {
            throw ControlError.badRequest("id must be a deleted database's id, as GET …/deleted-databases lists it")
        }
        let now = now()
        return try await read { transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            guard
                let row = try await transaction.queryOne(
                    """
                    SELECT \(Self.erasureColumns) FROM deleted_databases
                    WHERE org_id = $1 AND name = $2 AND restored_as IS NULL AND ($3 = '' OR database_id = $3)
                    ORDER BY deleted_at DESC LIMIT 1
                    """, [.text(organization.id), .text(name), .text(id ?? "")])
            else { throw Self.nothingToUndelete(name, slug) }
            let deleted = try deletedDatabase(row)
            // Not past its grace period, and not claimed by an erasure (whose claim moves next_attempt_at).
            let taken = try await transaction.query(
                """
                UPDATE deleted_databases SET restored_as = $1, next_attempt_at = $2
                WHERE database_id = $3 AND restored_as IS NULL AND erase_at > $4 AND next_attempt_at <= erase_at
                RETURNING database_id
                """,
                [.text(Self.undeleting), .integer(now + Self.erasureClaim), .text(deleted.databaseID), .integer(now)])
            guard !taken.isEmpty else { throw Self.nothingToUndelete(name, slug) }
            return deleted
        }
    }

    private static func nothingToUndelete(_ name: String, _ slug: String) -> ControlError {
        ControlError.notFound(
            "no deleted database '\(name)' can be undeleted in \(slug): it was never deleted, was undeleted already, or its backups were erased after the grace period; list what can be with GET …/deleted-databases"
        )
    }

    /// The undelete of `deleted` failed: it can be undeleted again, and is erased when due.
    func releaseUndeletion(_ deleted: DeletedDatabase) async throws {
        try await read { transaction in
            _ = try await transaction.query(
                """
                UPDATE deleted_databases SET restored_as = NULL, next_attempt_at = erase_at
                WHERE database_id = $1 AND restored_as = $2
                """, [.text(deleted.databaseID), .text(Self.undeleting)])
        }
    }

    /// Records that `deleted` was undeleted as `database` (it is not offered again), in the audit
    /// log too. Its backups are still erased when its grace period ends; the new database has
    /// backups of its own from its creation on.
    func recordUndeletion(
        _ deleted: DeletedDatabase, as database: DatabaseRecord, restoredTo: String, by principal: Principal
    ) async throws {
        try await store.transaction { transaction in
            _ = try await transaction.query(
                """
                UPDATE deleted_databases SET restored_as = $1, next_attempt_at = erase_at
                WHERE database_id = $2 AND restored_as = $3
                """, [.text(database.id), .text(deleted.databaseID), .text(Self.undeleting)])
            try await self.audit(
                transaction, organization: database.organization.id, actor: principal, action: "database.undelete",
                target: database.namespace,
                detail:
                    "database \(deleted.name) (id \(deleted.databaseID), deleted \(RFC3339.format(microseconds: deleted.deletedAt * 1000))) undeleted as id \(database.id), as of \(restoredTo)"
            )
        }
    }

    /// Claims the erasures that are due, at most `limit`, oldest first, each with a node to send it
    /// to (its last primary's node when still registered, else the live node of its location with
    /// the fewest primaries: every node of a platform ships to one store); each is set aside for
    /// `erasureClaim`. One whose location has no live node waits.
    func claimDueErasures(limit: Int = 10) async throws -> [PendingErasure] {
        let now = now()
        let liveSince = now - configuration.nodeTimeout.wholeMilliseconds
        return try await read { transaction in
            let rows = try await transaction.query(
                """
                SELECT \(Self.erasureColumns), next_attempt_at FROM deleted_databases
                WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, database_id LIMIT $2
                """, [.integer(now), .integer(Int64(limit))])
            var claimed: [PendingErasure] = []
            for row in rows {
                let deleted = try deletedDatabase(row)
                let taken = try await transaction.query(
                    """
                    UPDATE deleted_databases SET next_attempt_at = $1
                    WHERE database_id = $2 AND next_attempt_at = $3 RETURNING database_id
                    """,
                    [.integer(now + Self.erasureClaim), .text(deleted.databaseID), .integer(try row.integer(11))])
                guard !taken.isEmpty else { continue }
                var node = try await deleted.nodeID.asyncMap { try await self.node(id: $0, in: transaction) } ?? nil
                if node == nil {
                    node = try await transaction.queryOne(
                        """
                        SELECT \(Self.nodeColumns) FROM nodes WHERE location = $1 AND last_heartbeat_at >= $2
                        ORDER BY primaries, id LIMIT 1
                        """, [.text(deleted.location), .integer(liveSince)]
                    ).map { try nodeRecord($0) }
                }
                guard let node else {
                    // Nothing to send it to now: due again in a minute.
                    try await transaction.query(
                        "UPDATE deleted_databases SET next_attempt_at = $1 WHERE database_id = $2",
                        [.integer(now + Self.deletionBackoffLimit), .text(deleted.databaseID)])
                    continue
                }
                claimed.append(PendingErasure(deleted: deleted, node: node))
            }
            return claimed
        }
    }

    /// The node erased the backups (`objects` of them): the row goes, and the audit log records it.
    func completeErasure(_ erasure: PendingErasure, objects: Int) async throws {
        let deleted = erasure.deleted
        try await store.transaction { transaction in
            try await transaction.query(
                "DELETE FROM deleted_databases WHERE database_id = $1", [.text(deleted.databaseID)])
            try await self.audit(
                transaction, organization: deleted.organizationID,
                actor: Principal(name: "shoal (grace period ended)", organizationID: nil),
                action: "database.backups_erased", target: "\(deleted.backupID)",
                detail:
                    "the backups of database \(deleted.name) (id \(deleted.databaseID), deleted \(RFC3339.format(microseconds: deleted.deletedAt * 1000))) were erased: \(objects) objects"
            )
        }
    }

    /// The erasure failed: tried again later, waiting as a failed deletion does.
    func postponeErasure(_ erasure: PendingErasure, error: String) async throws {
        let attempts = erasure.deleted.attempts + 1
        let wait = min(Int64(1000) << min(attempts - 1, 20), Self.deletionBackoffLimit)
        try await read { transaction in
            _ = try await transaction.query(
                """
                UPDATE deleted_databases SET attempts = $1, next_attempt_at = $2, last_error = $3
                WHERE database_id = $4
                """,
                [
                    .integer(attempts), .integer(now() + wait), .text(String(error.prefix(500))),
                    .text(erasure.deleted.databaseID),
                ])
        }
    }

    /// How many deleted databases still have backups waiting to be erased.
    public func pendingErasureCount() async throws -> Int {
        try await read { transaction in
            Int(try await transaction.queryOne("SELECT count(*) FROM deleted_databases", [])?.integer(0) ?? 0)
        }
    }

    /// The ids of the databases whose primary is node `node`, in id order after `cursor`, at most
    /// `limit`, and the cursor of the next page (nil on the last).
    func primaryDatabaseIDs(
        node: String, after cursor: String?, limit: Int
    ) async throws
        -> (ids: [String], next: String?)
    {
        try await read { transaction in
            let ids = try await transaction.query(
                "SELECT id FROM databases WHERE primary_node = $1 AND id > $2 ORDER BY id LIMIT $3",
                [.text(node), .text(cursor ?? ""), .integer(Int64(limit + 1))]
            ).map { try $0.text(0) }
            let page = Array(ids.prefix(limit))
            return (page, ids.count > limit ? page.last : nil)
        }
    }

    /// Records a page of a node's recovery in the audit log.
    func recordNodeRecovery(node: NodeRecord, placed: Int, failed: Int, by principal: Principal) async throws {
        try await store.transaction { transaction in
            try await self.audit(
                transaction, organization: nil, actor: principal, action: "node.recover", target: node.id,
                outcome: failed == 0 ? "ok" : "partial",
                detail: "\(placed) primaries placed again on \(node.url), \(failed) failed")
        }
    }

    /// The retention of `plan`'s backups, in seconds.
    func backupRetention(plan: String) async throws -> Int64 {
        try await read { transaction in try await quotas(plan: plan, in: transaction).backupRetention }
    }
}
