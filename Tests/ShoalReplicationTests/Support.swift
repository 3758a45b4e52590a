import Foundation
import ShoalSQLite
import ShoalTestSupport
import Testing

@testable import ShoalReplication

extension Replica {
    /// `PRAGMA integrity_check` through a reader.
    func integrityCheck() throws -> String {
        try read { try $0.queryOne("PRAGMA integrity_check")?[0].textValue ?? "" }
    }

    /// The replica's contents through a reader.
    func contents() throws -> DatabaseContents {
        try read { try DatabaseContents($0) }
    }
}

extension PrimaryLog {
    /// Runs SQL on a connection of the log under a write permit.
    func write(_ connection: Connection, _ sql: String, _ arguments: [any SQLiteBindable] = []) throws {
        try withWritePermit {
            if arguments.isEmpty {
                try connection.execute(sql)
            } else {
                try connection.execute(sql, arguments)
            }
        }
    }
}

/// Runs blocking work (waiting for a child process, joining threads) on its own thread, so it never
/// holds one of the few threads of Swift's cooperative pool that other tests need.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result { try body() })
        }.start()
    }
}
