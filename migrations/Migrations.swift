/// One catalog schema version: applied once, in order, in a transaction.
public struct CatalogMigration: Sendable {
    /// The version number (the `vNNNN` of the file name).
    public let version: Int
    /// The file's name, for the record and for messages.
    public let name: String
    /// The SQL, statements separated by `;`.
    public let sql: String
}

/// The catalog's migrations, embedded from this folder at build time.
public enum CatalogMigrations {
    /// The SQLite schema versions, in order.
    public static let sqlite: [CatalogMigration] = [
        CatalogMigration(
            version: 1, name: "v0001_initial.sqlite.sql",
            sql: String(decoding: PackageResources.v0001_initial_sqlite_sql, as: UTF8.self)),
        CatalogMigration(
            version: 2, name: "v0002_issued_tokens_and_operator_limits.sqlite.sql",
            sql: String(
                decoding: PackageResources.v0002_issued_tokens_and_operator_limits_sqlite_sql, as: UTF8.self)),
        CatalogMigration(
            version: 3, name: "v0003_deletions.sqlite.sql",
            sql: String(decoding: PackageResources.v0003_deletions_sqlite_sql, as: UTF8.self)),
        CatalogMigration(
            version: 4, name: "v0004_node_credentials.sqlite.sql",
            sql: String(decoding: PackageResources.v0004_node_credentials_sqlite_sql, as: UTF8.self)),
        CatalogMigration(
            version: 5, name: "v0005_api_tokens.sqlite.sql",
            sql: String(decoding: PackageResources.v0005_api_tokens_sqlite_sql, as: UTF8.self)),
        CatalogMigration(
            version: 6, name: "v0006_settings_pushes.sqlite.sql",
            sql: String(decoding: PackageResources.v0006_settings_pushes_sqlite_sql, as: UTF8.self)),
        CatalogMigration(
            version: 7, name: "v0007_storage_usage.sqlite.sql",
            sql: String(decoding: PackageResources.v0007_storage_usage_sqlite_sql, as: UTF8.self)),
        CatalogMigration(
            version: 8, name: "v0008_tenant_schemas.sqlite.sql",
            sql: String(decoding: PackageResources.v0008_tenant_schemas_sqlite_sql, as: UTF8.self)),
        CatalogMigration(
            version: 9, name: "v0009_backups.sqlite.sql",
            sql: String(decoding: PackageResources.v0009_backups_sqlite_sql, as: UTF8.self)),
    ]

    /// The PostgreSQL schema versions, in order.
    public static let postgresql: [CatalogMigration] = [
        CatalogMigration(
            version: 1, name: "v0001_initial.postgresql.sql",
            sql: String(decoding: PackageResources.v0001_initial_postgresql_sql, as: UTF8.self)),
        CatalogMigration(
            version: 2, name: "v0002_issued_tokens_and_operator_limits.postgresql.sql",
            sql: String(
                decoding: PackageResources.v0002_issued_tokens_and_operator_limits_postgresql_sql, as: UTF8.self)),
        CatalogMigration(
            version: 3, name: "v0003_deletions.postgresql.sql",
            sql: String(decoding: PackageResources.v0003_deletions_postgresql_sql, as: UTF8.self)),
        CatalogMigration(
            version: 4, name: "v0004_node_credentials.postgresql.sql",
            sql: String(decoding: PackageResources.v0004_node_credentials_postgresql_sql, as: UTF8.self)),
        CatalogMigration(
            version: 5, name: "v0005_api_tokens.postgresql.sql",
            sql: String(decoding: PackageResources.v0005_api_tokens_postgresql_sql, as: UTF8.self)),
        CatalogMigration(
            version: 6, name: "v0006_settings_pushes.postgresql.sql",
            sql: String(decoding: PackageResources.v0006_settings_pushes_postgresql_sql, as: UTF8.self)),
        CatalogMigration(
            version: 7, name: "v0007_storage_usage.postgresql.sql",
            sql: String(decoding: PackageResources.v0007_storage_usage_postgresql_sql, as: UTF8.self)),
        CatalogMigration(
            version: 8, name: "v0008_tenant_schemas.postgresql.sql",
            sql: String(decoding: PackageResources.v0008_tenant_schemas_postgresql_sql, as: UTF8.self)),
        CatalogMigration(
            version: 9, name: "v0009_backups.postgresql.sql",
            sql: String(decoding: PackageResources.v0009_backups_postgresql_sql, as: UTF8.self)),
    ]
}
