import Testing

@testable import ShoalSQLite

@Suite(.timeLimit(.minutes(2))) struct ValueRoundTripTests {
    let connection: Connection

    init() throws {
        connection = try Connection(path: ":memory:")
        try connection.execute("CREATE TABLE t (v)")
    }

    /// Stores a value through a bind and reads it back through a column accessor.
    func roundTrip(_ value: SQLiteValue) throws -> SQLiteValue {
        try connection.execute("DELETE FROM t")
        let insert = try connection.prepare("INSERT INTO t (v) VALUES (?)")
        try insert.bind(value, at: 1)
        #expect(try insert.step() == false)
        let select = try connection.prepare("SELECT v FROM t")
        #expect(try select.step())
        let read = select.value(at: 0)
        #expect(try select.step() == false)
        return read
    }

    @Test(arguments: [Int64.min, Int64.min + 1, -1, 0, 1, Int64(Int32.max) + 1, Int64.max - 1, Int64.max])
    func integersRoundTripExactly(value: Int64) throws {
        #expect(try roundTrip(.integer(value)) == .integer(value))
    }

    @Test(arguments: [
        0.0, -0.0, 1.0 / 3.0, Double.pi, -Double.pi, Double.leastNormalMagnitude / 8, Double.leastNonzeroMagnitude,
        Double.greatestFiniteMagnitude, -Double.greatestFiniteMagnitude, 0.1 + 0.2, Double.infinity,
        -Double.infinity,
    ])
    func doublesRoundTripBitForBit(value: Double) throws {
        guard case .real(let read) = try roundTrip(.real(value)) else {
            Issue.record("a REAL came back as another storage class")
            return
        }
        #expect(read.bitPattern == value.bitPattern)
    }

    @Test(arguments: ["", "plain", "Zürich — Ελλάδα — 東京 — 🦈🐟", "nul\u{0}inside\u{0}", "\u{0}"])
    func textRoundTripsWithMultiByteCharactersAndNUL(value: String) throws {
        #expect(try roundTrip(.text(value)) == .text(value))
        let length = try connection.queryOne("SELECT length(CAST(v AS BLOB)) FROM t")?[0]
        #expect(length == .integer(Int64(value.utf8.count)))
    }

    @Test func longMultiByteTextRoundTrips() throws {
        let value = String(repeating: "é🦈\u{0}", count: 50_000)
        #expect(try roundTrip(.text(value)) == .text(value))
    }

    @Test func emptyBlobStaysAnEmptyBlobNotNull() throws {
        #expect(try roundTrip(.blob([])) == .blob([]))
        #expect(try connection.queryOne("SELECT typeof(v) FROM t")?[0] == .text("blob"))
    }

    @Test func fiveMegabyteBlobRoundTrips() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let bytes = (0..<5 * 1024 * 1024).map { _ -> UInt8 in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        #expect(try roundTrip(.blob(bytes)) == .blob(bytes))
    }

    @Test func nullRoundTrips() throws {
        #expect(try roundTrip(.null) == .null)
        let select = try connection.prepare("SELECT v FROM t")
        #expect(try select.step())
        #expect(select.isNull(at: 0))
        #expect(select.text(at: 0) == nil)
        #expect(select.blob(at: 0) == nil)
        #expect(select.columnType(at: 0) == .null)
    }

    @Test func typedAccessorsReadTheCurrentRow() throws {
        let row = try connection.prepare("SELECT 42, 2.5, 'hé', x'00ff', NULL")
        #expect(try row.step())
        #expect(row.int64(at: 0) == 42)
        #expect(row.double(at: 1) == 2.5)
        #expect(row.text(at: 2) == "hé")
        #expect(row.blob(at: 3) == [0x00, 0xff])
        #expect(row.columnType(at: 0) == .integer)
        #expect(row.columnType(at: 1) == .real)
        #expect(row.columnType(at: 2) == .text)
        #expect(row.columnType(at: 3) == .blob)
        #expect(row.row().values == [.integer(42), .real(2.5), .text("hé"), .blob([0, 255]), .null])
    }
}
