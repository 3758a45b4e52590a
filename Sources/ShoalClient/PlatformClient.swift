import Foundation
import ShoalHTTP
import ShoalModel

/// A client of the control plane's Platform API (`/v1/…`), authenticated with an API token. Errors
/// carry the API's code (`region_lock_violation`, `quota_exceeded`, …) and message.
public struct PlatformClient: Sendable {
    /// The control plane's base URL.
    public let baseURL: URL
    let token: String

    /// A client of the control plane at `baseURL` using the API token `token`.
    public init(baseURL: URL, token: String) {
        self.baseURL = baseURL
        self.token = token
    }

    /// What the Platform API refused, with its code and message.
    public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The HTTP status.
        public let status: Int
        /// The API's error code.
        public let code: String
        /// The API's message.
        public let message: String

        /// `code: message`.
        public var description: String { "\(code): \(message)" }
    }

    // MARK: - Calls

    /// Sends a request and decodes the answer; API errors become `APIError`.
    public func call<T: Decodable>(
        _ method: String, _ path: String, query: [String: String] = [:], body: (any Encodable)? = nil,
        as type: T.Type
    ) async throws -> T {
        let data = try await send(method, path, query: query, body: body)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw ClientError(
                .protocolViolation, "the control plane's answer to \(method) \(path) is not what was expected")
        }
    }

    /// Sends a request and returns the answer's body as it came (for tools that print it).
    public func send(
        _ method: String, _ path: String, query: [String: String] = [:], body: (any Encodable)? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> Data {
        guard var components = URLComponents(url: baseURL.appendingPathComponent(path), resolvingAgainstBaseURL: false)
        else { throw ClientError(.protocolViolation, "cannot build a URL for \(path)") }
        if !query.isEmpty {
            components.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
        }
        guard let url = components.url else { throw ClientError(.protocolViolation, "cannot build a URL for \(path)") }
        let answer = try await OutboundHTTP.send(
            HTTPCall(
                method, url, bearer: token, body: try body.map { try WireJSON.encoder().encode($0) }, timeout: timeout))
        let status = answer.status
        let data = answer.body
        guard (200..<300).contains(status) else {
            if let error = try? JSONDecoder().decode(Platform.ErrorBody.self, from: data) {
                throw APIError(status: status, code: error.error.code, message: error.error.message)
            }
            throw APIError(
                status: status, code: "http_\(status)", message: String(decoding: data.prefix(300), as: UTF8.self))
        }
        return data
    }

    // MARK: - Databases

    struct DatabaseAnswer<T: Decodable>: Decodable { let database: T }
    struct InstancesAnswer: Decodable { let instances: [Platform.Instance] }
    struct TokenAnswer: Decodable { let jwt: String }

    /// Creates a database in `group` (or returns the existing one with `ifNotExists`).
    /// With `seed`, the database starts as a copy of another one (restored from its backup, which
    /// may take minutes for a large one).
    public func createDatabase(
        organization: String, name: String, group: String, ifNotExists: Bool = false,
        seed: Platform.DatabaseCreation.Seed? = nil
    )
        async throws -> Platform.CreatedDatabase
    {
        let data = try await send(
            "POST", "v1/organizations/\(organization)/databases",
            body: Platform.DatabaseCreation(name: name, group: group, seed: seed, ifNotExists: ifNotExists),
            timeout: seed == nil ? .seconds(30) : .seconds(900))
        do {
            return try JSONDecoder().decode(DatabaseAnswer<Platform.CreatedDatabase>.self, from: data).database
        } catch {
            throw ClientError(
                .protocolViolation, "the control plane's answer to creating \(name) is not what was expected")
        }
    }

    /// One database.
    public func database(organization: String, name: String) async throws -> Platform.Database {
        try await call(
            "GET", "v1/organizations/\(organization)/databases/\(name)", as: DatabaseAnswer<Platform.Database>.self
        ).database
    }

    /// Where a database is served.
    public func instances(organization: String, database: String) async throws -> [Platform.Instance] {
        try await call(
            "GET", "v1/organizations/\(organization)/databases/\(database)/instances", as: InstancesAnswer.self
        ).instances
    }

    /// Issues a database token: `expiration` like `2w`, `12h` or `never`; `location` names where its
    /// holder runs (refused with `region_lock_violation` when the database's rule forbids it).
    public func createToken(
        organization: String, database: String, expiration: String = "never", readOnly: Bool = false,
        location: String? = nil
    ) async throws -> String {
        try await issueToken(
            "v1/organizations/\(organization)/databases/\(database)/auth/tokens", expiration: expiration,
            readOnly: readOnly, location: location)
    }

    /// Issues a group token (valid for every database of the group) and returns the JWT.
    public func createGroupToken(
        organization: String, group: String, expiration: String = "never", readOnly: Bool = false,
        location: String? = nil
    ) async throws -> String {
        try await issueToken(
            "v1/organizations/\(organization)/groups/\(group)/auth/tokens", expiration: expiration,
            readOnly: readOnly, location: location)
    }

    private func issueToken(
        _ path: String, expiration: String, readOnly: Bool, location: String?
    ) async throws -> String {
        var query = ["expiration": expiration, "authorization": readOnly ? "read-only" : "full-access"]
        if let location { query["location"] = location }
        return try await call("POST", path, query: query, as: TokenAnswer.self).jwt
    }
}
