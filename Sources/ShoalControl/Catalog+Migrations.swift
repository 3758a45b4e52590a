import Crypto
import Foundation
import ShoalModel
import ShoalSQLite

extension Catalog {
    /// The most migrations a group's schema holds.
    static let maxMigrations = 1000
    /// The longest migration SQL accepted.
    static let maxMigrationSQLBytes = 256 << 10
    /// The most SQL a group's migrations hold together (each migrate request carries them all, and
    /// a node takes at most 16 MiB in a request).
    static let maxSchemaSQLBytes = 8 << 20
    /// Rollout states in which the rollout still has work or waits for a decision.
    static let activeRolloutStates = ["canary", "approval", "soaking", "running", "paused", "stopped"]
    /// How long the control plane's own nodes may keep a group's schema version cached: a rollout is
    /// done no sooner than this after its release, so that no database opens at the old version
    /// once it reports done.
    static let schemaCacheLifetime: Int64 = 5_000

    /// A rollout as the catalog holds it.
    struct RolloutRecord: Sendable {
        let id: String
        let groupID: String
        let groupName: String
        let targetVersion: Int64
        var state: String
        let pausedState: String?
        let canaryCount: Int64
        let soakMs: Int64?
        let soakUntil: Int64?
        let concurrency: Int64
        let continueOnError: Bool
        let createdAt: Int64
        let releasedAt: Int64?
        let finishedAt: Int64?
    }

    /// One database's task of a rollout, with where to send it.
    struct RolloutTask: Sendable {
        let databaseID: String
        let namespace: String
        let node: NodeRecord?
        let attempts: Int64
    }

    /// What one task came to.
    struct TaskOutcome: Sendable {
        let databaseID: String
        /// The database's version afterwards, when the node answered.
        let version: Int64?
        /// The error, when it failed.
        let error: String?
        /// How its schema differs from what its migrations make (nil: it does not, or unknown).
        let drift: Platform.SchemaDrift?
        /// Whether the database is gone (deleted since the rollout started): the task is skipped.
        var gone = false
    }

    static let rolloutColumns =
        "r.id, r.group_id, g.name, r.target_version, r.state, r.paused_state, r.canary_count, r.soak_ms, "
        + "r.soak_until, r.concurrency, r.continue_on_error, r.created_at, r.released_at, r.finished_at"

    func rolloutRecord(_ row: CatalogRow) throws -> RolloutRecord {
        RolloutRecord(
            id: try row.text(0), groupID: try row.text(1), groupName: try row.text(2),
            targetVersion: try row.integer(3), state: try row.text(4), pausedState: try row.optionalText(5),
            canaryCount: try row.integer(6), soakMs: try row.optionalInteger(7), soakUntil: try row.optionalInteger(8),
            concurrency: try row.integer(9), continueOnError: try row.flag(10), createdAt: try row.integer(11),
            releasedAt: try row.optionalInteger(12), finishedAt: try row.optionalInteger(13))
    }

