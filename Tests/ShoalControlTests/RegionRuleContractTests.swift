import Foundation
import Testing

/// Groups and every path where a region rule refuses a change, on both catalog backends.
@Suite("Platform API: groups and region rules", .serialized, .timeLimit(.minutes(5)))
struct RegionRuleContractTests {
    @Test(arguments: CatalogBackend.allCases)
    func groupRuleRefusesLocationsOutsideIt(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            _ = try await cluster.call("POST", "/v1/organizations", json: ["slug": "acme"])
            let outside = try await cluster.call(
                "POST", "/v1/organizations/acme/groups",
                json: ["name": "eu", "location": "iad", "region_rule": ["jurisdictions": ["eu"]]])
            #expect(outside.status == 422)
            #expect(outside.errorCode == "region_lock_violation")
            for part in ["iad", "us", "eu"] { #expect(outside.errorMessage.contains(part), "\(outside.errorMessage)") }

            let created = try await cluster.call(
                "POST", "/v1/organizations/acme/groups",
                json: ["name": "eu", "location": "fra", "region_rule": ["jurisdictions": ["eu"]]])
            #expect(created.status == 200)
            let group = try #require(created.json["group"] as? [String: Any])
            #expect(group["primary"] as? String == "fra")
            #expect(group["locations"] as? [String] == ["fra"])

            #expect(try await cluster.call("POST", "/v1/organizations/acme/groups/eu/locations/ams").status == 200)
            let addUS = try await cluster.call("POST", "/v1/organizations/acme/groups/eu/locations/iad")
            #expect(addUS.status == 422)
            #expect(addUS.errorCode == "region_lock_violation")
            let shown = try await cluster.call("GET", "/v1/organizations/acme/groups/eu")
            #expect((shown.json["group"] as? [String: Any])?["locations"] as? [String] == ["fra", "ams"])

            // Explicit locations: lhr allowed by name although the rule has no jurisdiction.
            let byName = try await cluster.call(
                "POST", "/v1/organizations/acme/groups",
                json: ["name": "london", "location": "lhr", "region_rule": ["locations": ["lhr"]]])
            #expect(byName.status == 200)
            let notNamed = try await cluster.call("POST", "/v1/organizations/acme/groups/london/locations/fra")
            #expect(notNamed.errorCode == "region_lock_violation")

            // An unknown jurisdiction or location in a rule is refused as invalid, not as a lock.
            let unknown = try await cluster.call(
                "POST", "/v1/organizations/acme/groups",
                json: ["name": "odd", "location": "fra", "region_rule": ["jurisdictions": ["mars"]]])
            #expect(unknown.status == 422)
            #expect(unknown.errorCode == "unprocessable")
            let empty = try await cluster.call(
                "POST", "/v1/organizations/acme/groups",
                json: ["name": "nowhere", "location": "fra", "region_rule": ["locations": [String]()]])
            #expect(empty.errorCode == "unprocessable")
            #expect(try await cluster.call("POST", "/v1/organizations/acme/groups/eu/locations/xyz").status == 404)
            let duplicate = try await cluster.call(
                "POST", "/v1/organizations/acme/groups", json: ["name": "eu", "location": "fra"])
            #expect(duplicate.status == 409)

            // Refusals are audited.
            let audit = try await cluster.call("GET", "/v1/organizations/acme/audit-logs")
            let refusals = (audit.json["audit_logs"] as? [[String: Any]] ?? []).filter {
                $0["outcome"] as? String == "region_lock_violation"
            }
            #expect(refusals.count == 3)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func aStoredRuleThatCannotBeReadAllowsNoLocationUntilItIsSetAgain(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(
                organization: "acme", group: "eu", location: "fra", rule: ["jurisdictions": ["eu"]])
            // The stored rule is damaged (a bad write, a hand edit): it must not read as "no rule".
            try await cluster.store.transaction { transaction in
                _ = try await transaction.query(
                    "UPDATE db_groups SET region_rule = $1 WHERE name = $2",
                    [.text(#"{"jurisdictions": "eu""#), .text("eu")])
            }
            let shown = try await cluster.call("GET", "/v1/organizations/acme/groups/eu")
            #expect(shown.status == 200)
            let rule = (shown.json["group"] as? [String: Any])?["region_rule"] as? [String: Any]
            #expect(rule?["jurisdictions"] as? [String] == [], "\(shown.text)")
            #expect(rule?["locations"] as? [String] == [], "\(shown.text)")
            let inside = try await cluster.call("POST", "/v1/organizations/acme/groups/eu/locations/ams")
            #expect(inside.errorCode == "region_lock_violation", "\(inside.text)")
            // A rule that decodes with neither list (a misspelt key) is no "no rule" either.
            try await cluster.store.transaction { transaction in
                _ = try await transaction.query(
                    "UPDATE db_groups SET region_rule = $1 WHERE name = $2",
                    [.text(#"{"jurisdiction": ["eu"]}"#), .text("eu")])
            }
            let misspelt = try await cluster.call("POST", "/v1/organizations/acme/groups/eu/locations/ams")
            #expect(misspelt.errorCode == "region_lock_violation", "\(misspelt.text)")
            // Setting the rule again restores it.
            let fixed = try await cluster.call(
                "PATCH", "/v1/organizations/acme/groups/eu", json: ["region_rule": ["jurisdictions": ["eu"]]])
            #expect(fixed.status == 200, "\(fixed.text)")
            #expect(try await cluster.call("POST", "/v1/organizations/acme/groups/eu/locations/ams").status == 200)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func organizationRuleBindsEveryGroupAndCannotStrandData(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "us", location: "iad")
            // Tightening the organization to the EU while a group lives in the US is refused.
            let strand = try await cluster.call(
                "PATCH", "/v1/organizations/acme", json: ["region_rule": ["jurisdictions": ["eu"]]])
            #expect(strand.status == 422)
            #expect(strand.errorCode == "region_lock_violation")
            #expect(strand.errorMessage.contains("iad"))
            #expect(try await cluster.call("DELETE", "/v1/organizations/acme/groups/us").status == 200)
            let tightened = try await cluster.call(
                "PATCH", "/v1/organizations/acme", json: ["region_rule": ["jurisdictions": ["eu"]]])
            #expect(tightened.status == 200)
            // A group without its own rule still obeys the organization's.
            let refused = try await cluster.call(
                "POST", "/v1/organizations/acme/groups", json: ["name": "tokyo", "location": "nrt"])
            #expect(refused.errorCode == "region_lock_violation")
            #expect(refused.errorMessage.contains("apac"))
            #expect(
                try await cluster.call(
                    "POST", "/v1/organizations/acme/groups", json: ["name": "paris", "location": "cdg"]
                ).status == 200)
            // Changing a group's rule so that one of its locations falls outside is refused.
            #expect(try await cluster.call("POST", "/v1/organizations/acme/groups/paris/locations/ams").status == 200)
            let narrower = try await cluster.call(
                "PATCH", "/v1/organizations/acme/groups/paris", json: ["region_rule": ["locations": ["cdg"]]])
            #expect(narrower.errorCode == "region_lock_violation")
            #expect(try await cluster.call("DELETE", "/v1/organizations/acme/groups/paris/locations/ams").status == 200)
            let fits = try await cluster.call(
                "PATCH", "/v1/organizations/acme/groups/paris", json: ["region_rule": ["locations": ["cdg"]]])
            #expect(fits.status == 200)
            // Removing the organization's rule is allowed (null clears it).
            let cleared = try await cluster.call("PATCH", "/v1/organizations/acme", json: ["region_rule": NSNull()])
            #expect(cleared.status == 200)
            #expect((cleared.json["organization"] as? [String: Any])?["region_rule"] == nil)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func groupDeletionHonoursProtectionAndPrimaryStays(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "main")
            let primary = try await cluster.call("DELETE", "/v1/organizations/acme/groups/main/locations/fra")
            #expect(primary.status == 422)
            #expect(
                try await cluster.call("PATCH", "/v1/organizations/acme/groups/main", json: ["delete_protection": true])
                    .status == 200)
            let refused = try await cluster.call("DELETE", "/v1/organizations/acme/groups/main")
            #expect(refused.status == 403)
            #expect(refused.errorCode == "delete_protected")
            _ = try await cluster.call(
                "PATCH", "/v1/organizations/acme/groups/main", json: ["delete_protection": false])
            let created = try await cluster.call(
                "POST", "/v1/organizations/acme/databases", json: ["name": "kept", "group": "main"])
            #expect(created.status == 200)
            _ = try await cluster.call(
                "PATCH", "/v1/organizations/acme/databases/kept/configuration", json: ["delete_protection": true])
            let protectedDatabase = try await cluster.call("DELETE", "/v1/organizations/acme/groups/main")
            #expect(protectedDatabase.errorCode == "delete_protected")
            #expect(protectedDatabase.errorMessage.contains("kept"))
            _ = try await cluster.call(
                "PATCH", "/v1/organizations/acme/databases/kept/configuration", json: ["delete_protection": false])
            #expect(try await cluster.call("DELETE", "/v1/organizations/acme/groups/main").status == 200)
            #expect(try await cluster.call("GET", "/v1/organizations/acme/databases/kept").status == 404)
            let node = try #require(cluster.nodes["fra"])
            #expect(!node.node.store.exists(try .init(organization: "acme", database: "kept")))
            let groups = try await cluster.call("GET", "/v1/organizations/acme/groups")
            #expect((groups.json["groups"] as? [Any])?.isEmpty == true)
        }
    }
}
