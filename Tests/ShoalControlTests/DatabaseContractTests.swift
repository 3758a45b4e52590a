import Foundation
import HTTPTypes
import Hummingbird
import ShoalNode
import ShoalServerKit
import Testing

/// Databases: creation and placement, names, pagination, configuration, instances, deletion and
/// the quota under concurrency, on both catalog backends.
@Suite("Platform API: databases", .serialized, .timeLimit(.minutes(5)))
struct DatabaseContractTests {
    @Test(arguments: CatalogBackend.allCases)
    func createdDatabaseIsUsableOnItsNodeAtOnce(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            let created = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "orders", "group": "default"])
            #expect(created.status == 200)
            let database = try #require(created.json["database"] as? [String: Any])
            #expect(database["Name"] as? String == "orders")
            #expect(database["Hostname"] as? String == "orders-acme.shoal.local")
            let id = try #require(database["DbId"] as? String)

            let instances = try await cluster.call("GET", "/v1/organizations/acme/databases/orders/instances")
            let instance = try #require((instances.json["instances"] as? [[String: Any]])?.first)
            #expect(instance["type"] as? String == "primary")
            #expect(instance["region"] as? String == "fra")
            let url = try #require(instance["url"] as? String)
            #expect(url == "\(cluster.nodes["fra"]!.url)/db/acme/orders")

            let token = try await cluster.call("POST", "/v1/organizations/acme/databases/orders/auth/tokens")
            let jwt = try #require(token.json["jwt"] as? String)
            let create = try await LiveCluster.execute("CREATE TABLE t (x)", at: url, token: jwt)
            #expect(create.status == 200)
            #expect(!create.pipelineFailed, "\(create.text)")
            #expect(!(try await LiveCluster.execute("INSERT INTO t VALUES (1)", at: url, token: jwt).pipelineFailed))
            let read = try await LiveCluster.execute("SELECT count(*) FROM t", at: url, token: jwt)
            #expect(read.status == 200)
            #expect(!read.pipelineFailed, "\(read.text)")
            #expect(try await LiveCluster.execute("SELECT 1", at: url, token: nil).status == 401)

            // The same name again is a conflict; with if_not_exists it is the same database.
            let again = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "orders", "group": "default"])
            #expect(again.status == 409)
            let retry = try await cluster.call(
                "POST", "/v1/organizations/acme/databases",
                json: ["name": "orders", "group": "default", "if_not_exists": true])
            #expect(retry.status == 200)
            #expect((retry.json["database"] as? [String: Any])?["DbId"] as? String == id)
            for bad in ["Orders", "a/b", "", String(repeating: "x", count: 65)] {
                let answer = try await cluster.call(
                    "POST", "/v1/organizations/acme/databases", json: ["name": bad, "group": "default"])
                #expect(answer.status == 422, "name \(bad)")
            }
            let noGroup = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "x", "group": "nope"])
            #expect(noGroup.status == 404)
            let seeded = try await cluster.call(
                "POST", "/v1/organizations/acme/databases",
                json: ["name": "copy", "group": "default", "seed": ["type": "database", "name": "orders"]])
            // Seeds restore from backups, and these nodes keep none: refused, and nothing is left.
            #expect(seeded.status == 409, "\(seeded.text)")
            #expect(seeded.errorMessage.contains("--backup-dir"))
            #expect(try await cluster.call("GET", "/v1/organizations/acme/databases/copy").status == 404)

            let shown = try await cluster.call("GET", "/v1/organizations/acme/databases/orders")
            #expect((shown.json["database"] as? [String: Any])?["primaryRegion"] as? String == "fra")
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func listingPagesThroughAThousandDatabasesAndFiltersByGroup(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "big", plan: "scaler")
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/groups", json: ["name": "small", "location": "fra"])
            let names = (0..<1000).map { String(format: "tenant-%04d", $0) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for slice in stride(from: 0, to: names.count, by: 125) {
                    let part = Array(names[slice..<min(slice + 125, names.count)])
                    group.addTask {
                        for name in part {
                            let answer = try await cluster.call(
                                "POST", "/v1/organizations/acme/databases", json: ["name": name, "group": "big"])
                            guard answer.status == 200 else { throw ClusterError("\(name): \(answer.text)") }
                        }
                    }
                }
                try await group.waitForAll()
            }
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "zz-small", "group": "small"])
            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let query = "limit=300" + (cursor.map { "&cursor=\($0)" } ?? "") + "&group=big"
                let page = try await cluster.call("GET", "/v1/organizations/acme/databases?\(query)")
                #expect(page.status == 200)
                seen += (page.json["databases"] as? [[String: Any]] ?? []).compactMap { $0["Name"] as? String }
                cursor = page.json["next_cursor"] as? String
                pages += 1
            } while cursor != nil && pages < 10
            #expect(pages == 4)
            #expect(seen == names)
            let small = try await cluster.call("GET", "/v1/organizations/acme/databases?group=small")
            #expect((small.json["databases"] as? [[String: Any]])?.map { $0["Name"] as? String } == ["zz-small"])
            #expect(try await cluster.call("GET", "/v1/organizations/acme/databases?limit=0").status == 400)
            let nodes = try await cluster.call("GET", "/v1/nodes")
            #expect((nodes.json["nodes"] as? [[String: Any]])?.first?["databases"] as? Int == 1001)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func configurationReachesTheNode(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            _ = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "ledger", "group": "default"])
            let jwt = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/databases/ledger/auth/tokens").json["jwt"]
                    as? String)
            let url = cluster.nodes["fra"]!.url + "/db/acme/ledger"
            #expect(try await LiveCluster.execute("CREATE TABLE t (x)", at: url, token: jwt).pipelineFailed == false)

            let patched = try await cluster.call(
                "PATCH", "/v1/organizations/acme/databases/ledger/configuration",
                json: ["block_writes": true, "size_limit": "64mb"])
            #expect(patched.status == 200)
            #expect(patched.json["block_writes"] as? Bool == true)
            #expect(patched.json["size_limit"] as? String == "\(64 << 20)")
            let blocked = try await LiveCluster.execute("INSERT INTO t VALUES (1)", at: url, token: jwt)
            #expect(blocked.pipelineFailed, "\(blocked.text)")
            #expect(!(try await LiveCluster.execute("SELECT * FROM t", at: url, token: jwt).pipelineFailed))
            let shown = try await cluster.call("GET", "/v1/organizations/acme/databases/ledger/configuration")
            #expect(shown.json["block_writes"] as? Bool == true)
            #expect(shown.json["delete_protection"] as? Bool == false)
            let badSize = try await cluster.call(
                "PATCH", "/v1/organizations/acme/databases/ledger/configuration", json: ["size_limit": "lots"])
            #expect(badSize.status == 422)
            _ = try await cluster.call(
                "PATCH", "/v1/organizations/acme/databases/ledger/configuration", json: ["block_writes": false])
            #expect(!(try await LiveCluster.execute("INSERT INTO t VALUES (1)", at: url, token: jwt).pipelineFailed))

            // Delete protection, then deletion removes the files from the node.
            _ = try await cluster.call(
                "PATCH", "/v1/organizations/acme/databases/ledger/configuration", json: ["delete_protection": true])
            let refused = try await cluster.call("DELETE", "/v1/organizations/acme/databases/ledger")
            #expect(refused.status == 403)
            #expect(refused.errorCode == "delete_protected")
            _ = try await cluster.call(
                "PATCH", "/v1/organizations/acme/databases/ledger/configuration", json: ["delete_protection": false])
            #expect(try await cluster.call("DELETE", "/v1/organizations/acme/databases/ledger").status == 200)
            #expect(!cluster.nodes["fra"]!.node.store.exists(try Namespace(organization: "acme", database: "ledger")))
            #expect(try await cluster.call("GET", "/v1/organizations/acme/databases/ledger").status == 404)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func quotaAdmitsExactlyTheAllowedNumberUnderFiftyParallelCreates(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            _ = try await cluster.call(
                "PUT", "/v1/plans/tiny",
                json: ["databases": 20, "groups": 2, "locations_per_group": 1, "storage_bytes": 1_000_000])
            try await cluster.makeGroup(organization: "small", group: "default", plan: "tiny")
            // 12 exist already: 8 places left for 50 concurrent requests.
            for index in 0..<12 {
                _ = try await cluster.call(
                    "POST", "/v1/organizations/small/databases", json: ["name": "pre-\(index)", "group": "default"])
            }
            var statuses: [Int: Int] = [:]
            var messages: Set<String> = []
            try await withThrowingTaskGroup(of: Answer.self) { group in
                for index in 0..<50 {
                    group.addTask {
                        try await cluster.call(
                            "POST", "/v1/organizations/small/databases",
                            json: ["name": "race-\(index)", "group": "default"])
                    }
                }
                for try await answer in group {
                    statuses[answer.status, default: 0] += 1
                    if let code = answer.errorCode { messages.insert(code + ": " + answer.errorMessage) }
                }
            }
            #expect(statuses == [200: 8, 403: 42])
            #expect(messages.count == 1)
            #expect(messages.first?.hasPrefix("quota_exceeded") == true)
            #expect(messages.first?.contains("'databases'") == true)
            let usage = try await cluster.call("GET", "/v1/organizations/small/usage")
            #expect((usage.json["usage"] as? [String: Any])?["databases"] as? Int == 20)
            // The group and location quotas hold too.
            let secondGroup = try await cluster.call(
                "POST", "/v1/organizations/small/groups", json: ["name": "two", "location": "ams"])
            #expect(secondGroup.status == 200)
            let thirdGroup = try await cluster.call(
                "POST", "/v1/organizations/small/groups", json: ["name": "three", "location": "ams"])
            #expect(thirdGroup.errorCode == "quota_exceeded")
            let extraLocation = try await cluster.call("POST", "/v1/organizations/small/groups/two/locations/fra")
            #expect(extraLocation.errorCode == "quota_exceeded")
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func placementUsesOnlyLiveNodesAndNodesLearnTheirDatabasesOnFirstUse(_ backend: CatalogBackend) async throws {
        // The test moves the control plane's clock a minute ahead: the node allows for that much skew.
        try await LiveCluster.with(backend, tokenLeeway: 120) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            try await cluster.makeGroup(organization: "acme", group: "tokyo", location: "nrt")
            let none = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "jp", "group": "tokyo"])
            #expect(none.status == 503)
            #expect(none.errorCode == "no_node_available")
            #expect(none.errorMessage.contains("nrt"))
            let fra = cluster.nodes["fra"]!.url
            let before = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "before", "group": "default"])
            #expect(before.status == 200)
            // A second fra node that never answers: registered, then silent. With fewer primaries it
            // gets the next database, which only it could serve.
            let ghost = try await cluster.call(
                "POST", "/v1/nodes", json: ["location": "fra", "url": "http://127.0.0.1:9", "admin_token": "x"])
            #expect(ghost.status == 200)
            let onGhost = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "lost", "group": "default"])
            #expect(onGhost.status == 200)
            let instances = try await cluster.call("GET", "/v1/organizations/acme/databases/lost/instances")
            #expect(
                (instances.json["instances"] as? [[String: Any]])?.first?["url"] as? String
                    == "http://127.0.0.1:9/db/acme/lost")
            // The real node refuses a database placed elsewhere (it asks the control plane).
            let jwt = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/databases/lost/auth/tokens").json["jwt"]
                    as? String)
            #expect(try await LiveCluster.execute("SELECT 1", at: fra + "/db/acme/lost", token: jwt).status == 404)
            // Once its heartbeat is stale the ghost is down and skipped.
            cluster.time.advance(seconds: 60)
            _ = try await cluster.call(
                "POST", "/v1/nodes", json: ["location": "fra", "url": fra, "admin_token": "node-admin-fra"])
            let placed = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "b", "group": "default"])
            #expect(placed.status == 200, "\(placed.text)")
            let token = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/databases/b/auth/tokens").json["jwt"]
                    as? String)
            // The node had not heard of b: it asks on the first request, then serves it.
            #expect(!cluster.nodes["fra"]!.node.store.exists(try Namespace(organization: "acme", database: "b")))
            let first = try await LiveCluster.execute("SELECT 42", at: fra + "/db/acme/b", token: token)
            #expect(first.status == 200 && !first.pipelineFailed, "\(first.text)")
            #expect(cluster.nodes["fra"]!.node.store.exists(try Namespace(organization: "acme", database: "b")))
            let nodes = try await cluster.call("GET", "/v1/nodes")
            let statuses = (nodes.json["nodes"] as? [[String: Any]] ?? []).map {
                ($0["url"] as? String ?? "", $0["status"] as? String ?? "")
            }
            #expect(statuses.contains { $0.0 == "http://127.0.0.1:9" && $0.1 == "down" })
            #expect(statuses.contains { $0.0 == fra && $0.1 == "up" })
            let notAdmin = try await cluster.call(
                "POST", "/v1/organizations/acme/api-tokens", json: ["name": "app"])
            let secret = try #require(notAdmin.json["token"] as? String)
            #expect(try await cluster.call("GET", "/v1/nodes", token: secret).status == 403)
            #expect(
                try await cluster.call(
                    "GET", "/v1/nodes/\(UUID().uuidString.lowercased())/databases/acme/b", token: secret
                ).status == 403)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func eagerPlacementUndoesACreationItsNodeCannotTake(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend, eagerPlacement: true) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            let before = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "before", "group": "default"])
            #expect(before.status == 200)
            #expect(cluster.nodes["fra"]!.node.store.exists(try Namespace(organization: "acme", database: "before")))
            // A second fra node that answers every call with 503 (a node that cannot take databases).
            let router = Router(context: ServerRequestContext.self)
            router.post("**") { _, _ -> HTTPResponse.Status in .serviceUnavailable }
            try await withThrowingTaskGroup(of: Void.self) { servers in
                let port = try await LiveCluster.start(
                    "refusing node",
                    { onRunning in
                        Application(
                            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? 0) })
                    }, in: &servers)
                _ = try await cluster.call(
                    "POST", "/v1/nodes",
                    json: ["location": "fra", "url": "http://127.0.0.1:\(port)", "admin_token": "x"])
                let failed = try await cluster.call(
                    "POST", "/v1/organizations/acme/databases", json: ["name": "a", "group": "default"])
                #expect(failed.status == 503)
                #expect(failed.errorCode == "placement_failed")
                #expect(try await cluster.call("GET", "/v1/organizations/acme/databases/a").status == 404)
                let usage = try await cluster.call("GET", "/v1/organizations/acme/usage")
                #expect((usage.json["usage"] as? [String: Any])?["databases"] as? Int == 1)
                servers.cancelAll()
            }
        }
    }

    /// An organization's API token for `acme` and the path of database `name`'s configuration.
    static func tenant(_ cluster: LiveCluster, database name: String) async throws -> (token: String, path: String) {
        try await cluster.makeGroup(organization: "acme", group: "default")
        let created = try await cluster.call(
            "POST", "/v1/organizations/acme/databases", json: ["name": name, "group": "default"])
        try #require(created.status == 200, "\(created.text)")
        let token = try #require(
            try await cluster.call("POST", "/v1/organizations/acme/api-tokens", json: ["name": "app"]).json["token"]
                as? String)
        return (token, "/v1/organizations/acme/databases/\(name)/configuration")
    }

    @Test(arguments: CatalogBackend.allCases)
    func onlyTheOperatorCanChangeBlockReadsAndBlockWrites(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            let (tenant, path) = try await Self.tenant(cluster, database: "ledger")
            for field in ["block_reads", "block_writes"] {
                let refused = try await cluster.call("PATCH", path, json: [field: true], token: tenant)
                #expect(refused.status == 403, "\(field)")
                #expect(refused.errorCode == "forbidden")
                #expect(refused.errorMessage.contains("platform operator"))
            }
            // The operator blocks the database; its tenant cannot lift either block.
            let blocked = try await cluster.call("PATCH", path, json: ["block_reads": true, "block_writes": true])
            #expect(blocked.status == 200)
            for field in ["block_reads", "block_writes"] {
                let refused = try await cluster.call("PATCH", path, json: [field: false], token: tenant)
                #expect(refused.status == 403, "\(field)")
                #expect(refused.errorMessage.contains("platform operator"))
            }
            let shown = try await cluster.call("GET", path, token: tenant)
            #expect(shown.json["block_reads"] as? Bool == true)
            #expect(shown.json["block_writes"] as? Bool == true)
            // Sending the values as they are is no change; the tenant keeps its own delete protection.
            let unchanged = try await cluster.call(
                "PATCH", path, json: ["block_reads": true, "block_writes": true, "delete_protection": true],
                token: tenant)
            #expect(unchanged.status == 200, "\(unchanged.text)")
            #expect(unchanged.json["delete_protection"] as? Bool == true)
            let lifted = try await cluster.call("PATCH", path, json: ["block_reads": false, "block_writes": false])
            #expect(lifted.status == 200)
            #expect(lifted.json["block_reads"] as? Bool == false)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func tenantCannotChangeASizeLimitTheOperatorSet(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            let (tenant, path) = try await Self.tenant(cluster, database: "ledger")
            // A limit the tenant set is the tenant's to change (within its plan: see
            // SettingsPushContractTests for the plan's maximum).
            #expect(try await cluster.call("PATCH", path, json: ["size_limit": "10mb"], token: tenant).status == 200)
            #expect(try await cluster.call("PATCH", path, json: ["size_limit": "20mb"], token: tenant).status == 200)

            // A limit the operator set is not.
            #expect(try await cluster.call("PATCH", path, json: ["size_limit": "64mb"]).status == 200)
            for size in ["1gb", "1mb", "", "0"] {
                let refused = try await cluster.call("PATCH", path, json: ["size_limit": size], token: tenant)
                #expect(refused.status == 403, "size \(size)")
                #expect(refused.errorCode == "forbidden")
                #expect(refused.errorMessage.contains("platform operator"))
            }
            #expect(try await cluster.call("GET", path).json["size_limit"] as? String == "\(64 << 20)")
            let unchanged = try await cluster.call(
                "PATCH", path, json: ["size_limit": "64mb", "delete_protection": true], token: tenant)
            #expect(unchanged.status == 200, "\(unchanged.text)")

            // Once the operator removes it, the tenant may set one again.
            #expect(try await cluster.call("PATCH", path, json: ["size_limit": ""]).status == 200)
            let own = try await cluster.call("PATCH", path, json: ["size_limit": "5mb"], token: tenant)
            #expect(own.status == 200, "\(own.text)")
            #expect(own.json["size_limit"] as? String == "\(5 << 20)")
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func sizeLimitUnderSixtyFourKibibytesIsRefusedBeforeItIsStored(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            let (_, path) = try await Self.tenant(cluster, database: "ledger")
            let jwt = try #require(
                try await cluster.call("POST", "/v1/organizations/acme/databases/ledger/auth/tokens").json["jwt"]
                    as? String)
            let url = cluster.nodes["fra"]!.url + "/db/acme/ledger"
            #expect(!(try await LiveCluster.execute("CREATE TABLE t (x)", at: url, token: jwt).pipelineFailed))
            for size in ["1", "4095b", "4096", "4kb", "65535", "63kb"] {
                let refused = try await cluster.call("PATCH", path, json: ["size_limit": size])
                #expect(refused.status == 400, "size \(size)")
                #expect(refused.errorCode == "bad_request")
                #expect(refused.errorMessage.contains("64kb (65536 bytes) or more"))
            }
            #expect(try await cluster.call("GET", path).json["size_limit"] as? String == "")
            #expect(!(try await LiveCluster.execute("INSERT INTO t VALUES (1)", at: url, token: jwt).pipelineFailed))

            let smallest = try await cluster.call("PATCH", path, json: ["size_limit": "64kb"])
            #expect(smallest.status == 200, "\(smallest.text)")
            #expect(smallest.json["size_limit"] as? String == "65536")
            let read = try await LiveCluster.execute("SELECT count(*) FROM t", at: url, token: jwt)
            #expect(read.status == 200 && !read.pipelineFailed, "\(read.text)")
        }
    }
}
