import Foundation
import ShoalModel
import ShoalTime
import Synchronization

/// The built-in tenant resolver: a tenant is a database of one organization on the control plane.
/// It finds the database's primary URL, issues a token for the pool's location (so the control
/// plane's region rule decides whether this process may hold the tenant at all) and keeps tokens
/// fresh: a token near its expiry is replaced in the open replica, which is not reopened.
public final class ControlPlaneResolver: Sendable {
    /// How the resolver works.
    public struct Configuration: Sendable {
        /// The organization whose databases the tenants are.
        public var organization: String
        /// The location the application runs in (the tokens' `loc`); nil for none.
        public var location: String?
        /// How long issued tokens live (whole seconds; `nil` for tokens that never expire).
        public var tokenLifetime: Duration?
        /// Replace a token this long before it expires.
        public var refreshMargin: Duration
        /// Create a missing tenant's database in this group (signup on first use); nil to refuse.
        public var createInGroup: String?

        /// Tokens live an hour and are replaced five minutes before they expire.
        public init(
            organization: String, location: String? = nil, tokenLifetime: Duration? = .seconds(3600),
            refreshMargin: Duration = .seconds(300), createInGroup: String? = nil
        ) {
            self.organization = organization
            self.location = location
            self.tokenLifetime = tokenLifetime
            self.refreshMargin = refreshMargin
            self.createInGroup = createInGroup
        }
    }

    private struct Issued {
        let token: String
        /// When it expires (nil: never).
        let expires: Date?
    }

    let client: PlatformClient
    let configuration: Configuration
    let now: @Sendable () -> Date
    private let tokens = Mutex<[String: Issued]>([:])

    /// A resolver asking the control plane through `client`.
    public init(
        client: PlatformClient, configuration: Configuration, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.client = client
        self.configuration = configuration
        self.now = now
    }

    /// The endpoint of `tenant`: its primary's URL and a fresh token. A tenant the region rule keeps
    /// out of this location fails with `ClientError` `regionLocked`.
    public func endpoint(for tenant: String) async throws -> TenantEndpoint {
        let instances: [Platform.Instance]
        do {
            instances = try await client.instances(organization: configuration.organization, database: tenant)
        } catch let error as PlatformClient.APIError where error.status == 404 {
            guard let group = configuration.createInGroup else {
                throw ClientError(.notFound, "tenant \(tenant) has no database: \(error.message)")
            }
            _ = try await client.createDatabase(
                organization: configuration.organization, name: tenant, group: group, ifNotExists: true)
            instances = try await client.instances(organization: configuration.organization, database: tenant)
        }
        guard let primary = instances.first(where: { $0.type == "primary" }), let url = URL(string: primary.url) else {
            throw ClientError(.notFound, "tenant \(tenant) has no primary instance yet")
        }
        return TenantEndpoint(url: url, token: try await issue(for: tenant).token)
    }

    /// A new token for `tenant` if the one it holds is within the refresh margin of expiring (or
    /// past it); nil when the current one is still good.
    public func refreshedToken(for tenant: String) async throws -> String? {
        let current = tokens.withLock { $0[tenant] }
        if let current {
            guard let expires = current.expires else { return nil }
            let margin = configuration.refreshMargin.inSeconds
            if expires.timeIntervalSince(now()) > margin { return nil }
        }
        return try await issue(for: tenant).token
    }

    private func issue(for tenant: String) async throws -> Issued {
        let lifetime = configuration.tokenLifetime.map { max(1, $0.components.seconds) }
        let token: String
        do {
            token = try await client.createToken(
                organization: configuration.organization, database: tenant,
                expiration: lifetime.map { "\($0)s" } ?? "never", location: configuration.location)
        } catch let error as PlatformClient.APIError where error.code == "region_lock_violation" {
            throw ClientError(.forbidden, "tenant \(tenant) may not be opened here: \(error.message)")
        }
        // The token's own `exp` decides (the server rounds it down to whole seconds).
        let expires = Self.expiry(of: token) ?? lifetime.map { now().addingTimeInterval(Double($0)) }
        let issued = Issued(token: token, expires: expires)
        tokens.withLock { $0[tenant] = issued }
        return issued
    }

    /// The one claim of a JWT the resolver reads.
    private struct ExpiryClaim: Decodable {
        let exp: Double?
    }

    /// The `exp` claim of a JWT, if it has one.
    static func expiry(of token: String) -> Date? {
        let parts = token.split(separator: ".")
        guard parts.count == 3, let payload = Base64URL.decode(String(parts[1])),
            let exp = (try? JSONDecoder().decode(ExpiryClaim.self, from: Data(payload)))?.exp
        else { return nil }
        return Date(timeIntervalSince1970: exp)
    }

    /// Forgets a tenant's token (when the pool closes it).
    public func forget(_ tenant: String) {
        _ = tokens.withLock { $0.removeValue(forKey: tenant) }
    }
}
