import Foundation
import HTTPTypes
import Hummingbird
import ShoalModel
import ShoalServerKit

extension ControlPlane {
    /// Locations are public data (anyone may read them, `publicRoutes`); only the admin edits them.
    func addLocationRoutes(public routes: RouterGroup<ServerRequestContext>, secured: RouterGroup<ServerRequestContext>)
    {
        routes.get("") { _, _ in
            let locations = try await self.catalog.locations()
            return try Self.json(["locations": Dictionary(uniqueKeysWithValues: locations.map { ($0.code, $0.name) })])
        }
        routes.get(":code") { _, context in
            try Self.json(["location": try await self.catalog.location(try Self.parameter(context, "code"))])
        }
        secured.put(":code") { request, context in
            let principal = try await self.principal(context)
            let body = try await self.decode(Platform.LocationDefinition.self, from: request)
            let location = Platform.Location(
                code: try Self.parameter(context, "code"), name: body.name, jurisdiction: body.jurisdiction)
            try await self.catalog.saveLocation(location, by: principal)
            return try Self.json(["location": location])
        }
    }

    /// Plans are public data (anyone may read them, `publicRoutes`); only the admin edits them.
    func addPlanRoutes(public routes: RouterGroup<ServerRequestContext>, secured: RouterGroup<ServerRequestContext>) {
        routes.get("") { _, _ in try Self.json(["plans": try await self.catalog.plans()]) }
        secured.put(":plan") { request, context in
            let principal = try await self.principal(context)
            let quotas = try await self.decode(Platform.Quotas.self, from: request)
            let plan = Platform.Plan(name: try Self.parameter(context, "plan"), quotas: quotas)
            try await self.catalog.savePlan(plan, by: principal)
            return try Self.json(["plan": plan])
        }
    }

    // The node routes (`v1/nodes`) are in `ControlPlane+Nodes.swift`.

    func addOrganizationRoutes(_ routes: RouterGroup<ServerRequestContext>) {
        routes.post("") { request, context in
            let principal = try await self.principal(context)
            let body = try await self.decode(Platform.OrganizationCreation.self, from: request)
            let organization = try await self.catalog.createOrganization(
                slug: body.slug, plan: body.plan ?? "free", by: principal)
            return try Self.json(["organization": organization])
        }
        routes.get("") { request, context in
            try Self.json([
                "organizations": try await self.catalog.organizations(for: try await self.principal(context))
            ])
        }
        routes.get(":org") { request, context in
            let principal = try await self.principal(context)
            return try Self.json(
                [
                    "organization": try await self.catalog.organization(
                        try Self.parameter(context, "org"), for: principal)
                ])
        }
        routes.patch(":org") { request, context in
            let principal = try await self.principal(context)
            let patch = try await self.decode(Platform.RulePatch.self, from: request)
            let slug = try Self.parameter(context, "org")
            let organization = try await self.catalog.updateOrganization(
                slug, regionRule: patch.regionRule, plan: patch.plan, by: principal)
            if patch.regionRule != nil {
                // Pushes recorded with the change; what a node does not confirm now is sent again.
                let databases = try await self.catalog.databaseRecords(organization: slug, group: nil, for: principal)
                await self.deliverSettingsPushes(of: databases.map(\.id))
            }
            return try Self.json(["organization": organization])
        }
        routes.get(":org/plans") { request, context in
            _ = try await self.catalog.organization(
                try Self.parameter(context, "org"), for: try await self.principal(context))
            return try Self.json(["plans": try await self.catalog.plans()])
        }
        routes.get(":org/usage") { request, context in
            let slug = try Self.parameter(context, "org")
            let (usage, quotas) = try await self.catalog.usage(
                organization: slug, for: try await self.principal(context))
            struct Answer: Encodable {
                let organization: String
                let usage: Platform.Usage
                let quotas: Platform.Quotas
            }
            return try Self.json(Answer(organization: slug, usage: usage, quotas: quotas))
        }
        routes.get(":org/audit-logs") { request, context in
            let principal = try await self.principal(context)
            let limit = try Self.limit(request, default: 50)
            var cursor: Int64?
            if let text = request.uri.queryParameters.get("cursor") {
                guard let value = Int64(text) else { throw ControlError.badRequest("cursor must be an audit log id") }
                cursor = value
            }
            let logs = try await self.catalog.auditLogs(
                organization: try Self.parameter(context, "org"), limit: limit, before: cursor, for: principal)
            struct Answer: Encodable {
                let auditLogs: [Platform.AuditLog]
                let nextCursor: String?

                enum CodingKeys: String, CodingKey {
                    case auditLogs = "audit_logs"
                    case nextCursor = "next_cursor"
                }
            }
            return try Self.json(
                Answer(auditLogs: logs, nextCursor: logs.count == limit ? logs.last.map { String($0.id) } : nil))
        }
        routes.post(":org/api-tokens") { request, context in
            let principal = try await self.principal(context)
            let body = try await self.decode(Platform.APITokenCreation.self, from: request)
            // Absent: the default expiry; `never`: none.
            let expiresIn: Duration?? = try body.expiration.map { try Catalog.parseExpiration($0) }
            let (token, secret) = try await self.catalog.createAPIToken(
                organization: try Self.parameter(context, "org"), name: body.name, expiresIn: expiresIn,
                canCreateTokens: body.canCreateTokens ?? false, by: principal)
            return try Self.json(Platform.CreatedAPIToken(name: body.name, token: secret, apiToken: token))
        }
        routes.get(":org/api-tokens") { request, context in
            let principal = try await self.principal(context)
            return try Self.json([
                "api_tokens": try await self.catalog.apiTokens(
                    organization: try Self.parameter(context, "org"), for: principal)
            ])
        }
        routes.delete(":org/api-tokens/:id") { request, context in
            let principal = try await self.principal(context)
            let revoked = try await self.catalog.revokeAPIToken(
                organization: try Self.parameter(context, "org"), id: try Self.parameter(context, "id"), by: principal)
            return try Self.json(["revoked": revoked])
        }
        routes.post(":org/auth/tokens/revoke") { request, context in
            try await self.revoke(request, context)
        }
    }

