import Foundation
import ShoalModel

extension Catalog {
    /// A deleted database's removal from one node, pending until the node confirms it.
    struct PendingDeletion: Sendable {
        /// The deleted database's id: the incarnation the node is to remove.
        let databaseID: String
        /// `org/name`, as nodes name it.
        let namespace: String
        /// The node to tell.
        let node: NodeRecord
        /// Failed attempts so far.
        let attempts: Int64
    }

    /// How long a claimed deletion is left to the instance that claimed it before another may try
    /// (longer than a node call's timeout).
    static let deletionClaim: Int64 = 60_000
    /// The longest wait between two attempts of one deletion.
    static let deletionBackoffLimit: Int64 = 60_000

    /// Records, in the deletion's transaction, that `database` must be removed from every node that
    /// may hold it: its primary's node and every registered node of its group's other locations (each
    /// may keep a replica), whether up or down. Each is recorded as claimed by the deleting call,
    /// which sends it at once (`deletions(of:)`); if that call never gets to it, the claim lapses and
    /// the retries take it.
    func recordDeletion(of database: DatabaseRecord, in transaction: any CatalogTransaction) async throws {
        var nodeIDs: Set<String> = []
        if let primary = database.primaryNode { nodeIDs.insert(primary.id) }
        for location in Set(database.group.locations).subtracting([database.group.primary]) {
            for row in try await transaction.query("SELECT id FROM nodes WHERE location = $1", [.text(location)]) {
                nodeIDs.insert(try row.text(0))
            }
        }
        let now = now()
        for nodeID in nodeIDs.sorted() {
            try await transaction.query(
                """
                INSERT INTO database_deletions (database_id, node_id, namespace, deleted_at, attempts, next_attempt_at)
                VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (database_id, node_id) DO NOTHING
                """,
                [
                    .text(database.id), .text(nodeID), .text(database.namespace), .integer(now),
                    .integer(now + Self.deletionClaim),
                ])
        }
    }

    /// The pending deletions of `databaseIDs`, just deleted by the caller (which holds their claim:
    /// see `recordDeletion`).
    func deletions(of databaseIDs: [String]) async throws -> [PendingDeletion] {
        try await read { transaction in
            var deletions: [PendingDeletion] = []
            for id in databaseIDs {
                for row in try await transaction.query(
                    """
                    SELECT database_id, node_id, namespace, attempts FROM database_deletions
                    WHERE database_id = $1 ORDER BY node_id
                    """, [.text(id)])
                {
                    if let deletion = try await pendingDeletion(row, in: transaction) { deletions.append(deletion) }
                }
            }
            return deletions
        }
    }

    /// Claims the deletions that are due, at most `limit`, oldest first: each is set aside for
    /// `deletionClaim`, so that another control-plane instance sharing the catalog does not send the
    /// same delete meanwhile.
    func claimDueDeletions(limit: Int = 100) async throws -> [PendingDeletion] {
        let now = now()
        return try await read { transaction in
            let rows = try await transaction.query(
                """
                SELECT database_id, node_id, namespace, attempts, next_attempt_at FROM database_deletions
                WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, database_id, node_id LIMIT $2
                """, [.integer(now), .integer(Int64(limit))])
            var claimed: [PendingDeletion] = []
            for row in rows {
                // Taken only if no other instance took it since it was read.
                let taken = try await transaction.query(
                    """
                    UPDATE database_deletions SET next_attempt_at = $1
                    WHERE database_id = $2 AND node_id = $3 AND next_attempt_at = $4 RETURNING attempts
                    """,
                    [
                        .integer(now + Self.deletionClaim), .text(try row.text(0)), .text(try row.text(1)),
                        .integer(try row.integer(4)),
                    ])
                guard !taken.isEmpty else { continue }
                if let deletion = try await pendingDeletion(row, in: transaction) { claimed.append(deletion) }
            }
            return claimed
        }
    }

    /// A deletion row (`database_id, node_id, namespace, attempts`) with its node; a deletion whose
    /// node is no longer registered is dropped (nil).
    private func pendingDeletion(
        _ row: CatalogRow, in transaction: any CatalogTransaction
    ) async throws
        -> PendingDeletion?
    {
        let databaseID = try row.text(0)
        let nodeID = try row.text(1)
        guard let node = try await node(id: nodeID, in: transaction) else {
            try await transaction.query(
                "DELETE FROM database_deletions WHERE database_id = $1 AND node_id = $2",
                [.text(databaseID), .text(nodeID)])
            return nil
        }
        return PendingDeletion(
            databaseID: databaseID, namespace: try row.text(2), node: node, attempts: try row.integer(3))
    }

    /// The node confirmed the deletion: nothing is left to do for it.
    func completeDeletion(_ deletion: PendingDeletion) async throws {
        try await read { transaction in
            _ = try await transaction.query(
                "DELETE FROM database_deletions WHERE database_id = $1 AND node_id = $2",
                [.text(deletion.databaseID), .text(deletion.node.id)])
        }
    }

    /// The attempt failed: the next one waits 1 s after the first failure, twice as long after each
    /// further one, at most `deletionBackoffLimit`. Returns when it is due (milliseconds since 1970).
    @discardableResult
    func postponeDeletion(_ deletion: PendingDeletion, error: String) async throws -> Int64 {
        let attempts = deletion.attempts + 1
        let wait = min(Int64(1000) << min(attempts - 1, 20), Self.deletionBackoffLimit)
        let due = now() + wait
        try await read { transaction in
            _ = try await transaction.query(
                """
                UPDATE database_deletions SET attempts = $1, next_attempt_at = $2, last_error = $3
                WHERE database_id = $4 AND node_id = $5
                """,
                [
                    .integer(attempts), .integer(due), .text(String(error.prefix(500))), .text(deletion.databaseID),
                    .text(deletion.node.id),
                ])
        }
        return due
    }

    /// How many deletions nodes have not confirmed yet (all of them, or those of one database).
    public func pendingDeletionCount(databaseID: String? = nil) async throws -> Int {
        try await read { transaction in
            var sql = "SELECT count(*) FROM database_deletions"
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
