import HummingbirdCore
import Logging
import NIOCore
import ShoalHTTP

/// Hummingbird's HTTP/1 connection under a server's `ConnectionLimits` (the node's and the control
/// plane's alike): its idle timeout set, and the header, body and write-stall deadlines (ShoalHTTP's
/// handlers) added to each connection's pipeline.
public struct LimitedHTTP1Channel: ServerChildChannel {
    /// What Hummingbird's HTTP/1 channel hands its handler.
    public typealias Value = HTTP1Channel.Value

    let http1: HTTP1Channel
    let limits: ConnectionLimits

    /// The server for `Application(server:)`.
    public static func server(_ limits: ConnectionLimits) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            LimitedHTTP1Channel(
                http1: HTTP1Channel(
                    responder: responder, configuration: .init(idleTimeout: TimeAmount(limits.idleTimeout))),
                limits: limits)
        }
    }

    /// Sets up Hummingbird's HTTP/1 pipeline, then adds the deadlines to it.
    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let limits = self.limits
        return http1.setup(channel: channel, logger: logger).flatMapThrowing { value in
            try limits.addDeadlineHandlers(to: channel) { deadline in
                logger.debug("connection.closed.deadline", metadata: ["connection.deadline": "\(deadline.rawValue)"])
            }
            return value
        }
    }

    /// Serves the connection as Hummingbird's HTTP/1 channel does.
    public func handle(value: Value, logger: Logger) async {
        await http1.handle(value: value, logger: logger)
    }
}