    static func checksum(_ sql: String) -> String {
        SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static func validateMigrationName(_ name: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
        guard (1...128).contains(name.count), name.allSatisfy({ allowed.contains($0) }) else {
            throw ControlError.invalidName(
                "a migration name is 1 to 128 letters, digits, '_', '.' or '-' (such as 0002_add_email)")
        }
    }

    /// The migrations of a group, in order.
    func migrations(ofGroup id: String, in transaction: any CatalogTransaction) async throws -> [TenantMigration] {
        try await transaction.query(
            "SELECT version, name, sql, checksum FROM group_migrations WHERE group_id = $1 ORDER BY version",
            [.text(id)]
        ).map { row in
            TenantMigration(
                version: try row.integer(0), name: try row.text(1), sql: try row.text(2), checksum: try row.text(3))
        }
    }

    /// The migrations of the group with id `groupID`; with `node`, only if that node holds one of
    /// the group's primaries (a node brings its own databases up to date, and reads no other
    /// group's schema).
    func migrations(
        ofGroup groupID: String, node: String? = nil
    ) async throws -> (version: Int64, migrations: [TenantMigration]) {
        try await read { transaction in
            guard
                let row = try await transaction.queryOne(
                    "SELECT schema_version FROM db_groups WHERE id = $1", [.text(groupID)])
            else { throw ControlError.notFound("that group does not exist") }
            if let node {
                guard
                    try await transaction.queryOne(
                        "SELECT 1 FROM databases WHERE group_id = $1 AND primary_node = $2 LIMIT 1",
                        [.text(groupID), .text(node)]) != nil
                else { throw ControlError.notFound("no database of that group has its primary on this node") }
            }
            return (try row.integer(0), try await self.migrations(ofGroup: groupID, in: transaction))
        }
    }

    /// Adds a migration to a group's tenant schema. Refused when its name is taken by another SQL
    /// (an applied migration is never edited: add a new one), and when it fails its dry run: the
    /// group's migrations and then it, applied to an empty database. Adding the same name and SQL
    /// again returns the migration as it is.
    public func addMigration(
        organization slug: String, group name: String, migration: Platform.MigrationCreation, by principal: Principal
    ) async throws -> Platform.Migration {
        try Self.validateMigrationName(migration.name)
        guard migration.sql.utf8.count <= Self.maxMigrationSQLBytes else {
            throw ControlError.badRequest("a migration's SQL is at most \(Self.maxMigrationSQLBytes) bytes")
        }
        guard !migration.sql.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw ControlError.badRequest("the migration has no SQL")
        }
        let checksum = Self.checksum(migration.sql)
        let (group, existing) = try await read { transaction in
            let group = try await self.group(
                name, of: try await self.organization(slug, for: principal, in: transaction), in: transaction)
            return (group, try await self.migrations(ofGroup: group.id, in: transaction))
        }
        if let same = existing.first(where: { $0.name == migration.name }) {
            guard same.checksum == checksum else {
                throw ControlError.conflict(
                    "migration \(migration.name) is already version \(same.version) of group \(name) with other SQL "
                        + "(checksum \(same.checksum.prefix(12)), this is \(checksum.prefix(12))); applied migrations "
                        + "are never edited: add a new migration that makes the change")
            }
            return Platform.Migration(
                version: same.version, name: same.name, checksum: same.checksum, createdAt: 0, sql: same.sql)
        }
        guard existing.reduce(migration.sql.utf8.count, { $0 + $1.sql.utf8.count }) <= Self.maxSchemaSQLBytes else {
            throw ControlError.quotaExceeded(
                "a group's migrations hold at most \(Self.maxSchemaSQLBytes >> 20) MiB of SQL together (every database "
                    + "is sent them all)")
        }
        guard existing.count < Self.maxMigrations else {
            throw ControlError.quotaExceeded("a group's schema holds at most \(Self.maxMigrations) migrations")
        }
        let candidate = TenantMigration(
            version: Int64(existing.count + 1), name: migration.name, sql: migration.sql, checksum: checksum)
        do {
            _ = try await BlockingExecutor.shared.run {
                try TenantMigrator.expectedSchema(of: existing + [candidate])
            }
        } catch let failure as TenantMigrator.Failure {
            throw ControlError.unprocessable(
                "the migration failed its dry run (the group's \(existing.count) migrations and then it, on an empty "
                    + "database), so no database was changed: \(failure)")
        }
        return try await audited(
            organization: slug, actor: principal, action: "migration.create", target: "\(slug)/\(name)"
        ) { transaction in
            let organization = try await self.lockedOrganization(slug, for: principal, in: transaction)
            let count =
                try await transaction.queryOne(
                    "SELECT COUNT(*) FROM group_migrations WHERE group_id = $1", [.text(group.id)])?.integer(0) ?? 0
            guard count == Int64(existing.count) else {
                throw ControlError.conflict(
                    "another migration was added to group \(name) meanwhile; add this one again")
            }
            let now = self.now()
            do {
                try await transaction.query(
                    """
                    INSERT INTO group_migrations (group_id, version, name, sql, checksum, created_at)
                    VALUES ($1, $2, $3, $4, $5, $6)
                    """,
                    [
                        .text(group.id), .integer(candidate.version), .text(candidate.name), .text(candidate.sql),
                        .text(checksum), .integer(now),
                    ])
            } catch CatalogStoreError.uniqueViolation {
                throw ControlError.conflict(
                    "another migration was added to group \(name) meanwhile; add this one again")
            }
            try await self.audit(
                transaction, organization: organization.id, actor: principal, action: "migration.create",
                target: "\(slug)/\(name)",
                detail: "migration \(candidate.version) \(candidate.name) (\(checksum.prefix(12))) added")
            return Platform.Migration(
                version: candidate.version, name: candidate.name, checksum: checksum, createdAt: now,
                sql: candidate.sql, pending: try await self.databaseCount(ofGroup: group.id, in: transaction))
        }
    }

