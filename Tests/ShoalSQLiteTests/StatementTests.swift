import Testing

@testable import ShoalSQLite

@Suite(.timeLimit(.minutes(2))) struct StatementTests {
    let connection: Connection

    init() throws {
        connection = try Connection(path: ":memory:")
        try connection.execute(
            "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, data BLOB)")
    }

    @Test func prepareReportsTheUnparsedTail() throws {
        let statement = try connection.prepare("SELECT 1; SELECT 'é'; ")
        #expect(statement.sql == "SELECT 1;")
        #expect(statement.tail == " SELECT 'é'; ")
        let next = try connection.prepare(statement.tail)
        #expect(next.tail == " ")
        #expect(try connection.prepareFirst(next.tail) == nil)
    }

    @Test func executeRunsEveryStatementInTheText() throws {
        try connection.execute("INSERT INTO item (name) VALUES ('a'); INSERT INTO item (name) VALUES ('b');")
        #expect(try connection.queryOne("SELECT count(*) FROM item")?[0] == .integer(2))
    }

    @Test func columnNamesAndDeclaredTypes() throws {
        let statement = try connection.prepare("SELECT id, name AS label, price, data, 1 + 1 FROM item")
        #expect(statement.columnCount == 5)
        #expect(statement.columnNames == ["id", "label", "price", "data", "1 + 1"])
        #expect(statement.declaredType(at: 0) == "INTEGER")
        #expect(statement.declaredType(at: 1) == "TEXT")
        #expect(statement.declaredType(at: 2) == "REAL")
        #expect(statement.declaredType(at: 3) == "BLOB")
        #expect(statement.declaredType(at: 4) == nil)
    }

    @Test func readOnlyAndExplainFlags() throws {
        #expect(try connection.prepare("SELECT * FROM item").isReadOnly)
        #expect(try connection.prepare("INSERT INTO item (name) VALUES ('x')").isReadOnly == false)
        #expect(try connection.prepare("CREATE TABLE z (x)").isReadOnly == false)
        #expect(try connection.prepare("EXPLAIN SELECT * FROM item").isExplain)
        #expect(try connection.prepare("EXPLAIN QUERY PLAN SELECT * FROM item").isExplain)
        #expect(try connection.prepare("SELECT * FROM item").isExplain == false)
    }

    @Test func resetLetsAStatementRunAgainAndBusyTracksIt() throws {
        try connection.execute("INSERT INTO item (name) VALUES ('a'), ('b')")
        let statement = try connection.prepare("SELECT name FROM item ORDER BY id")
        #expect(!statement.isBusy)
        #expect(try statement.step())
        #expect(statement.isBusy)
        #expect(statement.text(at: 0) == "a")
        statement.reset()
        #expect(!statement.isBusy)
        #expect(try statement.rows().map { $0[0] } == [.text("a"), .text("b")])
    }

    @Test func changesLastInsertRowIDAndAutocommit() throws {
        #expect(connection.isAutocommit)
        try connection.execute("INSERT INTO item (name) VALUES ('a'), ('b'), ('c')")
        #expect(connection.changes == 3)
        #expect(connection.lastInsertRowID == 3)
        try connection.execute("BEGIN")
        #expect(!connection.isAutocommit)
        try connection.execute("UPDATE item SET price = 1 WHERE id > 1")
        #expect(connection.changes == 2)
        try connection.execute("COMMIT")
        #expect(connection.isAutocommit)
        #expect(connection.totalChanges == 5)
    }

    @Test func transactionRollsBackWhenTheBodyThrows() throws {
        struct Failure: Error {}
        #expect(throws: Failure.self) {
            try connection.transaction(.immediate) {
                try connection.execute("INSERT INTO item (name) VALUES ('lost')")
                throw Failure()
            }
        }
        #expect(connection.isAutocommit)
        #expect(try connection.queryOne("SELECT count(*) FROM item")?[0] == .integer(0))
        let id = try connection.transaction {
            try connection.execute("INSERT INTO item (name) VALUES ('kept')")
            return connection.lastInsertRowID
        }
        #expect(id == 1)
    }

    @Test func statementCacheReturnsTheSamePreparedStatementReset() throws {
        try connection.execute("INSERT INTO item (name) VALUES ('a'), ('b')")
        let first = try connection.cachedStatement("SELECT name FROM item WHERE id = ?")
        try first.bind(Int64(1), at: 1)
        #expect(try first.step())
        let second = try connection.cachedStatement("SELECT name FROM item WHERE id = ?")
        #expect(first === second)
        #expect(!second.isBusy)
        // Bindings were cleared: `id = NULL` matches nothing until a key is bound again.
        #expect(try second.step() == false)
        second.reset()
        try second.bind(Int64(2), at: 1)
        #expect(try second.step())
        #expect(second.text(at: 0) == "b")
        #expect(try connection.cachedStatement("SELECT 2") !== first)
    }

    @Test func statementCacheEvictsTheLeastRecentlyUsed() throws {
        var cache = StatementCache(capacity: 2)
        let a = try connection.prepare("SELECT 1")
        let b = try connection.prepare("SELECT 2")
        let c = try connection.prepare("SELECT 3")
        cache.insert(a, for: "a")
        cache.insert(b, for: "b")
        #expect(cache.statement(for: "a") === a)  // a is now more recent than b
        cache.insert(c, for: "c")
        #expect(cache.count == 2)
        #expect(cache.statement(for: "b") == nil)
        #expect(cache.statement(for: "a") === a)
        #expect(cache.statement(for: "c") === c)
    }

    @Test func schemaChangesAreSeenByKeptStatements() throws {
        let statement = try connection.prepare("SELECT * FROM item")
        #expect(statement.columnCount == 4)
        try connection.execute("ALTER TABLE item ADD COLUMN extra TEXT DEFAULT 'x'")
        try connection.execute("INSERT INTO item (name) VALUES ('a')")
        #expect(try statement.step())
        #expect(statement.text(at: 4) == "x")
    }
}
