import Foundation
import ShoalControl
import ShoalModel
import Testing

/// Region rules and quotas under concurrent changes, on both catalog backends: the checks that read
/// an organization's state run under its lock, so concurrent changes take effect one after the
/// other (on SQLite they always did: one writer).
@Suite("Organization lock: region rules and quotas under concurrency", .serialized, .timeLimit(.minutes(5)))
struct OrganizationLockTests {
    /// A rule change and a change of where data lives that each pass alone but together break the rule.
    enum Race: String, CaseIterable, CustomTestStringConvertible, Sendable {
        /// The group's rule narrowed to `fra` while `ams` is added to the group.
        case groupRuleAndLocationAdd
        /// The organization's rule narrowed to the EU while `iad` is added to a group.
        case organizationRuleAndLocationAdd
        /// The organization's rule narrowed to the EU while a group is created in `iad`.
        case organizationRuleAndGroupCreate

        var testDescription: String { rawValue }

        /// The rule change and the change of where data lives.
        var changes: (narrow: Change, place: Change) {
            switch self {
            case .groupRuleAndLocationAdd: (.narrowGroupRule, .addLocation("ams"))
            case .organizationRuleAndLocationAdd: (.narrowOrganizationRule, .addLocation("iad"))
            case .organizationRuleAndGroupCreate: (.narrowOrganizationRule, .createGroupInIAD)
            }
        }
    }

    /// One change of a race, on organization `acme` and its group `eu` (primary `fra`).
    enum Change: Sendable {
        case narrowGroupRule
        case narrowOrganizationRule
        case addLocation(String)
        case createGroupInIAD

        func apply(to catalog: Catalog, as admin: Principal) async throws {
            switch self {
            case .narrowGroupRule:
                _ = try await catalog.updateGroup(
                    organization: "acme", name: "eu", regionRule: .some(Platform.RegionRule(locations: ["fra"])),
                    deleteProtection: nil, by: admin)
            case .narrowOrganizationRule:
                _ = try await catalog.updateOrganization(
                    "acme", regionRule: .some(Platform.RegionRule(jurisdictions: ["eu"])), plan: nil, by: admin)
            case .addLocation(let code):
                _ = try await catalog.addLocation(organization: "acme", group: "eu", location: code, by: admin)
            case .createGroupInIAD:
                _ = try await catalog.createGroup(
                    organization: "acme", name: "us", location: "iad", regionRule: nil, by: admin)
            }
        }
    }

    /// `ok`, or the code of the `ControlError` `body` threw (other suites use it too).
    static func outcome(_ body: @Sendable () async throws -> Void) async -> String {
        do {
            try await body()
            return "ok"
        } catch let error as ControlError {
            return error.codeName
        } catch {
            return "\(error)"
        }
    }

    /// Runs `first` and `second` at once; returns their outcomes.
    static func race(
        _ first: @escaping @Sendable () async throws -> Void, _ second: @escaping @Sendable () async throws -> Void
    ) async -> [String] {
        await withTaskGroup(of: String.self, returning: [String].self) { group in
            group.addTask { await Self.outcome(first) }
            group.addTask { await Self.outcome(second) }
            var outcomes: [String] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes.sorted()
        }
    }

    @Test(arguments: CatalogBackend.allCases, Race.allCases)
    func ruleChangeAndLocationChangeNeverBothCommitIntoAViolation(
        _ backend: CatalogBackend, _ race: Race
    ) async throws {
        try await LiveCluster.with(backend) { cluster in
            try await cluster.makeGroup(organization: "acme", group: "eu", location: "fra")
            let catalog = cluster.catalog
            let admin = try #require(try await catalog.authenticate(secret: cluster.adminToken))
            let locations = try await catalog.locations()
            let (narrow, place) = race.changes
            for round in 0..<40 {
                let outcomes = await Self.race(
                    { try await narrow.apply(to: catalog, as: admin) },
                    { try await place.apply(to: catalog, as: admin) })
                // One after the other, whichever goes second is refused.
                #expect(outcomes == ["ok", "region_lock_violation"], "round \(round): \(outcomes)")

                // Every location of every group is allowed by the group's and the organization's rules.
                let organization = try await catalog.organization("acme", for: admin)
                let groups = try await catalog.groups(organization: "acme", for: admin)
                for group in groups {
                    for code in group.locations {
                        let location = try #require(locations.first { $0.code == code })
                        for rule in [group.regionRule, organization.regionRule].compactMap({ $0 }) {
                            #expect(
                                rule.allows(location: code, jurisdiction: location.jurisdiction),
                                "round \(round): group \(group.name) holds \(code), which \(rule.description) forbids")
                        }
                    }
                }

                // Back to the start: no rules, group eu in fra only, no group us.
                _ = try await catalog.updateOrganization("acme", regionRule: .some(nil), plan: nil, by: admin)
                _ = try await catalog.updateGroup(
                    organization: "acme", name: "eu", regionRule: .some(nil), deleteProtection: nil, by: admin)
                for code in groups.first(where: { $0.name == "eu" })?.locations ?? [] where code != "fra" {
                    _ = try await catalog.removeLocation(organization: "acme", group: "eu", location: code, by: admin)
                }
                if groups.contains(where: { $0.name == "us" }) {
                    let deleted = try await cluster.call("DELETE", "/v1/organizations/acme/groups/us")
                    try #require(deleted.status == 200, "\(deleted.text)")
                }
            }
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func locationQuotaHoldsUnderConcurrentAdds(_ backend: CatalogBackend) async throws {
        try await LiveCluster.with(backend) { cluster in
            let plan = try await cluster.call(
                "PUT", "/v1/plans/duo",
                json: ["databases": 10, "groups": 10, "locations_per_group": 2, "storage_bytes": 1_000_000])
            try #require(plan.status == 200, "\(plan.text)")
            try await cluster.makeGroup(organization: "small", group: "main", location: "fra", plan: "duo")
            let catalog = cluster.catalog
            let admin = try #require(try await catalog.authenticate(secret: cluster.adminToken))
            let candidates = ["ams", "cdg", "lhr", "arn", "waw", "mad", "iad", "ord"]
            for round in 0..<10 {
                // The group has one location; the plan allows one more, asked for 8 times at once.
                let outcomes = await withTaskGroup(of: String.self, returning: [String].self) { group in
                    for code in candidates {
                        group.addTask {
                            await Self.outcome {
                                _ = try await catalog.addLocation(
                                    organization: "small", group: "main", location: code, by: admin)
                            }
                        }
                    }
                    var outcomes: [String] = []
                    for await outcome in group { outcomes.append(outcome) }
                    return outcomes
                }
                #expect(outcomes.filter { $0 == "ok" }.count == 1, "round \(round): \(outcomes.sorted())")
                #expect(
                    outcomes.filter { $0 == "quota_exceeded" }.count == candidates.count - 1,
                    "round \(round): \(outcomes.sorted())")
                let group = try await catalog.group(organization: "small", name: "main", for: admin)
                #expect(group.locations.count == 2, "round \(round): \(group.locations)")
                for code in group.locations where code != "fra" {
                    _ = try await catalog.removeLocation(
                        organization: "small", group: "main", location: code, by: admin)
                }
            }
        }
    }
}
