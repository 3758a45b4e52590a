import HummingbirdCore
import Logging
import NIOCore
import ShoalHTTP

/// Hummingbird's HTTP/1 connection under the control plane's `ConnectionLimits`: its idle timeout
/// set, and the header and body deadlines (ShoalHTTP's handlers) added to each connection's
/// pipeline. The node has the same few lines (the two servers share no Hummingbird code).
struct LimitedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let http1: HTTP1Channel
    let limits: ConnectionLimits

    /// The server for `Application(server:)`.
    static func server(_ limits: ConnectionLimits) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            LimitedHTTP1Channel(
                http1: HTTP1Channel(
                    responder: responder, configuration: .init(idleTimeout: TimeAmount(limits.idleTimeout))),
                limits: limits)
        }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let limits = self.limits
        return http1.setup(channel: channel, logger: logger).flatMapThrowing { value in
            try limits.addDeadlineHandlers(to: channel) { deadline in
                logger.debug("connection.closed.deadline", metadata: ["connection.deadline": "\(deadline.rawValue)"])
            }
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await http1.handle(value: value, logger: logger)
    }
}
