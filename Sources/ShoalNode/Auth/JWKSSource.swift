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
        let keys = try TokenVerifier.keys(fromJWKS: try await fetchDocument().data)
        guard !keys.isEmpty else { throw NodeError.badRequest("the JWKS at \(url) has no Ed25519 keys") }
        return keys
    }

    /// Fetches the whole document: keys, and the revocations and rotations a Shoal control plane
    /// publishes beside them.
    public func fetchDocument() async throws -> (document: Platform.PublishedKeys, data: Data) {
        let answer: HTTPAnswer
        do {
            answer = try await OutboundHTTP.send(HTTPCall("GET", url, timeout: .seconds(10)))
        } catch let error as HTTPCallError {
            throw NodeError.unavailable("cannot fetch the JWKS: \(error)")
        }
        guard answer.status == 200 else {
            throw NodeError.unavailable("the JWKS at \(url) answered HTTP \(answer.status); check the URL")
        }
        do {
            return (try JSONDecoder().decode(Platform.PublishedKeys.self, from: answer.body), answer.body)
        } catch {
            throw NodeError.badRequest("the JWKS at \(url) is not valid JSON with a keys array")
        }
    }

    /// Fetches at once and then every `interval` until cancelled, and gives `verifier` the keys
    /// (plus `extraKeys`), the revoked ids (plus `revoked`) and the rotations; a failed fetch keeps
    /// what is in force and is logged (the verifier's `maxPolicyAge` bounds how long).
    public func keepFresh(
        _ verifier: TokenVerifier, extraKeys: [String: [UInt8]] = [:], revoked: Set<String> = [],
        every interval: Duration = .seconds(300), logger: Logger
    ) async {
        var first = true
        while !Task.isCancelled {
            do {
                if !first { try await Task.sleep(for: interval) }
                first = false
                let (document, data) = try await fetchDocument()
                guard try !TokenVerifier.keys(fromJWKS: data).isEmpty || !extraKeys.isEmpty else {
                    throw NodeError.badRequest("the JWKS at \(url) has no Ed25519 keys")
                }
                try verifier.update(with: document, extraKeys: extraKeys, extraRevoked: revoked)
            } catch is CancellationError {
                return
            } catch {
                logger.warning("jwks.refresh.failed", metadata: ["jwks.url": "\(url)", "error": "\(error)"])
            }
        }
    }
}
