import Foundation
import ShoalTestSupport
import Testing

/// A schema rollout survives its control plane killed with SIGKILL: restarted, it finishes, and
/// every database applied the migration exactly once.
@Suite("Rollout across a control-plane crash", .serialized, .timeLimit(.minutes(5)))
struct RolloutCrashTests {
    @Test func aControlPlaneKilledMidRolloutResumesItAndNothingIsAppliedTwice() async throws {
        let directory = try Scratch()
        let count = 200
        var control = try ShoalProcess(["control", "--data", directory.path + "/control", "--port", "0"])
        let controlURL = try await control.waitForLine(prefix: "shoal control listening on ")
        let port = try #require(controlURL.split(separator: ":").last.map(String.init))
        let admin = try String(contentsOfFile: directory.path + "/control/admin-token", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let registration = try String(
            contentsOfFile: directory.path + "/control/node-registration-token", encoding: .utf8
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        let node = try ShoalProcess([
            "node", "--data", directory.path + "/node", "--port", "0", "--location", "ams", "--control", controlURL,
            "--registration-token", registration,
        ])
        let nodeURL = try await node.waitForLine(prefix: "shoal node (ams) listening on ")
        try await waitUntil("the node's registration", limit: .seconds(30), every: .milliseconds(100)) {
            let nodes = try await HTTP.send("GET", controlURL + "/v1/nodes", token: admin)
            return (nodes.json["nodes"] as? [[String: Any]])?.contains { $0["url"] as? String == nodeURL } == true
        }
        _ = try await HTTP.send(
            "POST", controlURL + "/v1/organizations", json: ["slug": "acme", "plan": "scaler"], token: admin)
        _ = try await HTTP.send(
            "POST", controlURL + "/v1/organizations/acme/groups", json: ["name": "eu", "location": "ams"], token: admin)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for index in stride(from: worker, to: count, by: 8) {
                        let created = try await HTTP.send(
                            "POST", controlURL + "/v1/organizations/acme/databases",
                            json: ["name": "t-\(index)", "group": "eu"], token: admin)
                        guard created.status == 200 else { throw CLITestError("create: \(created.text)") }
                    }
                }
            }
            try await group.waitForAll()
        }
        // A migration that takes a little while on each database, so the rollout is under way when
        // the control plane is killed.
        let migrations = controlURL + "/v1/organizations/acme/groups/eu/migrations"
        let added = try await HTTP.send(
            "POST", migrations,
            json: [
                "name": "0001_rows",
                "sql": """
                CREATE TABLE t (i INTEGER PRIMARY KEY);
                WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 5000) INSERT INTO t SELECT i FROM c;
                """,
            ], token: admin)
        #expect(added.status == 200, "\(added.text)")
        let started = try await HTTP.send("POST", migrations + "/apply", json: ["concurrency": 1], token: admin)
        #expect(started.status == 200, "\(started.text)")
        var doneBeforeKill = 0
        try await waitUntil("a tenth of the rollout", limit: .seconds(120), every: .milliseconds(100)) {
            let rollout = try await HTTP.send("GET", migrations + "/rollout", token: admin).json["rollout"]
            doneBeforeKill = (rollout as? [String: Any])?["done"] as? Int ?? 0
            return doneBeforeKill >= count / 10
        }
        #expect(try await control.stop(signal: SIGKILL) == SIGKILL)
        #expect(doneBeforeKill < count, "the rollout finished before the kill; the test proves nothing")

        // Restarted on the same port and data: it takes the rollout over once the dead instance's
        // lease lapses, and finishes it.
        control = try ShoalProcess(["control", "--data", directory.path + "/control", "--port", port])
        _ = try await control.waitForLine(prefix: "shoal control listening on ")
        var final: [String: Any] = [:]
        try await waitUntil("the rollout's end", limit: .seconds(180), every: .milliseconds(100)) {
            final =
                (try await HTTP.send("GET", migrations + "/rollout", token: admin).json["rollout"] as? [String: Any])
                ?? [:]
            return final["state"] as? String == "done"
        }
        #expect(final["done"] as? Int == count, "\(final)")
        #expect(final["failed"] as? Int == 0)
        let token = try #require(
            try await HTTP.send("POST", controlURL + "/v1/organizations/acme/groups/eu/auth/tokens", token: admin)
                .json["jwt"] as? String)
        for index in 0..<count {
            let answer = try await HTTP.execute(
                "SELECT (SELECT count(*) FROM t) || '/' || (SELECT count(*) FROM _shoal_migrations)",
                at: nodeURL + "/db/acme/t-\(index)", token: token)
            #expect(answer.text.contains("\"5000/1\""), "t-\(index): \(answer.text)")
        }
        #expect(try await node.stop(signal: SIGTERM) == 0)
        #expect(try await control.stop(signal: SIGTERM) == 0)
    }
}
