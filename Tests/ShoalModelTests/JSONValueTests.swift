import Foundation
import ShoalModel
import Testing

@Suite(.timeLimit(.minutes(1)))
struct JSONValueTests {
    static let document = #"{"a":[1,2.5,-3e2,true,false,null,"x\"y"],"b":{"c":{}},"d":"","e":[]}"#

    @Test func documentRoundTrips() throws {
        let value = try JSONValue(jsonData: Data(Self.document.utf8))
        #expect(
            value == [
                "a": [1, 2.5, -300, true, false, .null, "x\"y"], "b": ["c": [:]], "d": "", "e": [],
            ])
        #expect(try roundTripped(value) == value)
    }

    @Test func booleansAndNumbersStayApart() throws {
        #expect(
            try JSONValue(jsonData: Data("[true,1,0,false]".utf8)) == [
                .bool(true), .number(1), .number(0), .bool(false),
            ])
    }

    @Test func topLevelScalarsParse() throws {
        #expect(try JSONValue(jsonData: Data("null".utf8)) == .null)
        #expect(try JSONValue(jsonData: Data(#""s""#.utf8)) == "s")
        #expect(try JSONValue(jsonData: Data("42".utf8)) == 42)
    }

    @Test func accessorsAnswerOnlyForTheirOwnCase() throws {
        let value = try JSONValue(jsonData: Data(Self.document.utf8))
        #expect(value["a"]?[0]?.int64 == 1)
        #expect(value["a"]?[1]?.double == 2.5)
        #expect(value["a"]?[1]?.int64 == nil)
        #expect(value["a"]?[3]?.bool == true)
        #expect(value["a"]?[5]?.isNull == true)
        #expect(value["a"]?[6]?.string == "x\"y")
        #expect(value["a"]?[7] == nil)
        #expect(value["b"]?["c"]?.object == [:])
        #expect(value["e"]?.array == [])
        #expect(value["missing"] == nil)
        #expect(value["d"]?["x"] == nil)
        #expect(JSONValue.string("1").int64 == nil)
        #expect(JSONValue.number(1e30).int64 == nil)
        #expect(JSONValue.bool(true).double == nil)
    }

    @Test(
        arguments: [
            (JSONValue.null, ""), (.bool(true), "true"), (.number(3), "3"), (.number(-0.0), "0"), (.number(1.5), "1.5"),
            (.number(1e20), "1e+20"), (.number(9_007_199_254_740_992), "9007199254740992"), (.string("a b/c"), "a b/c"),
            (.string(""), ""), ([1, "x", .null], #"[1,"x",null]"#),
            (["b": 1, "a": ["c": true]], #"{"a":{"c":true},"b":1}"#),
        ] as [(JSONValue, String)])
    func displayTextRendersACell(_ value: JSONValue, _ expected: String) {
        #expect(value.displayText == expected)
    }

    @Test func jsonTextEscapesWhatJSONRequiresAndParsesBack() throws {
        let value: JSONValue = ["k\"\\": "line\nbreak\ttab\u{01}/é", "n": .number(.infinity)]
        let text = value.jsonText
        #expect(text == #"{"k\"\\":"line\nbreak\ttab\u0001/é","n":null}"#)
        #expect(try JSONValue(jsonData: Data(text.utf8)) == ["k\"\\": "line\nbreak\ttab\u{01}/é", "n": .null])
    }

    @Test func encodingANonFiniteNumberThrows() {
        #expect(throws: EncodingError.self) { try WireJSON.encode(JSONValue.number(.nan)) }
    }
}

@Suite(.timeLimit(.minutes(1)))
struct RoundTripComparisonTests {
    @Test func equalDocumentsHaveNoDifferences() {
        #expect(RoundTrip.differences(capture: ["a": [1, "x"]], encoding: ["a": [1, "x"]]).isEmpty)
    }

    @Test func aMissingMemberIsADifference() {
        #expect(RoundTrip.differences(capture: ["a": 1, "b": 2], encoding: ["a": 1]) == ["$.b: missing"])
    }

    @Test func aChangedValueIsADifference() {
        #expect(RoundTrip.differences(capture: ["a": [1, 2]], encoding: ["a": [1, 3]]) == ["$.a[1]: 2 became 3"])
        #expect(RoundTrip.differences(capture: ["a": [1, 2]], encoding: ["a": [1]]) == ["$.a: 2 elements became 1"])
    }

    @Test func aNullThatGainsAValueIsADifferenceExceptAnErrorCode() {
        #expect(RoundTrip.differences(capture: ["a": .null], encoding: ["a": "0"]) == [#"$.a: null became "0""#])
        #expect(RoundTrip.differences(capture: ["a": .null], encoding: [:]).isEmpty)
        #expect(RoundTrip.differences(capture: ["code": .null], encoding: ["code": ""]).isEmpty)
        #expect(!RoundTrip.differences(capture: ["code": .null], encoding: ["code": "X"]).isEmpty)
    }

    @Test func onlyDefaultedKeysOrNullsMayBeAdded() {
        #expect(RoundTrip.differences(capture: [:], encoding: ["args": [], "code": "", "n": .null]).isEmpty)
        #expect(RoundTrip.differences(capture: [:], encoding: ["rows_read": 0]) == ["$.rows_read: added 0"])
    }

    @Test func anIntegerNumberMatchesItsDecimalString() {
        #expect(RoundTrip.differences(capture: ["v": 7], encoding: ["v": "7"]).isEmpty)
        #expect(!RoundTrip.differences(capture: ["v": 7.5], encoding: ["v": "7.5"]).isEmpty)
        #expect(!RoundTrip.differences(capture: ["v": 7], encoding: ["v": "8"]).isEmpty)
    }
}
