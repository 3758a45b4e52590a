import CoreMetrics
import Foundation
import Logging
import ShoalPool
import ShoalSQLite
import ShoalTime
import Synchronization

/// Where a tenant's database lives and how to reach it.
public struct TenantEndpoint: Sendable, Equatable {
    /// The database URL on a node (`http://host/db/org/database`).
    public var url: URL
    /// The token to present.
    public var token: String?
    /// The locations its region rule allows, nil for no rule.
    public var allowedLocations: [String]?

    /// Creates an endpoint.
    public init(url: URL, token: String? = nil, allowedLocations: [String]? = nil) {
        self.url = url
        self.token = token
        self.allowedLocations = allowedLocations
    }
}

/// Embedded replicas for many tenants in one process: opened lazily (once, however many callers ask
/// at the same time), at most `capacity` open (least recently used closed first, never one in
/// use), idle ones closed after `idleTimeout`, all kept current by one shared sync loop.
public final class TenantPool: Sendable {
    /// How the pool behaves.
    public struct Configuration: Sendable {
        /// Where each tenant's replica directory goes.
        public var directory: String
        /// The most replicas open at once.
        public var capacity: Int
        /// How long an unused replica stays open.
        public var idleTimeout: Duration
        /// The location of this process; tenants whose region rule excludes it are refused.
        public var location: String?
        /// The most bytes the replicas may take on disk; over it, closed tenants' files are deleted,
        /// least recently used first (nil: no limit). A deleted tenant bootstraps again when reopened.
        public var maxDiskBytes: Int64?
        /// A replica reopened within this long of its last sync is served as it is, without a
        /// sync first (the shared sync loop catches it up); older ones sync before their first use.
        public var reuseWithin: Duration
        /// Where the pool logs: failed opens, and each sync round that had failures (a summary, not
        /// a line per tenant).
        public var logger: Logger
        /// Where the pool's metrics go (swift-metrics, named `shoal_pool_*`, without labels); nil:
        /// the process's `MetricsSystem`. Two pools in one process need a factory each, or their
        /// gauges overwrite each other.
        public var metricsFactory: (any MetricsFactory)?

        /// A configuration.
        public init(
            directory: String, capacity: Int = 100, idleTimeout: Duration = .seconds(300), location: String? = nil,
            maxDiskBytes: Int64? = nil, reuseWithin: Duration = .seconds(1),
            logger: Logger = Logger(label: "shoal.pool"), metricsFactory: (any MetricsFactory)? = nil
        ) {
            self.logger = logger
            self.metricsFactory = metricsFactory
            self.maxDiskBytes = maxDiskBytes
            self.reuseWithin = reuseWithin
            self.directory = directory
            self.capacity = capacity
            self.idleTimeout = idleTimeout
            self.location = location
        }
    }

    /// The configuration in force.
    public let configuration: Configuration
    let pool: ResourcePool<String, Database>
    /// Enforces `maxDiskBytes`, when set.
    let budget: DiskBudget?
    /// How long opens took (resolve, open the files, first sync).
    let openLatency = LatencyRecorder()
    /// When replicas closed recently had last synced (for `reuseWithin`).
    let recentSyncs = RecentSyncs()
    /// What the pool reports through swift-metrics.
    let instruments: PoolInstruments
    /// Where events go to each `events()` sequence.
    let subscribers = EventSubscribers()

    /// Bytes the replicas took on disk after the last eviction, and how many closed replicas were
    /// deleted to stay within `maxDiskBytes` (zeros without a budget).
    public var diskUsage: (bytes: Int64, deletedReplicas: Int) {
        guard let usage = budget?.usage else { return (0, 0) }
        return (usage.bytes, usage.deletions)
    }

    /// Gives a tenant a new token when its current one is about to expire (nil: keep it).
    let tokenRefresher: (@Sendable (String) async throws -> String?)?

    /// A pool whose tenants are databases of one organization on the control plane: `resolver`
    /// finds them, issues tokens for the pool's location (the control plane refuses tenants whose
    /// region rule excludes it) and refreshes tokens before they expire, without reopening.
    public convenience init(configuration: Configuration, controlPlane resolver: ControlPlaneResolver) {
        self.init(
            configuration: configuration, resolver: { try await resolver.endpoint(for: $0) },
            tokenRefresher: { try await resolver.refreshedToken(for: $0) })
    }

