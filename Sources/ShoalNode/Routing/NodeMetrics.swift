import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Prometheus
import ShoalBackup
import ShoalServerKit
import ShoalTime
import Synchronization

/// Every metric the node exports, in one place, with small closed label sets (never a database
/// name: per-database numbers are on the admin stats endpoint). Served as Prometheus text at
/// `GET /metrics`.
final class NodeMetrics: Sendable {
    /// The kinds of route requests are counted under.
    enum Route: String, CaseIterable, Sendable {
        case pipeline, cursor, v1, sync, export, info, admin, probe, other
        case pullUpdates = "pull_updates"
        /// A request on a Hrana WebSocket (`response_ok` counts as 2xx, `response_error` as 4xx).
        case websocket

        init(path: String) {
            if path.hasSuffix("/pipeline") {
                self = .pipeline
            } else if path.hasSuffix("/v3/cursor") {
                self = .cursor
            } else if path.hasSuffix("/v1/execute") || path.hasSuffix("/v1/batch") {
                self = .v1
            } else if path.contains("/sync/") {
                self = .sync
            } else if path.hasSuffix("/pull-updates") {
                self = .pullUpdates
            } else if path.contains("/export/") {
                self = .export
            } else if path.hasSuffix("/info") {
                self = .info
            } else if path.hasPrefix("/v1/namespaces/") {
                self = .admin
            } else if ["/health", "/version", "/v1", "/v2", "/v3", "/metrics"].contains(path) {
                self = .probe
            } else {
                self = .other
            }
        }
    }

    /// The request metrics (by route kind) and the registry the node's own metrics live in.
    let server = ServerMetrics(
        prefix: "shoal_node", label: "route", kinds: Route.allCases.map(\.rawValue),
        what: "HTTP requests (and requests on Hrana WebSockets)")

