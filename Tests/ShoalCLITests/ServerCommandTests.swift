import Foundation
import Testing

/// The built `shoal` binary's server commands, run as a user runs them: `shoal dev`, and
/// `shoal control` with `shoal node --control`.
@Suite("shoal dev, shoal control, shoal node --control", .serialized, .timeLimit(.minutes(5)))
struct ServerCommandTests {
    @Test func devStartsAClusterThatServesSQLAndKeepsItsDataAcrossRestarts() async throws {
        let directory = try Scratch()
        let first = try ShoalProcess(["dev", "--data", directory.path + "/.shoal", "--port", "0"])
        let dev = try await first.waitForDevFile(directory.path + "/.shoal/dev.json")
        #expect(Set(dev.nodes.keys) == ["fra", "ams", "iad"])
        #expect(dev.org == "dev")
        let created = try await HTTP.send(
            "POST", dev.apiURL + "/v1/organizations/dev/databases", json: ["name": "cards", "group": "default"],
            token: dev.adminToken)
        #expect(created.status == 200, "\(created.text)")
        let jwt = try #require(
            try await HTTP.send(
                "POST", dev.apiURL + "/v1/organizations/dev/databases/cards/auth/tokens", token: dev.adminToken
            ).json["jwt"] as? String)
        let fra = try #require(dev.nodes["fra"])
        for sql in [
            "CREATE TABLE cards (id INTEGER PRIMARY KEY, holder TEXT)", "INSERT INTO cards (holder) VALUES ('ada')",
        ] {
            let answer = try await HTTP.execute(sql, at: fra + "/db/dev/cards", token: jwt)
            #expect(answer.status == 200 && !answer.pipelineFailed, "\(answer.text)")
        }
        let exit = try await first.stop(signal: SIGINT)
        #expect(exit == 0)
        #expect(first.output.contains("shoal dev stopped"))

