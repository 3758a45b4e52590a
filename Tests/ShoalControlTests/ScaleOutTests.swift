import Foundation
import Logging
import ShoalControl
import Testing

/// Several stateless control-plane instances over one PostgreSQL catalog.
@Suite("Control plane scale-out on PostgreSQL", .serialized, .timeLimit(.minutes(5)))
struct ScaleOutTests {
    @Test func twoInstancesCreateConcurrentlyWithoutDuplicatesOrLostRows() async throws {
        try await LiveCluster.with(.postgresql) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default", plan: "scaler")
            // A second instance: its own store and server over the same schema.
            var logger = Logger(label: "shoal.control.test.second")
            logger.logLevel = .critical
            let url = try CatalogBackend.postgresURL
            let store = try PostgresCatalogStore(
                url: url + (url.contains("?") ? "&" : "?") + "schema=\(cluster.schema)", logger: logger)
            try await store.whileRunning {
                try await store.migrate()  // finds nothing pending
                let second = ControlPlane(catalog: Catalog(store: store, now: { cluster.time.now() }), logger: logger)
                try await withThrowingTaskGroup(of: Void.self) { servers in
                    let port = try await LiveCluster.start(
                        "second control plane",
                        { second.application(host: "127.0.0.1", port: 0, onRunning: $0) }, in: &servers)
                    let instances = [cluster.controlURL, "http://127.0.0.1:\(port)"]
                    // 150 names, each asked for through both instances at once.
                    var ids: [String: [String]] = [:]
                    var conflicts = 0
                    try await withThrowingTaskGroup(of: [(String, Answer)].self) { group in
                        for worker in 0..<10 {
                            group.addTask {
                                var answers: [(String, Answer)] = []
                                for index in stride(from: worker, to: 150, by: 10) {
                                    for base in instances {
                                        let answer = try await LiveCluster.send(
                                            "POST", base + "/v1/organizations/acme/databases",
                                            json: ["name": "db-\(index)", "group": "default"], token: cluster.adminToken
                                        )
                                        answers.append(("db-\(index)", answer))
                                    }
                                }
                                return answers
                            }
                        }
                        for try await answers in group {
                            for (name, answer) in answers {
                                if answer.status == 200,
                                    let id = (answer.json["database"] as? [String: Any])?["DbId"] as? String
                                {
                                    ids[name, default: []].append(id)
                                } else if answer.status == 409 {
                                    conflicts += 1
                                } else {
                                    Issue.record("\(name): \(answer.status) \(answer.text)")
                                }
                            }
                        }
                    }
                    #expect(ids.count == 150)
                    #expect(ids.values.allSatisfy { $0.count == 1 })
                    #expect(conflicts == 150)
                    // Both instances list the same 150 rows, with the ids their creators answered.
                    for base in instances {
                        let page = try await LiveCluster.send(
                            "GET", base + "/v1/organizations/acme/databases?limit=1000", token: cluster.adminToken)
                        let listed = (page.json["databases"] as? [[String: Any]] ?? []).map {
                            ($0["Name"] as? String ?? "", $0["DbId"] as? String ?? "")
                        }
                        #expect(listed.count == 150)
                        #expect(listed.allSatisfy { ids[$0.0] == [$0.1] })
                    }
                    let usage = try await cluster.call("GET", "/v1/organizations/acme/usage")
                    #expect((usage.json["usage"] as? [String: Any])?["databases"] as? Int == 150)
                    servers.cancelAll()
                }
            }
        }
    }
}
