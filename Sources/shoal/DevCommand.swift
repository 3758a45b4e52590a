import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import ShoalBackup
import ShoalControl
import ShoalModel
import ShoalNode
import ShoalServerKit

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

    /// One simulated location's node: its port once it listens, and its admin token.
    typealias DevNode = (location: String, node: Node, ports: AsyncThrowingStream<Int, any Error>, adminToken: String)

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
        let sealer = try SecretSealer.load(file: controlDirectory + "/sealing-key", createIfMissing: true).sealer
        let catalog = Catalog(store: store, sealer: sealer)
        try await catalog.sealStoredSecrets()
        let adminToken = try await Self.adminToken(catalog: catalog, file: controlDirectory + "/admin-token")
        guard let admin = try await catalog.authenticate(secret: adminToken) else {
            throw ValidationError(
                "\(controlDirectory)/admin-token does not match the catalog; delete \(data) to start afresh")
        }
        // A fresh node registration token on every start (registered nodes keep their credentials),
        // kept in a file for a `shoal node` started by hand against this control plane.
        let registrationToken = try await catalog.replaceNodeRegistrationToken(by: admin)
        _ = FileManager.default.createFile(
            atPath: controlDirectory + "/node-registration-token", contents: Data((registrationToken + "\n").utf8),
            attributes: [.posixPermissions: 0o600])
        let control = ControlPlane(catalog: catalog, logger: logger)
        let host = self.host
        let fixed = port != 0
        let controlServer = ListeningServer.listen(
            { control.application(host: host, port: $0, onRunning: $1) }, host: host, port: port)
        var servers = [controlServer.server]
        var nodes: [DevNode] = []
        // One backup store for every node, as a platform has: restores and seeds work out of the box.
        let backups = try DirectoryObjectStore(root: data + "/backups")
        for (index, location) in locationList.enumerated() {
            let nodeAdmin = NodeCommand.randomSecret()
            var configuration = NodeConfiguration(
                dataDirectory: data + "/nodes/\(location)", location: location,
                authentication: .tokens(
                    try TokenVerifier(keys: [:], allowNoKeys: true, maxPolicyAge: 300), adminToken: nodeAdmin))
            configuration.backupStore = backups
            let node = try Node(configuration: configuration, logger: logger)
            let server = ListeningServer.listen(
                { node.application(host: host, port: $0, onRunning: $1) }, host: host,
                port: fixed ? port + 1 + index : 0)
            servers.append(server.server)
            nodes.append((location, node, server.port, nodeAdmin))
        }
        let group = ServiceGroup(configuration: .shoal(services: servers, logger: logger))
        do {
            try await serve(
                group: group, servers: servers, control: controlServer.port, nodes: nodes, catalog: catalog,
                admin: admin, adminToken: adminToken, registrationToken: registrationToken)
        } catch {
            for (_, node, _, _) in nodes { await node.shutdown() }
            await store.close()
            throw error
        }
        for (_, node, _, _) in nodes { await node.shutdown() }
        await store.close()
        say("shoal dev stopped; data kept in \(data)")
    }

    /// Runs the servers until SIGINT or SIGTERM: once every one listens, registers the nodes with
    /// the control plane, prepares the `dev` organization and writes `dev.json`. A server that
    /// cannot listen ends it with the reason.
    private func serve(
        group: ServiceGroup, servers: [ListeningServer], control: AsyncThrowingStream<Int, any Error>,
        nodes: [DevNode],
        catalog: Catalog, admin: Principal, adminToken: String, registrationToken: String
    ) async throws {
        let host = self.host
        let data = self.data
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                // Whatever ends the group, no one waits for a port any longer.
                defer { for server in servers { server.listening.finish() } }
                try await group.run()
            }
            let apiURL: String
            var urls: [String] = []
            do {
                apiURL = "http://\(host):\(try await ListeningServer.port(control))"
                for (_, _, ports, _) in nodes {
                    urls.append("http://\(host):\(try await ListeningServer.port(ports))")
                }
            } catch {
                // The service group ends with the reason of the server that failed first.
                try await tasks.next()
                throw error
            }
            var nodeURLs: [String: String] = [:]
            for ((location, node, _, nodeAdmin), url) in zip(nodes, urls) {
                nodeURLs[location] = url
                let link = ControlPlaneLink(
                    configuration: .init(
                        controlURL: URL(string: apiURL)!, registrationToken: registrationToken, location: location,
                        advertisedURL: url, nodeAdminToken: nodeAdmin,
                        identityFile: data + "/nodes/\(location)/node-id",
                        credentialFile: data + "/nodes/\(location)/node-credential"),
                    node: node)
                _ = try await link.register()
                await group.addServiceUnlessShutdown(
                    UntilShutdown("control plane link (\(location))") { await link.run() })
                await group.addServiceUnlessShutdown(
                    UntilShutdown("node upkeep (\(location))") { await node.runMaintenance() })
            }
            // Deletions and settings pushes a node has not confirmed are sent again until it does.
            let plane = ControlPlane(catalog: catalog)
            await group.addServiceUnlessShutdown(
                UntilShutdown("deletion and settings retries") { await plane.retryDeletions() })
            // Backups of databases deleted longer ago than the grace period are erased.
            await group.addServiceUnlessShutdown(UntilShutdown("backup erasures") { await plane.runErasures() })
            // Schema rollouts run here, driven by this process.
            await group.addServiceUnlessShutdown(UntilShutdown("schema rollouts") { await plane.runRollouts() })
            try await Self.prepareOrganization(catalog: catalog, admin: admin, primary: locationList[0])
            let file = DevFile(apiURL: apiURL, adminToken: adminToken, org: "dev", nodes: nodeURLs)
            let encoder = WireJSON.encoder([.prettyPrinted, .sortedKeys])
            let devPath = data + "/dev.json"
            _ = FileManager.default.createFile(
                atPath: devPath, contents: try encoder.encode(file), attributes: [.posixPermissions: 0o600])
            say(Self.welcome(file, devPath: devPath, primary: locationList[0]))
            // The service group ends on SIGINT/SIGTERM, once its servers and loops have stopped.
            try await tasks.next()
        }
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
