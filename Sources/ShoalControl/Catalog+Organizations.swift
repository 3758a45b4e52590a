import Foundation
import ShoalModel

extension Catalog {
    // MARK: - Organizations

    /// Creates an organization (admin only).
    public func createOrganization(
        slug: String, plan: String, by principal: Principal
    ) async throws
        -> Platform.Organization
    {
        guard principal.isAdmin else { throw ControlError.forbidden("only an admin token can create organizations") }
        try Self.validateName(slug, "organization")
        return try await audited(organization: nil, actor: principal, action: "organization.create", target: slug) {
            transaction in
            _ = try await quotas(plan: plan, in: transaction)
            let id = Self.newID()
            do {
                try await transaction.query(
                    "INSERT INTO organizations (id, slug, plan, region_rule, created_at) VALUES ($1, $2, $3, NULL, $4)",
                    [.text(id), .text(slug), .text(plan), .integer(now())])
            } catch CatalogStoreError.uniqueViolation {
                throw ControlError.conflict("organization '\(slug)' already exists")
            }
            try await audit(
                transaction, organization: id, actor: principal, action: "organization.create", target: slug,
                detail: "organization \(slug) created on plan \(plan)")
            return Platform.Organization(slug: slug, plan: plan, regionRule: nil)
        }
    }

    /// The organizations `principal` may see.
    public func organizations(for principal: Principal) async throws -> [Platform.Organization] {
        try await read { transaction in
            let rows =
                if let organizationID = principal.organizationID {
                    try await transaction.query(
                        "SELECT slug, plan, region_rule FROM organizations WHERE id = $1", [.text(organizationID)])
                } else {
                    try await transaction.query("SELECT slug, plan, region_rule FROM organizations ORDER BY slug", [])
                }
            return try rows.map {
                Platform.Organization(
                    slug: try $0.text(0), plan: try $0.text(1), regionRule: Self.decodeRule(try $0.optionalText(2)))
            }
        }
    }

    /// One organization.
    public func organization(_ slug: String, for principal: Principal) async throws -> Platform.Organization {
        try await read { try await organization(slug, for: principal, in: $0).model }
    }

    /// Changes an organization's default region rule (`.some(nil)` removes it) and/or plan (admin
    /// only). A rule that a group's location would violate is refused.
    public func updateOrganization(
        _ slug: String, regionRule: Platform.RegionRule??, plan: String?, by principal: Principal
    ) async throws -> Platform.Organization {
        try await audited(organization: slug, actor: principal, action: "organization.update", target: slug) {
            transaction in
            let organization = try await lockedOrganization(slug, for: principal, in: transaction)
            var rule = organization.regionRule
            if let newRule = regionRule {
                try await validate(rule: newRule, in: transaction)
                let rows = try await transaction.query(
                    """
                    SELECT g.name, gl.location FROM db_groups g JOIN group_locations gl ON gl.group_id = g.id
                    WHERE g.org_id = $1 ORDER BY g.name, gl.location
                    """, [.text(organization.id)])
                for row in rows {
                    let location = try await location(try row.text(1), in: transaction)
                    do {
                        try requireAllowed(location: location, rules: [("new organization", newRule)])
                    } catch let error as ControlError {
                        throw ControlError.regionLockViolation(
                            "group \(try row.text(0)) holds data there: \(error.message); remove the location from the group first"
                        )
                    }
                }
                rule = newRule
            }
            var newPlan = organization.plan
            if let plan {
                guard principal.isAdmin else { throw ControlError.forbidden("only an admin token can change plans") }
                _ = try await quotas(plan: plan, in: transaction)
                newPlan = plan
            }
            try await transaction.query(
                "UPDATE organizations SET region_rule = $1, plan = $2 WHERE id = $3",
                [try Self.encode(rule), .text(newPlan), .text(organization.id)])
            // The nodes of its databases get the locations the new rule allows, until each confirms.
            // A new plan may keep backups for another time: sent by the retries, not this call.
            if regionRule != nil || newPlan != organization.plan {
                try await recordSettingsPushes(of: organization, claimed: regionRule != nil, in: transaction)
            }
            try await audit(
                transaction, organization: organization.id, actor: principal, action: "organization.update",
                target: slug, detail: "plan \(newPlan), region rule \(rule?.description ?? "none")")
            return Platform.Organization(slug: slug, plan: newPlan, regionRule: rule)
        }
    }

    // MARK: - Plans and usage

    /// Every plan with its quotas.
    public func plans() async throws -> [Platform.Plan] {
        try await read { transaction in
            try await transaction.query(
                "SELECT name, max_databases, max_groups, max_locations_per_group, max_storage_bytes, backup_retention_seconds FROM plans ORDER BY max_databases",
                []
            ).map {
                Platform.Plan(
                    name: try $0.text(0),
                    quotas: .init(
                        databases: try $0.integer(1), groups: try $0.integer(2), locationsPerGroup: try $0.integer(3),
                        storageBytes: try $0.integer(4), backupRetention: try $0.integer(5)))
            }
        }
    }