    func revoke(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let principal = try await principal(context)
        let body = try await decode(Platform.TokenRevocation.self, from: request)
        try await catalog.revoke(organization: try Self.parameter(context, "org"), jti: body.jti, by: principal)
        await pushPolicy()
        return try Self.json(["revoked": body.jti])
    }

    func addGroupRoutes(_ routes: RouterGroup<ServerRequestContext>) {
        routes.post("") { request, context in
            let principal = try await self.principal(context)
            let body = try await self.decode(Platform.GroupCreation.self, from: request)
            let group = try await self.catalog.createGroup(
                organization: try Self.parameter(context, "org"), name: body.name, location: body.location,
                regionRule: body.regionRule, by: principal)
            return try Self.json(["group": group])
        }
        routes.get("") { request, context in
            try Self.json([
                "groups": try await self.catalog.groups(
                    organization: try Self.parameter(context, "org"), for: try await self.principal(context))
            ])
        }
        routes.get(":group") { request, context in
            try Self.json([
                "group": try await self.catalog.group(
                    organization: try Self.parameter(context, "org"), name: try Self.parameter(context, "group"),
                    for: try await self.principal(context))
            ])
        }
        routes.patch(":group") { request, context in
            let principal = try await self.principal(context)
            let patch = try await self.decode(Platform.RulePatch.self, from: request)
            let slug = try Self.parameter(context, "org")
            let name = try Self.parameter(context, "group")
            let group = try await self.catalog.updateGroup(
                organization: slug, name: name, regionRule: patch.regionRule,
                deleteProtection: patch.deleteProtection, by: principal)
            if patch.regionRule != nil {
                // Pushes recorded with the change; what a node does not confirm now is sent again.
                let databases = try await self.catalog.databaseRecords(organization: slug, group: name, for: principal)
                await self.deliverSettingsPushes(of: databases.map(\.id))
            }
            return try Self.json(["group": group])
        }
        routes.delete(":group") { request, context in
            let principal = try await self.principal(context)
            let name = try Self.parameter(context, "group")
            let databases = try await self.catalog.deleteGroup(
                organization: try Self.parameter(context, "org"), name: name, by: principal)
            await self.deliverDeletions(of: databases)
            return try Self.json(["deleted": name])
        }
        routes.post(":group/locations/:location") { request, context in
            let principal = try await self.principal(context)
            let group = try await self.catalog.addLocation(
                organization: try Self.parameter(context, "org"), group: try Self.parameter(context, "group"),
                location: try Self.parameter(context, "location"), by: principal)
            return try Self.json(["group": group])
        }
        routes.delete(":group/locations/:location") { request, context in
            let principal = try await self.principal(context)
            let group = try await self.catalog.removeLocation(
                organization: try Self.parameter(context, "org"), group: try Self.parameter(context, "group"),
                location: try Self.parameter(context, "location"), by: principal)
            return try Self.json(["group": group])
        }
        routes.post(":group/auth/tokens") { request, context in
            try await self.issueToken(request, context, target: .group(try Self.parameter(context, "group")))
        }
        routes.post(":group/auth/tokens/revoke") { request, context in try await self.revoke(request, context) }
        routes.post(":group/auth/rotate") { request, context in
            let principal = try await self.principal(context)
            try await self.catalog.rotateTokens(
                organization: try Self.parameter(context, "org"), target: .group(try Self.parameter(context, "group")),
                by: principal)
            await self.pushPolicy()
            return try Self.json(["rotated": true])
        }
    }

