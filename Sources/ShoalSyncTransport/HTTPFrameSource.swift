import Foundation
import ShoalModel
import ShoalReplication
import ShoalSQLite
import ShoalTime

/// A frame source over a node's sync protocol (`/info`, `/export/{G}`, `/sync/{G}/{start}/{end}`).
public struct HTTPFrameSource: FrameSource {
    let transport: NodeTransport

    /// A source for the database at `url` (`http://host/db/org/database`), sending `token`.
    public init(url: URL, token: String?) {
        self.init(url: url, credentials: Credentials(token))
    }

    /// A source for the database at `url` whose token may be replaced while it is in use.
    public init(url: URL, credentials: Credentials) {
        transport = NodeTransport(baseURL: url, credentials: credentials)
    }

    /// `GET /info`.
    public func currentGeneration() async throws -> UInt64 {
        let answer = try await transport.send("GET", "info")
        guard answer.status == 200 else { throw transport.failure(answer, doing: "asking for the generation") }
        guard let info = try? JSONDecoder().decode(SyncProtocol.GenerationInfo.self, from: answer.body),
            info.currentGeneration >= 1
        else { throw TransportError(.protocolViolation, "the node's /info answer has no current_generation") }
        return info.currentGeneration
    }

    /// `GET /export/{G}`, written atomically to `path`.
    public func exportBase(generation: UInt64, to path: String) async throws {
        let answer = try await transport.send("GET", "export/\(generation)", timeout: 600)
        if answer.status == 410 { throw ReplicationError.generationGone("generation \(generation) is gone") }
        guard answer.status == 200 else { throw transport.failure(answer, doing: "downloading the database") }
        let body = answer.body
        try await BlockingExecutor.shared.run { try body.write(to: URL(fileURLWithPath: path), options: .atomic) }
    }

    /// `GET /sync/{G}/{start}/{start + maxFrames}[?wait_ms=]`.
    public func frames(generation: UInt64, start: UInt64, maxFrames: Int, wait: Duration?) async throws -> FrameRead {
        let path = "sync/\(generation)/\(start)/\(start + UInt64(maxFrames))"
        var components = URLComponents(
            url: transport.baseURL.appendingPathComponent(path), resolvingAgainstBaseURL: false)
        var timeout: TimeInterval = 60
        if let wait {
            let milliseconds = wait.wholeMilliseconds
            components?.queryItems = [URLQueryItem(name: "wait_ms", value: "\(milliseconds)")]
            timeout += Double(milliseconds) / 1000
        }
        let answer = try await transport.send("GET", url: components?.url, timeout: timeout)
        switch answer.status {
        case 200:
            return .frames(try FrameChunk(generation: generation, firstFrame: start, bytes: Array(answer.body)))
        case 400:
            guard let upToDate = try? JSONDecoder().decode(SyncProtocol.CheckpointNeeded.self, from: answer.body)
            else { throw transport.failure(answer, doing: "pulling frames") }
            return .upToDate(
                currentGeneration: upToDate.generation, lastFrame: upToDate.maxFrameNumber ?? (start - 1))
        case 410:
            throw ReplicationError.generationGone("generation \(generation) is no longer kept by the node")
        default:
            throw transport.failure(answer, doing: "pulling frames")
        }
    }
}
