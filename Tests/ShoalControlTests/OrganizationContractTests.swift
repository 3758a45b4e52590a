import Foundation
import Testing

/// Organizations, API tokens, locations, plans, usage and the audit log, on both catalog backends.
@Suite("Platform API: organizations, locations, plans", .serialized, .timeLimit(.minutes(5)))
struct OrganizationContractTests {
    @Test(arguments: CatalogBackend.allCases)
    func organizationsAreCreatedOnceWithValidSlugsAndSeenOnlyByTheirTokens(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            let created = try await cluster.call("POST", "/v1/organizations", json: ["slug": "acme", "plan": "free"])
            #expect(created.status == 200)
            #expect((created.json["organization"] as? [String: Any])?["slug"] as? String == "acme")
            let duplicate = try await cluster.call("POST", "/v1/organizations", json: ["slug": "acme"])
            #expect(duplicate.status == 409)
            #expect(duplicate.errorCode == "conflict")
            for bad in ["Acme", "", "a b", String(repeating: "a", count: 65), "acme_1"] {
                let answer = try await cluster.call("POST", "/v1/organizations", json: ["slug": bad])
                #expect(answer.status == 422, "slug \(bad)")
                #expect(answer.errorCode == "invalid_name")
            }
            let unknownPlan = try await cluster.call("POST", "/v1/organizations", json: ["slug": "x1", "plan": "gold"])
            #expect(unknownPlan.status == 422)
            let malformed = try await LiveCluster.send(
                "POST", cluster.controlURL + "/v1/organizations", token: cluster.adminToken, rawBody: Data("{".utf8))
            #expect(malformed.status == 400)
            #expect(malformed.errorCode == "bad_request")

            // Authentication: none, wrong, an organization's own token.
            #expect(try await cluster.call("GET", "/v1/organizations", token: "").status == 401)
            let wrong = try await cluster.call("GET", "/v1/organizations", token: "shoal_nope")
            #expect(wrong.status == 401)
            #expect(wrong.errorCode == "unauthorized")
            _ = try await cluster.call("POST", "/v1/organizations", json: ["slug": "other"])
            let token = try await cluster.call("POST", "/v1/organizations/acme/api-tokens", json: ["name": "ci"])
            #expect(token.status == 200)
            let secret = try #require(token.json["token"] as? String)
            let own = try await cluster.call("GET", "/v1/organizations", token: secret)
            #expect((own.json["organizations"] as? [[String: Any]])?.map { $0["slug"] as? String } == ["acme"])
            #expect(try await cluster.call("GET", "/v1/organizations/acme", token: secret).status == 200)
            let foreign = try await cluster.call("GET", "/v1/organizations/other", token: secret)
            #expect(foreign.status == 403)
            // Unknown slugs look the same as foreign ones to an organization's token.
            #expect(try await cluster.call("GET", "/v1/organizations/ghost", token: secret).status == 403)
            let twice = try await cluster.call("POST", "/v1/organizations/acme/api-tokens", json: ["name": "ci"])
            #expect(twice.status == 409)
            let notAdmin = try await cluster.call("POST", "/v1/organizations", json: ["slug": "mine"], token: secret)
            #expect(notAdmin.status == 403)
            let all = try await cluster.call("GET", "/v1/organizations")
            #expect((all.json["organizations"] as? [[String: Any]])?.count == 2)
            #expect(try await cluster.call("GET", "/v1/organizations/ghost").status == 404)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func locationsArePublicDataWithJurisdictions(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            let list = try await cluster.call("GET", "/v1/locations", token: "")
            let locations = try #require(list.json["locations"] as? [String: String])
            #expect(locations.count == 18)
            #expect(locations["fra"]?.contains("Frankfurt") == true)
            let iad = try await cluster.call("GET", "/v1/locations/iad", token: "")
            #expect((iad.json["location"] as? [String: Any])?["jurisdiction"] as? String == "us")
            let missing = try await cluster.call("GET", "/v1/locations/xyz", token: "")
            #expect(missing.status == 404)
            #expect(missing.errorCode == "not_found")
            // Editable by the admin.
            let added = try await cluster.call(
                "PUT", "/v1/locations/zrh", json: ["name": "Zurich, Switzerland", "jurisdiction": "ch"])
            #expect(added.status == 200)
            let zrh = try await cluster.call("GET", "/v1/locations/zrh", token: "")
            #expect((zrh.json["location"] as? [String: Any])?["jurisdiction"] as? String == "ch")
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func plansAreDataAndUsageCountsWhatExists(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            let plans = try await cluster.call("GET", "/v1/organizations/acme/plans")
            let list = try #require(plans.json["plans"] as? [[String: Any]])
            let quotas = Dictionary(
                uniqueKeysWithValues: list.map {
                    ($0["name"] as? String ?? "", ($0["quotas"] as? [String: Any])?["databases"] as? Int ?? -1)
                })
            #expect(quotas["free"] == 500)
            #expect(quotas["scaler"] == 10_000)
            for index in 0..<3 {
                let answer = try await cluster.call(
                    "POST", "/v1/organizations/acme/databases", json: ["name": "db\(index)", "group": "default"])
                #expect(answer.status == 200, "\(answer.text)")
            }
            let usage = try await cluster.call("GET", "/v1/organizations/acme/usage")
            #expect((usage.json["usage"] as? [String: Any])?["databases"] as? Int == 3)
            #expect((usage.json["usage"] as? [String: Any])?["groups"] as? Int == 1)
            #expect((usage.json["quotas"] as? [String: Any])?["databases"] as? Int == 500)
            // A new plan, then moving the organization onto it.
            let saved = try await cluster.call(
                "PUT", "/v1/plans/team",
                json: ["databases": 2000, "groups": 20, "locations_per_group": 4, "storage_bytes": 1_000_000])
            #expect(saved.status == 200)
            let moved = try await cluster.call("PATCH", "/v1/organizations/acme", json: ["plan": "team"])
            #expect(moved.status == 200)
            let after = try await cluster.call("GET", "/v1/organizations/acme/usage")
            #expect((after.json["quotas"] as? [String: Any])?["databases"] as? Int == 2000)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func auditLogRecordsChangesAndPagesBackwards(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "default")
            for index in 0..<5 {
                _ = try await cluster.call(
                    "POST", "/v1/organizations/acme/databases", json: ["name": "db\(index)", "group": "default"])
            }
            let first = try await cluster.call("GET", "/v1/organizations/acme/audit-logs?limit=3")
            let page = try #require(first.json["audit_logs"] as? [[String: Any]])
            #expect(page.count == 3)
            #expect(page.first?["action"] as? String == "database.create")
            #expect(page.first?["target"] as? String == "acme/db4")
            let cursor = try #require(first.json["next_cursor"] as? String)
            let rest = try await cluster.call("GET", "/v1/organizations/acme/audit-logs?limit=50&cursor=\(cursor)")
            let older = try #require(rest.json["audit_logs"] as? [[String: Any]])
            // 2 more creates, the group and the organization.
            #expect(
                older.map { $0["action"] as? String } == [
                    "database.create", "database.create", "group.create", "organization.create",
                ])
            #expect(rest.json["next_cursor"] is NSNull || rest.json["next_cursor"] == nil)
        }
    }

    @Test func probesAnswerWithoutAToken() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            #expect(try await LiveCluster.send("GET", cluster.controlURL + "/health", token: nil).status == 200)
            let version = try await LiveCluster.send("GET", cluster.controlURL + "/version", token: nil)
            #expect(version.text.hasPrefix("shoal-control"))
            _ = try await cluster.call("GET", "/v1/organizations")
            _ = try await cluster.call("GET", "/v1/organizations", token: "wrong")
            let metrics = try await LiveCluster.send("GET", cluster.controlURL + "/metrics", token: nil)
            #expect(metrics.text.contains(#"shoal_control_requests_total{method="GET",status="2xx"}"#))
            #expect(metrics.text.contains(#"shoal_control_requests_total{method="GET",status="4xx"}"#))
            let plans = try await LiveCluster.send("GET", cluster.controlURL + "/v1/plans", token: nil)
            #expect((plans.json["plans"] as? [Any])?.count == 2)
        }
    }
}
