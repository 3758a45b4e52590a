import Hummingbird

extension Node {
    /// Creating and deleting databases (for the control plane, and standalone use).
    func addAdminRoutes(_ routes: RouterGroup<BasicRequestContext>) {
        routes.post("create") { request, context in
            try self.authorizeAdmin(request)
            let namespace = try Self.adminNamespace(context)
            try await self.store.create(namespace)
            return try Self.json(["created": namespace.description])
        }
        routes.delete("") { request, context in
            try self.authorizeAdmin(request)
            let namespace = try Self.adminNamespace(context)
            try await self.store.delete(namespace)
            return try Self.json(["deleted": namespace.description])
        }
    }

    static func adminNamespace(_ context: BasicRequestContext) throws -> Namespace {
        try Namespace(
            organization: context.parameters.get("org") ?? "", database: context.parameters.get("database") ?? "")
    }
}
