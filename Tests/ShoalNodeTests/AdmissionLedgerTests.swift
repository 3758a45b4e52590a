import Foundation
import ShoalNodeTestSupport
import Testing

@testable import ShoalNode

@Suite(.timeLimit(.minutes(2))) struct AdmissionLedgerTests {
    @Test func refusesPastEachCapAndGivesEachPlaceBackOnce() throws {
        let ledger = AdmissionLedger(
            what: "open Hrana streams", remedy: "close some",
            limits: .init(perToken: 2, perOrganization: 3, perNode: 4))
        let first = try ledger.admit(holder: "jti:a", organization: "acme")
        let second = try ledger.admit(holder: "jti:a", organization: "acme")
        let token = try #require(throws: NodeError.self) { try ledger.admit(holder: "jti:a", organization: "acme") }
        #expect(token.status == .tooManyRequests)
        #expect(token.retryAfter == 1)
        #expect(token.message.contains("per-token cap"))
        let third = try ledger.admit(holder: "jti:b", organization: "acme")
        let organization = try #require(throws: NodeError.self) {
            try ledger.admit(holder: "jti:c", organization: "acme")
        }
        #expect(organization.message.contains("organization acme already holds 3"))
        let fourth = try ledger.admit(holder: "jti:d", organization: "globex")
        let node = try #require(throws: NodeError.self) { try ledger.admit(holder: "jti:e", organization: "initech") }
        #expect(node.message.contains("per-node cap"))
        #expect(ledger.total == 4)

        first.release()
        first.release()
        #expect(ledger.total == 3)
        #expect(ledger.held(byOrganization: "acme") == 2)
        _ = try ledger.admit(holder: "jti:a", organization: "acme")  // freed at once, unreleased
        #expect(ledger.total == 3)
        second.release()
        third.release()
        fourth.release()
        #expect(ledger.total == 0)
        #expect(ledger.held(byOrganization: "acme") == 0)
    }

    @Test func withoutAuthenticationTheOrganizationIsTheTokenTheCapsCount() throws {
        let grant = Grant(access: .readWrite, location: nil)
        let namespace = try Namespace("acme/app")
        #expect(grant.holder(for: namespace) == "org:acme")
        let ledger = AdmissionLedger(
            what: "open Hrana streams", remedy: "close some",
            limits: .init(perToken: 1, perOrganization: 5, perNode: 5))
        let held = try ledger.admit(holder: grant.holder(for: namespace), organization: "acme")
        let refused = try #require(throws: NodeError.self) {
            try ledger.admit(holder: grant.holder(for: namespace), organization: "acme")
        }
        #expect(refused.message.contains("organization acme (counted as one token"))
        held.release()
    }
}
