import Foundation
import Testing

@testable import ShoalSQLite

@Suite(.timeLimit(.minutes(2))) struct RowDecoderTests {
    struct Item: Decodable, Equatable {
        let id: Int64
        let name: String
        let price: Double?
        let data: [UInt8]?
        let isActive: Bool
        let count: Int32
    }

    enum CodingKeysItem: String {
        case id
    }

    let connection: Connection

    init() throws {
        connection = try Connection(path: ":memory:")
        try connection.execute(
            """
            CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL, data BLOB, isActive INTEGER, count INTEGER);
            INSERT INTO item VALUES (1, 'a', 2.5, x'0102', 1, 7), (2, 'b', NULL, NULL, 0, -3);
            """)
    }

    @Test func decodesRowsByColumnName() throws {
        let items = try connection.query(Item.self, "SELECT * FROM item ORDER BY id")
        #expect(
            items == [
                Item(id: 1, name: "a", price: 2.5, data: [1, 2], isActive: true, count: 7),
                Item(id: 2, name: "b", price: nil, data: nil, isActive: false, count: -3),
            ])
    }

    @Test func decodesDataAndSingleValues() throws {
        struct Blob: Decodable { let data: Data }
        let blob = try #require(try connection.queryOne("SELECT data FROM item WHERE id = 1")).decode(Blob.self)
        #expect(blob.data == Data([1, 2]))
        let name = try #require(try connection.queryOne("SELECT name FROM item WHERE id = 2")).decode(String.self)
        #expect(name == "b")
    }

    @Test func missingColumnNamesTheColumn() throws {
        struct Wrong: Decodable { let missing: Int }
        let row = try #require(try connection.queryOne("SELECT id FROM item"))
        #expect {
            try row.decode(Wrong.self)
        } throws: { error in
            guard case DecodingError.keyNotFound(let key, _) = error else { return false }
            return key.stringValue == "missing"
        }
    }

    @Test func typeMismatchAndOverflowAreErrors() throws {
        struct Narrow: Decodable { let value: Int8 }
        struct Text: Decodable { let value: Int }
        #expect(throws: DecodingError.self) {
            try connection.queryOne("SELECT 1000 AS value")?.decode(Narrow.self)
        }
        #expect(throws: DecodingError.self) {
            try connection.queryOne("SELECT 'x' AS value")?.decode(Text.self)
        }
    }

    @Test func statementDecodesEveryRow() throws {
        struct Name: Decodable { let name: String }
        let statement = try connection.prepare("SELECT name FROM item ORDER BY id DESC")
        #expect(try statement.decodeAll(Name.self).map(\.name) == ["b", "a"])
    }
}
