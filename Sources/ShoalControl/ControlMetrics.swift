import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// Every metric the control plane exports, in one place, with closed label sets (never an
/// organization or database name). Served as Prometheus text at `GET /metrics`.
final class ControlMetrics: Sendable {
    private struct Key: Hashable {
        let method: String
        let statusClass: String
    }

    private struct State {
        var requests: [Key: Int] = [:]
        var durationSum = 0.0
        var durationCount = 0
    }

    private let state = Mutex(State())

    func record(method: String, status: Int, seconds: Double) {
        state.withLock { state in
            state.requests[Key(method: method, statusClass: "\(status / 100)xx"), default: 0] += 1
            state.durationSum += seconds
            state.durationCount += 1
        }
    }

    func render() -> String {
        let snapshot = state.withLock { $0 }
        var text = "# HELP shoal_control_requests_total Platform API requests by method and status class.\n"
        text += "# TYPE shoal_control_requests_total counter\n"
        for (key, count) in snapshot.requests.sorted(by: {
            ($0.key.method, $0.key.statusClass) < ($1.key.method, $1.key.statusClass)
        }) {
            text += "shoal_control_requests_total{method=\"\(key.method)\",status=\"\(key.statusClass)\"} \(count)\n"
        }
        text += "# HELP shoal_control_request_duration_seconds Time spent answering requests.\n"
        text += "# TYPE shoal_control_request_duration_seconds summary\n"
        text += "shoal_control_request_duration_seconds_sum \(snapshot.durationSum)\n"
        text += "shoal_control_request_duration_seconds_count \(snapshot.durationCount)\n"
        return text
    }
}

/// Counts and times every request.
struct ControlMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ControlMetrics

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let method =
            ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(request.method.rawValue)
            ? request.method.rawValue : "OTHER"
        do {
            let response = try await next(request, context)
            metrics.record(method: method, status: response.status.code, seconds: Self.seconds(since: start))
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics.record(method: method, status: status, seconds: Self.seconds(since: start))
            throw error
        }
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}

/// The checked-in OpenAPI document of the Platform API (`Sources/ShoalControl/openapi.json`).
enum OpenAPIDocument {
    static let bytes: [UInt8] = PackageResources.openapi_json
}
