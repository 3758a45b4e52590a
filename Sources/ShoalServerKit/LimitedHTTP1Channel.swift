import HummingbirdCore
import Logging
import NIOCore
import ShoalHTTP

/// Hummingbird's HTTP/1 connection under a server's `ConnectionLimits` (the node's and the control
/// plane's alike): its idle timeout set, and the header, body and write-stall deadlines (ShoalHTTP's
/// handlers) added to each connection's pipeline.
public struct LimitedHTTP1Channel: ServerChildChannel {
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

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let limits = self.limits
        return http1.setup(channel: channel, logger: logger).flatMapThrowing { value in
            try limits.addDeadlineHandlers(to: channel) { deadline in
                logger.debug("connection.closed.deadline", metadata: ["connection.deadline": "\(deadline.rawValue)"])
            }
            return value
        }
    }

    public func handle(value: Value, logger: Logger) async {
        await http1.handle(value: value, logger: logger)
    }
}