    /// A pool that finds tenants with `resolver`; `tokenRefresher`, when given, is asked before each
    /// shared sync whether a tenant's token should be replaced.
    public init(
        configuration: Configuration, resolver: @escaping @Sendable (String) async throws -> TenantEndpoint,
        tokenRefresher: (@Sendable (String) async throws -> String?)? = nil
    ) {
        self.configuration = configuration
        self.tokenRefresher = tokenRefresher
        let budget = configuration.maxDiskBytes.map { DiskBudget(limit: $0, root: configuration.directory) }
        self.budget = budget
        let latency = openLatency
        let recent = recentSyncs
        let instruments = PoolInstruments(factory: configuration.metricsFactory ?? MetricsSystem.factory)
        self.instruments = instruments
        let subscribers = subscribers
        let logger = configuration.logger
        pool = ResourcePool(
            configuration: .init(capacity: configuration.capacity, idleTimeout: configuration.idleTimeout),
            open: { tenant in
                let started = ContinuousClock.now
                do {
                    let database = try await Self.open(
                        tenant, resolver: resolver, configuration: configuration, budget: budget, recent: recent)
                    let duration = ContinuousClock.now - started
                    latency.record(duration)
                    instruments.opened(duration)
                    subscribers.send(.opened(tenant: tenant, duration: duration))
                    return database
                } catch {
                    latency.record(ContinuousClock.now - started)
                    instruments.openFailed()
                    logger.notice("pool.open.failed", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
                    subscribers.send(.openFailed(tenant: tenant, error: error))
                    throw error
                }
            },
            close: { tenant, database in
                if let synced = database.lastSynced {
                    recent.record(tenant, synced, keep: configuration.reuseWithin, limit: 4 * configuration.capacity)
                }
                await database.close()
                if let budget {
                    _ = try? await BlockingExecutor.shared.run(priority: .cleanup) { budget.closed(tenant) }
                }
                instruments.closed()
                subscribers.send(.closed(tenant: tenant))
            })
    }

    /// Resolves, opens and (unless it synced a moment ago) syncs a tenant's replica.
    private static func open(
        _ tenant: String, resolver: @Sendable (String) async throws -> TenantEndpoint, configuration: Configuration,
        budget: DiskBudget?, recent: RecentSyncs
    ) async throws -> Database {
        let endpoint = try await resolver(tenant)
        if let allowed = endpoint.allowedLocations {
            guard let location = configuration.location, allowed.contains(location) else {
                throw ClientError(
                    .forbidden,
                    "tenant \(tenant) is region-locked to \(allowed.joined(separator: ", ")); this process is in \(configuration.location ?? "no configured location") and may not hold its replica"
                )
            }
        }
        let directory = try Self.directory(for: tenant, in: configuration.directory)
        budget?.opening(tenant)
        do {
            let database = try await Database.open(
                directory: directory, syncURL: endpoint.url, authToken: endpoint.token)
            do {
                let fresh = recent.take(tenant).map { ContinuousClock.now - $0 < configuration.reuseWithin }
                if fresh != true || database.replica.position == nil { try await database.sync() }
            } catch {
                await database.close()
                throw error
            }
            if let budget { try await BlockingExecutor.shared.run { budget.opened(tenant) } }
            return database
        } catch {
            budget?.closed(tenant)
            throw error
        }
    }

    /// The directory of a tenant's replica; tenant ids are `[A-Za-z0-9_-]{1,128}`.
    static func directory(for tenant: String, in root: String) throws -> String {
        try validate(tenant)
        return root + "/" + tenant
    }

    /// Checks a tenant id without allocating (it runs on every lease).
    static func validate(_ tenant: String) throws {
        let valid =
            (1...128).contains(tenant.utf8.count)
            && tenant.utf8.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x2d
                    || $0 == 0x5f
            }
        guard valid else {
            throw ClientError(
                .protocolViolation,
                "tenant id \(tenant.debugDescription) is not valid: use 1 to 128 of A-Z, a-z, 0-9, - and _")
        }
    }

    /// Runs `body` with the tenant's replica, opening (and syncing) it on first use.
    public func withDatabase<T: Sendable>(_ tenant: String, _ body: (Database) async throws -> T) async throws -> T {
        try Self.validate(tenant)
        // A hit takes the pool's fast path (specialized, no suspension); anything else the full one.
        guard let lease = pool.leaseIfOpen(tenant) else { return try await pool.withLease(tenant, body) }
        do {
            let result = try await body(lease.resource)
            if !pool.releaseIfUncontended(lease) { await pool.release(lease) }
            return result
        } catch {
            if !pool.releaseIfUncontended(lease) { await pool.release(lease) }
            throw error
        }
    }

