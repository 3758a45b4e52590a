import Foundation
import ShoalControl
import ShoalMigrations
import ShoalTestSupport
import Testing

/// Migrations and the API document stay in step with the code.
@Suite("Catalog schema and API document", .timeLimit(.minutes(5)))
struct CatalogSchemaTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test(arguments: [("sqlite", CatalogMigrations.sqlite), ("postgresql", CatalogMigrations.postgresql)])
    func everyMigrationFileIsEmbeddedInOrder(_ backend: String, _ migrations: [CatalogMigration]) throws {
        let folder = Self.root.appendingPathComponent("migrations/\(backend)").path
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files == migrations.map(\.name))
        #expect(migrations.map(\.version) == Array(1...migrations.count))
        for migration in migrations {
            let text = try String(contentsOfFile: folder + "/" + migration.name, encoding: .utf8)
            #expect(text == migration.sql)
        }
    }

    @Test(arguments: CatalogBackend.allCases)
    func migratingTwiceChangesNothing(_ backend: CatalogBackend) async throws {
        let scratch = try TemporaryDirectory()
        let directory = scratch.path
        defer { withExtendedLifetime(scratch) {} }
        let schema = "m_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12)
        let store = try backend.makeStore(directory: directory, schema: String(schema))
        try await store.whileRunning {
            try await store.migrate()
            try await store.migrate()
            let versions = try await store.transaction { transaction in
                try await transaction.query("SELECT version FROM schema_migrations ORDER BY version", []).map {
                    try $0.integer(0)
                }
            }
            #expect(versions == (1...Int64(CatalogMigrations.sqlite.count)).map { $0 })
            let catalog = Catalog(store: store)
            #expect(try await catalog.locations().count == 18)
            #expect(try await catalog.bootstrapAdminToken() != nil)
            #expect(try await catalog.bootstrapAdminToken() == nil)
        }
    }

    /// The statements of a migration file, split as the stores split them (at a `;` that ends a line).
    static func statements(of sql: String) -> [String] {
        var statements: [String] = []
        var current = ""
        for line in sql.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).hasPrefix("--") {
            current += line + "\n"
            if line.trimmingCharacters(in: .whitespaces).hasSuffix(";") {
                statements.append(current)
                current = ""
            }
        }
        return statements
    }

    @Test(arguments: CatalogBackend.allCases)
    func upgradeFromVersionOneCountsExistingSizeLimitsAsTheOperatorsAndRepairsUnusableOnes(
        _ backend: CatalogBackend
    ) async throws {
        let scratch = try TemporaryDirectory()
        let directory = scratch.path
        defer { withExtendedLifetime(scratch) {} }
        let schema = "u_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12)
        let store = try backend.makeStore(directory: directory, schema: String(schema))
        try await store.whileRunning {
            let versionOne = try #require(
                (backend == .sqlite ? CatalogMigrations.sqlite : CatalogMigrations.postgresql).first)
            // A catalog at version 1, as an earlier control plane left it.
            try await store.transaction { transaction in
                if backend == .postgresql {
                    try await transaction.query("CREATE SCHEMA IF NOT EXISTS \(schema)", [])
                }
                try await transaction.query(
                    "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
                        + "applied_at BIGINT NOT NULL)", [])
                for statement in Self.statements(of: versionOne.sql) {
                    try await transaction.query(statement, [])
                }
                try await transaction.query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, $1, 0)",
                    [.text(versionOne.name)])
                try await transaction.query(
                    "INSERT INTO organizations (id, slug, plan, created_at) VALUES ('o1', 'acme', 'free', 0)", [])
                try await transaction.query(
                    "INSERT INTO db_groups (id, org_id, name, primary_location, created_at) "
                        + "VALUES ('g1', 'o1', 'default', 'fra', 0)", [])
                try await transaction.query(
                    """
                    INSERT INTO databases (id, org_id, group_id, name, size_limit_bytes, created_at) VALUES
                        ('d1', 'o1', 'g1', 'broken', 1000, 0),
                        ('d2', 'o1', 'g1', 'limited', 1048576, 0),
                        ('d3', 'o1', 'g1', 'unlimited', NULL, 0)
                    """, [])
            }
            try await store.migrate()
            let rows = try await store.transaction { transaction in
                try await transaction.query(
                    "SELECT name, size_limit_bytes, size_limit_by_operator FROM databases ORDER BY id", []
                ).map { row in
                    let limit = try row.optionalInteger(1).map(String.init) ?? "none"
                    return "\(try row.text(0)) \(limit) \(try row.integer(2))"
                }
            }
            #expect(rows == ["broken 65536 1", "limited 1048576 1", "unlimited none 0"])
            let versions = try await store.transaction { transaction in
                try await transaction.query("SELECT version FROM schema_migrations ORDER BY version", []).map {
                    try $0.integer(0)
                }
            }
            #expect(versions == (1...Int64(CatalogMigrations.sqlite.count)).map { $0 })
        }
    }

    @Test func openAPIDocumentCoversEveryRoute() async throws {
        try await LiveCluster.with(.sqlite) { cluster in
            let answer = try await LiveCluster.send("GET", cluster.controlURL + "/openapi.json", token: nil)
            #expect(answer.status == 200)
            #expect(answer.json["openapi"] as? String == "3.1.0")
            let paths = try #require(answer.json["paths"] as? [String: [String: Any]])
            var documented: Set<String> = []
            for (path, operations) in paths {
                for method in operations.keys where ["get", "post", "put", "patch", "delete"].contains(method) {
                    documented.insert("\(method.uppercased()) \(path)")
                }
            }
            let served = Set(
                ControlPlane(catalog: cluster.catalog).router().routes.map { route in
                    let path = "\(route.path)".split(separator: "/").joined(separator: "/")
                    return "\(route.method) /\(path)"
                })
            #expect(served.subtracting(documented).sorted() == [], "served but not documented")
            #expect(documented.subtracting(served).sorted() == [], "documented but not served")
        }
    }
}
