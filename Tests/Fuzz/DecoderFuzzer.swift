import Foundation
import ShoalModel

/// The request bodies Shoal's servers decode, checked on one input at a time: each type decodes
/// the input as the servers do (`JSONDecoder()`); when it decodes, the value is written back
/// (`WireJSON`) and decoded again, and the two values must be equal. A broken invariant stops the
/// process, which libFuzzer reports with the input that broke it.
enum DecoderFuzzer {
    /// Set (`SHOAL_FUZZ_SELF_TEST=1`) to fail on every input: shows that a failure is reported.
    static let failsEveryInput = ProcessInfo.processInfo.environment["SHOAL_FUZZ_SELF_TEST"] != nil

    /// Runs every check on `input`.
    static func check(_ input: Data) {
        if failsEveryInput {
            fail("SHOAL_FUZZ_SELF_TEST", "the self-test fails on every input", input: input)
        }
        // The node's Hrana routes (Node+Hrana.swift).
        roundTrip(Hrana.PipelineRequest.self, input)
        roundTrip(Hrana.CursorRequest.self, input)
        roundTrip(Hrana.ExecuteRequest.self, input)
        roundTrip(Hrana.BatchRequest.self, input)
        // What the client and a replica node read from a node (RemoteDatabase, HTTPFrameSource).
        roundTrip(Hrana.PipelineResponse.self, input)
        roundTrip(SyncProtocol.GenerationInfo.self, input)
        roundTrip(SyncProtocol.CheckpointNeeded.self, input)
        // The node's admin API (Node+Admin.swift) and the JWKS document it may read (JWKSSource.swift).
        roundTrip(DatabaseSettings.self, input)
        roundTrip(Platform.TokenPolicy.self, input)
        roundTrip(Platform.PublishedKeys.self, input)
        // The control plane's Platform API (ControlPlane+Routes.swift, ControlPlane+Nodes.swift).
        roundTrip(Platform.LocationDefinition.self, input)
        roundTrip(Platform.Quotas.self, input)
        roundTrip(Platform.NodeRegistration.self, input)
        roundTrip(Platform.HeartbeatRequest.self, input)
        roundTrip(Platform.OrganizationCreation.self, input)
        roundTrip(Platform.RulePatch.self, input)
        roundTrip(Platform.APITokenCreation.self, input)
        roundTrip(Platform.TokenRevocation.self, input)
        roundTrip(Platform.GroupCreation.self, input)
        roundTrip(Platform.DatabaseCreation.self, input)
        roundTrip(Platform.DatabaseConfiguration.self, input)
    }

    /// The round trip of a type that ShoalModel encodes itself.
    static func roundTrip<Body: Codable & Equatable>(_ type: Body.Type, _ input: Data) {
        roundTrip(type, input, writtenAs: { $0 })
    }

    /// Decodes `input` as `Body`; if it decodes, writes it back through `writtenAs` and checks that
    /// decoding that text gives the same value.
    static func roundTrip<Body: Decodable & Equatable, Wire: Encodable>(
        _ type: Body.Type, _ input: Data, writtenAs wire: (Body) -> Wire
    ) {
        let name = String(reflecting: type)
        let first: Body
        do {
            first = try JSONDecoder().decode(Body.self, from: input)
        } catch {
            // What the servers put in their 400 answer; it must be made without trapping.
            _ = DecodingFailure.describe(error)
            return
        }
        let written: Data
        do {
            written = try WireJSON.encoder([.sortedKeys]).encode(wire(first))
        } catch {
            fail(name, "a value it decoded does not encode: \(error)", input: input)
        }
        let second: Body
        do {
            second = try JSONDecoder().decode(Body.self, from: written)
        } catch {
            fail(
                name, "a decoded value, written back, does not decode: \(DecodingFailure.describe(error))",
                input: input, written: written)
        }
        if second != first {
            fail(name, "a decoded value, written back and decoded again, differs", input: input, written: written)
        }
    }

    /// Says which invariant broke, on which input, and stops.
    static func fail(_ name: String, _ what: String, input: Data, written: Data? = nil) -> Never {
        var report = "shoal-fuzz-decoders: \(name): \(what)\n  input:   \(String(decoding: input, as: UTF8.self))\n"
        if let written {
            report += "  written: \(String(decoding: written, as: UTF8.self))\n"
        }
        FileHandle.standardError.write(Data(report.utf8))
        fatalError("\(name): \(what)")
    }
}

/// libFuzzer's entry point: every check on one input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoders(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    // libFuzzer owns the `count` bytes at `start` for the duration of this call; they are copied
    // into a `Data` before anything reads them.
    DecoderFuzzer.check(Data(bytes: start, count: count))
    return 0
}
