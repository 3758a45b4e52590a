import ShoalTestSupport
import Testing

@testable import ShoalSQLite

/// The README's tour, run as written, so the first code a newcomer reads keeps working.
@Suite(.timeLimit(.minutes(2))) struct ReadmeTourTests {
    struct Card: Decodable, Equatable {
        let id: Int64
        let holder: String
        let valid: Bool
    }

    @Test func tourRunsAsWritten() throws {
        let directory = try TemporaryDirectory()
        let db = try Connection(path: directory.file("tenant.db"), configuration: .init(journalMode: .wal))
        try db.execute("CREATE TABLE IF NOT EXISTS card (id INTEGER PRIMARY KEY, holder TEXT, valid INTEGER)")
        try db.execute("INSERT INTO card (holder, valid) VALUES (?, ?)", ["Ada", true])
        let cards = try db.query(Card.self, "SELECT * FROM card WHERE valid = ?", [true])
        #expect(cards == [Card(id: 1, holder: "Ada", valid: true)])
        #expect(try db.journalMode() == "wal")
    }
}
