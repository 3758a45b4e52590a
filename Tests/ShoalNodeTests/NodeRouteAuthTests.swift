import Foundation
import Hummingbird
import ShoalNodeTestSupport
import Testing

@testable import ShoalNode

/// Every route the node's router holds, called without a token, is refused with 401, unless the
/// node declares it public (`Node.publicRoutes`). The routes come from the router itself, so a
/// route added later is covered without anyone listing it here.
@Suite(.timeLimit(.minutes(2))) struct NodeRouteAuthTests {
    /// A concrete path for a route's pattern: its parameters filled with values that name a real
    /// database (so a refusal cannot be a 404 for a missing one).
    static func concrete(_ pattern: String) -> String {
        let values = [
            "org": "acme", "database": "app", "generation": "1", "start": "1", "end": "2",
        ]
        let components = pattern.split(separator: "/").map { component -> String in
            guard component.hasPrefix("{"), component.hasSuffix("}") else { return String(component) }
            return values[String(component.dropFirst().dropLast())] ?? "x"
        }
        return "/" + components.joined(separator: "/")
    }

    /// How each call presents itself: no header, a malformed one, and a well-formed token nobody
    /// issued (which only the handler's own check can refuse).
    static let presentations: [(what: String, headers: [String: String])] = [
        ("no token", [:]), ("a malformed header", ["Authorization": "Basic YWRtaW4="]),
        ("a token nobody issued", ["Authorization": "Bearer not-a-token"]),
    ]

    @Test func everyRouteThatIsNotPublicRefusesACallWithoutAValidToken() async throws {
        try await NodeAuthTests.withSecuredNode { node, _ in
            let routes = node.node.router().routes
            #expect(routes.count > 20, "the router lists \(routes.count) routes")
            var refused = 0
            for route in routes {
                let described = "\(route.method) \(route.path)"
                let path = Self.concrete("\(route.path)")
                for (what, headers) in Self.presentations {
                    let answer = try await node.request(
                        route.method.rawValue, path, body: route.method == .get ? nil : "{}", headers: headers)
                    if Node.publicRoutes.contains(described) {
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

    @Test func everyPublicRouteIsOneTheRouterHolds() async throws {
        try await NodeAuthTests.withSecuredNode { node, _ in
            let described = Set(node.node.router().routes.map { "\($0.method) \($0.path)" })
            for route in Node.publicRoutes {
                #expect(described.contains(route), "\(route) is declared public but not routed")
            }
        }
    }
}
