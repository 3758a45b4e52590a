import Foundation
import ShoalModel

extension Catalog {
    func group(
        _ name: String, of organization: OrganizationRecord, in transaction: any CatalogTransaction
    ) async throws -> GroupRecord {
        guard
            let row = try await transaction.queryOne(
                "SELECT id, name, primary_location, region_rule, delete_protection FROM db_groups WHERE org_id = $1 AND name = $2",
                [.text(organization.id), .text(name)])
        else {
            throw ControlError.notFound(
                "group '\(name.prefix(64))' does not exist in organization \(organization.slug)")
        }
        return try await groupRecord(row, organization: organization, in: transaction)
    }

    func groupRecord(
        _ row: CatalogRow, organization: OrganizationRecord, in transaction: any CatalogTransaction
    ) async throws -> GroupRecord {
        let id = try row.text(0)
        let primary = try row.text(2)
        let others = try await transaction.query(
            "SELECT location FROM group_locations WHERE group_id = $1 ORDER BY location", [.text(id)]
        ).map { try $0.text(0) }.filter { $0 != primary }
        return GroupRecord(
            id: id, organization: organization, name: try row.text(1), primary: primary, locations: [primary] + others,
            regionRule: Self.decodeRule(try row.optionalText(3)), deleteProtection: try row.flag(4))
    }

    /// Creates a group with its primary location, checked against the group's and the
    /// organization's region rules and the plan's group quota.
    public func createGroup(
        organization slug: String, name: String, location code: String, regionRule: Platform.RegionRule?,
        by principal: Principal
    ) async throws -> Platform.Group {
        try Self.validateName(name, "group")
        return try await audited(
            organization: slug, actor: principal, action: "group.create", target: "\(slug)/\(name)"
        ) { transaction in
            let organization = try await lockedOrganization(slug, for: principal, in: transaction)
            try await validate(rule: regionRule, in: transaction)
            let location = try await location(code, in: transaction)
            try requireAllowed(
                location: location, rules: [("group's", regionRule), ("organization's", organization.regionRule)])
            let quotas = try await quotas(plan: organization.plan, in: transaction)
            let count =
                try await transaction.queryOne(
                    "SELECT COUNT(*) FROM db_groups WHERE org_id = $1", [.text(organization.id)])?.integer(0) ?? 0
            guard count < quotas.groups else {
                throw ControlError.quotaExceeded(
                    "the \(organization.plan) plan allows \(quotas.groups) groups (quota 'groups'); delete a group or change plan"
                )
            }
            let id = Self.newID()
            do {
                try await transaction.query(
                    """
                    INSERT INTO db_groups (id, org_id, name, primary_location, region_rule, delete_protection, tokens_not_before, created_at)
                    VALUES ($1, $2, $3, $4, $5, 0, 0, $6)
                    """,
                    [
                        .text(id), .text(organization.id), .text(name), .text(code), try Self.encode(regionRule),
                        .integer(now()),
                    ])
            } catch CatalogStoreError.uniqueViolation {
                throw ControlError.conflict("group '\(name)' already exists in organization \(slug)")
            }
            try await transaction.query(
                "INSERT INTO group_locations (group_id, location) VALUES ($1, $2)", [.text(id), .text(code)])
            try await audit(
                transaction, organization: organization.id, actor: principal, action: "group.create",
                target: "\(slug)/\(name)", detail: "group \(name) created in \(code)")
            return Platform.Group(
                name: name, uuid: id, locations: [code], primary: code, regionRule: regionRule, deleteProtection: false)
        }
    }

    /// The groups of an organization.
    public func groups(organization slug: String, for principal: Principal) async throws -> [Platform.Group] {
        try await read { transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            var groups: [Platform.Group] = []
            for row in try await transaction.query(
                "SELECT id, name, primary_location, region_rule, delete_protection FROM db_groups WHERE org_id = $1 ORDER BY name",
                [.text(organization.id)])
            {
                groups.append(try await groupRecord(row, organization: organization, in: transaction).model)
            }
            return groups
        }
    }

    /// One group.
    public func group(
        organization slug: String, name: String, for principal: Principal
    ) async throws
        -> Platform.Group
    {
        try await read { transaction in
            try await group(name, of: try await organization(slug, for: principal, in: transaction), in: transaction)
                .model
        }
    }