    func databaseCount(ofGroup id: String, in transaction: any CatalogTransaction) async throws -> Int64 {
        try await transaction.queryOne("SELECT COUNT(*) FROM databases WHERE group_id = $1", [.text(id)])?.integer(0)
            ?? 0
    }

    /// A group's migrations, with how many of its databases have applied each, and its latest rollout.
    public func migrationList(
        organization slug: String, group name: String, includeSQL: Bool, for principal: Principal
    ) async throws -> Platform.MigrationList {
        try await read { transaction in
            let group = try await self.group(
                name, of: try await self.organization(slug, for: principal, in: transaction), in: transaction)
            let total = try await self.databaseCount(ofGroup: group.id, in: transaction)
            let schemaVersion =
                try await transaction.queryOne(
                    "SELECT schema_version FROM db_groups WHERE id = $1", [.text(group.id)])?.integer(0) ?? 0
            let drifted =
                try await transaction.queryOne(
                    "SELECT COUNT(*) FROM databases WHERE group_id = $1 AND schema_drift IS NOT NULL",
                    [.text(group.id)])?.integer(0) ?? 0
            // Databases at each version, and the latest rollout's failed ones at each version.
            var atVersion: [Int64: Int64] = [:]
            for row in try await transaction.query(
                "SELECT schema_version, COUNT(*) FROM databases WHERE group_id = $1 GROUP BY schema_version",
                [.text(group.id)])
            {
                atVersion[try row.integer(0), default: 0] += try row.integer(1)
            }
            let rollout = try await self.latestRollout(ofGroup: group.id, in: transaction)
            var failedAtVersion: [Int64: Int64] = [:]
            if let rollout {
                for row in try await transaction.query(
                    """
                    SELECT d.schema_version, COUNT(*) FROM rollout_tasks t JOIN databases d ON d.id = t.database_id
                    WHERE t.rollout_id = $1 AND t.state = 'failed' GROUP BY d.schema_version
                    """, [.text(rollout.id)])
                {
                    failedAtVersion[try row.integer(0), default: 0] += try row.integer(1)
                }
            }
            var migrations: [Platform.Migration] = []
            for row in try await transaction.query(
                "SELECT version, name, checksum, created_at, sql FROM group_migrations WHERE group_id = $1 ORDER BY version",
                [.text(group.id)])
            {
                let version = try row.integer(0)
                let applied = atVersion.filter { $0.key >= version }.values.reduce(0, +)
                let failed =
                    rollout.map { $0.targetVersion >= version }
                        == true ? failedAtVersion.filter { $0.key < version }.values.reduce(0, +) : 0
                migrations.append(
                    Platform.Migration(
                        version: version, name: try row.text(1), checksum: try row.text(2),
                        createdAt: try row.integer(3), sql: includeSQL ? try row.text(4) : nil, applied: applied,
                        pending: total - applied - failed, failed: failed))
            }
            return Platform.MigrationList(
                migrations: migrations, schemaVersion: schemaVersion, databases: total, drifted: drifted,
                rollout: try await rollout.asyncMap { try await self.rolloutModel($0, in: transaction) })
        }
    }

    func latestRollout(ofGroup id: String, in transaction: any CatalogTransaction) async throws -> RolloutRecord? {
        try await transaction.queryOne(
            """
            SELECT \(Self.rolloutColumns) FROM rollouts r JOIN db_groups g ON g.id = r.group_id
            WHERE r.group_id = $1 ORDER BY r.created_at DESC, r.id DESC LIMIT 1
            """, [.text(id)]
        ).map { try rolloutRecord($0) }
    }

