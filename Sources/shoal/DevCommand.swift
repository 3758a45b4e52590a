import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import ShoalControl
import ShoalModel
import ShoalNode

/// `shoal dev`: a control plane (SQLite catalog) and one node per simulated location, on loopback,
/// in one process, with a `dev` organization, a `default` group and an admin token ready.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Start a local Shoal: control plane plus one node per location, data kept under --data.")

    @Option(help: "Where everything is kept (reused on the next start).")
    var data = ".shoal"

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The control plane's port; nodes take the next ones (0: every port picked freely).")
    var port = 8090

    @Option(help: "Locations to simulate, the primary of the default group first (comma-separated).")
    var locations = "fra,ams,iad"

    var locationList: [String] {
        locations.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func validate() throws {
        guard (0...65535 - 16).contains(port) else { throw ValidationError("--port must be 0...65519") }
        let list = locationList
        guard !list.isEmpty, list.count <= 8, Set(list).count == list.count else {
            throw ValidationError("--locations takes 1 to 8 distinct location codes, like fra,ams,iad")
        }
    }

    /// What `.shoal/dev.json` holds, for scripts.
    struct DevFile: Codable {
        var apiURL: String
        var adminToken: String
        var org: String
        var nodes: [String: String]

        enum CodingKeys: String, CodingKey {
            case apiURL = "api_url"
            case adminToken = "admin_token"
            case org, nodes
        }
    }

    func run() async throws {
        var logger = Logger(label: "shoal.dev")
        logger.logLevel = .warning
        let controlDirectory = data + "/control"
        try FileManager.default.createDirectory(atPath: controlDirectory, withIntermediateDirectories: true)
        let store = try SQLiteCatalogStore(path: controlDirectory + "/catalog.db")
        try await store.migrate()
        let catalog = Catalog(store: store)
        let adminToken = try await Self.adminToken(catalog: catalog, file: controlDirectory + "/admin-token")
        guard let admin = try await catalog.authenticate(secret: adminToken) else {
            throw ValidationError(
                "\(controlDirectory)/admin-token does not match the catalog; delete \(data) to start afresh")
        }
        let control = ControlPlane(catalog: catalog, logger: logger)
        let host = self.host
        let fixed = port != 0
        let controlServer = Self.listen({ control.application(host: host, port: $0, onRunning: $1) }, port: port)
        var services: [any Service] = [controlServer.app]
        var nodes: [(location: String, node: Node, ports: AsyncStream<Int>, adminToken: String)] = []
        for (index, location) in locationList.enumerated() {
            let nodeAdmin = NodeCommand.randomSecret()
            let node = try Node(
                configuration: NodeConfiguration(
                    dataDirectory: data + "/nodes/\(location)", location: location,
                    authentication: .tokens(try TokenVerifier(keys: [:], allowNoKeys: true), adminToken: nodeAdmin)),
                logger: logger)
            let server = Self.listen(
                { node.application(host: host, port: $0, onRunning: $1) }, port: fixed ? port + 1 + index : 0)
            services.append(server.app)
            nodes.append((location, node, server.port, nodeAdmin))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let apiURL = "http://\(host):\(try await Self.port(controlServer.port))"
            var nodeURLs: [String: String] = [:]
            for (location, node, ports, nodeAdmin) in nodes {
                let url = "http://\(host):\(try await Self.port(ports))"
                nodeURLs[location] = url
                let link = ControlPlaneLink(
                    configuration: .init(
                        controlURL: URL(string: apiURL)!, controlToken: adminToken, location: location,
                        advertisedURL: url, nodeAdminToken: nodeAdmin,
                        identityFile: data + "/nodes/\(location)/node-id"),
                    node: node)
                _ = try await link.register()
                tasks.addTask { await link.run() }
                tasks.addTask { await node.runMaintenance() }
            }
            try await Self.prepareOrganization(catalog: catalog, admin: admin, primary: locationList[0])
            let file = DevFile(apiURL: apiURL, adminToken: adminToken, org: "dev", nodes: nodeURLs)
            let encoder = WireJSON.encoder([.prettyPrinted, .sortedKeys])
            let devPath = data + "/dev.json"
            _ = FileManager.default.createFile(
                atPath: devPath, contents: try encoder.encode(file), attributes: [.posixPermissions: 0o600])
            say(Self.welcome(file, devPath: devPath, primary: locationList[0]))
            // The service group ends on SIGINT/SIGTERM; then the loops stop.
            try await tasks.next()
            tasks.cancelAll()
        }
        for (_, node, _, _) in nodes { await node.shutdown() }
        await store.close()
        say("shoal dev stopped; data kept in \(data)")
    }

    /// The admin token: created on the first start and kept in `file`, read from it afterwards.
    static func adminToken(catalog: Catalog, file: String) async throws -> String {
        if let secret = try await catalog.bootstrapAdminToken() {
            _ = FileManager.default.createFile(
                atPath: file, contents: Data((secret + "\n").utf8), attributes: [.posixPermissions: 0o600])
            return secret
        }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw ValidationError(
                "the catalog has an admin token but \(file) is gone; delete the data folder to start afresh")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The `dev` organization (plan scaler) and its `default` group in the primary location.
    static func prepareOrganization(catalog: Catalog, admin: Principal, primary: String) async throws {
        do {
            _ = try await catalog.createOrganization(slug: "dev", plan: "scaler", by: admin)
        } catch let error as ControlError where error.status == .conflict {}
        do {
            _ = try await catalog.createGroup(
                organization: "dev", name: "default", location: primary, regionRule: nil, by: admin)
        } catch let error as ControlError where error.status == .conflict {}
    }

    /// An application on `port` (0: any free one) and a stream that yields its port once it listens.
    static func listen(
        _ make: (Int, @escaping @Sendable (Int) -> Void) -> Application<RouterResponder<BasicRequestContext>>,
        port: Int
    ) -> (app: Application<RouterResponder<BasicRequestContext>>, port: AsyncStream<Int>) {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        return (make(port, { continuation.yield($0) }), ports)
    }

    static func port(_ stream: AsyncStream<Int>) async throws -> Int {
        var iterator = stream.makeAsyncIterator()
        guard let port = await iterator.next() else { throw ValidationError("a server did not start") }
        return port
    }

    static func welcome(_ file: DevFile, devPath: String, primary: String) -> String {
        let nodes = file.nodes.sorted { $0.key < $1.key }.map { "    \($0.key)  \($0.value)" }.joined(separator: "\n")
        return """
            shoal dev is running.
              control plane  \(file.apiURL)   (Platform API; OpenAPI at \(file.apiURL)/openapi.json)
              nodes:
            \(nodes)
              organization   dev (plan scaler), group default in \(primary)
              admin token    in \(devPath) (also \(file.adminToken.prefix(12))…)

            Next:
              export SHOAL_API=\(file.apiURL) SHOAL_TOKEN=$(python3 -c 'import json;print(json.load(open("\(devPath)"))["admin_token"])')
              curl -s -X POST $SHOAL_API/v1/organizations/dev/databases -H "Authorization: Bearer $SHOAL_TOKEN" \\
                   -d '{"name":"first","group":"default"}'
              curl -s -X POST $SHOAL_API/v1/organizations/dev/databases/first/auth/tokens -H "Authorization: Bearer $SHOAL_TOKEN"
              # then point any libSQL client at \(file.nodes[primary] ?? "")/db/dev/first with that JWT
            Ctrl-C stops everything; the next start reuses \(devPath.replacingOccurrences(of: "/dev.json", with: "")).
            """
    }
}
