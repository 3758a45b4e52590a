import Synchronization

/// Counts what tokens, organizations and the node hold at once of one kind (open Hrana streams, or
/// waiting `/sync` long-polls) and refuses past the caps, so one tenant cannot take every slot.
final class AdmissionLedger: Sendable {
    /// The plural noun messages use ("open Hrana streams").
    let what: String
    /// What a refused caller can do about it, for the message.
    let remedy: String
    /// The caps in force.
    let limits: NodeConfiguration.AdmissionLimits
    /// The `Retry-After` of a refusal, in seconds.
    static let retryAfterSeconds = 1

    private struct Counts {
        var byHolder: [String: Int] = [:]
        var byOrganization: [String: Int] = [:]
        var total = 0
    }

    private let counts = Mutex(Counts())

    init(what: String, remedy: String, limits: NodeConfiguration.AdmissionLimits) {
        self.what = what
        self.remedy = remedy
        self.limits = limits
    }

    /// Counts one more for `holder` (see `Grant.holder(for:)`) in `organization`, or
    /// throws `tooManyRequests` naming the cap that is reached. Give the ticket back once.
    func admit(holder: String, organization: String) throws(NodeError) -> AdmissionTicket {
        let refusal = counts.withLock { counts -> NodeError? in
            if counts.byHolder[holder, default: 0] >= limits.perToken {
                let who =
                    holder.hasPrefix(Grant.organizationHolderPrefix)
                    ? "organization \(organization) (counted as one token on a node without authentication)"
                    : "this token"
                return refuse(
                    "\(who) already holds \(limits.perToken) \(what) on this node (the per-token cap); \(remedy)")
            }
            if counts.byOrganization[organization, default: 0] >= limits.perOrganization {
                return refuse(
                    "organization \(organization) already holds \(limits.perOrganization) \(what) on this node "
                        + "(the per-organization cap); \(remedy)")
            }
            if counts.total >= limits.perNode {
                return refuse("this node already holds \(limits.perNode) \(what) (the per-node cap); try again shortly")
            }
            counts.total += 1
            counts.byOrganization[organization, default: 0] += 1
            counts.byHolder[holder, default: 0] += 1
            return nil
        }
        if let refusal { throw refusal }
        return AdmissionTicket { self.release(holder: holder, organization: organization) }
    }

    private func refuse(_ message: String) -> NodeError {
        .tooManyRequests(message, retryAfter: Self.retryAfterSeconds)
    }

    private func release(holder: String, organization: String) {
        counts.withLock { counts in
            counts.total -= 1
            counts.byOrganization[organization, default: 1] -= 1
            if counts.byOrganization[organization] == 0 { counts.byOrganization[organization] = nil }
            counts.byHolder[holder, default: 1] -= 1
            if counts.byHolder[holder] == 0 { counts.byHolder[holder] = nil }
        }
    }

    /// How many are held now on the node.
    var total: Int { counts.withLock { $0.total } }

    /// How many `organization` holds now.
    func held(byOrganization organization: String) -> Int {
        counts.withLock { $0.byOrganization[organization, default: 0] }
    }
}

/// One admitted stream or long-poll: gives its place back once, by `release()` or at the latest
/// when it is freed.
final class AdmissionTicket: Sendable {
    private let giveBack: Mutex<(@Sendable () -> Void)?>

    init(_ giveBack: @escaping @Sendable () -> Void) {
        self.giveBack = Mutex(giveBack)
    }

    /// Gives the place back; later calls do nothing.
    func release() {
        let giveBack = self.giveBack.withLock { giveBack in
            defer { giveBack = nil }
            return giveBack
        }
        giveBack?()
    }

    deinit { release() }
}
