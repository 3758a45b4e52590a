import Foundation
import Logging
import ShoalHTTP
import ShoalModel

/// Trusted keys published at a JWKS URL (a control plane's `/.well-known/jwks.json`, or any
/// issuer's), fetched at start and refreshed periodically, for nodes that verify tokens without
/// registering with a control plane.
public struct JWKSSource: Sendable {
    /// Where the JWKS document is.
    public let url: URL

    /// A source reading `url`.
    public init(url: URL) {
        self.url = url
    }

    /// Fetches and parses the document's Ed25519 keys; throws with what went wrong.
    public func fetch() async throws -> [String: [UInt8]] {
        let answer: HTTPAnswer
        do {
            answer = try await OutboundHTTP.send(HTTPCall("GET", url, timeout: .seconds(10)))
        } catch let error as HTTPCallError {
            throw NodeError.unavailable("cannot fetch the JWKS: \(error)")
        }
        let status = answer.status
        let data = answer.body
        guard status == 200 else {
            throw NodeError.unavailable("the JWKS at \(url) answered HTTP \(status); check the URL")
        }
        let keys = try TokenVerifier.keys(fromJWKS: data)
        guard !keys.isEmpty else { throw NodeError.badRequest("the JWKS at \(url) has no Ed25519 keys") }
        return keys
    }

    /// Refetches every `interval` until cancelled and gives `verifier` the keys (plus `extraKeys`
    /// and the `revoked` ids); a failed fetch keeps the keys in force and is logged.
    public func keepFresh(
        _ verifier: TokenVerifier, extraKeys: [String: [UInt8]] = [:], revoked: Set<String> = [],
        every interval: Duration = .seconds(300), logger: Logger
    ) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
                let keys = try await fetch().merging(extraKeys) { fetched, _ in fetched }
                try verifier.update(
                    with: Platform.TokenPolicy(
                        keys: keys.map { Platform.JSONWebKey(kid: $0.key, x: Base64URL.encode($0.value)) },
                        revokedJti: revoked.sorted(), notBefore: [:]))
            } catch is CancellationError {
                return
            } catch {
                logger.warning("jwks.refresh.failed", metadata: ["jwks.url": "\(url)", "error": "\(error)"])
            }
        }
    }
}
