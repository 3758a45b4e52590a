import Testing

@testable import ShoalSQLite

@Suite(.timeLimit(.minutes(2))) struct ErrorTests {
    let connection: Connection

    init() throws {
        connection = try Connection(path: ":memory:")
        try connection.execute("CREATE TABLE account (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE)")
        try connection.execute("INSERT INTO account (email) VALUES (?)", ["a@example.com"])
    }

    @Test func constraintViolationCarriesExtendedCodeMessageAndSQL() throws {
        let error = try #require(throws: SQLiteError.self) {
            try connection.execute("INSERT INTO account (email) VALUES (?)", ["a@example.com"])
        }
        #expect(error.code == .constraintUnique)
        #expect(error.primaryCode == .constraint)
        #expect(error.message == "UNIQUE constraint failed: account.email")
        #expect(error.sql == "INSERT INTO account (email) VALUES (?)")
    }

    @Test func errorsMatchByPrimaryCode() throws {
        let error = try #require(throws: SQLiteError.self) {
            try connection.execute("INSERT INTO account (email) VALUES (NULL)")
        }
        #expect(error.code == .constraintNotNull)
        #expect(ResultCode.constraint ~= error.code)
        #expect(ResultCode.constraintNotNull ~= error.code)
        #expect(!(ResultCode.constraintUnique ~= error.code))
        #expect(!(ResultCode.busy ~= error.code))
        switch error.code {
        case .constraint: break
        default: Issue.record("a primary pattern should match its extended code")
        }
    }

    @Test func descriptionNeverContainsBoundValues() throws {
        let secret = "secret-value-\(Int.random(in: 1000...9999))@example.com"
        try connection.execute("INSERT INTO account (email) VALUES (?)", [secret])
        let error = try #require(throws: SQLiteError.self) {
            try connection.execute("INSERT INTO account (email) VALUES (?)", [secret])
        }
        #expect(!error.description.contains(secret))
        #expect(error.description.contains("INSERT INTO account (email) VALUES (?)"))
        #expect(error.description.contains("UNIQUE constraint failed"))
    }

    @Test func syntaxErrorIsReportedAtPrepare() throws {
        let error = try #require(throws: SQLiteError.self) { try connection.prepare("SELEC 1") }
        #expect(error.code == .error)
        #expect(error.message.contains("syntax error"))
        #expect(error.sql == "SELEC 1")
    }

    @Test func emptySQLIsAClearMisuse() throws {
        let error = try #require(throws: SQLiteError.self) { try connection.prepare("  -- nothing\n") }
        #expect(error.code == .misuse)
        #expect(error.message.contains("no SQL statement"))
    }
}
