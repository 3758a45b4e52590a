import Foundation
import ShoalControl
import ShoalMigrations
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
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("shoal-migrate-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let schema = "m_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12)
        let store = try backend.makeStore(directory: directory, schema: String(schema))
        try await store.migrate()
        try await store.migrate()
        let versions = try await store.transaction { transaction in
            try await transaction.query("SELECT version FROM schema_migrations ORDER BY version", []).map {
                try $0.integer(0)
            }
        }
        #expect(versions == [1])
        let catalog = Catalog(store: store)
        #expect(try await catalog.locations().count == 18)
        #expect(try await catalog.bootstrapAdminToken() != nil)
        #expect(try await catalog.bootstrapAdminToken() == nil)
        await store.close()
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
