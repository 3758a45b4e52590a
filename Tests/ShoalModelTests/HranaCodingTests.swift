import Foundation
import ShoalModel
import Testing

/// Decodes `json` as `T`.
func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(json.utf8))
}

/// Encodes `value` with the wire encoder and parses the result.
func encodedJSON(_ value: some Encodable) throws -> JSONValue {
    try JSONValue(jsonData: try WireJSON.encode(value))
}

/// Encodes `value`, decodes the encoding and returns it.
func roundTripped<T: Codable>(_ value: T) throws -> T {
    try JSONDecoder().decode(T.self, from: try WireJSON.encode(value))
}

@Suite(.timeLimit(.minutes(1)))
struct HranaRequestCodingTests {
    @Test func pipelineRequestWithoutBatonEncodesAnExplicitNull() throws {
        let json = try encodedJSON(Hrana.PipelineRequest(baton: nil, requests: [.close]))
        #expect(json.object?["baton"] == .null)
        #expect(json["requests"] == [["type": "close"]])
    }

    @Test func pipelineRequestWithBatonEncodesIt() throws {
        let json = try encodedJSON(Hrana.PipelineRequest(baton: "abc.1", requests: [.getAutocommit]))
        #expect(json == ["baton": "abc.1", "requests": [["type": "get_autocommit"]]])
    }

    @Test func cursorRequestWithoutBatonEncodesAnExplicitNull() throws {
        let request = Hrana.CursorRequest(
            baton: nil, batch: Hrana.Batch(steps: [.init(statement: .init(sql: "SELECT 1"))]))
        let json = try encodedJSON(request)
        #expect(json.object?["baton"] == .null)
        #expect(try roundTripped(request) == request)
    }

    @Test func statementEncodesItsSQLArgumentsAndWantRows() throws {
        let statement = Hrana.Statement(
            sql: "SELECT ?, :n", arguments: [.integer(1)],
            namedArguments: [.init(name: ":n", value: .text("x"))], wantRows: false)
        #expect(
            try encodedJSON(statement) == [
                "sql": "SELECT ?, :n", "args": [["type": "integer", "value": "1"]],
                "named_args": [["name": ":n", "value": ["type": "text", "value": "x"]]], "want_rows": false,
            ])
    }

    @Test func statementOnStoredSQLEncodesSQLIDWithoutSQL() throws {
        let statement = Hrana.Statement(sqlID: 7)
        #expect(try encodedJSON(statement) == ["sql_id": 7, "args": [], "named_args": [], "want_rows": true])
        #expect(try roundTripped(statement) == statement)
    }

    @Test func stepWithoutConditionLeavesTheKeyOut() throws {
        let json = try encodedJSON(Hrana.Step(statement: .init(sql: "BEGIN")))
        #expect(json.object?.keys.sorted() == ["stmt"])
    }

    @Test(arguments: [
        Hrana.Condition.ok(0), .error(1), .not(.ok(2)), .and([.ok(0), .not(.error(1))]), .or([.isAutocommit, .ok(3)]),
    ])
    func conditionRoundTrips(_ condition: Hrana.Condition) throws {
        #expect(try roundTripped(condition) == condition)
    }

    @Test func conditionEncodesItsTaggedForm() throws {
        #expect(
            try encodedJSON(Hrana.Condition.not(.and([.ok(0), .isAutocommit])))
                == [
                    "type": "not",
                    "cond": ["type": "and", "conds": [["type": "ok", "step": 0], ["type": "is_autocommit"]]],
                ])
    }

    @Test(arguments: [
        Hrana.StreamRequest.execute(.init(sql: "SELECT 1", arguments: [.float(1.5), .blob([0, 1, 255]), .null])),
        .batch(
            .init(steps: [.init(statement: .init(sql: "BEGIN")), .init(condition: .ok(0), statement: .init(sqlID: 2))])),
        .sequence(sql: "CREATE TABLE t(x); INSERT INTO t VALUES (1)", sqlID: nil), .sequence(sql: nil, sqlID: 3),
        .describe(sql: "SELECT 1", sqlID: nil), .describe(sql: nil, sqlID: 4), .storeSQL(id: 5, sql: "SELECT 2"),
        .closeSQL(id: 5), .getAutocommit, .close,
    ])
    func streamRequestRoundTrips(_ request: Hrana.StreamRequest) throws {
        #expect(try roundTripped(request) == request)
    }

    @Test func storeSQLEncodesTheKeysTheServerDecodes() throws {
        #expect(
            try encodedJSON(Hrana.StreamRequest.storeSQL(id: 5, sql: "SELECT 2"))
                == ["type": "store_sql", "sql_id": 5, "sql": "SELECT 2"])
    }

    @Test func v1RequestsRoundTrip() throws {
        let execute = Hrana.ExecuteRequest(statement: .init(sql: "SELECT 1"))
        #expect(try encodedJSON(execute)["stmt"]?["sql"] == "SELECT 1")
        #expect(try roundTripped(execute) == execute)
        let batch = Hrana.BatchRequest(batch: .init(steps: [.init(statement: .init(sql: "SELECT 1"))]))
        #expect(try encodedJSON(batch)["batch"]?["steps"]?[0]?["stmt"]?["sql"] == "SELECT 1")
        #expect(try roundTripped(batch) == batch)
    }

    @Test func statementDecoderStillTreatsNullsAsAbsent() throws {
        let statement = try decode(
            Hrana.Statement.self,
            #"{"sql":"SELECT 1","sql_id":null,"args":null,"named_args":null,"want_rows":null,"replication_index":null}"#
        )
        #expect(statement == Hrana.Statement(sql: "SELECT 1"))
    }
}

