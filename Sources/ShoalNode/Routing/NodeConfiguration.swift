import ShoalBackup
import ShoalHTTP
import ShoalReplication
import ShoalSQLite

/// How a node runs.
public struct NodeConfiguration: Sendable {
    /// Where database directories live.
    public var dataDirectory: String
    /// The location code this node serves (`fra`, `ams`, …).
    public var location: String
    /// The most databases open at once.
    public var maxOpenDatabases: Int
    /// How long an unused database stays open.
    public var databaseIdleTimeout: Duration
    /// How long a Hrana stream may sit idle before it expires (10 s by default, as sqld: a
    /// transaction left open on an idle stream holds its database's write turn until then, and
    /// clients that forget to close their streams leave them to this).
    public var streamIdleTimeout: Duration
    /// Create a database on its first request instead of answering 404 (local development).
    public var createOnFirstUse: Bool
    /// The largest request body accepted, in bytes.
    public var maxRequestBytes: Int
    /// The most rows one statement may return.
    public var maxRowsPerStatement: Int
    /// The most bytes of values one statement may return (text and blobs counted by length, other
    /// values by 8 bytes).
    public var maxResponseBytes: Int
    /// How long one statement may run.
    public var statementTimeLimit: Duration
    /// The longest SQL text accepted, in bytes.
    public var maxSQLLength: Int32
    /// Roll a database's generation once its WAL exceeds this many bytes.
    public var rollThresholdBytes: Int64
    /// How requests prove what they may do.
    public var authentication: Authentication
    /// How long a replica's long-poll of its primary's `/sync` waits for new frames.
    public var replicaLongPoll: Duration = .seconds(5)
    /// How long a replica waits, after forwarding a write, until it has applied the write (the
    /// answer then says `x-shoal-read-your-writes: timeout` instead of pretending).
    public var readYourWritesTimeout: Duration = .seconds(5)
    /// How long the first read of a replica just opened waits for it to catch up with its primary
    /// (after that it serves what it has, and says so in the log).
    public var replicaCatchUpTimeout: Duration = .seconds(5)
    /// The server's header, body and idle timeouts and its connection cap (10 s, 60 s, 75 s and
    /// 10,000 connections; the idle timeout stays longer than the 60 s a `/sync?wait_ms=` may wait).
    public var connectionLimits = ConnectionLimits.node
    /// Whether replicas fsync each applied batch (`perBatch`) or not (`none`, the default: survives
    /// a killed process, and a replica left open when the machine went down bootstraps again from
    /// its primary). Fsync per batch costs tens of milliseconds of lag on ordinary disks.
    public var replicaDurability: Replica.Durability = .none
    /// How long a deletion waits for the requests still running on the database (it refuses new ones
    /// at once and closes its streams); past this it answers 503, keeps refusing the database, and
    /// finishes when the delete is sent again (the control plane retries).
    public var deletionDrainTimeout: Duration = .seconds(8)
    /// The most Hrana streams open at once per token, per organization and on the node (each holds
    /// its database open); past a cap a new stream is refused with 429 and `Retry-After`.
    public var streamLimits = AdmissionLimits(perToken: 100, perOrganization: 500, perNode: 5_000)
    /// The most `/sync?wait_ms=` long-polls waiting at once per token, per organization and on the
    /// node; past a cap a long-poll is refused with 429 and `Retry-After`.
    public var longPollLimits = AdmissionLimits(perToken: 50, perOrganization: 200, perNode: 2_000)
    /// The most whole-database `/pull-updates` answers (Turso Sync bootstraps) being built or sent at
    /// once per token, per organization and on the node; each holds a database-sized scratch file.
    /// Past a cap a bootstrap is refused with 429 and `Retry-After`.
    public var snapshotLimits = AdmissionLimits(perToken: 2, perOrganization: 8, perNode: 32)
    /// The most Hrana WebSocket connections open at once (counted from their hello) per token, per
    /// organization and on the node; past a cap the hello is refused (`TOO_MANY_REQUESTS`).
    public var webSocketLimits = AdmissionLimits(perToken: 50, perOrganization: 500, perNode: 5_000)
    /// How long a request waits for room when every open database is in use (`maxOpenDatabases`
    /// all leased) before it is answered 503 with `Retry-After`.
    public var databaseWaitTimeout: Duration = .milliseconds(500)
    /// The threads every database's SQLite and file work runs on (never Swift's cooperative pool).
    public var executor: BlockingExecutor = .shared
    /// How many of those threads one database may use at once; its other work waits in its lane,
    /// holding no thread, so one busy database cannot take the threads the others need.
    public var threadsPerDatabase = 1
    /// The most bytes one connection's temporary files may take (TEMP tables and indices, sorter
    /// spills, transient indices, statement journals), and never more than the database's own size
    /// limit; past it a write fails with `SQLITE_FULL`.
    public var maxTempBytes: Int64 = 64 << 20
    /// The bytes of results all requests may hold at once (each request also stops at
    /// `maxResponseBytes`); past it a request's statement is refused with `RESPONSE_TOO_LARGE`.
    public var responseBudget = ResponseBudget(limit: 256 << 20)
    /// How long one HTTP request's statements may run in all, waits for the write turn included
    /// (each statement also stops at `statementTimeLimit`).
    public var requestTimeLimit: Duration = .seconds(10)