    func rolloutRecord(id: String, in transaction: any CatalogTransaction) async throws -> RolloutRecord? {
        try await transaction.queryOne(
            "SELECT \(Self.rolloutColumns) FROM rollouts r JOIN db_groups g ON g.id = r.group_id WHERE r.id = $1",
            [.text(id)]
        ).map { try rolloutRecord($0) }
    }

    func rolloutModel(_ rollout: RolloutRecord, in transaction: any CatalogTransaction) async throws -> Platform.Rollout
    {
        var counts: [String: Int64] = [:]
        for row in try await transaction.query(
            "SELECT state, COUNT(*) FROM rollout_tasks WHERE rollout_id = $1 GROUP BY state", [.text(rollout.id)])
        {
            counts[try row.text(0)] = try row.integer(1)
        }
        let failures = try await transaction.query(
            """
            SELECT d.name, t.error, t.attempts FROM rollout_tasks t JOIN databases d ON d.id = t.database_id
            WHERE t.rollout_id = $1 AND t.state = 'failed' ORDER BY d.name LIMIT 100
            """, [.text(rollout.id)]
        ).map { row in
            Platform.RolloutFailure(
                database: try row.text(0), error: try row.optionalText(1) ?? "", attempts: try row.integer(2))
        }
        return Platform.Rollout(
            id: rollout.id, group: rollout.groupName, targetVersion: rollout.targetVersion, state: rollout.state,
            canaryCount: rollout.canaryCount, concurrency: rollout.concurrency,
            continueOnError: rollout.continueOnError, soakSeconds: rollout.soakMs.map { $0 / 1000 },
            total: counts.values.reduce(0, +), done: counts["done"] ?? 0, pending: counts["pending"] ?? 0,
            failed: counts["failed"] ?? 0, skipped: counts["skipped"] ?? 0, failures: failures,
            createdAt: rollout.createdAt, finishedAt: rollout.finishedAt)
    }

    /// Parses a canary of `total` databases: a count (`"10"`) or a percentage (`"5%"`, rounded up).
    static func canaryCount(_ text: String?, of total: Int64) throws -> Int64 {
        guard let text, !text.isEmpty else { return 0 }
        if text.hasSuffix("%") {
            guard let percent = Double(text.dropLast()), percent > 0, percent <= 100 else {
                throw ControlError.badRequest("a canary percentage is from 0 to 100, such as 5%")
            }
            return min(total, Int64((Double(total) * percent / 100).rounded(.up)))
        }
        guard let count = Int64(text), count >= 0 else {
            throw ControlError.badRequest("canary is a number of databases (10) or a percentage (5%)")
        }
        return min(total, count)
    }

