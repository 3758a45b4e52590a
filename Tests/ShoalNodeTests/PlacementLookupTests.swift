import Foundation
import Hummingbird
import Logging
import ShoalModel
import ShoalNodeTestSupport
import Synchronization
import Testing

@testable import ShoalNode

/// A control plane stand-in on a loopback port: registers the node, hands it `signer`'s key, and
/// answers every placement question with "not placed here", counting them.
struct FakeControlPlane {
    let url: String
    let lookups: LookupCount

    /// Placement questions asked so far.
    final class LookupCount: Sendable {
        private let count = Mutex(0)

        var value: Int { count.withLock { $0 } }

        func add() { count.withLock { $0 += 1 } }
    }

    /// Starts the stand-in, runs `body` against it, then stops it.
    static func with(signer: TokenSigner, _ body: @Sendable (FakeControlPlane) async throws -> Void) async throws {
        let lookups = LookupCount()
        let registration = StandInServer.registration(id: "node-1", trusting: signer, heartbeatSeconds: 60)
        let router = Router()
        router.post("v1/nodes") { _, _ in try StandInServer.json(registration) }
        router.get("v1/nodes/:node/databases/:org/:database") { _, _ -> HTTPResponse.Status in
            lookups.add()
            return .notFound
        }
        try await StandInServer.with(router, label: "shoal.node.test.control") { url in
            try await body(FakeControlPlane(url: url, lookups: lookups))
        }
    }
}

/// How a node under a control plane finds a database it does not hold: only for a token whose
/// signature holds, and remembering for a while what the control plane said is not placed here.
@Suite(.timeLimit(.minutes(2))) struct PlacementLookupTests {
    static let execute = #"{"stmt":{"sql":"SELECT 1"}}"#

    /// A node registered with `control` (which gives it `signer`'s key).
    static func withLinkedNode(
        _ control: FakeControlPlane, unknownLifetime: Duration, _ body: @Sendable (LiveNode) async throws -> Void
    ) async throws {
        let verifier = try TokenVerifier(keys: [:], allowNoKeys: true)
        try await LiveNode.with({ $0.authentication = .tokens(verifier, adminToken: "node-admin") }) { node in
            let link = ControlPlaneLink(
                configuration: .init(
                    controlURL: URL(string: control.url)!, registrationToken: "registration-secret", location: "local",
                    advertisedURL: node.url, nodeAdminToken: "node-admin", unknownDatabaseLifetime: unknownLifetime),
                node: node.node)
            _ = try await link.register()
            try await body(node)
        }
    }

    @Test func garbageOrForeignTokensForAnUnknownDatabaseNeverAskTheControlPlane() async throws {
        let signer = TokenSigner()
        try await FakeControlPlane.with(signer: signer) { control in
            try await Self.withLinkedNode(control, unknownLifetime: .seconds(5)) { node in
                // Not a JWT, a forged signature, an expired token.
                let garbage = try [
                    "garbage", "a.b.c", TokenSigner().token(["id": "acme/ghost"]),
                    signer.token(["id": "acme/ghost", "exp": Date().timeIntervalSince1970 - 3600]),
                ]
                for index in 0..<100 {
                    let answer = try await node.request(
                        "POST", "/db/acme/ghost/v1/execute", body: Self.execute,
                        headers: ["Authorization": "Bearer \(garbage[index % garbage.count])"])
                    #expect(answer.status == 401)
                }
                // A good token for another database, or a group of another organization.
                for claims: [String: Any] in [["id": "acme/other"], ["gid": "other/eu"]] {
                    let answer = try await node.request(
                        "POST", "/db/acme/ghost/v1/execute", body: Self.execute,
                        headers: ["Authorization": "Bearer \(try signer.token(claims))"])
                    #expect(answer.status == 403)
                }
                #expect(control.lookups.value == 0)
            }
        }
    }

    @Test func validTokenForAnUnknownDatabaseAsksTheControlPlaneOncePerCacheWindow() async throws {
        let signer = TokenSigner()
        try await FakeControlPlane.with(signer: signer) { control in
            // A window far longer than the test, so a slow machine stays inside it.
            try await Self.withLinkedNode(control, unknownLifetime: .seconds(600)) { node in
                let token = try signer.token(["id": "acme/ghost"])
                for _ in 0..<10 {
                    let answer = try await node.request(
                        "POST", "/db/acme/ghost/v1/execute", body: Self.execute,
                        headers: ["Authorization": "Bearer \(token)"])
                    #expect(answer.status == 404)
                    #expect(answer.body.contains("does not exist"), "\(answer.body)")
                }
                #expect(control.lookups.value == 1)
                // Created here afterwards, it is served at once.
                let created = try await node.request(
                    "POST", "/v1/namespaces/acme/ghost/create", headers: ["Authorization": "Bearer node-admin"])
                #expect(created.status == 200)
                let served = try await node.request(
                    "POST", "/db/acme/ghost/v1/execute", body: Self.execute,
                    headers: ["Authorization": "Bearer \(token)"])
                #expect(served.status == 200, "\(served.body)")
                #expect(control.lookups.value == 1)
            }
        }
    }

    @Test func unknownDatabasesAreForgottenAfterTheirLifetime() throws {
        var unknown = UnknownDatabases(lifetime: .seconds(5), capacity: 10)
        let start = ContinuousClock.now
        let ghost = try Namespace("acme/ghost")
        unknown.insert(ghost, at: start)
        #expect(unknown.contains(ghost, at: start + .seconds(4)))
        #expect(!unknown.contains(ghost, at: start + .seconds(5)))
        unknown.insert(ghost, at: start + .seconds(5))
        #expect(unknown.contains(ghost, at: start + .seconds(6)))
        unknown.remove(ghost)
        #expect(!unknown.contains(ghost, at: start + .seconds(6)))
    }

    @Test func unknownDatabasesStayWithinTheirCapacityDroppingTheOldestFirst() throws {
        var unknown = UnknownDatabases(lifetime: .seconds(5), capacity: 3)
        let start = ContinuousClock.now
        let names = try (0..<5).map { try Namespace(organization: "acme", database: "db-\($0)") }
        for (index, name) in names.enumerated() {
            unknown.insert(name, at: start + .milliseconds(index))
        }
        #expect(unknown.count == 3)
        #expect(!unknown.contains(names[0], at: start + .seconds(1)))
        #expect(!unknown.contains(names[1], at: start + .seconds(1)))
        #expect(unknown.contains(names[4], at: start + .seconds(1)))
        // Expired entries make room before any live one is dropped.
        unknown.insert(try Namespace("acme/late"), at: start + .seconds(10))
        #expect(unknown.count == 1)
    }
}
