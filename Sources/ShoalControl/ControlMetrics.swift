import Foundation
import HTTPTypes
import Hummingbird
import ShoalServerKit

/// The control plane's request metrics: by method (a closed set) and status class, never an
/// organization or database name. Served as Prometheus text at `GET /metrics`.
enum ControlMetrics {
    static let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OTHER"]

    static func make() -> ServerMetrics {
        ServerMetrics(prefix: "shoal_control", label: "method", kinds: methods, what: "Platform API requests")
    }

    static func method(of request: Request) -> String {
        let method = request.method.rawValue
        return methods.contains(method) ? method : "OTHER"
    }
}

/// The checked-in OpenAPI document of the Platform API (`Sources/ShoalControl/openapi.json`).
enum OpenAPIDocument {
    static let bytes: [UInt8] = PackageResources.openapi_json
}