    /// Starts a rollout of a group's schema to its latest version (or `targetVersion`): one task per
    /// database of the group, the canary ones first. Refused while another rollout of the group is
    /// under way; a stopped one is cancelled by it (its failed databases are in the new one too).
    public func startRollout(
        organization slug: String, group name: String, options: Platform.RolloutCreation, by principal: Principal
    ) async throws -> Platform.Rollout {
        let concurrency = options.concurrency ?? 4
        guard (1...64).contains(concurrency) else {
            throw ControlError.badRequest("concurrency is from 1 to 64 databases at once per node")
        }
        if let soak = options.soakSeconds, !(0...604_800).contains(soak) {
            throw ControlError.badRequest("soak_seconds is from 0 to 604800 (a week)")
        }
        return try await audited(
            organization: slug, actor: principal, action: "migration.apply", target: "\(slug)/\(name)"
        ) { transaction in
            let organization = try await self.lockedOrganization(slug, for: principal, in: transaction)
            let group = try await self.group(name, of: organization, in: transaction)
            let latest =
                try await transaction.queryOne(
                    "SELECT COUNT(*) FROM group_migrations WHERE group_id = $1", [.text(group.id)])?.integer(0) ?? 0
            let target = options.targetVersion ?? latest
            guard latest > 0 else {
                throw ControlError.badRequest(
                    "group \(name) has no migrations; add one with `shoal migrate new \(name) NAME --file F.sql`")
            }
            guard (1...latest).contains(target) else {
                throw ControlError.badRequest("target_version is from 1 to \(latest), the group's latest migration")
            }
            if let current = try await self.latestRollout(ofGroup: group.id, in: transaction),
                Self.activeRolloutStates.contains(current.state)
            {
                guard current.state == "stopped" else {
                    throw ControlError.conflict(
                        "rollout \(current.id) of group \(name) is \(current.state); pause, resume, retry or skip "
                            + "it (`shoal migrate status \(name)`), or wait for it to finish")
                }
                try await transaction.query(
                    "UPDATE rollouts SET state = 'cancelled', finished_at = $1, updated_at = $1 WHERE id = $2",
                    [.integer(self.now()), .text(current.id)])
            }
            let ids = try await transaction.query(
                "SELECT id FROM databases WHERE group_id = $1 ORDER BY id", [.text(group.id)]
            ).map { try $0.text(0) }
            let canary = try Self.canaryCount(options.canary, of: Int64(ids.count))
            let id = Self.newID()
            let now = self.now()
            let state = canary > 0 ? "canary" : "running"
            try await transaction.query(
                """
                INSERT INTO rollouts (id, group_id, target_version, state, canary_count, soak_ms, concurrency,
                    continue_on_error, created_by, created_at, updated_at, released_at, lease_until)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, 0)
                """,
                [
                    .text(id), .text(group.id), .integer(target), .text(state), .integer(canary),
                    options.soakSeconds.map { .integer($0 * 1000) } ?? .null, .integer(concurrency),
                    .integer(options.continueOnError == true ? 1 : 0), .text(principal.name), .integer(now),
                    canary > 0 ? .null : .integer(now),
                ])
            // Ids are random: the first ones in id order are a random sample of the group.
            for (index, databaseID) in ids.enumerated() {
                try await transaction.query(
                    """
                    INSERT INTO rollout_tasks (rollout_id, database_id, canary, state, attempts, updated_at)
                    VALUES ($1, $2, $3, 'pending', 0, $4)
                    """, [.text(id), .text(databaseID), .integer(Int64(index) < canary ? 1 : 0), .integer(now)])
            }
            if canary == 0 { try await self.release(groupID: group.id, version: target, in: transaction) }
            try await self.audit(
                transaction, organization: organization.id, actor: principal, action: "migration.apply",
                target: "\(slug)/\(name)",
                detail: "rollout \(id) to version \(target) over \(ids.count) databases (canary \(canary))")
            guard let record = try await self.rolloutRecord(id: id, in: transaction) else {
                throw ControlError.catalogUnavailable("the rollout just made is missing")
            }
            return try await self.rolloutModel(record, in: transaction)
        }
    }

    /// Makes `version` the one new databases start at and opened databases are brought to.
    func release(groupID: String, version: Int64, in transaction: any CatalogTransaction) async throws {
        try await transaction.query(
            "UPDATE db_groups SET schema_version = $1 WHERE id = $2 AND schema_version < $1",
            [.integer(version), .text(groupID)])
    }

    /// The latest rollout of a group.
    public func rollout(
        organization slug: String, group name: String, for principal: Principal
    ) async throws -> Platform.Rollout {
        try await read { transaction in
            let group = try await self.group(
                name, of: try await self.organization(slug, for: principal, in: transaction), in: transaction)
            guard let rollout = try await self.latestRollout(ofGroup: group.id, in: transaction) else {
                throw ControlError.notFound(
                    "group \(name) has no rollout; start one with `shoal migrate apply \(name)`")
            }
            return try await self.rolloutModel(rollout, in: transaction)
        }
    }

    /// What a caller may do to a rollout under way.
    public enum RolloutAction: String, Sendable, CaseIterable {
        /// Stop starting new tasks until `resume`.
        case pause
        /// Go on after a pause, or past the canary when it waits for approval.
        case resume
        /// Try the failed databases again (and go on when stopped).
        case retry
        /// Give up on the failed databases (and go on when stopped).
        case skip
    }

