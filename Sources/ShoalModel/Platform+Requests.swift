extension Platform {
    /// `PUT /v1/locations/{code}` body: a location's display name and jurisdiction.
    public struct LocationDefinition: Codable, Sendable, Equatable {
        /// Its display name.
        public var name: String
        /// Its jurisdiction (`eu`).
        public var jurisdiction: String

        /// A body with every field.
        public init(name: String, jurisdiction: String) {
            self.name = name
            self.jurisdiction = jurisdiction
        }
    }

    /// `POST /v1/organizations` body.
    public struct OrganizationCreation: Codable, Sendable, Equatable {
        /// The new organization's slug.
        public var slug: String
        /// Its plan's name (`free` if nil).
        public var plan: String?

        /// A body with every field.
        public init(slug: String, plan: String? = nil) {
            self.slug = slug
            self.plan = plan
        }
    }

    /// `POST /v1/organizations/{org}/api-tokens` body.
    public struct APITokenCreation: Codable, Sendable, Equatable {
        /// The token's name (the actor in audit logs).
        public var name: String
        /// How long it lives: `never`, or a number with `s`, `m`, `h`, `d` or `w` (`90d`); nil for the
        /// default (never for the admin token, the creating token's own expiry for an organization's).
        public var expiration: String?
        /// Whether it may create and revoke the organization's API tokens (only the admin token grants it).
        public var canCreateTokens: Bool?

        enum CodingKeys: String, CodingKey {
            case name, expiration
            case canCreateTokens = "can_create_tokens"
        }

        /// A body with every field.
        public init(name: String, expiration: String? = nil, canCreateTokens: Bool? = nil) {
            self.name = name
            self.expiration = expiration
            self.canCreateTokens = canCreateTokens
        }
    }

    /// `POST …/auth/tokens/revoke` body (organization, group or database).
    public struct TokenRevocation: Codable, Sendable, Equatable {
        /// The id (`jti`) of the token to revoke.
        public var jti: String

        /// A body with every field.
        public init(jti: String) {
            self.jti = jti
        }
    }

    /// `PATCH /v1/organizations/{org}` and `PATCH …/groups/{group}` body, which may set or clear a
    /// region rule: `{"region_rule": null}` clears it, an absent key leaves it.
    public struct RulePatch: Codable, Sendable, Equatable {
        /// nil: leave the rule; `.some(nil)`: clear it; `.some(rule)`: set it.
        public var regionRule: RegionRule??
        /// A group's delete protection, or nil to leave it.
        public var deleteProtection: Bool?
        /// An organization's new plan, or nil to leave it.
        public var plan: String?

        enum CodingKeys: String, CodingKey {
            case regionRule = "region_rule"
            case deleteProtection = "delete_protection"
            case plan
        }

        /// A patch (nil fields are left as they are).
        public init(regionRule: RegionRule?? = nil, deleteProtection: Bool? = nil, plan: String? = nil) {
            self.regionRule = regionRule
            self.deleteProtection = deleteProtection
            self.plan = plan
        }

        /// Decodes a patch, telling an explicit `region_rule: null` from an absent key.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if container.contains(.regionRule) {
                regionRule = .some(
                    try container.decodeNil(forKey: .regionRule)
                        ? nil : try container.decode(RegionRule.self, forKey: .regionRule))
            } else {
                regionRule = nil
            }
            deleteProtection = try container.decodeIfPresent(Bool.self, forKey: .deleteProtection)
            plan = try container.decodeIfPresent(String.self, forKey: .plan)
        }

        /// Encodes `region_rule` as null to clear it and leaves it out to keep it.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch regionRule {
            case .none: break
            case .some(.none): try container.encodeNil(forKey: .regionRule)
            case .some(.some(let rule)): try container.encode(rule, forKey: .regionRule)
            }
            try container.encodeIfPresent(deleteProtection, forKey: .deleteProtection)
            try container.encodeIfPresent(plan, forKey: .plan)
        }
    }

    /// `POST /v1/organizations/{org}/groups` body.
    public struct GroupCreation: Codable, Sendable, Equatable {
        /// The group's name.
        public var name: String
        /// Its primary location.
        public var location: String
        /// Its own rule, if any.
        public var regionRule: RegionRule?

        enum CodingKeys: String, CodingKey {
            case name, location
            case regionRule = "region_rule"
        }

        /// A body with every field.
        public init(name: String, location: String, regionRule: RegionRule? = nil) {
            self.name = name
            self.location = location
            self.regionRule = regionRule
        }
    }

    /// `POST /v1/organizations/{org}/databases` body.
    public struct DatabaseCreation: Codable, Sendable, Equatable {
        /// Where a new database's first content comes from: `{"type": "database", "name": SRC,
        /// "timestamp": T}` restores database SRC's backup as of T (RFC 3339; absent: its newest).
        public struct Seed: Codable, Sendable, Equatable {
            /// The kind of seed (`database` is the one there is).
            public var type: String?
            /// The database to copy, in the same organization.
            public var name: String?
            /// The time to copy it as of.
            public var timestamp: String?

            /// A seed of `type`.
            public init(type: String?, name: String? = nil, timestamp: String? = nil) {
                self.type = type
                self.name = name
                self.timestamp = timestamp
            }
        }

        /// The database's name.
        public var name: String
        /// The group it joins.
        public var group: String
        /// Where its first content comes from, if anywhere.
        public var seed: Seed?
        /// Answer with the existing database instead of a conflict.
        public var ifNotExists: Bool?

        enum CodingKeys: String, CodingKey {
            case name, group, seed
            case ifNotExists = "if_not_exists"
        }

        /// A body with every field.
        public init(name: String, group: String, seed: Seed? = nil, ifNotExists: Bool? = nil) {
            self.name = name
            self.group = group
            self.seed = seed
            self.ifNotExists = ifNotExists
        }
    }
}
