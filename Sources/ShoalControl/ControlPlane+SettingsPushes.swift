import Foundation
import Logging
import ShoalModel

extension ControlPlane {
    /// A database's configuration as `GET` and `PATCH …/configuration` answer it: its settings, and
    /// the nodes that have not confirmed them yet (empty once every node holds them).
    struct ConfigurationAnswer: Encodable {
        /// The settings, as the catalog holds them.
        let configuration: Platform.DatabaseConfiguration
        /// The nodes the settings are still pending on.
        let pendingNodes: [PendingNode]

        /// A node that has not confirmed the settings yet; they are sent again until it does.
        struct PendingNode: Encodable {
            /// The node's id (an instance's `uuid`).
            let id: String
            /// The node's location.
            let location: String
        }

        init(_ configuration: Platform.DatabaseConfiguration, pending: [Catalog.NodeRecord]) {
            self.configuration = configuration
            pendingNodes = pending.map { PendingNode(id: $0.id, location: $0.location) }
        }

        enum CodingKeys: String, CodingKey {
            case sizeLimit = "size_limit"
            case blockReads = "block_reads"
            case blockWrites = "block_writes"
            case deleteProtection = "delete_protection"
            case pendingNodes = "pending_nodes"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encodeIfPresent(configuration.sizeLimit, forKey: .sizeLimit)
            try container.encodeIfPresent(configuration.blockReads, forKey: .blockReads)
            try container.encodeIfPresent(configuration.blockWrites, forKey: .blockWrites)
            try container.encodeIfPresent(configuration.deleteProtection, forKey: .deleteProtection)
            try container.encode(pendingNodes, forKey: .pendingNodes)
        }
    }

    /// Sends the settings of `databaseIDs`, just changed in the catalog, to the nodes that may hold
    /// them, now. A node that fails or cannot be reached keeps its push pending
    /// (`database_settings_pushes`), and `retryDeletions` sends it again until the node confirms.
    func deliverSettingsPushes(of databaseIDs: [String]) async {
        guard !databaseIDs.isEmpty else { return }
        do {
            await deliverSettings(try await catalog.settingsPushes(of: databaseIDs))
        } catch {
            logger.warning("database.settings.catalog_failed", metadata: ["error": "\(error)"])
        }
    }

    /// One pass over the pending settings pushes: sends those that are due (at most `limit`) to
    /// their nodes; returns how many the nodes confirmed.
    @discardableResult
    public func deliverDueSettingsPushes(limit: Int = 100) async -> Int {
        do {
            return await deliverSettings(try await catalog.claimDueSettingsPushes(limit: limit))
        } catch {
            logger.warning("database.settings.catalog_failed", metadata: ["error": "\(error)"])
            return 0
        }
    }

    /// The settings `node` is to hold for `database`: the primary's, or a replica's (with the
    /// primary's URL and a fresh sync token) on a node of one of the group's other locations; nil
    /// for a node that is neither (it holds no copy to set).
    func settings(
        for database: Catalog.DatabaseRecord, on node: Catalog.NodeRecord
    ) async throws
        -> DatabaseSettings?
    {
        guard let primary = database.primaryNode else { return nil }
        var settings = try await settings(for: database)
        if node.id == primary.id { return settings }
        guard node.location != database.group.primary, database.group.locations.contains(node.location) else {
            return nil
        }
        settings.primaryURL = "\(primary.url)/db/\(database.organization.slug)/\(database.name)"
        // A replica gets a sync token only where the region rules let the data go (as the placement
        // lookup checks); elsewhere its primary refuses it anyway, and it is given nothing to try.
        if settings.allowedLocations?.contains(node.location) ?? true {
            settings.syncToken = try await catalog.replicaSyncToken(for: database, location: node.location)
        }
        return settings
    }

    /// What `push` sends: its database's namespace and the settings its node is to hold, read from
    /// the catalog now (once per database in `databases`); nil when there is nothing to send.
    private func pushContent(
        of push: Catalog.PendingSettingsPush, databases: inout [String: Catalog.DatabaseRecord?]
    ) async throws -> (namespace: String, settings: DatabaseSettings)? {
        let database: Catalog.DatabaseRecord?
        if let known = databases[push.databaseID] {
            database = known
        } else {
            database = try await catalog.settingsPushDatabase(id: push.databaseID)
            databases[push.databaseID] = .some(database)
        }
        guard let database, let settings = try await self.settings(for: database, on: push.node) else { return nil }
        return (database.namespace, settings)
    }

    /// Sends claimed pushes in order, each with the database's settings as the catalog holds them
    /// now. A node that fails once is not asked again in the same call (its other pushes wait for
    /// their next attempt), so a node that does not answer costs one timeout per pass, not one per
    /// database.
    @discardableResult
    private func deliverSettings(_ pushes: [Catalog.PendingSettingsPush]) async -> Int {
        var confirmed = 0
        var failed: [String: String] = [:]
        // Read once per call, after the pushes were claimed: newer than any change they carry.
        var databases: [String: Catalog.DatabaseRecord?] = [:]
        for push in pushes {
            // Cancelled (shutting down): what is left stays claimed and comes due again by itself.
            guard !Task.isCancelled else { break }
            var metadata: Logger.Metadata = ["db.id": "\(push.databaseID)", "node.url": "\(push.node.url)"]
            let content: (namespace: String, settings: DatabaseSettings)?
            do {
                content = try await pushContent(of: push, databases: &databases)
            } catch {
                // The push stays claimed and comes due again once the claim lapses.
                metadata["error"] = "\(error)"
                logger.warning("database.settings.catalog_failed", metadata: metadata)
                continue
            }
            guard let content else {
                // The database was deleted, or the node no longer may hold it: nothing to send.
                try? await catalog.dropSettingsPush(push)
                continue
            }
            metadata["db.namespace"] = "\(content.namespace)"
            var failure = failed[push.node.id]
            if failure == nil {
                do {
                    try await nodes.configure(content.namespace, settings: content.settings, on: push.node)
                } catch {
                    failure = "\(error)"
                    failed[push.node.id] = failure
                }
            }
            guard !Task.isCancelled else { break }
            if let failure {
                let due = try? await catalog.postponeSettingsPush(push, error: failure)
                var details = metadata
                details["push.attempts"] = "\(push.attempts + 1)"
                details["push.next_attempt_at"] = "\(due.map(String.init) ?? "unknown")"
                details["error"] = "\(failure)"
                logger.warning("database.settings.push_failed", metadata: details)
                continue
            }
            do {
                if try await catalog.completeSettingsPush(push) {
                    confirmed += 1
                    if push.attempts > 0 {
                        var details = metadata
                        details["push.attempts"] = "\(push.attempts + 1)"
                        logger.info("database.settings.confirmed_after_retry", metadata: details)
                    }
                } else {
                    logger.debug("database.settings.push_superseded", metadata: metadata)
                }
            } catch {
                // The node confirmed; the record stays until a later pass confirms again (idempotent).
                var details = metadata
                details["error"] = "\(error)"
                logger.warning("database.settings.catalog_failed", metadata: details)
            }
        }
        return confirmed
    }
}