    func issueToken(
        _ request: Request, _ context: ServerRequestContext, target: Catalog.TokenTarget
    ) async throws
        -> Response
    {
        let principal = try await principal(context)
        let query = request.uri.queryParameters
        let expiration = try Catalog.parseExpiration(query.get("expiration"))
        let readOnly: Bool
        switch query.get("authorization") ?? "full-access" {
        case "full-access": readOnly = false
        case "read-only": readOnly = true
        case let other:
            throw ControlError.badRequest(
                "authorization '\(other.prefix(20))' is not valid: use full-access or read-only")
        }
        let token = try await catalog.issueToken(
            organization: try Self.parameter(context, "org"), target: target, expiresIn: expiration,
            readOnly: readOnly, location: query.get("location"), by: principal)
        return try Self.json(["jwt": token])
    }

    func addDatabaseRoutes(_ routes: RouterGroup<ServerRequestContext>) {
        routes.post("") { request, context in
            let principal = try await self.principal(context)
            let body = try await self.decode(Platform.DatabaseCreation.self, from: request)
            let organization = try Self.parameter(context, "org")
            // A seed is checked before anything is created.
            let source = try await body.seed.asyncMap { seed in
                try await self.seedSource(seed, organization: organization, group: body.group, principal: principal)
            }
            let (database, created) = try await self.catalog.createDatabase(
                organization: organization, name: body.name, group: body.group,
                ifNotExists: (body.ifNotExists ?? false) && source == nil, by: principal)
            if created, self.eagerPlacement || source != nil, let node = database.primaryNode {
                do {
                    try await self.nodes.create(
                        database.namespace, settings: try await self.settings(for: database), on: node)
                } catch {
                    try? await self.catalog.undoCreation(database)
                    throw error
                }
            }
            if created, let source {
                try await self.seed(database, from: source, timestamp: body.seed?.timestamp, principal: principal)
            }
            return try Self.json([
                "database": Platform.CreatedDatabase(
                    id: database.id, hostname: self.catalog.hostname(database), name: database.name)
            ])
        }
        routes.get("") { request, context in
            let principal = try await self.principal(context)
            let query = request.uri.queryParameters
            let (databases, next) = try await self.catalog.databases(
                organization: try Self.parameter(context, "org"), group: query.get("group"),
                limit: try Self.limit(request), after: query.get("cursor"), for: principal)
            struct Answer: Encodable {
                let databases: [Platform.Database]
                let nextCursor: String?

                enum CodingKeys: String, CodingKey {
                    case databases
                    case nextCursor = "next_cursor"
                }
            }
            return try Self.json(Answer(databases: databases, nextCursor: next))
        }
        routes.get(":db") { request, context in
            try Self.json([
                "database": try await self.catalog.databaseModel(
                    organization: try Self.parameter(context, "org"), name: try Self.parameter(context, "db"),
                    for: try await self.principal(context))
            ])
        }
        routes.delete(":db") { request, context in
            let principal = try await self.principal(context)
            let database = try await self.catalog.deleteDatabase(
                organization: try Self.parameter(context, "org"), name: try Self.parameter(context, "db"), by: principal
            )
            await self.deliverDeletions(of: [database])
            return try Self.json(["database": database.name])
        }
        routes.get(":db/configuration") { request, context in
            let database = try await self.catalog.database(
                organization: try Self.parameter(context, "org"), name: try Self.parameter(context, "db"),
                for: try await self.principal(context))
            return try Self.json(
                ConfigurationAnswer(
                    self.catalog.configuration(of: database),
                    pending: try await self.catalog.pendingSettingsNodes(of: database.id)))
        }
        routes.patch(":db/configuration") { request, context in
            let principal = try await self.principal(context)
            let patch = try await self.decode(Platform.DatabaseConfiguration.self, from: request)
            let database = try await self.catalog.updateConfiguration(
                organization: try Self.parameter(context, "org"), name: try Self.parameter(context, "db"),
                patch: patch, by: principal)
            // Committed with a pending push per node: sent now, and what a node does not confirm is
            // sent again until it does. The answer says which nodes have not confirmed yet (202).
            await self.deliverSettingsPushes(of: [database.id])
            let pending = try await self.catalog.pendingSettingsNodes(of: database.id)
            return try Self.json(
                ConfigurationAnswer(self.catalog.configuration(of: database), pending: pending),
                status: pending.isEmpty ? .ok : .accepted)
        }
        routes.get(":db/instances") { request, context in
            let database = try await self.catalog.database(
                organization: try Self.parameter(context, "org"), name: try Self.parameter(context, "db"),
                for: try await self.principal(context))
            return try Self.json(["instances": try await self.catalog.instances(of: database)])
        }
        routes.post(":db/auth/tokens") { request, context in
            try await self.issueToken(request, context, target: .database(try Self.parameter(context, "db")))
        }
        routes.post(":db/auth/tokens/revoke") { request, context in try await self.revoke(request, context) }
        routes.post(":db/auth/rotate") { request, context in
            let principal = try await self.principal(context)
            try await self.catalog.rotateTokens(
                organization: try Self.parameter(context, "org"), target: .database(try Self.parameter(context, "db")),
                by: principal)
            await self.pushPolicy()
            return try Self.json(["rotated": true])
        }
    }
}