    /// Pauses, resumes, retries or skips the failed databases of a group's latest rollout.
    public func controlRollout(
        organization slug: String, group name: String, action: RolloutAction, by principal: Principal
    ) async throws -> Platform.Rollout {
        try await audited(
            organization: slug, actor: principal, action: "migration.\(action.rawValue)", target: "\(slug)/\(name)"
        ) { transaction in
            let organization = try await self.lockedOrganization(slug, for: principal, in: transaction)
            let group = try await self.group(name, of: organization, in: transaction)
            guard let rollout = try await self.latestRollout(ofGroup: group.id, in: transaction) else {
                throw ControlError.notFound(
                    "group \(name) has no rollout; start one with `shoal migrate apply \(name)`")
            }
            let now = self.now()
            var state = rollout.state
            var pausedState = rollout.pausedState
            switch action {
            case .pause:
                guard ["canary", "approval", "soaking", "running"].contains(state) else {
                    throw ControlError.conflict("rollout \(rollout.id) is \(state); only one under way can be paused")
                }
                pausedState = state
                state = "paused"
            case .resume:
                switch state {
                case "paused": state = pausedState ?? "running"
                case "approval", "soaking":
                    state = "running"
                    try await self.enterMainPhase(rollout, in: transaction)
                default:
                    throw ControlError.conflict(
                        "rollout \(rollout.id) is \(state); resume goes on after a pause or past the canary")
                }
                pausedState = nil
            case .retry, .skip:
                let changed = try await transaction.query(
                    """
                    UPDATE rollout_tasks SET state = $1, updated_at = $2
                    WHERE rollout_id = $3 AND state = 'failed' RETURNING database_id
                    """, [.text(action == .retry ? "pending" : "skipped"), .integer(now), .text(rollout.id)])
                if changed.isEmpty, state != "stopped" {
                    throw ControlError.conflict("rollout \(rollout.id) has no failed databases to \(action.rawValue)")
                }
                if state == "stopped" || state == "done" {
                    // Back to the phase it stopped in. Not released yet: back to the canary, which goes
                    // to approval or its soak once its last task is done, never straight to the group.
                    state = rollout.releasedAt == nil ? "canary" : "running"
                }
            }
            // Only from the state read: a driver that moved the rollout meanwhile wins, and the
            // caller is told to look again.
            let changed = try await transaction.query(
                """
                UPDATE rollouts SET state = $1, paused_state = $2, updated_at = $3, finished_at = NULL
                WHERE id = $4 AND state = $5 RETURNING id
                """,
                [
                    .text(state), pausedState.map { .text($0) } ?? .null, .integer(now), .text(rollout.id),
                    .text(rollout.state),
                ])
            guard !changed.isEmpty else {
                throw ControlError.conflict(
                    "rollout \(rollout.id) moved on meanwhile; look at it again (`shoal migrate status \(name)`)")
            }
            try await self.audit(
                transaction, organization: organization.id, actor: principal, action: "migration.\(action.rawValue)",
                target: "\(slug)/\(name)", detail: "rollout \(rollout.id): \(rollout.state) → \(state)")
            guard let record = try await self.rolloutRecord(id: rollout.id, in: transaction) else {
                throw ControlError.catalogUnavailable("the rollout is missing")
            }
            return try await self.rolloutModel(record, in: transaction)
        }
    }

    /// Past the canary: the version is released (new databases start at it, opened ones are brought
    /// to it), and databases created since the rollout started get a task too.
    func enterMainPhase(_ rollout: RolloutRecord, in transaction: any CatalogTransaction) async throws {
        let now = self.now()
        try await release(groupID: rollout.groupID, version: rollout.targetVersion, in: transaction)
        try await transaction.query(
            "UPDATE rollouts SET released_at = $1 WHERE id = $2 AND released_at IS NULL",
            [.integer(now), .text(rollout.id)])
        try await transaction.query(
            """
            INSERT INTO rollout_tasks (rollout_id, database_id, canary, state, attempts, updated_at)
            SELECT $1, d.id, 0, 'pending', 0, $2 FROM databases d
            WHERE d.group_id = $3 AND NOT EXISTS (
                SELECT 1 FROM rollout_tasks t WHERE t.rollout_id = $1 AND t.database_id = d.id)
            """, [.text(rollout.id), .integer(now), .text(rollout.groupID)])
    }

