import Testing

@testable import ShoalSQLite

@Suite(.timeLimit(.minutes(2))) struct BindingTests {
    let connection: Connection

    init() throws {
        connection = try Connection(path: ":memory:")
    }

    @Test func positionalBindsFillParametersInOrder() throws {
        let statement = try connection.prepare("SELECT ?, ?, ?3")
        #expect(statement.parameterCount == 3)
        try statement.bind([Int64(7), "seven", 7.5])
        #expect(try statement.step())
        #expect(statement.row().values == [.integer(7), .text("seven"), .real(7.5)])
    }

    @Test func namedBindsAcceptEveryPrefixAndBareNames() throws {
        let statement = try connection.prepare("SELECT :a, @b, $c, :a")
        #expect(statement.parameterCount == 3)
        #expect(statement.parameterNames == [":a", "@b", "$c"])
        try statement.bind(.integer(1), named: "a")
        try statement.bind(.text("two"), named: "@b")
        try statement.bind(named: ["c": 3.0])
        #expect(try statement.step())
        #expect(statement.row().values == [.integer(1), .text("two"), .real(3.0), .integer(1)])
    }

    @Test func unknownParameterNameIsARangeError() throws {
        let statement = try connection.prepare("SELECT :a")
        let error = try #require(throws: SQLiteError.self) { try statement.bind(.integer(1), named: "missing") }
        #expect(error.code == .range)
        #expect(error.message.contains("missing"))
    }

    @Test func wrongArgumentCountIsRefusedBeforeRunning() throws {
        let statement = try connection.prepare("SELECT ?, ?")
        let error = try #require(throws: SQLiteError.self) { try statement.bind([1]) }
        #expect(error.code == .range)
        #expect(error.message.contains("takes 2 arguments but 1 were given"))
    }

    @Test func indexOutOfRangeFailsWithSQLitesRangeCode() throws {
        let statement = try connection.prepare("SELECT ?")
        expectError(.range) { try statement.bind(Int64(1), at: 2) }
    }

    @Test func bindingsPersistAcrossResetAndClearBindingsSetsNull() throws {
        let statement = try connection.prepare("SELECT ?")
        try statement.bind(Int64(5), at: 1)
        #expect(try statement.step())
        statement.reset()
        #expect(try statement.step())
        #expect(statement.int64(at: 0) == 5)
        statement.reset()
        statement.clearBindings()
        #expect(try statement.step())
        #expect(statement.isNull(at: 0))
    }

    @Test func swiftTypesBindThroughSQLiteBindable() throws {
        let optional: String? = nil
        let row = try connection.queryOne("SELECT ?, ?, ?, ?, ?", [true, 3, optional, [UInt8]([1, 2]), Int32(-4)])
        #expect(row?.values == [.integer(1), .integer(3), .null, .blob([1, 2]), .integer(-4)])
    }
}
