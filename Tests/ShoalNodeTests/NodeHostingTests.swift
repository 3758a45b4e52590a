import Foundation
import ShoalNodeTestSupport
import Testing

@testable import ShoalNode

@Suite(.timeLimit(.minutes(2))) struct NodeHostingTests {
    /// Descriptors open on files under `directory` (other tests run in parallel in this process, so
    /// only the node's own files are counted).
    static func openDescriptors(under directory: String) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").filter { name in
            let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + name)
            return target?.hasPrefix(directory) == true
        }.count
    }

    @Test func manyDatabasesStayWithinTheOpenBound() async throws {
        let count = Int(ProcessInfo.processInfo.environment["SHOAL_HOSTING_DATABASES"] ?? "") ?? 1500
        let bound = 50
        try await LiveNode.with({
            $0.createOnFirstUse = true
            $0.maxOpenDatabases = bound
        }) { node in
            let baseline = try Self.openDescriptors(under: node.dataDirectory)
            var peak = 0
            for index in 0..<count {
                let answer = try await node.request(
                    "POST", "/db/acme/tenant-\(index)/v1/execute",
                    body: #"{"stmt":{"sql":"CREATE TABLE IF NOT EXISTS t (x)"}}"#)
                #expect(answer.status == 200)
                if index % 50 == 0 { peak = max(peak, try Self.openDescriptors(under: node.dataDirectory)) }
            }
            peak = max(peak, try Self.openDescriptors(under: node.dataDirectory))
            let statistics = node.node.store.pool.statistics
            #expect(statistics.open <= bound)
            #expect(statistics.evictions >= count - bound)
            // Each open database holds its file, WAL, shared memory and the log's WAL reader: at most
            // a handful of descriptors on the node's files.
            #expect(peak > 0)
            #expect(peak - baseline <= bound * 6, "descriptors on database files grew from \(baseline) to \(peak)")
            // Every database is still there and readable after eviction.
            let first = try await node.request(
                "POST", "/db/acme/tenant-0/v1/execute", body: #"{"stmt":{"sql":"SELECT count(*) FROM t"}}"#)
            #expect(first.status == 200)
        }
    }

    @Test func namespacesComeFromThePathTheHeaderOrTheHost() async throws {
        try await LiveNode.with({ $0.createOnFirstUse = true }) { node in
            _ = try await node.request(
                "POST", "/db/acme/app/v1/execute", body: #"{"stmt":{"sql":"CREATE TABLE t (x)"}}"#)
            let header = try await node.request(
                "POST", "/v1/execute", body: #"{"stmt":{"sql":"SELECT count(*) FROM t"}}"#,
                headers: ["x-namespace": "acme/app"])
            #expect(header.status == 200)
            let host = try await node.request(
                "POST", "/v1/execute", body: #"{"stmt":{"sql":"SELECT count(*) FROM t"}}"#,
                headers: ["Host": "app-acme.shoal.test"])
            #expect(host.status == 200)
        }
    }

    @Test func directoriesAreShardedAndNamesValidated() throws {
        let namespace = try Namespace("acme/cards")
        let directory = namespace.directory(in: "/data")
        #expect(directory.hasPrefix("/data/databases/"))
        #expect(directory.hasSuffix("/acme/cards"))
        #expect(throws: NodeError.self) { try Namespace("acme/../etc") }
        #expect(throws: NodeError.self) { try Namespace("acme/a/b") }
        #expect(throws: NodeError.self) { try Namespace("ACME/cards") }
        #expect(throws: NodeError.self) {
            try Namespace(organization: "acme", database: String(repeating: "a", count: 65))
        }
    }
}