    /// Creates or changes a plan (admin only).
    public func savePlan(_ plan: Platform.Plan, by principal: Principal) async throws {
        guard principal.isAdmin else { throw ControlError.forbidden("only an admin token can edit plans") }
        try Self.validateName(plan.name, "plan")
        let quotas = plan.quotas
        guard quotas.databases >= 0, quotas.groups >= 0, quotas.locationsPerGroup >= 1, quotas.storageBytes >= 0 else {
            throw ControlError.unprocessable("quotas must not be negative and a group needs at least one location")
        }
        guard (3600...Platform.Quotas.maxBackupRetention).contains(quotas.backupRetention) else {
            throw ControlError.unprocessable(
                "backup_retention is in seconds, from 3600 (an hour) to \(Platform.Quotas.maxBackupRetention) (10 years)"
            )
        }
        try await audited(organization: nil, actor: principal, action: "plan.save", target: plan.name) {
            transaction in
            let values: [CatalogValue] = [
                .text(plan.name), .integer(quotas.databases), .integer(quotas.groups),
                .integer(quotas.locationsPerGroup),
                .integer(quotas.storageBytes), .integer(quotas.backupRetention),
            ]
            let retained = try await transaction.queryOne(
                "SELECT backup_retention_seconds FROM plans WHERE name = $1", [.text(plan.name)])
            let updated = try await transaction.query(
                """
                UPDATE plans SET max_databases = $2, max_groups = $3, max_locations_per_group = $4, max_storage_bytes = $5,
                    backup_retention_seconds = $6
                WHERE name = $1 RETURNING name
                """, values)
            if updated.isEmpty {
                try await transaction.query(
                    """
                    INSERT INTO plans (name, max_databases, max_groups, max_locations_per_group, max_storage_bytes,
                        backup_retention_seconds)
                    VALUES ($1, $2, $3, $4, $5, $6)
                    """,
                    values)
            }
            // The nodes of its databases get the new retention from the retries, until each confirms.
            if let retained, try retained.integer(0) != quotas.backupRetention {
                for row in try await transaction.query(
                    "SELECT id, slug, plan, region_rule FROM organizations WHERE plan = $1 ORDER BY slug",
                    [.text(plan.name)])
                {
                    let organization = OrganizationRecord(
                        id: try row.text(0), slug: try row.text(1), plan: try row.text(2),
                        regionRule: Self.decodeRule(try row.optionalText(3)))
                    try await recordSettingsPushes(of: organization, claimed: false, in: transaction)
                }
            }
            try await audit(
                transaction, organization: nil, actor: principal, action: "plan.save", target: plan.name,
                detail:
                    "plan \(plan.name): \(quotas.databases) databases, \(quotas.groups) groups, backups kept \(quotas.backupRetention) s"
            )
        }
    }

    /// An organization's usage and its plan's quotas.
    public func usage(
        organization slug: String, for principal: Principal
    ) async throws -> (
        Platform.Usage, Platform.Quotas
    ) {
        try await read { transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            let databases =
                try await transaction.queryOne(
                    "SELECT database_count FROM organizations WHERE id = $1", [.text(organization.id)])?.integer(0) ?? 0
            let stored =
                try await transaction.queryOne(
                    "SELECT CAST(COALESCE(SUM(stored_bytes), 0) AS BIGINT) FROM databases WHERE org_id = $1",
                    [.text(organization.id)]
                )?.integer(0) ?? 0
            let groups =
                try await transaction.queryOne(
                    "SELECT COUNT(*) FROM db_groups WHERE org_id = $1", [.text(organization.id)])?.integer(0) ?? 0
            return (
                Platform.Usage(databases: databases, groups: groups, storageBytes: stored),
                try await quotas(plan: organization.plan, in: transaction)
            )
        }
    }

    // MARK: - Locations

    /// Every location.
    public func locations() async throws -> [Platform.Location] {
        try await read { try await locationTable($0) }
    }

    /// One location.
    public func location(_ code: String) async throws -> Platform.Location {
        try await read { try await location(code, in: $0) }
    }

    /// Adds or renames a location (admin only).
    public func saveLocation(_ location: Platform.Location, by principal: Principal) async throws {
        guard principal.isAdmin else { throw ControlError.forbidden("only an admin token can edit locations") }
        try Self.validateName(location.code, "location")
        try Self.validateName(location.jurisdiction, "jurisdiction")
        try await audited(organization: nil, actor: principal, action: "location.save", target: location.code) {
            transaction in
            let values: [CatalogValue] = [.text(location.code), .text(location.name), .text(location.jurisdiction)]
            let updated = try await transaction.query(
                "UPDATE locations SET name = $2, jurisdiction = $3 WHERE code = $1 RETURNING code", values)
            if updated.isEmpty {
                try await transaction.query(
                    "INSERT INTO locations (code, name, jurisdiction) VALUES ($1, $2, $3)", values)
            }
            try await audit(
                transaction, organization: nil, actor: principal, action: "location.save", target: location.code,
                detail: "location \(location.code) in \(location.jurisdiction)")
        }
    }

    // MARK: - Audit log

    /// An organization's audit log, newest first, `limit` entries before the cursor (an entry id).
    public func auditLogs(
        organization slug: String, limit: Int, before cursor: Int64?, for principal: Principal
    )
        async throws -> [Platform.AuditLog]
    {
        try await read { transaction in
            let organization = try await organization(slug, for: principal, in: transaction)
            return try await transaction.query(
                """
                SELECT id, at, actor, action, target, outcome, detail FROM audit_logs
                WHERE org_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3
                """, [.text(organization.id), .integer(cursor ?? Int64.max), .integer(Int64(limit))]
            ).map {
                Platform.AuditLog(
                    id: try $0.integer(0), at: try $0.integer(1), actor: try $0.text(2), action: try $0.text(3),
                    target: try $0.text(4), outcome: try $0.text(5), detail: try $0.text(6))
            }
        }
    }
}
