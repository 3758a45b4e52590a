import Foundation
import Hummingbird
import Logging
import ShoalHTTP
import ShoalServerKit
import Testing

@testable import ShoalControl

/// Every route the control plane's router holds, called without a token, is refused with 401,
/// unless the control plane declares it public (`ControlPlane.publicRoutes`). The routes come from
/// the router itself, so a route added later is covered without anyone listing it here.
@Suite(.timeLimit(.minutes(2))) struct RouteAuthTests {
    /// A concrete path for a route's pattern: its parameters filled with names that exist in the
    /// cluster (so a refusal cannot be a 404 for a missing organization or database).
    static func concrete(_ pattern: String) -> String {
        let values = ["org": "acme", "group": "main", "database": "app", "name": "app", "id": "1"]
        let components = pattern.split(separator: "/").map { component -> String in
            guard component.hasPrefix("{"), component.hasSuffix("}") else { return String(component) }
            return values[String(component.dropFirst().dropLast())] ?? "x"
        }
        return "/" + components.joined(separator: "/")
    }

    static func routes(_ cluster: LiveCluster) -> [Router<ServerRequestContext>.RouteDescription] {
        ControlPlane(catalog: cluster.catalog, logger: Logger(label: "shoal.control.test.routes")).router().routes
    }

    /// How each call presents itself: no header, a malformed one, and a well-formed token nobody
    /// issued (which only the handler's own check can refuse).
    static let presentations: [(what: String, headers: [String: String])] = [
        ("no token", [:]), ("a malformed header", ["Authorization": "Basic YWRtaW4="]),
        ("a token nobody issued", ["Authorization": "Bearer not-a-token"]),
    ]

    @Test func everyRouteThatIsNotPublicRefusesACallWithoutAValidToken() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "main")
            let created = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "app", "group": "main"])
            #expect(created.status == 200, "\(created.text)")
            let routes = Self.routes(cluster)
            #expect(routes.count > 20, "the router lists \(routes.count) routes")
            var refused = 0
            for route in routes {
                let described = "\(route.method) \(route.path)"
                let path = Self.concrete("\(route.path)")
                for (what, headers) in Self.presentations {
                    var call = HTTPCall(
                        route.method.rawValue, URL(string: cluster.controlURL + path)!,
                        body: route.method == .get ? nil : Data("{}".utf8))
                    call.headers = headers.map { (name: $0.key, value: $0.value) }
                    let answer = try await OutboundHTTP.send(call)
                    if ControlPlane.publicRoutes.contains(described) {
                        #expect(answer.status != 401, "\(described) is public but answered 401 to \(what)")
                    } else {
                        #expect(answer.status == 401, "\(described) (\(path)) answered \(answer.status) to \(what)")
                        refused += 1
                    }
                }
            }
            #expect(refused > 60)
        }
    }

    /// The platform-wide writes moved into the secured group take the admin token: an
    /// organization's own API token is refused, and nothing changes.
    @Test func platformWideWritesRefuseAnOrganizationsToken() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "main")
            let (secret, _) = try await APITokenContractTests.created(cluster, ["name": "ci"])
            let location = try await cluster.call(
                "PUT", "/v1/locations/zrh", json: ["name": "Zurich, Switzerland", "jurisdiction": "ch"], token: secret)
            #expect(location.status == 403, "\(location.text)")
            let plan = try await cluster.call(
                "PUT", "/v1/plans/huge",
                json: ["databases": 1_000_000, "groups": 1000, "locations_per_group": 10, "storage_bytes": 1 << 40],
                token: secret)
            #expect(plan.status == 403, "\(plan.text)")
            let rotate = try await cluster.call("POST", "/v1/auth/keys/rotate", token: secret)
            #expect(rotate.status == 403, "\(rotate.text)")
            #expect(try await cluster.call("GET", "/v1/locations/zrh", token: "").status == 404)
            let plans = try await cluster.call("GET", "/v1/plans", token: "")
            #expect((plans.json["plans"] as? [[String: Any]])?.contains { $0["name"] as? String == "huge" } == false)
        }
    }

    @Test func everyPublicRouteIsOneTheRouterHolds() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            let described = Set(Self.routes(cluster).map { "\($0.method) \($0.path)" })
            for route in ControlPlane.publicRoutes {
                #expect(described.contains(route), "\(route) is declared public but not routed")
            }
        }
    }
}