    /// Caps on what one token, one organization and the whole node may hold at once.
    public struct AdmissionLimits: Sendable, Equatable {
        /// The most held by one token (by its `jti`, else by the token itself; without
        /// authentication, by the organization named in the path).
        public var perToken: Int
        /// The most held by the databases of one organization.
        public var perOrganization: Int
        /// The most held on the node.
        public var perNode: Int

        /// Caps of `perToken`, `perOrganization` and `perNode`.
        public init(perToken: Int, perOrganization: Int, perNode: Int) {
            self.perToken = perToken
            self.perOrganization = perOrganization
            self.perNode = perNode
        }
    }

    /// Where every primary's frames are shipped for backups and restores read from (nil: no
    /// backups; a restore is refused).
    public var backupStore: (any ObjectStore)?
    /// How the backup shipper batches and retries.
    public var backupShipping = BackupShipper.Configuration()

    /// How a node authenticates requests.
    public enum Authentication: Sendable {
        /// Everything is allowed (local development only).
        case none
        /// Database requests carry Ed25519 JWTs; the admin API takes `adminToken` (off if nil).
        case tokens(TokenVerifier, adminToken: String?)
    }

    /// A node serving `location` from `dataDirectory`, with defaults for the rest.
    public init(
        dataDirectory: String, location: String = "local", maxOpenDatabases: Int = 1000,
        databaseIdleTimeout: Duration = .seconds(300), streamIdleTimeout: Duration = .seconds(10),
        createOnFirstUse: Bool = false, maxRequestBytes: Int = 16 << 20, maxRowsPerStatement: Int = 100_000,
        maxResponseBytes: Int = 32 << 20,
        statementTimeLimit: Duration = .seconds(10), maxSQLLength: Int32 = 1 << 20,
        rollThresholdBytes: Int64 = 64 << 20, authentication: Authentication = .none
    ) {
        self.dataDirectory = dataDirectory
        self.location = location
        self.maxOpenDatabases = maxOpenDatabases
        self.databaseIdleTimeout = databaseIdleTimeout
        self.streamIdleTimeout = streamIdleTimeout
        self.createOnFirstUse = createOnFirstUse
        self.maxRequestBytes = maxRequestBytes
        self.maxRowsPerStatement = maxRowsPerStatement
        self.maxResponseBytes = maxResponseBytes
        self.statementTimeLimit = statementTimeLimit
        self.maxSQLLength = maxSQLLength
        self.rollThresholdBytes = rollThresholdBytes
        self.authentication = authentication
    }
}
