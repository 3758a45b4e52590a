import Hummingbird
import Logging
import NIOCore
import Prometheus

/// A server's metrics: one Prometheus registry per server instance (so that several nodes in one
/// process never mix their numbers), the request counters and durations both servers keep, and the
/// `GET /metrics` answer in the Prometheus text format, written by swift-prometheus.
public final class ServerMetrics: Sendable {
    /// Where every metric of this server is registered; a server adds its own (with their help
    /// text) beside the request metrics.
    public let registry: PrometheusCollectorRegistry
    private let prefix: String
    private let label: String
    private let requests: [String: [Counter]]
    private let durations: [String: DurationHistogram]

    /// Upper bounds of the request duration histogram.
    public static let durationBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100),
        .milliseconds(500), .seconds(1), .seconds(5), .seconds(30),
    ]

    /// Metrics named `{prefix}_…`; requests are counted by `label` (one of `kinds`, a small closed
    /// set: never a tenant's name) and status class.
    public init(prefix: String, label: String, kinds: [String], what: String) {
        self.prefix = prefix
        self.label = label
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        var requests: [String: [Counter]] = [:]
        var durations: [String: DurationHistogram] = [:]
        for kind in kinds {
            requests[kind] = (1...5).map { digit in
                registry.counter(
                    "\(prefix)_requests_total", labels: [(label, kind), ("status", "\(digit)xx")],
                    help: "\(what) by \(label) and status class.")
            }
            durations[kind] = registry.durationHistogram(
                "\(prefix)_request_duration_seconds", labels: [(label, kind)], buckets: Self.durationBuckets,
                help: "Time to answer a request, by \(label).")
        }
        self.requests = requests
        self.durations = durations
    }

    /// Counts a request of `kind` answered with `status` after `duration`.
    public func record(_ kind: String, status: Int, duration: Duration) {
        guard let counters = requests[kind] else { return }
        counters[min(max(status / 100, 1), 5) - 1].increment()
        durations[kind]?.record(duration)
    }

    /// Every metric in the Prometheus text format.
    public func render() -> String {
        registry.emitToString()
    }

    /// The answer of `GET /metrics`; `update` sets the gauges read at scrape time first.
    public func response(update: () -> Void = {}) -> Response {
        update()
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
            body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }
}

/// Counts and times every request by its kind (what `classify` says of it) and status class;
/// `onUnrouted` sees requests no route matched.
public struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics
    let classify: @Sendable (Request) -> String
    let onUnrouted: @Sendable (Request, Context) -> Void

    /// A middleware recording into `metrics`.
    public init(
        _ metrics: ServerMetrics, classify: @escaping @Sendable (Request) -> String,
        onUnrouted: @escaping @Sendable (Request, Context) -> Void = { _, _ in }
    ) {
        self.metrics = metrics
        self.classify = classify
        self.onUnrouted = onUnrouted
    }

    /// Records the request's outcome.
    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let kind = classify(request)
        do {
            let response = try await next(request, context)
            metrics.record(kind, status: response.status.code, duration: ContinuousClock.now - start)
            return response
        } catch let error as any HTTPResponseError {
            metrics.record(kind, status: error.status.code, duration: ContinuousClock.now - start)
            // Hummingbird names the endpoint of a request no route matched "NotFound".
            if error.status == .notFound, context.endpointPath == "NotFound" { onUnrouted(request, context) }
            throw error
        } catch {
            metrics.record(kind, status: 500, duration: ContinuousClock.now - start)
            throw error
        }
    }
}

extension PrometheusCollectorRegistry {
    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// The counter `name` with `labels`, described by `help`.
    public func counter(_ name: String, labels: [(String, String)] = [], help: String) -> Counter {
        makeCounter(descriptor: Self.descriptor(name, help), labels: labels)
    }

    /// The gauge `name` with `labels`, described by `help`.
    public func gauge(_ name: String, labels: [(String, String)] = [], help: String) -> Gauge {
        makeGauge(descriptor: Self.descriptor(name, help), labels: labels)
    }

    /// The histogram of durations `name` with `labels`, described by `help`.
    public func durationHistogram(
        _ name: String, labels: [(String, String)] = [], buckets: [Duration], help: String
    ) -> DurationHistogram {
        makeDurationHistogram(descriptor: Self.descriptor(name, help), labels: labels, buckets: buckets)
    }

    /// The histogram of values `name`, described by `help`.
    public func valueHistogram(_ name: String, buckets: [Double], help: String) -> ValueHistogram {
        makeValueHistogram(descriptor: Self.descriptor(name, help), buckets: buckets)
    }
}

extension Router where Context == ServerRequestContext {
    /// The probes both servers answer without a token: `GET /health` (200, no body, for load
    /// balancers and orchestrators), `GET /version` (`version` as text) and `GET /metrics`
    /// (`metrics`; `update` sets the gauges read at scrape time first).
    public func addProbes(version: String, metrics: ServerMetrics, update: @escaping @Sendable () -> Void = {}) {
        get("health") { _, _ -> HTTPResponse.Status in .ok }
        get("version") { _, _ in version }
        get("metrics") { _, _ in metrics.response(update: update) }
    }
}
