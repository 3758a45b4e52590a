import Foundation
import HTTPTypes
import Hummingbird
import Logging
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

    private struct Key: Hashable {
        let route: Route
        let statusClass: String
    }

    private struct State {
        var requests: [Key: Int] = [:]
        var durationSum: [Route: Double] = [:]
        var durationCount: [Route: Int] = [:]
        var framesServed = 0
        /// Replica lag seen by forwarded writes: counts per bucket of `lagBuckets`, then +Inf.
        var lagCounts = [Int](repeating: 0, count: NodeMetrics.lagBuckets.count + 1)
        var lagSum = 0.0
        var lagTimeouts = 0
    }

    /// Upper bounds (seconds) of the replica lag histogram.
    static let lagBuckets: [Double] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5]

    private let state = Mutex(State())
    private let webSockets = Atomic<Int>(0)

    /// A Hrana WebSocket opened (`true`) or closed.
    func webSocket(open: Bool) {
        webSockets.add(open ? 1 : -1, ordering: .relaxed)
    }

    func record(route: Route, status: Int, seconds: Double) {
        state.withLock { state in
            state.requests[Key(route: route, statusClass: "\(status / 100)xx"), default: 0] += 1
            state.durationSum[route, default: 0] += seconds
            state.durationCount[route, default: 0] += 1
        }
    }

    func framesServed(_ count: Int) {
        state.withLock { $0.framesServed += count }
    }

    /// A forwarded write's wait on a replica: from the primary's answer until the replica applied
    /// it (the lag between commit on the primary and visibility here, for that write).
    func replicaWait(_ duration: Duration, applied: Bool) {
        let seconds = duration.inSeconds
        state.withLock { state in
            let bucket = Self.lagBuckets.firstIndex { seconds <= $0 } ?? Self.lagBuckets.count
            state.lagCounts[bucket] += 1
            state.lagSum += seconds
            if !applied { state.lagTimeouts += 1 }
        }
    }

    /// The Prometheus text exposition of every metric.
    /// What the node's admission control and SQLite threads hold now, and their caps.
    struct Capacity {
        var streamsHeld = 0
        var streamCap = 0
        var longPollsHeld = 0
        var longPollCap = 0
        var sqliteThreads = 0
        var sqliteQueued = 0
    }

    func render(
        databasesOpen: Int, databaseOpens: Int, databaseEvictions: Int, streamsOpen: Int,
        capacity: Capacity = Capacity()
    ) -> String {
        let snapshot = state.withLock { $0 }
        var lines = [
            "# HELP shoal_node_requests_total HTTP requests (and requests on Hrana WebSockets) by route kind and status class.",
            "# TYPE shoal_node_requests_total counter",
        ]
        for (key, count) in snapshot.requests.sorted(by: {
            ($0.key.route.rawValue, $0.key.statusClass) < ($1.key.route.rawValue, $1.key.statusClass)
        }) {
            lines.append(
                "shoal_node_requests_total{route=\"\(key.route.rawValue)\",status=\"\(key.statusClass)\"} \(count)")
        }
        lines += [
            "# HELP shoal_node_request_duration_seconds Time to answer a request, by route kind.",
            "# TYPE shoal_node_request_duration_seconds summary",
        ]
        for route in Route.allCases {
            guard let count = snapshot.durationCount[route] else { continue }
            lines.append(
                "shoal_node_request_duration_seconds_sum{route=\"\(route.rawValue)\"} \(snapshot.durationSum[route] ?? 0)"
            )
            lines.append("shoal_node_request_duration_seconds_count{route=\"\(route.rawValue)\"} \(count)")
        }
        lines += [
            "# HELP shoal_node_replica_lag_seconds On replicas: from a forwarded write's commit on the primary until it was applied here.",
            "# TYPE shoal_node_replica_lag_seconds histogram",
        ]
        var cumulative = 0
        for (index, bound) in Self.lagBuckets.enumerated() {
            cumulative += snapshot.lagCounts[index]
            lines.append("shoal_node_replica_lag_seconds_bucket{le=\"\(bound)\"} \(cumulative)")
        }
        cumulative += snapshot.lagCounts[Self.lagBuckets.count]
        lines += [
            "shoal_node_replica_lag_seconds_bucket{le=\"+Inf\"} \(cumulative)",
            "shoal_node_replica_lag_seconds_sum \(snapshot.lagSum)",
            "shoal_node_replica_lag_seconds_count \(cumulative)",
            "# HELP shoal_node_read_your_writes_timeouts_total Forwarded writes answered before the replica applied them.",
            "# TYPE shoal_node_read_your_writes_timeouts_total counter",
            "shoal_node_read_your_writes_timeouts_total \(snapshot.lagTimeouts)",
            "# HELP shoal_node_frames_served_total WAL frames sent to replicas.",
            "# TYPE shoal_node_frames_served_total counter",
            "shoal_node_frames_served_total \(snapshot.framesServed)",
            "# HELP shoal_node_databases_open Databases open now.",
            "# TYPE shoal_node_databases_open gauge",
            "shoal_node_databases_open \(databasesOpen)",
            "# HELP shoal_node_database_opens_total Databases opened.",
            "# TYPE shoal_node_database_opens_total counter",
            "shoal_node_database_opens_total \(databaseOpens)",
            "# HELP shoal_node_database_evictions_total Databases closed to make room or because they were idle.",
            "# TYPE shoal_node_database_evictions_total counter",
            "shoal_node_database_evictions_total \(databaseEvictions)",
            "# HELP shoal_node_websockets_open Hrana WebSocket connections open now.",
            "# TYPE shoal_node_websockets_open gauge",
            "shoal_node_websockets_open \(webSockets.load(ordering: .relaxed))",
            "# HELP shoal_node_streams_open Hrana streams waiting for their next request.",
            "# TYPE shoal_node_streams_open gauge",
            "shoal_node_streams_open \(streamsOpen)",
            "# HELP shoal_node_streams_held Hrana streams counted under the stream caps now (parked or running).",
            "# TYPE shoal_node_streams_held gauge",
            "shoal_node_streams_held \(capacity.streamsHeld)",
            "# HELP shoal_node_streams_cap The node's cap on open Hrana streams (past it: 429).",
            "# TYPE shoal_node_streams_cap gauge",
            "shoal_node_streams_cap \(capacity.streamCap)",
            "# HELP shoal_node_long_polls_held /sync long-polls waiting now.",
            "# TYPE shoal_node_long_polls_held gauge",
            "shoal_node_long_polls_held \(capacity.longPollsHeld)",
            "# HELP shoal_node_long_polls_cap The node's cap on waiting /sync long-polls (past it: 429).",
            "# TYPE shoal_node_long_polls_cap gauge",
            "shoal_node_long_polls_cap \(capacity.longPollCap)",
            "# HELP shoal_node_sqlite_threads Threads for SQLite and file work.",
            "# TYPE shoal_node_sqlite_threads gauge",
            "shoal_node_sqlite_threads \(capacity.sqliteThreads)",
            "# HELP shoal_node_sqlite_queued_work SQLite work ready to run and waiting for a thread.",
            "# TYPE shoal_node_sqlite_queued_work gauge",
            "shoal_node_sqlite_queued_work \(capacity.sqliteQueued)",
        ]
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Counts every request and its duration by route kind, and logs requests for which the node has
/// no route (a client speaking a protocol or version the node does not serve shows up in the log,
/// not only as its own error).
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let metrics: NodeMetrics

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let route = NodeMetrics.Route(path: request.uri.path)
        func seconds() -> Double {
            let elapsed = ContinuousClock.now - start
            return elapsed.inSeconds
        }
        do {
            let response = try await next(request, context)
            metrics.record(route: route, status: response.status.code, seconds: seconds())
            return response
        } catch let error as any HTTPResponseError {
            metrics.record(route: route, status: error.status.code, seconds: seconds())
            // Hummingbird names the endpoint of a request no route matched "NotFound".
            if error.status == .notFound, context.endpointPath == "NotFound" { Self.logUnrouted(request, context) }
            throw error
        } catch {
            metrics.record(route: route, status: 500, seconds: seconds())
            throw error
        }
    }

    static func logUnrouted(_ request: Request, _ context: Context) {
        let metadata: Logger.Metadata = [
            "http.method": "\(request.method)", "url.path": "\(request.uri.path.prefix(200))",
            "user_agent.original": "\(request.headers[.userAgent]?.prefix(200) ?? "")",
        ]
        context.logger.notice("request.unrouted", metadata: metadata)
    }
}