    // MARK: - Driving rollouts

    /// Takes (or renews) the lease of every rollout with work to do that no other instance holds:
    /// its holder alone drives it until the lease lapses (`leaseMs` from now).
    func leaseRollouts(owner: String, leaseMs: Int64) async throws -> [RolloutRecord] {
        let now = now()
        return try await read { transaction in
            let rows = try await transaction.query(
                """
                SELECT \(Self.rolloutColumns) FROM rollouts r JOIN db_groups g ON g.id = r.group_id
                WHERE r.state IN ('canary', 'soaking', 'running') AND (r.lease_owner = $1 OR r.lease_until < $2)
                ORDER BY r.created_at LIMIT 20
                """, [.text(owner), .integer(now)])
            var leased: [RolloutRecord] = []
            for row in rows {
                let record = try self.rolloutRecord(row)
                let taken = try await transaction.query(
                    """
                    UPDATE rollouts SET lease_owner = $1, lease_until = $2
                    WHERE id = $3 AND (lease_owner = $1 OR lease_until < $4) RETURNING id
                    """, [.text(owner), .integer(now + leaseMs), .text(record.id), .integer(now)])
                if !taken.isEmpty { leased.append(record) }
            }
            return leased
        }
    }

    /// Renews a rollout's lease; returns the rollout as it is now, or nil when the lease is lost
    /// (another instance took it) or the rollout is gone.
    func renewRolloutLease(_ id: String, owner: String, leaseMs: Int64) async throws -> RolloutRecord? {
        let now = now()
        return try await read { transaction in
            let taken = try await transaction.query(
                "UPDATE rollouts SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 RETURNING id",
                [.integer(now + leaseMs), .text(id), .text(owner)])
            guard !taken.isEmpty else { return nil }
            return try await self.rolloutRecord(id: id, in: transaction)
        }
    }

    /// Gives a rollout's lease back (the instance stops).
    func releaseRolloutLease(_ id: String, owner: String) async throws {
        try await read { transaction in
            _ = try await transaction.query(
                "UPDATE rollouts SET lease_until = 0 WHERE id = $1 AND lease_owner = $2", [.text(id), .text(owner)])
        }
    }

    /// Pending tasks of a rollout (canary ones only, in the canary phase), at most `limit`, with
    /// their databases' nodes.
    func pendingTasks(of rollout: RolloutRecord, canaryOnly: Bool, limit: Int) async throws -> [RolloutTask] {
        try await read { transaction in
            let rows = try await transaction.query(
                """
                SELECT t.database_id, o.slug, d.name, d.primary_node, t.attempts FROM rollout_tasks t
                LEFT JOIN databases d ON d.id = t.database_id LEFT JOIN organizations o ON o.id = d.org_id
                WHERE t.rollout_id = $1 AND t.state = 'pending' AND t.canary >= $2
                ORDER BY t.database_id LIMIT $3
                """, [.text(rollout.id), .integer(canaryOnly ? 1 : 0), .integer(Int64(limit))])
            var nodes: [String: NodeRecord] = [:]
            var tasks: [RolloutTask] = []
            for row in rows {
                var node: NodeRecord?
                if let nodeID = try row.optionalText(3) {
                    if let known = nodes[nodeID] {
                        node = known
                    } else {
                        node = try await self.node(id: nodeID, in: transaction)
                        nodes[nodeID] = node
                    }
                }
                let organization = try row.optionalText(1)
                let name = try row.optionalText(2)
                tasks.append(
                    RolloutTask(
                        databaseID: try row.text(0),
                        namespace: organization.flatMap { org in name.map { "\(org)/\($0)" } } ?? "",
                        node: node, attempts: try row.integer(4)))
            }
            return tasks
        }
    }