@Suite(.timeLimit(.minutes(1)))
struct HranaResponseCodingTests {
    @Test func streamResponseWithUnknownTypeFailsWithADataCorruptedError() throws {
        let error = try #require(throws: DecodingError.self) {
            try decode(Hrana.StreamResponse.self, #"{"type":"teleport","result":{}}"#)
        }
        guard case .dataCorrupted(let context) = error else {
            Issue.record("expected dataCorrupted, got \(error)")
            return
        }
        #expect(context.debugDescription == "unknown stream response type teleport")
    }

    @Test func streamResultWithUnknownTypeFails() {
        #expect(throws: DecodingError.self) {
            try decode(Hrana.StreamResult.self, #"{"type":"maybe"}"#)
        }
    }

    @Test func cursorEntryWithUnknownTypeFails() {
        #expect(throws: DecodingError.self) {
            try decode(Hrana.CursorEntry.self, #"{"type":"step_middle"}"#)
        }
    }

    @Test(arguments: [
        Hrana.StreamResponse.execute(
            .init(
                columns: [.init(name: "a", declaredType: "INTEGER"), .init(name: nil, declaredType: nil)],
                rows: [[.integer(Int64.max), .text("x")], [.float(-0.5), .blob([])]], affectedRowCount: 0,
                lastInsertRowID: nil, rowsRead: 2, rowsWritten: 0, queryDurationMilliseconds: 0.25,
                replicationIndex: "12")),
        .batch(
            .init(
                stepResults: [.init(columns: [], rows: [], affectedRowCount: 1, lastInsertRowID: Int64.min), nil],
                stepErrors: [nil, .init(message: "no such table: t", code: "SQLITE_ERROR")])),
        .sequence,
        .describe(
            .init(
                parameters: [nil, ":a"], columns: [.init(name: "x", declaredType: nil)], isExplain: false,
                isReadOnly: true)),
        .storeSQL, .closeSQL, .getAutocommit(true), .getAutocommit(false), .close,
    ])
    func streamResponseRoundTrips(_ response: Hrana.StreamResponse) throws {
        #expect(try roundTripped(response) == response)
    }

    @Test func pipelineResponseRoundTripsWithAnErrorResult() throws {
        let response = Hrana.PipelineResponse(
            baton: "b.2", results: [.ok(.close), .error(.init(message: "stream expired", code: "STREAM_EXPIRED"))])
        #expect(try roundTripped(response) == response)
    }