    /// Pool counters (hits, misses, opens, evictions, open now).
    public var statistics: ResourcePool<String, Database>.Statistics { pool.statistics }

    /// Everything the pool counts, for an application's own metrics.
    public struct Metrics: Sendable {
        /// Leases served by an open replica.
        public let hits: Int
        /// Leases that had to open one (or wait for its opening).
        public let misses: Int
        /// Replicas opened.
        public let opens: Int
        /// Opens that failed.
        public let failedOpens: Int
        /// Replicas closed to make room or because they were idle.
        public let evictions: Int
        /// Replicas open now.
        public let openReplicas: Int
        /// Bytes the replicas took on disk at the last eviction (0 without `maxDiskBytes`).
        public let bytesOnDisk: Int64
        /// Closed replicas deleted to stay within `maxDiskBytes`.
        public let deletedReplicas: Int
        /// Open latency: how many were timed, their median and 99th percentile (over the last
        /// 1,024 opens), and the slowest ever.
        public let openLatency: LatencyRecorder.Summary
    }

    /// The pool's metrics now.
    public var metrics: Metrics {
        let statistics = pool.statistics
        let disk = diskUsage
        return Metrics(
            hits: statistics.hits, misses: statistics.misses, opens: statistics.opens,
            failedOpens: statistics.failedOpens, evictions: statistics.evictions, openReplicas: statistics.open,
            bytesOnDisk: disk.bytes, deletedReplicas: disk.deletedReplicas, openLatency: openLatency.summary)
    }

    /// Closes replicas idle past the timeout.
    public func evictIdle() async {
        await pool.evictIdle()
    }

    /// Syncs every replica open now, once; returns how many synced and which failed, with why (a
    /// tenant deleted on its node, a token refused, a node out of reach): the loop goes on with the
    /// others, and the failed ones are tried again next round.
    @discardableResult
    public func syncOpenReplicas() async -> SyncRound {
        var round = SyncRound()
        let refresher = tokenRefresher
        for tenant in pool.openKeys {
            // Only a replica still open: one evicted since the list was taken is not reopened for it.
            guard let lease = pool.leaseIfOpen(tenant) else { continue }
            do {
                let database = lease.resource
                if let refresher, let token = try await refresher(tenant) {
                    database.setAuthToken(token)
                }
                _ = try await database.sync()
                round.synced += 1
            } catch {
                round.record(tenant, error)
                subscribers.send(.syncFailed(tenant: tenant, error: error))
            }
            await pool.release(lease)
        }
        instruments.round(round, statistics: pool.statistics, diskBytes: diskUsage.bytes)
        if let first = round.failures.first {
            configuration.logger.warning(
                "pool.sync.failed",
                metadata: [
                    "failed": "\(round.failedCount)", "synced": "\(round.synced)", "first.tenant": "\(first.tenant)",
                    "first.error": "\(first.error)",
                ])
        }
        return round
    }

    /// What happens in the pool from now on (opens, failed opens, closes, failed syncs), for an
    /// application's own logs or metrics. Each call gives its own sequence; one whose reader falls
    /// more than 1,024 events behind loses the oldest.
    public func events() -> AsyncStream<Event> {
        subscribers.subscribe()
    }

    /// Something that happened in the pool.
    public enum Event: Sendable {
        /// A tenant's replica opened (resolved, opened and synced) in `duration`.
        case opened(tenant: String, duration: Duration)
        /// A tenant's replica could not be opened.
        case openFailed(tenant: String, error: any Error)
        /// A tenant's replica closed (evicted to make room, idle, or the pool closing).
        case closed(tenant: String)
        /// A sync of the shared loop failed for a tenant; it is tried again next round.
        case syncFailed(tenant: String, error: any Error)
    }

    /// The shared sync loop: every `interval`, syncs the replicas open at that moment (one loop for
    /// all tenants, not a timer each) and closes idle ones, until cancelled. `onRound` sees each
    /// round's report (log its failures there).
    public func run(every interval: Duration = .seconds(1), onRound: (@Sendable (SyncRound) -> Void)? = nil) async {
        while !Task.isCancelled {
            let round = await syncOpenReplicas()
            onRound?(round)
            await pool.evictIdle()
            try? await Task.sleep(for: interval)
        }
    }

    /// Closes every replica; the event sequences end after the last close.
    public func close() async {
        await pool.close()
        subscribers.finish()
    }
}

/// What one round of a pool's sync loop did (`TenantPool.syncOpenReplicas`).
public struct SyncRound: Sendable {
    /// A replica whose sync failed.
    public struct Failure: Sendable {
        /// The tenant.
        public let tenant: String
        /// Why, as the client library reports it.
        public let error: any Error
    }