    /// Upper bounds (seconds) of the replica lag histogram.
    static let lagBuckets: [Double] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5]

    private let replicaLag: ValueHistogram
    private let lagTimeouts: Counter
    private let framesServedTotal: Counter
    private let webSocketsOpen: Gauge
    private let gauges: [Gauge]
    private let databaseOpens: Counter
    private let databaseEvictions: Counter
    /// What the counters read from the pool last showed (they are moved forward by the difference).
    private let published = Mutex((opens: 0, evictions: 0))
    private let backupLag: Gauge
    private let backupPending: Gauge
    /// Frames, bytes, requests, failures, snapshots and gaps of the backup shipper, in that order.
    private let backupCounters: [Counter]
    private let publishedBackups = Mutex([Int64](repeating: 0, count: 6))

    /// The gauges read at scrape time, in the order `Capacity.values` gives them.
    private static let gaugeNames: [(name: String, help: String)] = [
        ("shoal_node_databases_open", "Databases open now."),
        ("shoal_node_streams_open", "Hrana streams waiting for their next request."),
        ("shoal_node_streams_held", "Hrana streams counted under the stream caps now (parked or running)."),
        ("shoal_node_streams_cap", "The node's cap on open Hrana streams (past it: 429)."),
        ("shoal_node_long_polls_held", "/sync long-polls waiting now."),
        ("shoal_node_long_polls_cap", "The node's cap on waiting /sync long-polls (past it: 429)."),
        ("shoal_node_sqlite_threads", "Threads for SQLite and file work."),
        ("shoal_node_sqlite_queued_work", "SQLite work ready to run and waiting for a thread."),
    ]

    init() {
        let registry = server.registry
        replicaLag = registry.valueHistogram(
            "shoal_node_replica_lag_seconds", buckets: Self.lagBuckets,
            help: "On replicas: from a forwarded write's commit on the primary until it was applied here.")
        lagTimeouts = registry.counter(
            "shoal_node_read_your_writes_timeouts_total",
            help: "Forwarded writes answered before the replica applied them.")
        framesServedTotal = registry.counter("shoal_node_frames_served_total", help: "WAL frames sent to replicas.")
        webSocketsOpen = registry.gauge("shoal_node_websockets_open", help: "Hrana WebSocket connections open now.")
        databaseOpens = registry.counter("shoal_node_database_opens_total", help: "Databases opened.")
        databaseEvictions = registry.counter(
            "shoal_node_database_evictions_total",
            help: "Databases closed to make room or because they were idle.")
        gauges = Self.gaugeNames.map { registry.gauge($0.name, help: $0.help) }
        backupLag = registry.gauge(
            "shoal_node_backup_lag_seconds",
            help: "Seconds since the oldest commit not yet in the backup store (0: everything shipped).")
        backupPending = registry.gauge(
            "shoal_node_backup_pending_databases", help: "Databases with commits not yet in the backup store.")
        backupCounters = [
            registry.counter("shoal_node_backup_frames_total", help: "WAL frames shipped to the backup store."),
            registry.counter("shoal_node_backup_bytes_total", help: "Bytes stored in the backup store."),
            registry.counter("shoal_node_backup_requests_total", help: "Requests made to the backup store."),
            registry.counter(
                "shoal_node_backup_failures_total", help: "Shipments that failed (retried with a growing delay)."),
            registry.counter("shoal_node_backup_snapshots_total", help: "Whole-database snapshots stored."),
            registry.counter(
                "shoal_node_backup_gaps_total",
                help: "Frames pruned from a log before they were shipped (a fresh snapshot covered them)."),
        ]
    }

    /// Sets the backup gauges and moves the counters to the shipper's totals.
    func updateBackups(_ statistics: BackupShipper.Statistics) {
        backupLag.set(statistics.lagSeconds)
        backupPending.set(Int64(statistics.pendingDatabases))
        let totals = [
            Int64(statistics.framesShipped), statistics.bytesShipped, Int64(statistics.requests),
            Int64(statistics.failures), Int64(statistics.snapshots), Int64(statistics.gaps),
        ]
        let increments = publishedBackups.withLock { published -> [Int64] in
            defer { published = zip(published, totals).map { max($0, $1) } }
            return zip(published, totals).map { max(0, $1 - $0) }
        }
        for (counter, increment) in zip(backupCounters, increments) where increment > 0 {
            counter.increment(by: increment)
        }
    }

    /// A Hrana WebSocket opened (`true`) or closed.
    func webSocket(open: Bool) {
        if open { webSocketsOpen.increment() } else { webSocketsOpen.decrement() }
    }

    func record(route: Route, status: Int, duration: Duration) {
        server.record(route.rawValue, status: status, duration: duration)
    }

    func framesServed(_ count: Int) {
        framesServedTotal.increment(by: Int64(count))
    }

    /// A forwarded write's wait on a replica: from the primary's answer until the replica applied
    /// it (the lag between commit on the primary and visibility here, for that write).
    func replicaWait(_ duration: Duration, applied: Bool) {
        replicaLag.record(duration.inSeconds)
        if !applied { lagTimeouts.increment() }
    }

    /// What the node's admission control, pool and SQLite threads hold now, and their caps.
    struct Capacity {
        var databasesOpen = 0
        var streamsOpen = 0
        var streamsHeld = 0
        var streamCap = 0
        var longPollsHeld = 0
        var longPollCap = 0
        var sqliteThreads = 0
        var sqliteQueued = 0

        var values: [Int] {
            [
                databasesOpen, streamsOpen, streamsHeld, streamCap, longPollsHeld, longPollCap, sqliteThreads,
                sqliteQueued,
            ]
        }
    }

    /// Sets the scrape-time gauges and the pool's counters (`opens`, `evictions`: totals so far).
    func update(_ capacity: Capacity, opens: Int, evictions: Int) {
        for (gauge, value) in zip(gauges, capacity.values) { gauge.set(Int64(value)) }
        let (newOpens, newEvictions) = published.withLock { published in
            defer { published = (max(published.opens, opens), max(published.evictions, evictions)) }
            return (max(0, opens - published.opens), max(0, evictions - published.evictions))
        }
        if newOpens > 0 { databaseOpens.increment(by: Int64(newOpens)) }
        if newEvictions > 0 { databaseEvictions.increment(by: Int64(newEvictions)) }
    }
}

/// Requests for which the node has no route are logged (a client speaking a protocol or version
/// the node does not serve shows up in the log, not only as its own error).
enum UnroutedRequests {
    static func log(_ request: Request, _ context: ServerRequestContext) {
        let metadata: Logger.Metadata = [
            "http.method": "\(request.method)", "url.path": "\(request.uri.path.prefix(200))",
            "user_agent.original": "\(request.headers[.userAgent]?.prefix(200) ?? "")",
        ]
        context.logger.notice("request.unrouted", metadata: metadata)
    }
}
