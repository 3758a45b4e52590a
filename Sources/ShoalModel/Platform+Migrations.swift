extension Platform {
    /// How a database's schema differs from what its applied migrations make.
    public struct SchemaDrift: Codable, Sendable, Equatable {
        /// Objects the migrations make that the database lacks (`table t`, `index i`, …).
        public var missing: [String]
        /// Objects the database has that no migration made.
        public var unexpected: [String]
        /// Objects of both whose SQL differs.
        public var changed: [String]

        /// A difference.
        public init(missing: [String], unexpected: [String], changed: [String]) {
            self.missing = missing
            self.unexpected = unexpected
            self.changed = changed
        }
    }

    /// `POST …/groups/{group}/migrations`: a migration to add to the group's tenant schema.
    public struct MigrationCreation: Codable, Sendable, Equatable {
        /// Its name, unique in the group (`[A-Za-z0-9_.-]`, at most 128 characters).
        public var name: String
        /// Its SQL.
        public var sql: String

        /// A migration to add.
        public init(name: String, sql: String) {
            self.name = name
            self.sql = sql
        }
    }

    /// One migration of a group's tenant schema, with how many of the group's databases have it.
    public struct Migration: Codable, Sendable, Equatable {
        /// Its place in the list, from 1.
        public var version: Int64
        /// Its name.
        public var name: String
        /// The SHA-256 of its SQL, hex.
        public var checksum: String
        /// When it was added (milliseconds since 1970).
        public var createdAt: Int64
        /// Its SQL (only in the answer that adds it, and `?sql=true` listings).
        public var sql: String?
        /// Databases of the group that have applied it.
        public var applied: Int64
        /// Databases of the group that have not (yet).
        public var pending: Int64
        /// Databases whose latest rollout to it or later failed before it was applied.
        public var failed: Int64

        /// A migration.
        public init(
            version: Int64, name: String, checksum: String, createdAt: Int64, sql: String? = nil, applied: Int64 = 0,
            pending: Int64 = 0, failed: Int64 = 0
        ) {
            self.version = version
            self.name = name
            self.checksum = checksum
            self.createdAt = createdAt
            self.sql = sql
            self.applied = applied
            self.pending = pending
            self.failed = failed
        }

        enum CodingKeys: String, CodingKey {
            case version, name, checksum, sql, applied, pending, failed
            case createdAt = "created_at"
        }
    }

    /// `POST …/migrations/apply`: how to roll the schema out.
    public struct RolloutCreation: Codable, Sendable, Equatable {
        /// Canary databases migrated first: a count (`"10"`) or a percentage (`"5%"`); none by default.
        public var canary: String?
        /// After the canary: proceed by itself after this many seconds; without it, wait for `resume`.
        public var soakSeconds: Int64?
        /// Databases migrated at once on each node (1 to 64; 4 by default).
        public var concurrency: Int64?
        /// Keep going past failed databases and collect them (the default stops at the first).
        public var continueOnError: Bool?
        /// The version to bring the databases to; the latest by default.
        public var targetVersion: Int64?

        /// A rollout request.
        public init(
            canary: String? = nil, soakSeconds: Int64? = nil, concurrency: Int64? = nil, continueOnError: Bool? = nil,
            targetVersion: Int64? = nil
        ) {
            self.canary = canary
            self.soakSeconds = soakSeconds
            self.concurrency = concurrency
            self.continueOnError = continueOnError
            self.targetVersion = targetVersion
        }

        enum CodingKeys: String, CodingKey {
            case canary, concurrency
            case soakSeconds = "soak_seconds"
            case continueOnError = "continue_on_error"
            case targetVersion = "target_version"
        }
    }

    /// A database a rollout could not migrate.
    public struct RolloutFailure: Codable, Sendable, Equatable {
        /// The database's name.
        public var database: String
        /// What failed: the migration and SQLite's error, or why the node could not be asked.
        public var error: String
        /// Attempts so far.
        public var attempts: Int64

        /// A failure.
        public init(database: String, error: String, attempts: Int64) {
            self.database = database
            self.error = error
            self.attempts = attempts
        }
    }

    /// A rollout of a group's tenant schema and where it is.
    public struct Rollout: Codable, Sendable, Equatable {
        /// Its id.
        public var id: String
        /// The group.
        public var group: String
        /// The version it brings databases to.
        public var targetVersion: Int64
        /// `canary`, `approval` (canary done, waiting for `resume`), `soaking`, `running`, `paused`,
        /// `stopped` (a database failed and the policy is to stop: `retry` or `skip`), `done` or
        /// `cancelled` (a later rollout replaced it).
        public var state: String
        /// Canary databases.
        public var canaryCount: Int64
        /// Databases migrated at once per node.
        public var concurrency: Int64
        /// Whether it goes on past failures.
        public var continueOnError: Bool
        /// The soak after the canary, in seconds, if any.
        public var soakSeconds: Int64?
        /// Databases in it.
        public var total: Int64
        /// Databases migrated (or found migrated already).
        public var done: Int64
        /// Databases not tried yet.
        public var pending: Int64
        /// Databases that failed.
        public var failed: Int64
        /// Databases skipped.
        public var skipped: Int64
        /// Failed databases with their errors (at most 100).
        public var failures: [RolloutFailure]
        /// When it was started (milliseconds since 1970).
        public var createdAt: Int64
        /// When it finished, if it did.
        public var finishedAt: Int64?

        /// A rollout.
        public init(
            id: String, group: String, targetVersion: Int64, state: String, canaryCount: Int64, concurrency: Int64,
            continueOnError: Bool, soakSeconds: Int64?, total: Int64, done: Int64, pending: Int64, failed: Int64,
            skipped: Int64, failures: [RolloutFailure], createdAt: Int64, finishedAt: Int64?
        ) {
            self.id = id
            self.group = group
            self.targetVersion = targetVersion
            self.state = state
            self.canaryCount = canaryCount
            self.concurrency = concurrency
            self.continueOnError = continueOnError
            self.soakSeconds = soakSeconds
            self.total = total
            self.done = done
            self.pending = pending
            self.failed = failed
            self.skipped = skipped
            self.failures = failures
            self.createdAt = createdAt
            self.finishedAt = finishedAt
        }

        /// Whether it has nothing left to do by itself (done, stopped or cancelled).
        public var isFinished: Bool { ["done", "stopped", "cancelled"].contains(state) }

        enum CodingKeys: String, CodingKey {
            case id, group, state, concurrency, total, done, pending, failed, skipped, failures
            case targetVersion = "target_version"
            case canaryCount = "canary_count"
            case continueOnError = "continue_on_error"
            case soakSeconds = "soak_seconds"
            case createdAt = "created_at"
            case finishedAt = "finished_at"
        }
    }

    /// `GET …/groups/{group}/migrations`: the group's tenant schema and its latest rollout.
    public struct MigrationList: Codable, Sendable, Equatable {
        /// The migrations in order.
        public var migrations: [Migration]
        /// The version new databases start at and databases are brought to when they open.
        public var schemaVersion: Int64
        /// The group's databases.
        public var databases: Int64
        /// Databases whose schema differs from what their migrations make.
        public var drifted: Int64
        /// The latest rollout, if any.
        public var rollout: Rollout?

        /// A listing.
        public init(
            migrations: [Migration], schemaVersion: Int64, databases: Int64, drifted: Int64, rollout: Rollout?
        ) {
            self.migrations = migrations
            self.schemaVersion = schemaVersion
            self.databases = databases
            self.drifted = drifted
            self.rollout = rollout
        }

        enum CodingKeys: String, CodingKey {
            case migrations, databases, drifted, rollout
            case schemaVersion = "schema_version"
        }
    }
}
