extension Platform {
    /// An organization's API token as the API lists it: never its secret.
    public struct APIToken: Codable, Sendable, Equatable {
        /// Its id (revoke it with `DELETE …/api-tokens/{id}`).
        public var id: String
        /// Its name, unique in the organization.
        public var name: String
        /// Milliseconds since 1970.
        public var createdAt: Int64
        /// When it stops working (milliseconds since 1970); nil if never.
        public var expiresAt: Int64?
        /// When it was last used (milliseconds since 1970, recorded at most once a minute); nil if never.
        public var lastUsedAt: Int64?
        /// Whether it may create and revoke the organization's API tokens.
        public var canCreateTokens: Bool
        /// The id of the API token that created it; nil when the admin token did.
        public var createdBy: String?

        enum CodingKeys: String, CodingKey {
            case id, name
            case createdAt = "created_at"
            case expiresAt = "expires_at"
            case lastUsedAt = "last_used_at"
            case canCreateTokens = "can_create_tokens"
            case createdBy = "created_by"
        }

        /// A value with every field.
        public init(
            id: String, name: String, createdAt: Int64, expiresAt: Int64?, lastUsedAt: Int64?, canCreateTokens: Bool,
            createdBy: String?
        ) {
            self.id = id
            self.name = name
            self.createdAt = createdAt
            self.expiresAt = expiresAt
            self.lastUsedAt = lastUsedAt
            self.canCreateTokens = canCreateTokens
            self.createdBy = createdBy
        }
    }

    /// The answer to `POST /v1/organizations/{org}/api-tokens`: the token with its secret, shown this once.
    public struct CreatedAPIToken: Codable, Sendable, Equatable {
        /// The token's name.
        public var name: String
        /// The secret (`shoal_` and 64 hex digits); only its SHA-256 is stored.
        public var token: String
        /// The token as `GET …/api-tokens` lists it.
        public var apiToken: APIToken

        enum CodingKeys: String, CodingKey {
            case name, token
            case apiToken = "api_token"
        }

        /// A value with every field.
        public init(name: String, token: String, apiToken: APIToken) {
            self.name = name
            self.token = token
            self.apiToken = apiToken
        }
    }
}