        // Second start: new ports, same data, same token; the database follows its node.
        let second = try ShoalProcess(["dev", "--data", directory.path + "/.shoal", "--port", "0"])
        let again = try await second.waitForDevFile(directory.path + "/.shoal/dev.json", after: dev.apiURL)
        #expect(again.adminToken == dev.adminToken)
        let instances = try await HTTP.send(
            "GET", again.apiURL + "/v1/organizations/dev/databases/cards/instances", token: again.adminToken)
        let url = try #require((instances.json["instances"] as? [[String: Any]])?.first?["url"] as? String)
        #expect(url == again.nodes["fra"]! + "/db/dev/cards")
        let read = try await HTTP.execute("SELECT holder FROM cards", at: url, token: jwt)
        #expect(read.status == 200)
        #expect(read.text.contains("ada"), "\(read.text)")
        #expect(try await second.stop(signal: SIGTERM) == 0)
    }

    @Test func controlAndNodeRunAsSeparateProcesses() async throws {
        let directory = try Scratch()
        let control = try ShoalProcess(["control", "--data", directory.path + "/control", "--port", "0"])
        let controlURL = try await control.waitForLine(prefix: "shoal control listening on ")
        let admin = try String(contentsOfFile: directory.path + "/control/admin-token", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // The node gets the node registration token, never the admin token.
        let registration = try String(
            contentsOfFile: directory.path + "/control/node-registration-token", encoding: .utf8
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        let node = try ShoalProcess([
            "node", "--data", directory.path + "/node", "--port", "0", "--location", "ams", "--control", controlURL,
            "--registration-token", registration,
        ])
        let nodeURL = try await node.waitForLine(prefix: "shoal node (ams) listening on ")
        // Registration happens right after the node listens; wait for it.
        var registered = false
        for _ in 0..<100 where !registered {
            let nodes = try await HTTP.send("GET", controlURL + "/v1/nodes", token: admin)
            registered = (nodes.json["nodes"] as? [[String: Any]])?.contains { $0["url"] as? String == nodeURL } == true
            if !registered { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(registered)
        // It keeps the credential its registration issued, readable by its user only.
        let credentialFile = directory.path + "/node/node-credential"
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: credentialFile) {
            try await Task.sleep(for: .milliseconds(50))
        }
        let mode = try FileManager.default.attributesOfItem(atPath: credentialFile)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try String(contentsOfFile: credentialFile, encoding: .utf8).hasPrefix("shoal_node_"))
        _ = try await HTTP.send("POST", controlURL + "/v1/organizations", json: ["slug": "acme"], token: admin)
        _ = try await HTTP.send(
            "POST", controlURL + "/v1/organizations/acme/groups", json: ["name": "eu", "location": "ams"], token: admin)
        let created = try await HTTP.send(
            "POST", controlURL + "/v1/organizations/acme/databases", json: ["name": "shop", "group": "eu"], token: admin
        )
        #expect(created.status == 200, "\(created.text)")
        let jwt = try #require(
            try await HTTP.send(
                "POST", controlURL + "/v1/organizations/acme/databases/shop/auth/tokens", token: admin
            ).json["jwt"] as? String)
        let answer = try await HTTP.execute("SELECT 40 + 2", at: nodeURL + "/db/acme/shop", token: jwt)
        #expect(answer.text.contains("42"), "\(answer.text)")
        #expect(try await HTTP.execute("SELECT 1", at: nodeURL + "/db/acme/shop", token: "forged").status == 401)
        #expect(try await node.stop(signal: SIGTERM) == 0)
        #expect(try await control.stop(signal: SIGTERM) == 0)

        // Wrong usage gets a clear message and a failing exit code.
        let bad = try ShoalProcess(["node", "--control", controlURL, "--no-auth"])
        #expect(try await bad.waitForExit() != 0)
        #expect(bad.output.contains("drop --no-auth"))
        let withAdmin = try ShoalProcess([
            "node", "--data", directory.path + "/other", "--control", controlURL, "--control-token", admin,
        ])
        #expect(try await withAdmin.waitForExit() != 0)
        #expect(withAdmin.output.contains("--registration-token"))
    }

    @Test func standaloneNodeTrustsTheKeysAtAJWKSURL() async throws {
        let directory = try Scratch()
        let control = try ShoalProcess(["control", "--data", directory.path + "/control", "--port", "0"])
        let controlURL = try await control.waitForLine(prefix: "shoal control listening on ")
        let admin = try String(contentsOfFile: directory.path + "/control/admin-token", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let node = try ShoalProcess([
            "node", "--data", directory.path + "/node", "--port", "0", "--location", "fra", "--create-on-first-use",
            "--jwks-url", controlURL + "/.well-known/jwks.json", "--admin-token", "node-secret",
        ])
        let nodeURL = try await node.waitForLine(prefix: "shoal node (fra) listening on ")
        // Not registered by itself: the operator enters it, so the control plane can place there.
        let registered = try await HTTP.send(
            "POST", controlURL + "/v1/nodes", json: ["location": "fra", "url": nodeURL, "admin_token": "node-secret"],
            token: admin)
        #expect(registered.status == 200)
        _ = try await HTTP.send("POST", controlURL + "/v1/organizations", json: ["slug": "acme"], token: admin)
        _ = try await HTTP.send(
            "POST", controlURL + "/v1/organizations/acme/groups", json: ["name": "eu", "location": "fra"], token: admin)
        _ = try await HTTP.send(
            "POST", controlURL + "/v1/organizations/acme/databases", json: ["name": "shop", "group": "eu"], token: admin
        )
        let jwt = try #require(
            try await HTTP.send(
                "POST", controlURL + "/v1/organizations/acme/databases/shop/auth/tokens", token: admin
            ).json["jwt"] as? String)
        let answer = try await HTTP.execute("SELECT 40 + 2", at: nodeURL + "/db/acme/shop", token: jwt)
        #expect(answer.text.contains("42"), "\(answer.text)")
        #expect(try await HTTP.execute("SELECT 1", at: nodeURL + "/db/acme/shop", token: "forged").status == 401)
        #expect(try await node.stop(signal: SIGTERM) == 0)
        #expect(try await control.stop(signal: SIGTERM) == 0)

        // Without its keys the node does not start, and says why.
        let unreachable = try ShoalProcess([
            "node", "--data", directory.path + "/other", "--port", "0", "--jwks-url", "http://127.0.0.1:9/jwks.json",
        ])
        #expect(try await unreachable.waitForExit() != 0)
        #expect(unreachable.output.contains("cannot fetch the JWKS"))
    }
}