    @Test func pipelineResponseWithoutBatonOrBaseURLDecodes() throws {
        let response = try decode(
            Hrana.PipelineResponse.self, #"{"results":[{"type":"ok","response":{"type":"close"}}]}"#)
        #expect(response == Hrana.PipelineResponse(baton: nil, results: [.ok(.close)]))
    }

    @Test(
        arguments: [
            (#""last_insert_rowid":"42""#, Int64(42)), (#""last_insert_rowid":42"#, 42),
            (#""last_insert_rowid":"-9223372036854775808""#, Int64.min), (#""last_insert_rowid":null"#, nil),
            (#""unknown_extra":[1,2]"#, nil),
        ] as [(String, Int64?)])
    func lastInsertRowIDDecodesFromAStringANumberOrNull(_ member: String, _ expected: Int64?) throws {
        let json = #"{"cols":[],"rows":[],"affected_row_count":1,\#(member)}"#
        #expect(try decode(Hrana.StatementResult.self, json).lastInsertRowID == expected)
        let entry = #"{"type":"step_end","affected_row_count":1,\#(member)}"#
        #expect(try decode(Hrana.CursorEntry.self, entry) == .stepEnd(affectedRowCount: 1, lastInsertRowID: expected))
    }

    @Test func lastInsertRowIDThatIsNotAnIntegerFails() {
        #expect(throws: DecodingError.self) {
            try decode(
                Hrana.StatementResult.self, #"{"cols":[],"rows":[],"affected_row_count":0,"last_insert_rowid":"x"}"#)
        }
    }

    @Test func statementResultFromAnOlderServerDefaultsWhatItLacks() throws {
        let result = try decode(
            Hrana.StatementResult.self,
            #"{"cols":[{"name":"a"},{"name":"b","decltype":null},{"decltype":"TEXT"}],"rows":[],"affected_row_count":0}"#
        )
        #expect(
            result
                == Hrana.StatementResult(
                    columns: [
                        .init(name: "a", declaredType: nil), .init(name: "b", declaredType: nil),
                        .init(name: nil, declaredType: "TEXT"),
                    ],
                    rows: [], affectedRowCount: 0, lastInsertRowID: nil))
        #expect(result.rowsRead == 0 && result.rowsWritten == 0 && result.queryDurationMilliseconds == 0)
        #expect(result.replicationIndex == nil)
    }

    @Test(arguments: [#""replication_index":"5""#, #""replication_index":5"#])
    func replicationIndexDecodesFromAStringOrANumber(_ member: String) throws {
        let json = #"{"cols":[],"rows":[],"affected_row_count":0,"last_insert_rowid":null,\#(member)}"#
        #expect(try decode(Hrana.StatementResult.self, json).replicationIndex == "5")
    }

    @Test func statementResultWithoutReplicationIndexEncodesTheKeysTheNodeAlwaysSent() throws {
        let json = try encodedJSON(
            Hrana.StatementResult(columns: [], rows: [], affectedRowCount: 1, lastInsertRowID: 3))
        #expect(
            json == [
                "cols": [], "rows": [], "affected_row_count": 1, "last_insert_rowid": "3", "rows_read": 0,
                "rows_written": 0, "query_duration_ms": 0,
            ])
    }

    @Test func statementResultWithReplicationIndexEncodesItAsAString() throws {
        let result = Hrana.StatementResult(
            columns: [], rows: [], affectedRowCount: 0, lastInsertRowID: nil, replicationIndex: "9")
        #expect(try encodedJSON(result)["replication_index"] == "9")
    }

    @Test(arguments: [#"{"message":"no such table: t"}"#, #"{"message":"no such table: t","code":null}"#])
    func errorWithoutACodeDecodesWithTheUnknownCode(_ json: String) throws {
        #expect(
            try decode(Hrana.Failure.self, json)
                == Hrana.Failure(message: "no such table: t", code: Hrana.Failure.unknownCode))
    }

    @Test func errorEncodingAlwaysWritesTheCode() throws {
        #expect(try encodedJSON(Hrana.Failure(message: "m", code: "")) == ["message": "m", "code": ""])
        #expect(
            try encodedJSON(Hrana.Failure(message: "m", code: "SQLITE_BUSY")) == [
                "message": "m", "code": "SQLITE_BUSY",
            ])
    }

    @Test func errorWithoutAMessageFails() {
        #expect(throws: DecodingError.self) { try decode(Hrana.Failure.self, #"{"code":"X"}"#) }
    }

    @Test func getAutocommitDecodesIsAutocommit() throws {
        #expect(
            try decode(Hrana.StreamResponse.self, #"{"type":"get_autocommit","is_autocommit":false}"#)
                == .getAutocommit(false))
    }

    @Test func describeResultDecodesUnnamedParameters() throws {
        let result = try decode(
            Hrana.DescribeResult.self,
            #"{"params":[{"name":null},{"name":"$x"},{}],"cols":[],"is_explain":true,"is_readonly":true}"#)
        #expect(
            result
                == Hrana.DescribeResult(parameters: [nil, "$x", nil], columns: [], isExplain: true, isReadOnly: true))
    }

    @Test func v1EnvelopeRoundTrips() throws {
        let envelope = Hrana.ResultEnvelope(
            result: Hrana.StatementResult(columns: [], rows: [[.null]], affectedRowCount: 0, lastInsertRowID: nil))
        #expect(try roundTripped(envelope) == envelope)
    }

    @Test(arguments: [
        Hrana.CursorEntry.stepBegin(step: 0, columns: [.init(name: "id", declaredType: nil)]),
        .row([.integer(1), .text("a")]),
        .stepEnd(affectedRowCount: 0, lastInsertRowID: nil), .stepEnd(affectedRowCount: 2, lastInsertRowID: 8),
        .stepError(step: 1, error: .init(message: "constraint failed", code: "SQLITE_CONSTRAINT")),
        .error(.init(message: "baton invalid", code: "STREAM_EXPIRED")), .replicationIndex("17"),
        .replicationIndex(nil),
    ])
    func cursorEntryRoundTrips(_ entry: Hrana.CursorEntry) throws {
        #expect(try roundTripped(entry) == entry)
    }

    @Test func sqldCursorEntriesDecode() throws {
        #expect(
            try decode(Hrana.CursorEntry.self, #"{"type":"error","error":{"message":"boom","code":"X"}}"#)
                == .error(.init(message: "boom", code: "X")))
        #expect(
            try decode(Hrana.CursorEntry.self, #"{"type":"replication_index","replication_index":33}"#)
                == .replicationIndex("33"))
    }

    @Test func cursorHeaderKeepsItsBaseURL() throws {
        let header = Hrana.CursorHeader(baton: "c.1", baseURL: "https://elsewhere")
        #expect(try roundTripped(header) == header)
        #expect(try encodedJSON(Hrana.CursorHeader(baton: nil)) == ["baton": .null, "base_url": .null])
    }
}

@Suite(.timeLimit(.minutes(1)))
struct HranaValueCodingTests {
    @Test(
        arguments: [
            (#"{"type":"integer","value":"9223372036854775807"}"#, HranaValue.integer(.max)),
            (#"{"type":"integer","value":-3}"#, .integer(-3)), (#"{"type":"float","value":1.5}"#, .float(1.5)),
            (#"{"type":"float","value":2}"#, .float(2)), (#"{"type":"float","value":"0.25"}"#, .float(0.25)),
            (#"{"type":"blob","base64":"AAH/"}"#, .blob([0, 1, 255])),
            (#"{"type":"blob","base64":"AAH"}"#, .blob([0, 1])),
            (#"{"type":"text","value":"a/b"}"#, .text("a/b")), (#"{"type":"null"}"#, .null),
        ] as [(String, HranaValue)])
    func valueDecodesFromEveryFormClientsSend(_ json: String, _ expected: HranaValue) throws {
        #expect(try decode(HranaValue.self, json) == expected)
        #expect(try roundTripped(expected) == expected)
    }

    @Test func integerEncodesAsADecimalString() throws {
        #expect(try encodedJSON(HranaValue.integer(1)) == ["type": "integer", "value": "1"])
    }

    @Test(arguments: [
        #"{"type":"integer","value":"1.5"}"#, #"{"type":"integer","value":1.5}"#, #"{"type":"bigint","value":"1"}"#,
    ])
    func valueThatIsNotWhatItsTypeSaysFails(_ json: String) {
        #expect(throws: DecodingError.self) { try decode(HranaValue.self, json) }
    }
}