    /// Changes a group's region rule (`.some(nil)` removes it) or delete protection. A rule one of
    /// the group's locations would violate is refused; the check runs under the organization's lock,
    /// so a concurrent location add cannot slip past it.
    public func updateGroup(
        organization slug: String, name: String, regionRule: Platform.RegionRule??, deleteProtection: Bool?,
        by principal: Principal
    ) async throws -> Platform.Group {
        try await audited(organization: slug, actor: principal, action: "group.update", target: "\(slug)/\(name)") {
            transaction in
            let organization = try await lockedOrganization(slug, for: principal, in: transaction)
            let group = try await group(name, of: organization, in: transaction)
            var rule = group.regionRule
            if let newRule = regionRule {
                try await validate(rule: newRule, in: transaction)
                for code in group.locations {
                    let location = try await location(code, in: transaction)
                    do {
                        try requireAllowed(location: location, rules: [("new group", newRule)])
                    } catch let error as ControlError {
                        throw ControlError.regionLockViolation(
                            "the group's databases live there: \(error.message); remove the location from the group first"
                        )
                    }
                }
                rule = newRule
            }
            let protection = deleteProtection ?? group.deleteProtection
            try await transaction.query(
                "UPDATE db_groups SET region_rule = $1, delete_protection = $2 WHERE id = $3",
                [try Self.encode(rule), .integer(protection ? 1 : 0), .text(group.id)])
            // The nodes of its databases get the locations the new rule allows, until each confirms.
            if regionRule != nil { try await recordSettingsPushes(of: group, in: transaction) }
            try await audit(
                transaction, organization: organization.id, actor: principal, action: "group.update",
                target: group.scope,
                detail: "region rule \(rule?.description ?? "none"), delete protection \(protection)")
            return Platform.Group(
                name: group.name, uuid: group.id, locations: group.locations, primary: group.primary, regionRule: rule,
                deleteProtection: protection)
        }
    }

    /// Deletes a group and its databases; refused while the group or one of its databases is
    /// delete-protected. Returns the deleted databases (their nodes are told after the commit).
    func deleteGroup(
        organization slug: String, name: String, by principal: Principal
    ) async throws
        -> [DatabaseRecord]
    {
        try await audited(organization: slug, actor: principal, action: "group.delete", target: "\(slug)/\(name)") {
            transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            let group = try await group(name, of: organization, in: transaction)
            guard !group.deleteProtection else {
                throw ControlError.deleteProtected(
                    "group \(name) has delete protection on; turn it off with PATCH …/groups/\(name) {\"delete_protection\": false}"
                )
            }
            let databases = try await databases(of: group, in: transaction)
            if let protected = databases.first(where: \.deleteProtection) {
                throw ControlError.deleteProtected(
                    "database \(protected.name) in group \(name) has delete protection on; turn it off first")
            }
            for database in databases {
                try await removeDatabaseRow(database, in: transaction)
            }
            try await transaction.query("DELETE FROM group_locations WHERE group_id = $1", [.text(group.id)])
            try await transaction.query("DELETE FROM db_groups WHERE id = $1", [.text(group.id)])
            try await audit(
                transaction, organization: organization.id, actor: principal, action: "group.delete",
                target: group.scope, detail: "group \(name) deleted with \(databases.count) databases")
            return databases
        }
    }

    /// Adds a location to a group, checked against both rules and the plan's location quota under the
    /// organization's lock, so concurrent rule changes and adds cannot break either.
    public func addLocation(
        organization slug: String, group name: String, location code: String, by principal: Principal
    )
        async throws -> Platform.Group
    {
        try await audited(
            organization: slug, actor: principal, action: "group.location.add", target: "\(slug)/\(name)/\(code)"
        ) { transaction in
            let organization = try await lockedOrganization(slug, for: principal, in: transaction)
            let group = try await group(name, of: organization, in: transaction)
            let location = try await location(code, in: transaction)
            try requireAllowed(
                location: location, rules: [("group's", group.regionRule), ("organization's", organization.regionRule)])
            guard !group.locations.contains(code) else {
                throw ControlError.conflict("group \(name) already has location \(code)")
            }
            let quotas = try await quotas(plan: organization.plan, in: transaction)
            guard Int64(group.locations.count) < quotas.locationsPerGroup else {
                throw ControlError.quotaExceeded(
                    "the \(organization.plan) plan allows \(quotas.locationsPerGroup) locations per group (quota 'locations_per_group')"
                )
            }
            try await transaction.query(
                "INSERT INTO group_locations (group_id, location) VALUES ($1, $2)", [.text(group.id), .text(code)])
            try await audit(
                transaction, organization: organization.id, actor: principal, action: "group.location.add",
                target: group.scope, detail: "location \(code) added")
            return Platform.Group(
                name: group.name, uuid: group.id, locations: group.locations + [code], primary: group.primary,
                regionRule: group.regionRule, deleteProtection: group.deleteProtection)
        }
    }

    /// Removes a replica location from a group (never the primary).
    public func removeLocation(
        organization slug: String, group name: String, location code: String, by principal: Principal
    ) async throws -> Platform.Group {
        try await audited(
            organization: slug, actor: principal, action: "group.location.remove", target: "\(slug)/\(name)/\(code)"
        ) { transaction in
            let organization = try await lockedOrganization(slug, for: principal, in: transaction)
            let group = try await group(name, of: organization, in: transaction)
            guard group.locations.contains(code) else {
                throw ControlError.notFound("group \(name) has no location \(code)")
            }
            guard code != group.primary else {
                throw ControlError.unprocessable(
                    "\(code) is the group's primary location and cannot be removed; delete the group instead")
            }
            try await transaction.query(
                "DELETE FROM group_locations WHERE group_id = $1 AND location = $2", [.text(group.id), .text(code)])
            try await audit(
                transaction, organization: organization.id, actor: principal, action: "group.location.remove",
                target: group.scope, detail: "location \(code) removed")
            return Platform.Group(
                name: group.name, uuid: group.id, locations: group.locations.filter { $0 != code },
                primary: group.primary, regionRule: group.regionRule, deleteProtection: group.deleteProtection)
        }
    }
}
