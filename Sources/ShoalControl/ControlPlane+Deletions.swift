import Foundation
import Logging

extension ControlPlane {
    /// Tells the nodes that may hold `databases`, just deleted in the catalog, to remove them now.
    /// A node that fails or cannot be reached keeps its deletion pending (`database_deletions`), and
    /// `retryDeletions` sends it again until the node confirms.
    func deliverDeletions(of databases: [Catalog.DatabaseRecord]) async {
        guard !databases.isEmpty else { return }
        do {
            await deliver(try await catalog.deletions(of: databases.map(\.id)))
        } catch {
            logger.warning("database.delete.catalog_failed", metadata: ["error": "\(error)"])
        }
    }

    /// One pass over the pending deletions: sends those that are due (at most `limit`) to their
    /// nodes; returns how many the nodes confirmed.
    @discardableResult
    public func deliverDueDeletions(limit: Int = 100) async -> Int {
        do {
            return await deliver(try await catalog.claimDueDeletions(limit: limit))
        } catch {
            logger.warning("database.delete.catalog_failed", metadata: ["error": "\(error)"])
            return 0
        }
    }

    /// Sends the deletions and the settings pushes nodes have not confirmed yet, every `interval`
    /// until cancelled: a node that was down or busy when a database was deleted, or when its
    /// settings changed, gets the delete or the settings once it answers. Each pass is bounded
    /// (`deliverDueDeletions`, `deliverDueSettingsPushes`), and a failed attempt waits longer each
    /// time (1 s, 2 s, 4 s, … up to a minute); several instances sharing a catalog do not send the
    /// same one twice.
    public func retryDeletions(every interval: Duration = .seconds(2)) async {
        while !Task.isCancelled {
            await deliverDueDeletions()
            await deliverDueSettingsPushes()
            try? await Task.sleep(for: interval)
        }
    }

    /// Sends claimed deletions in order. A node that fails once is not asked again in the same call
    /// (its other deletions wait for their next attempt), so a node that does not answer costs one
    /// timeout per pass, not one per database.
    @discardableResult
    private func deliver(_ deletions: [Catalog.PendingDeletion]) async -> Int {
        var confirmed = 0
        var failed: [String: String] = [:]
        for deletion in deletions {
            // Cancelled (shutting down): what is left stays claimed and comes due again by itself.
            guard !Task.isCancelled else { break }
            let metadata: Logger.Metadata = [
                "db.namespace": "\(deletion.namespace)", "db.id": "\(deletion.databaseID)",
                "node.url": "\(deletion.node.url)",
            ]
            var failure = failed[deletion.node.id]
            if failure == nil {
                do {
                    try await nodes.delete(deletion.namespace, databaseID: deletion.databaseID, on: deletion.node)
                } catch {
                    failure = "\(error)"
                    failed[deletion.node.id] = failure
                }
            }
            guard !Task.isCancelled else { break }
            if let failure {
                let due = try? await catalog.postponeDeletion(deletion, error: failure)
                var details = metadata
                details["deletion.attempts"] = "\(deletion.attempts + 1)"
                details["deletion.next_attempt_at"] = "\(due.map(String.init) ?? "unknown")"
                details["error"] = "\(failure)"
                logger.warning("database.delete.node_failed", metadata: details)
                continue
            }
            do {
                try await catalog.completeDeletion(deletion)
                confirmed += 1
                if deletion.attempts > 0 {
                    var details = metadata
                    details["deletion.attempts"] = "\(deletion.attempts + 1)"
                    logger.info("database.delete.confirmed_after_retry", metadata: details)
                }
            } catch {
                // The node confirmed; the record stays until a later pass confirms again (idempotent).
                var details = metadata
                details["error"] = "\(error)"
                logger.warning("database.delete.catalog_failed", metadata: details)
            }
        }
        return confirmed
    }
}