    /// Replicas synced.
    public var synced = 0
    /// Replicas whose sync failed, all of them counted.
    public var failedCount = 0
    /// The first 100 failures, in the order they happened.
    public var failures: [Failure] = []

    mutating func record(_ tenant: String, _ error: any Error) {
        failedCount += 1
        if failures.count < 100 { failures.append(Failure(tenant: tenant, error: error)) }
    }
}

/// When recently closed replicas last synced, so that one reopened soon after skips its first sync.
final class RecentSyncs: Sendable {
    private let entries = Mutex<[String: ContinuousClock.Instant]>([:])

    func record(_ tenant: String, _ instant: ContinuousClock.Instant, keep: Duration, limit: Int) {
        entries.withLock { entries in
            entries[tenant] = instant
            if entries.count > limit {
                let now = ContinuousClock.now
                entries = entries.filter { now - $0.value < keep }
                // Still too many (a burst of closes): forget them; those reopen with a sync.
                if entries.count > limit { entries.removeAll() }
            }
        }
    }

    func take(_ tenant: String) -> ContinuousClock.Instant? {
        entries.withLock { $0.removeValue(forKey: tenant) }
    }
}

/// The pool's swift-metrics instruments. Rare events are counted as they happen; hits and misses
/// (the lease fast path stays free of them) are moved forward once per sync round.
final class PoolInstruments: Sendable {
    private let hits: Counter
    private let misses: Counter
    private let opens: Counter
    private let failedOpens: Counter
    private let closes: Counter
    private let syncFailures: Counter
    private let openReplicas: Meter
    private let diskBytes: Meter
    private let openDuration: CoreMetrics.Timer
    private let published = Mutex((hits: 0, misses: 0))

    init(factory: any MetricsFactory) {
        hits = Counter(label: "shoal_pool_hits_total", factory: factory)
        misses = Counter(label: "shoal_pool_misses_total", factory: factory)
        opens = Counter(label: "shoal_pool_opens_total", factory: factory)
        failedOpens = Counter(label: "shoal_pool_failed_opens_total", factory: factory)
        closes = Counter(label: "shoal_pool_closes_total", factory: factory)
        syncFailures = Counter(label: "shoal_pool_sync_failures_total", factory: factory)
        openReplicas = Meter(label: "shoal_pool_open_replicas", factory: factory)
        diskBytes = Meter(label: "shoal_pool_disk_bytes", factory: factory)
        openDuration = CoreMetrics.Timer(label: "shoal_pool_open_duration_seconds", factory: factory)
    }

    func opened(_ duration: Duration) {
        opens.increment()
        openReplicas.increment()
        openDuration.recordNanoseconds(
            duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    func openFailed() { failedOpens.increment() }

    func closed() {
        closes.increment()
        openReplicas.decrement()
    }

    func round(_ round: SyncRound, statistics: ResourcePool<String, Database>.Statistics, diskBytes bytes: Int64) {
        if round.failedCount > 0 { syncFailures.increment(by: round.failedCount) }
        let (newHits, newMisses) = published.withLock { published in
            defer { published = (max(published.hits, statistics.hits), max(published.misses, statistics.misses)) }
            return (max(0, statistics.hits - published.hits), max(0, statistics.misses - published.misses))
        }
        if newHits > 0 { hits.increment(by: newHits) }
        if newMisses > 0 { misses.increment(by: newMisses) }
        openReplicas.set(statistics.open)
        diskBytes.set(bytes)
    }
}

/// The readers of `TenantPool.events()`.
final class EventSubscribers: Sendable {
    private struct State {
        var readers: [UInt64: AsyncStream<TenantPool.Event>.Continuation] = [:]
        var next: UInt64 = 0
        var finished = false
    }

    private let state = Mutex(State())

    func subscribe() -> AsyncStream<TenantPool.Event> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: TenantPool.Event.self, bufferingPolicy: .bufferingNewest(1024))
        let id: UInt64? = state.withLock { state in
            guard !state.finished else { return nil }
            state.next += 1
            state.readers[state.next] = continuation
            return state.next
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.readers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Ends every sequence; later ones end at once.
    func finish() {
        let readers = state.withLock { state in
            defer {
                state.readers = [:]
                state.finished = true
            }
            return Array(state.readers.values)
        }
        for reader in readers { reader.finish() }
    }

    func send(_ event: TenantPool.Event) {
        let readers = state.withLock { Array($0.readers.values) }
        for reader in readers { reader.yield(event) }
    }
}