    /// Records what tasks came to, in one transaction: the tasks' states, and each migrated
    /// database's version and drift; only while `owner` still holds the rollout's lease (false
    /// when it lost it: another instance drives the rollout now, and nothing is recorded).
    func record(_ outcomes: [TaskOutcome], of rollout: RolloutRecord, owner: String) async throws -> Bool {
        guard !outcomes.isEmpty else { return true }
        let now = now()
        let encoder = WireJSON.encoder([.sortedKeys])
        return try await read { transaction in
            let held = try await transaction.query(
                "UPDATE rollouts SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 RETURNING id",
                [.integer(now + 30_000), .text(rollout.id), .text(owner)])
            guard !held.isEmpty else { return false }
            for outcome in outcomes {
                let state = outcome.gone ? "skipped" : outcome.error == nil ? "done" : "failed"
                try await transaction.query(
                    """
                    UPDATE rollout_tasks SET state = $1, error = $2, attempts = attempts + 1, updated_at = $3
                    WHERE rollout_id = $4 AND database_id = $5 AND state = 'pending'
                    """,
                    [
                        .text(state), outcome.error.map { .text(String($0.prefix(2000))) } ?? .null, .integer(now),
                        .text(rollout.id), .text(outcome.databaseID),
                    ])
                if let version = outcome.version, outcome.error == nil {
                    let drift: CatalogValue =
                        try outcome.drift.map { .text(String(decoding: try encoder.encode($0), as: UTF8.self)) }
                        ?? .null
                    try await transaction.query(
                        "UPDATE databases SET schema_version = $1, schema_drift = $2 WHERE id = $3",
                        [.integer(version), drift, .text(outcome.databaseID)])
                }
            }
            return true
        }
    }

    /// Moves a rollout on when its phase has no pending task left (or a failure stops it): canary to
    /// approval, soaking or the main phase; the main phase to done or stopped. Returns the rollout
    /// as it is afterwards.
    func advance(_ rollout: RolloutRecord) async throws -> RolloutRecord? {
        let now = now()
        return try await read { transaction in
            guard let current = try await self.rolloutRecord(id: rollout.id, in: transaction) else { return nil }
            var counts: [String: Int64] = [:]
            for row in try await transaction.query(
                """
                SELECT state || ':' || CAST(canary AS TEXT), COUNT(*) FROM rollout_tasks WHERE rollout_id = $1
                GROUP BY state, canary
                """, [.text(rollout.id)])
            {
                counts[try row.text(0)] = try row.integer(1)
            }
            let failed = (counts["failed:0"] ?? 0) + (counts["failed:1"] ?? 0)
            var next: String?
            switch current.state {
            case "canary":
                if (counts["failed:1"] ?? 0) > 0 {
                    next = "stopped"
                } else if (counts["pending:1"] ?? 0) == 0 {
                    if let soak = current.soakMs {
                        next = "soaking"
                        try await transaction.query(
                            "UPDATE rollouts SET soak_until = $1 WHERE id = $2",
                            [.integer(now + soak), .text(current.id)])
                    } else {
                        next = "approval"
                    }
                }
            case "soaking":
                if let until = current.soakUntil, now >= until {
                    next = "running"
                    try await self.enterMainPhase(current, in: transaction)
                }
            case "running":
                if failed > 0, !current.continueOnError {
                    next = "stopped"
                } else if (counts["pending:0"] ?? 0) + (counts["pending:1"] ?? 0) == 0 {
                    // Not done before every node's cached schema version has expired since the release.
                    if now >= (current.releasedAt ?? now) + Self.schemaCacheLifetime { next = "done" }
                }
            default:
                break
            }
            if let next {
                try await transaction.query(
                    """
                    UPDATE rollouts SET state = $1, updated_at = $2, finished_at = $3 WHERE id = $4 AND state = $5
                    """,
                    [
                        .text(next), .integer(now), ["done", "stopped"].contains(next) ? .integer(now) : .null,
                        .text(current.id), .text(current.state),
                    ])
            }
            return try await self.rolloutRecord(id: rollout.id, in: transaction)
        }
    }
}
