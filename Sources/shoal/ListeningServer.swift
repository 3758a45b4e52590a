import ArgumentParser
import Hummingbird
import ServiceLifecycle
import ShoalServerKit

/// A server of `shoal node`, `shoal control` or `shoal dev` as a service of the command's
/// `ServiceGroup`: ends its port stream when it stops, with the reason (a failed bind explained)
/// when it could not run. A graceful shutdown stops it accepting and lets its requests finish.
struct ListeningServer: Service {
    let app: Application<RouterResponder<ServerRequestContext>>
    let host: String
    let port: Int
    let listening: AsyncThrowingStream<Int, any Error>.Continuation

    func run() async throws {
        do {
            try await ListenFailure.explaining(host: host, port: port) { try await app.run() }
            listening.finish()
        } catch {
            listening.finish(throwing: error)
            throw error
        }
    }

    /// A server on `host:port` (port 0: any free one) and a stream that yields its port once it
    /// listens, or fails with the reason it cannot.
    static func listen(
        _ make: (Int, @escaping @Sendable (Int) -> Void) -> Application<RouterResponder<ServerRequestContext>>,
        host: String, port: Int
    ) -> (server: ListeningServer, port: AsyncThrowingStream<Int, any Error>) {
        let (ports, continuation) = AsyncThrowingStream.makeStream(of: Int.self)
        let app = make(port, { continuation.yield($0) })
        return (ListeningServer(app: app, host: host, port: port, listening: continuation), ports)
    }

    /// The port a server listens on, once it does.
    static func port(_ stream: AsyncThrowingStream<Int, any Error>) async throws -> Int {
        var iterator = stream.makeAsyncIterator()
        guard let port = try await iterator.next() else { throw ValidationError("a server did not start") }
        return port
    }
}
